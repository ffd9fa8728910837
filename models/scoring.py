"""Scoring live accounts against the milestones: flags, stage and the next best step.

Pure functions on pandas frames: the per-account rows come from the feature tables (built in
the engine), the thresholds from :mod:`models.thresholds`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import numpy as np
import pandas as pd

from features.columns import maturity_col, setup_col

STAGES = ("new", "setup", "activated", "utilized", "mature")
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


def _threshold(block: Mapping) -> float:
    value = block.get("threshold")
    if value is None:
        raise ValueError(f"thresholds: milestone has no threshold: {dict(block)}")
    return float(value)


def score_accounts(
    tenure: pd.DataFrame,
    current: pd.DataFrame,
    thresholds: Mapping,
    *,
    as_of: dt.datetime,
    activation_window_days: int,
    activation_event: str,
    utilization_event: str,
    period_days: int = 30,
    retention_probability: pd.Series | None = None,
) -> pd.DataFrame:
    """Score every account that is a customer at ``as_of``.

    Parameters
    ----------
    tenure : DataFrame
        Tenure table rows (``setup__<step>``, ``activation_count``, ``signup_date``).
    current : DataFrame
        Snapshot table rows at ``as_of`` (one per live account): ``utilization_rate`` and
        ``maturity__<category>``.
    thresholds : mapping
        The ``thresholds.json`` content.
    retention_probability : Series, optional
        The champion model's probability, indexed by ``account_id``.

    Returns
    -------
    DataFrame
        The output contract's columns first, then detail columns
        (``setup_steps_missing``, ``activation_needed``, ``activation_days_left``,
        ``utilization_gap``, ``mature_<category>``).
    """
    for name, frame, cols in (
        ("tenure", tenure, ["account_id", "activation_count", "signup_date"]),
        ("current", current, ["account_id", "utilization_rate"]),
    ):
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise ValueError(f"{name} is missing column {missing[0]!r}")

    steps = list(thresholds["setup"].get("steps") or [])
    act_t = _threshold(thresholds["activation"])
    util_t = _threshold(thresholds["utilization"])
    mat = thresholds["maturity"]
    cat_t = {name: float(block["threshold"]) for name, block in mat["categories"].items()}
    min_cats = int(mat.get("min_categories") or mat.get("threshold"))

    setup_cols = [setup_col(s) for s in steps]
    ten = tenure[["account_id", "activation_count", "signup_date", *setup_cols]]
    df = current.merge(ten, on="account_id", how="left", validate="one_to_one")

    out = pd.DataFrame({"account_id": df["account_id"].astype(str)})
    as_of_ts = pd.Timestamp(as_of)
    as_of_ts = as_of_ts.tz_convert(None) if as_of_ts.tz is not None else as_of_ts
    out["as_of"] = as_of_ts.normalize()
    done = np.zeros(len(df), dtype=int)
    missing_steps: list[list[str]] = [[] for _ in range(len(df))]
    for s, c in zip(steps, setup_cols):
        flag = df[c].fillna(False).astype(bool).to_numpy()
        done += flag
        for i in np.flatnonzero(~flag):
            missing_steps[i].append(s)
    out["setup_complete"] = done == len(steps)
    out["setup_steps_done"] = done
    count = df["activation_count"].fillna(0).astype(int).to_numpy()
    out["activation_count"] = count
    out["activated"] = count >= act_t
    rate = df["utilization_rate"].fillna(0.0).astype(float).to_numpy()
    out["utilization_rate"] = rate
    out["utilized"] = rate >= util_t
    mature_cols = {}
    for name, t in cat_t.items():
        col = maturity_col(name)
        values = df[col].fillna(0).astype(int).to_numpy() if col in df else np.zeros(len(df), int)
        mature_cols[name] = (values, values >= t)
    n_mature = np.sum([m for _, m in mature_cols.values()], axis=0) if mature_cols else np.zeros(len(df), int)
    out["mature_categories"] = n_mature.astype(int)
    out["mature"] = n_mature >= min_cats

    reached = np.column_stack(
        [out["setup_complete"], out["activated"], out["utilized"], out["mature"]]
    ).astype(bool)
    # stage = the furthest milestone reached in order (all earlier ones reached too)
    consecutive = np.cumprod(reached, axis=1).sum(axis=1)
    out["stage"] = [STAGES[k] for k in consecutive]

    window_end = pd.to_datetime(df["signup_date"]) + pd.to_timedelta(activation_window_days, unit="D")
    # days left in the activation window after the as_of day
    days_left = ((window_end - as_of_ts.normalize()).dt.days - 1).clip(lower=0)
    needed = np.maximum(0, np.ceil(act_t - count)).astype(int)
    gap = np.maximum(0.0, util_t - rate)

    texts = []
    for i in range(len(out)):
        k = consecutive[i]
        if k == 0:
            texts.append(
                f"Complete setup: {', '.join(missing_steps[i])} "
                f"({done[i]} of {len(steps)} steps done)"
            )
        elif k == 1:
            left = int(days_left.iloc[i]) if not pd.isna(days_left.iloc[i]) else 0
            window = (
                f"{left} days left in the first {activation_window_days}"
                if left > 0
                else f"the first {activation_window_days} days are over"
            )
            texts.append(
                f"Reach activation: {needed[i]} more {activation_event} "
                f"({count[i]} of {act_t:g}); {window}"
            )
        elif k == 2:
            texts.append(
                f"Raise usage to {util_t:.3g} {utilization_event} per seat per {period_days} days "
                f"(now {rate[i]:.3g})"
            )
        elif k == 3:
            closest = min(
                (name for name, (_, m) in mature_cols.items() if not m[i]),
                key=lambda name: cat_t[name] - mature_cols[name][0][i],
            )
            have = int(mature_cols[closest][0][i])
            texts.append(
                f"Adopt more {closest} features ({have} of {cat_t[closest]:g} used): "
                f"{int(n_mature[i])} of {len(cat_t)} categories mature, {min_cats} needed"
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

    out["setup_steps_missing"] = [";".join(m) for m in missing_steps]
    out["activation_needed"] = needed
    out["activation_days_left"] = days_left.to_numpy()
    out["utilization_gap"] = gap
    for name, (_, m) in mature_cols.items():
        out[f"mature_{name}"] = m
    return out.sort_values("account_id", kind="stable").reset_index(drop=True)
