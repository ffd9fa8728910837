"""The whole pipeline on a standalone Spark cluster gives DuckDB's thresholds and scores.

The module starts a master and one worker (one core) on 127.0.0.1 with PySpark's own
`bin/spark-class`, logs and work folders in a temporary folder, and stops both at its end
whatever happened, checking that none of the processes it started (the executors and the
drivers of the runs included) is left. `milestones run` runs in a subprocess against the
cluster (`engine: spark`, `spark.master`), reading the demo's Parquet files by their absolute
paths; a second subprocess reads the same data as tables of the Spark catalog, and asks the
cluster for more memory than it has.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
from conftest import FAST, ROOT, demo_config_text
from test_spark import _java_missing

from features import io
from features.spark import catalog_name, check_master, spark_settings

SLOW = (pytest.mark.spark, pytest.mark.slow)

HOST = "127.0.0.1"
START_SECONDS = 120
RUN_SECONDS = 600


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _get_json(url: str) -> dict | None:
    """The JSON at ``url``, straight to 127.0.0.1 (never through a proxy); None when down."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=5) as response:
            return json.load(response)
    except (OSError, ValueError):
        return None


def _processes() -> list[tuple[int, int, str]]:
    """``(pid, process group, command line)`` of every process on the machine."""
    out = subprocess.run(
        ["ps", "-eo", "pid=,pgid=,args="], capture_output=True, text=True, check=True
    ).stdout
    rows = []
    for line in out.splitlines():
        pid, pgid, *args = line.split(None, 2)
        rows.append((int(pid), int(pgid), args[0] if args else ""))
    return rows


def _stop_group(proc: subprocess.Popen) -> None:
    """End ``proc`` and every process of its group (it leads one: ``start_new_session``)."""
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            proc.poll()
            if not any(pgid == proc.pid for _, pgid, _ in _processes()):
                return
            time.sleep(0.5)


class Cluster:
    """A standalone master and one worker on 127.0.0.1, and every process group started."""

    def __init__(self, folder: Path):
        import pyspark

        self.home = Path(pyspark.__file__).parent
        self.folder = folder
        self.port, self.webui = _free_port(), _free_port()
        self.worker_port, self.worker_webui = _free_port(), _free_port()
        self.url = f"spark://{HOST}:{self.port}"
        self.groups: list[subprocess.Popen] = []
        self.logs: dict[int, Path] = {}
        self.env = dict(
            os.environ,
            SPARK_HOME=str(self.home),
            SPARK_LOCAL_IP=HOST,
            SPARK_LOG_DIR=str(folder / "logs"),
            SPARK_PID_DIR=str(folder / "pids"),
            SPARK_WORKER_DIR=str(folder / "work"),
            SPARK_DAEMON_MEMORY="512m",
            PYSPARK_PYTHON=sys.executable,
            PYSPARK_DRIVER_PYTHON=sys.executable,
        )
        for name in ("logs", "pids", "work"):
            (folder / name).mkdir(parents=True, exist_ok=True)

    def spawn(self, args: list[str], log: str, **kwargs) -> subprocess.Popen:
        """A process in its own group (stopped with all its children), output to ``log``."""
        with open(self.folder / "logs" / log, "wb") as out:
            proc = subprocess.Popen(
                args,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                **{"env": self.env, **kwargs},
            )
        self.groups.append(proc)
        self.logs[proc.pid] = self.folder / "logs" / log
        return proc

    def applications(self) -> set[tuple[str, str]]:
        """``(name, id)`` of each application the master has run or runs."""
        state = _get_json(f"http://{HOST}:{self.webui}/json") or {}
        apps = state.get("completedapps", []) + state.get("activeapps", [])
        return {(a["name"], a["id"]) for a in apps}

    def output(self, proc: subprocess.Popen) -> str:
        return self.logs[proc.pid].read_text(errors="replace")

    def daemon(self, cls: str, *args: str) -> subprocess.Popen:
        command = [str(self.home / "bin" / "spark-class"), f"org.apache.spark.deploy.{cls}"]
        return self.spawn([*command, *args], f"{cls.rsplit('.', 1)[-1].lower()}.out")

    def start(self) -> None:
        master = self.daemon(
            "master.Master", "--host", HOST, "--port", str(self.port), "--webui-port",
            str(self.webui),
        )  # fmt: skip
        self._wait("the master", lambda s: s is not None, master)
        worker = self.daemon(
            "worker.Worker", "--host", HOST, "--port", str(self.worker_port), "--webui-port",
            str(self.worker_webui), "--cores", "1", "--memory", "1536m", "--work-dir",
            str(self.folder / "work"), self.url,
        )  # fmt: skip
        self._wait("the worker", lambda s: s and s.get("aliveworkers", 0) >= 1, worker)

    def _wait(self, what: str, ready, proc: subprocess.Popen) -> None:
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if ready(_get_json(f"http://{HOST}:{self.webui}/json")):
                return
            if proc.poll() is not None:
                break
            time.sleep(1)
        logs = "\n".join(p.read_text()[-3000:] for p in (self.folder / "logs").glob("*.out"))
        raise RuntimeError(f"{what} did not start (exit {proc.poll()}):\n{logs}")

    def stop(self) -> list[str]:
        """Stop every group started; the processes still there (none, normally)."""
        for proc in reversed(self.groups):
            _stop_group(proc)
        marks = (f"--port {self.port}", f"{HOST}:{self.port}", f"{HOST}:{self.worker_port}")
        pgids = {p.pid for p in self.groups}
        return [
            f"{pid} {args[:200]}"
            for pid, pgid, args in _processes()
            if pgid in pgids or ("java" in args and any(m in args for m in marks))
        ]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    reason = _java_missing()
    if reason:
        pytest.skip(reason)
    started = Cluster(tmp_path_factory.mktemp("spark_cluster"))
    try:
        started.start()
        yield started
    finally:
        left = started.stop()
        assert not left, f"processes left after the cluster stopped: {left}"


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> dict:
    from features.demo import write_demo

    folder = tmp_path_factory.mktemp("cluster_demo")
    return write_demo(folder / "data", n_accounts=400, seed=7)


