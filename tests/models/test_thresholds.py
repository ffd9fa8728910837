"""Tests of models.thresholds: the threshold finder and the four milestone derivations."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from models.finder import ThresholdFinder
from models.setup_steps import derive_setup
from models.thresholds import (
    derive_activation,
    derive_maturity,
    derive_thresholds,
    derive_utilization,
)

EVIDENCE_KEYS = {
    "n",
    "criterion",
    "statistic",
    "p_value",
    "share_at_or_above",
    "rate_at_or_above",
    "rate_below",
    "lift",
    "step_vs_trend",
    "kind",
    "ci",
    "bootstrap",
    "curve",
}


def _json_roundtrip(value):
    return json.loads(json.dumps(value, allow_nan=False))


# --- generated data -------------------------------------------------------------------


def _step_data(n=20_000, cut=12, low=0.3, high=0.6, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 31, n)
    y = rng.random(n) < np.where(x >= cut, high, low)
    return x, y


def _tenure(n=4000, seed=1):
    """Tenure rows: retention steps up at 15 activation events; setup steps planted."""
    rng = np.random.default_rng(seed)
    count = rng.integers(0, 41, n)
    retained = rng.random(n) < np.where(count >= 15, 0.7, 0.3)
    labelled = rng.random(n) < 0.9
    went_inactive = rng.random(n) < np.where(count >= 15, 0.1, 0.5)
    return pd.DataFrame(
        {
            "account_id": [f"a{i}" for i in range(n)],
            "activation_count": count,
            "labelled": labelled,
            "retained": pd.Series(retained.astype(int), dtype="Int64").where(labelled, pd.NA),
            "inactivity_labelled": True,
            "went_inactive": went_inactive.astype(int),
            "window_closed": rng.random(n) < 0.95,
            # setup: done by almost everyone / unrelated / two that drive activation
            "setup__verify_email": rng.random(n) < 0.97,
            "setup__choose_theme": rng.random(n) < 0.5,
            "setup__install_messenger": (count >= 15) & (rng.random(n) < 0.8)
            | (count < 15) & (rng.random(n) < 0.3),
            "setup__invite_teammate": (count >= 15) & (rng.random(n) < 0.6)
            | (count < 15) & (rng.random(n) < 0.2),
        }
    )


def _snapshots(n_accounts=1500, n_snapshots=4, seed=2):
    """Snapshot rows: retention steps up at 4 events per seat and at planted breadths."""
    rng = np.random.default_rng(seed)
    n = n_accounts * n_snapshots
    account = np.repeat([f"a{i}" for i in range(n_accounts)], n_snapshots)
    snapshot = np.tile(pd.date_range("2025-01-31", periods=n_snapshots, freq="ME"), n_accounts)
    seats = np.round(np.exp(rng.uniform(0, np.log(30), n_accounts))).astype(int)
    seats = np.repeat(seats, n_snapshots)  # 1 to 30 seats, log-uniform
    rate = rng.integers(0, 21, n) * 0.5  # per seat per period: 0, 0.5, ..., 10
    payments = rng.integers(0, 5, n)  # 4 features, planted step at 2
    reporting = rng.integers(0, 4, n)  # 3 features, planted step at 3
    channels = rng.integers(0, 4, n)  # 3 features, planted step at 1
    logit = (
        -1.6
        + 1.2 * (rate >= 4.0)
        + 0.8 * (payments >= 2)
        + 0.8 * (reporting >= 3)
        + 0.8 * (channels >= 1)
    )
    retained = rng.random(n) < expit(logit)
    censored = np.tile(np.arange(n_snapshots) == n_snapshots - 1, n_accounts) & (
        rng.random(n) < 0.5
    )
    return pd.DataFrame(
        {
            "account_id": account,
            "snapshot_date": snapshot,
            "seats": seats,
            "utilization_rate": rate,
            "utilization_raw": rate * seats,
            "maturity__payments": payments,
            "maturity__reporting": reporting,
            "maturity__channels": channels,
            "censored": censored,
            "retained": pd.Series(retained.astype(int), dtype="Int64").where(~censored, pd.NA),
        }
    )


CATEGORIES = {
    "payments": ["card_payment", "payment_link_created", "refund_issued", "invoice_paid"],
    "reporting": ["report_viewed", "export_csv", "dashboard_shared"],
    "channels": ["chat", "email", "sms"],
}


# --- ThresholdFinder ------------------------------------------------------------------


def test_perfect_split_gives_exact_threshold():
    x = np.tile(np.arange(10), 2)
    y = (x >= 5).astype(int)
    finder = ThresholdFinder(random_state=0).fit(x, y)
    assert finder is not None and finder.threshold_ == 5
    assert isinstance(finder.threshold_, int)
    ev = finder.evidence_
    assert ev["rate_at_or_above"] == 1.0 and ev["rate_below"] == 0.0
    assert ev["share_at_or_above"] == 0.5
    assert ev["lift"] is None  # infinite ratio is reported as null, not inf
    assert ev["kind"] == "step"
    assert set(ev) >= EVIDENCE_KEYS
    assert _json_roundtrip(ev) == ev


def test_noisy_step_recovered_exactly_with_narrow_ci():
    x, y = _step_data()
    finder = ThresholdFinder(random_state=0).fit(x, y)
    ev = finder.evidence_
    assert finder.threshold_ == 12
    assert finder.ci_[0] <= 12 <= finder.ci_[1] and finder.ci_[1] - finder.ci_[0] <= 1
    assert ev["kind"] == "step"
    assert ev["step_vs_trend"]["p_value"] < 0.05
    assert ev["lift"] == pytest.approx(2.0, rel=0.1)
    assert ev["share_at_or_above"] == pytest.approx(19 / 31, abs=0.02)


def test_smooth_trend_is_not_a_confident_step():
    rng = np.random.default_rng(3)
    x = rng.integers(0, 41, 20_000)
    y = rng.random(x.size) < expit((x - 20) / 6)
    ev = ThresholdFinder(random_state=0).fit(x, y).evidence_
    assert ev["p_value"] < 0.05  # there is an association ...
    assert ev["step_vs_trend"]["p_value"] >= 0.05  # ... but no step on top of the trend
    assert ev["kind"] == "trend_only"


def test_pure_noise_is_no_signal():
    rng = np.random.default_rng(4)
    x = rng.integers(0, 31, 5000)
    y = rng.random(x.size) < 0.4
    assert ThresholdFinder(random_state=0).fit(x, y).evidence_["kind"] == "no_signal"


def test_rate_candidates_are_reduced_to_quantiles():
    rng = np.random.default_rng(5)
    x = rng.gamma(2.0, 3.0, 20_000)
    y = rng.random(x.size) < np.where(x >= 7.5, 0.7, 0.4)
    finder = ThresholdFinder(random_state=0).fit(x, y)
    assert len(finder.candidates_) <= 200
    assert set(finder.candidates_) <= set(x)  # cut points are observed values
    assert finder.threshold_ == pytest.approx(7.5, abs=0.15)
    assert finder.evidence_["kind"] == "step"


def test_group_bootstrap_and_determinism():
    x, y = _step_data(n=6000, seed=6)
    groups = np.arange(x.size) // 3
    a = ThresholdFinder(n_bootstrap=50, random_state=7).fit(x, y, groups=groups)
    b = ThresholdFinder(n_bootstrap=50, random_state=7).fit(x, y, groups=groups)
    assert a.evidence_ == b.evidence_ and a.ci_ == b.ci_
    assert a.evidence_["bootstrap"]["resampled"] == "groups"
    assert a.evidence_["bootstrap"]["n_groups"] == 2000


def test_evaluate_at_a_fixed_cut():
    x, y = _step_data(n=5000, seed=8)
    ev = ThresholdFinder().evaluate(x, y, 20)
    assert ev["threshold"] == 20
    assert ev["share_at_or_above"] == pytest.approx(np.mean(x >= 20))
    assert ev["rate_at_or_above"] == pytest.approx(np.mean(y[x >= 20]))
    assert ev["rate_below"] == pytest.approx(np.mean(y[x < 20]))
    beyond = ThresholdFinder().evaluate(x, y, 1000)  # nobody reaches it: evidence, not error
    assert beyond["n_at_or_above"] == 0 and beyond["kind"] == "no_signal"
    assert _json_roundtrip(beyond) == beyond


@pytest.mark.parametrize(
    ("metric", "outcome", "kwargs", "match"),
    [
        (np.arange(20), np.r_[np.zeros(10), np.ones(9)], {}, "same length"),
        (np.r_[np.nan, np.arange(19)], np.r_[np.zeros(10), np.ones(10)], {}, "metric has 1 miss"),
        (np.arange(20), np.r_[np.zeros(10), np.full(10, 2)], {}, "binary .* found values 2"),
        (np.arange(20), np.r_[np.zeros(10), [np.nan], np.ones(9)], {}, "outcome has 1 missing"),
        (np.arange(5), [0, 1, 0, 1, 1], {}, "too few rows"),
        (np.arange(20), np.ones(20), {}, "single class"),
        (np.arange(20), np.r_[np.zeros(10), np.ones(10)], {"groups": [1, 2]}, "groups and metric"),
        (["a"] * 20, np.r_[np.zeros(10), np.ones(10)], {}, "metric must be numeric"),
    ],
)
def test_bad_input_is_rejected(metric, outcome, kwargs, match):
    with pytest.raises(ValueError, match=match):
        ThresholdFinder().fit(metric, outcome, **kwargs)


def test_bad_parameters_are_rejected():
    x, y = _step_data(n=100)
    with pytest.raises(ValueError, match="min_side_share"):
        ThresholdFinder(min_side_share=0.6).fit(x, y)
    with pytest.raises(ValueError, match="n_bootstrap"):
        ThresholdFinder(n_bootstrap=0).fit(x, y)
    with pytest.raises(ValueError, match="confidence"):
        ThresholdFinder(confidence=1.5).fit(x, y)


# --- milestones -----------------------------------------------------------------------


def test_setup_selects_the_steps_that_lift_activation():
    tenure = _tenure()
    activated = tenure["activation_count"] >= 15
    steps = ["verify_email", "choose_theme", "install_messenger", "invite_teammate"]
    out = derive_setup(tenure, steps, activated, random_state=0, n_bootstrap=100)
    assert out["steps"] == ["install_messenger", "invite_teammate"]
    assert out["threshold"] == 2 and out["pinned"] is False
    cand = out["candidates"]
    assert cand["verify_email"]["reason"] == "routine" and not cand["verify_email"]["selected"]
    assert cand["choose_theme"]["reason"] == "no_lift" and not cand["choose_theme"]["selected"]
    assert cand["install_messenger"]["selected"] and cand["install_messenger"]["lift_ci"][0] > 1.1
    assert cand["verify_email"]["prevalence"] > 0.9
    ev = out["evidence"]
    assert ev["activation_rate_complete"] > ev["activation_rate_incomplete"]
    assert 0 < ev["share_complete"] < 1
    assert out["ci"][0] <= 2 <= out["ci"][1]
    assert _json_roundtrip(out) == out


def test_setup_tiny_literal_frame():
    # a: done exactly by the activated accounts; b: done by half of each group
    tenure = pd.DataFrame({"setup__a": [True] * 10 + [False] * 10, "setup__b": [True, False] * 10})
    activated = [True] * 10 + [False] * 10
    out = derive_setup(tenure, ["a", "b"], activated, random_state=0, n_bootstrap=20)
    assert out["steps"] == ["a"]
    assert out["candidates"]["a"]["activation_rate_done"] == 1.0
    assert out["candidates"]["a"]["activation_rate_not_done"] == 0.0
    assert out["candidates"]["b"]["lift"] == pytest.approx(1.0)


def test_setup_pinned_steps_reported_with_evidence():
    tenure = _tenure(n=1500)
    activated = tenure["activation_count"] >= 15
    steps = ["verify_email", "choose_theme", "install_messenger"]
    out = derive_setup(
        tenure, steps, activated, pinned_steps=["choose_theme"], random_state=0, n_bootstrap=20
    )
    assert out["pinned"] is True and out["steps"] == ["choose_theme"] and out["threshold"] == 1
    assert out["candidates"]["choose_theme"]["selected"] is True
    assert out["candidates"]["choose_theme"]["reason"] == "no_lift"  # the data's verdict
    assert out["candidates"]["install_messenger"]["selected"] is False
    assert out["evidence"]["share_complete"] == pytest.approx(tenure["setup__choose_theme"].mean())


def test_setup_bad_input():
    tenure = pd.DataFrame({"setup__a": [True, False]})
    with pytest.raises(ValueError, match="tenure is missing column 'setup__b'"):
        derive_setup(tenure, ["a", "b"], [True, False])
    with pytest.raises(ValueError, match="activated and tenure must have the same length"):
        derive_setup(tenure, ["a"], [True, False, True])


def test_activation_threshold_and_inactivity_validation():
    out = derive_activation(
        _tenure(), event="conversation_closed", window_days=60, random_state=0, n_bootstrap=100
    )
    assert out["threshold"] == 15 and out["pinned"] is False
    assert out["rule"] == "at least 15 conversation_closed in the first 60 days"
    ev = out["evidence"]
    assert ev["kind"] == "step"
    assert ev["retention_with"] > ev["retention_without"]
    inactive = ev["inactivity"]
    assert inactive["went_inactive_rate_activated"] < inactive["went_inactive_rate_not_activated"]
    assert _json_roundtrip(out) == out


def test_activation_pinned_is_reported_with_evidence_at_the_pin():
    tenure = _tenure()
    out = derive_activation(tenure, pinned=10, random_state=0, n_bootstrap=50)
    assert out["pinned"] is True and out["threshold"] == 10
    ev = out["evidence"]
    rows = tenure[tenure["labelled"]]
    assert ev["threshold"] == 10
    assert ev["share_at_or_above"] == pytest.approx((rows["activation_count"] >= 10).mean())
    assert ev["derived"]["threshold"] == 15
    assert ev["pinned_within_ci"] is False
    assert ev["inactivity"]["n_activated"] == int((tenure["activation_count"] >= 10).sum())


def test_activation_missing_column():
    with pytest.raises(ValueError, match="tenure is missing column 'labelled'"):
        derive_activation(pd.DataFrame({"activation_count": [1], "retained": [1]}))


def test_utilization_per_seat_step_beats_raw_count():
    out = derive_utilization(
        _snapshots(), event="conversation_closed", random_state=0, n_bootstrap=100
    )
    assert out["threshold"] == 4.0
    assert out["rule"] == "at least 4 conversation_closed per seat per 30 days"
    ev = out["evidence"]
    assert ev["kind"] == "step"
    assert ev["bootstrap"]["resampled"] == "groups"
    raw = ev["raw_comparison"]
    assert raw["raw"]["phi"] < raw["per_seat"]["phi"]
    assert raw["raw_is_weaker"] is True
    assert 0 < ev["share_of_accounts_at_latest_snapshot"] < 1
    assert _json_roundtrip(out) == out


def test_maturity_category_thresholds_recovered():
    out = derive_maturity(_snapshots(), CATEGORIES, random_state=0, n_bootstrap=50)
    cats = out["categories"]
    assert cats["payments"]["threshold"] == 2
    assert cats["reporting"]["threshold"] == 3
    assert cats["channels"]["threshold"] == 1
    assert all(not c["pinned"] for c in cats.values()) and out["pinned"] is False
    assert out["min_categories"] == out["threshold"] and 1 <= out["threshold"] <= 3
    assert out["evidence"]["retention_with"] > out["evidence"]["retention_without"]
    assert _json_roundtrip(out) == out


def test_maturity_pins():
    out = derive_maturity(
        _snapshots(n_accounts=500),
        CATEGORIES,
        pinned_thresholds={"payments": 3},
        min_categories=2,
        random_state=0,
        n_bootstrap=20,
    )
    assert out["categories"]["payments"]["pinned"] is True
    assert out["categories"]["payments"]["threshold"] == 3
    assert out["categories"]["payments"]["evidence"]["threshold"] == 3
    assert out["categories"]["reporting"]["pinned"] is False
    assert out["pinned"] is True and out["min_categories"] == 2 and out["threshold"] == 2
    assert out["evidence"]["share_at_or_above"] is not None
    with pytest.raises(ValueError, match="unknown category 'billing'"):
        derive_maturity(_snapshots(n_accounts=50), CATEGORIES, pinned_thresholds={"billing": 1})


def test_derive_thresholds_is_deterministic_and_json():
    tenure, snapshots = _tenure(n=2000), _snapshots(n_accounts=600)
    kwargs = dict(
        setup_steps=["verify_email", "choose_theme", "install_messenger", "invite_teammate"],
        categories=CATEGORIES,
        n_bootstrap=30,
        random_state=11,
        activation_event="conversation_closed",
        activation_window_days=60,
    )
    first = derive_thresholds(tenure, snapshots, **kwargs)
    second = derive_thresholds(tenure, snapshots, **kwargs)
    assert json.dumps(first, allow_nan=False, sort_keys=True) == json.dumps(
        second, allow_nan=False, sort_keys=True
    )
    assert set(first) == {"setup", "activation", "utilization", "maturity"}
    for block in first.values():
        assert {"rule", "threshold", "ci", "evidence", "pinned"} <= set(block)
        assert isinstance(block["rule"], str) and len(block["ci"]) == 2
    assert first["activation"]["threshold"] == 15
    assert first["setup"]["evidence"]["activation_threshold"] == 15
    assert "install_messenger" in first["setup"]["steps"]


def test_derive_thresholds_pins():
    out = derive_thresholds(
        _tenure(n=1000),
        _snapshots(n_accounts=300),
        setup_steps=["verify_email", "choose_theme"],
        categories=CATEGORIES,
        activation_pin=12,
        utilization_pin=3.0,
        setup_pin=["choose_theme"],
        maturity_pins={"channels": 2},
        min_categories=2,
        n_bootstrap=20,
    )
    assert out["activation"]["pinned"] and out["activation"]["threshold"] == 12
    assert out["utilization"]["pinned"] and out["utilization"]["threshold"] == 3
    assert out["setup"]["pinned"] and out["setup"]["steps"] == ["choose_theme"]
    assert out["maturity"]["categories"]["channels"]["pinned"]
    assert out["maturity"]["pinned"] and out["maturity"]["min_categories"] == 2
    assert out["setup"]["evidence"]["activation_threshold"] == 12
