"""The data profile's aggregates: what the milestone method needs to know about the inputs.

Every figure is an Ibis expression aggregated in the engine (DuckDB or Spark), built from the
pipeline's own (account, event, day) aggregate (:func:`features.tables.daily_aggregate`), so
the profile scales like the feature build. Only small results reach pandas: one row per
event, per month, per seat count, per plan, per (event, count bucket, outcome); per-account
usage reaches pandas only for a bounded random sample of accounts (the co-usage correlation
of :mod:`models.proposals`).

Time rules are the feature tables' (:mod:`features.tables`): an event's day is its UTC date,
its day index is ``day - signup_date``, "within W days" is a day index in ``[0, W)``, and an
early window's retention label is "still a customer at ``signup_date + W + horizon``", known
only for accounts that were customers at ``signup_date + W`` and whose label date is not
after ``as_of``'s date.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import ibis
import numpy as np
import pandas as pd
import pyarrow as pa
from ibis.expr.types import Table, Value

from features.churn import account_silences, pick_gap, return_curve
from features.tables import Daily, materialise
from features.values import naive_utc

#: Early windows (days after signup) whose event counts the usage table carries.
CANDIDATE_WINDOWS = (7, 14, 21, 30, 60, 90)
#: An event is front-loaded (a setup step) when most of its uses fall in these first days.
FRONT_WINDOW_DAYS = 30
#: Accounts at least this many days old judge whether an event is front-loaded.
SETTLED_DAYS = 180
#: Lower bounds of the early-count buckets of the retention scan (a count of 7 is in 6).
COUNT_BUCKETS = (1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50, 60, 80, 100, 150, 200)
COUNT_BUCKETS += (300, 500, 1000, 2000, 5000)
#: Days of each block over which an account's activity frequency is measured.
FREQUENCY_BLOCK_DAYS = 28
#: Newest blocks measured (before ``as_of``).
FREQUENCY_BLOCKS = 3


@dataclass(frozen=True)
class Overview:
    """The history's extent and sizes (plain values)."""

    accounts: int
    churned: int
    events: int
    distinct_events: int
    first_signup: dt.date | None
    last_signup: dt.date | None
    first_event: dt.date | None
    last_event: dt.date | None

    def to_dict(self) -> dict:
        return {
            k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in self.__dict__.items()
        }


def _date(value) -> dt.date | None:
    value = naive_utc(value) if value is not None and not isinstance(value, dt.date) else value
    if value is None:
        return None
    return value.date() if isinstance(value, dt.datetime) else value


def _as_of_date(as_of: dt.datetime) -> Value:
    return ibis.literal(naive_utc(as_of).date(), "date")


def _scalar_row(table: Table) -> dict:
    return {k: v[0] for k, v in table.to_pyarrow().to_pydict().items()}


def overview(daily: Daily, *, as_of: dt.datetime) -> Overview:
    """Accounts (signed up by ``as_of``), churned ones, events and the history's dates."""
    acc = daily.accounts.filter(daily.accounts.signup_at <= ibis.literal(naive_utc(as_of)))
    a = _scalar_row(
        acc.aggregate(
            accounts=acc.count(),
            churned=acc.churned_at.notnull().sum(),
            first_signup=acc.signup_at.min(),
            last_signup=acc.signup_at.max(),
        )
    )
    d = daily.table
    e = _scalar_row(
        d.aggregate(
            events=d.n.cast("float64").sum(),
            distinct_events=d.code.nunique(),
            first_event=d.day.min(),
            last_event=d.day.max(),
        )
    )
    return Overview(
        accounts=int(a["accounts"] or 0),
        churned=int(a["churned"] or 0),
        events=int(e["events"] or 0),
        distinct_events=int(e["distinct_events"] or 0),
        first_signup=_date(a["first_signup"]),
        last_signup=_date(a["last_signup"]),
        first_event=_date(e["first_event"]),
        last_event=_date(e["last_event"]),
    )


def _keyed_accounts(daily: Daily, as_of: dt.datetime) -> Table:
    """The accounts signed up by ``as_of``: ``aid``, ``signup_date``, ``stop`` (the date of
    churn, else ``as_of``'s), ``tenure`` (days to ``as_of``'s date) and ``life`` (days from
    signup to ``stop``, at least 1)."""
    acc = daily.accounts
    acc = acc.filter(acc.signup_at <= ibis.literal(naive_utc(as_of)))
    end = _as_of_date(as_of)
    signup = acc.signup_at.date()
    stop = ibis.least(acc.churned_at.date().fill_null(end), end)
    return acc.select(
        "aid",
        signup_date=signup,
        stop=stop,
        tenure=end.delta(signup, unit="day"),
        life=ibis.greatest(stop.delta(signup, unit="day"), 1),
    )


