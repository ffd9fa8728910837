"""Point-in-time feature tables and retention labels, as Ibis expressions.

Events are first reduced inside the engine to one row per (account, event, day); every window
is computed from that aggregate. The expressions run on every engine (Spark, and DuckDB in
tests); the pipeline builds the same tables on DuckDB from SQL text written by
:mod:`features.tables_sql` (no expression of a few hundred columns to build and compile; the
last steps in numpy). Column names are documented in :mod:`features.columns`.

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
the first version of this module spent 27 s on the tenure table and 6-9 s on the snapshots,
and the current one 4.0 s on reading, the aggregate and both tables, in ``make bench``):

- accounts and events travel as integer keys (``Daily``), joined to the raw events before
  the one large grouping; a zoned ``occurred_at`` becomes naive UTC by arithmetic on its
  epoch (see ``features.io``), not through the time-zone library;
- every wide table is built in two aggregation steps over far fewer rows than events: per
  (account, event) window sums, then one pivot per account (tenure); per (account, snapshot,
  event) sums, then one pivot per (account, snapshot) (snapshots);
- conditional aggregates are written ``agg(if(cond, x, null))``: with dozens of aggregates in
  one GROUP BY, DuckDB runs this form several times faster than ``agg(x) FILTER (WHERE cond)``
  or ``sum(if(cond, x, 0))``; integer sums run in float64 (DuckDB's 128-bit integer sums
  made the snapshot table 2.5 times slower at 100M events) and a pivot picks its one value
  per group with max();
- snapshot windows: daily rows are summed over segments of days (runs that every window holds
  whole or not at all), and only these sums meet the snapshots, by an equality join on a
  small in-memory table, instead of a range join of every daily row with every snapshot (a
  nested loop on Spark); an event's count and active days travel packed in one integer;
- the tables leave their row order unspecified (:func:`to_frame` sorts when fetching);
- at 10M events and 3,000 names, Python's own work (building and compiling expressions of a
  few hundred columns, converting to pandas) was a third of the feature step: see
  :mod:`features.tables_sql`, :func:`materialise`, :func:`to_frame` and :func:`young_gc`.
"""

from __future__ import annotations

import datetime as dt
import functools
import gc
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import ibis
import pyarrow as pa
import sqlglot as sg
from ibis.expr.types import Table, Value

from features.columns import feature_col, maturity_col, setup_col, tenure_col
from features.values import engine_of, naive_utc
from features.windows import as_date as _as_date
from features.windows import month_ends as month_ends
from features.windows import segment_rows as segment_rows
from features.windows import snapshot_dates as snapshot_dates

if TYPE_CHECKING:
    import pandas as pd


def young_gc(fn):
    """``fn`` run with the objects that exist when it starts left out of the garbage
    collector's walks (``gc.freeze()``, undone when it returns).

    Building and compiling the expressions of a few hundred columns allocates enough Python
    objects to set off a full collection, which walks every object of the process, the
    libraries' included: one or two per feature build in ``bench/real_log.py`` at 10M events,
    0.2 s each (the build takes 3 s). Objects made inside are collected as usual. Left alone
    when objects are frozen already (by the caller, or by an outer call of this).
    """

    @functools.wraps(fn)
    def run(*args, **kwargs):
        if gc.get_freeze_count() or not gc.isenabled():
            return fn(*args, **kwargs)
        gc.freeze()
        try:
            return fn(*args, **kwargs)
        finally:
            gc.unfreeze()

    return run


