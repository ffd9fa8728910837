"""Milestone thresholds derived backward from retention, each with its evidence.

The module holds :class:`ThresholdFinder`, which finds the cut point of one count or rate
metric that best separates a binary outcome (rule: ``metric >= threshold``), and the four
milestone derivations built on it, which together make the content of ``thresholds.json``:

- :func:`derive_setup`: onboarding steps whose completion lifts the activation rate;
- :func:`derive_activation`: activation-event count in the first days against retention,
  validated against later inactivity;
- :func:`derive_utilization`: per-seat utilization rate against retention (with the raw,
  not-per-seat search beside it);
- :func:`derive_maturity`: distinct features per category, then the number of mature
  categories, against retention;
- :func:`derive_thresholds`: all four, chained (setup is derived against activation).

Everything here is a pure function of pandas frames and plain parameters: no configuration
object, no I/O. Every output is JSON-serialisable (plain ints, floats, lists; ``None`` for
values that do not exist, never NaN).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse, stats

from features.columns import ACCOUNT_KEY, LABEL, SNAPSHOT_KEY, maturity_col, setup_col

__all__ = [
    "ThresholdFinder",
    "derive_setup",
    "derive_activation",
    "derive_utilization",
    "derive_maturity",
    "derive_thresholds",
]

#: Fewest rows a threshold search accepts.
MIN_ROWS = 10
#: Name of the search criterion, as written into the evidence.
CRITERION = "maximally selected chi-square"


# --------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------


def _rng(random_state: Any) -> np.random.Generator:
    """A numpy Generator from None, an int, a SeedSequence, a Generator or a RandomState."""
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(0, 2**31 - 1))
    return np.random.default_rng(random_state)


def _jsonable(value: Any) -> Any:
    """Plain Python values only: numpy scalars unwrapped, NaN and infinities as None."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        f = float(value)
        return f if math.isfinite(f) else None
    if value is None or isinstance(value, str):
        return value
    if value is pd.NA or value is pd.NaT:
        return None
    return str(value)


def _num(value: float | None, integral: bool = False) -> int | float | None:
    """A plain number (an int for integral metrics), or None when it does not exist."""
    if value is None:
        return None
    f = float(value)
    if not math.isfinite(f):
        return None
    if integral and f.is_integer():
        return int(f)
    return f


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or not b:
        return None
    return float(a) / float(b)


def _fmt(value: float | None) -> str:
    """A number for a rule sentence: integers plainly, others to 3 significant digits."""
    if value is None:
        return "?"
    f = float(value)
    return str(int(f)) if f.is_integer() else f"{f:.3g}"


def _to_float(values: Any, name: str) -> np.ndarray:
    """A 1-D float array (NaN for missing), or a ValueError naming ``name``."""
    if isinstance(values, (pd.Series, pd.Index)):
        try:
            if values.dtype == object:
                values = values.astype("Float64")
            arr = values.to_numpy(dtype=float, na_value=np.nan)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"{name} must be numeric or boolean, got dtype {values.dtype}: {exc}"
            ) from exc
    else:
        try:
            arr = np.asarray(values, dtype=float)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name} must be numeric or boolean: {exc}") from exc
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    return arr


def _binary(values: Any, name: str) -> np.ndarray:
    """A 1-D array of 0.0/1.0, or a ValueError naming ``name`` and what is wrong."""
    arr = _to_float(values, name)
    n_missing = int(np.isnan(arr).sum())
    if n_missing:
        raise ValueError(f"{name} has {n_missing} missing (NaN) values; expected 0/1 or bool")
    bad = np.unique(arr[(arr != 0.0) & (arr != 1.0)])
    if bad.size:
        shown = ", ".join(_fmt(v) for v in bad[:5])
        raise ValueError(f"{name} must be binary (0/1 or bool), found values {shown}")
    return arr


def _require(frame: pd.DataFrame, name: str, columns: Iterable[str]) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"{name} must be a pandas DataFrame, got {type(frame).__name__}")
    for col in columns:
        if col not in frame.columns:
            raise ValueError(f"{name} is missing column '{col}'")


def _flag(frame: pd.DataFrame, column: str) -> np.ndarray:
    """A bool column as a numpy bool array, missing values counting as False."""
    return frame[column].fillna(False).astype(bool).to_numpy()


# --------------------------------------------------------------------------------------
# the binned metric: every computation below works on at most ~max_candidates + 1 bins
# --------------------------------------------------------------------------------------


class _Binned:
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


def _chi2_all(n: np.ndarray, pos: np.ndarray, min_side_share: float) -> np.ndarray:
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


def _best_cut(chi: np.ndarray) -> np.ndarray:
    """Index of the largest statistic per row (lowest cut on ties); -1 when none is feasible."""
    idx = np.argmax(chi, axis=-1)
    best = np.take_along_axis(chi, idx[..., None], axis=-1)[..., 0]
    return np.where(np.isfinite(best), idx, -1)


# --------------------------------------------------------------------------------------
# step on top of a smooth trend: Firth-penalised grouped logistic regression
# --------------------------------------------------------------------------------------


def _rcs_basis(x: np.ndarray, df: int) -> tuple[np.ndarray, str]:
    """Restricted (natural) cubic spline basis with ``df`` columns, knots at quantiles."""
    if df <= 1:
        return x[:, None], "linear"
    probs = {2: [0.10, 0.50, 0.90], 3: [0.05, 0.35, 0.65, 0.95]}[df]
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


