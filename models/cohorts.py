"""Which rows derive the milestone thresholds, and which later, disjoint cohort reviews them.

A threshold reviewed on the rows it was derived on is reviewed in sample: a milestone that
stopped working would still look fine. So the labelled history is cut in time, once, and
both the derivation (:func:`models.thresholds.derive_thresholds`) and the framework review
(:func:`models.review.cohort_review`) read the same cut (:func:`split_cohorts`):

- tenure milestones (one row per account): the **review cohort** is the accounts whose
  activation window ended in the newest ``periods`` months with a known label (activation;
  setup's retention, for reference), and, for setup, which is derived against activation,
  the accounts whose activation window closed in the newest ``periods`` months (their
  activation is known before their retention). Each is derived on the accounts whose window
  ended before its cohort's first month (setup: nor on the accounts of the retention
  cohort);
- snapshot milestones (utilization, maturity): the **review cohort** is the labelled
  snapshots at the newest ``periods`` labelled snapshot dates of the accounts that have no
  labelled snapshot before those dates (the accounts new in the review period); the
  thresholds are derived on the labelled snapshots dated before the first review date.

So no review row, and no review account, was used to derive the threshold it reviews.
Pure functions of pandas frames; the periods are plain dates (``YYYY-MM-DD``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.columns import ACCOUNT_KEY, LABEL, SNAPSHOT_KEY
from models.defaults import REVIEW_PERIODS
from models.splits import CENSORED
from models.stats import flag, require_columns

__all__ = ["Cohorts", "derivation_rows", "naive_dates", "split_cohorts"]

#: The masks of :class:`Cohorts`, by the milestones they serve.
MASKS = {
    "activation": ("activation_derive", "activation_review", "window_end"),
    "setup": ("setup_derive", "setup_review", "window_end"),
    "utilization": ("snapshot_derive", "snapshot_review", SNAPSHOT_KEY),
    "maturity": ("snapshot_derive", "snapshot_review", SNAPSHOT_KEY),
}


def naive_dates(values: pd.Series) -> pd.Series:
    """Dates as naive UTC ``datetime64[ns]`` (an aware column is converted)."""
    out = pd.to_datetime(values)
    if getattr(out.dt, "tz", None) is not None:
        out = out.dt.tz_convert(None)
    return out.astype("datetime64[ns]")


def _newest(keys: pd.Series, eligible: np.ndarray, periods: int) -> tuple[np.ndarray, list[str]]:
    """Rows among ``eligible`` whose key is one of the newest ``periods`` keys, and before."""
    chosen = sorted(keys[eligible].dropna().unique())[-int(periods) :]
    if not chosen:
        none = np.zeros(len(keys), dtype=bool)
        return none, []
    review = eligible & keys.isin(chosen).to_numpy()
    return review, [str(c) for c in chosen]


@dataclass(frozen=True)
class Cohorts:
    """Boolean masks over the tenure rows and the snapshot rows (see the module docstring).

    ``*_derive`` rows derive a milestone's threshold, ``*_review`` rows review it; the two
    never share a row or an account. ``activation_months``, ``setup_months`` and
    ``snapshot_dates`` name the review cohort's months (``YYYY-MM``) or dates.
    """

    periods: int
    activation_derive: np.ndarray
    activation_review: np.ndarray
    setup_derive: np.ndarray
    setup_review: np.ndarray
    snapshot_derive: np.ndarray
    snapshot_review: np.ndarray
    activation_months: list[str]
    setup_months: list[str]
    snapshot_dates: list[str]

    def ranges(self, tenure: pd.DataFrame, snapshots: pd.DataFrame) -> dict:
        """Per milestone, the derivation and the review period: ``{"derivation": {"from",
        "to", "rows", "accounts"}, "review": {...}, "dated_by": column}`` (dates as
        ``YYYY-MM-DD``, None when a side has no row)."""
        out = {}
        for name, (derive, review, column) in MASKS.items():
            frame = tenure if column == "window_end" else snapshots
            out[name] = {
                "dated_by": column,
                "derivation": _range(frame, getattr(self, derive), column),
                "review": _range(frame, getattr(self, review), column),
            }
        return out


def _range(frame: pd.DataFrame, mask: np.ndarray, column: str) -> dict:
    rows = frame.loc[mask]
    dates = naive_dates(rows[column]) if len(rows) else pd.Series([], dtype="datetime64[ns]")
    return {
        "from": None if dates.empty else str(dates.min().date()),
        "to": None if dates.empty else str(dates.max().date()),
        "rows": len(rows),
        "accounts": int(rows[ACCOUNT_KEY].nunique()) if ACCOUNT_KEY in rows.columns else None,
    }


def split_cohorts(
    tenure: pd.DataFrame, snapshots: pd.DataFrame, periods: int = REVIEW_PERIODS
) -> Cohorts:
    """Cut the labelled history into the derivation rows and the later review cohorts.

    Parameters
    ----------
    tenure : DataFrame
        The tenure table: ``account_id``, ``window_end``, ``window_closed``, ``labelled``,
        ``retained``.
    snapshots : DataFrame
        The snapshot table: ``account_id``, ``snapshot_date``, ``retained`` and
        ``censored`` (when present).
    periods : int, default 3
        Months (tenure) or snapshot dates in each review cohort.

    Returns
    -------
    Cohorts
    """
    if isinstance(periods, bool) or not isinstance(periods, (int, np.integer)) or periods < 1:
        raise ValueError(f"periods must be a positive integer, got {periods!r}")
    require_columns(tenure, "tenure", [ACCOUNT_KEY, LABEL, "window_end", "labelled"])
    require_columns(tenure, "tenure", ["window_closed"])
    require_columns(snapshots, "snapshots", [ACCOUNT_KEY, SNAPSHOT_KEY, LABEL])

    month = naive_dates(tenure["window_end"]).dt.to_period("M").astype(str)
    labelled = flag(tenure, "labelled", "tenure") & tenure[LABEL].notna().to_numpy()
    act_review, act_months = _newest(month, labelled, periods)
    act_derive = labelled & (month < min(act_months)).to_numpy() if act_months else labelled
    closed = flag(tenure, "window_closed", "tenure")
    setup_review, setup_months = _newest(month, closed, periods)
    setup_derive = closed & (month < min(setup_months)).to_numpy() if setup_months else closed
    setup_derive = setup_derive & ~act_review  # nor the accounts of the retention cohort

    known = snapshots[LABEL].notna().to_numpy()
    if CENSORED in snapshots.columns:
        known = known & ~snapshots[CENSORED].fillna(True).astype(bool).to_numpy()
    day = naive_dates(snapshots[SNAPSHOT_KEY])
    key = day.dt.strftime("%Y-%m-%d")
    in_dates, snap_dates = _newest(key, known, periods)
    first = min(snap_dates) if snap_dates else None
    snap_derive = known & (key < first).to_numpy() if first else known
    derived_accounts = snapshots.loc[snap_derive, ACCOUNT_KEY].unique()
    snap_review = in_dates & ~snapshots[ACCOUNT_KEY].isin(derived_accounts).to_numpy()
    return Cohorts(
        periods=int(periods),
        activation_derive=act_derive,
        activation_review=act_review,
        setup_derive=setup_derive,
        setup_review=setup_review,
        snapshot_derive=snap_derive,
        snapshot_review=snap_review,
        activation_months=act_months,
        setup_months=setup_months,
        snapshot_dates=snap_dates,
    )


def derivation_rows(
    tenure: pd.DataFrame, snapshots: pd.DataFrame, cohorts: Cohorts
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The tables the thresholds are derived on: the review cohorts left out.

    Returns
    -------
    (tenure, snapshots) : tuple of DataFrame
        A copy of the tenure table whose ``labelled`` (and ``inactivity_labelled``) keeps only
        the activation derivation rows and whose ``window_closed`` keeps only the setup
        derivation rows; the snapshot derivation rows.
    """
    t = tenure.copy()
    t["labelled"] = cohorts.activation_derive
    t["window_closed"] = cohorts.setup_derive
    if "inactivity_labelled" in t.columns:
        before = np.ones(len(t), dtype=bool)
        if cohorts.activation_months:
            month = naive_dates(t["window_end"]).dt.to_period("M").astype(str)
            before = (month < min(cohorts.activation_months)).to_numpy()
        t["inactivity_labelled"] = flag(t, "inactivity_labelled", "tenure") & before
    return t, snapshots.loc[cohorts.snapshot_derive].copy()
