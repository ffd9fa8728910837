"""`data.url`: the inputs read from a real PostgreSQL server give the same outputs as Parquet.

The server is Debian's PostgreSQL (`make postgres`), started by the fixture as a throwaway
cluster on 127.0.0.1 in a temporary folder and always stopped. Its password lives only in the
environment: the configuration says `${MILESTONES_TEST_PG_PASSWORD}`, and no file the run
writes (outputs, side files, history, MLflow store, Prefect's home, logs) may hold it.
The error cases that need no server run in the fast tier.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
from pathlib import Path

import pandas as pd
import pytest
from conftest import FAST, demo_config_text
from typer.testing import CliRunner

from features import io

PASSWORD = "Zq8!s3cr&t/x%y-milestones"  # characters a URL must quote
PASSWORD_ENV = "MILESTONES_TEST_PG_PASSWORD"
LOGS = "MILESTONES_LOG_DIR"
# quick settings, with the history a small demo needs for labelled training snapshots
SETTINGS = {**FAST, "snapshots": "  max_snapshots: 24"}
PG_BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))), None)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres(args: list[str]) -> list[str]:
    """The server refuses to run as root: run its tools as the `postgres` user then."""
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


@contextlib.contextmanager
def postgres_server():
    """A throwaway cluster on 127.0.0.1: yields (port, folder); stopped and removed on exit."""
    bin_dir = PG_BIN.parent
    folder = Path(tempfile.mkdtemp(prefix="milestones-pg-"))
    data = folder / "data"
    pwfile = folder / "pwfile"
    pwfile.write_text(PASSWORD + "\n")
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
        shutil.chown(pwfile, "postgres", "postgres")
    port = _free_port()
    started = False
    try:
        subprocess.run(
            _as_postgres(
                [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--pwfile",
                 str(pwfile), "--auth-host=scram-sha-256", "--auth-local=peer", "-E", "UTF8",
                 "--no-instructions"]
            ),
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        pwfile.unlink()
        options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        started = True
        subprocess.run(
            _as_postgres(
                [str(PG_BIN), "-D", str(data), "-o", options, "-l", str(folder / "log"), "-w",
                 "-t", "60", "start"]
            ),
            check=True, capture_output=True, timeout=90,
        )  # fmt: skip
        yield port, folder
    finally:
        if started:
            subprocess.run(
                _as_postgres([str(PG_BIN), "-D", str(data), "-m", "immediate", "-w", "stop"]),
                capture_output=True,
                timeout=60,
            )
        shutil.rmtree(folder, ignore_errors=True)


def load_demo(port: int, accounts: str, events: str) -> None:
    """The demo's Parquet files as tables `accounts` and `product.events` (psycopg COPY)."""
    import psycopg
    import pyarrow.parquet as pq

    admin = dict(host="127.0.0.1", port=port, user="postgres", password=PASSWORD)
    with psycopg.connect(**admin, dbname="postgres", autocommit=True) as con:
        con.execute("CREATE DATABASE milestones")
    ddl = {
        "accounts": "CREATE TABLE accounts (account_id text, signup_at timestamptz, "
        "churned_at timestamptz, seats integer, plan text, region text)",
        "product.events": "CREATE TABLE product.events (account_id text, event text, "
        "occurred_at timestamptz, quantity double precision, user_id text)",
    }
    with psycopg.connect(**admin, dbname="milestones") as con:
        con.execute("CREATE SCHEMA product")
        for (table, create), path in zip(ddl.items(), (accounts, events), strict=True):
            con.execute(create)
            frame = pq.read_table(path)
            columns = ", ".join(frame.column_names)
            with con.cursor().copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for batch in frame.to_batches(50_000):
                    for row in zip(*(c.to_pylist() for c in batch.columns), strict=True):
                        copy.write_row(row)


def _url(port: int, password: str = "${" + PASSWORD_ENV + "}") -> str:
    return f"postgres://postgres:{password}@127.0.0.1:{port}/milestones"


