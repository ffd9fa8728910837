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
  exists when the account signed up by ``as_of``, on or before S, and is a customer through
  the end of S; the label is "still a customer through the end of ``S + horizon_days``"; the
  row is censored when that date is not before ``as_of``'s date (the end of the label date is
  then not yet known);
- nothing after ``as_of`` reaches a feature: :func:`daily_aggregate` drops later events, and
  the tables ignore daily rows after ``as_of``'s date.

How the work is shaped (it decides the speed; measured on the demo data at 10M events, where
the first version of this module spent 27 s on the tenure table and 6-9 s on the snapshots):

- the daily aggregate tests ``as_of`` inside its aggregates, not in a WHERE clause, so that each
  timestamp is converted once;
- every wide table is built in two aggregation steps: first per (account, [snapshot,] event)
  with a handful of window sums, then one pivot per account (and snapshot) with one
  conditional aggregate per output column over those far fewer rows;
- conditional aggregates are written ``agg(if(cond, x, null))``: with dozens of aggregates in
  one GROUP BY, DuckDB runs this form several times faster than ``agg(x) FILTER (WHERE cond)``
  or ``sum(if(cond, x, 0))``; integer sums run in float64 (DuckDB's 128-bit integer sums
  made the snapshot table 2.5 times slower at 100M events) and a pivot picks its one value
  per group with max();
- snapshot windows: daily rows are summed over segments of days (runs that every window holds
  whole or not at all) and only these sums meet the snapshots, by equality joins on small
  in-memory tables, instead of a range join of every daily row with every snapshot (a nested
  loop on Spark); events travel as integer codes, and an event's trailing count and active
  days are packed in one integer through the pivot.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from itertools import pairwise

import ibis
import pyarrow as pa
from ibis.expr.types import Table, Value

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
    ev = events.filter(events.account_id.notnull(), events.event.notnull())
    as_of = None if as_of is None else _naive_utc(as_of)
    keys = dict(account_id=ev.account_id, event=ev.event, day=ev.occurred_at.date())
    if as_of is None:
        ev = ev.filter(ev.occurred_at.notnull())
        return ev.group_by(**keys).aggregate(n=ev.count(), qty=ev.quantity.sum())
    # The as_of test sits inside the aggregates rather than in a WHERE clause: the engine then
    # converts each timestamp once (a filter repeats the conversion); at 10M events this scan,
    # the largest, costs 2.8 CPU-s instead of 4.5. Groups left without an event (all after
    # as_of, or a null time) are dropped.
    on_time = ev.occurred_at <= ibis.literal(as_of, "timestamp")
    daily = ev.group_by(**keys).aggregate(
        n=ev.count(where=on_time), qty=ev.quantity.sum(where=on_time)
    )
    return daily.filter(daily.n > 0)


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


def _if(cond: Value, value: Value) -> Value:
    """``value`` where ``cond`` holds, else null: the argument of a conditional aggregate.

    DuckDB runs ``sum(if(cond, x, null))`` 2-3 times faster than ``sum(x) FILTER (WHERE cond)``
    or ``sum(if(cond, x, 0))`` when a GROUP BY holds dozens of them (a null leaves the state
    untouched). A sum over no value is null: callers fill it with 0.
    """
    return ibis.ifelse(cond, value, ibis.null(value.type()))


def _sum(value: Value) -> Value:
    """The sum of an integer column, as int64 (null over no value).

    Summed as float64, exact below 2**53: DuckDB sums integers in 128 bits, and with the
    millions of groups of the snapshot table at 100M events that made the build 2.5 times
    slower (60 s instead of 25 s).
    """
    return value.cast("float64").sum().cast("int64")


def _naive_utc(ts: dt.datetime) -> dt.datetime:
    """``ts`` as a naive UTC datetime (an aware one is converted, a naive one is taken as UTC)."""
    if ts.tzinfo is not None:
        return ts.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return ts


