"""The cut of a small count: the largest step beyond a straight trend (issue 13).

On a count with a handful of values (mature categories, 0 to 5) whose retention also rises
steadily, the maximally selected chi-square cuts where the rows split best, not where
retention jumps; :func:`models.steptrend.step_beyond_trend_cuts` places the cut at the step.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit

import models.steptrend
from models.binning import BinnedMetric, best_cut, chi2_at_cuts
from models.finder import ThresholdFinder
from models.steptrend import step_beyond_trend_cuts, uses_step_beyond_trend

LEVELS = np.arange(6.0)


def rows(rates, per_level):
    """Rows of a count 0..5 whose outcome share at each value is exactly ``rates``."""
    x, y = [], []
    for value, rate, n in zip(LEVELS, rates, per_level, strict=True):
        k = int(np.rint(rate * n))
        x += [value] * n
        y += [1] * k + [0] * (n - k)
    return np.array(x), np.array(y)


def binned(x, y):
    return BinnedMetric(x, y, max_candidates=200, min_side_share=0.05)


def retention(eta):
    """Retention from the log-hazard scale of the step-versus-trend test: the hazard over the
    horizon is ``exp(-eta)`` (the log-log link of :data:`models.steptrend.LINK`)."""
    return np.exp(-np.exp(-eta))


# a steep straight trend in the log hazard (0.7 per value) plus a jump of 0.7 at 3
STEP_AT_3 = retention(-0.3 + 0.7 * LEVELS + 0.7 * (LEVELS >= 3))
PURE_TREND = retention(-0.3 + 0.6 * LEVELS)
# straight on the logistic scale instead: a smooth curve, bent against the log-hazard line
LOGISTIC_TREND = expit(-1.0 + 0.8 * LEVELS)
# most rows in the middle, as with mature categories
PER_LEVEL = [300, 1500, 3000, 1500, 700, 300]


def test_a_step_on_a_trend_is_cut_at_the_step_not_where_rows_split_best():
    b = binned(*rows(STEP_AT_3, PER_LEVEL))
    assert uses_step_beyond_trend(b)
    chi_cut = int(best_cut(chi2_at_cuts(b.n, b.pos, 0.05)))
    assert b.edges[chi_cut] == 2  # the chi-square cut splits the rows, below the jump
    cut = step_beyond_trend_cuts(b.n[None], b.pos[None], np.nan_to_num(b.xmean), 0.05)
    assert b.edges[cut[0]] == 3


def test_the_finder_recovers_the_step_at_3_and_calls_it_a_step():
    x, y = rows(STEP_AT_3, PER_LEVEL)
    finder = ThresholdFinder(n_bootstrap=99, random_state=0).fit(x, y)
    ev = finder.evidence_
    assert finder.threshold_ == 3
    assert ev["cut_rule"] == "largest step beyond a straight trend in the log hazard"
    assert ev["step_vs_trend"]["one_sided"] == "step up"
    assert ev["kind"] == "step"
    assert finder.ci_ == (3, 3)


def test_a_pure_straight_trend_is_not_a_step():
    x, y = rows(PURE_TREND, PER_LEVEL)
    ev = ThresholdFinder(n_bootstrap=99, random_state=0).fit(x, y).evidence_
    assert ev["p_value"] < 0.05  # retention rises with the count ...
    assert ev["step_vs_trend"]["statistic"] < 0.01  # ... on a line (rounded counts)
    assert ev["kind"] == "trend_only"


def test_a_trend_straight_on_the_logistic_scale_is_not_a_step_either():
    # the log-hazard line misfits a logistic line at its ends, but no single step fits
    # the bend: still a trend (7,300 independent rows, so power is not what saves it)
    assert models.steptrend.LINK == "loglog"
    x, y = rows(LOGISTIC_TREND, PER_LEVEL)
    ev = ThresholdFinder(n_bootstrap=99, random_state=0).fit(x, y).evidence_
    assert ev["p_value"] < 0.05
    assert ev["step_vs_trend"]["statistic"] > 0.5  # the bend is seen ...
    assert ev["step_vs_trend"]["p_value"] > 0.05  # ... and not taken for a step
    assert ev["kind"] == "trend_only"


def test_a_step_down_is_not_the_milestone_of_a_rising_count():
    # retention rises with the count, but drops back at 3: no upward step beyond the line
    dip = retention(-0.3 + 0.6 * LEVELS - 0.8 * (LEVELS >= 3) + 0.8 * (LEVELS >= 4))
    x, y = rows(dip, PER_LEVEL)
    b = binned(x, y)
    cut = step_beyond_trend_cuts(b.n[None], b.pos[None], np.nan_to_num(b.xmean), 0.05)
    assert b.edges[cut[0]] != 3
    ev = ThresholdFinder(n_bootstrap=99, random_state=0).fit(x, y).evidence_
    assert ev["threshold"] == 4  # the jump back up is the upward step


def test_fewer_than_four_values_or_many_values_keep_the_chi_square_cut():
    x, y = rows(STEP_AT_3, PER_LEVEL)
    small = x <= 2
    assert not uses_step_beyond_trend(binned(x[small], y[small]))
    rng = np.random.default_rng(0)
    rate = rng.gamma(2.0, 5.0, 3000)
    out = (rng.random(3000) < expit(rate / 5 - 1)).astype(int)
    assert not uses_step_beyond_trend(binned(rate, out))


def _penalised_loglik(x, n, s, beta, link):
    """Log-likelihood plus half the log-determinant of the Fisher information, by hand."""
    eta = x @ beta
    mu = 1 / (1 + np.exp(-eta)) if link == "logit" else np.exp(-np.exp(-eta))
    dmu = mu * (1 - mu) if link == "logit" else mu * np.exp(-eta)
    w = n * dmu**2 / (mu * (1 - mu))
    info = x.T @ (x * w[:, None])
    return float(s @ np.log(mu) + (n - s) @ np.log(1 - mu) + 0.5 * np.linalg.slogdet(info)[1])


@pytest.mark.parametrize("link", ["loglog", "logit"])
def test_the_firth_fit_maximises_the_penalised_likelihood_of_its_link(link):
    # grouped rows of a trend and a step; at the fit, every direction of the penalised
    # likelihood (computed here from its definition) is flat, and moving off it loses
    x = np.column_stack([np.ones(6), LEVELS - 2.5, (LEVELS >= 3).astype(float)])
    n = np.array([300.0, 1500, 3000, 1500, 700, 300])
    s = np.rint(n * retention(-0.3 + 0.5 * LEVELS + 0.6 * (LEVELS >= 3)))
    value, beta, _ = models.steptrend.firth_fit(x, n, s, link=link)
    assert value == pytest.approx(_penalised_loglik(x, n, s, beta, link), abs=1e-8)
    h = 1e-5
    for j in range(3):
        e = np.eye(3)[j] * h
        up, down = (_penalised_loglik(x, n, s, beta + d, link) for d in (e, -e))
        assert (up - down) / (2 * h) == pytest.approx(0.0, abs=1e-3)
        assert max(up, down) <= value + 1e-9
    if link == "loglog":  # data drawn from this link: the step comes back
        assert beta[2] == pytest.approx(0.6, abs=0.1)


def test_the_design_effect_of_independent_rows_is_about_one_on_either_link():
    rng = np.random.default_rng(3)
    rows = 6000
    level = rng.integers(0, 6, rows)
    y = rng.random(rows) < retention(-0.3 + 0.5 * level)
    x = np.column_stack([np.ones(6), LEVELS - 2.5])
    for link in ("loglog", "logit"):
        n = np.bincount(level, minlength=6).astype(float)
        s = np.bincount(level, weights=y, minlength=6)
        _, beta, _ = models.steptrend.firth_fit(x, n, s, link=link)
        codes = np.arange(rows)  # every row its own account
        clusters = models.steptrend.Clusters.from_rows(codes, level, y.astype(float), 6)
        deff = models.steptrend.design_effect(x, x @ beta, clusters.n, clusters.pos, link=link)
        assert 0.85 < deff < 1.15, (link, deff)
        # one account repeating each row five times: the design effect is about five
        rep = models.steptrend.Clusters.from_rows(
            np.repeat(codes, 5), np.repeat(level, 5), np.repeat(y, 5).astype(float), 6
        )
        deff5 = models.steptrend.design_effect(x, x @ beta, rep.n, rep.pos, link=link)
        assert 4.3 < deff5 < 5.7, (link, deff5)
