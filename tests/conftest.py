"""Shared fixtures: quiet Prefect/MLflow settings, one Prefect test harness, a small demo."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def pytest_configure(config):
    os.environ.setdefault("DO_NOT_TRACK", "true")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    os.environ.setdefault("PREFECT_LOGGING_TO_API_ENABLED", "false")
    os.environ.setdefault("OMP_WAIT_POLICY", "passive")
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    # crash logs of tests go to a temporary folder, never into the checkout
    os.environ.setdefault("MILESTONES_LOG_DIR", tempfile.mkdtemp(prefix="milestones-test-logs-"))


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory):
    """One Prefect test server for the whole session (about 10 s, paid once)."""
    os.environ["PREFECT_HOME"] = str(tmp_path_factory.mktemp("prefect-home"))
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    with (
        prefect_test_harness(server_startup_timeout=90),
        temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}),
    ):
        yield


@pytest.fixture(scope="session")
def small_demo(tmp_path_factory) -> dict:
    """A small generated demo (a few hundred accounts), made once per session."""
    from features.demo import write_demo

    out = tmp_path_factory.mktemp("demo")
    return write_demo(out, n_accounts=400, seed=7)


def demo_config_text(accounts: str, events: str, tracking_uri: str, **extra) -> str:
    """The demo configuration pointed at other files and a private MLflow store."""
    text = (ROOT / "configs" / "demo.yaml").read_text()
    text = text.replace("../data/demo/accounts.parquet", accounts)
    text = text.replace("../data/demo/events.parquet", events)
    text = text.replace("tracking:\n", f"tracking:\n  tracking_uri: {tracking_uri}\n")
    for key, block in extra.items():
        text += f"{key}:\n{block}\n"
    return text


FAST = {
    "models": (
        "  row_budget: 4000\n  n_estimators: 40\n  permutation_repeats: 2\n  test_snapshots: 2"
    ),
    "thresholds": "  bootstrap: 40",
    "snapshots": "  max_snapshots: 18",  # 12 labelled month ends: a 180-day gap and a test date
}


@pytest.fixture(scope="session")
def runs(small_demo, tmp_path_factory, prefect_harness):
    """Two runs of the same data, config and seed into two folders."""
    tmp = tmp_path_factory.mktemp("e2e")
    cfg = tmp / "demo.yaml"
    cfg.write_text(
        demo_config_text(
            small_demo["accounts"], small_demo["events"], f"sqlite:///{tmp / 'mlflow.db'}", **FAST
        )
    )
    from typer.testing import CliRunner

    from flows.cli import app as cli_app

    results = []
    for name in ("first", "second"):
        res = CliRunner().invoke(cli_app, ["run", "--config", str(cfg), "--out", str(tmp / name)])
        results.append(res)
    return {"cfg": cfg, "tmp": tmp, "results": results}


_EXIT_STATUS = {"code": 0}


def pytest_sessionfinish(session, exitstatus):
    _EXIT_STATUS["code"] = int(exitstatus)


def pytest_unconfigure(config):
    """Leave right after pytest's summary.

    DuckDB 2.0's bindings print dozens of spurious "nanobind: leaked instance" lines at
    interpreter teardown once many connections were used in one process; they would bury the
    summary line. Every test has finished and reported by now.
    """
    from flows.runtime import hard_exit

    hard_exit(_EXIT_STATUS["code"])