# Setup and maturity pinned, so that the stages differ between accounts (on a demo this small
# no milestone is confirmed); activation and utilization are derived by each engine.
PINS = (
    ("    steps: [", "    pinned_steps: [install_messenger, connect_email_channel]\n    steps: ["),
    (
        "  maturity:\n    window_days: 90\n",
        "  maturity:\n    window_days: 90\n    min_categories: 2\n    thresholds: {channels: 2, "
        "automation: 1, operations: 2, interoperability: 1, reporting: 1}\n",
    ),
)


def _config(folder: Path, demo: dict, *, engine: str, spark: str = "", data: dict | None = None):
    """The fast demo configuration in ``folder`` (its own MLflow store and history)."""
    folder.mkdir(parents=True, exist_ok=True)
    data = data or {"accounts": demo["accounts"], "events": demo["events"]}
    text = demo_config_text(
        data["accounts"], data["events"], f"sqlite:///{folder / 'mlflow.db'}", **FAST
    )
    for old, new in PINS:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    text += f"engine: {engine}\n{spark}"
    path = folder / "config.yaml"
    path.write_text(text)
    return path


def _spark_block(cluster: Cluster, extra: str = "") -> str:
    return (
        f"spark:\n  master: {cluster.url}\n  conf:\n"
        '    spark.executor.memory: "1g"\n    spark.cores.max: "1"\n'
        '    spark.sql.shuffle.partitions: "1"\n' + extra
    )


def _start(cluster: Cluster, args: list[str], cwd: Path) -> subprocess.Popen:
    """This interpreter with ``args``, in its own process group (its output in the logs)."""
    env = dict(cluster.env, PREFECT_HOME=str(cwd / "prefect"), MILESTONES_LOG_DIR=str(cwd))
    env.pop("PREFECT_API_URL", None)
    env["PYTHONPATH"] = str(ROOT)
    return cluster.spawn([sys.executable, *args], f"{cwd.name}.log", cwd=cwd, env=env)


def _finish(cluster: Cluster, proc: subprocess.Popen) -> tuple[int, str]:
    """The status and output of a process of :func:`_start`; its group ends with it."""
    try:
        status = proc.wait(timeout=RUN_SECONDS)
    finally:
        _stop_group(proc)  # a driver's JVM goes with it
    return status, cluster.output(proc)


def _milestones_run(cluster: Cluster, config: Path) -> subprocess.Popen:
    out = config.parent / "out"
    args = ["-m", "flows.cli", "run", "--config", str(config), "--out", str(out)]
    return _start(cluster, args, config.parent)


