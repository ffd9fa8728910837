"""The Spark engine: the session (local, or a standalone cluster's ``spark.master``) and the
tables of the Spark catalog named as inputs.

PySpark is imported only when a session starts, so this module loads without the extra.
"""

from __future__ import annotations

import os
import re
import socket
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from ibis.expr.types import Table

from features.values import engine_of

LOCAL_SPARK_MASTER = "local[*]"


def spark_settings(conf: Mapping[str, str] | None = None) -> dict[str, str]:
    """The session's Spark settings: quiet, UTC, the driver on 127.0.0.1, executors running
    this interpreter (a standalone worker must run the driver's Python version); ``conf``
    (the configuration's ``spark.conf``) replaces any of them."""
    return {
        "spark.sql.session.timeZone": "UTC",
        "spark.ui.showConsoleProgress": "false",
        "spark.ui.enabled": "false",
        "spark.sql.shuffle.partitions": "4",
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.pyspark.python": os.environ.get("PYSPARK_PYTHON") or sys.executable,
        "spark.pyspark.driver.python": sys.executable,
        **{str(k): str(v) for k, v in (conf or {}).items()},
    }


def new_spark_session(master: str | None = None, conf: Mapping[str, str] | None = None):
    """A Spark session on ``master`` (``spark://host:7077``; default ``local[*]``, in this
    process) with :func:`spark_settings` (needs the optional `pyspark` extra and Java).

    Raises
    ------
    ValueError
        When this process already runs a Spark session on another master.
    ConnectionError
        When a standalone master does not answer, or gives the session no executor
        (:func:`check_master`, :func:`wait_for_executor`).
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:  # pragma: no cover - depends on the extra
        raise RuntimeError(
            "engine 'spark' needs PySpark: install the extra with `pip install -e '.[spark]'`"
        ) from exc
    active = SparkSession.getActiveSession()
    if active is not None and master and active.sparkContext.master != master:
        raise ValueError(
            f"spark.master is {master}, but this process already runs a Spark session on "
            f"{active.sparkContext.master}"
        )
    if active is None and master and master.startswith("spark://"):
        check_master(master)
    builder = SparkSession.builder.master(master or LOCAL_SPARK_MASTER).appName("milestones")
    for key, value in spark_settings(conf).items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    if active is None and master and master.startswith("spark://"):
        wait_for_executor(session, master)
    return session


#: Seconds a standalone master has to answer, and to give the application an executor.
MASTER_TIMEOUT_SECONDS = 10
EXECUTOR_TIMEOUT_SECONDS = 120


def check_master(master: str) -> None:
    """A standalone master (``spark://host:port``, several for standby masters) answers.

    Raises
    ------
    ConnectionError
        Naming the master when none of its addresses accepts a connection (Spark itself
        retries for a minute, then fails with a Java stack trace).
    """
    addresses = [a.strip() for a in master.removeprefix("spark://").split(",") if a.strip()]
    for address in addresses:
        host, _, port = address.rpartition(":") if ":" in address else (address, "", "7077")
        try:
            with socket.create_connection((host, int(port)), timeout=MASTER_TIMEOUT_SECONDS):
                return
        except (OSError, ValueError):
            continue
    raise ConnectionError(
        f"spark.master: no Spark master answers at {', '.join(addresses) or master}; "
        "start it (and a worker), or correct the address"
    )


def wait_for_executor(session, master: str, timeout: float | None = None) -> None:
    """Wait until the cluster gives the application an executor (else every query would wait
    for one forever: no worker, or none with the memory and cores asked for).

    Raises
    ------
    ConnectionError
        After ``timeout`` seconds without an executor; the session is stopped.
    """
    timeout = EXECUTOR_TIMEOUT_SECONDS if timeout is None else timeout
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # the driver counts as one block manager; an executor adds another
        if session.sparkContext._jsc.sc().getExecutorMemoryStatus().size() > 1:
            return
        time.sleep(0.5)
    asked = session.conf.get("spark.executor.memory", "1g")
    session.stop()
    raise ConnectionError(
        f"spark.master: the Spark master at {master} gave this application no executor in "
        f"{timeout:.0f} s: is a worker registered with it, with {asked} of memory free "
        "(spark.executor.memory) and a free core?"
    )


_DATA_FILE_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".parquet", ".pq")
_CATALOG_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*){0,2}")


def catalog_name(location: str, base_dir: str | os.PathLike | None = None) -> str | None:
    """The Spark catalog table ``location`` names, or None when it names a file.

    A name is ``table``, ``database.table`` or ``catalog.database.table``; never a path that
    exists or one ending like a data file (``accounts.parquet`` stays a file). The
    configuration resolves relative paths against its folder, so a bare name may come back as
    ``<base_dir>/<name>``: that is read as the name.
    """
    path = Path(location)
    if path.exists():
        return None
    text = location
    if base_dir is not None and path.is_absolute() and path.parent == Path(base_dir).resolve():
        text = path.name
    if text.lower().endswith(_DATA_FILE_SUFFIXES) or not _CATALOG_NAME.fullmatch(text):
        return None
    return text


def read_catalog_table(con, location: str, name: str) -> Table:
    """The Spark catalog's table (or view) ``location`` as a raw Ibis table.

    Raises
    ------
    ValueError
        Naming the input and the table when the catalog has no such table (with the tables
        it has), or when the engine is not Spark.
    """
    if engine_of(con) != "spark":
        raise ValueError(
            f"data.{name}: '{location}' is read as a table of the Spark catalog, with engine "
            "spark; on duckdb name a .parquet or .csv file, or a table inside data.database"
        )
    from pyspark.errors import AnalysisException

    session = con._session
    *database, table = location.split(".")
    if not session.catalog.tableExists(location):
        where = ".".join(database) or None
        try:
            found = sorted(t.name for t in session.catalog.listTables(where))
        except AnalysisException:  # no such database either
            found = []
        listed = ", ".join(found[:30]) + (", ..." if len(found) > 30 else "") or "none"
        raise ValueError(
            f"data.{name}: no table '{location}' in the Spark catalog "
            f"(tables in {where or 'the current database'}: {listed})"
        )
    if not database:
        return con.table(table)
    return con.table(table, database=tuple(database) if len(database) > 1 else database[0])