def usage_table(
    daily: Daily, *, as_of: dt.datetime, windows: Sequence[int], trailing_days: int = 90
) -> Table:
    """One row per (account, event) used: ``aid``, ``code``, ``first_di`` (day index of the
    first use), ``n`` (events), ``days`` (active days), ``n_w<W>`` (events within the first
    ``W`` days, for each of ``windows``), ``n_trail`` (events in the last ``trailing_days``
    days up to the account's churn or ``as_of``), and the account's ``tenure`` and ``life``
    (days)."""
    keys = _keyed_accounts(daily, as_of)
    d = daily.table.filter(daily.table.day <= _as_of_date(as_of)).join(keys, "aid")
    d = d.mutate(di=d.day.delta(d.signup_date, unit="day"))
    d = d.filter(d.di >= 0)
    n = d.n.cast("float64")
    aggs: dict[str, Value] = {
        "first_di": d.di.min(),
        "n": n.sum(),
        "days": d.count(),
        "tenure": d.tenure.max(),
        "life": d.life.max(),
        "n_trail": ibis.ifelse(
            d.day > d.stop - ibis.interval(days=int(trailing_days)), n, ibis.null("float64")
        )
        .sum()
        .fill_null(0.0),
    }
    for w in sorted({int(w) for w in windows}):
        aggs[f"n_w{w}"] = ibis.ifelse(d.di < w, n, ibis.null("float64")).sum().fill_null(0.0)
    return d.group_by("aid", "code").aggregate(**aggs)