def _assert_same(got, want, where: str = "thresholds") -> None:
    """The same JSON document; numbers equal to 1e-9 (sums may add up in another order)."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and list(got) == list(want), where
        for key in want:
            _assert_same(got[key], want[key], f"{where}.{key}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            _assert_same(g, w, f"{where}[{i}]")
    elif isinstance(want, float) and not isinstance(got, bool):
        assert got == pytest.approx(want, rel=1e-9, nan_ok=True), where
    else:
        assert got == want, where


def _thresholds(out: Path) -> dict:
    return json.loads((out / "thresholds.json").read_text())


@SLOW[0]
@SLOW[1]
def test_the_pipeline_on_a_cluster_matches_duckdb(cluster, demo, tmp_path):
    cfg_spark = _config(tmp_path / "spark", demo, engine="spark", spark=_spark_block(cluster))
    cfg_duck = _config(tmp_path / "duckdb", demo, engine="duckdb")
    before = cluster.applications()
    runs = [_milestones_run(cluster, cfg) for cfg in (cfg_spark, cfg_duck)]  # side by side
    (spark_status, spark_log), (duck_status, duck_log) = [_finish(cluster, r) for r in runs]
    assert spark_status == 0, spark_log[-4000:]
    assert duck_status == 0, duck_log[-4000:]
    # the Spark run was an application of the cluster (run by its worker), not a local Spark
    assert [name for name, _ in cluster.applications() - before] == ["milestones"]
    spark_out, duck_out = cfg_spark.parent / "out", cfg_duck.parent / "out"

    spark_t, duck_t = _thresholds(spark_out), _thresholds(duck_out)
    assert list(spark_t) == list(duck_t) == ["setup", "activation", "utilization", "maturity"]
    for name, want in duck_t.items():
        got = spark_t[name]
        assert got["status"] == want["status"], name
        assert got["rule"] == want["rule"], name
        assert got["threshold"] == pytest.approx(want["threshold"], rel=1e-9), name
        assert got["ci"] == pytest.approx(want["ci"], rel=1e-9), name
    _assert_same(spark_t, duck_t)  # evidence and candidates too: the same numbers throughout

    spark_s = pd.read_csv(spark_out / "scores.csv", keep_default_na=False)
    duck_s = pd.read_csv(duck_out / "scores.csv", keep_default_na=False)
    assert len(duck_s) > 100 and duck_s["stage"].nunique() >= 3
    pd.testing.assert_frame_equal(spark_s, duck_s, check_exact=False, rtol=1e-9)


CATALOG_SCRIPT = """
import json, sys
from pathlib import Path
from typer.testing import CliRunner
import features.spark
from features.spark import new_spark_session
from flows.cli import app

master, warehouse, accounts, events, result = sys.argv[1:6]
runs = {}
spark = new_spark_session(master, {"spark.sql.warehouse.dir": warehouse})
spark.read.parquet(accounts).createOrReplaceTempView("demo_accounts")
spark.sql("CREATE DATABASE IF NOT EXISTS analytics")
spark.read.parquet(events).write.saveAsTable("analytics.demo_events")
for config in sys.argv[6:]:
    out = str(Path(config).parent / "out")
    res = CliRunner().invoke(app, ["validate", "--config", config, "--out", out])
    runs[Path(config).parent.name] = {"status": res.exit_code, "output": res.output}
spark.stop()
# more memory than the worker has: the application would wait for an executor forever
features.spark.EXECUTOR_TIMEOUT_SECONDS = 5
try:
    new_spark_session(master, {"spark.executor.memory": "8g"})
except ConnectionError as exc:
    runs["no_executor"] = {"error": str(exc)}
with open(result, "w") as f:
    json.dump(runs, f)
