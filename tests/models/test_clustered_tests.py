"""Tests over snapshot rows work on whole accounts; many features, false discovery rate.

Small hand-made data: an account's rows repeated month after month must not count as many
independent observations (issue 13), and verdicts over many features are Benjamini-Hochberg
adjusted.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from models.finder import ThresholdFinder
from models.importance import assign_verdicts
from models.stats import bh_qvalues, p_from_log_interval


def _repeated(n_accounts: int, rows_each: int, seed: int, step: bool = False):
    """Each account's metric and outcome repeated on ``rows_each`` rows (a persistent level
    and a persistent outcome): the extreme of rows correlated within an account."""
    rng = np.random.default_rng(seed)
    metric = np.round(rng.lognormal(2.0, 0.5, n_accounts), 1)
    p = np.where(metric >= 8.0, 0.9, 0.4) if step else np.full(n_accounts, 0.7)
    outcome = (rng.random(n_accounts) < p).astype(int)
    account = np.repeat(np.arange(n_accounts), rows_each)
    return metric[account], outcome[account], account, metric, outcome


# --------------------------------------------------------------------------- statistics


def test_bh_qvalues_match_scipy_and_leave_nan_out():
    p = np.array([0.01, 0.04, np.nan, 0.03, 0.005, 0.9])
    q = bh_qvalues(p)
    finite = ~np.isnan(p)
    expected = stats.false_discovery_control(p[finite], method="bh")
    np.testing.assert_allclose(q[finite], expected)
    assert np.isnan(q[2])
    assert np.all(q[finite] >= p[finite])
    assert np.isnan(bh_qvalues([np.nan])).all()


def test_p_from_log_interval_is_below_alpha_exactly_when_the_interval_excludes_one():
    low = np.array([1.05, 0.95, 1.0, 0.5, np.nan, 2.0])
    high = np.array([1.50, 1.30, 1.4, 0.9, 1.2, 2.0])
    p = p_from_log_interval(low, high, 0.95)
    assert p[0] < 0.05 and p[1] > 0.05 and p[3] < 0.05
    assert p[2] == pytest.approx(0.05)
    assert np.isnan(p[4]) and np.isnan(p[5])  # missing bound; no width


# --------------------------------------------------------------------------- the finder


def test_repeated_rows_of_one_account_do_not_make_noise_significant():
    x, y, groups, _, _ = _repeated(80, 12, seed=4)
    rows = ThresholdFinder(n_bootstrap=99, random_state=0).fit(x, y).evidence_
    accounts = ThresholdFinder(n_bootstrap=99, random_state=0).fit(x, y, groups=groups).evidence_
    assert rows["p_value"] < 0.05  # rows as if independent: noise looks like a threshold
    assert accounts["p_value"] > 0.1, accounts["p_value"]
    assert "whole accounts permuted" in accounts["p_value_method"]
    svt = accounts["step_vs_trend"]
    assert svt["design_effect"] > 5, svt
    assert svt["statistic"] == pytest.approx(svt["statistic_unadjusted"] / svt["design_effect"])
    assert accounts["kind"] == "no_signal"


def test_a_real_step_is_still_found_on_whole_accounts():
    x, y, groups, _, _ = _repeated(400, 6, seed=1, step=True)
    finder = ThresholdFinder(n_bootstrap=99, random_state=0).fit(x, y, groups=groups)
    ev = finder.evidence_
    assert ev["p_value"] < 0.05
    assert 7.0 <= finder.threshold_ <= 9.0, finder.threshold_
    assert ev["bootstrap"]["resampled"] == "groups"
    again = ThresholdFinder(n_bootstrap=99, random_state=0).fit(x, y, groups=groups).evidence_
    assert again == ev  # same data and seed, same evidence


def test_group_permutation_keeps_accounts_with_a_unique_row_count():
    # one account with 3 rows and three with 2: only the three can swap
    x = np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], dtype=float)
    y = np.array([0, 0, 1, 0, 1, 1, 0, 1, 1, 1, 0, 1])
    groups = np.array(["a", "a", "a", "b", "b", "c", "c", "d", "d", "e", "e", "e"])
    ev = ThresholdFinder(n_bootstrap=49, random_state=0).fit(x, y, groups=groups).evidence_
    assert 0.0 < ev["p_value"] <= 1.0


def test_evaluate_divides_the_fixed_cut_chi_square_by_the_design_effect():
    x, y, groups, _, _ = _repeated(120, 10, seed=2, step=True)
    finder = ThresholdFinder(n_bootstrap=19, random_state=0)
    plain = finder.evaluate(x, y, 8.0)
    grouped = finder.evaluate(x, y, 8.0, groups=groups)
    assert plain["statistic"] == pytest.approx(grouped["statistic_unadjusted"])
    assert 6 < grouped["design_effect"] < 14, grouped["design_effect"]
    assert grouped["p_value"] > plain["p_value"]
    assert grouped["phi"] == pytest.approx(plain["phi"])  # the effect size is unchanged


# --------------------------------------------------------------------------- verdicts


def _row(feature: str, strat: tuple[float, float, float]) -> dict:
    return {
        "feature": feature,
        "prevalence": 0.4,
        "importance_rf": 0.05,
        "importance_gbm": 0.02,
        "retention_lift": strat[0],
        "retention_lift_low": strat[1],
        "retention_lift_high": strat[2],
        "stratified_lift": strat[0],
        "stratified_lift_low": strat[1],
        "stratified_lift_high": strat[2],
    }


def test_verdicts_control_the_false_discovery_rate_over_the_features():
    # one feature whose interval just excludes 1 among 19 without any lift
    rows = [_row("lucky", (1.10, 1.01, 1.20))]
    rows += [_row(f"null_{k}", (1.0, 0.9, 1.11)) for k in range(19)]
    out = assign_verdicts(pd.DataFrame(rows)).set_index("feature")
    assert out.loc["lucky", "stratified_lift_q"] > 0.05
    assert out.loc["lucky", "verdict"] == "no_signal"
    assert "false discovery rate 5%" in out.loc["lucky", "reason"]
    # alone, the same feature is a candidate
    alone = assign_verdicts(pd.DataFrame(rows[:1])).set_index("feature")
    assert alone.loc["lucky", "verdict"] == "milestone_candidate"
    assert alone.loc["lucky", "stratified_lift_q"] < 0.05
    # a strong lift survives the correction
    strong = assign_verdicts(pd.DataFrame([_row("strong", (1.5, 1.3, 1.7)), *rows[1:]]))
    assert strong.set_index("feature").loc["strong", "verdict"] == "milestone_candidate"


def test_the_trend_knots_sit_in_the_bulk_of_the_rows_not_in_a_sparse_tail():
    from models.steptrend import rcs_basis

    # a count held by many rows at low values and a few rows far out (one bin per value)
    values = np.arange(0.0, 151.0)
    rows = np.where(values < 40, 100.0, 1.0)
    basis, name = rcs_basis(values, 2, rows)
    assert name == "restricted cubic spline, 3 knots"
    # the spline's curvature terms are zero below the first knot: with the knots at the
    # rows' 10th percentile (about 4) they start there, not at the values' (15)
    assert np.flatnonzero(basis[:, 1] > 0)[0] <= 5
    unweighted, _ = rcs_basis(values, 2)
    assert np.flatnonzero(unweighted[:, 1] > 0)[0] >= 15
    # a handful of values whose weighted quantiles coincide: the values' quantiles instead
    few, _ = rcs_basis(np.array([0.0, 1.0, 2.0, 3.0]), 2, np.array([1.0, 1000.0, 1.0, 1.0]))
    assert np.isfinite(few).all()