def _named(daily: Daily, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with the event name of its ``code`` as the first column ``event``."""
    names = np.asarray(daily.codes, dtype=object)
    out = frame.copy()
    out.insert(0, "event", names[out["code"].to_numpy(dtype=int)])
    return out


def event_summary(
    daily: Daily,
    usage: Table,
    *,
    windows: Sequence[int],
    front_window_days: int = FRONT_WINDOW_DAYS,
    settled_days: int = SETTLED_DAYS,
) -> pd.DataFrame:
    """One row per event: ``accounts`` (reach), ``events`` (volume), ``active_days``,
    ``median_first_use_days`` (after signup, among its users), ``front_share`` (share of its
    uses by accounts at least ``settled_days`` old that fell in their first
    ``front_window_days``; NaN when no such account used it) and, for each ``W`` of
    ``windows``, ``early_w<W>``: accounts whose first ``W`` days are over that used it in
    them."""
    u = usage
    settled = u.tenure >= int(settled_days)
    front = f"n_w{int(front_window_days)}"
    aggs: dict[str, Value] = {
        "accounts": u.count(),
        "events": u.n.sum(),
        "active_days": u.days.sum(),
        "median_first_use_days": u.first_di.median(),
        "_settled_n": ibis.ifelse(settled, u.n, 0.0).sum(),
        "_settled_front": ibis.ifelse(settled, u[front], 0.0).sum(),
    }
    for w in windows:
        aggs[f"early_w{int(w)}"] = ((u.tenure >= int(w)) & (u[f"n_w{int(w)}"] > 0)).sum()
    frame = u.group_by("code").aggregate(**aggs).to_pandas()
    with np.errstate(invalid="ignore", divide="ignore"):
        share = frame["_settled_front"] / frame["_settled_n"].where(frame["_settled_n"] > 0)
    frame["front_share"] = share.astype(float)
    frame = frame.drop(columns=["_settled_n", "_settled_front"])
    frame = _named(daily, frame).drop(columns=["code"])
    return frame.sort_values(["accounts", "event"], ascending=[False, True], ignore_index=True)


def closed_windows(daily: Daily, *, as_of: dt.datetime, windows: Sequence[int]) -> dict[int, int]:
    """For each window ``W``: accounts whose first ``W`` days are over at ``as_of``'s date."""
    keys = _keyed_accounts(daily, as_of)
    row = _scalar_row(
        keys.aggregate(**{f"w{int(w)}": (keys.tenure >= int(w)).sum() for w in windows})
    )
    return {int(w): int(row[f"w{int(w)}"] or 0) for w in windows}


def churn_months(accounts: Table, *, as_of: dt.datetime) -> pd.DataFrame:
    """Accounts by (``signup_month``, ``churn_month``: null while a customer), first days of
    months: the small matrix that :func:`churn_by_month` turns into monthly churn rates."""
    acc = accounts.filter(accounts.signup_at <= ibis.literal(naive_utc(as_of)))
    return (
        acc.group_by(
            signup_month=acc.signup_at.truncate("M").date(),
            churn_month=acc.churned_at.truncate("M").date(),
        )
        .aggregate(accounts=acc.count())
        .to_pandas()
    )


def churn_by_month(matrix: pd.DataFrame, *, as_of: dt.datetime) -> pd.DataFrame:
    """Monthly churn from :func:`churn_months`: per calendar month, ``customers`` at its
    start (signed up before it, not churned before it), ``churned`` of those in it,
    ``signups`` in it and ``churn_rate`` (churned / customers; NaN without customers). The
    month of ``as_of`` is partial: ``partial`` says so."""
    if matrix.empty:
        return pd.DataFrame(
            columns=["month", "customers", "signups", "churned", "churn_rate", "partial"]
        )
    sm = pd.to_datetime(matrix["signup_month"])
    cm = pd.to_datetime(matrix["churn_month"])
    n = matrix["accounts"].to_numpy(dtype=float)
    end = pd.Timestamp(naive_utc(as_of)).to_period("M").to_timestamp()
    months = pd.date_range(sm.min(), end, freq="MS")
    rows = []
    for m in months:
        before = (sm < m).to_numpy()
        alive = (cm.isna() | (cm >= m)).to_numpy()
        customers = float(n[before & alive].sum())
        churned = float(n[before & (cm == m).to_numpy()].sum())
        rows.append(
            {
                "month": m.date().isoformat()[:7],
                "customers": int(customers),
                "signups": int(n[(sm == m).to_numpy()].sum()),
                "churned": int(churned),
                "churn_rate": churned / customers if customers else float("nan"),
                "partial": bool(m == end),
            }
        )
    return pd.DataFrame(rows)


def seats_and_plans(accounts: Table, *, as_of: dt.datetime) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Accounts (signed up by ``as_of``) per seat count (``seats``, ``accounts``, ``churned``)
    and per plan (``plan``, ``accounts``, ``churned``), each a small grouped query."""
    acc = accounts.filter(accounts.signup_at <= ibis.literal(naive_utc(as_of)))
    churned = acc.churned_at.notnull().cast("int64").sum()
    seats = acc.group_by("seats").aggregate(accounts=acc.count(), churned=churned).to_pandas()
    plans = acc.group_by("plan").aggregate(accounts=acc.count(), churned=churned).to_pandas()
    seats = seats.sort_values("seats", ignore_index=True)
    plans = plans.sort_values(["accounts", "plan"], ascending=[False, True], ignore_index=True)
    return seats, plans


def activity_frequency(
    daily: Daily,
    *,
    as_of: dt.datetime,
    block_days: int = FREQUENCY_BLOCK_DAYS,
    blocks: int = FREQUENCY_BLOCKS,
) -> pd.DataFrame:
    """How often active accounts are active: over the newest ``blocks`` blocks of
    ``block_days`` days up to ``as_of``'s date, one row per (``active_days``, ``active_weeks``)
    with ``accounts``: the (account, block) pairs with at least one active day that had that
    many active days and active 7-day weeks."""
    end = _as_of_date(as_of)
    t = daily.table
    t = t.filter(t.day <= end, t.day > end - ibis.interval(days=int(block_days) * int(blocks)))
    days = t.select("aid", "day").distinct()
    back = end.delta(days.day, unit="day")
    days = days.mutate(block=back // int(block_days), week=back // 7)
    per = days.group_by("aid", "block").aggregate(
        active_days=days.count(), active_weeks=days.week.nunique()
    )
    out = per.group_by("active_days", "active_weeks").aggregate(accounts=per.count())
    return out.to_pandas().sort_values(["active_days", "active_weeks"], ignore_index=True)


def _bucket(count: Value, buckets: Sequence[int]) -> Value:
    """The largest of ``buckets`` not above ``count`` (``count`` >= the smallest)."""
    cases = [(count >= b, b) for b in sorted(buckets, reverse=True)]
    return ibis.cases(*cases, else_=min(buckets))


@dataclass(frozen=True)
class RetentionCounts:
    """The early-usage retention table of one window and horizon.

    Attributes
    ----------
    window_days, horizon_days : int
    labelled, retained : int
        Accounts whose label is known, and those retained.
    buckets : DataFrame
        ``event``, ``bucket`` (lower bound of the early count), ``accounts``, ``retained``:
        labelled accounts that used the event in the window, by count bucket.
    """

    window_days: int
    horizon_days: int
    labelled: int
    retained: int
    buckets: pd.DataFrame


def retention_counts(
    daily: Daily,
    usage: Table,
    *,
    as_of: dt.datetime,
    window_days: int,
    horizon_days: int,
    buckets: Sequence[int] = COUNT_BUCKETS,
) -> RetentionCounts:
    """Labelled accounts and, per event and early-count bucket, its users and the retained
    ones among them (``window_days`` must be one of the usage table's windows)."""
    w, h = int(window_days), int(horizon_days)
    end = _as_of_date(as_of)
    acc = daily.accounts.filter(daily.accounts.signup_at <= ibis.literal(naive_utc(as_of)))
    signup = acc.signup_at.date()
    acc = acc.mutate(
        _window_end=(signup + ibis.interval(days=w)).cast("timestamp"),
        _label_date=signup + ibis.interval(days=w + h),
    )
    alive_then = acc.churned_at.isnull() | (acc.churned_at >= acc._window_end)
    labelled = acc.filter(alive_then & (acc._label_date <= end))
    retained = labelled.churned_at.isnull() | (
        labelled.churned_at >= labelled._label_date.cast("timestamp")
    )
    labels = labelled.select("aid", retained=retained.cast("int64"))
    totals = _scalar_row(labels.aggregate(labelled=labels.count(), retained=labels.retained.sum()))
    col = f"n_w{w}"
    u = usage.filter(usage[col] > 0).join(labels, "aid")
    u = u.mutate(bucket=_bucket(u[col], buckets))
    frame = (
        u.group_by("code", "bucket")
        .aggregate(accounts=u.count(), retained=u.retained.sum())
        .to_pandas()
    )
    frame = _named(daily, frame).drop(columns=["code"])
    return RetentionCounts(
        window_days=w,
        horizon_days=h,
        labelled=int(totals["labelled"] or 0),
        retained=int(totals["retained"] or 0),
        buckets=frame.sort_values(["event", "bucket"], ignore_index=True),
    )


def usage_sample(
    daily: Daily,
    usage: Table,
    *,
    as_of: dt.datetime,
    events: Sequence[str],
    max_accounts: int,
    random_state: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-account usage of ``events`` for a random sample of at most ``max_accounts``
    accounts (signed up by ``as_of``).

    Returns
    -------
    (rows, accounts)
        ``rows``: ``aid``, ``event``, ``n`` (uses in the usage table's trailing window) for
        each (sampled account, event) with a use in it; ``accounts``: ``aid`` and ``life``
        (days observed) of every sampled account.
    """
    keys = _keyed_accounts(daily, as_of)
    all_aids = np.sort(keys.select("aid").to_pyarrow().column("aid").to_numpy())
    rng = np.random.default_rng(random_state)
    size = min(len(all_aids), int(max_accounts))
    aids = np.sort(rng.choice(all_aids, size=size, replace=False)) if size else all_aids[:0]
    chosen = ibis.memtable(pa.table({"aid": pa.array(aids.astype(np.int32), pa.int32())}))
    accounts = keys.join(chosen, "aid").select("aid", "life").to_pandas()
    codes = ibis.memtable(pa.table({"code": pa.array([daily.code(e) for e in events], pa.int32())}))
    u = usage.join(chosen, "aid").join(codes, "code")
    u = u.filter(u.n_trail > 0)
    rows = u.select("aid", "code", n=u.n_trail).to_pandas()
    rows = _named(daily, rows).drop(columns=["code"])
    return rows, accounts


def silence_curve(con, daily: Daily, *, as_of: dt.datetime) -> tuple[list[dict], int, bool]:
    """The inactivity return curve of :mod:`features.churn` from the active days of the
    aggregate, and the gap it fits (:func:`features.churn.pick_gap`) with whether the fit
    reached its target return rate."""
    t = daily.table.filter(daily.table.day <= _as_of_date(as_of))
    days = t.select(account_id=t.aid, day=t.day).distinct()
    silences = materialise(con, "ms_profile_silences", account_silences(days, as_of))
    curve = return_curve(silences)
    gap, reached = pick_gap(curve)
    return curve, gap, reached