"""


@pytest.fixture(scope="module")
def catalog_runs(cluster, demo, tmp_path_factory) -> dict:
    """`milestones validate` in one process whose session (on the cluster) has the demo as a
    temporary view (accounts) and a table of a database (events); then a configuration naming
    a table that does not exist; then a session asking for more memory than the worker has."""
    folder = tmp_path_factory.mktemp("catalog")
    warehouse = folder / "warehouse"
    spark = _spark_block(cluster, f'    spark.sql.warehouse.dir: "{warehouse}"\n')
    configs = [
        _config(folder / name, demo, engine="spark", spark=spark, data=data)
        for name, data in (
            ("good", {"accounts": "demo_accounts", "events": "analytics.demo_events"}),
            ("missing", {"accounts": "demo_accounts", "events": "analytics.no_such_events"}),
        )
    ]
    result = folder / "result.json"
    args = [cluster.url, str(warehouse), demo["accounts"], demo["events"], str(result)]
    args += [str(c) for c in configs]
    status, output = _finish(cluster, _start(cluster, ["-c", CATALOG_SCRIPT, *args], folder))
    assert status == 0, output[-4000:]
    return {"folder": folder, **json.loads(result.read_text())}


@SLOW[0]
@SLOW[1]
def test_catalog_tables_on_a_cluster(catalog_runs, demo):
    """Input names that are no files are tables of the Spark catalog."""
    good = catalog_runs["good"]
    assert good["status"] == 0, good["output"]
    validation = json.loads((catalog_runs["folder"] / "good" / "out.validation.json").read_text())
    rows = {name: len(pd.read_parquet(demo[name])) for name in ("accounts", "events")}
    assert validation["ok"] and validation["engine"] == "spark"
    assert validation["row_counts"] == rows


@SLOW[0]
@SLOW[1]
def test_a_missing_catalog_table_is_named(catalog_runs):
    bad = catalog_runs["missing"]
    assert bad["status"] == 2, bad["output"]
    assert "data.events: no table 'analytics.no_such_events' in the Spark catalog" in bad["output"]
    assert "demo_events" in bad["output"]  # the tables the database has
    assert "Traceback" not in bad["output"]


@SLOW[0]
@SLOW[1]
def test_a_cluster_that_gives_no_executor_is_an_error(catalog_runs, cluster):
    """Asking for more memory than the worker has would wait forever: an error names it."""
    error = catalog_runs["no_executor"]["error"]
    assert error.startswith(f"spark.master: the Spark master at {cluster.url} gave"), error
    assert "8g of memory free" in error


# ----------------------------------------------------------------- fast: no Spark needed


def test_a_master_that_does_not_answer_is_named():
    url = f"spark://{HOST}:{_free_port()}"
    with pytest.raises(ConnectionError, match=f"no Spark master answers at {HOST}:"):
        check_master(url)


@pytest.mark.parametrize(
    ("location", "name"),
    [
        ("accounts", "accounts"),
        ("analytics.events", "analytics.events"),
        ("spark_catalog.analytics.events", "spark_catalog.analytics.events"),
        ("/base/analytics.events", "analytics.events"),  # as the configuration resolved it
        ("accounts.parquet", None),
        ("/base/events.csv", None),
        ("/base/events.csv.gz", None),
        ("/elsewhere/accounts", None),
        ("data/accounts", None),
        ("/base/data/accounts", None),
        ("a.b.c.d", None),
        ("2024_accounts", None),
        ("my accounts", None),
    ],
)
def test_a_name_that_is_no_file_is_a_catalog_table(location, name):
    assert catalog_name(location, base_dir="/base") == name


def test_an_existing_path_is_never_a_catalog_table(tmp_path):
    (tmp_path / "accounts").mkdir()
    assert catalog_name(str(tmp_path / "accounts"), base_dir=tmp_path) is None
    assert catalog_name(str(tmp_path / "events"), base_dir=tmp_path) == "events"


def test_catalog_tables_only_on_spark(tmp_path):
    where = {"base_dir": tmp_path}
    assert io.input_source(str(tmp_path / "accounts"), engine="spark", **where).kind == "catalog"
    assert io.input_source("accounts", engine="spark", database="x.duckdb").kind == "duckdb"
    on_duckdb = io.input_source(str(tmp_path / "accounts"), engine="duckdb", **where)
    with pytest.raises(ValueError, match=r"cannot tell the format.*the Spark catalog"):
        io.read_source(io.connect(), on_duckdb, "accounts")
    with pytest.raises(
        ValueError, match=r"data\.accounts: 'accounts' is read as a table of the Sp"
    ):
        io.read_source(io.connect(), io.Source("accounts", catalog=True), "accounts")


def test_spark_settings(monkeypatch):
    monkeypatch.delenv("PYSPARK_PYTHON", raising=False)
    settings = spark_settings({"spark.executor.memory": "2g", "spark.sql.shuffle.partitions": 8})
    assert settings["spark.executor.memory"] == "2g"
    assert settings["spark.sql.shuffle.partitions"] == "8"  # the configuration's value wins
    assert settings["spark.pyspark.python"] == sys.executable  # the workers run this Python
    assert settings["spark.driver.host"] == HOST
    assert settings["spark.sql.session.timeZone"] == "UTC"
    monkeypatch.setenv("PYSPARK_PYTHON", "/opt/python3.11")
    assert spark_settings()["spark.pyspark.python"] == "/opt/python3.11"