def _firth_fit(
    x: np.ndarray,
    n: np.ndarray,
    s: np.ndarray,
    *,
    free: np.ndarray | None = None,
    beta: np.ndarray | None = None,
    max_iter: int = 50,
) -> tuple[float, np.ndarray, np.ndarray]:
    """Firth-penalised grouped (binomial) logistic fit: (penalised log-likelihood, beta, mu).

    Firth's penalty (half the log-determinant of the Fisher information of the whole
    design ``x``) keeps the estimates finite when a cut separates the outcome perfectly,
    where plain maximum likelihood has no maximum. Coefficients outside ``free`` stay at
    their starting value (zero): fitting the reduced model inside the full model's penalty
    makes the penalised likelihood-ratio test nested (Heinze & Schemper 2002).
    """
    p = x.shape[1]
    free = np.ones(p, dtype=bool) if free is None else free
    beta = np.zeros(p) if beta is None else beta.copy()
    if not beta.any():
        rate = float(np.clip(s.sum() / n.sum(), 1e-6, 1 - 1e-6))
        beta[0] = math.log(rate / (1 - rate))

    def evaluate(b: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
        eta = x @ b
        log_mu = -np.logaddexp(0.0, -eta)
        log_1mu = -np.logaddexp(0.0, eta)
        mu = np.exp(log_mu)
        w = n * mu * (1.0 - mu)
        info = x.T @ (x * w[:, None])
        info += 1e-10 * max(1.0, float(np.trace(info))) * np.eye(p)
        sign, logdet = np.linalg.slogdet(info)
        value = float(s @ log_mu + (n - s) @ log_1mu)
        value = value + 0.5 * logdet if sign > 0 else -np.inf
        return value, mu, w, info

    def solve(a: np.ndarray, rhs: np.ndarray) -> np.ndarray:
        try:
            return np.linalg.solve(a, rhs)
        except np.linalg.LinAlgError:
            return np.linalg.pinv(a) @ rhs

    all_free = bool(free.all())
    current, mu, w, info = evaluate(beta)
    for _ in range(max_iter):
        inv = solve(info, np.eye(p))
        hat = w * np.einsum("ij,jk,ik->i", x, inv, x)
        score = x.T @ (s - n * mu + hat * (0.5 - mu))
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
        current, mu, w, info = cand
        if np.max(np.abs(t * delta)) < 1e-7 or improved < 1e-9:
            break
    return current, beta, mu


def _step_lrt(
    x_trend: np.ndarray, step: np.ndarray, n: np.ndarray, s: np.ndarray,
    beta0: np.ndarray | None = None,
) -> tuple[float, np.ndarray, np.ndarray]:
    """Penalised LRT of a step on top of the trend: (statistic, trend mu, full beta)."""
    x = np.hstack([x_trend, step[:, None].astype(float)])
    free = np.ones(x.shape[1], dtype=bool)
    free[-1] = False
    start = None if beta0 is None else np.append(beta0[:-1], 0.0)
    ll0, b0, mu0 = _firth_fit(x, n, s, free=free, beta=start)
    ll1, b1, _ = _firth_fit(x, n, s, beta=b0)
    return max(0.0, 2.0 * (ll1 - ll0)), mu0, b1


def _step_vs_trend(
    binned: _Binned,
    cut: int,
    *,
    selected: bool,
    min_side_share: float,
    n_sim: int,
    rng: np.random.Generator | None,
) -> dict:
    """Test of logistic(trend + step at ``cut``) against logistic(trend).

    When the cut was selected by the search, the statistic is inflated by the selection,
    so its p-value comes from a parametric bootstrap: outcomes simulated from the fitted
    smooth trend, the cut searched again in each replicate, the statistic recomputed at
    the replicate's own cut. At a fixed (pinned) cut the chi-square(1) reference holds.
    """
    n, pos = binned.n, binned.pos
    keep = n > 0
    levels = int(keep.sum())
    step = (np.arange(binned.n_bins) > cut)[keep]
    out: dict[str, Any] = {
        "test": "Firth-penalised likelihood ratio, logistic(trend + step) vs logistic(trend)",
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
    basis, trend = _rcs_basis(binned.xmean[keep], min(3, levels - 2))
    sd = basis.std(axis=0)
    basis = (basis - basis.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    x_trend = np.hstack([np.ones((levels, 1)), basis])
    nk, sk = n[keep], pos[keep]
    statistic, mu0, beta = _step_lrt(x_trend, step, nk, sk)
    asymptotic = float(stats.chi2.sf(statistic, 1))
    out.update(statistic=statistic, trend=trend, p_value_asymptotic=asymptotic)
    if not selected or rng is None:
        out.update(p_value=asymptotic, p_value_method="chi-square(1) at a fixed cut")
        return out
    # Parametric bootstrap under the smooth trend, the cut searched again each time.
    sim = rng.binomial(nk.astype(np.int64), np.clip(mu0, 0.0, 1.0), size=(n_sim, levels))
    full_n = np.broadcast_to(n, (n_sim, n.size))
    full_pos = np.zeros((n_sim, n.size))
    full_pos[:, keep] = sim
    cuts = _best_cut(_chi2_all(full_n, full_pos, min_side_share))
    bin_index = np.arange(binned.n_bins)[keep]
    exceed, used = 0, 0
    for i in range(n_sim):
        if cuts[i] < 0:
            continue
        step_i = bin_index > cuts[i]
        if step_i.all() or not step_i.any():
            continue
        stat_i = _step_lrt(x_trend, step_i, nk, sim[i].astype(float), beta0=beta)[0]
        used += 1
        exceed += stat_i >= statistic * (1 - 1e-9)
    out.update(
        p_value=(1 + exceed) / (1 + used),
        p_value_method=(
            f"parametric bootstrap under the fitted trend, cut searched again ({used} replicates)"
        ),
    )
    return out


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

    **Step or smooth trend.** A maximally selected statistic is large for any monotone
    association, so a smooth trend would also produce a "threshold". The evidence therefore
    tests whether a step at the chosen cut explains the outcome better than a smooth trend:
    a likelihood-ratio test of logistic(trend + step) against logistic(trend), the trend a
    restricted cubic spline of the metric (up to 3 degrees of freedom), both fitted with
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
    The p-values treat rows as independent; with several rows per account they are
    optimistic, and only the interval accounts for ``groups``.
    """

    def __init__(
        self,
        min_side_share: float = 0.05,
        n_bootstrap: int = 200,
        confidence: float = 0.95,
        random_state: Any = None,
        max_candidates: int = 200,
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
        x = _to_float(metric, "metric")
        y = _binary(outcome, "outcome")
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
            raise ValueError(f"too few rows to search a threshold: need at least {MIN_ROWS}, "
                             f"got {x.size}")
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
            Group of each row (for example ``account_id``); the bootstrap resamples whole
            groups.

        Returns
        -------
        self

        Notes
        -----
        ``evidence_`` holds: ``n``, ``n_positive``, ``criterion``, ``threshold``,
        ``statistic`` (chi-square at the cut), ``phi`` (``sqrt(statistic / n)``, comparable
        across sample sizes), ``p_value`` and ``p_value_method``, ``n_candidates``,
        ``n_at_or_above``, ``share_at_or_above``, ``rate_at_or_above``, ``rate_below``,
        ``lift`` (rate ratio), ``difference``, ``direction``, ``step_vs_trend``
        (``statistic``, ``p_value``, ``p_value_method``, ``p_value_asymptotic``, ``df``,
        ``trend``, ``test``), ``kind``, ``ci``,
        ``confidence``, ``bootstrap`` (``n_bootstrap``, ``n_valid``, ``resampled``,
        ``n_groups``, ``share_selecting_threshold``), ``min_side_share`` and ``curve``
        (outcome rate by metric decile).
        """
        x, y, codes = self._check_data(metric, outcome, groups)
        rng = _rng(self.random_state)
        share = float(self.min_side_share)
        binned = _Binned(x, y, max_candidates=int(self.max_candidates), min_side_share=share)
        chi = _chi2_all(binned.n, binned.pos, share)
        cut = int(_best_cut(chi))
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
            self.evidence_ = _jsonable(evidence)
            return self

        threshold = _num(binned.edges[cut], binned.integral)
        statistic = float(chi[cut])
        p_value, perm_method = self._permutation_p(binned, statistic, rng)
        bootstrap, ci = self._bootstrap(binned, y, codes, threshold, rng)

        evidence = self._describe(binned, cut, selected=True, rng=rng)
        evidence.update(
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
        self.evidence_ = _jsonable(evidence)
        return self

    def evaluate(self, metric: Any, outcome: Any, threshold: float, groups: Any = None) -> dict:
        """Evidence at a given (for example pinned) threshold, without searching.

        The same keys as ``evidence_`` after :meth:`fit`, except that the cut is fixed, so
        ``p_value`` is the plain chi-square test (1 df) and there is no interval; ``groups``
        is only checked. Returns a JSON-serialisable dict.
        """
        if threshold is None or not math.isfinite(float(threshold)):
            raise ValueError(f"threshold must be a finite number, got {threshold!r}")
        x, y, _ = self._check_data(metric, outcome, groups)
        binned = _Binned(
            x,
            y,
            max_candidates=int(self.max_candidates),
            min_side_share=float(self.min_side_share),
            extra_cut=float(threshold),
        )
        cut = binned.cut_index(float(threshold))
        chi = _chi2_all(binned.n, binned.pos, 0.0)[cut]
        evidence = self._describe(binned, cut)
        evidence["threshold"] = _num(threshold, float(threshold).is_integer())
        if math.isfinite(chi) and evidence["n_at_or_above"] and evidence["n_at_or_above"] < x.size:
            statistic = float(chi)
            p_value = float(stats.chi2.sf(statistic, 1))
            evidence.update(statistic=statistic, phi=math.sqrt(statistic / x.size))
        else:
            statistic, p_value = None, None
            evidence.update(statistic=None, phi=None)
        evidence.update(
            p_value=p_value,
            p_value_method="chi-square test at a fixed cut (1 df)",
            confidence=float(self.confidence),
        )
        alpha = 1.0 - float(self.confidence)
        evidence["kind"] = (
            "no_signal" if p_value is None else self._kind(p_value, evidence, alpha)
        )
        return _jsonable(evidence)

    # -- pieces ------------------------------------------------------------------------

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
        binned: _Binned,
        cut: int | None,
        *,
        selected: bool = False,
        rng: np.random.Generator | None = None,
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
                threshold=_num(binned.edges[cut], binned.integral),
                n_at_or_above=int(above_n),
                share_at_or_above=above_n / n_rows,
                rate_at_or_above=rate_above,
                rate_below=rate_below,
                lift=_ratio(rate_above, rate_below),
                difference=(
                    rate_above - rate_below
                    if rate_above is not None and rate_below is not None
                    else None
                ),
            )
            if ev["difference"] is not None:
                higher = ev["difference"] >= 0
                ev["direction"] = "higher_at_or_above" if higher else "lower_at_or_above"
            ev["step_vs_trend"] = _step_vs_trend(
                binned,
                cut,
                selected=selected,
                min_side_share=float(self.min_side_share),
                n_sim=int(self.n_bootstrap),
                rng=rng,
            )
        ev["curve"] = self._curve(binned)
        return ev

    @staticmethod
    def _curve(binned: _Binned, n_groups: int = 10) -> list[dict]:
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
                    "metric_min": _num(binned.xmin[sel].min(), binned.integral),
                    "metric_max": _num(binned.xmax[sel].max(), binned.integral),
                    "n": int(n),
                    "rate": float(binned.pos[sel].sum() / n),
                }
            )
        return rows

    def _permutation_p(
        self, binned: _Binned, statistic: float, rng: np.random.Generator
    ) -> tuple[float, str]:
        """Permutation p-value of the maximally selected statistic."""
        b = int(self.n_bootstrap)
        colors = binned.n.astype(np.int64)
        perm_pos = rng.multivariate_hypergeometric(colors, int(binned.n_pos), size=b)
        chi = _chi2_all(
            np.broadcast_to(binned.n, perm_pos.shape), perm_pos.astype(float), self.min_side_share
        )
        max_chi = chi.max(axis=1)
        exceed = int(np.sum(max_chi >= statistic * (1 - 1e-9)))
        method = f"permutation test of the maximum over candidate cuts ({b} permutations)"
        return (1 + exceed) / (1 + b), method

    def _bootstrap(
        self,
        binned: _Binned,
        y: np.ndarray,
        codes: np.ndarray | None,
        threshold: float,
        rng: np.random.Generator,
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
        idx = _best_cut(_chi2_all(n, pos, float(self.min_side_share)))
        valid = idx >= 0
        values = binned.edges[idx[valid]]
        alpha = 1.0 - float(self.confidence)
        if values.size:
            low, high = np.quantile(values, [alpha / 2, 1 - alpha / 2], method="inverted_cdf")
            ci = (_num(low, binned.integral), _num(high, binned.integral))
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


# --------------------------------------------------------------------------------------
# milestones
# --------------------------------------------------------------------------------------


def _search(
    metric: np.ndarray,
    outcome: np.ndarray,
    groups: np.ndarray | None,
    *,
    pinned: float | None,
    rng: np.random.Generator,
    min_side_share: float,
    n_bootstrap: int,
    confidence: float,
) -> tuple[Any, list, dict, ThresholdFinder]:
    """Threshold, interval and evidence of one metric, honouring a pinned value.

    With a pin, the evidence is computed at the pinned cut and ``ci`` stays the interval of
    the data-driven cut, so that a reader sees whether the pin agrees with the data
    (``evidence.derived`` and ``evidence.pinned_within_ci``).
    """
    finder = ThresholdFinder(
        min_side_share=min_side_share,
        n_bootstrap=n_bootstrap,
        confidence=confidence,
        random_state=rng,
    ).fit(metric, outcome, groups)
    ci = list(finder.ci_)
    if pinned is None:
        return finder.threshold_, ci, dict(finder.evidence_), finder
    evidence = finder.evaluate(metric, outcome, pinned)
    derived = finder.evidence_
    evidence["derived"] = {
        k: derived.get(k) for k in ("threshold", "ci", "statistic", "p_value", "lift", "kind")
    }
    low, high = finder.ci_
    evidence["pinned_within_ci"] = (
        None if low is None or high is None else bool(low <= float(pinned) <= high)
    )
    value = _num(pinned, float(pinned).is_integer())
    return value, ci, evidence, finder


def _labelled_rows(frame: pd.DataFrame, name: str, flag: str | None) -> pd.DataFrame:
    """Rows with a known label: ``flag`` True (if given) and ``retained`` not null."""
    keep = _flag(frame, flag) if flag is not None else np.ones(len(frame), dtype=bool)
    if flag is None and "censored" in frame.columns:
        keep &= ~_flag(frame, "censored")
    rows = frame.loc[keep]
    missing = int(rows[LABEL].isna().sum())
    if missing:
        raise ValueError(f"{name} has {missing} labelled rows with a missing '{LABEL}'")
    return rows


def _milestone(rule: str, threshold: Any, ci: Sequence, evidence: dict, pinned: bool) -> dict:
    return {
        "rule": rule,
        "threshold": threshold,
        "ci": list(ci),
        "evidence": evidence,
        "pinned": bool(pinned),
    }


def _katz_ci(a1, n1, a0, n0, z):
    """Risk ratio (a1/n1)/(a0/n0) and its log-scale (Katz) interval, vectorised.

    Zero cells get Haldane's 0.5 correction; NaN where a side has no rows.
    """
    a1, n1, a0, n0 = (np.asarray(v, dtype=float) for v in (a1, n1, a0, n0))
    with np.errstate(invalid="ignore", divide="ignore"):
        lift = (a1 / n1) / (a0 / n0)
        zero = (a1 == 0) | (a0 == 0) | (a1 == n1) | (a0 == n0)
        c1 = np.where(zero, a1 + 0.5, a1)
        d1 = np.where(zero, n1 + 1.0, n1)
        c0 = np.where(zero, a0 + 0.5, a0)
        d0 = np.where(zero, n0 + 1.0, n0)
        log_rr = np.log((c1 / d1) / (c0 / d0))
        se = np.sqrt(1 / c1 - 1 / d1 + 1 / c0 - 1 / d0)
        low = np.exp(log_rr - z * se)
        high = np.exp(log_rr + z * se)
    empty = (n1 == 0) | (n0 == 0)
    nan = np.full_like(lift, np.nan)
    return (np.where(empty, nan, lift), np.where(empty, nan, low), np.where(empty, nan, high))


def derive_setup(
    tenure: pd.DataFrame,
    steps: Sequence[str],
    activated: Any,
    *,
    max_prevalence: float = 0.9,
    min_lift: float = 1.1,
    pinned_steps: Sequence[str] | None = None,
    confidence: float = 0.95,
    n_bootstrap: int = 200,
    random_state: Any = None,
    window_days: int | None = None,
) -> dict:
    """Select the onboarding steps whose completion lifts the activation rate.

    For each candidate step: its prevalence (share of accounts doing it), the activation
    rate of accounts that did and did not do it, and the lift (rate ratio) with a Katz
    log risk-ratio interval. A step is selected when the interval's lower end is above
    ``min_lift`` and its prevalence is at most ``max_prevalence``; otherwise its reason is
    ``"routine"`` (done by nearly everyone, so it separates nobody) or ``"no_lift"``.

    Parameters
    ----------
    tenure : DataFrame
        One row per account whose activation window has closed, with bool columns
        ``setup__<step>``.
    steps : sequence of str
        Candidate steps.
    activated : array-like of bool, shape (len(tenure),)
        Whether each account reached activation.
    max_prevalence, min_lift : float
        Selection rule, see above.
    pinned_steps : sequence of str, optional
        Use exactly these steps; candidates are evaluated all the same.
    confidence : float
        Level of the lift intervals and of the interval of the number of steps.
    n_bootstrap : int
        Account resamples for the interval of the number of selected steps and each
        candidate's ``selection_frequency``.
    random_state : None, int or numpy Generator
    window_days : int, optional
        The setup window, for the rule sentence.

    Returns
    -------
    dict
        ``rule``, ``steps``, ``candidates`` (per step: ``prevalence``, ``n_done``,
        ``activation_rate_done``, ``activation_rate_not_done``, ``lift``, ``lift_ci``,
        ``selected``, ``reason``, ``selection_frequency``), ``pinned``, ``threshold``
        (number of steps required), ``ci`` (interval of the number of steps the data
        select, from the account bootstrap, also when pinned), ``evidence`` (``n``, ``n_complete``,
        ``share_complete``, ``activation_rate_complete``, ``activation_rate_incomplete``,
        ``lift``, ``activation_rate_overall``, ``by_steps_done``, ``selection_rule``).
    """
    if isinstance(steps, str):
        raise ValueError("steps must be a list of step names, got a string")
    steps = list(dict.fromkeys(steps))
    pinned_list = None if pinned_steps is None else list(dict.fromkeys(pinned_steps))
    if not (0.0 < float(confidence) < 1.0):
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    if not (0.0 <= float(max_prevalence) <= 1.0):
        raise ValueError(f"max_prevalence must be in [0, 1], got {max_prevalence!r}")
    if not isinstance(n_bootstrap, (int, np.integer)) or n_bootstrap < 1:
        raise ValueError(f"n_bootstrap must be a positive integer, got {n_bootstrap!r}")
    candidates = steps + [s for s in (pinned_list or []) if s not in steps]
    _require(tenure, "tenure", [setup_col(s) for s in candidates])
    act = _binary(activated, "activated").astype(bool)
    if act.size != len(tenure):
        raise ValueError(
            f"activated and tenure must have the same length, got {act.size} and {len(tenure)}"
        )
    if act.size == 0:
        raise ValueError("tenure has no rows (no account whose activation window has closed)")
    for s in candidates:
        n_missing = int(tenure[setup_col(s)].isna().sum())
        if n_missing:
            raise ValueError(f"tenure column '{setup_col(s)}' has {n_missing} missing values")
    done = np.column_stack(
        [tenure[setup_col(s)].astype(bool).to_numpy() for s in candidates]
    ) if candidates else np.zeros((act.size, 0), dtype=bool)
    z = float(stats.norm.ppf(0.5 + float(confidence) / 2))
    n_rows = act.size

    def select(n1, a1, n_total, a_total):
        lift, low, high = _katz_ci(a1, n1, a_total - a1, n_total - n1, z)
        prevalence = n1 / n_total
        routine = prevalence > max_prevalence
        chosen = ~routine & (np.nan_to_num(low, nan=-np.inf) > min_lift)
        return prevalence, lift, low, high, routine, chosen

    n1 = done.sum(axis=0).astype(float)
    a1 = (done & act[:, None]).sum(axis=0).astype(float)
    prevalence, lift, low, high, routine, chosen = select(n1, a1, n_rows, float(act.sum()))

    # Bootstrap of accounts as a multinomial over the distinct (steps done, activated) rows.
    rng = _rng(random_state)
    patterns, counts = np.unique(
        np.column_stack([done, act]).astype(np.uint8), axis=0, return_counts=True
    )
    draws = rng.multinomial(n_rows, counts / n_rows, size=int(n_bootstrap)).astype(float)
    p_done = patterns[:, :-1].astype(float)
    p_act = patterns[:, -1].astype(float)
    bn1 = draws @ p_done
    ba1 = draws @ (p_done * p_act[:, None])
    b_chosen = select(bn1, ba1, n_rows, (draws @ p_act)[:, None])[-1]
    alpha = 1.0 - float(confidence)
    selected_count = b_chosen[:, : len(steps)].sum(axis=1)
    ci_low, ci_high = np.quantile(selected_count, [alpha / 2, 1 - alpha / 2], method="inverted_cdf")

    used = pinned_list if pinned_list is not None else [s for s, c in zip(steps, chosen) if c]
    table = {}
    for i, s in enumerate(candidates):
        reason = "routine" if routine[i] else ("lift" if chosen[i] else "no_lift")
        rate_done = a1[i] / n1[i] if n1[i] else None
        rate_not = (act.sum() - a1[i]) / (n_rows - n1[i]) if n_rows - n1[i] else None
        table[s] = {
            "prevalence": prevalence[i],
            "n_done": int(n1[i]),
            "activation_rate_done": rate_done,
            "activation_rate_not_done": rate_not,
            "lift": lift[i],
            "lift_ci": [low[i], high[i]],
            "selected": s in used,
            "reason": reason,
            "selection_frequency": float(b_chosen[:, i].mean()),
            "candidate": s in steps,
        }

    idx = [candidates.index(s) for s in used]
    complete = done[:, idx].all(axis=1) if idx else np.ones(n_rows, dtype=bool)
    n_complete = int(complete.sum())
    rate_with = float(act[complete].mean()) if n_complete else None
    rate_without = float(act[~complete].mean()) if n_complete < n_rows else None
    n_done_count = done[:, idx].sum(axis=1) if idx else np.zeros(n_rows, dtype=int)
    by_steps = [
        {"steps_done": k, "n": int((n_done_count == k).sum()),
         "activation_rate": float(act[n_done_count == k].mean())}
        for k in range(len(idx) + 1)
        if (n_done_count == k).any()
    ]
    evidence = {
        "n": n_rows,
        "n_complete": n_complete,
        "share_complete": n_complete / n_rows,
        "activation_rate_complete": rate_with,
        "activation_rate_incomplete": rate_without,
        "lift": _ratio(rate_with, rate_without),
        "activation_rate_overall": float(act.mean()),
        "by_steps_done": by_steps,
        "selection_rule": (
            f"lower end of the {confidence:.0%} lift interval above {min_lift:g} and "
            f"prevalence at most {max_prevalence:g}"
        ),
        "ci_method": f"account bootstrap of the selection ({int(n_bootstrap)} resamples)",
    }
    window = f"within the first {window_days} days" if window_days else "within the setup window"
    if used:
        rule = f"complete all of {', '.join(used)} {window}"
    else:
        rule = "no setup step: no candidate step lifts the activation rate enough"
    ci = [int(ci_low), int(ci_high)]
    out = _milestone(rule, len(used), ci, evidence, pinned_list is not None)
    out["steps"] = used
    out["candidates"] = table
    return _jsonable(out)


def derive_activation(
    tenure: pd.DataFrame,
    *,
    pinned: float | None = None,
    event: str | None = None,
    window_days: int | None = None,
    min_side_share: float = 0.05,
    n_bootstrap: int = 200,
    confidence: float = 0.95,
    random_state: Any = None,
) -> dict:
    """Threshold on ``activation_count`` against retention, validated against inactivity.

    Rows are the tenure rows with ``labelled`` True. The evidence adds ``inactivity``:
    among rows with ``inactivity_labelled`` True, the rate of ``went_inactive`` for
    activated accounts (count at or above the threshold) and the others.

    Parameters
    ----------
    tenure : DataFrame
        Tenure table: ``activation_count``, ``labelled``, ``retained`` and, for the
        validation, ``inactivity_labelled`` and ``went_inactive``.
    pinned : number, optional
        Use this threshold; the evidence is computed at it.
    event, window_days : optional
        For the rule sentence ("at least 20 conversation_closed in the first 60 days").
    min_side_share, n_bootstrap, confidence, random_state
        See :class:`ThresholdFinder`.

    Returns
    -------
    dict
        ``rule``, ``threshold``, ``ci``, ``evidence``, ``pinned``.
    """
    _require(tenure, "tenure", ["activation_count", "labelled", LABEL])
    rows = _labelled_rows(tenure, "tenure", "labelled")
    rng = _rng(random_state)
    metric = _to_float(rows["activation_count"], "activation_count")
    outcome = _binary(rows[LABEL], LABEL)
    threshold, ci, evidence, _ = _search(
        metric, outcome, None, pinned=pinned, rng=rng, min_side_share=min_side_share,
        n_bootstrap=n_bootstrap, confidence=confidence,
    )
    evidence["retention_with"] = evidence.get("rate_at_or_above")
    evidence["retention_without"] = evidence.get("rate_below")
    evidence["inactivity"] = _inactivity(tenure, threshold)
    what = event or "activation events"
    window = f"in the first {window_days} days" if window_days else "in the activation window"
    rule = f"at least {_fmt(threshold)} {what} {window}"
    return _jsonable(_milestone(rule, threshold, ci, evidence, pinned is not None))


def _inactivity(tenure: pd.DataFrame, threshold: float | None) -> dict | None:
    """Went-inactive rate of activated vs not activated accounts (the validation)."""
    if threshold is None or not {"inactivity_labelled", "went_inactive"} <= set(tenure.columns):
        return None
    rows = tenure.loc[_flag(tenure, "inactivity_labelled")]
    rows = rows.loc[rows["went_inactive"].notna()]
    count = _to_float(rows["activation_count"], "activation_count")
    inactive = _binary(rows["went_inactive"], "went_inactive")
    activated = count >= float(threshold)
    n_act = int(activated.sum())
    n_not = int((~activated).sum())
    rate_act = float(inactive[activated].mean()) if n_act else None
    rate_not = float(inactive[~activated].mean()) if n_not else None
    return {
        "n": int(inactive.size),
        "n_activated": n_act,
        "went_inactive_rate_activated": rate_act,
        "went_inactive_rate_not_activated": rate_not,
        "ratio": _ratio(rate_act, rate_not),
    }


def _account_share(rows: pd.DataFrame, reached: np.ndarray) -> float | None:
    """Share of accounts reaching the milestone at their latest labelled snapshot."""
    if ACCOUNT_KEY not in rows.columns or SNAPSHOT_KEY not in rows.columns or not len(rows):
        return None
    frame = pd.DataFrame(
        {"a": rows[ACCOUNT_KEY].to_numpy(), "s": rows[SNAPSHOT_KEY].to_numpy(), "r": reached}
    )
    latest = frame.sort_values(["a", "s"], kind="stable").groupby("a", sort=False).tail(1)
    return float(latest["r"].mean())


def _groups(rows: pd.DataFrame) -> np.ndarray | None:
    return rows[ACCOUNT_KEY].to_numpy() if ACCOUNT_KEY in rows.columns else None


def derive_utilization(
    snapshots: pd.DataFrame,
    *,
    pinned: float | None = None,
    event: str | None = None,
    period_days: int = 30,
    per_seat: bool = True,
    min_tenure_days: int | None = None,
    min_side_share: float = 0.05,
    n_bootstrap: int = 200,
    confidence: float = 0.95,
    random_state: Any = None,
) -> dict:
    """Threshold on ``utilization_rate`` against retention among uncensored snapshots.

    The bootstrap resamples whole accounts. The evidence adds ``raw_comparison``: the same
    search on ``utilization_raw`` (not divided by seats) beside the per-seat one, with the
    ratio of their effect sizes (``phi``), to show how much the per-seat view gains.

    With ``min_tenure_days`` (the pipeline passes the activation window plus the
    utilization window), only snapshots of accounts at least that old are searched: the
    trailing window of a younger account overlaps its activation window, whose volume is
    onboarding, not per-seat usage, so its rate understates the usage it settles at, and
    the accounts that fail to activate pile up at low rates. Both bend the retention curve
    below the threshold into a trend that pulls a maximally selected cut down (on the
    demo data from 10 to between 6 and 8.5 conversations per seat).

    Parameters
    ----------
    snapshots : DataFrame
        Snapshot table: ``utilization_rate``, ``retained``, ``censored`` (optional),
        ``account_id`` (for the grouped bootstrap), ``utilization_raw`` (optional).
    pinned : number, optional
        Use this threshold; the evidence is computed at it.
    event, period_days, per_seat
        For the rule sentence.
    min_tenure_days : int, optional
        Search only snapshots with ``tenure_days`` at least this (see above); the rows
        left out are counted in ``evidence.n_labelled_snapshots``.
    min_side_share, n_bootstrap, confidence, random_state
        See :class:`ThresholdFinder`.

    Returns
    -------
    dict
        ``rule``, ``threshold``, ``ci``, ``evidence``, ``pinned``.
    """
    _require(snapshots, "snapshots", ["utilization_rate", LABEL])
    rows = _labelled_rows(snapshots, "snapshots", None)
    n_labelled = len(rows)
    if min_tenure_days is not None:
        _require(snapshots, "snapshots", ["tenure_days"])
        tenure = _to_float(rows["tenure_days"], "tenure_days")
        rows = rows.loc[tenure >= float(min_tenure_days)]
    rng = _rng(random_state)
    metric = _to_float(rows["utilization_rate"], "utilization_rate")
    outcome = _binary(rows[LABEL], LABEL)
    threshold, ci, evidence, finder = _search(
        metric, outcome, _groups(rows), pinned=pinned, rng=rng, min_side_share=min_side_share,
        n_bootstrap=n_bootstrap, confidence=confidence,
    )
    evidence["retention_with"] = evidence.get("rate_at_or_above")
    evidence["retention_without"] = evidence.get("rate_below")
    if threshold is not None:
        evidence["share_of_accounts_at_latest_snapshot"] = _account_share(
            rows, metric >= float(threshold)
        )
    evidence["raw_comparison"] = _raw_comparison(
        rows, outcome, finder.evidence_, rng, min_side_share, n_bootstrap, confidence
    )
    evidence["min_tenure_days"] = None if min_tenure_days is None else int(min_tenure_days)
    evidence["n_labelled_snapshots"] = n_labelled
    what = event or "utilization events"
    unit = " per seat" if per_seat else ""
    rule = f"at least {_fmt(threshold)} {what}{unit} per {period_days} days"
    return _jsonable(_milestone(rule, threshold, ci, evidence, pinned is not None))


def _raw_comparison(
    rows: pd.DataFrame,
    outcome: np.ndarray,
    per_seat: dict,
    rng: np.random.Generator,
    min_side_share: float,
    n_bootstrap: int,
    confidence: float,
) -> dict | None:
    if "utilization_raw" not in rows.columns:
        return None
    raw = ThresholdFinder(
        min_side_share=min_side_share,
        n_bootstrap=n_bootstrap,
        confidence=confidence,
        random_state=rng,
    ).fit(_to_float(rows["utilization_raw"], "utilization_raw"), outcome)
    keys = ("threshold", "statistic", "phi", "p_value", "lift", "share_at_or_above", "kind")
    ps = {k: per_seat.get(k) for k in keys}
    rw = {k: raw.evidence_.get(k) for k in keys}
    phi_ratio = _ratio(rw["phi"], ps["phi"])
    return {
        "per_seat": ps,
        "raw": rw,
        "phi_ratio_raw_to_per_seat": phi_ratio,
        "raw_is_weaker": None if phi_ratio is None else bool(phi_ratio < 1.0),
    }


def derive_maturity(
    snapshots: pd.DataFrame,
    categories: Mapping[str, Sequence[str]],
    *,
    pinned_thresholds: Mapping[str, float] | None = None,
    min_categories: int | None = None,
    window_days: int | None = None,
    min_side_share: float = 0.05,
    n_bootstrap: int = 200,
    confidence: float = 0.95,
    random_state: Any = None,
) -> dict:
    """Per-category feature-breadth thresholds, then the number of mature categories.

    For each category, the threshold is the minimum number of its distinct features
    (``maturity__<category>``) that separates retention; an account is mature in the
    category at or above it. Then the number of mature categories is searched the same way
    for overall maturity, unless ``min_categories`` is pinned. All searches run on the
    uncensored snapshots and resample whole accounts for their intervals.

    When no cut of a category leaves ``min_side_share`` of the rows on each side (for
    example nobody uses it), its threshold falls back to the category's feature count, and
    ``min_categories`` falls back to the number of categories; ``evidence.fallback`` says
    so.

    Parameters
    ----------
    snapshots : DataFrame
        Snapshot table: ``maturity__<category>``, ``retained``, ``censored`` (optional),
        ``account_id``.
    categories : mapping of str to list of str
        Category name to its features (events).
    pinned_thresholds : mapping of str to number, optional
        Pinned per-category thresholds.
    min_categories : int, optional
        Pinned number of mature categories.
    window_days : int, optional
        For the rule sentence.
    min_side_share, n_bootstrap, confidence, random_state
        See :class:`ThresholdFinder`.

    Returns
    -------
    dict
        ``rule``, ``threshold`` (= ``min_categories``), ``ci``, ``evidence``, ``pinned``
        (``min_categories`` pinned), ``min_categories`` and ``categories`` (per category:
        ``threshold``, ``ci``, ``evidence``, ``pinned``, ``features``).
    """
    pins = dict(pinned_thresholds or {})
    if not isinstance(categories, Mapping):
        raise ValueError("categories must be a mapping of category name to features")
    for name in pins:
        if name not in categories:
            raise ValueError(f"pinned_thresholds names unknown category '{name}'")
    n_cat = len(categories)
    if min_categories is not None and not (1 <= int(min_categories) <= max(n_cat, 1)):
        raise ValueError(
            f"min_categories must be between 1 and the number of categories ({n_cat}), "
            f"got {min_categories!r}"
        )
    if n_cat == 0:
        return _jsonable({
            "rule": "no maturity categories configured",
            "threshold": None, "ci": [None, None], "evidence": {}, "pinned": False,
            "categories": {}, "min_categories": None,
        })
    _require(snapshots, "snapshots", [LABEL, *(maturity_col(c) for c in categories)])
    rows = _labelled_rows(snapshots, "snapshots", None)
    rng = _rng(random_state)
    outcome = _binary(rows[LABEL], LABEL)
    groups = _groups(rows)
    kwargs = dict(min_side_share=min_side_share, n_bootstrap=n_bootstrap, confidence=confidence)

    per_category: dict[str, dict] = {}
    mature_count = np.zeros(len(rows), dtype=int)
    for name, features in categories.items():
        metric = _to_float(rows[maturity_col(name)], maturity_col(name))
        pin = pins.get(name)
        threshold, ci, evidence, _ = _search(metric, outcome, groups, pinned=pin, rng=rng, **kwargs)
        if threshold is None:
            threshold = len(features)
            evidence["fallback"] = (
                f"no cut leaves {min_side_share:g} of the rows on each side; threshold set to "
                "the category's feature count"
            )
        evidence["retention_with"] = evidence.get("rate_at_or_above")
        evidence["retention_without"] = evidence.get("rate_below")
        mature_count += metric >= float(threshold)
        per_category[name] = {
            "threshold": threshold,
            "ci": ci,
            "evidence": evidence,
            "pinned": pin is not None,
            "features": list(features),
        }

    threshold, ci, evidence, _ = _search(
        mature_count.astype(float), outcome, groups, pinned=min_categories, rng=rng, **kwargs
    )
    if threshold is None:
        threshold = n_cat
        evidence["fallback"] = (
            f"no cut leaves {min_side_share:g} of the rows on each side; min_categories set "
            "to the number of categories"
        )
    threshold = int(threshold)
    evidence["retention_with"] = evidence.get("rate_at_or_above")
    evidence["retention_without"] = evidence.get("rate_below")
    evidence["share_of_accounts_at_latest_snapshot"] = _account_share(
        rows, mature_count >= threshold
    )
    evidence["mature_categories_distribution"] = {
        str(k): int(v) for k, v in zip(*np.unique(mature_count, return_counts=True))
    }
    window = f" in the last {window_days} days" if window_days else " in the trailing window"
    levels = ", ".join(f"{n} >= {_fmt(b['threshold'])}" for n, b in per_category.items())
    rule = (
        f"mature in at least {threshold} of {n_cat} categories, mature in a category meaning "
        f"at least this many of its distinct features used{window}: {levels}"
    )
    out = _milestone(rule, threshold, ci, evidence, min_categories is not None)
    out["categories"] = per_category
    out["min_categories"] = threshold
    return _jsonable(out)


def derive_thresholds(
    tenure: pd.DataFrame,
    snapshots: pd.DataFrame,
    *,
    setup_steps: Sequence[str],
    categories: Mapping[str, Sequence[str]],
    activation_pin: float | None = None,
    utilization_pin: float | None = None,
    setup_pin: Sequence[str] | None = None,
    maturity_pins: Mapping[str, float] | None = None,
    min_categories: int | None = None,
    max_prevalence: float = 0.9,
    min_lift: float = 1.1,
    min_side_share: float = 0.05,
    n_bootstrap: int = 200,
    confidence: float = 0.95,
    random_state: Any = 0,
    activation_event: str | None = None,
    activation_window_days: int | None = None,
    setup_window_days: int | None = None,
    utilization_event: str | None = None,
    utilization_period_days: int = 30,
    utilization_per_seat: bool = True,
    utilization_min_tenure_days: int | None = None,
    maturity_window_days: int | None = None,
) -> dict:
    """All four milestones, working backward from retention: the ``thresholds.json`` content.

    Activation, utilization and maturity are derived against retention; setup against
    activation: an account is activated when its ``activation_count`` reaches the
    activation threshold, among tenure rows whose activation window has closed
    (``window_closed``).

    Parameters
    ----------
    tenure, snapshots : DataFrame
        The tenure and snapshot tables (see :mod:`features.columns`).
    setup_steps : sequence of str
        Candidate setup steps.
    categories : mapping of str to list of str
        Maturity categories and their features.
    activation_pin, utilization_pin, setup_pin, maturity_pins, min_categories : optional
        Pinned values (``setup_pin`` is a list of steps, ``maturity_pins`` per category).
    max_prevalence, min_lift : float
        Setup step selection (see :func:`derive_setup`).
    min_side_share, n_bootstrap, confidence : see :class:`ThresholdFinder`.
    random_state : int, default 0
        Seed; each milestone gets its own independent stream, so the same data and seed
        give an identical dict.
    activation_event, activation_window_days, setup_window_days, utilization_event,
    utilization_period_days, utilization_per_seat, maturity_window_days : optional
        Words for the rule sentences.
    utilization_min_tenure_days : int, optional
        See ``min_tenure_days`` of :func:`derive_utilization`.

    Returns
    -------
    dict
        Keys ``setup``, ``activation``, ``utilization``, ``maturity``; each with ``rule``,
        ``threshold``, ``ci``, ``evidence`` and ``pinned``. JSON-serialisable. With a pin,
        ``threshold`` is the pin and ``evidence`` is computed at it, while ``ci`` stays the
        interval of the data-driven cut (see ``evidence.derived`` and
        ``evidence.pinned_within_ci``), so a reader sees whether the pin fits the data.
    """
    _require(tenure, "tenure", ["activation_count", "window_closed"])
    seeds: list[Any] = [None] * 4
    if isinstance(random_state, np.random.Generator):
        seeds = list(random_state.spawn(4))
    elif random_state is not None:
        seeds = list(np.random.SeedSequence(random_state).spawn(4))
    common = dict(n_bootstrap=n_bootstrap, confidence=confidence)
    activation = derive_activation(
        tenure, pinned=activation_pin, event=activation_event, window_days=activation_window_days,
        min_side_share=min_side_share, random_state=seeds[0], **common,
    )
    if activation["threshold"] is None:
        raise ValueError(
            "the activation threshold could not be derived (no cut leaves "
            f"{min_side_share:g} of the labelled accounts on each side); pin it"
        )
    closed = tenure.loc[_flag(tenure, "window_closed")]
    activated = _to_float(closed["activation_count"], "activation_count") >= float(
        activation["threshold"]
    )
    setup = derive_setup(
        closed, setup_steps, activated, max_prevalence=max_prevalence, min_lift=min_lift,
        pinned_steps=setup_pin, random_state=seeds[1], window_days=setup_window_days, **common,
    )
    setup["evidence"]["activation_threshold"] = activation["threshold"]
    utilization = derive_utilization(
        snapshots, pinned=utilization_pin, event=utilization_event,
        period_days=utilization_period_days, per_seat=utilization_per_seat,
        min_tenure_days=utilization_min_tenure_days,
        min_side_share=min_side_share, random_state=seeds[2], **common,
    )
    maturity = derive_maturity(
        snapshots, categories, pinned_thresholds=maturity_pins, min_categories=min_categories,
        window_days=maturity_window_days, min_side_share=min_side_share,
        random_state=seeds[3], **common,
    )
    return _jsonable(
        {"setup": setup, "activation": activation, "utilization": utilization, "maturity": maturity}
    )
