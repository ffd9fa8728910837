"""Point-in-time feature tables and retention labels, as Ibis expressions.

Events are first reduced inside the engine to one row per (account, event, day); every window
is computed from that aggregate. The same expressions run on DuckDB and on Spark. Column names
are documented in :mod:`features.columns`.

Time rules (the heart of point-in-time correctness):

- an event's *day* is the UTC date of ``occurred_at``;
- tenure rows: the day index is ``day - signup_date``; "within W days" is day index in [0, W);
  the window ends at ``window_end = signup_date + W`` (midnight UTC), and the label is
  "still a customer at ``window_end + horizon_days``";
- snapshot rows at a date S: the trailing window of W days is the days [S - W + 1, S]; the row
  exists when the account signed up on or before S and is a customer through the end of S;
  the label is "still a customer through the end of ``S + horizon_days``"; the row is censored
  when that date is not before ``as_of``'s date.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence

import ibis
from ibis.expr.types import Table

from features.columns import feature_col, maturity_col, setup_col


def daily_aggregate(events: Table, *, as_of: dt.datetime | None = None) -> Table:
    """Reduce typed events to one row per (account, event, day).

    Parameters
    ----------
    events : Table
        Typed events (``features.io.typed_events``).
    as_of : datetime, optional
        Naive UTC; events after it are left out (nothing from the future reaches a feature).

    Returns
    -------
    Table
        ``account_id``, ``event``, ``day`` (date), ``n`` (events), ``qty`` (sum of quantity).
    """
    ev = events
    if as_of is not None:
        ev = ev.filter(ev.occurred_at <= ibis.literal(as_of, "timestamp"))
    ev = ev.filter(ev.account_id.notnull(), ev.event.notnull(), ev.occurred_at.notnull())
    return ev.group_by(
        account_id=ev.account_id, event=ev.event, day=ev.occurred_at.date()
    ).aggregate(n=ev.count(), qty=ev.quantity.sum())


def event_names(daily: Table) -> list[str]:
    """The distinct product events, sorted (a small query)."""
    names = daily.select("event").distinct().to_pyarrow().column("event").to_pylist()
    return sorted(str(n) for n in names if n is not None)


def _alive_at(accounts: Table, ts) -> ibis.Value:
    """Still a customer at instant ``ts`` (churned_at is null or not before it)."""
    return accounts.churned_at.isnull() | (accounts.churned_at >= ts)


def _attributes(accounts: Table) -> list[str]:
    core = {"account_id", "signup_at", "churned_at", "seats", "plan"}
    return [c for c in accounts.columns if c not in core]


def tenure_table(
    accounts: Table,
    daily: Table,
    *,
    as_of: dt.datetime,
    events: Sequence[str],
    setup_steps: Sequence[str],
    setup_window_days: int,
    activation_event: str,
    activation_window_days: int,
    horizon_days: int,
    golden_week_days: int = 7,
    inactivity_period_days: int = 30,
    inactivity_horizon_days: int = 90,
) -> Table:
    """One row per account, anchored at signup (see :mod:`features.columns`).

    Parameters
    ----------
    accounts : Table
        Typed accounts.
    daily : Table
        The (account, event, day) aggregate from :func:`daily_aggregate`.
    as_of : datetime
        Naive UTC scoring date; labels whose date lies after it are left null.
    events : sequence of str
        Product events that get ``gw__``, ``aw__`` and ``ttf__`` columns.
    """
    aw = int(activation_window_days)
    sw = int(setup_window_days)
    gw = int(golden_week_days)
    periods = max(1, int(inactivity_horizon_days) // int(inactivity_period_days))
    period = int(inactivity_period_days)
    horizon_end = aw + periods * period
    as_of_date = ibis.literal(as_of.date(), "date")

    acc = accounts.filter(accounts.signup_at <= ibis.literal(as_of, "timestamp"))
    acc = acc.mutate(signup_date=acc.signup_at.date())
    keys = acc.select("account_id", "signup_date")
    d = daily.join(keys, "account_id")
    d = d.mutate(di=d.day.delta(d.signup_date, unit="day"))
    d = d.filter(d.di >= 0, d.di < max(sw, aw, gw, horizon_end))

    def total(cond) -> ibis.Value:
        return d.n.sum(where=cond)

    aggs: dict[str, ibis.Value] = {}
    for step in setup_steps:
        aggs[setup_col(step)] = total((d.event == step) & (d.di < sw))
    aggs["activation_count"] = total((d.event == activation_event) & (d.di < aw))
    for k in range(periods):
        lo, hi = aw + k * period, aw + (k + 1) * period
        aggs[f"_post_{k}"] = total((d.event == activation_event) & (d.di >= lo) & (d.di < hi))
    for e in events:
        aggs[f"gw__{e}"] = total((d.event == e) & (d.di < gw))
        aggs[f"aw__{e}"] = total((d.event == e) & (d.di < aw))
        aggs[f"ttf__{e}"] = d.di.min(where=(d.event == e) & (d.di < aw))
    per_account = d.group_by("account_id").aggregate(**aggs)

    t = acc.left_join(per_account, "account_id")
    window_end = t.signup_date + ibis.interval(days=aw)
    label_date = window_end + ibis.interval(days=int(horizon_days))
    inactivity_end = window_end + ibis.interval(days=periods * period)
    alive_window_end = _alive_at(t, window_end.cast("timestamp"))
    labelled = alive_window_end & (label_date <= as_of_date)
    inactivity_labelled = alive_window_end & (inactivity_end <= as_of_date)
    posts = [t[f"_post_{k}"].fill_null(0) for k in range(periods)]
    any_empty_period = posts[0] == 0
    for p in posts[1:]:
        any_empty_period = any_empty_period | (p == 0)

    cols: dict[str, ibis.Value] = {
        "account_id": t.account_id,
        "signup_at": t.signup_at,
        "churned_at": t.churned_at,
        "plan": t.plan,
        "seats": t.seats,
    }
    cols.update({a: t[a] for a in _attributes(accounts)})
    cols["signup_date"] = t.signup_date
    for step in setup_steps:
        cols[setup_col(step)] = t[setup_col(step)].fill_null(0) > 0
    cols["setup_window_closed"] = (t.signup_date + ibis.interval(days=sw)) <= as_of_date
    cols["activation_count"] = t.activation_count.fill_null(0).cast("int64")
    for e in events:
        cols[f"gw__{e}"] = t[f"gw__{e}"].fill_null(0).cast("int64")
        cols[f"aw__{e}"] = t[f"aw__{e}"].fill_null(0).cast("int64")
        cols[f"ttf__{e}"] = t[f"ttf__{e}"].cast("float64")
    cols["window_end"] = window_end
    cols["window_closed"] = window_end <= as_of_date
    cols["label_date"] = label_date
    cols["labelled"] = labelled
    cols["retained"] = ibis.ifelse(
        labelled, _alive_at(t, label_date.cast("timestamp")).cast("int8"), ibis.null("int8")
    )
    cols["inactivity_labelled"] = inactivity_labelled
    cols["went_inactive"] = ibis.ifelse(
        inactivity_labelled, any_empty_period.cast("int8"), ibis.null("int8")
    )
    return t.select(**cols).order_by("account_id")


def month_ends(start: dt.date, end: dt.date) -> list[dt.date]:
    """Month-end dates d with start <= d <= end."""
    out = []
    y, m = start.year, start.month
    while True:
        nxt = dt.date(y + (m == 12), m % 12 + 1, 1)
        last = nxt - dt.timedelta(days=1)
        if last > end:
            break
        if last >= start:
            out.append(last)
        y, m = nxt.year, nxt.month
    return out


def snapshot_dates(
    first_signup: dt.date, as_of: dt.datetime, *, activation_window_days: int, max_snapshots: int
) -> list[dt.date]:
    """The newest ``max_snapshots`` month ends at which some account is past its activation
    window, up to ``as_of``'s date.

    A month end equal to ``as_of``'s date is included only when ``as_of`` is at the end of that day,
    so that a snapshot's trailing window never reaches past ``as_of``.
    """
    end = as_of.date()
    if as_of.time() < dt.time(23, 59, 59):
        end -= dt.timedelta(days=1)
    start = first_signup + dt.timedelta(days=int(activation_window_days))
    return month_ends(start, end)[-int(max_snapshots):]


def snapshot_table(
    accounts: Table,
    daily: Table,
    *,
    dates: Iterable[dt.date],
    as_of: dt.datetime,
    events: Sequence[str],
    categories: Mapping[str, Sequence[str]],
    utilization_event: str,
    utilization_window_days: int,
    period_days: int,
    maturity_window_days: int,
    trailing_days: int,
    horizon_days: int,
    activation_window_days: int,
    require_window_closed: bool = True,
) -> Table:
    """One row per account and snapshot date (see :mod:`features.columns`).

    Parameters
    ----------
    dates : iterable of date
        Snapshot dates S; features use the days [S - W + 1, S].
    require_window_closed : bool
        Keep only accounts whose activation window closed by S (training rows). Scoring at
        ``as_of`` sets it False to score every customer.
    """
    dates = sorted(set(dates))
    if not dates:
        raise ValueError("snapshot_table: no snapshot dates (is the history shorter than the activation window?)")
    as_of_date = ibis.literal(as_of.date(), "date")
    wt, wu, wm = int(trailing_days), int(utilization_window_days), int(maturity_window_days)
    wmax = max(wt, wu, wm)
    snaps = ibis.memtable({"snapshot_date": dates}).mutate(
        snapshot_date=ibis._.snapshot_date.cast("date")
    )

    acc = accounts.mutate(signup_date=accounts.signup_at.date())
    base = acc.cross_join(snaps)
    end_of_s = (base.snapshot_date + ibis.interval(days=1)).cast("timestamp")
    keep = (base.signup_date <= base.snapshot_date) & _alive_at(base, end_of_s)
    if require_window_closed:
        keep = keep & (
            base.signup_date + ibis.interval(days=int(activation_window_days)) <= base.snapshot_date
        )
    base = base.filter(keep)

    # Range join: each daily row meets the snapshots whose trailing window holds its day.
    j = daily.join(
        snaps,
        (daily.day <= snaps.snapshot_date)
        & (daily.day > snaps.snapshot_date - ibis.interval(days=wmax)),
    )
    per_event = j.group_by("account_id", "snapshot_date", "event").aggregate(
        **{
            f"n_{w}": j.n.sum(where=j.day > j.snapshot_date - ibis.interval(days=w))
            for w in sorted({wt, wu, wm})
        },
        days_t=j.count(where=j.day > j.snapshot_date - ibis.interval(days=wt)),
    )
    p = per_event
    nt, nu, nm = p[f"n_{wt}"].fill_null(0), p[f"n_{wu}"].fill_null(0), p[f"n_{wm}"].fill_null(0)
    pivot_aggs: dict[str, ibis.Value] = {}
    for e in events:
        pivot_aggs[f"_c_{e}"] = nt.sum(where=p.event == e)
        pivot_aggs[f"_d_{e}"] = p.days_t.sum(where=p.event == e)
    pivot_aggs["_util"] = nu.sum(where=p.event == utilization_event)
    for cat, feats in categories.items():
        pivot_aggs[f"_m_{cat}"] = (p.event.isin(list(feats)) & (nm > 0)).cast("int64").sum()
    pivot = p.group_by("account_id", "snapshot_date").aggregate(**pivot_aggs)

    t = base.left_join(pivot, ["account_id", "snapshot_date"])
    seats = t.seats.cast("float64")
    label_date = t.snapshot_date + ibis.interval(days=int(horizon_days))
    censored = label_date >= as_of_date
    periods_in_window = wu / int(period_days)
    util = t["_util"].fill_null(0).cast("float64")

    cols: dict[str, ibis.Value] = {
        "account_id": t.account_id,
        "snapshot_date": t.snapshot_date,
        "plan": t.plan,
        "seats": t.seats,
        "tenure_days": t.snapshot_date.delta(t.signup_date, unit="day").cast("int64"),
    }
    cols.update({a: t[a] for a in _attributes(accounts)})
    for e in events:
        count = t[f"_c_{e}"].fill_null(0).cast("int64")
        cols[feature_col(e, "used")] = (count > 0).cast("int8")
        cols[feature_col(e, "count")] = count
        cols[feature_col(e, "days")] = t[f"_d_{e}"].fill_null(0).cast("int64")
        cols[feature_col(e, "per_seat")] = count.cast("float64") / seats
    cols["utilization_rate"] = util / seats / periods_in_window
    cols["utilization_raw"] = util / periods_in_window
    for cat in categories:
        cols[maturity_col(cat)] = t[f"_m_{cat}"].fill_null(0).cast("int64")
    cols["label_date"] = label_date
    cols["censored"] = censored
    label_end = (label_date + ibis.interval(days=1)).cast("timestamp")
    cols["retained"] = ibis.ifelse(censored, ibis.null("int8"), _alive_at(t, label_end).cast("int8"))
    return t.select(**cols).order_by("snapshot_date", "account_id")
