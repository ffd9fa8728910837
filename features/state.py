"""Each account's current setup and activation state, computed in the engine.

The milestones are learned on the early windows (the tenure table: setup steps done within
``setup.window_days``, activation events within ``activation.window_days`` of signup), but an
account's *state* is its state now, at ``as_of``:

- setup is complete once every selected step has been done, at any time up to ``as_of``;
  ``setup_reached_at`` is the day the last of them was first done, and ``setup_on_time``
  says whether that day lies within the setup window (day index ``< setup_window_days``);
- activation is reached once some span of ``activation_window_days`` consecutive days since
  signup holds ``activation_threshold`` activation events; ``activation_reached_at`` is the
  first day on which the count of the span ending that day reached the threshold, and
  ``activation_on_time`` says whether that day lies within the activation window.

Both are read from the (account, event, day) aggregate (:class:`features.tables.Daily`). The
rolling count is a range window over integer day numbers of the account's activation-event
days: the count of the span ending on a day only rises on a day with events, so evaluating
it on those days finds both its maximum and the first day it reaches the threshold. The same
expression runs on DuckDB and Spark.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import ibis
from ibis.expr.types import Table, Value

from features.columns import setup_done_col
from features.tables import Daily, _if
from features.values import naive_utc

__all__ = ["milestone_state", "state_columns"]


def state_columns(setup_steps: Sequence[str]) -> list[str]:
    """The columns of :func:`milestone_state`, in order."""
    return [
        "account_id",
        "signup_date",
        *(setup_done_col(s) for s in setup_steps),
        "setup_steps_done",
        "setup_complete",
        "setup_reached_at",
        "setup_on_time",
        "activation_count",
        "activation_count_recent",
        "activated",
        "activation_reached_at",
        "activation_on_time",
    ]


def _latest(values: list[Value]) -> Value:
    """The latest of several dates; null when any of them is null."""
    out = values[0]
    for v in values[1:]:
        out = ibis.ifelse(out.isnull() | v.isnull(), ibis.null("date"), ibis.greatest(out, v))
    return out


def milestone_state(
    daily: Daily,
    *,
    as_of: dt.datetime,
    setup_steps: Sequence[str],
    setup_window_days: int,
    activation_event: str,
    activation_threshold: float,
    activation_window_days: int,
) -> Table:
    """One row per account signed up by ``as_of``: its current setup and activation state.

    Parameters
    ----------
    daily : Daily
        The (account, event, day) aggregate and the keyed accounts.
    as_of : datetime
        Naive UTC (an aware one is converted); days after its date are ignored.
    setup_steps : sequence of str
        The selected setup steps (none: setup is complete from the signup day, on time).
    setup_window_days, activation_window_days : int
        The early windows the milestones were learned on: they decide "on time" only, and
        the activation window is also the span length of the rolling count.
    activation_event : str
    activation_threshold : float
        Activation events needed within one span.

    Returns
    -------
    Table
        The columns of :func:`state_columns`: ``setup_done__<step>`` (done by ``as_of``;
        ``<step>`` is the step's code, :func:`features.columns.setup_done_col`),
        ``setup_steps_done``, ``setup_complete``, ``setup_reached_at`` (date),
        ``setup_on_time`` (null when not reached), ``activation_count`` (the most activation
        events in any span), ``activation_count_recent`` (in the span ending at ``as_of``),
        ``activated``, ``activation_reached_at`` (date), ``activation_on_time``.
    """
    steps = list(dict.fromkeys(setup_steps))
    sw, aw = int(setup_window_days), int(activation_window_days)
    if aw < 1:
        raise ValueError(f"activation_window_days: expected a positive integer, got {aw!r}")
    as_of = naive_utc(as_of)
    as_of_date = ibis.literal(as_of.date(), "date")
    accounts = daily.accounts
    acc = accounts.filter(accounts.signup_at <= ibis.literal(as_of, "timestamp"))
    keys = acc.select("aid", "account_id", signup_date=acc.signup_at.date())

    step_codes = {s: daily.code(s) for s in steps}
    act_code = daily.code(activation_event)
    codes = sorted({c for c in [*step_codes.values(), act_code] if c >= 0})
    rows = daily.table
    d = rows.filter(rows.day <= as_of_date, rows.code.isin(codes or [-1]))
    d = d.join(keys.select("aid", "signup_date"), "aid")
    d = d.select("aid", "code", "day", "n", di=d.day.delta(d.signup_date, unit="day"))
    d = d.filter(d.di >= 0)

    # Setup: the first day each selected step was done.
    t = keys
    if steps:
        firsts = d.filter(d.code.isin([c for c in step_codes.values() if c >= 0] or [-1]))
        firsts = firsts.group_by("aid").aggregate(
            **{
                f"_first_{i}": _if(firsts.code == step_codes[s], firsts.day).min()
                for i, s in enumerate(steps)
            }
        )
        t = t.left_join(firsts, "aid").drop("aid_right")

    # Activation: the count of the span of ``aw`` days ending on each activation-event day.
    a = d.filter(d.code == act_code)
    span = ibis.window(group_by=a.aid, order_by=a.di, range=(-(aw - 1), 0))
    a = a.mutate(_roll=a.n.cast("int64").sum().over(span))
    recent_from = as_of_date - ibis.interval(days=aw - 1)
    per_account = a.group_by("aid").aggregate(
        _best=a._roll.max(),
        _recent=_if(a.day >= recent_from, a.n.cast("int64")).sum(),
        _reached=_if(a._roll >= float(activation_threshold), a.day).min(),
    )
    t = t.left_join(per_account, "aid").drop("aid_right")

    cols: dict[str, Value] = {"account_id": t.account_id, "signup_date": t.signup_date}
    done = ibis.literal(0, "int64")
    for i, s in enumerate(steps):
        cols[setup_done_col(s)] = t[f"_first_{i}"].notnull()
        done = done + t[f"_first_{i}"].notnull().cast("int64")
    firsts_of = [t[f"_first_{i}"] for i in range(len(steps))]
    setup_at = _latest(firsts_of) if steps else t.signup_date  # no step: complete at signup
    cols["setup_steps_done"] = done
    cols["setup_complete"] = setup_at.notnull()
    cols["setup_reached_at"] = setup_at
    cols["setup_on_time"] = setup_at.delta(t.signup_date, unit="day") < sw

    best = t._best.fill_null(0).cast("int64")
    # a threshold of 0 needs nothing: reached at signup
    act_at = t.signup_date if float(activation_threshold) <= 0 else t._reached
    cols["activation_count"] = best
    cols["activation_count_recent"] = t._recent.fill_null(0).cast("int64")
    cols["activated"] = act_at.notnull()
    cols["activation_reached_at"] = act_at
    cols["activation_on_time"] = act_at.delta(t.signup_date, unit="day") < aw
    return t.select(**cols)
