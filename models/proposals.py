"""Proposals for a first configuration, read off the data profile (pure functions).

The profile's aggregates (:mod:`features.profile`) come in as small pandas frames; each
function here turns one of them into a proposal with its evidence:

- :func:`classify_frequency`: how often active accounts are active (daily, weekly, monthly);
- :func:`propose_windows`: the windows and the horizon that fit that frequency and the
  history's length;
- :func:`event_retention`: each event's users against its non-users in an early window,
  the retention risk ratio with its interval (:func:`models.stats.risk_ratio`);
- :func:`activation_scan`: an Amplitude Compass-style scan: for every event and every early
  count ``k``, how well "did it at least ``k`` times in the window" separates the customers
  who stay from those who leave (the phi coefficient of the 2x2 table, with a Fisher
  interval); phi weighs reach in, as a behaviour that few accounts show cannot correlate
  strongly with an outcome that many share;
- :func:`setup_candidates`: the front-loaded events that many accounts do first;
- :func:`usage_groups`: features grouped by co-usage, as the behavioural groups of
  "Fighting Churn with Data": the correlation matrix of per-account log usage in a
  trailing window, hierarchical clustering with average linkage on ``1 - correlation``,
  cut at a correlation level (:func:`cut_level`: in the widest gap between merge levels
  above the noise floor);
- :func:`plain_name`: a category name made of plain words.

Nothing here is final: these are starting points for a person to read, rename and move.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np
import pandas as pd

from models.defaults import CONFIDENCE, MIN_SIDE_SHARE, PREVALENCE_BAND
from models.stats import require_columns, risk_ratio, z_value

__all__ = [
    "UsageGroups",
    "activation_scan",
    "classify_frequency",
    "cut_level",
    "event_retention",
    "maturity_features",
    "pick_activation_window",
    "plain_name",
    "propose_windows",
    "recent_churn_rate",
    "seats_vary",
    "setup_candidates",
    "usage_groups",
]

#: Active on at least this share of a block's days: a daily user.
DAILY_SHARE = 20 / 28
#: Active in at least this many of a block's 7-day weeks (of 4): a weekly user.
WEEKLY_WEEKS = 3
#: Per usage frequency: the activation windows scanned, the utilization and maturity
#: windows, and the shortest horizon (days), before the churn rate and the history apply.
FREQUENCY_WINDOWS = {
    "daily": {"activation": (14, 30, 60), "utilization": 30, "maturity": 90, "horizon": 90},
    "weekly": {"activation": (30, 60, 90), "utilization": 90, "maturity": 90, "horizon": 180},
    "monthly": {"activation": (60, 90, 180), "utilization": 90, "maturity": 180, "horizon": 365},
}
#: Horizons (days) to choose from.
HORIZONS = (90, 180, 365)
#: A horizon is long enough when this share of customers is expected to leave within it.
HORIZON_CHURN_SHARE = 0.2
#: Setup windows (days) to choose from: the shortest holding most first uses of setup steps.
SETUP_WINDOWS = (7, 14, 21, 30)
#: Share of the longest window's setup steps that the setup window must hold.
SETUP_COVER = 0.9
#: Share of an event's uses in the first days that marks it front-loaded (a setup step).
FRONT_SHARE = 0.5
#: Setup candidates listed at most.
MAX_SETUP_CANDIDATES = 8
#: Features clustered at most (the most used ones): the matrix grows with their square.
MAX_CLUSTERED = 300
_PLAIN = re.compile(r"[^A-Za-z0-9_\-. ]+")


# --------------------------------------------------------------------------- frequency


def classify_frequency(
    blocks: pd.DataFrame, *, block_days: int = 28, daily_share: float = DAILY_SHARE
) -> dict:
    """The product's usage frequency from the profile's activity histogram.

    Parameters
    ----------
    blocks : DataFrame
        ``active_days``, ``active_weeks``, ``accounts``: (account, block) pairs with at least
        one active day, by active days and active 7-day weeks in a block of ``block_days``.

    Returns
    -------
    dict
        ``daily``, ``weekly``, ``monthly``: the shares of active (account, block) pairs
        active on at least ``daily_share`` of the days, else in at least 3 of 4 weeks, else
        less; ``product``: the class of the median active account (``daily`` when daily
        users are half or more, ``weekly`` when daily and weekly ones are, else
        ``monthly``); ``observations``: the pairs counted.
    """
    require_columns(blocks, "activity blocks", ["active_days", "active_weeks", "accounts"])
    n = blocks["accounts"].to_numpy(dtype=float)
    total = float(n.sum())
    is_daily = blocks["active_days"].to_numpy() >= math.ceil(daily_share * block_days)
    is_weekly = ~is_daily & (blocks["active_weeks"].to_numpy() >= WEEKLY_WEEKS)
    if total <= 0:
        return {
            "daily": None,
            "weekly": None,
            "monthly": None,
            "product": "monthly",
            "observations": 0,
        }
    shares = {
        "daily": float(n[is_daily].sum()) / total,
        "weekly": float(n[is_weekly].sum()) / total,
    }
    shares["monthly"] = max(0.0, 1.0 - shares["daily"] - shares["weekly"])
    if shares["daily"] >= 0.5:
        product = "daily"
    elif shares["daily"] + shares["weekly"] >= 0.5:
        product = "weekly"
    else:
        product = "monthly"
    return {**shares, "product": product, "observations": int(total)}


def recent_churn_rate(
    months: pd.DataFrame, *, last: int = 12, min_customers: int = 20
) -> float | None:
    """The median monthly churn rate of the newest ``last`` complete months that had at least
    ``min_customers`` customers (``month``, ``customers``, ``churn_rate``, ``partial`` rows
    of :func:`features.profile.churn_by_month`); None without such a month."""
    require_columns(months, "monthly churn", ["customers", "churn_rate", "partial"])
    full = months[~months["partial"].astype(bool) & (months["customers"] >= min_customers)]
    rates = full["churn_rate"].dropna().tail(int(last))
    return float(rates.median()) if len(rates) else None


def propose_windows(product: str, history_days: int, monthly_churn: float | None) -> dict:
    """Windows and horizon (days) for a usage frequency, a churn rate and a history.

    The frequency gives the activation windows to scan, the utilization and maturity windows
    and the shortest horizon (:data:`FREQUENCY_WINDOWS`: daily products are judged sooner).
    The horizon is then the shortest of :data:`HORIZONS`, not below that, within which at
    least :data:`HORIZON_CHURN_SHARE` of the customers are expected to leave at
    ``monthly_churn`` (a horizon that sees few leave teaches little), else the longest; and
    it is shortened, in whole months (at least 30 days), until the accounts that signed up in
    the first half of the history have a known label (shortest activation window plus
    horizon at most half the history). Activation windows that do not fit beside the horizon
    are dropped.

    Returns
    -------
    dict
        ``activation_candidates`` (tuple), ``utilization``, ``maturity``, ``horizon`` and
        ``horizon_reason`` (words).
    """
    if product not in FREQUENCY_WINDOWS:
        known = ", ".join(FREQUENCY_WINDOWS)
        raise ValueError(f"product: expected one of {known}, got {product!r}")
    base = FREQUENCY_WINDOWS[product]
    floor = base["horizon"]
    horizon, reason = HORIZONS[-1], "the longest horizon"
    if monthly_churn is not None and monthly_churn > 0:
        for h in (h for h in HORIZONS if h >= floor):
            expected = 1.0 - (1.0 - min(monthly_churn, 1.0)) ** (h / 30.4375)
            if expected >= HORIZON_CHURN_SHARE:
                horizon = h
                reason = (
                    f"at {monthly_churn:.1%} monthly churn, about {expected:.0%} of customers "
                    f"leave within {h} days (at least {HORIZON_CHURN_SHARE:.0%} wanted; "
                    f"{floor} days at least for a {product} product)"
                )
                break
        else:
            reason = f"at {monthly_churn:.1%} monthly churn, few customers leave sooner"
    elif monthly_churn is None:
        horizon, reason = floor, f"the horizon of a {product} product (no monthly churn rate)"
    half = int(history_days) // 2
    windows = tuple(base["activation"])
    if min(windows) + horizon > half:
        horizon = max(30, ((half - min(windows)) // 30) * 30)
        reason += f"; shortened to {horizon} days by a history of {int(history_days)} days"
    fitting = tuple(w for w in windows if w + horizon <= half) or (min(windows),)
    return {
        "activation_candidates": fitting,
        "utilization": base["utilization"],
        "maturity": base["maturity"],
        "horizon": int(horizon),
        "horizon_reason": reason,
    }


def pick_activation_window(scans: dict[int, pd.DataFrame]) -> int | None:
    """The early window whose best event separates stayers from leavers best: the highest
    lower end of the top event's phi interval among the scans of :func:`activation_scan`
    (None when no scan has a row)."""
    best, window = -np.inf, None
    for w, scan in sorted(scans.items()):
        if not scan.empty and float(scan["phi_low"].iloc[0]) > best:
            best, window = float(scan["phi_low"].iloc[0]), int(w)
    return window


# --------------------------------------------------------------------------- retention


def _cumulative(buckets: pd.DataFrame) -> pd.DataFrame:
    """Per event and bucket ``k``: accounts with an early count of at least ``k`` (``n1``)
    and the retained among them (``a1``)."""
    require_columns(buckets, "retention buckets", ["event", "bucket", "accounts", "retained"])
    b = buckets.sort_values(["event", "bucket"], ascending=[True, False], kind="stable")
    grouped = b.groupby("event", sort=False)
    out = b[["event", "bucket"]].copy()
    out["n1"] = grouped["accounts"].cumsum().to_numpy(dtype=float)
    out["a1"] = grouped["retained"].cumsum().to_numpy(dtype=float)
    return out.rename(columns={"bucket": "k"}).reset_index(drop=True)


def event_retention(
    buckets: pd.DataFrame, labelled: int, retained: int, *, confidence: float = CONFIDENCE
) -> pd.DataFrame:
    """Each event's users (at least one use in the early window) against its non-users.

    Returns one row per event: ``users``, ``retention_users``, ``retention_non_users``,
    ``risk_ratio`` with ``ci_low``, ``ci_high`` (Katz, :func:`models.stats.risk_ratio`),
    sorted by event.
    """
    cum = _cumulative(buckets)
    first = cum.loc[cum.groupby("event")["k"].idxmin()].sort_values("event")
    n1, a1 = first["n1"].to_numpy(), first["a1"].to_numpy()
    n0, a0 = float(labelled) - n1, float(retained) - a1
    rr, low, high = risk_ratio(a1, n1, a0, n0, confidence=confidence)
    with np.errstate(invalid="ignore", divide="ignore"):
        return pd.DataFrame(
            {
                "event": first["event"].to_numpy(),
                "users": n1.astype(int),
                "retention_users": np.where(n1 > 0, a1 / n1, np.nan),
                "retention_non_users": np.where(n0 > 0, a0 / np.where(n0 > 0, n0, 1), np.nan),
                "risk_ratio": rr,
                "ci_low": low,
                "ci_high": high,
            }
        )


def activation_scan(
    buckets: pd.DataFrame,
    labelled: int,
    retained: int,
    *,
    min_side_share: float = MIN_SIDE_SHARE,
    confidence: float = CONFIDENCE,
    exclude: Iterable[str] = (),
) -> pd.DataFrame:
    """Rank events by how well an early count separates customers who stay from those who
    leave (an Amplitude Compass-style scan).

    For every event and every early-count bucket ``k`` leaving at least ``min_side_share``
    of the labelled accounts on each side, the 2x2 table "at least ``k`` uses in the window"
    by "retained" gives the phi coefficient (Pearson's correlation of the two flags) and its
    Fisher interval (``atanh(phi) +- z / sqrt(n - 3)``). Each event keeps its best ``k`` (the
    highest phi); events are ranked by the lower end of that interval, then by phi. The best
    ``k`` is chosen on the same rows, so its interval is somewhat optimistic: the ranking is a
    proposal, which the run checks with its own threshold and bootstrap.

    Returns
    -------
    DataFrame
        One row per event that has an admissible ``k``: ``event``, ``count`` (the best
        ``k``), ``accounts`` (at least ``k`` uses), ``reach`` (their share of the labelled
        accounts), ``retention_with``, ``retention_without``, ``risk_ratio``, ``phi``,
        ``phi_low``, ``phi_high``, ranked best first.
    """
    columns = ["event", "count", "accounts", "reach", "retention_with", "retention_without"]
    columns += ["risk_ratio", "phi", "phi_low", "phi_high"]
    n, r = float(labelled), float(retained)
    if n < 4 or r <= 0 or r >= n or buckets.empty:
        return pd.DataFrame(columns=columns)
    cum = _cumulative(buckets)
    cum = cum[~cum["event"].isin(set(exclude))]
    n1, a1 = cum["n1"].to_numpy(), cum["a1"].to_numpy()
    n0, a0 = n - n1, r - a1
    ok = (n1 >= min_side_share * n) & (n0 >= min_side_share * n)
    with np.errstate(invalid="ignore", divide="ignore"):
        phi = (a1 * n - n1 * r) / np.sqrt(n1 * n0 * r * (n - r))
    cum = cum.assign(n0=n0, a0=a0, phi=phi)[ok]
    if cum.empty:
        return pd.DataFrame(columns=columns)
    best = cum.sort_values(["phi", "k"], ascending=[False, True], kind="stable")
    best = best.groupby("event", sort=False).head(1)
    z = z_value(confidence)
    center = np.arctanh(np.clip(best["phi"].to_numpy(), -0.999999, 0.999999))
    half = z / math.sqrt(n - 3)
    rr, _, _ = risk_ratio(best["a1"], best["n1"], best["a0"], best["n0"], confidence=confidence)
    out = pd.DataFrame(
        {
            "event": best["event"].to_numpy(),
            "count": best["k"].to_numpy(dtype=int),
            "accounts": best["n1"].to_numpy(dtype=int),
            "reach": best["n1"].to_numpy() / n,
            "retention_with": best["a1"].to_numpy() / best["n1"].to_numpy(),
            "retention_without": best["a0"].to_numpy() / best["n0"].to_numpy(),
            "risk_ratio": rr,
            "phi": best["phi"].to_numpy(),
            "phi_low": np.tanh(center - half),
            "phi_high": np.tanh(center + half),
        }
    )
    out = out.sort_values(["phi_low", "phi", "event"], ascending=[False, False, True])
    return out.reset_index(drop=True)


# --------------------------------------------------------------------------- setup


def setup_candidates(
    summary: pd.DataFrame,
    closed: dict[int, int],
    *,
    windows: Sequence[int] = SETUP_WINDOWS,
    front_share: float = FRONT_SHARE,
    max_candidates: int = MAX_SETUP_CANDIDATES,
    exclude: Iterable[str] = (),
) -> tuple[pd.DataFrame, int]:
    """The events most accounts do first, and the setup window that holds them.

    A candidate is front-loaded (at least ``front_share`` of its uses, by accounts old enough
    to judge, fall in their first days: ``front_share`` of the summary). The window is the
    shortest of ``windows`` in which the candidates are done (pooled, as a share of the
    accounts whose window is over) at least :data:`SETUP_COVER` as often as in the longest.
    Candidates are ranked by the share of accounts that did them within that window (done
    by many, early), then by the median first use.

    Parameters
    ----------
    summary : DataFrame
        :func:`features.profile.event_summary`: ``event``, ``accounts``,
        ``median_first_use_days``, ``front_share`` and ``early_w<W>`` for each of ``windows``.
    closed : dict
        Window -> accounts whose first ``W`` days are over (the denominators).

    Returns
    -------
    (DataFrame, int)
        ``event``, ``share_early`` (of the accounts whose window is over),
        ``median_first_use_days``, ``accounts``, ``front_share``; and the window (days).
    """
    require_columns(summary, "event summary", ["event", "accounts", "median_first_use_days"])
    front = summary[
        (summary["front_share"].fillna(0.0) >= front_share) & ~summary["event"].isin(set(exclude))
    ]
    window = max(windows)
    if not front.empty:
        longest = front[f"early_w{window}"].sum() / max(int(closed.get(window, 0)), 1)
        for w in sorted(windows):
            share = front[f"early_w{w}"].sum() / max(int(closed.get(w, 0)), 1)
            if longest > 0 and share >= SETUP_COVER * longest:
                window = w
                break
    denominator = max(int(closed.get(window, 0)), 1)
    out = pd.DataFrame(
        {
            "event": front["event"].to_numpy(),
            "share_early": front[f"early_w{window}"].to_numpy(dtype=float) / denominator,
            "median_first_use_days": front["median_first_use_days"].to_numpy(dtype=float),
            "accounts": front["accounts"].to_numpy(dtype=int),
            "front_share": front["front_share"].to_numpy(dtype=float),
        }
    )
    out = out.sort_values(
        ["share_early", "median_first_use_days", "event"], ascending=[False, True, True]
    )
    return out.head(int(max_candidates)).reset_index(drop=True), int(window)


def seats_vary(seats: pd.DataFrame) -> bool:
    """Whether purchased seats vary enough for a per-seat rate: the 10th and 90th percentiles
    of the accounts' seats differ (``seats``, ``accounts`` rows)."""
    require_columns(seats, "seats", ["seats", "accounts"])
    s = seats.dropna(subset=["seats"]).sort_values("seats")
    if s.empty:
        return False
    cum = s["accounts"].cumsum().to_numpy() / s["accounts"].sum()
    values = s["seats"].to_numpy()
    p10 = values[np.searchsorted(cum, 0.1)]
    p90 = values[min(np.searchsorted(cum, 0.9), len(values) - 1)]
    return bool(p90 > p10)


# --------------------------------------------------------------------------- maturity


@dataclass
class UsageGroups:
    """Features grouped by co-usage.

    Attributes
    ----------
    groups : list of list of str
        Groups of two or more features, each ordered by use (most used first), the groups by
        size then use.
    unassigned : list of str
        Features that joined no group.
    level : float or None
        The correlation level the tree was cut at (None: nothing to cut).
    accounts : int
        Accounts behind the correlations.
    cohesion : list of float
        Each group's mean pairwise correlation.
    """

    groups: list[list[str]] = field(default_factory=list)
    unassigned: list[str] = field(default_factory=list)
    level: float | None = None
    accounts: int = 0
    cohesion: list[float] = field(default_factory=list)


def _log_usage(
    rows: pd.DataFrame, accounts: pd.DataFrame, features: Sequence[str], min_life_days: int
) -> np.ndarray:
    """The (account, feature) matrix of ``log(1 + uses in the trailing window)``, for the
    accounts observed for at least ``min_life_days`` (the window) only; zeros where a
    feature was unused."""
    keep = accounts.loc[accounts["life"] >= int(min_life_days), "aid"]
    index = pd.Index(keep.to_numpy())
    matrix = np.zeros((len(index), len(features)))
    r = rows[rows["aid"].isin(index) & rows["event"].isin(features)]
    i = index.get_indexer(r["aid"].to_numpy())
    j = pd.Index(list(features)).get_indexer(r["event"].to_numpy())
    matrix[i, j] = np.log1p(r["n"].to_numpy(dtype=float))
    return matrix


def cut_level(
    levels: np.ndarray, n_accounts: int, n_features: int, alpha: float = 0.05
) -> float | None:
    """The correlation level at which the co-usage tree is cut (None: no group).

    The floor is the correlation that noise alone reaches at the ``alpha`` level over all
    pairs of features (Bonferroni: ``z(1 - alpha / pairs) / sqrt(accounts)``). Among the
    merge levels (descending) above it, the widest gap to the next level is where groups
    that go together stop merging with each other; the cut is in its middle when the gap is
    wider than sampling noise (``2 / sqrt(accounts)``), else at the floor itself.
    """
    from scipy import stats

    pairs = max(n_features * (n_features - 1) // 2, 1)
    n = max(int(n_accounts), 1)
    floor = float(stats.norm.ppf(1.0 - alpha / pairs)) / math.sqrt(n)
    levels = np.sort(np.asarray(levels, dtype=float))[::-1]
    if not len(levels) or levels[0] < floor:
        return None
    steps = list(pairwise(levels))
    if levels[-1] >= floor:  # every merge is above the noise: one group is a candidate
        steps.append((levels[-1], floor))
    widest, cut = -1.0, floor
    for upper, lower in steps:
        if upper < floor:
            break
        if upper - lower > widest:
            widest, cut = upper - lower, (upper + lower) / 2
    return float(cut) if widest >= 2.0 / math.sqrt(n) else floor


def usage_groups(
    rows: pd.DataFrame,
    accounts: pd.DataFrame,
    features: Sequence[str],
    *,
    min_life_days: int,
    level: float | None = None,
    alpha: float = 0.05,
) -> UsageGroups:
    """Group features by co-usage: correlation clustering of per-account log usage.

    The co-usage of two features is the Pearson correlation of their
    ``log(1 + uses in the trailing window)`` over the accounts observed for at least the
    window (``min_life_days``), each measured over the window's days before it churned or
    ``as_of``: a fixed window for every account, as the maturity milestone counts use.
    Without that, age is a common factor of every feature: an account that has not had
    the time to adopt anything is low on all of them at once (on the demo, usage rates over
    each account's whole life, young accounts included, correlated categories with each
    other at about 0.12, close to the 0.15-0.25 within them; over the trailing window of
    accounts old enough, at 0.01-0.06). The features are clustered hierarchically with
    average linkage on ``1 - correlation`` and the tree is cut at the correlation ``level``,
    by default by :func:`cut_level` (the widest gap between merge levels above the noise
    floor of ``alpha``, or that floor).

    Parameters
    ----------
    rows : DataFrame
        ``aid``, ``event``, ``n`` (uses in the trailing window): one row per (account,
        feature) used in it, from
        :func:`features.profile.usage_sample`.
    accounts : DataFrame
        ``aid``, ``life`` (days observed) of every sampled account, used or not.
    features : sequence of str
        The features to group, most used first (at most :data:`MAX_CLUSTERED` are kept).
    """
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    require_columns(rows, "usage rows", ["aid", "event", "n"])
    require_columns(accounts, "sampled accounts", ["aid", "life"])
    features = list(dict.fromkeys(features))[:MAX_CLUSTERED]
    matrix = _log_usage(rows, accounts, features, min_life_days)
    n_acc = matrix.shape[0]
    varies = matrix.std(axis=0) > 0 if n_acc else np.zeros(len(features), bool)
    kept = [f for f, v in zip(features, varies, strict=True) if v]
    if len(kept) < 2 or n_acc < 10:
        return UsageGroups(unassigned=features, accounts=n_acc)
    corr = np.corrcoef(matrix[:, varies].T)
    corr = np.nan_to_num(corr, nan=0.0)
    distance = np.clip(1.0 - corr, 0.0, 2.0)
    np.fill_diagonal(distance, 0.0)
    tree = linkage(squareform(distance, checks=False), method="average")
    levels = 1.0 - tree[:, 2]
    cut = level if level is not None else cut_level(levels, n_acc, len(kept), alpha)
    if cut is None:
        return UsageGroups(unassigned=features, accounts=n_acc)
    labels = fcluster(tree, t=1.0 - cut, criterion="distance")
    order = {f: i for i, f in enumerate(features)}
    members: dict[int, list[str]] = {}
    for f, lab in zip(kept, labels, strict=True):
        members.setdefault(int(lab), []).append(f)
    groups = sorted(
        (sorted(m, key=order.__getitem__) for m in members.values() if len(m) > 1),
        key=lambda m: (-len(m), order[m[0]]),
    )
    grouped = {f for g in groups for f in g}
    position = {f: i for i, f in enumerate(kept)}
    cohesion = []
    for g in groups:
        idx = [position[f] for f in g]
        sub = corr[np.ix_(idx, idx)]
        cohesion.append(float(sub[np.triu_indices(len(idx), 1)].mean()))
    return UsageGroups(
        groups=groups,
        unassigned=[f for f in features if f not in grouped],
        level=float(cut),
        accounts=n_acc,
        cohesion=cohesion,
    )


def maturity_features(
    summary: pd.DataFrame,
    n_accounts: int,
    *,
    band: tuple[float, float] = PREVALENCE_BAND,
    exclude: Iterable[str] = (),
) -> list[str]:
    """The features worth grouping: used by a share of accounts inside ``band`` (neither
    niche nor table stakes) and not excluded (setup steps, the activation event), most used
    first."""
    require_columns(summary, "event summary", ["event", "accounts"])
    reach = summary["accounts"].to_numpy(dtype=float) / max(int(n_accounts), 1)
    inside = (reach >= band[0]) & (reach <= band[1]) & ~summary["event"].isin(set(exclude))
    picked = summary[inside].sort_values(["accounts", "event"], ascending=[False, True])
    return list(picked["event"])


def plain_name(text: str, taken: Iterable[str] = (), fallback: str = "group") -> str:
    """A category name of plain words (letters, digits, ``_``, ``-``, ``.``, space) from
    ``text``: other characters become ``_``; empty results become ``fallback``; a name in
    ``taken`` gets a number (``_2``, ``_3`` ...)."""
    name = _PLAIN.sub("_", str(text)).strip(" ._-")
    name = re.sub(r"_+", "_", name)[:40].strip(" ._-") or fallback
    taken = set(taken)
    candidate, k = name, 2
    while candidate in taken:
        candidate, k = f"{name}_{k}", k + 1
    return candidate
