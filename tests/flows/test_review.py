"""The framework review: its computations on literal frames, then two consecutive demo runs
through the CLI, Prefect and MLflow, the second on data whose utilization and activation
thresholds moved (every ``conversation_closed`` event logged six times).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from models.review import (
    cohort_review,
    compare_thresholds,
    kaplan_meier,
    milestone_reached,
    population_stability,
    prevalence_drift,
    retention_curves,
    review_warnings,
)

THRESHOLDS = {
    "setup": {"threshold": 1, "ci": [1, 2], "steps": ["install"]},
    "activation": {"threshold": 5, "ci": [4, 6]},
    "utilization": {"threshold": 2.0, "ci": [1.5, 2.5]},
    "maturity": {
        "threshold": 1,
        "ci": [1, 2],
        "min_categories": 1,
        "categories": {"reporting": {"threshold": 2, "ci": [1, 2]}},
    },
}


def _tenure() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "account_id": ["a", "b", "c", "d", "e", "f"],
            "signup_date": pd.to_datetime(["2025-01-01"] * 3 + ["2025-02-01"] * 3),
            "churned_at": pd.to_datetime(
                [None, "2025-06-15", None, "2025-05-01", None, "2025-04-15"]
            ),
            "window_end": pd.to_datetime(["2025-03-02"] * 3 + ["2025-04-02"] * 3),
            "window_closed": [True] * 6,
            "labelled": [True] * 6,
            "retained": [1, 0, 1, 0, 1, 0],
            "activation_count": [9, 1, 7, 2, 6, 3],
            "setup__install": [True, False, True, False, True, True],
        }
    )


def _snapshots() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "account_id": ["a", "b", "c", "a", "c", "e"],
            "snapshot_date": pd.to_datetime(["2025-03-31"] * 3 + ["2025-04-30"] * 3),
            "censored": [False] * 6,
            "retained": [1, 0, 1, 1, 1, 1],
            "utilization_rate": [3.0, 0.5, 2.0, 3.5, 1.0, 2.2],
            "maturity__reporting": [2, 0, 3, 2, 1, 2],
        }
    )


def test_milestone_reached_applies_each_rule():
    t, s = _tenure(), _snapshots()
    assert milestone_reached(t, THRESHOLDS, "setup").tolist() == [
        True,
        False,
        True,
        False,
        True,
        True,
    ]
    assert milestone_reached(t, THRESHOLDS, "activation").tolist() == [
        True,
        False,
        True,
        False,
        True,
        False,
    ]
    assert milestone_reached(s, THRESHOLDS, "utilization").tolist() == [
        True,
        False,
        True,
        True,
        False,
        True,
    ]
    assert milestone_reached(s, THRESHOLDS, "maturity").tolist() == [
        True,
        False,
        True,
        True,
        False,
        True,
    ]
    assert milestone_reached(t, {**THRESHOLDS, "setup": {"steps": []}}, "setup") is None
    with pytest.raises(ValueError, match="milestone must be one of"):
        milestone_reached(t, THRESHOLDS, "loyalty")


def test_kaplan_meier_matches_a_hand_computation():
    # durations 1, 2 (censored), 3, 4: S(1) = 3/4, S(3) = 3/4 * 1/2
    share, at_risk = kaplan_meier([1, 2, 3, 4], [True, False, True, False], [0, 1, 2.5, 3, 5])
    assert share.tolist() == pytest.approx([1.0, 0.75, 0.75, 0.375, 0.375])
    assert at_risk.tolist() == [4, 4, 2, 2, 0]
    with pytest.raises(ValueError, match="same length"):
        kaplan_meier([1, 2], [True], [0])


def test_retention_curves_follow_churn_from_the_anchor():
    curves = retention_curves(
        _tenure(), _snapshots(), THRESHOLDS, as_of="2025-12-31", setup_window_days=21, min_at_risk=1
    )
    act = curves["activation"]
    assert act["reached"]["n"] == 3 and act["not_reached"]["n"] == 3
    assert act["reached"]["share"][-1] == 1.0  # nobody who activated churned
    assert act["not_reached"]["share"][act["not_reached"]["months"].index(3)] == pytest.approx(
        1 / 3, abs=1e-4
    )
    assert set(curves) == {"setup", "activation", "utilization", "maturity"}


def test_cohort_review_uses_the_newest_periods_and_marks_small_groups():
    review = cohort_review(_tenure(), _snapshots(), THRESHOLDS, periods=1, min_group=1)
    util = review["utilization"]
    assert util["cohort"] == ["2025-04-30"]
    # a and c were seen on 2025-03-31, the derivation period: only e is new in the review
    assert (util["n_reached"], util["n_not_reached"]) == (1, 0)
    assert util["derivation_period"]["to"] == "2025-03-31"
    assert util["review_period"] == {
        "from": "2025-04-30",
        "to": "2025-04-30",
        "rows": 1,
        "accounts": 1,
    }
    act = review["activation"]
    assert (
        act["cohort"] == ["2025-04"]
        and act["rate_reached"] == 1.0
        and act["rate_not_reached"] == 0.0
    )
    assert review["setup"]["checked"] == "activation"
    small = cohort_review(_tenure(), _snapshots(), THRESHOLDS, periods=1, min_group=20)
    assert small["utilization"]["enough_accounts"] is False
    low = {"utilization": {**small["utilization"], "lift": 0.5}}
    assert review_warnings(low, None, 1.05) == []  # too few accounts to judge
    low["utilization"]["enough_accounts"] = True
    assert [w["kind"] for w in review_warnings(low, None, 1.05)] == ["low_lift"]


def test_population_stability_is_zero_for_equal_shares_and_grows_with_drift():
    assert population_stability([0.3, 0.7], [0.3, 0.7]) == pytest.approx(0.0)
    # (0.5 - 0.3) ln(0.5 / 0.3) + (0.5 - 0.7) ln(0.5 / 0.7)
    assert population_stability([0.3, 0.7], [0.5, 0.5]) == pytest.approx(0.1695, abs=1e-4)
    rows = prevalence_drift(
        pd.DataFrame({"feature": ["x", "y", "old"], "prevalence": [0.3, 0.5, 0.2]}),
        pd.DataFrame({"feature": ["x", "y", "new"], "prevalence": [0.8, 0.5, 0.1]}),
    )
    assert rows[0]["feature"] == "x" and rows[0]["band"] == "major"
    assert {r["feature"]: r["band"] for r in rows}["y"] == "stable"
    assert {r["feature"]: r["band"] for r in rows[2:]} == {"new": "new", "old": "gone"}


def test_a_threshold_outside_the_previous_interval_is_a_warning():
    moved = json.loads(json.dumps(THRESHOLDS))
    moved["activation"]["threshold"] = 15
    moved["setup"]["steps"] = ["install", "invite"]
    rows = compare_thresholds(THRESHOLDS, moved)
    by = {r["milestone"]: r for r in rows}
    assert by["activation"]["outside_previous_ci"] is True and by["activation"]["change"] == 10
    assert by["utilization"]["outside_previous_ci"] is False
    assert by["setup"]["steps_added"] == ["invite"]
    assert "maturity.reporting" in by
    warnings = review_warnings({}, rows, 1.05)
    assert [(w["kind"], w["milestone"]) for w in warnings] == [("threshold_moved", "activation")]
    assert "from 5 to 15" in warnings[0]["message"] and "4 to 6" in warnings[0]["message"]


def test_review_tags_name_the_warnings():
    from flows.store.tracking import review_tags

    tags = review_tags(
        {
            "status": "warning",
            "previous": {"run_id": "r1"},
            "warnings": [
                {"kind": "threshold_moved", "milestone": "activation", "message": "m1"},
                {"kind": "low_lift", "milestone": "maturity", "message": "m2"},
            ],
        }
    )
    assert tags["review_status"] == "warning" and tags["review_warnings"] == "2"
    assert tags["review_warning"] == "m1; m2" and tags["review_compared_with"] == "r1"
    assert tags["review_warning_threshold_moved"] == "activation"


# ----------------------------------------------------------------------------- two demo runs

FAST = {
    "models": (
        "  row_budget: 3000\n  n_estimators: 30\n  permutation_repeats: 2\n  test_snapshots: 2"
    ),
    "thresholds": "  bootstrap: 30",
    "snapshots": "  max_snapshots: 18",  # 12 labelled month ends: a 180-day gap and a test date
}
_RUNS: dict = {}


def _shifted_events(src: str, dst: Path, copies: int = 6) -> Path:
    """The events with every conversation_closed logged ``copies`` times (seconds apart)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    events = pq.read_table(src)
    closed = events.filter(pc.equal(events["event"], "conversation_closed"))
    col = events.schema.get_field_index("occurred_at")
    extra = [
        closed.set_column(
            col, "occurred_at", pc.add(closed["occurred_at"], pa.scalar(k, pa.duration("s")))
        ).cast(events.schema)
        for k in range(1, copies)
    ]
    pq.write_table(pa.concat_tables([events, *extra]), dst)
    return dst


