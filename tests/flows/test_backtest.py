"""`milestones backtest`: the trimming at an origin, the command, and the demo's planted
milestones measured out of sample."""

from __future__ import annotations

import datetime as dt
import json

import ibis
import pandas as pd
import pytest
from conftest import FAST, demo_config_text
from typer.testing import CliRunner

from flows.cli import app
from flows.steps.backtest import trim_at

ORIGIN = dt.datetime(2025, 6, 30, 12, 0)


def _tables():
    con = ibis.duckdb.connect()
    accounts = pd.DataFrame(
        {
            "account_id": ["early", "churned_before", "churned_after", "late"],
            "signup_at": pd.to_datetime(
                [
                    "2025-01-01 00:00:00",
                    "2025-02-01 00:00:00",
                    "2025-03-01 00:00:00",
                    "2025-06-30 12:00:01",
                ]
            ),
            "churned_at": pd.to_datetime([None, "2025-05-01", "2025-08-01", None]),
            "seats": [1, 2, 3, 4],
            "plan": ["a", "b", "a", "b"],
        }
    )
    events = pd.DataFrame(
        {
            "account_id": ["early", "early", "churned_after", "late"],
            "event": ["x", "x", "y", "x"],
            "occurred_at": pd.to_datetime(
                [
                    "2025-06-30 12:00:00",
                    "2025-06-30 12:00:01",
                    "2025-04-01 00:00:00",
                    "2025-07-01 00:00:00",
                ]
            ),
            "quantity": [1.0, 1.0, 1.0, 1.0],
        }
    )
    return con, con.create_table("a", accounts), con.create_table("e", events)


def test_trimming_keeps_only_what_was_known_at_the_origin():
    _con, accounts, events = _tables()
    acc, ev = trim_at(accounts, events, ORIGIN)
    acc = acc.to_pandas().set_index("account_id").sort_index()
    ev = ev.to_pandas()
    # signed up after the origin (by one second): not an account yet
    assert list(acc.index) == ["churned_after", "churned_before", "early"]
    # a churn after the origin is not known yet; one before it is kept
    assert pd.isna(acc.loc["churned_after", "churned_at"])
    assert acc.loc["churned_before", "churned_at"] == pd.Timestamp("2025-05-01")
    assert pd.isna(acc.loc["early", "churned_at"])
    # the other columns are untouched, in their order
    assert list(acc.reset_index().columns) == list(accounts.columns)
    assert acc.loc["churned_after", "seats"] == 3
    # events up to the origin instant, none after it
    assert sorted(ev["occurred_at"].astype(str)) == ["2025-04-01 00:00:00", "2025-06-30 12:00:00"]


