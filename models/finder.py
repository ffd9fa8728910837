"""The threshold finder: the cut point of a metric that best separates a binary outcome.

:class:`ThresholdFinder` searches the rule ``metric >= threshold`` by the maximally selected
chi-square, with a permutation p-value, a bootstrap interval of the cut point and a test of
a step against a smooth trend (:mod:`models.steptrend`), on the binned metric of
:mod:`models.binning`.

The milestone derivations built on the finder are in :mod:`models.thresholds`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse, stats

from features.values import jsonable
from models.binning import BinnedMetric, best_cut, chi2_at_cuts
from models.defaults import CONFIDENCE, MAX_CANDIDATES, MIN_SIDE_SHARE, N_BOOTSTRAP
from models.stats import binary, make_rng, num, ratio, to_float
from models.steptrend import (
    Clusters,
    step_beyond_trend_cuts,
    step_vs_trend,
    uses_step_beyond_trend,
)

__all__ = ["CRITERION", "MIN_ROWS", "ThresholdFinder"]

#: Fewest rows a threshold search accepts.
MIN_ROWS = 10
#: Name of the search criterion, as written into the evidence.
CRITERION = "maximally selected chi-square"


# --------------------------------------------------------------------------------------
# ThresholdFinder
# --------------------------------------------------------------------------------------


class ThresholdFinder:
    """Find the cut point of a metric that best separates a binary outcome.

    The rule is ``metric >= threshold``. Candidate cut points are the metric's distinct
    values, or, when it has more than ``max_candidates`` of them (rates), at most
    ``max_candidates`` observed values at evenly spaced quantiles; only cuts that leave at
    least ``min_side_share`` of the rows on each side are considered.

    **Criterion: maximally selected chi-square** (Miller & Siegmund 1982; Lausen &
    Schumacher 1992; the ``maxstat`` method). At each candidate the 2x2 table (at or above
    vs below, outcome 1 vs 0) gives Pearson's chi-square; the threshold is the cut with the
    largest one (the lowest such cut on ties). It is the standard way to dichotomise a
    continuous predictor against a binary outcome: it needs no model of the trend, it
    recovers a true step exactly, and its null distribution under selection is known.
    Because the maximum over many cuts is inflated, its p-value comes from a permutation
    test of the outcome (the same maximum recomputed ``n_bootstrap`` times on permuted
    outcomes; each permutation is one multivariate hypergeometric draw over the bins).

    **Small counts: the largest step beyond the trend.** On a metric with four to six
    distinct values (mature categories, 0 to 5), where the step-versus-trend test's trend is
    a straight line in the log hazard, the cut is instead the one whose upward step beyond
    that line is the largest (:func:`models.steptrend.step_beyond_trend_cuts`): a milestone is where
    retention jumps, not where it merely rises, and on a steep trend the chi-square cut sits
    where the rows split best, wherever the jump is. The step-versus-trend test is then one
    sided (a step up), its bootstrap and the interval search the cut the same way, and the
    permutation test still tests the largest chi-square (any association).
    ``evidence_["cut_rule"]`` names the rule used.

    **Rows of one account** (``groups``; snapshot rows repeat an account month after
    month, with a persistent usage level and a persistent churn propensity). Permuting rows
    would then break the correlation within accounts that the observed statistic keeps,
    and pure noise would pass for a threshold in about half of the samples. With ``groups``
    every test works on whole accounts instead:

    - the permutation test permutes whole accounts: each account's sequence of outcomes (its
      rows in the order given, which is the snapshot order) moves, as a block, to another
      account with the same number of rows, whose metric values it then meets. Under the
      null (the metric process of an account independent of its outcome process) these
      pairings are exchangeable, and the within-account correlation of both stays intact;
      accounts with a row count no other account has keep their own outcomes;
    - the step-versus-trend statistic is divided by the design effect of the step
      (:mod:`models.steptrend`), which makes it cluster-robust;
    - the interval resamples whole accounts (see below);
    - :meth:`evaluate` divides the fixed-cut chi-square by the design effect of the
      difference in rates (Rao & Scott 1984).

    **Step or smooth trend.** A maximally selected statistic is large for any monotone
    association, so a smooth trend would also produce a "threshold". The evidence therefore
    tests whether a step at the chosen cut explains the outcome better than a smooth trend:
    a likelihood-ratio test of trend + step against trend, on the log-hazard scale (the
    log-log link of retention over the horizon, the grouped proportional-hazards model of
    churn: :data:`models.steptrend.LINK`), the trend a restricted cubic spline of the metric
    (three knots at the 10th, 50th and 90th percentiles of the rows; linear for a metric
    with fewer than seven values; see :data:`models.steptrend.TREND_DF`), both fitted with
    Firth's penalised likelihood so that a perfect separation still has a finite answer.
    ``evidence_["kind"]`` is then

    - ``"no_signal"``: the permutation p-value is not below ``1 - confidence``;
    - ``"trend_only"``: the outcome changes with the metric, but a step at the cut adds
      nothing significant over a smooth trend: the threshold is a convenient cut of a
      curve, not a tipping point;
    - ``"step"``: the step is significant on top of the trend; also when the metric has
      only two values (a step and a trend are then the same thing) and when the split is
      perfect (outcome rates 0 and 1), which only an infinitely steep trend could match.

    Because the cut was chosen on the same data, the step statistic is inflated by the
    selection; its p-value therefore comes from a parametric bootstrap under the fitted
    smooth trend, re-running the cut search in each of ``n_bootstrap`` simulated outcome
    sets, so a pure trend is called a step in about ``1 - confidence`` of samples, not more.

    **Confidence interval.** Percentile bootstrap of the cut point: the whole search is
    repeated on ``n_bootstrap`` resamples of the rows, or of whole groups (accounts) when
    ``groups`` is given, since the rows of one account are not independent. The candidate
    grid stays that of the full data. Rows resampled with replacement are a multinomial
    draw over the (bin, outcome) cells, so one replicate costs a few hundred numbers, not a
    pass over the rows.

    Parameters
    ----------
    min_side_share : float, default 0.05
        Minimum share of rows on each side of a cut, in [0, 0.5).
    n_bootstrap : int, default 200
        Bootstrap replicates for the interval, and permutations for the p-value (>= 1).
    confidence : float, default 0.95
        Level of the interval; ``1 - confidence`` is the significance level of the tests.
    random_state : None, int, numpy Generator or SeedSequence
        Seed of the bootstrap and the permutations.
    max_candidates : int, default 200
        Most candidate cut points for metrics with more distinct values.

    Attributes
    ----------
    threshold_ : int, float or None
        The cut point (an int for integer metrics); None when no cut leaves
        ``min_side_share`` of the rows on each side.
    ci_ : tuple
        ``(low, high)`` bootstrap percentile interval of the cut point.
    evidence_ : dict
        JSON-serialisable evidence; see :meth:`fit`.
    candidates_ : ndarray
        The candidate cut points searched.
    statistics_ : ndarray
        Chi-square at each candidate (``-inf`` where a side is too small).

    Notes
    -----
    Without ``groups`` every test treats rows as independent: right for one row per account
    (tenure rows), optimistic for several (pass ``groups``).
    """

    def __init__(
        self,
        min_side_share: float = MIN_SIDE_SHARE,
        n_bootstrap: int = N_BOOTSTRAP,
        confidence: float = CONFIDENCE,
        random_state: Any = None,
        max_candidates: int = MAX_CANDIDATES,
    ) -> None:
        self.min_side_share = min_side_share
        self.n_bootstrap = n_bootstrap
        self.confidence = confidence
        self.random_state = random_state
        self.max_candidates = max_candidates

    # -- input checks ------------------------------------------------------------------

    def _check_params(self) -> None:
        if not (0.0 <= float(self.min_side_share) < 0.5):
            raise ValueError(f"min_side_share must be in [0, 0.5), got {self.min_side_share!r}")
        if not (0.0 < float(self.confidence) < 1.0):
            raise ValueError(f"confidence must be in (0, 1), got {self.confidence!r}")
        if not isinstance(self.n_bootstrap, (int, np.integer)) or self.n_bootstrap < 1:
            raise ValueError(f"n_bootstrap must be a positive integer, got {self.n_bootstrap!r}")
        if not isinstance(self.max_candidates, (int, np.integer)) or self.max_candidates < 2:
            raise ValueError(f"max_candidates must be an integer >= 2, got {self.max_candidates!r}")

    def _check_data(
        self, metric: Any, outcome: Any, groups: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        self._check_params()
        x = to_float(metric, "metric")
        y = binary(outcome, "outcome")
        if x.size != y.size:
            raise ValueError(
                f"metric and outcome must have the same length, got {x.size} and {y.size}"
            )
        n_nan = int(np.isnan(x).sum())
        if n_nan:
            raise ValueError(f"metric has {n_nan} missing (NaN) values")
        if np.isinf(x).any():
            raise ValueError(f"metric has {int(np.isinf(x).sum())} infinite values")
        if x.size < MIN_ROWS:
            raise ValueError(
                f"too few rows to search a threshold: need at least {MIN_ROWS}, got {x.size}"
            )
        n_pos = int(y.sum())
        if n_pos in (0, y.size):
            raise ValueError(
                f"outcome has a single class (all {int(y[0])}); a threshold needs both outcomes"
            )
        codes = None
        if groups is not None:
            g = pd.Series(np.asarray(groups)) if not isinstance(groups, pd.Series) else groups
            if len(g) != x.size:
                raise ValueError(
                    f"groups and metric must have the same length, got {len(g)} and {x.size}"
                )
            if g.isna().any():
                raise ValueError(f"groups has {int(g.isna().sum())} missing values")
            codes = pd.factorize(g, sort=False)[0].astype(np.int64)
        return x, y, codes

    # -- fitting -----------------------------------------------------------------------

    def fit(self, metric: Any, outcome: Any, groups: Any = None) -> ThresholdFinder:
        """Search the cut point, its interval and its evidence.

        Parameters
        ----------
        metric : array-like of numbers, shape (n,)
            A count or rate per row; no missing values.
        outcome : array-like of 0/1 or bool, shape (n,)
            The binary outcome (for example retained).
        groups : array-like, shape (n,), optional
            Group of each row (for example ``account_id``), rows of a group in time order;
            the permutation test, the step-versus-trend test and the bootstrap then work on
            whole groups (see the class docstring).

        Returns
        -------
        self

        Notes
        -----
        ``evidence_`` holds: ``n``, ``n_positive``, ``criterion``, ``cut_rule``, ``threshold``,
        ``statistic`` (chi-square at the cut), ``phi`` (``sqrt(statistic / n)``, comparable
        across sample sizes), ``p_value`` and ``p_value_method``, ``n_candidates``,
        ``n_at_or_above``, ``share_at_or_above``, ``rate_at_or_above``, ``rate_below``,
        ``lift`` (rate ratio), ``difference``, ``direction``, ``step_vs_trend``
        (``statistic``, ``p_value``, ``p_value_method``, ``p_value_asymptotic``, ``df``,
        ``trend``, ``test``; with ``groups`` also ``statistic_unadjusted``,
        ``design_effect`` and ``n_groups``), ``kind``, ``ci``,
        ``confidence``, ``bootstrap`` (``n_bootstrap``, ``n_valid``, ``resampled``,
        ``n_groups``, ``share_selecting_threshold``), ``min_side_share`` and ``curve``
        (outcome rate by metric decile).
        """
        x, y, codes = self._check_data(metric, outcome, groups)
        rng = make_rng(self.random_state)
        share = float(self.min_side_share)
        binned = BinnedMetric(x, y, max_candidates=int(self.max_candidates), min_side_share=share)
        chi = chi2_at_cuts(binned.n, binned.pos, share)
        search = self._cut_search(binned)
        cut = int(search(binned.n[None, :], binned.pos[None, :])[0])
        self.candidates_ = binned.edges.copy()
        self.statistics_ = chi
        alpha = 1.0 - float(self.confidence)
        n_feasible = int(np.isfinite(chi).sum())

        if cut < 0:
            self.threshold_ = None
            self.ci_ = (None, None)
            evidence = self._describe(binned, None)
            evidence.update(
                kind="no_signal",
                p_value=None,
                n_candidates=0,
                note=f"no cut point leaves {share:g} of the rows on each side",
            )
            self.evidence_ = jsonable(evidence)
            return self

        threshold = num(binned.edges[cut], binned.integral)
        statistic = float(chi[cut])
        # the association test: the largest chi-square over the cuts, whichever cut is kept
        max_chi = float(np.max(chi))
        if codes is None:
            p_value, perm_method = self._permutation_p(binned, max_chi, rng)
            clusters = None
        else:
            p_value, perm_method = self._group_permutation_p(binned, y, codes, max_chi, rng)
            clusters = Clusters.from_rows(codes, binned.bin_of_row, y, binned.n_bins)
        bootstrap, ci = self._bootstrap(binned, y, codes, threshold, rng, search)

        evidence = self._describe(binned, cut, selected=True, rng=rng, clusters=clusters)
        evidence.update(
            cut_rule=(
                "largest step beyond a straight trend in the log hazard"
                if uses_step_beyond_trend(binned)
                else CRITERION
            ),
            statistic=statistic,
            phi=math.sqrt(statistic / binned.n_rows),
            p_value=p_value,
            p_value_method=perm_method,
            n_candidates=n_feasible,
            ci=list(ci),
            confidence=float(self.confidence),
            bootstrap=bootstrap,
        )
        evidence["kind"] = self._kind(p_value, evidence, alpha)
        self.threshold_ = threshold
        self.ci_ = ci
        self.evidence_ = jsonable(evidence)
        return self

    def evaluate(self, metric: Any, outcome: Any, threshold: float, groups: Any = None) -> dict:
        """Evidence at a given (for example pinned) threshold, without searching.

        The same keys as ``evidence_`` after :meth:`fit`, except that the cut is fixed, so
        ``p_value`` is the chi-square test (1 df) and there is no interval. With ``groups``
        (accounts) the chi-square is divided by the design effect of the difference in
        rates, ``design_effect`` (Rao-Scott; see the class docstring), and the
        step-versus-trend statistic by the design effect of the step. Returns a
        JSON-serialisable dict.
        """
        if threshold is None or not math.isfinite(float(threshold)):
            raise ValueError(f"threshold must be a finite number, got {threshold!r}")
        x, y, codes = self._check_data(metric, outcome, groups)
        binned = BinnedMetric(
            x,
            y,
            max_candidates=int(self.max_candidates),
            min_side_share=float(self.min_side_share),
            extra_cut=float(threshold),
        )
        cut = binned.cut_index(float(threshold))
        chi = chi2_at_cuts(binned.n, binned.pos, 0.0)[cut]
        clusters = None
        if codes is not None:
            clusters = Clusters.from_rows(codes, binned.bin_of_row, y, binned.n_bins)
        evidence = self._describe(binned, cut, clusters=clusters)
        evidence["threshold"] = num(threshold, float(threshold).is_integer())
        if math.isfinite(chi) and evidence["n_at_or_above"] and evidence["n_at_or_above"] < x.size:
            statistic = float(chi)
            method = "chi-square test at a fixed cut (1 df)"
            if codes is not None:
                deff = _rate_difference_deff(binned, y, codes, cut)
                evidence.update(statistic_unadjusted=statistic, design_effect=deff)
                statistic = statistic / deff
                method += ", divided by the design effect over accounts (Rao-Scott)"
            p_value = float(stats.chi2.sf(statistic, 1))
            evidence.update(statistic=statistic, phi=math.sqrt(float(chi) / x.size))
        else:
            statistic, p_value = None, None
            evidence.update(statistic=None, phi=None)
            method = "chi-square test at a fixed cut (1 df)"
        evidence.update(
            p_value=p_value,
            p_value_method=method,
            confidence=float(self.confidence),
        )
        alpha = 1.0 - float(self.confidence)
        evidence["kind"] = "no_signal" if p_value is None else self._kind(p_value, evidence, alpha)
        return jsonable(evidence)

    # -- pieces ------------------------------------------------------------------------

    def _cut_search(self, binned: BinnedMetric):
        """The cut search of this metric: bin counts and positives (one replicate per row)
        to the cut index per replicate (-1 where none is feasible); see :meth:`fit`."""
        share = float(self.min_side_share)
        if uses_step_beyond_trend(binned):
            xmean = np.nan_to_num(binned.xmean)
            return lambda n, pos: step_beyond_trend_cuts(n, pos, xmean, share)
        return lambda n, pos: best_cut(chi2_at_cuts(n, pos, share))

    @staticmethod
    def _kind(p_value: float, evidence: dict, alpha: float) -> str:
        if p_value is None or p_value >= alpha:
            return "no_signal"
        if {evidence.get("rate_below"), evidence.get("rate_at_or_above")} == {0.0, 1.0}:
            # A perfect split: only an infinitely steep "trend" would fit it as well, and
            # a smooth trend has a finite slope.
            evidence["step_vs_trend"]["note"] = "perfect split: counted as a step"
            return "step"
        step = evidence["step_vs_trend"]
        if step.get("p_value") is None or step["p_value"] < alpha:
            return "step"
        return "trend_only"

    def _describe(
        self,
        binned: BinnedMetric,
        cut: int | None,
        *,
        selected: bool = False,
        rng: np.random.Generator | None = None,
        clusters: Clusters | None = None,
    ) -> dict:
        """Rates on each side of the cut, the step-vs-trend test and the decile curve."""
        n_rows = binned.n_rows
        ev: dict[str, Any] = {
            "n": n_rows,
            "n_positive": int(binned.n_pos),
            "criterion": CRITERION,
            "threshold": None,
            "statistic": None,
            "p_value": None,
            "min_side_share": float(self.min_side_share),
            "n_at_or_above": None,
            "share_at_or_above": None,
            "rate_at_or_above": None,
            "rate_below": None,
            "lift": None,
            "difference": None,
            "direction": None,
            "step_vs_trend": None,
        }
        if cut is not None:
            above_n = float(binned.n[cut + 1 :].sum())
            above_p = float(binned.pos[cut + 1 :].sum())
            below_n = n_rows - above_n
            below_p = binned.n_pos - above_p
            rate_above = above_p / above_n if above_n else None
            rate_below = below_p / below_n if below_n else None
            ev.update(
                threshold=num(binned.edges[cut], binned.integral),
                n_at_or_above=int(above_n),
                share_at_or_above=above_n / n_rows,
                rate_at_or_above=rate_above,
                rate_below=rate_below,
                lift=ratio(rate_above, rate_below),
                difference=(
                    rate_above - rate_below
                    if rate_above is not None and rate_below is not None
                    else None
                ),
            )
            if ev["difference"] is not None:
                higher = ev["difference"] >= 0
                ev["direction"] = "higher_at_or_above" if higher else "lower_at_or_above"
            one_sided = selected and ev["difference"] is not None and uses_step_beyond_trend(binned)
            ev["step_vs_trend"] = step_vs_trend(
                binned,
                cut,
                selected=selected,
                search=self._cut_search(binned),
                direction=(1.0 if ev["difference"] >= 0 else -1.0) if one_sided else None,
                n_sim=int(self.n_bootstrap),
                rng=rng,
                clusters=clusters,
            )
        ev["curve"] = self._curve(binned)
        return ev

    @staticmethod
    def _curve(binned: BinnedMetric, n_groups: int = 10) -> list[dict]:
        """Outcome rate by (about) metric deciles: the picture thresholds are read off."""
        keep = np.flatnonzero(binned.n > 0)
        cum = np.cumsum(binned.n[keep])
        mid = (cum - binned.n[keep] / 2.0) / binned.n_rows
        group = np.minimum((mid * n_groups).astype(int), n_groups - 1)
        rows = []
        for g in np.unique(group):
            sel = keep[group == g]
            n = binned.n[sel].sum()
            rows.append(
                {
                    "metric_min": num(binned.xmin[sel].min(), binned.integral),
                    "metric_max": num(binned.xmax[sel].max(), binned.integral),
                    "n": int(n),
                    "rate": float(binned.pos[sel].sum() / n),
                }
            )
        return rows

    def _permutation_p(
        self, binned: BinnedMetric, statistic: float, rng: np.random.Generator
    ) -> tuple[float, str]:
        """Permutation p-value of the maximally selected statistic."""
        b = int(self.n_bootstrap)
        colors = binned.n.astype(np.int64)
        perm_pos = rng.multivariate_hypergeometric(colors, int(binned.n_pos), size=b)
        chi = chi2_at_cuts(
            np.broadcast_to(binned.n, perm_pos.shape), perm_pos.astype(float), self.min_side_share
        )
        max_chi = chi.max(axis=1)
        exceed = int(np.sum(max_chi >= statistic * (1 - 1e-9)))
        method = f"permutation test of the maximum over candidate cuts ({b} permutations)"
        return (1 + exceed) / (1 + b), method

    def _group_permutation_p(
        self,
        binned: BinnedMetric,
        y: np.ndarray,
        codes: np.ndarray,
        statistic: float,
        rng: np.random.Generator,
    ) -> tuple[float, str]:
        """Permutation p-value with whole accounts permuted among accounts of equal size.

        Each permutation moves every account's outcome sequence (its rows in the order
        given) to another account with the same number of rows; the metric values stay.
        """
        b = int(self.n_bootstrap)
        n_rows = codes.size
        order = np.argsort(codes, kind="stable")  # rows by account, in their given order
        sizes = np.bincount(codes)
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        # src[i] = the row whose outcome row i receives in a permutation
        blocks = []
        for size in np.unique(sizes):
            accounts = np.flatnonzero(sizes == size)
            if accounts.size < 2:
                continue
            rows = order[starts[accounts][:, None] + np.arange(size)[None, :]]
            perms = np.argsort(rng.random((b, accounts.size)), axis=1)
            blocks.append((rows, perms))
        pos = np.empty((b, binned.n_bins))
        src = np.arange(n_rows)
        for i in range(b):
            for rows, perms in blocks:
                src[rows.ravel()] = rows[perms[i]].ravel()
            pos[i] = np.bincount(binned.bin_of_row, weights=y[src], minlength=binned.n_bins)
        chi = chi2_at_cuts(np.broadcast_to(binned.n, pos.shape), pos, self.min_side_share)
        max_chi = chi.max(axis=1)
        exceed = int(np.sum(max_chi >= statistic * (1 - 1e-9)))
        method = (
            "permutation test of the maximum over candidate cuts, whole accounts permuted "
            f"among accounts with as many rows ({b} permutations)"
        )
        return (1 + exceed) / (1 + b), method

    def _bootstrap(
        self,
        binned: BinnedMetric,
        y: np.ndarray,
        codes: np.ndarray | None,
        threshold: float,
        rng: np.random.Generator,
        search,
    ) -> tuple[dict, tuple]:
        """Percentile interval of the cut point over row or group resamples."""
        b = int(self.n_bootstrap)
        n_cells = 2 * binned.n_bins
        cell = 2 * binned.bin_of_row + y.astype(np.int64)
        if codes is None:
            cell_counts = np.bincount(cell, minlength=n_cells).astype(float)
            draws = rng.multinomial(binned.n_rows, cell_counts / cell_counts.sum(), size=b)
            resampled, n_groups = "rows", None
        else:
            n_groups = int(codes.max()) + 1
            # cells x groups count matrix; a replicate is this matrix times the number of
            # times each group was drawn.
            pair, pair_count = np.unique(codes * n_cells + cell, return_counts=True)
            matrix = sparse.csr_matrix(
                (pair_count.astype(float), (pair % n_cells, pair // n_cells)),
                shape=(n_cells, n_groups),
            )
            draws = np.empty((b, n_cells))
            for i in range(b):
                mult = np.bincount(rng.integers(0, n_groups, n_groups), minlength=n_groups)
                draws[i] = matrix @ mult.astype(float)
            resampled = "groups"
        draws = np.asarray(draws, dtype=float)
        pos = draws[:, 1::2]
        n = draws[:, 0::2] + pos
        idx = search(n, pos)
        valid = idx >= 0
        values = binned.edges[idx[valid]]
        alpha = 1.0 - float(self.confidence)
        if values.size:
            low, high = np.quantile(values, [alpha / 2, 1 - alpha / 2], method="inverted_cdf")
            ci = (num(low, binned.integral), num(high, binned.integral))
            same = float(np.mean(values == threshold))
        else:
            ci, same = (None, None), None
        info = {
            "n_bootstrap": b,
            "n_valid": int(valid.sum()),
            "resampled": resampled,
            "n_groups": n_groups,
            "share_selecting_threshold": same,
        }
        return info, ci


def _rate_difference_deff(
    binned: BinnedMetric, y: np.ndarray, codes: np.ndarray, cut: int
) -> float:
    """Design effect of the difference in outcome rates at a cut, rows clustered by account.

    The cluster-robust variance of ``rate_at_or_above - rate_below`` (the sum over accounts
    of each account's squared contribution, with ``G / (G - 1)``) over its variance with
    independent rows (``p1 (1 - p1) / n1 + p0 (1 - p0) / n0``); 1 when undefined.
    """
    above = binned.bin_of_row > cut
    n1, n0 = int(above.sum()), int((~above).sum())
    if not n1 or not n0:
        return 1.0
    p1, p0 = float(y[above].mean()), float(y[~above].mean())
    naive = p1 * (1 - p1) / n1 + p0 * (1 - p0) / n0
    contrib = np.where(above, (y - p1) / n1, -(y - p0) / n0)
    per_group = np.bincount(codes, weights=contrib)
    g = per_group.size
    robust = float(per_group @ per_group) * (g / (g - 1.0) if g > 1 else 1.0)
    if not naive > 0 or not math.isfinite(robust):
        return 1.0
    return max(robust / naive, 1e-6)
