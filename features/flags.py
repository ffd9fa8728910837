"""Milestone flags computed in the engine: the thresholds applied to the rows at ``as_of``.

One Ibis expression joins the tenure table (setup steps, activation count) to the rows at
``as_of`` (utilization rate, distinct features per category) and applies the thresholds, so
scoring millions of accounts never moves the feature tables into pandas.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

import ibis
from ibis.expr.types import Table

from features.columns import maturity_col, setup_col
from features.values import naive_utc

STAGES = ("new", "setup", "activated", "utilized", "mature")


def milestone_flags(
    tenure: Table,
    current: Table,
    *,
    as_of: dt.datetime,
    setup_steps: Sequence[str],
    activation_threshold: float,
    activation_window_days: int,
    utilization_threshold: float,
    category_thresholds: Mapping[str, float],
    min_categories: int,
    utilization_column: str = "utilization_rate",
) -> Table:
    """Per live account: the milestone flags, the stage and the gaps to the next milestone.

    Parameters
    ----------
    tenure : Table
        The tenure table (``setup__<step>``, ``activation_count``, ``signup_at``).
    current : Table
        The snapshot rows at ``as_of`` (one per live account).
    as_of : datetime
        The scoring date (naive UTC; an aware one is converted); ``activation_days_left``
        counts from its date.
    utilization_column : str
        ``utilization_rate`` (per seat) or ``utilization_raw``.

    Returns
    -------
    Table
        ``account_id``, ``setup_steps_done``, ``setup_complete``, ``setup_missing_<i>`` ...,
        ``activation_count``, ``activated``, ``activation_needed``, ``activation_days_left``,
        ``utilization_rate``, ``utilized``, ``utilization_gap``, ``<category>_features``,
        ``mature_<category>``, ``mature_categories``, ``mature``, ``stage``.
    """
    as_of = naive_utc(as_of)
    t = tenure.select(
        "account_id",
        "activation_count",
        signup_date=tenure.signup_at.date(),
        **{setup_col(s): tenure[setup_col(s)] for s in setup_steps},
    )
    j = current.left_join(t, "account_id")
    done = ibis.literal(0, "int64")
    for s in setup_steps:
        done = done + j[setup_col(s)].fill_null(False).cast("int64")
    count = j.activation_count.fill_null(0).cast("int64")
    rate = j[utilization_column].fill_null(0.0).cast("float64")
    cols: dict[str, ibis.Value] = {
        "account_id": j.account_id,
        "setup_steps_done": done,
        "setup_complete": done == len(setup_steps),
    }
    for s in setup_steps:
        cols[f"setup_done__{s}"] = j[setup_col(s)].fill_null(False)
    window_end = j.signup_date + ibis.interval(days=int(activation_window_days))
    days_left = window_end.delta(ibis.literal(as_of.date(), "date"), unit="day") - 1
    cols.update(
        activation_count=count,
        activated=count >= activation_threshold,
        activation_needed=ibis.greatest(
            0, (ibis.literal(float(activation_threshold)) - count).ceil()
        ).cast("int64"),
        activation_days_left=ibis.greatest(0, days_left).cast("int64"),
        utilization_rate=rate,
        utilized=rate >= utilization_threshold,
        utilization_gap=ibis.greatest(0.0, ibis.literal(float(utilization_threshold)) - rate),
    )
    n_mature = ibis.literal(0, "int64")
    for cat, threshold in category_thresholds.items():
        used = j[maturity_col(cat)].fill_null(0).cast("int64")
        cols[f"{cat}_features"] = used
        cols[f"mature_{cat}"] = used >= threshold
        n_mature = n_mature + (used >= threshold).cast("int64")
    cols["mature_categories"] = n_mature
    cols["mature"] = n_mature >= int(min_categories)
    flags = j.select(**cols)
    # the stage is the furthest milestone reached in order (all earlier ones reached too)
    stage = ibis.cases(
        (~flags.setup_complete, STAGES[0]),
        (~flags.activated, STAGES[1]),
        (~flags.utilized, STAGES[2]),
        (~flags.mature, STAGES[3]),
        else_=STAGES[4],
    )
    return flags.mutate(stage=stage).order_by("account_id")
