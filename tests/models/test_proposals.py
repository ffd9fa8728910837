"""The proposals of `milestones init`, on small literal frames (models.proposals)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from models import proposals as mp

# ----------------------------------------------------------------------------- frequency


def test_classify_frequency_reads_the_median_active_account():
    blocks = pd.DataFrame(
        {"active_days": [25, 10, 2], "active_weeks": [4, 4, 1], "accounts": [30, 50, 20]}
    )
    out = mp.classify_frequency(blocks)
    assert out["daily"] == pytest.approx(0.3)
    assert out["weekly"] == pytest.approx(0.5)
    assert out["monthly"] == pytest.approx(0.2)
    assert out["product"] == "weekly"
    mostly_daily = blocks.assign(accounts=[60, 30, 10])
    assert mp.classify_frequency(mostly_daily)["product"] == "daily"
    rare = blocks.assign(accounts=[5, 10, 85])
    assert mp.classify_frequency(rare)["product"] == "monthly"


def test_horizon_follows_the_churn_rate_and_the_history():
    # 4% monthly churn: 11.5% leave within 90 days, 21.5% within 180
    w = mp.propose_windows("daily", 730, 0.04)
    assert w["horizon"] == 180
    assert w["activation_candidates"] == (14, 30, 60)
    # fast churn: the shortest horizon of a daily product
    assert mp.propose_windows("daily", 730, 0.3)["horizon"] == 90
    # a weekly product never goes below 180 days
    assert mp.propose_windows("weekly", 1000, 0.3)["horizon"] == 180
    # a short history shortens the horizon and drops windows that do not fit
    short = mp.propose_windows("weekly", 300, 0.01)
    assert short["horizon"] == 120  # 300 // 2 - 30 = 120
    assert short["activation_candidates"] == (30,)
    with pytest.raises(ValueError, match="product"):
        mp.propose_windows("hourly", 300, 0.1)


def test_recent_churn_rate_skips_partial_and_small_months():
    months = pd.DataFrame(
        {
            "customers": [5, 100, 100, 100],
            "churn_rate": [0.9, 0.02, 0.04, 0.5],
            "partial": [False, False, False, True],
        }
    )
    assert mp.recent_churn_rate(months) == pytest.approx(0.03)
    assert mp.recent_churn_rate(months.iloc[[0, 3]]) is None


# ----------------------------------------------------------------------------- retention


def _buckets() -> tuple[pd.DataFrame, int, int]:
    """100 labelled accounts, 60 retained. Event "a": 40 accounts with >= 5 uses (36
    retained), 20 with 1 use (10 retained). Event "b": 50 users (30 retained), no signal."""
    frame = pd.DataFrame(
        {
            "event": ["a", "a", "b"],
            "bucket": [1, 5, 1],
            "accounts": [20, 40, 50],
            "retained": [10, 36, 30],
        }
    )
    return frame, 100, 60


def test_activation_scan_ranks_the_separating_event_first_at_its_count():
    buckets, n, r = _buckets()
    scan = mp.activation_scan(buckets, n, r)
    assert list(scan["event"]) == ["a", "b"]
    top = scan.iloc[0]
    assert top["count"] == 5
    assert top["accounts"] == 40
    assert top["retention_with"] == pytest.approx(0.9)
    assert top["retention_without"] == pytest.approx(24 / 60)
    # phi is Pearson's correlation of the two flags
    did = np.r_[np.ones(40), np.zeros(60)]
    kept = np.r_[np.ones(36), np.zeros(4), np.ones(24), np.zeros(36)]
    assert top["phi"] == pytest.approx(np.corrcoef(did, kept)[0, 1])
    assert top["phi_low"] < top["phi"] < top["phi_high"]
    assert scan.iloc[1]["phi"] == pytest.approx(0.0)


def test_activation_scan_needs_both_sides_and_honours_exclusions():
    buckets, n, r = _buckets()
    # with 45% on each side at least, neither "a" at 5 (40 of 100) nor at 1 (60) is admissible
    assert list(mp.activation_scan(buckets, n, r, min_side_share=0.45)["event"]) == ["b"]
    assert list(mp.activation_scan(buckets, n, r, exclude=["a"])["event"]) == ["b"]
    assert mp.activation_scan(buckets, n, 0).empty  # nobody retained: nothing to separate


def test_event_retention_compares_users_with_non_users():
    buckets, n, r = _buckets()
    out = mp.event_retention(buckets, n, r).set_index("event")
    assert out.loc["a", "users"] == 60
    assert out.loc["a", "retention_users"] == pytest.approx(46 / 60)
    assert out.loc["a", "retention_non_users"] == pytest.approx(14 / 40)
    assert out.loc["a", "risk_ratio"] == pytest.approx((46 / 60) / (14 / 40))
    assert out.loc["a", "ci_low"] > 1.0
    assert out.loc["b", "ci_low"] < 1.0 < out.loc["b", "ci_high"]


def test_pick_activation_window_takes_the_best_lower_bound():
    scans = {
        30: pd.DataFrame({"phi_low": [0.05]}),
        60: pd.DataFrame({"phi_low": [0.12]}),
        90: pd.DataFrame({"phi_low": [0.10]}),
    }
    assert mp.pick_activation_window(scans) == 60
    assert mp.pick_activation_window({30: pd.DataFrame({"phi_low": []})}) is None


# ----------------------------------------------------------------------------- setup


def test_setup_candidates_are_front_loaded_and_ranked_by_early_share():
    summary = pd.DataFrame(
        {
            "event": ["verify", "install", "daily_use", "late_setup"],
            "accounts": [95, 60, 99, 30],
            "median_first_use_days": [1.0, 3.0, 2.0, 40.0],
            "front_share": [1.0, 0.95, 0.05, 0.6],
            "early_w7": [90, 50, 90, 0],
            "early_w14": [94, 57, 95, 1],
            "early_w21": [95, 58, 96, 2],
            "early_w30": [95, 59, 97, 3],
        }
    )
    closed = {7: 100, 14: 100, 21: 100, 30: 100}
    out, window = mp.setup_candidates(summary, closed)
    assert list(out["event"]) == ["verify", "install", "late_setup"]  # daily_use is recurring
    assert window == 14  # 7 days hold 140 of 157 uses by 30 days (< 90%), 14 days 152
    assert out.loc[0, "share_early"] == pytest.approx(0.94)
    without, _ = mp.setup_candidates(summary, closed, exclude=["verify"])
    assert without["event"].iloc[0] == "install"


def test_seats_vary():
    assert mp.seats_vary(pd.DataFrame({"seats": [1, 3, 10], "accounts": [50, 30, 20]}))
    assert not mp.seats_vary(pd.DataFrame({"seats": [1, 40], "accounts": [97, 3]}))


# ----------------------------------------------------------------------------- co-usage


def _usage(n: int = 1500, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two planted groups ({a1, a2, a3} and {b1, b2}) and one loner, for accounts whose
    adoption propensity per group is shared; young accounts use nothing yet."""
    rng = np.random.default_rng(seed)
    life = rng.integers(10, 700, n)
    qa, qb = rng.beta(2, 2, n), rng.beta(2, 2, n)
    rows = []
    for f, q in (("a1", qa), ("a2", qa), ("a3", qa), ("b1", qb), ("b2", qb), ("x", 0.5)):
        used = (rng.random(n) < q) & (life >= 90)
        for aid in np.flatnonzero(used):
            rows.append({"aid": aid, "event": f, "n": float(1 + rng.poisson(life[aid] / 30))})
    return pd.DataFrame(rows), pd.DataFrame({"aid": np.arange(n), "life": life})