def consecutive_runs(small_demo: dict, tmp_path_factory) -> dict:
    """Two runs into one MLflow store: the demo, then the demo with shifted thresholds.

    Made once per session and shared with the report's browser test.
    """
    if _RUNS:
        return _RUNS
    from conftest import demo_config_text
    from typer.testing import CliRunner

    from flows.cli import app

    tmp = tmp_path_factory.mktemp("review")
    store = f"sqlite:///{tmp / 'mlflow.db'}"
    shifted = _shifted_events(small_demo["events"], tmp / "events_shifted.parquet")
    runs = []
    for name, events in (("first", small_demo["events"]), ("second", str(shifted))):
        cfg = tmp / f"{name}.yaml"
        cfg.write_text(demo_config_text(small_demo["accounts"], events, store, **FAST))
        res = CliRunner().invoke(app, ["run", "--config", str(cfg), "--out", str(tmp / name)])
        assert res.exit_code == 0, res.output + str(res.exception)
        run_id = re.search(r"mlflow run: (\w+)", res.output).group(1)
        runs.append({"cfg": cfg, "out": tmp / name, "run_id": run_id})
    _RUNS.update(tmp=tmp, store=store, first=runs[0], second=runs[1])
    return _RUNS


@pytest.fixture(scope="module")
def runs(small_demo, tmp_path_factory, prefect_harness):
    return consecutive_runs(small_demo, tmp_path_factory)


