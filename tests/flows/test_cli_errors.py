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


def _parquet_bytes(text: str) -> bytes:
    import io

    import pandas as pd

    buffer = io.BytesIO()
    pd.read_csv(io.StringIO(text)).to_parquet(buffer, compression=None)
    return buffer.getvalue()


def _corrupt(data: bytes) -> bytes:
    """Parquet bytes with their pages overwritten (the markers at both ends stay)."""
    middle = bytearray(data)
    for i in range(8, len(middle) // 2):
        middle[i] = 0xFF
    return bytes(middle)


# (name, file written as data.events, its content (None: a folder holding a text file; a dict:
# a folder of these files), words of the message)
FILE_CASES = [
    ("empty parquet", "events.parquet", b"", "is empty (0 bytes)"),
    ("empty csv", "events2.csv", b"", "is empty (0 bytes)"),
    ("csv named parquet", "events.parquet", EVENTS.encode(), "is not a Parquet file"),
    ("parquet named csv", "events2.csv", _parquet_bytes(EVENTS), "is a Parquet file, not CSV"),
    ("folder without parquet", "evdir", None, "holds no .parquet file"),
    ("unknown extension", "events.txt", EVENTS.encode(), "cannot tell the format"),
    ("latin-1 csv", "events2.csv", EVENTS.replace(",x,", ",caf\xe9,").encode("latin-1"), "UTF-8"),
    (
        "corrupt parquet",
        "events.parquet",
        _corrupt(_parquet_bytes(EVENTS)),
        "cannot read the Parquet file",
    ),
    (
        "folder of parquet files that differ",
        "evdir",
        {
            "a.parquet": _parquet_bytes(EVENTS),
            "b.parquet": _parquet_bytes(EVENTS.replace(",1\n", ",many\n")),
        },
        "differ in their columns: b.parquet has quantity: string (in a.parquet: integer)",
    ),
]


@pytest.mark.parametrize("name,file,content,words", FILE_CASES, ids=[c[0] for c in FILE_CASES])
def test_unreadable_input_file_exits_2_naming_the_file(
    project, prefect_harness, capfd, name, file, content, words
):
    """A file the engine cannot read is named, with the problem in plain words, not the
    engine's own message (no SQL, no CSV sniffer dump)."""
    target = project / file
    if content is None:
        target.mkdir()
        (target / "notes.txt").write_text("not data")
    elif isinstance(content, dict):
        target.mkdir()
        for file_name, data in content.items():
            (target / file_name).write_bytes(data)
    else:
        target.write_bytes(content)
    (project / "cfg.yaml").write_text(CONFIG.replace("events: events.csv", f"events: {file}"))
    before = tree_digest(project / "out")
    res = CliRunner().invoke(
        app, ["run", "--config", str(project / "cfg.yaml"), "--out", str(project / "out")]
    )
    assert res.exit_code == 2, res.output
    assert "data.events: " in res.output and str(target) in res.output
    assert words in res.output
    assert "LINE 1" not in res.output and "Possible Solution" not in res.output
    assert tree_digest(project / "out") == before
    assert_quiet(res, capfd, limit=1500)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_duplicate_column_names_exit_2_naming_them(project, prefect_harness, capfd, fmt):
    """Today DuckDB renames a second `seats` to `seats_1` and the run goes on."""
    text = ACCOUNTS.replace(",seats,plan", ",seats,seats")
    if fmt == "csv":
        (project / "accounts.csv").write_text(text)
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        rows = [line.split(",") for line in text.splitlines()]
        columns = [pa.array([r[i] for r in rows[1:]]) for i in range(len(rows[0]))]
        pq.write_table(pa.Table.from_arrays(columns, names=rows[0]), project / "accounts.csv")
        (project / "accounts.csv").rename(project / "accounts.parquet")
        (project / "cfg.yaml").write_text(
            CONFIG.replace("accounts: accounts.csv", "accounts: accounts.parquet")
        )
    before = tree_digest(project / "out")
    res = CliRunner().invoke(
        app, ["run", "--config", str(project / "cfg.yaml"), "--out", str(project / "out")]
    )
    assert res.exit_code == 2, res.output
    assert "data.accounts" in res.output and "duplicate column names: 'seats'" in res.output
    assert tree_digest(project / "out") == before
    assert_quiet(res, capfd)


# (name, extra configuration, words of the message)
HISTORY_CASES = [
    (
        "horizon longer than the history",
        "",  # the default 180-day horizon against five months of events
        ["not enough labelled history to train", "retention.horizon_days=180", "days)"],
    ),
    (
        "no churner",
        "retention:\n  horizon_days: 30\nmodels:\n  test_snapshots: 1\n",
        ["cannot learn retention", "0 of accounts that churned", "no churned account"],
    ),
]


@pytest.mark.parametrize("name,extra,words", HISTORY_CASES, ids=[c[0] for c in HISTORY_CASES])
def test_history_that_cannot_train_exits_2_with_the_counts(
    project, prefect_harness, capfd, name, extra, words
):
    """Today a ValueError from models.splits / models.training: exit 1 and a log file."""
    (project / "cfg.yaml").write_text(CONFIG + extra)
    before = tree_digest(project / "out")
    res = CliRunner().invoke(
        app, ["run", "--config", str(project / "cfg.yaml"), "--out", str(project / "out")]
    )
    assert res.exit_code == 2, res.output
    for word in words:
        assert word in res.output
    assert "unexpected" not in res.output
    assert tree_digest(project / "out") == before
    assert_quiet(res, capfd)


@pytest.mark.parametrize(
    "when", ["2200-01-01T00:00:00Z", "9999-12-31T00:00:00Z", "9999-12-31T23:00:00-05:00"]
)
def test_an_event_beyond_the_clock_exits_2(project, prefect_harness, capfd, when):
    """Today the event becomes as_of (2200) or the run ends in `year 10000 is out of range`."""
    (project / "events.csv").write_text(EVENTS + f"a2,x,{when},1\n")
    before = tree_digest(project / "out")
    res = CliRunner().invoke(
        app, ["run", "--config", str(project / "cfg.yaml"), "--out", str(project / "out")]
    )
    assert res.exit_code == 2, res.output
    assert "[events.occurred_at.not_in_future]" in res.output and "a2" in res.output
    assert "1 row breaks" in res.output
    assert tree_digest(project / "out") == before
    assert_quiet(res, capfd)


@pytest.mark.parametrize(
    "name,change,words",
    [
        (
            "not utf-8",
            lambda text: text.replace("{c: [y]}", "{caf\xe9: [y]}").encode("latin-1"),
            "not UTF-8",
        ),
        (
            "category with markup",
            lambda text: text.replace("{c: [y]}", "{'<a&b>': [y]}").encode(),
            "milestones.maturity.categories: category names must be plain words",
        ),
        (
            "as_of beyond the clock",
            lambda text: text.replace(
                "events: events.csv", "events: events.csv\n  as_of: 2200-01-01"
            ).encode(),
            "data.as_of: 2200-01-01T00:00:00 is in the future",
        ),
    ],
    ids=["not utf-8", "category with markup", "as_of beyond the clock"],
)
def test_configuration_problems_exit_2_naming_the_key(project, capfd, name, change, words):
    (project / "cfg.yaml").write_bytes(change(CONFIG))
    before = tree_digest(project / "out")
    res = CliRunner().invoke(
        app, ["run", "--config", str(project / "cfg.yaml"), "--out", str(project / "out")]
    )
    assert res.exit_code == 2, res.output
    assert words in res.output
    if name == "not utf-8":
        assert "cfg.yaml" in res.output
    assert tree_digest(project / "out") == before
    assert_quiet(res, capfd)


MAPPING = (
    "  columns: {account_id: org_id, occurred_at: ts, event: name}\n"
    "  timestamps: {occurred_at: seconds}\n"
)


def _mapped_project(project: Path) -> None:
    """The tiny project with the source's own names (org_id, name, ts) and epoch-second times."""
    import datetime as dt

    lines = EVENTS.splitlines()
    rows = ["org_id,name,ts,quantity"]
    for line in lines[1:]:
        account, event, time, quantity = line.split(",")
        seconds = int(dt.datetime.fromisoformat(time.replace("Z", "+00:00")).timestamp())
        rows.append(f"{account},{event},{seconds},{quantity}")
    (project / "events.csv").write_text("\n".join(rows) + "\n")
    (project / "accounts.csv").write_text(ACCOUNTS.replace("account_id,", "org_id,", 1))
    (project / "cfg.yaml").write_text(
        CONFIG.replace("  events: events.csv\n", "  events: events.csv\n" + MAPPING)
    )


def test_mapped_columns_and_epoch_times_validate(project, capfd):
    _mapped_project(project)
    res = CliRunner().invoke(
        app, ["validate", "--config", str(project / "cfg.yaml"), "--out", str(project / "out")]
    )
    assert res.exit_code == 0, res.output
    assert "all rules pass" in res.output
    assert_quiet(res, capfd)


def test_a_missing_mapped_column_exits_2_naming_it(project, capfd):
    _mapped_project(project)
    (project / "events.csv").write_text(
        (project / "events.csv").read_text().replace("org_id,name,ts", "org_id,name,time")
    )
    res = CliRunner().invoke(
        app, ["validate", "--config", str(project / "cfg.yaml"), "--out", str(project / "out")]
    )
    assert res.exit_code == 2, res.output
    assert "data.columns.occurred_at: the events table has no column 'ts'" in res.output
    assert_quiet(res, capfd)