def _config(folder: Path, demo: dict, *, url: str | None = None, events="product.events"):
    folder.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    if url is None:
        text = demo_config_text(demo["accounts"], demo["events"], uri, **SETTINGS)
    else:
        text = demo_config_text("accounts", events, uri, **SETTINGS)
        text = text.replace("data:\n", f"data:\n  url: {url}\n", 1)
    path = folder / "demo.yaml"
    path.write_text(text)
    return path


def _invoke(*args: str):
    from flows.cli import app

    return CliRunner().invoke(app, list(args))


def _holding(folder: Path, needles: list[bytes]) -> list[str]:
    found = []
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            found += [f"{path}: {n!r}" for n in needles if n in data]
    return found


@pytest.mark.slow
@pytest.mark.postgres
def test_postgres_source_gives_the_outputs_of_parquet(
    small_demo, tmp_path, prefect_harness, monkeypatch
):
    if PG_BIN is None:
        pytest.skip("Debian's PostgreSQL server is missing (make postgres)")
    pytest.importorskip("psycopg", reason="the postgres extra is missing (make install-postgres)")
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    started = time.perf_counter()
    with postgres_server() as (port, _):
        load_demo(port, small_demo["accounts"], small_demo["events"])
        from_files = _config(tmp_path / "files", small_demo)
        from_pg = _config(tmp_path / "pg", small_demo, url=_url(port))
        res_files = _invoke("run", "--config", str(from_files), "--out", str(tmp_path / "out-f"))
        assert res_files.exit_code == 0, res_files.output
        res_pg = _invoke("run", "--config", str(from_pg), "--out", str(tmp_path / "out-pg"))
        assert res_pg.exit_code == 0, res_pg.output + str(res_pg.exception)
        # a missing table, named with the URL but never the password (exit 2)
        missing = _config(tmp_path / "missing", small_demo, url=_url(port), events="evnts")
        res_missing = _invoke("validate", "--config", str(missing))
    print(f"postgres test: {time.perf_counter() - started:.1f} s")

    files, pg = tmp_path / "out-f", tmp_path / "out-pg"
    want = json.loads((files / "thresholds.json").read_text())
    got = json.loads((pg / "thresholds.json").read_text())
    assert got == want
    assert want["activation"]["threshold"] is not None
    want_scores = pd.read_csv(files / "scores.csv")
    got_scores = pd.read_csv(pg / "scores.csv")
    assert len(got_scores) > 0
    pd.testing.assert_frame_equal(got_scores, want_scores)
    assert json.loads((pg / "summary.json").read_text())["accounts"] == 400
    assert (pg / "data_docs" / "index.html").is_file()

    assert res_missing.exit_code == 2
    assert "data.events: no table 'evnts' in postgres://postgres@127.0.0.1" in res_missing.output
    assert "Traceback" not in res_missing.output

    # the password, plain or URL-quoted, is nowhere: outputs, side files, the history, the
    # MLflow store and its artifacts, the configuration, Prefect's home, the crash logs
    needles = [PASSWORD.encode(), urllib.parse.quote_plus(PASSWORD).encode()]
    for folder in (tmp_path, *(Path(os.environ[k]) for k in ("PREFECT_HOME", LOGS))):
        assert _holding(folder, needles) == []
    for res in (res_files, res_pg, res_missing):
        assert PASSWORD not in res.output
    # MLflow's copy of the configuration keeps the reference, not the value
    logged = json.loads(next((tmp_path / "pg").rglob("config.json")).read_text())
    assert logged["data"]["url"] == _url(port)


# ------------------------------------------------------------------ errors needing no server


