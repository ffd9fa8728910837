"""Scoring live accounts against the milestones: the next best step, in plain words.

The flags themselves are computed in the engine (:mod:`features.flags`); this module turns
that small per-account frame into the published scores. Only the milestones that gate
(:func:`models.verdict.gating_milestones`: all but those the data leave ``unconfirmed``)
are rungs of the stage and targets of the next step.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import numpy as np
import pandas as pd

from features.columns import category_features_col, mature_col, setup_done_col
from features.flags import RUNGS, STAGES
from models.defaults import UTILIZATION_PERIOD_DAYS
from models.stats import require_columns
from models.verdict import gating_milestones

__all__ = ["REACHED_COLUMNS", "SCORE_COLUMNS", "STAGES", "finish_scores", "flag_parameters"]

SCORE_COLUMNS = [
    "account_id",
    "as_of",
    "setup_complete",
    "setup_steps_done",
    "activation_count",
    "activated",
    "utilization_rate",
    "utilized",
    "mature_categories",
    "mature",
    "stage",
    "next_step",
    "retention_probability",
]

# Each milestone's date and the on-time flags: detail columns right after the contract's.
REACHED_COLUMNS = [
    "setup_reached_at",
    "activation_reached_at",
    "utilization_reached_at",
    "maturity_reached_at",
    "setup_on_time",
    "activation_on_time",
]


def _required_threshold(block: Mapping) -> float:
    """A milestone's threshold as a float; a ValueError when it has none."""
    value = block.get("threshold")
    if value is None:
        raise ValueError(f"thresholds: milestone has no threshold: {dict(block)}")
    return float(value)


def flag_parameters(thresholds: Mapping) -> dict:
    """The thresholds as the plain parameters of :func:`features.flags.milestone_flags`
    (``gating``: the milestones that are rungs of the stage ladder)."""
    mat = thresholds["maturity"]
    return {
        "setup_steps": list(thresholds["setup"].get("steps") or []),
        "activation_threshold": _required_threshold(thresholds["activation"]),
        "utilization_threshold": _required_threshold(thresholds["utilization"]),
        "category_thresholds": {
            name: float(block["threshold"]) for name, block in mat["categories"].items()
        },
        "min_categories": int(mat.get("min_categories") or mat.get("threshold")),
        "gating": gating_milestones(thresholds),
    }