@dataclass(frozen=True)
class Daily:
    """The in-engine (account, event, day) aggregate that every feature window is built from.

    Accounts and events travel as integer keys, which the engine joins and groups faster
    than their names (measured in DuckDB SQL at 11.7M events: the aggregate in 0.90 s instead
    of 1.19 s, the snapshot table's first grouping in 0.18-0.25 s instead of 0.33 s).

    Attributes
    ----------
    table : Table
        ``aid`` (account key), ``code`` (event code), ``day`` (UTC date), ``n`` (events),
        and ``qty`` (sum of quantity) when asked for (``daily_aggregate(quantity=True)``):
        one row per (aid, code, day) that has an event.
    accounts : Table
        The typed accounts with their key ``aid`` (0, 1, ... in ``account_id`` order).
    codes : tuple of str
        Event names by code: the name of code ``c`` is ``codes[c]``.
    """

    table: Table
    accounts: Table
    codes: tuple[str, ...]

    @cached_property
    def _index(self) -> dict[str, int]:
        return {name: c for c, name in enumerate(self.codes)}

    def code(self, event: str) -> int:
        """The code of ``event``; -1 (no row has it) for an event never seen."""
        return self._index.get(event, -1)

    def named(self) -> Table:
        """The aggregate with names: ``account_id``, ``event``, ``day``, ``n`` (and ``qty``
        when the aggregate has it)."""
        t = self.table.join(self.accounts.select("aid", "account_id"), "aid")
        t = t.join(_codes_table(self.codes), "code")
        return t.select("account_id", "event", "day", "n", *(["qty"] if "qty" in t.columns else []))


def _codes_table(codes: Sequence[str]) -> Table:
    return ibis.memtable(
        pa.table(
            {
                "event": pa.array(list(codes), pa.string()),
                "code": pa.array(range(len(codes)), pa.int32()),
            }
        )
    )


@young_gc
def daily_aggregate(
    accounts: Table,
    events: Table,
    *,
    as_of: dt.datetime | None = None,
    cache: bool = False,
    quantity: bool = False,
) -> Daily:
    """Reduce typed events to one row per (account, event, day).

    Parameters
    ----------
    accounts, events : Table
        Typed inputs (``features.io.typed_accounts``, ``features.io.typed_events``). Events
        of an account missing from ``accounts`` are left out (validation reports them).
    as_of : datetime, optional
        Naive UTC; events after it are left out (nothing from the future reaches a feature).
    cache : bool
        Compute the keyed accounts and the aggregate once in the engine (temporary tables on
        DuckDB, cached on Spark), for the several tables built from them.
    quantity : bool
        Also sum ``quantity`` per row (``qty``). No feature reads it, and it made the
        aggregate a tenth slower at 10M events (0.42 s instead of 0.37 s, fastest of six).

    Returns
    -------
    Daily
    """
    keyed = accounts.mutate(aid=ibis.row_number().over(order_by=accounts.account_id).cast("int32"))
    if cache:
        keyed = _cache(keyed)
    ev = events.filter(events.account_id.notnull(), events.event.notnull())
    if as_of is not None:
        ev = ev.filter(ev.occurred_at <= ibis.literal(naive_utc(as_of), "timestamp"))
    else:
        ev = ev.filter(ev.occurred_at.notnull())
    # The names come from the raw column, a cheap scan (the timestamps are not read).
    names = events.select("event").distinct().to_pyarrow().column("event").to_pylist()
    codes = tuple(sorted(str(n) for n in names if n is not None))
    ev = ev.join(keyed.select("account_id", "aid"), "account_id")
    ev = ev.join(_codes_table(codes), "event")
    sums = {"n": ev.count(), **({"qty": ev.quantity.sum()} if quantity else {})}
    table = ev.group_by(aid=ev.aid, code=ev.code, day=ev.occurred_at.date()).aggregate(**sums)
    if cache:
        table = _cache(table)
    return Daily(table, keyed, codes)


def _cache(expr: Table, con=None) -> Table:
    """``expr.cache()``, working around Ibis' PySpark backend, whose cache does not register
    the in-memory tables (``ibis.memtable``) that the expression reads: a view does."""
    con = con if con is not None else expr._find_backend()
    if engine_of(con) == "duckdb":
        return expr.cache()
    return con.create_view(ibis.util.gen_name("ms_view"), expr, overwrite=True).cache()


def event_names(daily: Daily) -> list[str]:
    """The product events that have a daily row, sorted (a small query)."""
    present = daily.table.select("code").distinct().to_pyarrow().column("code").to_pylist()
    return sorted(daily.codes[c] for c in present if c is not None)


