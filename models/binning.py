"""The binned metric under every threshold search, and the chi-square at each cut.

- :class:`BinnedMetric`: a metric cut into bins at its candidate cut points, with per-bin
  counts (every computation works on at most ``max_candidates + 1`` bins, not on the rows);
- :func:`chi2_at_cuts`: Pearson's chi-square of the 2x2 table at every cut, vectorised over
  replicates;
- :func:`best_cut`: the cut with the largest statistic.

Used by the finder (:mod:`models.finder`) and the step-versus-trend test
(:mod:`models.steptrend`).
"""

from __future__ import annotations

import numpy as np

__all__ = ["BinnedMetric", "best_cut", "chi2_at_cuts"]


class BinnedMetric:
    """A metric cut into bins at its candidate cut points, with per-bin counts.

    ``edges`` are the candidate thresholds (observed metric values, sorted). Bin ``b`` holds
    the rows with exactly ``b`` edges ``<=`` the metric, so the rows at or above
    ``edges[j]`` are the bins ``j + 1 ..``; cut index ``j`` means threshold ``edges[j]``.
    """

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        *,
        max_candidates: int,
        min_side_share: float,
        extra_cut: float | None = None,
    ) -> None:
        n_rows = x.size
        uniq, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
        inverse = inverse.reshape(-1)
        if uniq.size <= max_candidates:
            edges = uniq
        else:
            # Candidates at evenly spaced quantiles of the feasible range, always observed
            # values: the cut at uniq[k] leaves (rows < uniq[k]) below it. The candidate for
            # level q is the q-quantile itself (the value holding the q-th row), so that a
            # value held by many rows (a count over one seat, say) is a candidate in
            # proportion to its rows; taking the first value with q of the rows *below* it
            # would skip such mass points and always cut just above them.
            share_through = np.cumsum(counts) / n_rows
            levels = np.linspace(min_side_share, 1.0 - min_side_share, max_candidates)
            idx = np.searchsorted(share_through, levels, side="left")
            edges = uniq[np.unique(np.clip(idx, 0, uniq.size - 1))]
        if extra_cut is not None:
            edges = np.union1d(edges, [float(extra_cut)])
        self.edges = edges
        self.integral = bool(np.all(np.floor(uniq) == uniq))
        bin_of_unique = np.searchsorted(edges, uniq, side="right")
        self.bin_of_row = bin_of_unique[inverse]
        n_bins = edges.size + 1
        pos_u = np.bincount(inverse, weights=y, minlength=uniq.size)
        self.n = np.bincount(bin_of_unique, weights=counts, minlength=n_bins)
        self.pos = np.bincount(bin_of_unique, weights=pos_u, minlength=n_bins)
        with np.errstate(invalid="ignore", divide="ignore"):
            self.xmean = (
                np.bincount(bin_of_unique, weights=uniq * counts, minlength=n_bins) / self.n
            )
        first = np.searchsorted(bin_of_unique, np.arange(n_bins), side="left")
        last = np.searchsorted(bin_of_unique, np.arange(n_bins), side="right") - 1
        nonempty = self.n > 0
        self.xmin = np.where(nonempty, uniq[np.clip(first, 0, uniq.size - 1)], np.nan)
        self.xmax = np.where(nonempty, uniq[np.clip(last, 0, uniq.size - 1)], np.nan)
        self.n_rows = n_rows
        self.n_pos = float(y.sum())

    @property
    def n_bins(self) -> int:
        return self.edges.size + 1

    def cut_index(self, threshold: float) -> int:
        return int(np.searchsorted(self.edges, threshold, side="left"))


def chi2_at_cuts(n: np.ndarray, pos: np.ndarray, min_side_share: float) -> np.ndarray:
    """Pearson chi-square of the 2x2 table at every cut; ``-inf`` where a side is too small.

    ``n`` and ``pos`` have bins on the last axis (any leading axes, e.g. bootstrap
    replicates); the result has one column fewer (one per cut).
    """
    total = n.sum(axis=-1, keepdims=True)
    positives = pos.sum(axis=-1, keepdims=True)
    below_n = np.cumsum(n, axis=-1)[..., :-1]
    below_p = np.cumsum(pos, axis=-1)[..., :-1]
    above_n = total - below_n
    above_p = positives - below_p
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        # chi2 = N (ad - bc)^2 / (r1 r2 c1 c2), and ad - bc = a N - r1 P
        num = total * (above_p * total - above_n * positives) ** 2
        den = above_n * below_n * positives * (total - positives)
        chi = np.where(den > 0, num / den, 0.0)
    k_min = np.maximum(1.0, np.ceil(min_side_share * total - 1e-9))
    feasible = (above_n >= k_min) & (below_n >= k_min)
    return np.where(feasible, chi, -np.inf)


def best_cut(chi: np.ndarray) -> np.ndarray:
    """Index of the largest statistic per row (lowest cut on ties); -1 when none is feasible."""
    idx = np.argmax(chi, axis=-1)
    best = np.take_along_axis(chi, idx[..., None], axis=-1)[..., 0]
    return np.where(np.isfinite(best), idx, -1)
