"""Calendar helpers of the feature tables: snapshot dates and the segments of days their
trailing windows cover (pure Python, shared by :mod:`features.tables` and
:mod:`features.tables_sql`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from itertools import pairwise

from features.values import naive_utc


def as_date(value) -> dt.date:
    """A date from a date, a datetime or a pandas Timestamp (its date part)."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if hasattr(value, "date"):
        return value.date()
    raise TypeError(f"expected a date, got {value!r}")


def month_ends(start: dt.date, end: dt.date) -> list[dt.date]:
    """Month-end dates d with start <= d <= end."""
    start, end = as_date(start), as_date(end)
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
    as_of = naive_utc(as_of)  # a plain date: its start, like datetime(date)
    end = as_of.date()
    if as_of.time() < dt.time(23, 59, 59):
        end -= dt.timedelta(days=1)
    start = as_date(first_signup) + dt.timedelta(days=int(activation_window_days))
    return month_ends(start, end)[-int(max_snapshots) :]


def segment_rows(
    dates: Sequence[dt.date], windows: Mapping[str, int]
) -> tuple[dict[str, list], dict[str, list]]:
    """Cut the days that the snapshot windows cover into segments, runs of days that every
    window [S - W + 1, S] holds either whole or not at all (shared by both ways of building
    the snapshot table: :func:`features.tables.snapshot_table` and :mod:`features.tables_sql`).

    Returns
    -------
    (day_segment, segment_window)
        Columns: ``day``, ``seg`` for every covered day; ``seg``, ``snapshot_date`` and one 0/1
        flag per window for every (segment, snapshot) pair whose widest window holds the
        segment.
    """
    starts = {s + dt.timedelta(days=1) for s in dates}  # a window ends with its day S
    starts |= {s - dt.timedelta(days=w - 1) for s in dates for w in windows.values()}
    bounds = sorted(starts)
    day_segment: dict[str, list] = {"day": [], "seg": []}
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
            day_segment["day"].append(lo + dt.timedelta(days=n))
            day_segment["seg"].append(k)
        for s, flags in inside.items():
            seg_rows["seg"].append(k)
            seg_rows["snapshot_date"].append(s)
            for name, flag in flags.items():
                seg_rows[name].append(flag)
    return day_segment, seg_rows