def _tags(store: str, run_id: str) -> dict:
    import mlflow

    return mlflow.MlflowClient(tracking_uri=store).get_run(run_id).data.tags


@pytest.mark.slow
def test_first_run_has_no_champion_to_compare_with(runs):
    review = json.loads((runs["first"]["out"] / "review.json").read_text())
    assert review["previous"] is None
    assert not [w for w in review["warnings"] if w["kind"] == "threshold_moved"]
    assert set(review["cohort"]) == {"setup", "activation", "utilization", "maturity"}
    curves = json.loads((runs["first"]["out"] / "retention_curves.json").read_text())
    assert {"activation", "utilization", "maturity"} <= set(curves)
    tags = _tags(runs["store"], runs["first"]["run_id"])
    assert tags["review_compared_with"] == "none"
    assert tags["review_status"] == review["status"]


@pytest.mark.slow
def test_second_run_on_shifted_data_warns_that_thresholds_moved(runs):
    first = json.loads((runs["first"]["out"] / "thresholds.json").read_text())
    second = json.loads((runs["second"]["out"] / "thresholds.json").read_text())
    assert second["utilization"]["threshold"] > first["utilization"]["ci"][1]

    review = json.loads((runs["second"]["out"] / "review.json").read_text())
    prev = review["previous"]
    assert prev["run_id"] == runs["first"]["run_id"]
    util = next(r for r in prev["thresholds"] if r["milestone"] == "utilization")
    assert util["previous"] == pytest.approx(first["utilization"]["threshold"])
    assert util["outside_previous_ci"] is True
    moved = [w for w in review["warnings"] if w["kind"] == "threshold_moved"]
    assert "utilization" in {w["milestone"] for w in moved}
    assert review["status"] == "warning"
    assert {r["model"] for r in prev["auc"]} == {"gbm", "rf", "baseline"}
    assert all(r["change"] is not None for r in prev["auc"])
    drift = {r["feature"]: r for r in prev["prevalence_drift"]}
    assert drift["conversation_closed"]["psi"] == pytest.approx(0.0, abs=1e-9)  # same users

    tags = _tags(runs["store"], runs["second"]["run_id"])
    assert tags["review_status"] == "warning"
    assert "utilization" in tags["review_warning_threshold_moved"]
    assert tags["review_compared_with"] == runs["first"]["run_id"]

    page = (runs["second"]["out"] / "report.html").read_text()
    assert "outside the previous interval" in page and 'role="alert"' in page


@pytest.mark.slow
def test_report_command_rebuilds_a_past_runs_report(runs, tmp_path):
    from typer.testing import CliRunner

    from flows.cli import app

    target = tmp_path / "rebuilt.html"
    res = CliRunner().invoke(
        app,
        [
            "report",
            "--run",
            runs["first"]["run_id"],
            "--config",
            str(runs["first"]["cfg"]),
            "--out",
            str(target),
        ],
    )
    assert res.exit_code == 0, res.output + str(res.exception)
    page = target.read_text()
    assert runs["first"]["run_id"] in page
    thr = json.loads((runs["first"]["out"] / "thresholds.json").read_text())
    assert thr["activation"]["rule"] in page
    assert "Model promotion" in page  # promotion.json is an artifact, written after the report

    missing = CliRunner().invoke(
        app,
        [
            "report",
            "--run",
            "0" * 32,
            "--config",
            str(runs["first"]["cfg"]),
            "--out",
            str(tmp_path),
        ],
    )
    assert missing.exit_code == 2 and "not found" in missing.output
