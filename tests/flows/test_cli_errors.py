"""Bad input through the real CLI: exit status 2, a message naming the rule and the rows, no
traceback anywhere on the terminal, and an earlier publication left byte-for-byte as it was."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app

ACCOUNTS = """account_id,signup_at,churned_at,seats,plan
a1,2025-01-01T00:00:00Z,,2,pro
a2,2025-02-01 10:00:00,2025-09-01T00:00:00+02:00,1,starter
a3,2025-03-01T00:00:00Z,,5,pro
"""
EVENTS = """account_id,event,occurred_at,quantity
a1,x,2025-01-02T00:00:00Z,1
a1,y,2025-01-03T00:00:00Z,1
a1,s1,2025-01-04T00:00:00Z,1
a2,x,2025-02-02T00:00:00Z,2
a3,y,2025-03-05T00:00:00Z,1
a3,x,2025-06-30T00:00:00Z,1
"""
CONFIG = """
data:
  accounts: accounts.csv
  events: events.csv
milestones:
  setup: {window_days: 21, steps: [s1]}
  activation: {event: x, window_days: 30}
  utilization: {event: x}
  maturity:
    categories: {c: [y]}
tracking:
  tracking_uri: sqlite:///mlflow.db
"""

# (name, change to accounts, change to events, expected rule, a value expected in the message)
CASES = [
    (
        "missing column",
        lambda a: a.replace(",seats", ",sets"),
        None,
        "accounts.columns.present",
        "seats",
    ),
    (
        "empty accounts",
        lambda a: a.splitlines()[0] + "\n",
        None,
        "accounts.rows.not_empty",
        "accounts",
    ),
    ("empty events", None, lambda e: e.splitlines()[0] + "\n", "events.rows.not_empty", "events"),
    (
        "duplicate account id",
        lambda a: a + "a1,2025-01-05T00:00:00Z,,1,pro\n",
        None,
        "accounts.account_id.unique",
        "a1",
    ),
    (
        "null account id",
        lambda a: a + ",2025-01-05T00:00:00Z,,1,pro\n",
        None,
        "accounts.account_id.not_null",
        "2 rows" if False else "1 row",
    ),
    (
        "unparseable signup",
        lambda a: a.replace("2025-03-01T00:00:00Z", "March 1st"),
        None,
        "accounts.signup_at.parseable",
        "March 1st",
    ),
    (
        "seats below one",
        lambda a: a.replace(",5,pro", ",0,pro"),
        None,
        "accounts.seats.at_least_one",
        "a3",
    ),
    (
        "seats not integer",
        lambda a: a.replace(",5,pro", ",2.5,pro"),
        None,
        "accounts.seats.integer",
        "2.5",
    ),
    (
        "churn before signup",
        lambda a: a.replace("2025-09-01T00:00:00+02:00", "2024-12-01T00:00:00Z"),
        None,
        "accounts.churned_at.not_before_signup",
        "a2",
    ),
    (
        "signup after as_of",
        lambda a: a + "a4,2031-01-01T00:00:00Z,,1,pro\n",
        None,
        "accounts.signup_at.not_after_as_of",
        "a4",
    ),
    (
        "unknown account",
        None,
        lambda e: e + "zz,x,2025-05-01T00:00:00Z,1\n",
        "events.account_id.known",
        "zz",
    ),
    (
        "event before signup",
        None,
        lambda e: e + "a3,x,2025-02-01T00:00:00Z,1\n",
        "events.occurred_at.not_before_signup",
        "a3",
    ),
    (
        "negative quantity",
        None,
        lambda e: e + "a1,x,2025-05-01T00:00:00Z,-3\n",
        "events.quantity.non_negative",
        "-3",
    ),
    (
        "unparseable event time",
        None,
        lambda e: e + "a1,x,yesterday,1\n",
        "events.occurred_at.parseable",
        "yesterday",
    ),
    (
        "configured event never occurs",
        None,
        lambda e: e.replace(",y,", ",z,"),
        "events.event.configured",
        "y",
    ),
]


def tree_digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture()
def project(tmp_path):
    (tmp_path / "accounts.csv").write_text(ACCOUNTS)
    (tmp_path / "events.csv").write_text(EVENTS)
    (tmp_path / "cfg.yaml").write_text(CONFIG)
    out = tmp_path / "out"
    out.mkdir()
    (out / "thresholds.json").write_text('{"previous": true}\n')
    (out / "scores.csv").write_text("account_id\nold\n")
    return tmp_path


def test_clean_tiny_input_validates(project):
    res = CliRunner().invoke(
        app, ["validate", "--config", str(project / "cfg.yaml"), "--out", str(project / "out")]
    )
    assert res.exit_code == 0, res.output
    assert "all rules pass" in res.output
    assert (project / "out.validation.json").is_file()


@pytest.mark.parametrize(
    "name,fix_accounts,fix_events,rule,value", CASES, ids=[c[0] for c in CASES]
)
def test_bad_input_exits_2_and_keeps_outputs(
    project, prefect_harness, capfd, name, fix_accounts, fix_events, rule, value
):
    if fix_accounts:
        (project / "accounts.csv").write_text(fix_accounts(ACCOUNTS))
    if fix_events:
        (project / "events.csv").write_text(fix_events(EVENTS))
    if name == "signup after as_of":
        (project / "cfg.yaml").write_text(
            CONFIG.replace(
                "  events: events.csv\n", "  events: events.csv\n  as_of: '2026-01-01'\n"
            )
        )
    before = tree_digest(project / "out")
    res = CliRunner().invoke(
        app, ["run", "--config", str(project / "cfg.yaml"), "--out", str(project / "out")]
    )
    assert res.exit_code == 2, res.output
    assert f"[{rule}]" in res.output
    assert value in res.output
    assert "rows break" in res.output or "row breaks" in res.output
    assert tree_digest(project / "out") == before
    assert not [p for p in project.iterdir() if p.name.startswith(".out.staging")]
    assert rule in (project / "out.validation.json").read_text()
    assert_quiet(res, capfd)


def assert_quiet(res, capfd, limit: int = 4000) -> None:
    """No traceback and no dump of the validation result, in the command's output nor on
    the process's own stderr (where Prefect's log handlers write)."""
    captured = capfd.readouterr()
    for text in (res.output, captured.err, captured.out):
        assert "Traceback" not in text
        assert "'unexpected_count'" not in text  # the result dict is never printed
    assert len(res.output) < limit


def test_events_after_explicit_as_of(project, prefect_harness, capfd):
    (project / "cfg.yaml").write_text(
        CONFIG.replace("  events: events.csv\n", "  events: events.csv\n  as_of: '2025-06-01'\n")
    )
    before = tree_digest(project / "out")
    res = CliRunner().invoke(
        app, ["run", "--config", str(project / "cfg.yaml"), "--out", str(project / "out")]
    )
    assert res.exit_code == 2
    assert "[events.occurred_at.not_after_as_of]" in res.output and "a3" in res.output
    assert tree_digest(project / "out") == before
    assert_quiet(res, capfd)


def test_bad_config_exits_2(project, capfd):
    (project / "cfg.yaml").write_text(CONFIG.replace("window_days: 30", "window_days: sixty"))
    res = CliRunner().invoke(
        app, ["run", "--config", str(project / "cfg.yaml"), "--out", str(project / "out")]
    )
    assert res.exit_code == 2
    assert (
        "milestones.activation.window_days: expected a positive integer, got 'sixty'" in res.output
    )
    assert_quiet(res, capfd)


def test_missing_input_file_exits_2(project, capfd):
    (project / "events.csv").unlink()
    res = CliRunner().invoke(app, ["validate", "--config", str(project / "cfg.yaml")])
    assert res.exit_code == 2
    assert "events.csv" in res.output and "not found" in res.output
    assert_quiet(res, capfd)


def test_unreadable_parquet_exits_2(project, prefect_harness, capfd):
    (project / "events.parquet").write_bytes(b"PAR1 this is not a parquet file")
    cfg = CONFIG.replace("events: events.csv", "events: events.parquet")
    (project / "cfg.yaml").write_text(cfg)
    before = tree_digest(project / "out")
    res = CliRunner().invoke(
        app, ["run", "--config", str(project / "cfg.yaml"), "--out", str(project / "out")]
    )
    assert res.exit_code == 2, res.output
    assert "cannot read the input data" in res.output and "events.parquet" in res.output
    assert tree_digest(project / "out") == before
    assert_quiet(res, capfd)


def test_unexpected_error_goes_to_a_log_file(project, monkeypatch, tmp_path, capfd):
    """An error nobody expected: exit 1, one line naming it and the log file, whose text holds
    the traceback."""
    import features.io

    def broken(*args, **kwargs):
        raise RuntimeError("the engine fell over")

    monkeypatch.setattr(features.io, "connect", broken)
    monkeypatch.setenv("MILESTONES_LOG_DIR", str(tmp_path / "logs"))
    res = CliRunner().invoke(app, ["validate", "--config", str(project / "cfg.yaml")])
    assert res.exit_code == 1
    assert "unexpected RuntimeError: the engine fell over" in res.output
    logs = list((tmp_path / "logs").glob("milestones-*.log"))
    assert len(logs) == 1 and str(logs[0]) in res.output
    text = logs[0].read_text()
    assert "Traceback" in text and "the engine fell over" in text and "broken" in text
    assert_quiet(res, capfd)


@pytest.mark.slow
def test_broken_input_in_a_real_process_prints_one_message(project):
    """The console script as a user runs it: Prefect's own loggers stay quiet too."""
    (project / "accounts.csv").write_text(ACCOUNTS.replace(",5,pro", ",0,pro"))
    env = dict(os.environ, PREFECT_HOME=str(project / "prefect"))
    env.pop("PREFECT_API_URL", None)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "flows.cli",
            "run",
            "--config",
            str(project / "cfg.yaml"),
            "--out",
            str(project / "out"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert "[accounts.seats.at_least_one]" in proc.stderr and "a3" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert len(proc.stderr) < 2000, proc.stderr
