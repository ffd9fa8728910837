"""The data's verdict (issue 13): milestone statuses, usage against the plan-and-seats
baseline, the candidates withheld, the stage and next step that skip unconfirmed milestones,
and the cut between the rows that derive the thresholds and the cohort that reviews them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_scoring import AS_OF, THRESHOLDS, frames, score_accounts

from models.cohorts import derivation_rows, split_cohorts
from models.verdict import (
    assign_statuses,
    gating_milestones,
    milestone_status,
    usage_vs_baseline,
    verdict_lines,
    withhold_candidates,
)

STEP = {
    "kind": "step",
    "direction": "higher_at_or_above",
    "rate_at_or_above": 0.9,
    "rate_below": 0.7,
    "p_value": 0.005,
    "step_vs_trend": {"p_value": 0.01},
}


def _block(threshold=20, ci=(18, 22), pinned=False, **evidence):
    return {
        "threshold": threshold,
        "ci": list(ci),
        "pinned": pinned,
        "evidence": {**STEP, **evidence},
    }


def test_a_step_with_a_narrow_interval_is_confirmed():
    status, reason = milestone_status("activation", _block())
    assert status == "confirmed"
    assert "a step at 20" in reason and "90% at or above 20 against 70% below" in reason


@pytest.mark.parametrize(
    ("block", "words"),
    [
        (_block(kind="no_signal", p_value=0.4), "no signal"),
        (_block(kind="trend_only", step_vs_trend={"p_value": 0.3}), "trend only"),
        (_block(direction="lower_at_or_above"), "lower above the cut"),
        (_block(threshold=2.42, ci=(0.9, 6.1)), "too wide to act on"),
        (_block(threshold=3, ci=(0, 4)), "too wide to act on"),
        (_block(threshold=None, ci=(None, None)), "no cut"),
    ],
)
def test_what_the_data_do_not_show_is_unconfirmed_with_its_reason(block, words):
    status, reason = milestone_status("utilization", block)
    assert status == "unconfirmed"
    assert words in reason


def test_a_pin_is_pinned_whatever_the_evidence():
    block = _block(kind="no_signal", pinned=True, pinned_within_ci=False)
    assert milestone_status("activation", block) == (
        "pinned",
        "set in the configuration; it lies outside the data's own interval",
    )


def test_setup_follows_activation_and_its_own_selection():
    setup = {"steps": ["install"], "ci": [1, 1], "pinned": False, "evidence": {}}
    assert milestone_status("setup", setup, activation_status="confirmed")[0] == "confirmed"
    status, reason = milestone_status("setup", setup, activation_status="unconfirmed")
    assert status == "unconfirmed" and "do not confirm activation" in reason
    none = {**setup, "steps": [], "ci": [0, 0]}
    assert milestone_status("setup", none, activation_status="confirmed")[0] == "unconfirmed"
    unsure = {**setup, "ci": [0, 2]}
    assert milestone_status("setup", unsure, activation_status="confirmed")[0] == "unconfirmed"


def test_assign_statuses_marks_every_milestone_and_category_and_keeps_the_input():
    thresholds = {
        "setup": {"steps": ["install"], "ci": [1, 1], "pinned": False, "evidence": {}},
        "activation": _block(kind="no_signal"),
        "utilization": _block(threshold=10.0, ci=(9.0, 11.0)),
        "maturity": {
            **_block(threshold=3, ci=(2, 3)),
            "categories": {"x": _block(threshold=2, ci=(1, 4)), "y": _block(2, (2, 2))},
        },
    }
    out = assign_statuses(thresholds)
    assert "status" not in thresholds["activation"]  # a new dict
    assert list(out) == list(thresholds)
    assert {n: out[n]["status"] for n in out} == {
        "setup": "unconfirmed",  # derived against an unconfirmed activation
        "activation": "unconfirmed",
        "utilization": "confirmed",
        "maturity": "confirmed",
    }
    assert out["maturity"]["categories"]["x"]["status"] == "unconfirmed"
    assert out["maturity"]["categories"]["y"]["status"] == "confirmed"
    assert gating_milestones(out) == ["utilization", "maturity"]
    assert gating_milestones(THRESHOLDS) == ["setup", "activation", "utilization", "maturity"]


def _outcomes(n_accounts=400, rows=3, seed=0):
    rng = np.random.default_rng(seed)
    accounts = np.repeat(np.arange(n_accounts), rows)
    plan = np.repeat(rng.integers(0, 3, n_accounts), rows)
    usage = np.repeat(rng.normal(size=n_accounts), rows)
    return rng, accounts, plan, usage


def test_usage_beats_the_baseline_only_when_it_adds_information():
    rng, accounts, plan, usage = _outcomes()
    base = 0.5 + 0.1 * plan
    # retention follows plan only: the usage model's extra column is noise
    y = (rng.random(accounts.size) < base).astype(int)
    noisy = base + 0.05 * rng.normal(size=accounts.size)
    plain = usage_vs_baseline(y, noisy, base, accounts, n_bootstrap=100, random_state=1)
    assert plain["beats"] is False
    assert plain["ci"][0] < 0 < plain["ci"][1] or plain["ci"][1] <= 0
    assert plain["n_accounts"] == 400 and plain["n_rows"] == 1200

    # retention follows usage as well: the usage model ranks better
    p = 1 / (1 + np.exp(-(2 * usage + plan - 1)))
    y = (rng.random(accounts.size) < p).astype(int)
    informed = usage_vs_baseline(y, p, base, accounts, n_bootstrap=100, random_state=1)
    assert informed["beats"] is True and informed["ci"][0] > 0
    assert informed["auc_difference"] == pytest.approx(
        informed["auc_usage"] - informed["auc_baseline"]
    )
    again = usage_vs_baseline(y, p, base, accounts, n_bootstrap=100, random_state=1)
    assert again == informed  # same data and seed, same interval

    single = usage_vs_baseline(np.ones(4), [0.1, 0.2, 0.3, 0.4], [0.5] * 4)
    assert single["beats"] is False and "one outcome" in single["note"]
    with pytest.raises(ValueError, match="same length"):
        usage_vs_baseline([0, 1], [0.5], [0.5, 0.5])


def test_no_feature_is_a_candidate_when_usage_does_not_beat_the_baseline():
    table = pd.DataFrame(
        {
            "feature": ["a", "b", "c"],
            "verdict": ["milestone_candidate", "niche", "milestone_candidate"],
            "reason": ["Used by 40%.", "Used by 2%.", "Used by 50%."],
        }
    )
    kept = withhold_candidates(table, {"beats": True})
    assert kept["verdict"].tolist() == table["verdict"].tolist()
    lost = {"beats": False, "auc_usage": 0.6, "auc_baseline": 0.61, "auc_difference": -0.01}
    lost["ci"], lost["confidence"] = [-0.03, 0.01], 0.95
    out = withhold_candidates(table, lost)
    assert out["verdict"].tolist() == ["no_signal", "niche", "no_signal"]
    assert out["reason"][0].startswith("Not a milestone candidate: product usage does not")
    assert out["reason"][0].endswith("Used by 40%.") and out["reason"][1] == "Used by 2%."
    assert table["verdict"][0] == "milestone_candidate"  # the input is left alone

    lines = verdict_lines(
        {"activation": {"status": "unconfirmed", "reason": "no signal: ..."}}, lost
    )
    assert lines[0].startswith("Product usage does not predict retention in this data")
    assert "-0.010" in lines[0] and "-0.030 to +0.010" in lines[0]
    assert lines[1].startswith("Activation is unconfirmed: no signal")
    assert lines[-1] == "The data confirm no milestone: every account's stage stays 'new'."


# ----------------------------------------------------------------------------- stage


def _scores(thresholds, utilization=None):
    accounts, events, current = frames()
    if utilization is not None:
        current = current.assign(utilization_rate=utilization)
    return score_accounts(
        accounts,
        events,
        current,
        thresholds,
        as_of=AS_OF,
        activation_window_days=60,
        activation_event="e",
        utilization_event="e",
    ).set_index("account_id")


def _with_status(**statuses):
    return {
        name: {**block, "status": statuses.get(name, "confirmed")}
        for name, block in THRESHOLDS.items()
    }


def test_an_unconfirmed_milestone_neither_gates_the_stage_nor_is_a_next_step():
    # acc3: activated, not utilized, no mature category; acc5: activated, not utilized (rate
    # 1.0 here) and mature in 2 categories
    rates = [0.0, 1.0, 4.99, 5.0, 1.0]
    gated = _scores(_with_status(), rates)
    assert gated.loc["acc5", "stage"] == "activated"
    assert gated.loc["acc3", "next_step"].startswith("Raise usage to 5")

    skipped = _scores(_with_status(utilization="unconfirmed"), rates)
    assert bool(skipped.loc["acc5", "utilized"]) is False  # the flag is still computed
    assert skipped.loc["acc5", "stage"] == "mature"  # utilization no longer stands in the way
    assert skipped.loc["acc4", "stage"] == "activated"  # never "utilized": that rung is gone
    assert skipped.loc["acc3", "next_step"].startswith("Adopt more x features")
    assert not skipped["next_step"].str.contains("Raise usage").any()
    assert skipped.loc["acc5", "next_step"].startswith("All confirmed milestones reached")

    # activation unconfirmed: an account past setup is sent toward utilization
    no_act = _scores(_with_status(activation="unconfirmed"))
    assert no_act.loc["acc2", "stage"] == "setup"
    assert no_act.loc["acc2", "next_step"].startswith("Raise usage to 5")
    assert not no_act["next_step"].str.contains("Reach activation").any()


def test_with_no_confirmed_milestone_every_account_is_new_without_a_next_step():
    none = dict.fromkeys(THRESHOLDS, "unconfirmed")
    scores = _scores(_with_status(**none))
    assert set(scores["stage"]) == {"new"}
    assert scores["next_step"].str.startswith("No next step").all()
    assert bool(scores.loc["acc5", "mature"]) is True  # flags still computed


# ----------------------------------------------------------------------------- cohorts


def test_the_review_cohort_is_later_than_and_disjoint_from_the_derivation_rows():
    months = ["2025-01-31", "2025-02-28", "2025-03-31", "2025-04-30", "2025-05-31"]
    tenure = pd.DataFrame(
        {
            "account_id": [f"t{i}" for i in range(5)],
            "window_end": pd.to_datetime(months),
            "window_closed": [True] * 5,
            "labelled": [True, True, True, True, False],
            "inactivity_labelled": [True] * 5,
            "retained": [1, 0, 1, 0, None],
        }
    )
    snapshots = pd.DataFrame(
        {
            "account_id": ["a", "b", "a", "b", "c", "c", "d"],
            "snapshot_date": pd.to_datetime(
                ["2025-01-31"] * 2
                + ["2025-02-28"] * 2
                + ["2025-02-28", "2025-03-31"] * 1
                + ["2025-04-30"]
            ),
            "censored": [False] * 6 + [True],
            "retained": [1, 0, 1, 0, 1, 1, None],
        }
    )
    cohorts = split_cohorts(tenure, snapshots, periods=1)
    assert cohorts.activation_months == ["2025-04"]
    assert cohorts.activation_derive.tolist() == [True, True, True, False, False]
    assert cohorts.setup_months == ["2025-05"]  # closed windows, label or not
    assert cohorts.setup_review.tolist() == [False] * 4 + [True]
    assert cohorts.setup_derive.tolist() == [True] * 3 + [False] * 2  # nor t3, under review
    assert cohorts.snapshot_dates == ["2025-03-31"]
    # c was seen on 2025-02-28, a derivation date: no account is new on 2025-03-31
    assert not cohorts.snapshot_review.any()
    assert cohorts.snapshot_derive.tolist() == [True] * 5 + [False, False]

    two = split_cohorts(tenure, snapshots, periods=2)
    assert two.snapshot_dates == ["2025-02-28", "2025-03-31"]
    assert two.snapshot_review.tolist() == [False] * 4 + [True, True, False]  # c is new
    ranges = two.ranges(tenure, snapshots)
    assert ranges["utilization"]["derivation"] == {
        "from": "2025-01-31",
        "to": "2025-01-31",
        "rows": 2,
        "accounts": 2,
    }
    assert ranges["maturity"]["review"]["from"] == "2025-02-28"

    t, s = derivation_rows(tenure, snapshots, cohorts)
    assert t["labelled"].tolist() == cohorts.activation_derive.tolist()
    assert t["inactivity_labelled"].tolist() == [True, True, True, False, False]
    assert len(s) == 5 and tenure["labelled"].tolist()[3] is True  # inputs untouched
    with pytest.raises(ValueError, match="periods must be a positive integer"):
        split_cohorts(tenure, snapshots, periods=0)


def test_the_review_interval_counts_accounts_not_their_repeated_snapshots():
    from models.review import cohort_review
    from models.stats import risk_ratio

    rng = np.random.default_rng(0)
    new = [f"n{i}" for i in range(60)]
    used = rng.random(60) < 0.5
    stayed = (rng.random(60) < np.where(used, 0.8, 0.6)).astype(int)
    snapshots = pd.DataFrame(
        {
            "account_id": ["old1", "old2"] + new * 2,  # each new account at both review dates
            "snapshot_date": pd.to_datetime(
                ["2025-01-31"] * 2 + ["2025-02-28"] * 60 + ["2025-03-31"] * 60
            ),
            "censored": False,
            "retained": [1, 0, *stayed, *stayed],
            "utilization_rate": [3.0, 0.0, *np.where(used, 3.0, 1.0), *np.where(used, 3.0, 1.0)],
        }
    )
    tenure = pd.DataFrame(
        {
            "account_id": ["old1"],
            "retained": [1],
            "window_end": pd.to_datetime(["2024-12-01"]),
            "labelled": [True],
            "window_closed": [True],
        }
    )
    block = cohort_review(tenure, snapshots, {"utilization": {"threshold": 2.0}}, periods=2)[
        "utilization"
    ]
    assert block["n"] == 120 and block["accounts_reached"] + block["accounts_not_reached"] == 60
    assert block["derivation_period"]["to"] == "2025-01-31"
    a1, n1 = 2 * stayed[used].sum(), 2 * used.sum()
    a0, n0 = 2 * stayed[~used].sum(), 2 * (~used).sum()
    _, low, high = risk_ratio(a1, n1, a0, n0)  # as if the 120 rows were 120 accounts
    assert block["lift_ci"][1] - block["lift_ci"][0] > 1.2 * (high - low)