def _as_date(value) -> dt.date:
    """A date from a date, a datetime or a pandas Timestamp (its date part)."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if hasattr(value, "date"):
        return value.date()
    raise TypeError(f"expected a date, got {value!r}")


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
        Naive UTC scoring date; accounts that sign up after it have no row, and labels whose
        date lies after it are left null.
    events : sequence of str
        Product events that get ``gw__``, ``aw__`` and ``ttf__`` columns.
    """
    aw = int(activation_window_days)
    sw = int(setup_window_days)
    gw = int(golden_week_days)
    period = int(inactivity_period_days)
    periods = max(1, int(inactivity_horizon_days) // period)
    horizon_end = aw + periods * period
    as_of = _naive_utc(as_of)
    as_of_date = ibis.literal(as_of.date(), "date")

    acc = accounts.filter(accounts.signup_at <= ibis.literal(as_of, "timestamp"))
    acc = acc.mutate(signup_date=acc.signup_at.date())
    keys = acc.select("account_id", "signup_date")
    d = daily.filter(daily.day <= as_of_date).join(keys, "account_id")
    d = d.select("account_id", "event", "n", di=d.day.delta(d.signup_date, unit="day"))
    d = d.filter(d.di >= 0, d.di < max(sw, aw, gw, horizon_end))

    # Step 1, per (account, event): the window sums, over the raw daily rows.
    is_activation = d.event == activation_event
    step1: dict[str, Value] = {
        "_sw": _sum(_if(d.di < sw, d.n)),
        "_gw": _sum(_if(d.di < gw, d.n)),
        "_aw": _sum(_if(d.di < aw, d.n)),
        "_ttf": _if(d.di < aw, d.di).min(),
    }
    for k in range(periods):
        lo, hi = aw + k * period, aw + (k + 1) * period
        step1[f"_post_{k}"] = _sum(_if(is_activation & (d.di >= lo) & (d.di < hi), d.n))
    per_event = d.group_by("account_id", "event").aggregate(**step1)

    # Step 2, per account: one column per (event, window), over the per-event rows. A group
    # holds one row per event, so max() picks that event's value.
    p = per_event
    aggs: dict[str, Value] = {}
    for step in setup_steps:
        aggs[setup_col(step)] = _if(p.event == step, p["_sw"]).max()
    aggs["activation_count"] = _if(p.event == activation_event, p["_aw"]).max()
    for k in range(periods):
        aggs[f"_post_{k}"] = p[f"_post_{k}"].max()  # only the activation event's row has one
    for e in events:
        aggs[f"gw__{e}"] = _if(p.event == e, p["_gw"]).max()
        aggs[f"aw__{e}"] = _if(p.event == e, p["_aw"]).max()
        aggs[f"ttf__{e}"] = _if(p.event == e, p["_ttf"]).min()
    per_account = p.group_by("account_id").aggregate(**aggs)

    t = acc.left_join(per_account, "account_id")
    window_end = t.signup_date + ibis.interval(days=aw)
    label_date = window_end + ibis.interval(days=int(horizon_days))
    inactivity_end = window_end + ibis.interval(days=periods * period)
    alive_window_end = _alive_at(t, window_end.cast("timestamp"))
    labelled = alive_window_end & (label_date <= as_of_date)
    inactivity_labelled = alive_window_end & (inactivity_end <= as_of_date)
    posts = [t[f"_post_{k}"].fill_null(0) for k in range(periods)]
    any_empty_period = posts[0] == 0
    for post in posts[1:]:
        any_empty_period = any_empty_period | (post == 0)

    cols: dict[str, Value] = {
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
    start, end = _as_date(start), _as_date(end)
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
    so that a snapshot's trailing window never reaches past ``as_of``. ``first_signup`` may be a
    datetime (its date is used); ``max_snapshots=0`` gives no date.
    """
    if int(max_snapshots) < 0:
        raise ValueError(f"max_snapshots: expected a count >= 0, got {max_snapshots!r}")
    if int(max_snapshots) == 0:
        return []
    if not isinstance(as_of, dt.datetime):  # a plain date: its start, like datetime(date)
        as_of = dt.datetime.combine(_as_date(as_of), dt.time())
    as_of = _naive_utc(as_of)
    end = as_of.date()
    if as_of.time() < dt.time(23, 59, 59):
        end -= dt.timedelta(days=1)
    start = _as_date(first_signup) + dt.timedelta(days=int(activation_window_days))
    return month_ends(start, end)[-int(max_snapshots) :]


def _segments(dates: Sequence[dt.date], windows: Mapping[str, int]) -> tuple[Table, Table]:
    """Cut the days that the snapshot windows cover into segments, runs of days that every
    window [S - W + 1, S] holds either whole or not at all.

    Returns
    -------
    (day_segment, segment_window)
        ``day``, ``seg`` for every covered day; ``seg``, ``snapshot_date`` and one 0/1 flag
        per window for every (segment, snapshot) pair whose widest window holds the segment.
    """
    starts = {s + dt.timedelta(days=1) for s in dates}  # a window ends with its day S
    starts |= {s - dt.timedelta(days=w - 1) for s in dates for w in windows.values()}
    bounds = sorted(starts)
    days, day_seg = [], []
    seg_rows: dict[str, list] = {"seg": [], "snapshot_date": [], **{k: [] for k in windows}}
    for k, (lo, hi) in enumerate(pairwise(bounds)):
        inside = {
            s: {
                name: int(s - dt.timedelta(days=w - 1) <= lo and hi <= s + dt.timedelta(days=1))
                for name, w in windows.items()
            }
            for s in dates
        }
        inside = {s: flags for s, flags in inside.items() if any(flags.values())}
        if not inside:
            continue  # a gap between windows
        for n in range((hi - lo).days):
            days.append(lo + dt.timedelta(days=n))
            day_seg.append(k)
        for s, flags in inside.items():
            seg_rows["seg"].append(k)
            seg_rows["snapshot_date"].append(s)
            for name, flag in flags.items():
                seg_rows[name].append(flag)
    day_segment = ibis.memtable(
        pa.table({"day": pa.array(days, pa.date32()), "seg": pa.array(day_seg, pa.int64())})
    )
    segment_window = ibis.memtable(
        pa.table(
            {
                "seg": pa.array(seg_rows["seg"], pa.int64()),
                "snapshot_date": pa.array(seg_rows["snapshot_date"], pa.date32()),
                **{k: pa.array(seg_rows[k], pa.int64()) for k in windows},
            }
        )
    )
    return day_segment, segment_window


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
    dates = sorted({_as_date(d) for d in dates})
    if not dates:
        raise ValueError(
            "snapshot_table: no snapshot dates (is the history shorter than the activation window?)"
        )
    as_of = _naive_utc(as_of)
    as_of_date = ibis.literal(as_of.date(), "date")
    wt, wu, wm = int(trailing_days), int(utilization_window_days), int(maturity_window_days)
    snaps = ibis.memtable(pa.table({"snapshot_date": pa.array(dates, pa.date32())}))

    acc = accounts.filter(accounts.signup_at <= ibis.literal(as_of, "timestamp"))
    acc = acc.mutate(signup_date=acc.signup_at.date())
    base = acc.cross_join(snaps)
    end_of_s = (base.snapshot_date + ibis.interval(days=1)).cast("timestamp")
    keep = (base.signup_date <= base.snapshot_date) & _alive_at(base, end_of_s)
    if require_window_closed:
        keep = keep & (
            base.signup_date + ibis.interval(days=int(activation_window_days)) <= base.snapshot_date
        )
    base = base.filter(keep)

    # Only the events that feed some column matter; they travel as small integer codes, which
    # the engine groups and compares faster than their names.
    wanted = [*events, utilization_event, *(f for feats in categories.values() for f in feats)]
    wanted = list(dict.fromkeys(wanted))
    code = {e: i for i, e in enumerate(wanted)}
    codes = ibis.memtable(
        pa.table({"event": pa.array(wanted, pa.string()), "_code": pa.array(range(len(wanted)))})
    )

    # Windows of month-end snapshots overlap (a 90-day window spans three month ends). The
    # daily rows are first summed over segments (runs of days that each window holds whole or
    # not at all, about two per month), and only those sums meet, by equality joins, the
    # snapshots whose windows hold them: a third of the rows a day-by-day join would expand.
    day_segment, segment_window = _segments(dates, {"_in_t": wt, "_in_u": wu, "_in_m": wm})
    d = daily.filter(daily.day <= as_of_date).join(codes, "event").join(day_segment, "day")
    segs = d.group_by("account_id", "_code", "seg").aggregate(_n=_sum(d.n), _days=d.count())
    j = segs.join(segment_window, "seg")

    # Step 1, per (account, snapshot, event): the window sums. The trailing count and active
    # days of an event travel packed in one integer, count * K + days with K > days, which
    # halves the aggregates of the pivot below (a group there holds one row per event).
    k_days = wt + 1
    per_event = j.group_by("account_id", "snapshot_date", "_code").aggregate(
        _pt=_sum(j["_in_t"] * (j["_n"] * k_days + j["_days"])),
        _nu=_sum(j["_in_u"] * j["_n"]),
        _nm=j["_in_m"].max(),
    )

    # Step 2, per (account, snapshot): one column per event and window (max() picks the value
    # of the group's one row of that event), and per category the count of features used.
    p = per_event
    pivot_aggs: dict[str, Value] = {}
    for e in events:
        pivot_aggs[f"_p_{e}"] = _if(p["_code"] == code[e], p["_pt"]).max()
    pivot_aggs["_util"] = _if(p["_code"] == code[utilization_event], p["_nu"]).max()
    for cat, feats in categories.items():
        in_cat = p["_code"].isin([code[f] for f in feats])
        pivot_aggs[f"_m_{cat}"] = _sum(_if(in_cat, p["_nm"]))
    pivot = p.group_by("account_id", "snapshot_date").aggregate(**pivot_aggs)

    t = base.left_join(pivot, ["account_id", "snapshot_date"])
    seats = t.seats.cast("float64")
    label_date = t.snapshot_date + ibis.interval(days=int(horizon_days))
    censored = label_date >= as_of_date
    periods_in_window = wu / int(period_days)
    util = t["_util"].fill_null(0).cast("float64")

    cols: dict[str, Value] = {
        "account_id": t.account_id,
        "snapshot_date": t.snapshot_date,
        "plan": t.plan,
        "seats": t.seats,
        "tenure_days": t.snapshot_date.delta(t.signup_date, unit="day").cast("int64"),
    }
    cols.update({a: t[a] for a in _attributes(accounts)})
    for e in events:
        pk = t[f"_p_{e}"].fill_null(0)
        count = (pk // k_days).cast("int64")
        cols[feature_col(e, "used")] = (count > 0).cast("int8")
        cols[feature_col(e, "count")] = count
        cols[feature_col(e, "days")] = (pk % k_days).cast("int64")
        cols[feature_col(e, "per_seat")] = count.cast("float64") / seats
    cols["utilization_rate"] = util / seats / periods_in_window
    cols["utilization_raw"] = util / periods_in_window
    for cat in categories:
        cols[maturity_col(cat)] = t[f"_m_{cat}"].fill_null(0).cast("int64")
    cols["label_date"] = label_date
    cols["censored"] = censored
    label_end = (label_date + ibis.interval(days=1)).cast("timestamp")
    cols["retained"] = ibis.ifelse(
        censored, ibis.null("int8"), _alive_at(t, label_end).cast("int8")
    )
    return t.select(**cols).order_by("snapshot_date", "account_id")
