"""`milestones profile` and `milestones init`: the page, the proposed configuration, their
safety with names from the data, and (slow) the acceptance on the demo data."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from flows.cli import app
from flows.config import load_config

SCRIPT = '<script>alert("x")</script>'
INVOICE = 'Invoice "Sent" \U0001f389'
BROKEN = "a\nb: c # d"
ODD = "it's\u2028odd"
NAMES = (SCRIPT, INVOICE, BROKEN, ODD, "report_viewed", "export_csv")


@pytest.fixture(scope="module")
def nasty(tmp_path_factory) -> dict:
    """150 accounts whose event names hold HTML, quotes, emoji, a line break and a line
    separator; the invoices keep customers (fewer invoices, more churn)."""
    rng = np.random.default_rng(3)
    n = 150
    start = dt.datetime(2024, 1, 1)
    signup = [start + dt.timedelta(days=int(d)) for d in rng.integers(0, 450, n)]
    level = rng.gamma(2.0, 2.0, n)  # invoices per week
    life = np.where(rng.random(n) < 0.35 + 0.4 * (level < 2.5), rng.integers(20, 300, n), 10_000)
    as_of = dt.datetime(2026, 6, 30)
    rows = []
    churned = []
    for i in range(n):
        end = min(signup[i] + dt.timedelta(days=int(life[i])), as_of)
        churned.append(end if end < as_of else None)
        days = (end - signup[i]).days
        rows.append((i, SCRIPT, signup[i] + dt.timedelta(hours=3)))
        if rng.random() < 0.6:
            rows.append((i, ODD, signup[i] + dt.timedelta(days=1)))
        for week in range(days // 7):
            for _ in range(rng.poisson(level[i])):
                t = signup[i] + dt.timedelta(days=7 * week + float(rng.random() * 7))
                rows.append((i, INVOICE, t))
            if rng.random() < 0.5:
                rows.append((i, BROKEN, signup[i] + dt.timedelta(days=7 * week + 2)))
                rows.append((i, "report_viewed", signup[i] + dt.timedelta(days=7 * week + 3)))
            if rng.random() < 0.3:
                rows.append((i, "export_csv", signup[i] + dt.timedelta(days=7 * week + 4)))
    folder = tmp_path_factory.mktemp("nasty")
    ids = [f"org_{i:03d}" for i in range(n)]
    accounts = pd.DataFrame(
        {
            "account_id": ids,
            "signup_at": pd.to_datetime(signup),
            "churned_at": pd.to_datetime(churned),
            "seats": rng.integers(1, 12, n),
            "plan": rng.choice(["basic", "<b>pro</b>"], n),
        }
    )
    events = pd.DataFrame(rows, columns=["aid", "event", "occurred_at"])
    events["account_id"] = [ids[i] for i in events["aid"]]
    events = events[events["occurred_at"] <= as_of].drop(columns="aid")
    accounts.to_parquet(folder / "accounts.parquet", index=False)
    events.to_parquet(folder / "events.parquet", index=False)
    return {
        "folder": folder,
        "accounts": folder / "accounts.parquet",
        "events": folder / "events.parquet",
        "accounts_frame": accounts,
        "events_frame": events,
    }


def _invoke(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def profiled(nasty, tmp_path_factory) -> Path:
    """The profile of the nasty data, written to the default folder (out/profile) of a
    scratch working folder."""
    import os

    cwd = tmp_path_factory.mktemp("cwd")
    before = Path.cwd()
    os.chdir(cwd)
    try:
        res = _invoke("profile", "--accounts", nasty["accounts"], "--events", nasty["events"])
    finally:
        os.chdir(before)
    assert res.exit_code == 0, res.output
    return cwd / "out" / "profile"


def test_profile_writes_an_escaped_page_and_its_data(profiled):
    out = profiled
    assert sorted(p.name for p in out.iterdir()) == ["profile.html", "profile.json"]
    assert not list(out.parent.glob(".profile.staging-*"))
    data = json.loads((out / "profile.json").read_text(encoding="utf-8"))
    assert data["history"]["accounts"] == 150
    assert {e["event"] for e in data["events"]} == set(NAMES)
    html = (out / "profile.html").read_text(encoding="utf-8")
    assert "<script>alert" not in html and "<b>pro</b>" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert "Invoice &#34;Sent&#34; \U0001f389" in html
    for section in ("History", "Churn rate by month", "Usage frequency", "Events by reach"):
        assert section in html
    judged = [e for e in data["events"] if e["risk_ratio"] is not None]
    assert judged and all(e["ci_low"] <= e["risk_ratio"] <= e["ci_high"] for e in judged)
    assert data["activation_scan"][0]["event"] == INVOICE


@pytest.fixture(scope="module")
def initialised(nasty, tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("init") / "cfg" / "milestones.yaml"
    res = _invoke(
        "init", "--accounts", nasty["accounts"], "--events", nasty["events"], "--out", target
    )
    assert res.exit_code == 0, res.output
    return target


def test_init_writes_a_loadable_commented_config_with_quoted_names(nasty, initialised):
    target = initialised
    text = target.read_text(encoding="utf-8")
    assert "NOTHING IN THIS FILE IS FINAL" in text.splitlines()[2]
    assert set(yaml.safe_load(text)) == {"data", "retention", "milestones", "tracking"}
    cfg = load_config(target)
    named = set(cfg.configured_events())
    assert named and named <= set(NAMES)
    assert cfg.milestones.activation.event == INVOICE  # the invoices keep customers
    assert SCRIPT in cfg.milestones.setup.steps  # done first by everyone
    assert Path(cfg.data.events) == nasty["events"].resolve()
    # a line break or line separator in a name never reaches the file unescaped
    for line in text.splitlines():
        assert line == "" or line.lstrip().startswith("#") or ":" in line
    assert "\u2028" not in text


def test_init_keeps_an_existing_file_unless_forced(nasty, initialised):
    target = initialised
    before = target.read_text(encoding="utf-8")
    args = ["init", "--accounts", nasty["accounts"], "--events", nasty["events"], "--out", target]
    res = _invoke(*args)
    assert res.exit_code == 2
    assert "exists" in res.output and "--force" in res.output
    assert "Traceback" not in res.output
    assert target.read_text(encoding="utf-8") == before
    target.write_text("keep: me\n")
    res = _invoke(*args, "--force")
    assert res.exit_code == 0, res.output
    assert load_config(target).milestones.activation.event == INVOICE
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".milestones.yaml.")]
    folder = _invoke("init", "--accounts", "a", "--events", "e", "--out", target.parent)
    assert folder.exit_code == 2 and "is a folder" in folder.output


def test_profile_reads_a_configuration_with_a_column_mapping(nasty, tmp_path):
    accounts = nasty["accounts_frame"].rename(columns={"account_id": "org"})
    events = nasty["events_frame"].rename(columns={"account_id": "org", "occurred_at": "ts"})
    events["ts"] = (events["ts"] - pd.Timestamp(0)) // pd.Timedelta(seconds=1)  # epoch s
    accounts.to_parquet(tmp_path / "a.parquet", index=False)
    events.to_parquet(tmp_path / "e.parquet", index=False)
    config = {
        "data": {
            "accounts": "a.parquet",
            "events": "e.parquet",
            "columns": {"account_id": "org", "occurred_at": "ts"},
            "timestamps": {"occurred_at": "seconds"},
        },
        "retention": {"horizon_days": 120},
        "milestones": {
            "activation": {"event": INVOICE, "window_days": 45},
            "utilization": {"event": INVOICE},
        },
    }
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    res = _invoke("profile", "--config", path, "--out", tmp_path / "p")
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "p" / "profile.json").read_text(encoding="utf-8"))
    assert data["history"]["accounts"] == 150
    assert data["retention"]["window_days"] == 45  # the configured windows
    assert data["retention"]["horizon_days"] == 120
    assert "activation" in data["windows"]["configured"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--config", "c.yaml", "--accounts", "a.parquet"], "either --config"),
        (["--accounts", "a.parquet"], "--events"),
        (["--accounts", "missing.parquet", "--events", "missing.parquet"], "cannot read"),
    ],
)
def test_profile_argument_errors_exit_2(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    res = _invoke("profile", *args, "--out", tmp_path / "p")
    assert res.exit_code == 2
    assert message in res.output
    assert not (tmp_path / "p").exists()


def test_init_without_churn_dates_derives_churn_from_silence(nasty, tmp_path):
    accounts = nasty["accounts_frame"].drop(columns="churned_at")
    accounts.to_parquet(tmp_path / "a.parquet", index=False)
    target = tmp_path / "c.yaml"
    res = _invoke(
        "init", "--accounts", tmp_path / "a.parquet", "--events", nasty["events"], "-o", target
    )
    assert res.exit_code == 0, res.output
    assert load_config(target).retention.churn == "inactivity"
    assert "churn is derived from silence" in target.read_text(encoding="utf-8")


def test_init_reads_renamed_csv_columns_and_writes_the_mapping(nasty, tmp_path):
    """--column and --timestamps read a CSV export under its own names; the written file
    carries them as data.columns and data.timestamps, and the proposal is the same as on the
    contract-named Parquet."""
    accounts = nasty["accounts_frame"].rename(columns={"account_id": "org"})
    events = nasty["events_frame"].rename(
        columns={"account_id": "org", "occurred_at": "ts", "event": "name"}
    )
    events["ts"] = (events["ts"] - pd.Timestamp(0)) // pd.Timedelta(milliseconds=1)
    accounts.to_csv(tmp_path / "a.csv", index=False)
    events.to_csv(tmp_path / "e.csv", index=False)
    target = tmp_path / "c.yaml"
    mapping = ["--column", "account_id=org", "--column", "occurred_at=ts", "--column", "event=name"]
    res = _invoke(
        "init", "-a", tmp_path / "a.csv", "-e", tmp_path / "e.csv", "-o", target,
        *mapping, "--timestamps", "occurred_at=milliseconds",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    cfg = load_config(target)
    assert cfg.data.columns == {"account_id": "org", "occurred_at": "ts", "event": "name"}
    assert cfg.data.timestamps == {"occurred_at": "milliseconds"}
    # its own experiment and registered model: never compared with another data's champion
    assert (cfg.tracking.experiment, cfg.tracking.model_name) == (
        "milestones-c",
        "milestones-c-retention",
    )
    plain = tmp_path / "plain.yaml"
    res = _invoke("init", "-a", nasty["accounts"], "-e", nasty["events"], "-o", plain)
    assert res.exit_code == 0, res.output
    assert cfg.milestones.activation.event == load_config(plain).milestones.activation.event
    bad = _invoke(
        "init", "-a", tmp_path / "a.csv", "-e", tmp_path / "e.csv", "-o", tmp_path / "x.yaml",
        "--column", "acount_id=org",
    )  # fmt: skip
    assert bad.exit_code == 2 and "--column: unknown contract column 'acount_id'" in bad.output
    assert not (tmp_path / "x.yaml").exists()
    unmapped = _invoke(
        "init", "-a", tmp_path / "a.csv", "-e", tmp_path / "e.csv", "-o", tmp_path / "y.yaml"
    )
    assert unmapped.exit_code == 2 and "account_id" in unmapped.output
    assert not (tmp_path / "y.yaml").exists()


# ----------------------------------------------------------------------------- acceptance


def _majority_match(planted: dict[str, list[str]], proposed: dict[str, list[str]]) -> float:
    """Share of the planted features whose proposed group is their category's majority
    group (the majority groups of different categories must differ)."""
    group_of = {f: name for name, members in proposed.items() for f in members}
    agree, majorities = 0, []
    for features in planted.values():
        votes = Counter(group_of.get(f) for f in features)
        votes.pop(None, None)
        if not votes:
            continue
        majority, count = votes.most_common(1)[0]
        majorities.append(majority)
        agree += count
    assert len(majorities) == len(set(majorities)), "two categories share a group"
    return agree / sum(len(f) for f in planted.values())


@pytest.fixture(scope="module")
def demo_init(tmp_path_factory):
    from features.demo import write_demo

    folder = tmp_path_factory.mktemp("demo5000")
    data = write_demo(folder / "data", n_accounts=5000, seed=0)
    target = folder / "proposed.yaml"
    res = _invoke("init", "--accounts", data["accounts"], "--events", data["events"], "-o", target)
    assert res.exit_code == 0, res.output
    return {"folder": folder, "target": target, "text": target.read_text(encoding="utf-8")}


@pytest.mark.slow
def test_init_on_the_demo_proposes_the_planted_milestones(demo_init):
    from features.demo.world import ACTIVATION_EVENT, SETUP_TRUE

    cfg = load_config(demo_init["target"])
    m = cfg.milestones
    assert m.activation.event == ACTIVATION_EVENT
    assert set(SETUP_TRUE) <= set(m.setup.steps)
    planted = load_config(Path(__file__).parents[2] / "configs" / "demo.yaml")
    share = _majority_match(planted.milestones.maturity.categories, m.maturity.categories)
    assert share >= 0.8
    assert m.utilization.per_seat  # the demo's seats vary


@pytest.mark.slow
def test_the_proposed_config_runs_unchanged(demo_init, tmp_path, monkeypatch, prefect_harness):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    out = tmp_path / "run"
    res = _invoke("run", "--config", demo_init["target"], "--out", out)
    assert res.exit_code == 0, res.output
    assert (out / "thresholds.json").is_file() and (out / "report.html").is_file()
    assert demo_init["target"].read_text(encoding="utf-8") == demo_init["text"]


@pytest.mark.slow
@pytest.mark.spark
def test_the_profile_is_the_same_on_spark(nasty):
    """The same Ibis expressions give the same profile on DuckDB and on PySpark."""
    import shutil

    pytest.importorskip("pyspark")
    if shutil.which("java") is None:
        pytest.skip("Java is not installed: PySpark needs a Java runtime")
    from features import io
    from flows.steps.inputs import Inputs
    from flows.steps.profile import build_profile

    as_of = dt.datetime(2026, 6, 30)
    profiles = []
    for engine in ("duckdb", "spark"):
        con = io.connect(engine)
        acc, ev = io.read_inputs(
            con, io.Source(str(nasty["accounts"])), io.Source(str(nasty["events"]))
        )
        inputs = Inputs(con, io.typed_accounts(acc), io.typed_events(ev), as_of)
        profile = build_profile(inputs, {"source": "column"}, groups=True)
        profile.pop("generated_at")
        profiles.append(json.loads(json.dumps(profile), parse_float=lambda x: round(float(x), 9)))
    duck, spark = profiles
    assert spark == duck