def test_usage_groups_recover_planted_groups():
    rows, accounts = _usage()
    out = mp.usage_groups(rows, accounts, ["a1", "b1", "a2", "x", "a3", "b2"], min_life_days=90)
    assert out.groups == [["a1", "a2", "a3"], ["b1", "b2"]]
    assert out.unassigned == ["x"]
    assert 0 < out.level < min(out.cohesion)
    assert out.accounts == int((accounts["life"] >= 90).sum())


def test_usage_groups_at_a_given_level_and_without_structure():
    rows, accounts = _usage()
    everything = mp.usage_groups(
        rows, accounts, ["a1", "a2", "a3", "b1", "b2", "x"], min_life_days=90, level=-1.0
    )
    assert everything.groups == [["a1", "a2", "a3", "b1", "b2", "x"]]
    noise = rows[rows["event"] == "x"]
    alone = mp.usage_groups(noise, accounts, ["x"], min_life_days=90)
    assert alone.groups == [] and alone.unassigned == ["x"]


def test_cut_level_takes_a_clear_gap_else_the_noise_floor():
    # 10 features, 1000 accounts: the noise floor is z(1 - 0.05/45) / sqrt(1000), about 0.10
    gap = mp.cut_level(np.array([0.40, 0.38, 0.36, 0.05, 0.02]), 1000, 10)
    assert gap == pytest.approx((0.36 + 0.05) / 2)
    even = mp.cut_level(np.array([0.20, 0.19, 0.18, 0.17, 0.16, 0.15]), 1000, 10)
    assert 0.09 < even < 0.11  # no gap wider than noise: cut at the floor
    assert mp.cut_level(np.array([0.05, 0.01]), 1000, 10) is None


def test_maturity_features_keep_the_adoption_band():
    summary = pd.DataFrame({"event": ["all", "some", "few", "setup"], "accounts": [99, 40, 2, 50]})
    assert mp.maturity_features(summary, 100, exclude=["setup"]) == ["some"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("report_viewed", "report_viewed"),
        ('<script>alert("x")</script>', "script_alert_x_script"),
        ("Invoice Sent 🎉", "Invoice Sent"),
        ("¡¡¡", "group"),
        ("a/b\nc: d", "a_b_c_ d"),
    ],
)
def test_plain_name_gives_plain_words(text, expected):
    name = mp.plain_name(text)
    assert name == expected
    assert re.fullmatch(r"[\w\-. ]+", name)  # the configuration's rule for category names


def test_plain_name_is_unique():
    assert mp.plain_name("a b", taken={"a b", "a b_2"}) == "a b_3"