def _bad_config(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(
        "data:\n"
        f"  url: '{url}'\n"
        "  accounts: accounts\n  events: events\n"
        "milestones:\n  activation: {event: x}\n  utilization: {event: x}\n"
    )
    return path


def test_a_password_written_in_the_url_is_refused(tmp_path):
    res = _invoke("validate", "--config", str(_bad_config(tmp_path, _url(5432, PASSWORD))))
    assert res.exit_code == 2
    assert "data.url: the URL holds a password (the password after the user name)" in res.output
    assert PASSWORD not in res.output and "Traceback" not in res.output
    res = _invoke("validate", "--config", str(_bad_config(tmp_path, "postgres://h/db?password=x")))
    assert res.exit_code == 2 and "the parameter 'password'" in res.output


def test_a_url_ibis_cannot_open_and_an_unset_variable(tmp_path, monkeypatch):
    res = _invoke("validate", "--config", str(_bad_config(tmp_path, "nosuchdb://h/db")))
    assert res.exit_code == 2, res.output
    assert "data.url: not a database URL Ibis can open: nosuchdb://h/db" in res.output
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    res = _invoke("validate", "--config", str(_bad_config(tmp_path, _url(5432))))
    assert res.exit_code == 2
    assert f"refers to the environment variable {PASSWORD_ENV}, which is not set" in res.output


def test_an_unreachable_server_is_named_without_the_password(tmp_path, monkeypatch):
    pytest.importorskip("psycopg", reason="the postgres extra is missing (make install-postgres)")
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    port = _free_port()  # nothing listens there
    res = _invoke("validate", "--config", str(_bad_config(tmp_path, _url(port))))
    assert res.exit_code == 2, res.output
    assert f"cannot connect to the database server at 127.0.0.1:{port}" in res.output
    assert f"postgres://postgres@127.0.0.1:{port}/milestones" in res.output
    assert PASSWORD not in res.output and "Traceback" not in res.output


def test_url_helpers():
    url = "postgres://me:${PW}@db.example.com:5432/analytics?sslmode=require&password=${X}"
    assert io.literal_secret(url) is None
    assert io.literal_secret("postgres://me:hunter2@db/x") == "the password after the user name"
    assert io.public_url(url) == "postgres://me@db.example.com:5432/analytics?sslmode=require"
    expanded, secrets = io.expand_url(url, {"PW": "a b&c", "X": "y"})
    assert expanded.startswith("postgres://me:a+b%26c@db.example.com")
    assert secrets == ["a b&c", "y"]
    with pytest.raises(ValueError, match="environment variable PW, X, which is not set"):
        io.expand_url(url, {})


def test_config_rules_of_a_url_source(tmp_path):
    from flows.config import load_config
    from flows.errors import ConfigError

    path = _bad_config(tmp_path, _url(5432))
    cfg = load_config(path)
    assert cfg.data.url == _url(5432) and cfg.data.accounts == "accounts"  # a table, not a path
    assert cfg.input_files() == []
    with pytest.raises(ConfigError, match=r"data\.url is read with engine duckdb"):
        load_config(path, engine="spark")
    with pytest.raises(ConfigError, match=r"data\.url and data\.database are both set"):
        load_config(path, **{"data.database": "x.duckdb"})
    with pytest.raises(ConfigError, match=r"data\.url: expected a database URL"):
        load_config(_bad_config(tmp_path, "accounts.parquet"))


def test_a_url_source_fingerprint_follows_the_source_and_its_counts(tmp_path):
    """A warehouse source is not read twice for a digest: its fingerprint is one of the URL
    (no password in it), the tables and the run's counts; a file source's is of the bytes."""
    from flows.config import load_config
    from flows.store.tracking import data_fingerprint

    cfg = load_config(_bad_config(tmp_path, _url(5432)))
    run = {"as_of": "2026-06-30 00:00:00", "accounts": 10, "events": 500, "live_accounts": 7}
    first = data_fingerprint(cfg, run)
    assert first.startswith("url:") and first == data_fingerprint(cfg, dict(run))
    assert data_fingerprint(cfg, {**run, "events": 501}) != first
    other = cfg.model_copy(update={"data": cfg.data.model_copy(update={"events": "other.ev"})})
    assert data_fingerprint(other, run) != first
    (tmp_path / "a.csv").write_text("x\n1\n")
    (tmp_path / "e.csv").write_text("x\n2\n")
    files = cfg.model_copy(
        update={
            "data": cfg.data.model_copy(
                update={"url": None, "accounts": str(tmp_path / "a.csv"),
                        "events": str(tmp_path / "e.csv")}
            )
        }
    )  # fmt: skip
    before = data_fingerprint(files, run)
    (tmp_path / "e.csv").write_text("x\n3\n")
    assert not before.startswith("url:") and data_fingerprint(files, run) != before
    (tmp_path / "e.csv").unlink()  # a name that is no file: a table of Spark's catalog
    assert data_fingerprint(files, run).startswith("table:")
