"""How many accounts use each product feature, and how much more its users retain.

The adoption side of the importance ranking (:mod:`models.importance`), measured on labelled
snapshots:

- :func:`adoption_table`: each feature's prevalence and its retention lift, crude and
  stratified by plan, optionally pooled over several snapshot dates with account-clustered
  intervals, and the intensity lift (heavier vs lighter users) that a near-universal
  feature needs;
- :func:`mantel_haenszel_risk_ratio`: the risk ratio over strata with the Greenland-Robins
  interval;
- :func:`pooled_risk_ratio`: the same estimate with a cluster-robust (sandwich) interval.

The crude risk ratio of one 2x2 table, with the package's zero-cell rule, is
:func:`models.stats.risk_ratio`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from features.columns import ACCOUNT_KEY, LABEL, SNAPSHOT_KEY, feature_col
from models.defaults import CONFIDENCE, LIFT_SNAPSHOTS
from models.splits import labelled_rows
from models.stats import require_columns, risk_ratio, z_value

__all__ = ["adoption_table", "mantel_haenszel_risk_ratio", "pooled_risk_ratio"]


def mantel_haenszel_risk_ratio(
    a: Sequence[float],
    n1: Sequence[float],
    c: Sequence[float],
    n0: Sequence[float],
    confidence: float = CONFIDENCE,
) -> tuple[float, float, float]:
    """Mantel-Haenszel risk ratio over strata, with the Greenland-Robins interval.

    Per stratum k: ``a_k`` of ``n1_k`` exposed rows and ``c_k`` of ``n0_k`` unexposed rows
    have the outcome, ``N_k = n1_k + n0_k``.

    ``RR_MH = sum(a_k n0_k / N_k) / sum(c_k n1_k / N_k)``

    ``var(log RR_MH) = sum((n1_k n0_k (a_k + c_k) - a_k c_k N_k) / N_k^2)
    / (sum(a_k n0_k / N_k) * sum(c_k n1_k / N_k))`` (Greenland and Robins, 1985).

    Strata with only exposed or only unexposed rows add nothing. With one stratum and no
    zero cell this is the crude :func:`models.stats.risk_ratio`; zero cells need no
    correction here (only the sums must be positive).

    Returns
    -------
    (rr, low, high)
        NaN where undefined (the denominator sum is 0); ``rr = 0`` with a NaN interval when
        the numerator sum is 0.
    """
    z = z_value(confidence)
    a, n1, c, n0 = (np.asarray(v, dtype="float64") for v in (a, n1, c, n0))
    if not (a.shape == n1.shape == c.shape == n0.shape) or a.ndim != 1:
        raise ValueError("a, n1, c and n0 must be 1-D with one value per stratum")
    big_n = n1 + n0
    keep = big_n > 0
    a, n1, c, n0, big_n = a[keep], n1[keep], c[keep], n0[keep], big_n[keep]
    r = float(np.sum(a * n0 / big_n))
    s = float(np.sum(c * n1 / big_n))
    if s <= 0:
        return math.nan, math.nan, math.nan
    if r <= 0:
        return 0.0, math.nan, math.nan
    rr = r / s
    var = float(np.sum((n1 * n0 * (a + c) - a * c * big_n) / big_n**2)) / (r * s)
    if not var >= 0:
        return float(rr), math.nan, math.nan
    half = z * math.sqrt(var)
    return float(rr), float(rr * math.exp(-half)), float(rr * math.exp(half))


def pooled_risk_ratio(
    y: np.ndarray,
    exposed: np.ndarray,
    strata: np.ndarray,
    clusters: np.ndarray,
    z: float,
) -> tuple[float, float, float]:
    """Mantel-Haenszel risk ratio over strata with a cluster-robust interval.

    The estimate is the usual ``sum(a_k n0_k / N_k) / sum(c_k n1_k / N_k)``. Rows of one
    cluster (an account seen at several snapshot dates) are not independent, so the
    variance of ``log RR`` is the sandwich (delta-method) estimate over clusters: each row
    contributes ``w (y - p)`` to the numerator or the denominator sum, ``p`` being its
    cell's (stratum, exposure) outcome rate, and the squared cluster totals are summed,
    times ``G / (G - 1)``. With one row per cluster this is the unconditional binomial
    variance of the Mantel-Haenszel estimator.
    """
    k = strata
    n_k = int(k.max()) + 1 if k.size else 0
    e = exposed.astype("float64")
    n1 = np.bincount(k, weights=e, minlength=n_k)
    n0 = np.bincount(k, weights=1.0 - e, minlength=n_k)
    big_n = n1 + n0
    a = np.bincount(k, weights=y * e, minlength=n_k)
    c = np.bincount(k, weights=y * (1.0 - e), minlength=n_k)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = float(np.sum(np.where(big_n > 0, a * n0 / big_n, 0.0)))
        s = float(np.sum(np.where(big_n > 0, c * n1 / big_n, 0.0)))
    if s <= 0:
        return math.nan, math.nan, math.nan
    if r <= 0:
        return 0.0, math.nan, math.nan
    rr = r / s
    with np.errstate(invalid="ignore", divide="ignore"):
        w1 = np.where(big_n > 0, n0 / big_n, 0.0)[k]
        w0 = np.where(big_n > 0, n1 / big_n, 0.0)[k]
        p1 = np.where(n1 > 0, a / np.maximum(n1, 1e-300), 0.0)[k]
        p0 = np.where(n0 > 0, c / np.maximum(n0, 1e-300), 0.0)[k]
    contrib = np.where(exposed, w1 * (y - p1) / r, -w0 * (y - p0) / s)
    g = int(clusters.max()) + 1
    per_cluster = np.bincount(clusters, weights=contrib, minlength=g)
    var = float(np.sum(per_cluster**2)) * (g / (g - 1) if g > 1 else 1.0)
    if not var > 0:
        return float(rr), math.nan, math.nan
    half = z * math.sqrt(var)
    return float(rr), float(rr * math.exp(-half)), float(rr * math.exp(half))


def adoption_table(
    snapshots_labelled: pd.DataFrame,
    events: Sequence[str],
    plan_col: str | None = "plan",
    confidence: float = CONFIDENCE,
    snapshot_date=None,
    lift_snapshots: int = LIFT_SNAPSHOTS,
    account_col: str | None = ACCOUNT_KEY,
) -> pd.DataFrame:
    """Prevalence and retention lift of each feature, measured on labelled snapshots.

    The prevalence is measured at the newest labelled snapshot date (each account counts
    once). A row "uses" a feature when ``<event>__used == 1`` (a null flag counts as not
    used).

    The lifts use the newest ``lift_snapshots`` labelled snapshot dates. With one date
    (the default) they are the crude risk ratio (:func:`models.stats.risk_ratio`) and the
    Mantel-Haenszel risk ratio by plan with the Greenland-Robins interval
    (:func:`mantel_haenszel_risk_ratio`). With several dates the same Mantel-Haenszel
    estimators pool the dates, each date its own stratum (``stratified_lift``: plan x date;
    ``retention_lift``: date only, so that the two differ only by plan), and their
    intervals are cluster-robust over accounts (:func:`pooled_risk_ratio`): the same
    account at several dates is not several independent observations. Pooling a year of
    month ends gives the lift about twice the information of a single month end, which a
    feature of moderate effect needs at a few thousand accounts.

    ``intensity_lift`` answers the question the lift cannot ask of a feature that nearly
    everyone uses: among its users, do the heavier users (``<event>__per_seat`` above the
    median of the users at the same date; ``<event>__count`` when there is no per-seat
    column) retain better than the lighter ones? Mantel-Haenszel by plan x date over the
    same dates, with the same kind of interval.

    Parameters
    ----------
    snapshots_labelled : DataFrame
        Snapshot rows with ``snapshot_date``, ``retained``, the ``<event>__used`` columns and
        ``plan_col``; censored or unlabelled rows are ignored.
    events : sequence of str
        Product features.
    plan_col : str or None, default "plan"
        Column to stratify by (a null plan is its own stratum). None, or a column absent
        from the table, gives one stratum: the stratified lift then equals the crude lift.
    confidence : float, default 0.95
        Level of the intervals.
    snapshot_date : optional
        Use this labelled snapshot date instead of the newest (the lifts then pool it and
        the dates before it).
    lift_snapshots : int, default 1
        Number of labelled snapshot dates the lifts pool (the newest ones).
    account_col : str or None, default "account_id"
        The cluster of the robust intervals; absent or None: every row is its own cluster.

    Returns
    -------
    DataFrame
        One row per event: ``feature``, ``snapshot_date``, ``n_rows``, ``n_users``,
        ``prevalence``, ``retention_users``, ``retention_non_users`` (at ``snapshot_date``),
        ``retention_lift`` (retention of users / retention of non-users) with
        ``retention_lift_low`` and ``_high``, ``stratified_lift`` (by plan) with
        ``stratified_lift_low`` and ``_high``, ``intensity_lift`` with ``_low`` and ``_high``,
        ``n_strata`` (plans), ``lift_dates`` and ``lift_rows``. Undefined values are NaN
        (for the crude lift at one date, zero cells follow the rule of
        :func:`models.stats.risk_ratio`).
    """
    require_columns(snapshots_labelled, "snapshots_labelled", [SNAPSHOT_KEY, LABEL])
    events = list(events)
    if not events:
        raise ValueError("events is empty")
    require_columns(
        snapshots_labelled, "snapshots_labelled", [feature_col(e, "used") for e in events]
    )
    if isinstance(lift_snapshots, bool) or int(lift_snapshots) < 1:
        raise ValueError(f"lift_snapshots must be a positive integer, got {lift_snapshots!r}")
    z = z_value(confidence)  # checks the level before any work
    labelled = labelled_rows(snapshots_labelled)
    if labelled.empty:
        raise ValueError("snapshots_labelled has no labelled rows (all censored or null)")
    if snapshot_date is None:
        snapshot_date = labelled[SNAPSHOT_KEY].max()
    at_date = (labelled[SNAPSHOT_KEY] == snapshot_date).to_numpy()
    if not at_date.any():
        raise ValueError(f"no labelled rows at snapshot_date {snapshot_date!r}")
    dates = sorted(d for d in labelled[SNAPSHOT_KEY].dropna().unique() if d <= snapshot_date)
    pooled_dates = dates[-int(lift_snapshots) :]
    pooled = labelled.loc[labelled[SNAPSHOT_KEY].isin(pooled_dates).to_numpy()]
    rows = labelled.loc[at_date]

    def plan_codes(frame: pd.DataFrame) -> np.ndarray:
        if plan_col is not None and plan_col in frame.columns:
            strata = frame[plan_col].astype("object").where(frame[plan_col].notna(), "\0missing")
            return pd.factorize(strata.astype(str), sort=True)[0]
        return np.zeros(len(frame), dtype=np.int64)

    strata_codes = plan_codes(rows)
    n_strata = int(strata_codes.max()) + 1
    y = rows[LABEL].to_numpy(dtype="float64")
    # pooled rows: strata plan x date (stratified) and date (crude), accounts as clusters
    y_p = pooled[LABEL].to_numpy(dtype="float64")
    date_codes = pd.factorize(pooled[SNAPSHOT_KEY], sort=True)[0]
    plan_date = plan_codes(pooled) * len(pooled_dates) + date_codes
    if account_col is not None and account_col in pooled.columns:
        clusters = pd.factorize(pooled[account_col].astype(str))[0]
    else:
        clusters = np.arange(len(pooled))
    single = len(pooled_dates) == 1

    records = []
    for event in events:
        used_raw = rows[feature_col(event, "used")]
        used = used_raw.fillna(0).to_numpy(dtype="float64") == 1.0
        n_users = int(used.sum())
        n_non = int(len(used) - n_users)
        a = float(y[used].sum())
        c = float(y[~used].sum())
        used_p = pooled[feature_col(event, "used")].fillna(0).to_numpy(dtype="float64") == 1.0
        if single:
            crude = risk_ratio(a, n_users, c, n_non, confidence)
            a_k = np.bincount(strata_codes, weights=y * used, minlength=n_strata)
            n1_k = np.bincount(strata_codes, weights=used.astype("float64"), minlength=n_strata)
            c_k = np.bincount(strata_codes, weights=y * ~used, minlength=n_strata)
            n0_k = np.bincount(strata_codes, weights=(~used).astype("float64"), minlength=n_strata)
            strat = mantel_haenszel_risk_ratio(a_k, n1_k, c_k, n0_k, confidence)
        else:
            crude = pooled_risk_ratio(y_p, used_p, date_codes, clusters, z)
            strat = pooled_risk_ratio(y_p, used_p, plan_date, clusters, z)
        intensity = _intensity_lift(pooled, event, used_p, y_p, plan_date, date_codes, clusters, z)
        records.append(
            {
                "feature": event,
                "snapshot_date": snapshot_date,
                "n_rows": len(used),
                "n_users": n_users,
                "prevalence": n_users / len(used),
                "retention_users": a / n_users if n_users else math.nan,
                "retention_non_users": c / n_non if n_non else math.nan,
                "retention_lift": crude[0],
                "retention_lift_low": crude[1],
                "retention_lift_high": crude[2],
                "stratified_lift": strat[0],
                "stratified_lift_low": strat[1],
                "stratified_lift_high": strat[2],
                "intensity_lift": intensity[0],
                "intensity_lift_low": intensity[1],
                "intensity_lift_high": intensity[2],
                "n_strata": n_strata,
                "lift_dates": len(pooled_dates),
                "lift_rows": len(pooled),
            }
        )
    return pd.DataFrame.from_records(records)


def _intensity_lift(
    pooled: pd.DataFrame,
    event: str,
    used: np.ndarray,
    y: np.ndarray,
    strata: np.ndarray,
    date_codes: np.ndarray,
    clusters: np.ndarray,
    z: float,
) -> tuple[float, float, float]:
    """Retention of the users above the median intensity over the users below it."""
    for kind in ("per_seat", "count"):
        col = feature_col(event, kind)
        if col in pooled.columns:
            break
    else:
        return math.nan, math.nan, math.nan
    if used.sum() < 4:
        return math.nan, math.nan, math.nan
    x = pooled[col].fillna(0).to_numpy(dtype="float64")
    frame = pd.DataFrame({"d": date_codes[used], "x": x[used]})
    median = frame.groupby("d")["x"].transform("median").to_numpy()
    heavy = frame["x"].to_numpy() > median
    if heavy.all() or not heavy.any():
        return math.nan, math.nan, math.nan
    return pooled_risk_ratio(y[used], heavy, strata[used], clusters[used], z)
