"""Milestone flags computed in the engine: each live account's current state and its stage.

One Ibis expression joins the rows at ``as_of`` (utilization rate, distinct features per
category) to each account's current setup and activation state (:mod:`features.state`, read
from the (account, event, day) aggregate) and applies the thresholds, so scoring millions of
accounts never moves events or feature tables into pandas.

The milestones are learned on the early windows; the state is the account's state now:

- setup: every selected step done at any time up to ``as_of``;
- activation: the threshold reached within some span of ``activation_window_days`` days;
- utilization and maturity: the trailing windows that end at ``as_of``; their
  ``*_reached_at`` is ``as_of``'s date when reached now (null otherwise): the state is
  confirmed at that date, not traced back to the day it was first crossed.

The stage is the highest rung of ``new < setup < activated < utilized < mature`` such that
the account has reached, now, that rung and every rung below it, where the setup rung is
passed by completing the selected steps *or by being activated*: the steps are selected for
the activation they bring (setup is derived against activation), so an activated account
has passed onboarding even when it never did one of them (``setup_complete`` still says
whether it did, ``setup_steps_missing`` which it did not).

Only the milestones that gate (``gating``: those the data confirm or the configuration pins)
are rungs: an unconfirmed milestone's flags are still computed, but the ladder skips it, so
its rung is never an account's stage and never stands in the way of a higher one. With no
gating milestone at all, every account is ``new``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

import ibis
from ibis.expr.types import Table

from features.columns import category_features_col, mature_col, maturity_col, setup_done_col
from features.state import milestone_state
from features.tables import Daily
from features.values import naive_utc

STAGES = ("new", "setup", "activated", "utilized", "mature")
#: Each milestone and the rung (stage) reaching it gives, in ladder order.
RUNGS = (
    ("setup", "setup"),
    ("activation", "activated"),
    ("utilization", "utilized"),
    ("maturity", "mature"),
)


def milestone_flags(
    daily: Daily,
    current: Table,
    *,
    as_of: dt.datetime,
    setup_steps: Sequence[str],
    setup_window_days: int,
    activation_event: str,
    activation_threshold: float,
    activation_window_days: int,
    utilization_threshold: float,
    category_thresholds: Mapping[str, float],
    min_categories: int,
    utilization_column: str = "utilization_rate",
    gating: Sequence[str] | None = None,
) -> Table:
    """Per live account: its current milestone state, the stage and the gaps to the next
    milestone.

    Parameters
    ----------
    daily : Daily
        The (account, event, day) aggregate (:func:`features.tables.daily_aggregate`).
    current : Table
        The snapshot rows at ``as_of`` (one per live account).
    as_of : datetime
        The scoring date (naive UTC; an aware one is converted).
    setup_window_days, activation_window_days : int
        The early windows the milestones were learned on: they decide the on-time flags;
        the activation window is also the length of the span the activation count runs over.
    utilization_column : str
        ``utilization_rate`` (per seat) or ``utilization_raw``.
    gating : sequence of str, optional
        The milestones (``setup``, ``activation``, ``utilization``, ``maturity``) that are
        rungs of the stage ladder; default: all four. The others are skipped (see the
        module's docstring).

    Returns
    -------
    Table
        ``account_id``, the columns of :func:`features.state.milestone_state` (setup and
        activation state, their ``*_reached_at`` and on-time flags), ``activation_needed``
        (events still needed in the span ending at ``as_of``), ``utilization_rate``,
        ``utilized``, ``utilization_gap``, ``utilization_reached_at``, ``features__<category>``
        and ``mature__<category>`` (the category's code: :mod:`features.columns`),
        ``mature_categories``, ``mature``, ``maturity_reached_at``, ``stage``.
    """
    names = [m for m, _ in RUNGS]
    gate = names if gating is None else list(gating)
    unknown = [g for g in gate if g not in names]
    if unknown:
        raise ValueError(f"gating: unknown milestone {unknown[0]!r}; expected some of {names}")
    as_of = naive_utc(as_of)
    as_of_date = ibis.literal(as_of.date(), "date")
    state = milestone_state(
        daily,
        as_of=as_of,
        setup_steps=setup_steps,
        setup_window_days=setup_window_days,
        activation_event=activation_event,
        activation_threshold=activation_threshold,
        activation_window_days=activation_window_days,
    )
    j = current.left_join(state, "account_id")
    steps = list(dict.fromkeys(setup_steps))
    recent = j.activation_count_recent.fill_null(0).cast("int64")
    rate = j[utilization_column].fill_null(0.0).cast("float64")
    cols: dict[str, ibis.Value] = {
        "account_id": j.account_id,
        "setup_steps_done": j.setup_steps_done.fill_null(0).cast("int64"),
        "setup_complete": j.setup_complete.fill_null(len(steps) == 0),
    }
    for s in steps:
        cols[setup_done_col(s)] = j[setup_done_col(s)].fill_null(False)
    cols.update(
        setup_reached_at=j.setup_reached_at,
        setup_on_time=j.setup_on_time,
        activation_count=j.activation_count.fill_null(0).cast("int64"),
        activation_count_recent=recent,
        activated=j.activated.fill_null(False),
        activation_reached_at=j.activation_reached_at,
        activation_on_time=j.activation_on_time,
        activation_needed=ibis.greatest(
            0, (ibis.literal(float(activation_threshold)) - recent).ceil()
        ).cast("int64"),
        utilization_rate=rate,
        utilized=rate >= utilization_threshold,
        utilization_gap=ibis.greatest(0.0, ibis.literal(float(utilization_threshold)) - rate),
    )
    cols["utilization_reached_at"] = ibis.ifelse(cols["utilized"], as_of_date, ibis.null("date"))
    n_mature = ibis.literal(0, "int64")
    for cat, threshold in category_thresholds.items():
        used = j[maturity_col(cat)].fill_null(0).cast("int64")
        cols[category_features_col(cat)] = used
        cols[mature_col(cat)] = used >= threshold
        n_mature = n_mature + (used >= threshold).cast("int64")
    cols["mature_categories"] = n_mature
    cols["mature"] = n_mature >= int(min_categories)
    cols["maturity_reached_at"] = ibis.ifelse(cols["mature"], as_of_date, ibis.null("date"))
    flags = j.select(**cols)
    return flags.mutate(stage=_stage(flags, gate)).order_by("account_id")


def _stage(flags: Table, gating: Sequence[str]) -> ibis.Value:
    """The furthest gating rung reached now with every earlier gating rung reached now too
    (activation passes the setup rung: see the module's docstring)."""
    reached = {
        "setup": flags.setup_complete | flags.activated,
        "activation": flags.activated,
        "utilization": flags.utilized,
        "maturity": flags.mature,
    }
    cases, below = [], STAGES[0]
    for milestone, rung in RUNGS:
        if milestone in gating:
            cases.append((~reached[milestone], below))
            below = rung
    if not cases:
        return ibis.literal(STAGES[0], "string")
    return ibis.cases(*cases, else_=below)