@young_gc
def event_accounts(daily: Daily, *, as_of: dt.datetime | None = None) -> dict[str, int]:
    """``{event: accounts}`` in name order: the product events that have a daily row
    (:func:`event_names`), each with the accounts that used it up to ``as_of``'s date
    (:func:`feature_accounts` of the event alone, 0 when all its rows are later): one query
    over the aggregate instead of those two."""
    rows = daily.table
    used = rows.aid
    if as_of is not None:
        day = ibis.literal(naive_utc(as_of).date(), "date")
        used = ibis.ifelse(rows.day <= day, rows.aid, ibis.null(rows.aid.type()))
    counted = rows.group_by("code").aggregate(accounts=used.nunique()).to_pyarrow()
    out = {
        daily.codes[c]: int(n)
        for c, n in zip(
            counted.column("code").to_pylist(), counted.column("accounts").to_pylist(), strict=True
        )
        if c is not None
    }
    return dict(sorted(out.items()))


@young_gc
def feature_accounts(
    daily: Daily, groups: Mapping[str, Sequence[str]], *, as_of: dt.datetime | None = None
) -> dict[str, int]:
    """Accounts that used each feature up to ``as_of``'s date: one small query over the
    aggregate, whatever the number of features.

    Parameters
    ----------
    groups : mapping of str to sequence of str
        ``{feature: its events}``: an event, or a roll-up of several (an account uses a
        roll-up when it used any of its events). An event may sit in several groups.

    Returns
    -------
    dict
        ``{feature: accounts}``; 0 for a feature none of whose events occur.
    """
    names = list(groups)
    pairs = [(daily.code(e), i) for i, f in enumerate(names) for e in dict.fromkeys(groups[f])]
    pairs = [(c, i) for c, i in pairs if c >= 0]
    out = dict.fromkeys(names, 0)
    if not pairs:
        return out
    key = ibis.memtable(
        pa.table(
            {
                "code": pa.array([c for c, _ in pairs], pa.int32()),
                "_fid": pa.array([i for _, i in pairs], pa.int32()),
            }
        )
    )
    rows = daily.table
    if as_of is not None:
        rows = rows.filter(rows.day <= ibis.literal(naive_utc(as_of).date(), "date"))
    rows = rows.select("aid", "code").join(key, "code")
    counted = rows.group_by("_fid").aggregate(accounts=rows.aid.nunique()).to_pyarrow()
    for fid, n in zip(
        counted.column("_fid").to_pylist(), counted.column("accounts").to_pylist(), strict=True
    ):
        out[names[fid]] = int(n)
    return out


def _feature_keys(
    daily: Daily, events: Sequence[str], members: Mapping[str, Sequence[str]] | None
) -> tuple[dict[str, int], dict[int, int]]:
    """The key each feature's rows travel under: an event's own code, or for a roll-up
    (``members``) a new key past the event codes; and ``{member code: roll-up key}``."""
    keys: dict[str, int] = {}
    remap: dict[int, int] = {}
    for j, e in enumerate(events):
        if members and e in members:
            keys[e] = len(daily.codes) + j
            for m in members[e]:
                if daily.code(m) >= 0:
                    remap.setdefault(daily.code(m), keys[e])
        else:
            keys[e] = daily.code(e)
    return keys, remap


def _with_rollups(rows: Table, remap: Mapping[int, int]) -> Table:
    """The daily rows plus, for each roll-up, its events' rows summed per (account, day)
    under the roll-up's key (so its active days count each day once)."""
    if not remap:
        return rows
    key = ibis.memtable(
        pa.table(
            {
                "code": pa.array(list(remap), pa.int32()),
                "_key": pa.array(list(remap.values()), pa.int32()),
            }
        )
    )
    r = rows.join(key, "code")
    rolled = r.group_by(aid=r.aid, code=r._key, day=r.day).aggregate(n=r.n.sum())
    plain = rows.select("aid", "code", "day", "n")
    return plain.union(rolled.select(plain.columns).cast(plain.schema()))


def _flat_left_join(left: Table, right: Table, keys: list[str]) -> Table:
    """``left`` left-joined to ``right`` on ``keys``, as a plain table of the left's columns
    and the right's others. The wide tables select a few hundred expressions from it: Ibis
    builds such a selection from a join about a third slower than from a table."""
    joined = left.left_join(right, keys)
    return joined.select(*left.columns, *[c for c in right.columns if c not in keys])


def _alive_at(accounts: Table, ts) -> ibis.Value:
    """Still a customer at instant ``ts`` (churned_at is null or not before it)."""
    return accounts.churned_at.isnull() | (accounts.churned_at >= ts)