def finish_scores(
    flags: pd.DataFrame,
    thresholds: Mapping,
    *,
    as_of: dt.datetime,
    activation_window_days: int,
    activation_event: str,
    utilization_event: str,
    period_days: int = UTILIZATION_PERIOD_DAYS,
    retention_probability: pd.Series | None = None,
) -> pd.DataFrame:
    """The published scores from the engine's milestone flags: the next best step in plain
    words and the model's retention probability.

    Every next step is something the account can do now, toward the next gating milestone
    above its stage (an unconfirmed milestone is skipped): the missing setup steps, the
    activation events still needed in the span of ``activation_window_days`` days ending at
    ``as_of``, the usage or the category features still missing.

    Parameters
    ----------
    flags : DataFrame
        One row per live account from :func:`features.flags.milestone_flags`.
    thresholds : mapping
        The ``thresholds.json`` content.
    retention_probability : Series, optional
        The champion model's probability, indexed by ``account_id``.

    Returns
    -------
    DataFrame
        The output contract's columns first, then :data:`REACHED_COLUMNS`, then the other
        detail columns.
    """
    require_columns(
        flags,
        "flags",
        ["account_id", "stage", "activation_count", "activation_count_recent", "utilization_rate"]
        + REACHED_COLUMNS,
    )
    p = flag_parameters(thresholds)
    steps, cat_t = p["setup_steps"], p["category_thresholds"]
    act_t, util_t, min_cats = (
        p["activation_threshold"],
        p["utilization_threshold"],
        p["min_categories"],
    )
    df = flags.reset_index(drop=True)
    as_of_ts = pd.Timestamp(as_of)
    as_of_ts = as_of_ts.tz_convert(None) if as_of_ts.tz is not None else as_of_ts

    out = pd.DataFrame({"account_id": df["account_id"].astype(str)})
    out["as_of"] = as_of_ts.normalize()
    # the contract's flag columns, as the engine computed them (account_id to stage)
    for col in SCORE_COLUMNS[2 : SCORE_COLUMNS.index("stage") + 1]:
        out[col] = df[col].to_numpy()
    for col in ("setup_complete", "activated", "utilized", "mature"):
        out[col] = out[col].astype(bool)
    for col in ("setup_steps_done", "activation_count", "mature_categories"):
        out[col] = out[col].astype("int64")
    out["utilization_rate"] = out["utilization_rate"].astype(float)

    missing_steps = (
        [[s for s in steps if not bool(row[setup_done_col(s)])] for _, row in df.iterrows()]
        if steps
        else [[] for _ in range(len(df))]
    )
    gating = p["gating"]
    order = [m for m, _ in RUNGS]
    rung_of = {rung: m for m, rung in RUNGS}
    texts = []
    for i, row in df.iterrows():
        done = order.index(rung_of[row["stage"]]) + 1 if row["stage"] in rung_of else 0
        target = next((m for m in order[done:] if m in gating), None)
        if target == "setup":
            texts.append(
                f"Complete setup: {', '.join(missing_steps[i])} "
                f"({int(row['setup_steps_done'])} of {len(steps)} steps done)"
            )
        elif target == "activation":
            texts.append(
                f"Reach activation: {int(row['activation_needed'])} more {activation_event} "
                f"within {activation_window_days} days "
                f"({int(row['activation_count_recent'])} in the last {activation_window_days} "
                f"days; {act_t:g} needed in one {activation_window_days}-day span)"
            )
        elif target == "utilization":
            texts.append(
                f"Raise usage to {util_t:.3g} {utilization_event} per seat per {period_days} days "
                f"(now {row['utilization_rate']:.3g})"
            )
        elif target == "maturity":
            closest = min(
                (c for c in cat_t if not bool(row[mature_col(c)])),
                key=lambda c: cat_t[c] - row[category_features_col(c)],
            )
            texts.append(
                f"Adopt more {closest} features ({int(row[category_features_col(closest)])} of "
                f"{cat_t[closest]:g} used): {int(row['mature_categories'])} of {len(cat_t)} "
                f"categories mature, {min_cats} needed"
            )
        elif not gating:
            texts.append("No next step: the data confirm no milestone to work toward")
        elif len(gating) < len(order):
            texts.append(
                f"All confirmed milestones reached ({', '.join(gating)}): keep the account there"
            )
        else:
            texts.append("All milestones reached: keep the account mature")
    out["next_step"] = texts
    if retention_probability is not None:
        out["retention_probability"] = (
            out["account_id"].map(retention_probability).astype(float).to_numpy()
        )
    else:
        out["retention_probability"] = np.nan
    for col in REACHED_COLUMNS[:4]:
        out[col] = pd.to_datetime(df[col].to_numpy()).astype(out["as_of"].dtype)
    for col in REACHED_COLUMNS[4:]:
        out[col] = pd.array([None if pd.isna(v) else bool(v) for v in df[col]], dtype="boolean")

    out["setup_steps_missing"] = [";".join(m) for m in missing_steps]
    out["activation_needed"] = df["activation_needed"].astype("int64").to_numpy()
    out["activation_count_recent"] = df["activation_count_recent"].astype("int64").to_numpy()
    out["utilization_gap"] = df["utilization_gap"].astype(float).to_numpy()
    for c in cat_t:
        out[_detail_name(out, f"mature_{c}")] = df[mature_col(c)].astype(bool).to_numpy()
    return out.sort_values("account_id", kind="stable").reset_index(drop=True)


def _detail_name(out: pd.DataFrame, name: str) -> str:
    """A category's detail column, named by the category as configured (any string); one
    that would replace a score column (a category named ``categories``) gets a suffix."""
    while name in out.columns:
        name += " (category)"
    return name
