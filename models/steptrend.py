"""Step or smooth trend: does a step at a cut explain a binary outcome beyond a trend?

A maximally selected chi-square is large for any monotone association, so a smooth trend
also produces a "threshold". This module holds the test :class:`models.finder.ThresholdFinder`
runs at its cut: trend + step against trend for retention over the label's horizon, on
the log-hazard scale (the log-log link of the grouped proportional-hazards model,
:data:`LINK`), the trend a restricted cubic spline of the metric, both fitted on the binned
metric with Firth's penalised likelihood (finite even under perfect separation).

- :func:`rcs_basis`: the restricted (natural) cubic spline basis of the trend;
- :func:`firth_fit`: a Firth-penalised grouped (binomial) fit, log-log or logistic link;
- :func:`step_lrt`: the penalised likelihood-ratio statistic of the step;
- :func:`step_vs_trend`: the test with its p-value (parametric bootstrap when the cut was
  selected on the same data, chi-square(1) at a fixed cut);
- :func:`step_beyond_trend_cuts`: the cut search of a small count (four to six values): the
  largest upward step beyond the straight trend (:func:`uses_step_beyond_trend`);
- :class:`Clusters` and :func:`design_effect`: the rows of each account (snapshot rows repeat
  accounts), and the design effect of the step that turns the likelihood ratio into a
  cluster-robust statistic.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import sparse, stats

from models.binning import BinnedMetric, best_cut, chi2_at_cuts

__all__ = [
    "Clusters",
    "design_effect",
    "firth_fit",
    "rcs_basis",
    "step_beyond_trend_cuts",
    "step_lrt",
    "step_vs_trend",
    "uses_step_beyond_trend",
]


#: Link of the step-versus-trend models. Retention over the label's horizon is modelled as
#: ``p = exp(-exp(-eta))`` (the log-log link, ``eta = -log H`` with ``H`` the cumulative
#: churn hazard over the horizon): the grouped proportional-hazards model of Prentice &
#: Gloeckler (1978), the complementary log-log model of churn. A trend is then a trend in
#: the log hazard, and a step a jump of the hazard by a constant factor. Churn is a time to
#: an event, and usage acts on it through the hazard (a proportional effect per unit, as
#: the demo plants it and as survival models of churn assume); on the logistic scale such a
#: trend bends once retention approaches 1, and a straight logistic trend over a small
#: count (mature categories, 0 to 5) then misfits the ends and absorbs part of a real step.
#: ``"logit"`` keeps the logistic model.
LINK = "loglog"
_LINKS = ("logit", "loglog")
_LINK_WORDS = {"logit": "logistic", "loglog": "log-hazard (log-log link)"}


def _glm(eta: np.ndarray, link: str) -> tuple[np.ndarray, ...]:
    """Per bin: ``mu``, ``log mu``, ``log(1 - mu)``, the working weight per row
    ``(dmu/deta)^2 / (mu (1 - mu))``, the score factor ``(dmu/deta) / (mu (1 - mu))`` and
    the log-derivative of the working weight in ``eta`` (Firth's penalty)."""
    if link == "logit":
        log_mu = -np.logaddexp(0.0, -eta)
        log_1mu = -np.logaddexp(0.0, eta)
        mu = np.exp(log_mu)
        return mu, log_mu, log_1mu, mu * (1.0 - mu), np.ones_like(mu), 1.0 - 2.0 * mu
    if link != "loglog":
        raise ValueError(f"link must be one of {', '.join(_LINKS)}, got {link!r}")
    eta = np.clip(eta, -35.0, 35.0)
    u = np.exp(-eta)  # the cumulative hazard
    log_mu = -u
    log_1mu = np.log(-np.expm1(-u))
    mu = np.exp(log_mu)
    ratio = np.exp(log_mu - eta - log_1mu)  # mu u / (1 - mu)
    return mu, log_mu, log_1mu, u * ratio, np.exp(-eta - log_1mu), u - 2.0 + ratio


class Clusters:
    """The rows of a binned metric by cluster (account): a clusters x bins count matrix.

    ``n`` counts the rows of each (cluster, bin) cell and ``pos`` their positive outcomes
    (both sparse CSR, clusters on the rows). Built by :meth:`from_rows`.
    """

    def __init__(self, n: sparse.csr_matrix, pos: sparse.csr_matrix) -> None:
        self.n = n
        self.pos = pos

    @classmethod
    def from_rows(
        cls, codes: np.ndarray, bin_of_row: np.ndarray, y: np.ndarray, n_bins: int
    ) -> Clusters:
        """From each row's cluster code (0..G-1), bin and 0/1 outcome."""
        n_groups = int(codes.max()) + 1
        shape = (n_groups, int(n_bins))
        ones = np.ones(codes.size)
        n = sparse.csr_matrix((ones, (codes, bin_of_row)), shape=shape)
        pos = sparse.csr_matrix((y.astype(float), (codes, bin_of_row)), shape=shape)
        n.sum_duplicates()
        pos.sum_duplicates()
        return cls(n, pos)

    @property
    def n_groups(self) -> int:
        return int(self.n.shape[0])


def design_effect(
    x: np.ndarray, eta: np.ndarray, n_cell: Any, pos_cell: Any, *, link: str | None = None
) -> float:
    """Design effect of the last coefficient: its cluster-robust over its model variance.

    ``x`` is the design per (kept) bin, ``eta`` the fitted linear predictor per bin (the
    outcome rate through ``link``), ``n_cell`` and ``pos_cell`` the clusters x bins rows and
    positives (sparse or dense). The robust variance is the sandwich ``A^-1 B A^-1`` with
    ``A = X' W X`` (the binomial information) and ``B`` the sum over clusters of the outer
    product of each cluster's score ``X' c (pos_g - n_g mu)`` (``c`` the link's score
    factor, 1 for the logistic link), with the small-sample factor ``G / (G - 1)``; the
    model variance is ``A^-1``. About 1 when the rows are independent; about the average
    cluster size when an account's rows share one outcome and one metric level.
    """
    mu, _, _, w_row, c, _ = _glm(np.asarray(eta, dtype=float), link or LINK)
    w = np.asarray(n_cell.sum(axis=0)).ravel() * w_row
    a = x.T @ (x * w[:, None])
    a += 1e-10 * max(1.0, float(np.trace(a))) * np.eye(x.shape[1])
    resid = pos_cell - n_cell.multiply(mu[None, :]) if sparse.issparse(n_cell) else None
    if resid is None:
        resid = pos_cell - n_cell * mu[None, :]
    score = np.asarray(resid @ (x * c[:, None]))  # clusters x coefficients
    g = score.shape[0]
    meat = score.T @ score * (g / (g - 1.0) if g > 1 else 1.0)
    try:
        inv = np.linalg.inv(a)
    except np.linalg.LinAlgError:
        inv = np.linalg.pinv(a)
    robust = float((inv @ meat @ inv)[-1, -1])
    model = float(inv[-1, -1])
    if not (model > 0 and math.isfinite(robust)):
        return 1.0
    return max(robust / model, 1e-6)


#: Degrees of freedom of the smooth trend: a restricted cubic spline with three knots. With
#: four knots (3 df) the spline bends as sharply as a real step blurred by a few months of
#: noise in the metric, and a step the data plainly hold (the demo's planted utilization at
#: 10 per seat) was called a trend in five of eight generated datasets; three knots still
#: follow a saturating or S-shaped smooth curve (``bench/null_sim.py --scenario smooth``, the
#: demo's ``--effect smooth``) without a false step.
TREND_DF = 2
#: Fewest distinct values (bins) for a spline trend; below, the trend is linear (in the link) in
#: the metric (a dose-response over a small count such as mature categories, 0 to 5): with
#: six values a spline, its intercept and the step would leave two degrees of freedom and
#: could draw any step as a "trend".
SPLINE_MIN_LEVELS = 7


def rcs_basis(x: np.ndarray, df: int, weights: np.ndarray | None = None) -> tuple[np.ndarray, str]:
    """Restricted (natural) cubic spline basis with ``df`` columns, knots at quantiles.

    The knots sit at Harrell's standard quantiles (10%, 50%, 90% for three knots; 5%, 35%,
    65%, 95% for four) of the rows: ``x`` holds one value per bin and ``weights`` its rows,
    so a long, sparse tail of a count (a few accounts with 150 events) does not pull the
    knots out of the bulk of the data, where the trend then could not bend. When the
    weighted quantiles do not give distinct knots (a metric with a handful of values), the
    knots fall back to the quantiles of the distinct values.
    """
    if df <= 1:
        return x[:, None], "linear"
    probs = np.array({2: [0.10, 0.50, 0.90], 3: [0.05, 0.35, 0.65, 0.95]}[df])
    knots = None
    if weights is not None:
        order = np.argsort(x, kind="stable")
        share = np.cumsum(weights[order]) / float(np.sum(weights))
        at = np.minimum(np.searchsorted(share, probs, side="left"), x.size - 1)
        knots = x[order][at]
        if np.any(np.diff(knots) <= 0):
            knots = None
    if knots is None:
        knots = np.quantile(x, probs)
    span = knots[-1] - knots[0]
    z = (x - knots[0]) / span
    t = (knots - knots[0]) / span
    k = t.size
    cols = [z]
    for j in range(k - 2):
        cols.append(
            np.clip(z - t[j], 0, None) ** 3
            - np.clip(z - t[k - 2], 0, None) ** 3 * (t[k - 1] - t[j]) / (t[k - 1] - t[k - 2])
            + np.clip(z - t[k - 1], 0, None) ** 3 * (t[k - 2] - t[j]) / (t[k - 1] - t[k - 2])
        )
    return np.column_stack(cols), f"restricted cubic spline, {k} knots"


def firth_fit(
    x: np.ndarray,
    n: np.ndarray,
    s: np.ndarray,
    *,
    free: np.ndarray | None = None,
    beta: np.ndarray | None = None,
    max_iter: int = 50,
    link: str | None = None,
) -> tuple[float, np.ndarray, np.ndarray]:
    """Firth-penalised grouped (binomial) fit: (penalised log-likelihood, beta, mu).

    Firth's penalty (half the log-determinant of the Fisher information of the whole
    design ``x``) keeps the estimates finite when a cut separates the outcome perfectly,
    where plain maximum likelihood has no maximum. Coefficients outside ``free`` stay at
    their starting value (zero): fitting the reduced model inside the full model's penalty
    makes the penalised likelihood-ratio test nested (Heinze & Schemper 2002). With the
    log-log ``link`` the penalty is the same Jeffreys term, maximised by Fisher scoring on
    its gradient (Firth 1993; for a non-canonical link it keeps the estimates finite, as
    with the logistic link, without the logistic link's exact bias correction).
    """
    p = x.shape[1]
    link = link or LINK
    free = np.ones(p, dtype=bool) if free is None else free
    beta = np.zeros(p) if beta is None else beta.copy()
    if not beta.any():
        rate = float(np.clip(s.sum() / n.sum(), 1e-6, 1 - 1e-6))
        beta[0] = math.log(rate / (1 - rate)) if link == "logit" else -math.log(-math.log(rate))

    def evaluate(b: np.ndarray) -> tuple:
        mu, log_mu, log_1mu, w_row, c, g = _glm(x @ b, link)
        w = n * w_row
        info = x.T @ (x * w[:, None])
        info += 1e-10 * max(1.0, float(np.trace(info))) * np.eye(p)
        sign, logdet = np.linalg.slogdet(info)
        value = float(s @ log_mu + (n - s) @ log_1mu)
        value = value + 0.5 * logdet if sign > 0 else -np.inf
        return value, mu, w, info, c, g

    def solve(a: np.ndarray, rhs: np.ndarray) -> np.ndarray:
        try:
            return np.linalg.solve(a, rhs)
        except np.linalg.LinAlgError:
            return np.linalg.pinv(a) @ rhs

    all_free = bool(free.all())
    current, mu, w, info, c, g = evaluate(beta)
    for _ in range(max_iter):
        inv = solve(info, np.eye(p))
        hat = w * np.einsum("ij,jk,ik->i", x, inv, x)
        score = x.T @ (c * (s - n * mu) + 0.5 * hat * g)
        if all_free:
            delta = inv @ score
        else:
            delta = np.zeros(p)
            delta[free] = solve(info[free][:, free], score[free])
        t = 1.0
        while True:
            cand = evaluate(beta + t * delta)
            if cand[0] >= current - 1e-10 or t < 1e-4:
                break
            t /= 2.0
        if cand[0] < current:
            break
        beta = beta + t * delta
        improved = cand[0] - current
        current, mu, w, info, c, g = cand
        if np.max(np.abs(t * delta)) < 1e-7 or improved < 1e-9:
            break
    return current, beta, mu


def step_lrt(
    x_trend: np.ndarray,
    step: np.ndarray,
    n: np.ndarray,
    s: np.ndarray,
    beta0: np.ndarray | None = None,
) -> tuple[float, np.ndarray, np.ndarray]:
    """Penalised LRT of a step on top of the trend: (statistic, trend mu, full beta)."""
    x = np.hstack([x_trend, step[:, None].astype(float)])
    free = np.ones(x.shape[1], dtype=bool)
    free[-1] = False
    start = None if beta0 is None else np.append(beta0[:-1], 0.0)
    ll0, b0, mu0 = firth_fit(x, n, s, free=free, beta=start)
    ll1, b1, _ = firth_fit(x, n, s, beta=b0)
    return max(0.0, 2.0 * (ll1 - ll0)), mu0, b1


#: Fewest distinct values (bins) for which the cut is placed at the largest step beyond the
#: straight trend (:func:`step_beyond_trend_cuts`): with three values, a line and a step
#: fill all three, and every cut fits them equally well.
STEP_SEARCH_MIN_LEVELS = 4


def uses_step_beyond_trend(binned: BinnedMetric) -> bool:
    """Whether the cut of this metric is the largest step beyond a straight trend.

    True for a small count (between :data:`STEP_SEARCH_MIN_LEVELS` and
    :data:`SPLINE_MIN_LEVELS` distinct values, such as mature categories, 0 to 5), where the
    trend of the step-versus-trend test is a straight line in the link; see
    :func:`step_beyond_trend_cuts`.
    """
    levels = int((binned.n > 0).sum())
    return STEP_SEARCH_MIN_LEVELS <= levels < SPLINE_MIN_LEVELS


def _linear_trend(xmean: np.ndarray) -> np.ndarray:
    """Intercept and standardised metric: the straight trend (in the link) of a small count."""
    sd = xmean.std()
    z = (xmean - xmean.mean()) / (sd if sd > 0 else 1.0)
    return np.column_stack([np.ones(xmean.size), z])


def step_beyond_trend_cuts(
    n: np.ndarray, pos: np.ndarray, xmean: np.ndarray, min_side_share: float
) -> np.ndarray:
    """Per replicate, the cut whose step beyond a straight trend (in the link) is the largest.

    A milestone is where retention *jumps*, not where it merely rises. On a small count
    whose outcome rate also rises steadily with the count (each mature category helps, and
    a third one helps more), the maximally selected chi-square picks the cut that best
    splits the rows in two, which on a steep trend is near the median of the rows, wherever
    the jump is. Here each feasible cut ``c`` (both sides at least ``min_side_share`` of
    the rows) is scored by the penalised likelihood-ratio statistic of the step
    ``d * 1[x >= edges[c]]`` in ``g(p) = a + b * x + d * 1[x >= edges[c]]`` (``g`` the
    link :data:`LINK`)
    (:func:`step_lrt`), and the cut with the largest statistic among the steps in the
    direction of the association (the sign of the rate difference at the chi-square cut) is
    returned. Where no such step exists, or the replicate has fewer than
    :data:`STEP_SEARCH_MIN_LEVELS` non-empty bins, the chi-square cut is returned.

    ``n`` and ``pos`` hold one replicate per row (bins on the last axis); ``xmean`` the mean
    metric value of each bin. Returns the cut index per replicate, -1 where none is
    feasible. The same search runs in the step-versus-trend test's bootstrap and in the
    interval's, so both account for the selection of the cut this way.
    """
    n = np.atleast_2d(np.asarray(n, dtype=float))
    pos = np.atleast_2d(np.asarray(pos, dtype=float))
    chi = chi2_at_cuts(n, pos, min_side_share)
    out = best_cut(chi)
    bins = np.arange(n.shape[-1])
    for r in range(n.shape[0]):
        keep = n[r] > 0
        if out[r] < 0 or int(keep.sum()) < STEP_SEARCH_MIN_LEVELS:
            continue
        above = bins > out[r]
        rate_above = pos[r, above].sum() / n[r, above].sum()
        rate_below = pos[r, ~above].sum() / n[r, ~above].sum()
        direction = 1.0 if rate_above >= rate_below else -1.0
        x_trend = _linear_trend(xmean[keep])
        nk, sk = n[r, keep], pos[r, keep]
        best, best_stat = -1, -np.inf
        for c in np.flatnonzero(np.isfinite(chi[r])):
            step = (bins > c)[keep]
            if step.all() or not step.any():
                continue
            stat, _, beta = step_lrt(x_trend, step, nk, sk)
            if beta[-1] * direction > 0 and stat > best_stat + 1e-9:
                best, best_stat = int(c), stat
        if best >= 0:
            out[r] = best
    return out


def step_vs_trend(
    binned: BinnedMetric,
    cut: int,
    *,
    selected: bool,
    search: Callable[[np.ndarray, np.ndarray], np.ndarray],
    n_sim: int,
    rng: np.random.Generator | None,
    clusters: Clusters | None = None,
    direction: float | None = None,
) -> dict:
    """Test of g(p) = trend + step at ``cut`` against g(p) = trend, ``g`` the link :data:`LINK`.

    When the cut was selected by the search, the statistic is inflated by the selection,
    so its p-value comes from a parametric bootstrap: outcomes simulated from the fitted
    smooth trend, the cut searched again in each replicate, the statistic recomputed at
    the replicate's own cut. At a fixed (pinned) cut the chi-square(1) reference holds.

    **Clustered rows** (``clusters``: snapshot rows, several per account). The likelihood
    ratio treats rows as independent; when an account's rows share a persistent usage level
    and a persistent churn propensity, it is inflated by about the design effect of the
    step (up to the number of rows per account) and a pure trend, or pure noise, is called
    a step far too often. With ``clusters`` the statistic is therefore the likelihood ratio
    divided by the design effect of the step coefficient (:func:`design_effect`: its
    cluster-robust sandwich variance over its model variance, the working-independence
    "generalised" test of Rotnitzky & Jewell 1990 in Rao-Scott form), which is again
    chi-square(1) at a fixed cut whatever the correlation within accounts. The selection of
    the cut is then calibrated as before by the parametric bootstrap under the fitted trend:
    outcomes are simulated for every row (binomial per account and bin), the cut searched
    again and the same adjusted statistic computed in each replicate. Because the adjusted
    statistic does not depend on the correlation within accounts, replicates simulated with
    independent rows are a valid reference for it, with no model of that correlation (a
    random account effect would need its variance estimated, and a cluster bootstrap of the
    rows resamples under the alternative, not under the trend).

    Parameters
    ----------
    binned : BinnedMetric
        The metric cut into bins (its ``n``, ``pos``, ``xmean`` and ``n_bins``).
    cut : int
        Cut index: the step is 1 in the bins above ``cut``.
    selected : bool
        Whether the cut was selected on these data (bootstrap p-value) or fixed.
    search : callable
        The finder's cut search: bin counts and positives, one replicate per row, to the
        index of the best cut per row (-1 where none is feasible).
    n_sim : int
        Replicates of the parametric bootstrap.
    rng : numpy Generator or None
        Without one, the chi-square(1) p-value is reported.
    clusters : Clusters, optional
        The rows by account; the statistic is then adjusted by the design effect.
    direction : +1, -1 or None
        One-sided test: only a step of this sign (+1: the outcome rate jumps up at the cut)
        counts; a step of the other sign, observed or in a replicate, has statistic 0. Used
        with the search :func:`step_beyond_trend_cuts`, which only looks for such steps.

    Returns
    -------
    dict
        ``test``, ``statistic``, ``p_value``, ``p_value_method``, ``p_value_asymptotic``,
        ``df``, ``trend`` (and ``note`` when a step cannot be told from a trend); with
        ``clusters`` also ``statistic_unadjusted``, ``design_effect`` and ``n_groups``.
    """
    n, pos = binned.n, binned.pos
    keep = n > 0
    levels = int(keep.sum())
    step = (np.arange(binned.n_bins) > cut)[keep]
    out: dict[str, Any] = {
        "test": (
            f"Firth-penalised likelihood ratio, {_LINK_WORDS[LINK]}(trend + step) vs "
            f"{_LINK_WORDS[LINK]}(trend)"
        ),
        "statistic": None,
        "p_value": None,
        "df": 1,
        "trend": None,
    }
    if levels < 3 or step.all() or not step.any():
        out["note"] = (
            "the metric has fewer than three distinct values (bins), so a step cannot be "
            "told apart from a trend"
        )
        return out
    df = 1 if levels < SPLINE_MIN_LEVELS else min(TREND_DF, levels - 2)
    basis, trend = rcs_basis(binned.xmean[keep], df, n[keep])
    sd = basis.std(axis=0)
    basis = (basis - basis.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    x_trend = np.hstack([np.ones((levels, 1)), basis])
    nk, sk = n[keep], pos[keep]
    statistic, mu0, beta = step_lrt(x_trend, step, nk, sk)
    if direction is not None and beta[-1] * direction <= 0:
        statistic = 0.0
    cell_n = cell_pos = None
    if clusters is not None:
        cell_n = clusters.n[:, np.flatnonzero(keep)].tocsr()
        cell_pos = clusters.pos[:, np.flatnonzero(keep)].tocsr()
        deff = _deff(x_trend, step, beta, cell_n, cell_pos)
        out.update(
            test=out["test"] + ", divided by the design effect of the step (accounts)",
            statistic_unadjusted=statistic,
            design_effect=deff,
            n_groups=clusters.n_groups,
        )
        statistic = statistic / deff
    asymptotic = float(stats.chi2.sf(statistic, 1))
    if direction is not None:
        out["one_sided"] = "step up" if direction > 0 else "step down"
        asymptotic = asymptotic / 2.0 if statistic > 0 else 1.0
    out.update(statistic=statistic, trend=trend, p_value_asymptotic=asymptotic)
    if not selected or rng is None:
        out.update(p_value=asymptotic, p_value_method="chi-square(1) at a fixed cut")
        return out
    # Parametric bootstrap under the smooth trend, the cut searched again each time.
    if cell_n is None:
        sim = rng.binomial(nk.astype(np.int64), np.clip(mu0, 0.0, 1.0), size=(n_sim, levels))
        sim_cells = None
    else:
        # every row simulated (binomial per account and bin), kept per cell for the design
        # effect of each replicate
        p_cell = np.clip(mu0, 0.0, 1.0)[cell_n.indices]
        trials = np.rint(cell_n.data).astype(np.int64)
        sim_cells = rng.binomial(trials, p_cell, size=(n_sim, trials.size)).astype(float)
        sim = np.stack(
            [np.bincount(cell_n.indices, weights=row, minlength=levels) for row in sim_cells]
        )
    full_n = np.broadcast_to(n, (n_sim, n.size))
    full_pos = np.zeros((n_sim, n.size))
    full_pos[:, keep] = sim
    cuts = search(full_n, full_pos)
    bin_index = np.arange(binned.n_bins)[keep]
    exceed, used = 0, 0
    for i in range(n_sim):
        if cuts[i] < 0:
            continue
        step_i = bin_index > cuts[i]
        if step_i.all() or not step_i.any():
            continue
        s_i = sim[i].astype(float)
        stat_i, _, beta_i = step_lrt(x_trend, step_i, nk, s_i, beta0=beta)
        if direction is not None and beta_i[-1] * direction <= 0:
            stat_i = 0.0
        if sim_cells is not None:
            pos_i = sparse.csr_matrix(
                (sim_cells[i], cell_n.indices, cell_n.indptr), shape=cell_n.shape
            )
            stat_i = stat_i / _deff(x_trend, step_i, beta_i, cell_n, pos_i)
        used += 1
        exceed += stat_i >= statistic * (1 - 1e-9)
    what = "" if cell_n is None else ", rows simulated per account"
    out.update(
        p_value=(1 + exceed) / (1 + used),
        p_value_method=(
            f"parametric bootstrap under the fitted trend, cut searched again ({used} "
            f"replicates{what})"
        ),
    )
    return out


def _deff(
    x_trend: np.ndarray,
    step: np.ndarray,
    beta: np.ndarray,
    cell_n: sparse.csr_matrix,
    cell_pos: sparse.csr_matrix,
) -> float:
    """Design effect of the step in the full (trend + step) fit ``beta``."""
    x = np.hstack([x_trend, step[:, None].astype(float)])
    return design_effect(x, x @ beta, cell_n, cell_pos)
