"""The backtest's measurements on small hand-made frames."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from models.backtest import (
    auc_against_baseline,
    calibration_deciles,
    horizon_months,
    measure_origin,
    origin_dates,
    outcome_lift,
    retained_after,
    setup_activation_lift,
    summarise,
    threshold_stability,
)

AS_OF = dt.datetime(2026, 6, 30, 12, 0)


def test_origins_step_back_from_the_newest_observed_origin_oldest_first():
    # the newest origin: 6 whole months before as_of, the first whose 180 days have passed
    got = origin_dates(AS_OF, origins=3, step_months=6, horizon_days=180)
    assert got == [
        dt.datetime(2024, 12, 30, 12, 0),
        dt.datetime(2025, 6, 30, 12, 0),
        dt.datetime(2025, 12, 30, 12, 0),
    ]
    # the default 3-month step keeps the oldest origin's history long
    assert origin_dates(AS_OF, origins=2, step_months=3, horizon_days=180) == [
        dt.datetime(2025, 9, 30, 12, 0),
        dt.datetime(2025, 12, 30, 12, 0),
    ]


def test_the_newest_origin_leaves_the_whole_horizon_before_as_of():
    for horizon in (1, 30, 31, 90, 180, 183, 365):
        months = horizon_months(AS_OF, horizon)
        newest = origin_dates(AS_OF, origins=1, step_months=1, horizon_days=horizon)[-1]
        assert newest + dt.timedelta(days=horizon) <= AS_OF, horizon
        # one month fewer would not leave it
        later = pd.Timestamp(AS_OF) - pd.DateOffset(months=months - 1)
        assert later + pd.Timedelta(days=horizon) > pd.Timestamp(AS_OF), horizon


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_origins_and_step_must_be_positive_integers(bad):
    with pytest.raises(ValueError, match="origins must be a positive integer"):
        origin_dates(AS_OF, origins=bad, step_months=6, horizon_days=30)
    with pytest.raises(ValueError, match="step_months must be a positive integer"):
        origin_dates(AS_OF, origins=1, step_months=bad, horizon_days=30)


def test_retained_after_reads_churn_against_origin_plus_horizon():
    accounts = pd.DataFrame(
        {
            "account_id": ["live", "gone_before", "gone_at_end", "gone_after", "gone_inside"],
            "churned_at": pd.to_datetime(
                [None, "2025-01-01", "2025-07-10", "2025-09-01", "2025-03-01"]
            ),
        }
    )
    got = retained_after(accounts, dt.datetime(2025, 1, 11), horizon_days=180)
    # origin + 180 days = 2025-07-10: a churn at that instant is still a customer then
    assert got.to_dict() == {
        "live": True,
        "gone_before": False,
        "gone_at_end": True,
        "gone_after": True,
        "gone_inside": False,
    }


def test_retained_after_needs_churned_at():
    with pytest.raises(ValueError, match="accounts is missing column 'churned_at'"):
        retained_after(pd.DataFrame({"account_id": ["a"]}), AS_OF, 30)


def test_lift_of_a_milestone_that_separates():
    # 10 reached, 9 retained; 10 not reached, 3 retained
    reached = [True] * 10 + [False] * 10
    retained = [1] * 9 + [0] + [1] * 3 + [0] * 7
    got = outcome_lift(reached, retained, min_group=5)
    assert got["n_reached"] == 10 and got["retained_reached"] == 9
    assert got["rate_reached"] == pytest.approx(0.9)
    assert got["rate_not_reached"] == pytest.approx(0.3)
    assert got["lift"] == pytest.approx(3.0)
    low, high = got["lift_ci"]
    # Katz: exp(log 3 +- 1.96 sqrt(1/9 - 1/10 + 1/3 - 1/10))
    se = np.sqrt(1 / 9 - 1 / 10 + 1 / 3 - 1 / 10)
    assert low == pytest.approx(3 * np.exp(-1.959964 * se), rel=1e-4)
    assert high == pytest.approx(3 * np.exp(1.959964 * se), rel=1e-4)
    assert low > 1 and got["excludes_one"] and got["enough_accounts"]


def test_lift_of_a_milestone_that_does_not_separate():
    reached = [True] * 8 + [False] * 8
    retained = [1, 1, 1, 1, 0, 0, 0, 0] * 2
    got = outcome_lift(reached, retained)
    assert got["lift"] == pytest.approx(1.0)
    assert got["lift_ci"][0] < 1 < got["lift_ci"][1]
    assert not got["excludes_one"]
    assert not got["enough_accounts"]  # 8 per side, below the default 20


def test_lift_with_nobody_reaching_has_no_value():
    got = outcome_lift([False] * 4, [1, 0, 1, 1])
    assert got["n_reached"] == 0 and got["lift"] is None
    assert got["lift_ci"] == [None, None] and not got["excludes_one"]


def test_lift_checks_its_inputs():
    with pytest.raises(ValueError, match="differ in length"):
        outcome_lift([True, False], [1, 0, 1])
    with pytest.raises(ValueError, match="retained must be binary"):
        outcome_lift([True, False], [1, 2])


def test_a_model_that_ranks_perfectly_beats_a_coin_toss_baseline():
    rng = np.random.default_rng(0)
    y = np.array([0, 1] * 50)
    perfect = y * 0.5 + 0.25
    coin = rng.uniform(size=y.size)
    got = auc_against_baseline(y, perfect, coin, n_bootstrap=50, random_state=1)
    assert got["auc_model"] == pytest.approx(1.0)
    assert 0.3 < got["auc_baseline"] < 0.7
    assert got["auc_difference_ci"][0] > 0 and got["beats_baseline"]
    assert got["brier_model"] == pytest.approx(0.0625)
    again = auc_against_baseline(y, perfect, coin, n_bootstrap=50, random_state=1)
    assert again == got  # same seed, same interval


def test_a_model_no_better_than_the_baseline_does_not_beat_it():
    y = np.array([0, 1] * 30)
    p = np.linspace(0.2, 0.8, y.size)
    got = auc_against_baseline(y, p, p, n_bootstrap=30, random_state=0)
    assert got["auc_difference"] == pytest.approx(0.0)
    assert not got["beats_baseline"]


def test_auc_of_a_single_outcome_does_not_exist():
    got = auc_against_baseline([1, 1, 1], [0.2, 0.5, 0.9], [0.5, 0.5, 0.5])
    assert got["auc_model"] is None and got["auc_difference_ci"] == [None, None]
    assert got["brier_baseline"] == pytest.approx(0.25)


def test_calibration_deciles_compare_expected_and_observed():
    p = [0.1, 0.9, 0.2, 0.8, 0.3, 0.7]
    y = [0, 1, 0, 1, 1, 0]
    got = calibration_deciles(y, p, n_bins=3)
    assert [r["n"] for r in got] == [2, 2, 2]
    assert [r["expected"] for r in got] == pytest.approx([0.15, 0.5, 0.85])
    assert [r["observed"] for r in got] == pytest.approx([0.0, 0.5, 1.0])
    assert got[1]["low"] == pytest.approx(0.3) and got[1]["high"] == pytest.approx(0.7)
    assert got[0]["gap"] == pytest.approx(-0.15)


def _live() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "account_id": ["a", "b", "c", "d", "e", "f"],
            "setup_complete": [True, True, True, False, False, None],
            "activated": [True, True, False, True, False, False],
            "retention_probability": [0.9, 0.8, 0.7, 0.4, 0.3, 0.2],
            "baseline_probability": [0.5] * 6,
        }
    )


def test_measure_origin_joins_the_real_outcome_by_account():
    retained = pd.Series({"f": False, "e": False, "d": False, "c": True, "b": True, "a": True})
    got = measure_origin(_live(), retained, n_bootstrap=20, random_state=0, min_group=1)
    assert got["accounts"] == 6 and got["retention_rate"] == pytest.approx(0.5)
    assert set(got["milestones"]) == {"setup", "activation"}  # only the flags present
    setup = got["milestones"]["setup"]
    assert (setup["n_reached"], setup["rate_reached"], setup["rate_not_reached"]) == (3, 1.0, 0.0)
    act = got["milestones"]["activation"]
    assert act["rate_reached"] == pytest.approx(2 / 3)
    assert act["rate_not_reached"] == pytest.approx(1 / 3)
    assert got["model"]["auc_model"] == pytest.approx(1.0)
    assert got["model"]["auc_baseline"] == pytest.approx(0.5)
    assert len(got["calibration"]["model"]) == 6


def test_measure_origin_needs_an_outcome_for_every_live_account():
    retained = pd.Series({"a": True, "b": False})
    with pytest.raises(ValueError, match="no outcome for 4 accounts"):
        measure_origin(_live(), retained)


def _thresholds(act, act_ci, steps, util, cats, need) -> dict:
    return {
        "setup": {"steps": steps},
        "activation": {"threshold": act, "ci": act_ci},
        "utilization": {"threshold": util, "ci": [util - 1, util + 1]},
        "maturity": {
            "min_categories": need,
            "categories": {n: {"threshold": t} for n, t in cats.items()},
        },
    }


def test_threshold_stability_spreads_and_step_agreement():
    got = threshold_stability(
        {
            "2025-01-01": _thresholds(20, [18, 22], ["a", "b"], 10.0, {"x": 2, "y": 1}, 3),
            "2025-07-01": _thresholds(24, [23, 26], ["b", "a"], 11.0, {"x": 2, "y": 2}, 3),
        }
    )
    act = got["activation"]
    assert act["by_origin"] == {"2025-01-01": 20, "2025-07-01": 24}
    assert act["spread"] == 4 and act["relative_spread"] == pytest.approx(4 / 22)
    assert act["intervals_overlap"] is False  # [18, 22] and [23, 26]
    assert got["utilization"]["intervals_overlap"] is True
    assert got["setup"]["same"] and got["setup"]["in_every_origin"] == ["a", "b"]
    assert got["maturity"]["min_categories"]["spread"] == 0
    assert got["maturity"]["categories"]["y"]["by_origin"] == {"2025-01-01": 1, "2025-07-01": 2}


def test_threshold_stability_names_steps_selected_only_sometimes():
    got = threshold_stability(
        {
            "o1": _thresholds(20, [18, 22], ["a", "b"], 10.0, {}, 1),
            "o2": _thresholds(20, [18, 22], ["a"], 10.0, {}, 1),
        }
    )
    assert not got["setup"]["same"]
    assert got["setup"]["in_every_origin"] == ["a"] and got["setup"]["in_some_origins"] == ["b"]


def test_summary_requires_every_origin_to_exclude_one():
    ok = {"lift": 2.0, "lift_ci": [1.5, 2.5], "excludes_one": True}
    weak = {"lift": 1.1, "lift_ci": [0.9, 1.3], "excludes_one": False}
    model = {"auc_model": 0.8, "auc_baseline": 0.6, "beats_baseline": True}
    origins = [
        {"origin": "o1", "measured": {"milestones": {"setup": ok, "maturity": ok}, "model": model}},
        {
            "origin": "o2",
            "measured": {"milestones": {"setup": ok, "maturity": weak}, "model": model},
        },
    ]
    got = summarise(origins)
    assert got["milestones"]["setup"]["excludes_one_at_every_origin"]
    assert not got["milestones"]["maturity"]["excludes_one_at_every_origin"]
    assert got["milestones"]["maturity"]["lift"] == {"o1": 2.0, "o2": 1.1}
    assert got["model"]["beats_baseline_at_every_origin"]


def test_without_a_model_only_the_milestones_are_measured():
    live = _live().drop(columns=["baseline_probability"])
    retained = pd.Series(dict(zip("abcdef", [True, True, True, False, False, False], strict=True)))
    got = measure_origin(live, retained, min_group=1)
    assert got["model"] is None and got["calibration"] is None
    assert got["milestones"]["setup"]["lift"] is None  # nobody without setup retained: rr 1/0
    assert got["milestones"]["activation"]["lift"] == pytest.approx(2.0)
    summary = summarise([{"origin": "o", "measured": got}])
    assert summary["model"]["auc_model"] == {"o": None}
    assert not summary["model"]["beats_baseline_at_every_origin"]


def _tenure() -> pd.DataFrame:
    # origin 2025-06-30, setup window 21 days, activation window 60 days
    return pd.DataFrame(
        {
            "account_id": ["in1", "in2", "in3", "in4", "too_new", "too_old", "not_live"],
            "signup_date": pd.to_datetime(
                [
                    "2025-06-09",  # 21 days before: the setup window has just closed
                    "2025-05-15",
                    "2025-05-01",  # 60 days before: activation window closed -> out
                    "2025-05-20",
                    "2025-06-20",  # 10 days: setup window still open -> out
                    "2025-01-01",
                    "2025-05-20",
                ]
            ),
            "setup__a": [True, True, True, False, True, True, True],
            "setup__b": [True, True, True, True, True, False, True],
            "activation_count": [25, 30, 40, 3, 30, 0, 30],
        }
    )


def test_setup_is_checked_on_the_activation_of_accounts_in_their_activation_window():
    thresholds = {"setup": {"steps": ["a", "b"]}, "activation": {"threshold": 20}}
    live = ["in1", "in2", "in3", "in4", "too_new", "too_old"]
    got = setup_activation_lift(
        _tenure(),
        live,
        dt.datetime(2025, 6, 30, 23, 59),
        thresholds,
        setup_window_days=21,
        activation_window_days=60,
        min_group=1,
    )
    # the cohort: in1, in2 (steps done, activated) and in4 (not done, not activated)
    assert got["n"] == 3 and got["n_reached"] == 2
    assert (got["rate_reached"], got["rate_not_reached"]) == (1.0, 0.0)
    assert got["outcome"] == "activation"
    assert got["cohort"] == "live accounts that signed up from 2025-05-02 to 2025-06-09"


def test_setup_check_without_selected_steps_is_none():
    got = setup_activation_lift(
        _tenure(),
        ["in1"],
        dt.datetime(2025, 6, 30),
        {"setup": {"steps": []}, "activation": {"threshold": 20}},
        setup_window_days=21,
        activation_window_days=60,
    )
    assert got is None


def test_summary_judges_setup_on_activation_when_checked():
    weak = {"lift": 1.03, "lift_ci": [0.99, 1.07], "excludes_one": False}
    strong = {"lift": 1.8, "lift_ci": [1.3, 2.4], "excludes_one": True}
    setup = {**weak, "checked": "activation", "activation": strong}
    origins = [{"origin": "o", "measured": {"milestones": {"setup": setup}, "model": None}}]
    got = summarise(origins)["milestones"]["setup"]
    assert got["outcome"] == "activation" and got["lift"] == {"o": 1.8}
    assert got["excludes_one_at_every_origin"]