def _attributes(accounts: Table) -> list[str]:
    core = {"aid", "account_id", "signup_at", "churned_at", "seats", "plan"}
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


@young_gc
def tenure_table(
    daily: Daily,
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
    members: Mapping[str, Sequence[str]] | None = None,
) -> Table:
    """One row per account, anchored at signup (see :mod:`features.columns`).

    Parameters
    ----------
    daily : Daily
        The (account, event, day) aggregate and the keyed accounts, from
        :func:`daily_aggregate`.
    as_of : datetime
        Naive UTC scoring date; accounts that sign up after it have no row, and labels whose
        date lies after it are left null.
    events : sequence of str
        Product features (names) that get ``gw__``, ``aw__`` and ``ttf__`` columns: only
        these become columns, however many names the events hold.
    members : mapping of str to sequence of str, optional
        The roll-ups among ``events``: ``{feature: its events}``, counted as one feature.
    """
    aw = int(activation_window_days)
    sw = int(setup_window_days)
    gw = int(golden_week_days)
    period = int(inactivity_period_days)
    periods = max(1, int(inactivity_horizon_days) // period)
    horizon_end = aw + periods * period
    as_of = naive_utc(as_of)
    as_of_date = ibis.literal(as_of.date(), "date")

    accounts = daily.accounts
    acc = accounts.filter(accounts.signup_at <= ibis.literal(as_of, "timestamp"))
    acc = acc.mutate(signup_date=acc.signup_at.date())
    keys = acc.select("aid", "signup_date")
    fkeys, remap = _feature_keys(daily, events, members)
    raw = [daily.code(s) for s in setup_steps] + [daily.code(activation_event)]
    wanted = sorted({c for c in [*raw, *fkeys.values(), *remap] if c >= 0})
    rows = daily.table
    rows = rows.filter(rows.day <= as_of_date, rows.code.isin(wanted or [-1]))
    rows = _with_rollups(rows, remap)
    d = rows.join(keys, "aid")
    d = d.select("aid", "code", "n", di=d.day.delta(d.signup_date, unit="day"))
    d = d.filter(d.di >= 0, d.di < max(sw, aw, gw, horizon_end))

    # Step 1, per (account, event): the window sums, over the raw daily rows.
    is_activation = d.code == daily.code(activation_event)
    step1: dict[str, Value] = {
        "_sw": _sum(_if(d.di < sw, d.n)),
        "_gw": _sum(_if(d.di < gw, d.n)),
        "_aw": _sum(_if(d.di < aw, d.n)),
        "_ttf": _if(d.di < aw, d.di).min(),
    }
    for k in range(periods):
        lo, hi = aw + k * period, aw + (k + 1) * period
        step1[f"_post_{k}"] = _sum(_if(is_activation & (d.di >= lo) & (d.di < hi), d.n))
    per_event = d.group_by("aid", "code").aggregate(**step1)

    # Step 2, per account: one column per (event, window), over the per-event rows. A group
    # holds one row per event, so max() picks that event's value.
    p = per_event
    aggs: dict[str, Value] = {}
    for step in setup_steps:
        aggs[setup_col(step)] = _if(p.code == daily.code(step), p["_sw"]).max()
    aggs["activation_count"] = _if(p.code == daily.code(activation_event), p["_aw"]).max()
    for k in range(periods):
        aggs[f"_post_{k}"] = p[f"_post_{k}"].max()  # only the activation event's row has one
    for e in events:
        aggs[tenure_col("gw", e)] = _if(p.code == fkeys[e], p["_gw"]).max()
        aggs[tenure_col("aw", e)] = _if(p.code == fkeys[e], p["_aw"]).max()
        aggs[tenure_col("ttf", e)] = _if(p.code == fkeys[e], p["_ttf"]).min()
    per_account = p.group_by("aid").aggregate(**aggs)

    t = _flat_left_join(acc, per_account, ["aid"])
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
        for kind in ("gw", "aw"):
            cols[tenure_col(kind, e)] = t[tenure_col(kind, e)].fill_null(0).cast("int64")
        cols[tenure_col("ttf", e)] = t[tenure_col("ttf", e)].cast("float64")
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
    return t.select(**cols)


def _segments(dates: Sequence[dt.date], windows: Mapping[str, int]) -> tuple[Table, Table]:
    """:func:`segment_rows` as two in-memory tables."""
    days, segs = segment_rows(dates, windows)
    day_segment = ibis.memtable(
        pa.table(
            {"day": pa.array(days["day"], pa.date32()), "seg": pa.array(days["seg"], pa.int64())}
        )
    )
    segment_window = ibis.memtable(
        pa.table(
            {
                "seg": pa.array(segs["seg"], pa.int64()),
                "snapshot_date": pa.array(segs["snapshot_date"], pa.date32()),
                **{k: pa.array(segs[k], pa.int64()) for k in windows},
            }
        )
    )
    return day_segment, segment_window


@young_gc
def snapshot_table(
    daily: Daily,
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
    members: Mapping[str, Sequence[str]] | None = None,
) -> Table:
    """One row per account and snapshot date (see :mod:`features.columns`).

    Parameters
    ----------
    daily : Daily
        The aggregate and the keyed accounts, from :func:`daily_aggregate`.
    dates : iterable of date
        Snapshot dates S; features use the days [S - W + 1, S].
    events : sequence of str
        Product features (names) that get the per-feature columns; only these, the
        utilization event and the categories' features are read.
    require_window_closed : bool
        Keep only accounts whose activation window closed by S (training rows). Scoring at
        ``as_of`` sets it False to score every customer.
    members : mapping of str to sequence of str, optional
        The roll-ups among ``events`` (see :func:`tenure_table`).
    """
    dates = sorted({_as_date(d) for d in dates})
    if not dates:
        raise ValueError(
            "snapshot_table: no snapshot dates (is the history shorter than the activation window?)"
        )
    as_of = naive_utc(as_of)
    as_of_date = ibis.literal(as_of.date(), "date")
    wt, wu, wm = int(trailing_days), int(utilization_window_days), int(maturity_window_days)
    snaps = ibis.memtable(pa.table({"snapshot_date": pa.array(dates, pa.date32())}))

    accounts = daily.accounts
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

    # Only the events that feed some column matter.
    maturity_features = list(dict.fromkeys(f for feats in categories.values() for f in feats))
    fkeys, remap = _feature_keys(daily, events, members)
    raw = {e: daily.code(e) for e in [utilization_event, *maturity_features]}
    wanted = sorted({c for c in [*fkeys.values(), *raw.values()] if c >= 0})  # pivoted

    # Windows of month-end snapshots overlap (a 90-day window spans three month ends). The
    # daily rows are first summed over segments (runs of days that each window holds whole or
    # not at all, about two per month); only these sums meet, by an equality join, the
    # snapshots whose windows hold them, and are summed per (account, snapshot, event), one
    # sum per window length; a last grouping pivots them to one row per (account, snapshot).
    # An event's count and active days travel packed in one integer, count * K + days with
    # K above any window's length, so that sums of packed values stay exact. (Pivoting per
    # (account, segment) before the join, then summing the wide rows, took 25% longer at 10M
    # events: two passes of one aggregate per event instead of one.)
    windows = {"_in_t": wt, "_in_u": wu, "_in_m": wm}
    day_segment, segment_window = _segments(dates, windows)
    k = max(wt, wu, wm) + 1
    d = daily.table
    d = d.filter(d.day <= as_of_date, d.code.isin(sorted({*wanted, *remap}) or [-1]))
    d = _with_rollups(d, remap).join(day_segment, "day")
    segs = d.group_by("aid", "code", "seg").aggregate(_n=_sum(d.n), _days=d.count())
    if remap:  # a roll-up's events count under its key; their own rows only when wanted
        segs = segs.filter(segs.code.isin(wanted or [-1]))
    j = segs.select("aid", "code", "seg", _p=segs["_n"] * k + segs["_days"])
    j = j.join(segment_window, "seg")
    # only the (account, snapshot) rows the table keeps: a third of the pairs at 10M events
    # are dropped by the filter of ``base`` (window not closed yet, churned)
    j = j.join(base.select("aid", "snapshot_date"), ["aid", "snapshot_date"])
    flags = {w: flag for flag, w in reversed(windows.items())}  # a flag per window length
    long = j.group_by("aid", "snapshot_date", "code").aggregate(
        **{
            # the widest window holds every segment joined to a snapshot
            f"_w{w}": _sum(j["_p"]) if w == k - 1 else _sum(_if(j[flag] == 1, j["_p"]))
            for w, flag in flags.items()
        }
    )

    def window_sum(flag: str, key: int) -> Value:
        # a group holds one row per event, so max() picks that event's sum
        return _if(long.code == key, long[f"_w{windows[flag]}"]).max()

    sums: dict[str, Value] = {}
    # When the maturity window is the trailing one, a feature's use there is its trailing count.
    trailing = [fkeys[e] for e in events] + [raw[f] for f in maturity_features if wm == wt]
    for key in dict.fromkeys(trailing):
        if key >= 0:
            sums[f"_t{key}"] = window_sum("_in_t", key)
    if raw[utilization_event] >= 0:
        sums["_u"] = window_sum("_in_u", raw[utilization_event])
    if wm != wt:
        for key in dict.fromkeys(raw[f] for f in maturity_features):
            if key >= 0:
                sums[f"_m{key}"] = window_sum("_in_m", key)
    per_snapshot = long.group_by("aid", "snapshot_date").aggregate(**sums)

    t = _flat_left_join(base, per_snapshot, ["aid", "snapshot_date"])
    seats = t.seats.cast("float64")
    label_date = t.snapshot_date + ibis.interval(days=int(horizon_days))
    censored = label_date >= as_of_date
    periods_in_window = wu / int(period_days)

    def packed_of(name: str) -> Value:
        return t[name].fill_null(0) if name in t.columns else ibis.literal(0, "int64")

    cols: dict[str, Value] = {
        "account_id": t.account_id,
        "snapshot_date": t.snapshot_date,
        "plan": t.plan,
        "seats": t.seats,
        "tenure_days": t.snapshot_date.delta(t.signup_date, unit="day").cast("int64"),
    }
    cols.update({a: t[a] for a in _attributes(accounts)})
    for e in events:
        pk = packed_of(f"_t{fkeys[e]}")
        count = (pk // k).cast("int64")
        cols[feature_col(e, "used")] = (count > 0).cast("int8")
        cols[feature_col(e, "count")] = count
        cols[feature_col(e, "days")] = (pk % k).cast("int64")
        cols[feature_col(e, "per_seat")] = count.cast("float64") / seats
    util = (packed_of("_u") // k).cast("float64")
    cols["utilization_rate"] = util / seats / periods_in_window
    cols["utilization_raw"] = util / periods_in_window
    for cat, feats in categories.items():
        used = [
            (packed_of(f"_m{raw[f]}" if wm != wt else f"_t{raw[f]}") >= k).cast("int64")
            for f in dict.fromkeys(feats)
        ]
        total = ibis.literal(0, "int64")
        for u in used:
            total = total + u
        cols[maturity_col(cat)] = total
    cols["label_date"] = label_date
    cols["censored"] = censored
    label_end = (label_date + ibis.interval(days=1)).cast("timestamp")
    cols["retained"] = ibis.ifelse(
        censored, ibis.null("int8"), _alive_at(t, label_end).cast("int8")
    )
    return t.select(**cols)


TENURE_ORDER = ("account_id",)
SNAPSHOT_ORDER = ("snapshot_date", "account_id")


@young_gc
def to_frame(table: Table, order: Sequence[str], rows: pa.Table | None = None) -> pd.DataFrame:
    """A built table as pandas, in the order of ``order`` (a unique key: the tables leave
    their row order unspecified); ``rows``: its rows already fetched as Arrow in that order
    (``features.tables_sql.build_tables``), converted as they are and kept.

    On DuckDB the rows are sorted in the engine and come over as Arrow, whose buffers are
    released column by column as pandas takes them (``self_destruct``); at 100M events the
    snapshot table's copies made the feature step's peak (9.5 GiB). The columns get the
    dtypes of Ibis' ``to_pandas()`` (``PandasData.convert_column``, column by column), but
    Arrow builds the pandas blocks itself (dates as datetime64, not as Python objects) and
    only the columns whose dtype differs (text, dates, timestamps) are converted and put
    back: Ibis' own conversion builds the whole frame a second time (on the 10M snapshot
    table, 92k rows by 232 columns, 0.17-0.2 s instead of 0.4-0.5 s once warm; on eight
    copies of it, 2.1 s and 2.6 GiB above the start instead of 6 s and 3.7 GiB).
    """
    if rows is not None or engine_of(table._find_backend()) == "duckdb":
        from ibis.formats.pandas import PandasData

        if rows is None:
            arrow = table.order_by(list(order)).to_pyarrow()
            frame = arrow.to_pandas(self_destruct=True, date_as_object=False)
            del arrow
        else:
            frame = rows.to_pandas(date_as_object=False)
        for name, dtype in table.schema().items():
            column = frame[name]
            converted = PandasData.convert_column(column, dtype)
            if converted is not column:
                frame[name] = converted
        return frame
    frame = table.to_pandas()
    return frame.sort_values(list(order), kind="stable", ignore_index=True)


def build_tables(
    con,
    daily: Daily,
    *,
    tenure: Mapping,
    snapshots: Mapping,
    dates: Sequence[dt.date],
    training: bool = True,
    names: Mapping[str, str] | None = None,
) -> dict[str, Table]:
    """The tenure table, the training snapshots (empty when not ``training``; at ``as_of``'s
    date when there are no ``dates``) and the rows at ``as_of``, materialised in the engine
    from the expressions of :func:`tenure_table` and :func:`snapshot_table` (``tenure`` and
    ``snapshots``: their keyword arguments, ``snapshots`` without ``dates`` and
    ``require_window_closed``). :func:`features.tables_sql.build_tables` is its DuckDB twin.
    """
    names = {"tenure": "ms_tenure", "snapshots": "ms_snapshots", "current": "ms_current"} | dict(
        names or {}
    )
    today = naive_utc(snapshots["as_of"]).date()
    snaps = snapshot_table(daily, dates=list(dates) or [today], **snapshots)
    current = snapshot_table(daily, dates=[today], require_window_closed=False, **snapshots)
    return {
        "tenure": materialise(con, names["tenure"], tenure_table(daily, **tenure)),
        "snapshots": materialise(con, names["snapshots"], snaps if training else snaps.limit(0)),
        "current": materialise(con, names["current"], current),
    }


@young_gc
def materialise(con, name: str, expr: Table) -> Table:
    """Compute ``expr`` once in the engine: a temporary table ``name`` on DuckDB (replacing
    one of that name), a cached table on Spark.

    On DuckDB, what Ibis' ``create_table(name, expr, temp=True)`` runs (a table of the
    expression's schema, then ``INSERT INTO ... SELECT``), with the SQL written once: Ibis
    copies the compiled query into an INSERT tree and generates it again, and writes the
    type of each of the hundreds of columns anew (at 10M events and 54 judged features, the
    current rows, 232 columns, took 0.5 s to materialise instead of 0.23 s).
    """
    if engine_of(con) != "duckdb":
        return _cache(expr, con)
    hooks = getattr(con, "_run_pre_execute_hooks", None)
    if hooks is None:  # an Ibis without the hook: its own path
        con.drop_table(name, force=True)
        return con.create_table(name, expr, temp=True)
    hooks(expr)  # registers the in-memory tables the expression reads
    return create_temp_table(con, name, expr.schema(), con.compile(expr))


def create_temp_table(con, name: str, schema: ibis.Schema, query: str | None) -> Table:
    """A DuckDB temporary table ``name`` (replacing one of that name) with the columns of
    ``schema``, typed as Ibis types them, filled by the SQL ``query`` (None: left empty)."""
    dialect = con.dialect
    kinds: dict = {}  # Ibis' column definition of each type, written once per type
    for dtype in schema.types:
        if dtype not in kinds:
            (column,) = ibis.schema({"c": dtype}).to_sqlglot_column_defs(dialect)
            kinds[dtype] = column.sql(dialect).removeprefix('"c"')
    table, *names = (sg.to_identifier(n, quoted=True).sql(dialect) for n in [name, *schema.names])
    columns = ", ".join(n + kinds[dtype] for n, dtype in zip(names, schema.types, strict=True))
    con.raw_sql(f"CREATE OR REPLACE TEMP TABLE {table} ({columns})").fetchall()
    if query is not None:
        con.raw_sql(f"INSERT INTO {table} {query}").fetchall()
    return con.table(name)