def test_trimming_at_an_aware_or_date_origin_is_utc():
    _con, accounts, events = _tables()
    aware = dt.datetime(2025, 6, 30, 14, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    _, ev = trim_at(accounts, events, aware)  # 12:00 UTC
    assert ev.count().execute() == 2
    _, ev = trim_at(accounts, events, dt.date(2025, 6, 30))  # midnight: before both
    assert ev.count().execute() == 1


@pytest.fixture()
def demo_config(small_demo, tmp_path):
    cfg = tmp_path / "demo.yaml"
    cfg.write_text(
        demo_config_text(
            small_demo["accounts"],
            small_demo["events"],
            f"sqlite:///{tmp_path / 'mlflow.db'}",
            **FAST,
        )
    )
    return cfg


def test_a_history_too_short_for_an_origin_exits_2_saying_what_to_do(demo_config, tmp_path, capfd):
    out = tmp_path / "bt"
    # the oldest of eight origins three months apart lies 27 months before as_of: before the
    # demo's first account
    res = CliRunner().invoke(
        app,
        ["backtest", "--config", str(demo_config), "--out", str(out), "--origins", "8"],
    )
    assert res.exit_code == 2, res.output
    err = capfd.readouterr().err + res.output
    assert "at the backtest origin" in err and "se fewer --origins" in err
    assert "Traceback" not in err
    assert not out.exists()


def test_backtest_help_explains_the_options():
    res = CliRunner().invoke(app, ["backtest", "--help"])
    assert res.exit_code == 0
    for words in ("--origins", "--step-months", "backtest.json", "horizon"):
        assert words in res.output


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> dict:
    """The demo at 5,000 accounts (half its default size; 24 months, seed 0) backtested at
    the default two origins, 9 and 6 months before as_of. About a minute and a half on two cores."""
    from features.demo import write_demo

    data = tmp_path_factory.mktemp("demo-5000")
    demo = write_demo(data, n_accounts=5000, seed=0)
    tmp = tmp_path_factory.mktemp("backtest")
    cfg = tmp / "demo.yaml"
    cfg.write_text(
        demo_config_text(demo["accounts"], demo["events"], f"sqlite:///{tmp / 'mlflow.db'}")
    )
    res = CliRunner().invoke(app, ["backtest", "--config", str(cfg), "--out", str(tmp / "bt")])
    assert res.exit_code == 0, res.output
    return {"out": tmp / "bt", "tmp": tmp, "truth": json.loads((data / "truth.json").read_text())}


@pytest.mark.slow
def test_the_planted_milestones_separate_out_of_sample_at_two_origins(planted):
    run = planted
    result = json.loads((run["out"] / "backtest.json").read_text())
    assert [o["origin"] for o in result["origins"]] == ["2025-09-29", "2025-12-29"]
    assert not (run["tmp"] / "mlflow.db").exists()  # nothing tracked, no champion moved
    for name in ("setup", "activation", "utilization", "maturity"):
        block = result["summary"]["milestones"][name]
        assert len(block["lift_ci"]) == 2, name
        for origin, (low, high) in block["lift_ci"].items():
            assert low > 1, f"{name} at {origin}: lift interval {low:.3f}-{high:.3f}"
        assert block["excludes_one_at_every_origin"]
    assert result["summary"]["milestones"]["setup"]["outcome"] == "activation"
    # the planted activation threshold is found at every origin
    planted_threshold = run["truth"]["activation"]["threshold"]
    for origin, (low, high) in result["stability"]["activation"]["ci"].items():
        assert low <= planted_threshold <= high, origin
    # the usage model ranks the real outcome better than plan and seats at both origins
    for origin in result["origins"]:
        model = origin["measured"]["model"]
        assert model is not None and model["auc_model"] > model["auc_baseline"] + 0.05, origin
    page = (run["out"] / "backtest.html").read_text()
    assert "Threshold stability" in page and result["origins"][0]["origin"] in page


def test_the_page_escapes_names_and_says_when_an_origin_has_no_model():
    from flows.report.backtest import render_backtest
    from models.backtest import measure_origin, summarise, threshold_stability

    live = pd.DataFrame(
        {
            "account_id": list("abcdef"),
            "activated": [True, True, True, False, False, False],
            "retention_probability": [0.9, 0.8, 0.7, 0.4, 0.3, 0.2],
            "baseline_probability": [0.5, 0.6, 0.4, 0.5, 0.6, 0.4],
        }
    )
    retained = pd.Series(dict(zip("abcdef", [1, 1, 0, 1, 0, 0], strict=True)))
    thresholds = {
        "setup": {"steps": ["<b>step</b>"]},
        "activation": {"threshold": 20, "ci": [18, 22]},
        "utilization": {"threshold": 9.5, "ci": [8, 11]},
        "maturity": {"min_categories": 2, "categories": {"<script>x</script>": {"threshold": 2}}},
    }
    origins = [
        {
            "origin": "2025-06-30",
            "measured": measure_origin(live.iloc[:, :2], retained, n_bootstrap=10),
            "test_metrics": None,
            "untrained": "not enough labelled history to train",
        },
        {
            "origin": "2025-12-31",
            "measured": measure_origin(live, retained, n_bootstrap=10, random_state=0),
            "test_metrics": {"gbm": {"roc_auc": 0.7}},
            "untrained": None,
        },
    ]
    result = {
        "as_of": "2026-06-30 00:00:00",
        "engine": "duckdb",
        "seed": 42,
        "horizon_days": 180,
        "step_months": 6,
        "confidence": 0.95,
        "bootstrap": 10,
        "origins": origins,
        "stability": threshold_stability({o["origin"]: thresholds for o in origins}),
        "summary": summarise(origins),
    }
    page = render_backtest(result)
    assert "<script>x</script>" not in page and "&lt;script&gt;x&lt;/script&gt;" in page
    assert "<b>step</b>" not in page and "&lt;b&gt;step&lt;/b&gt;" in page
    assert "no model</span> not enough labelled history to train" in page
    assert "2025-06-30: no model" in page  # the summary line
    assert page.count("<details") == 1  # calibration only where a model scored


@pytest.mark.slow
def test_same_seed_same_backtest(demo_config, tmp_path):
    """The small demo (400 accounts) backtested twice at one origin: the same files."""
    for name in ("first", "second"):
        out = tmp_path / name
        args = ["backtest", "--config", str(demo_config), "--out", str(out), "--origins", "1"]
        res = CliRunner().invoke(app, args)
        assert res.exit_code == 0, res.output
    for file in ("backtest.json", "backtest.html"):
        assert (tmp_path / "first" / file).read_bytes() == (tmp_path / "second" / file).read_bytes()
    assert not (tmp_path / "mlflow.db").exists()
