"""The framework review: do the milestones still work, and what moved since the last champion?

Pure functions of pandas frames and plain values (no I/O, no MLflow), used by
:mod:`flows.review` to write ``review.json`` and the report's retention curves:

- :func:`milestone_reached`: which tenure and snapshot rows reached each milestone;
- :func:`kaplan_meier` and :func:`retention_curves`: the share of accounts still a customer
  by months since the milestone's anchor date, for accounts that did and did not reach it;
- :func:`cohort_review`: on a later cohort, disjoint from the rows the thresholds were
  derived on (:mod:`models.cohorts`), each milestone's outcome rate for achievers against
  the others, with intervals;
- :func:`population_stability`, :func:`prevalence_drift`, :func:`compare_thresholds` and
  :func:`compare_metrics`: the comparison with the previous champion run;
- :func:`review_warnings` and :func:`framework_review`: all of it, with the warnings.

Every output is JSON-serialisable (plain numbers, ``None`` for values that do not exist).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from features.columns import ACCOUNT_KEY, LABEL, SNAPSHOT_KEY, maturity_col, setup_col
from models.adoption import pooled_risk_ratio
from models.cohorts import naive_dates as _dates
from models.cohorts import split_cohorts
from models.defaults import (
    CONFIDENCE,
    CURVE_MAX_MONTHS,
    CURVE_MIN_AT_RISK,
    REVIEW_MIN_GROUP,
    REVIEW_MIN_LIFT,
    REVIEW_PERIODS,
)
from models.stats import flag, fmt_number, num, ratio, require_columns, risk_ratio, z_value

__all__ = [
    "MILESTONES",
    "cohort_review",
    "compare_metrics",
    "compare_thresholds",
    "framework_review",
    "kaplan_meier",
    "milestone_reached",
    "population_stability",
    "prevalence_drift",
    "retention_curves",
    "review_warnings",
]

MILESTONES = ("setup", "activation", "utilization", "maturity")
#: Days in an average month (the unit of the retention curves).
MONTH_DAYS = 30.4375
#: Population stability index bands (the usual reading: < 0.1 stable, 0.1 to 0.25 moderate).
PSI_BANDS = ((0.1, "stable"), (0.25, "moderate"), (math.inf, "major"))
_EPS = 1e-4


def _naive(ts: Any) -> pd.Timestamp:
    t = pd.Timestamp(ts)
    return t.tz_convert(None) if t.tz is not None else t


def _threshold_of(thresholds: Mapping, name: str) -> float | None:
    """The threshold of milestone ``name`` in ``thresholds.json``, None when it has none."""
    return num(thresholds.get(name, {}).get("threshold"))


# --------------------------------------------------------------------------------------
# who reached what
# --------------------------------------------------------------------------------------


def milestone_reached(
    frame: pd.DataFrame, thresholds: Mapping, milestone: str
) -> np.ndarray | None:
    """Whether each row reached ``milestone`` under ``thresholds`` (``thresholds.json``).

    Setup and activation read tenure rows (``setup__<step>``, ``activation_count``);
    utilization and maturity read snapshot rows (``utilization_rate``,
    ``maturity__<category>``). Returns None when the milestone has no rule to apply (no
    setup step selected, no threshold).

    Parameters
    ----------
    frame : DataFrame
        Tenure rows (setup, activation) or snapshot rows (utilization, maturity).
    thresholds : mapping
        The ``thresholds.json`` content.
    milestone : {"setup", "activation", "utilization", "maturity"}

    Returns
    -------
    ndarray of bool or None
    """
    if milestone == "setup":
        steps = list(thresholds.get("setup", {}).get("steps") or [])
        if not steps:
            return None
        require_columns(frame, "tenure", [setup_col(s) for s in steps])
        return np.column_stack([flag(frame, setup_col(s), "tenure") for s in steps]).all(axis=1)
    if milestone == "activation":
        t = _threshold_of(thresholds, "activation")
        if t is None:
            return None
        require_columns(frame, "tenure", ["activation_count"])
        return frame["activation_count"].fillna(0).to_numpy(dtype=float) >= t
    if milestone == "utilization":
        t = _threshold_of(thresholds, "utilization")
        if t is None:
            return None
        require_columns(frame, "snapshots", ["utilization_rate"])
        return frame["utilization_rate"].fillna(0).to_numpy(dtype=float) >= t
    if milestone == "maturity":
        block = thresholds.get("maturity", {})
        cats = block.get("categories") or {}
        need = num(block.get("min_categories") or block.get("threshold"))
        if not cats or need is None:
            return None
        require_columns(frame, "snapshots", [maturity_col(c) for c in cats])
        count = np.zeros(len(frame), dtype=int)
        for name, cat in cats.items():
            t = num(cat.get("threshold"))
            if t is not None:
                count += frame[maturity_col(name)].fillna(0).to_numpy(dtype=float) >= t
        return count >= need
    raise ValueError(f"milestone must be one of {', '.join(MILESTONES)}, got {milestone!r}")


# --------------------------------------------------------------------------------------
# retention curves
# --------------------------------------------------------------------------------------


def kaplan_meier(
    durations: Any, observed: Any, times: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """Kaplan-Meier share still a customer at each of ``times``, and the number at risk.

    Parameters
    ----------
    durations : array-like of float
        Time from the anchor to churn (``observed`` True) or to the end of follow-up.
    observed : array-like of bool
        Whether the account churned at its duration (False: still a customer, censored).
    times : sequence of float
        Where to read the curve.

    Returns
    -------
    (share, at_risk) : tuple of ndarray
        ``share[i]`` is the estimated share still a customer just after ``times[i]``;
        ``at_risk[i]`` the accounts still followed at ``times[i]``.
    """
    d = np.asarray(durations, dtype=float)
    e = np.asarray(observed, dtype=bool)
    if d.shape != e.shape or d.ndim != 1:
        raise ValueError("durations and observed must be 1-D arrays of the same length")
    if np.isnan(d).any():
        raise ValueError("durations has missing (NaN) values")
    t = np.asarray(times, dtype=float)
    if not d.size:
        return np.full(t.shape, np.nan), np.zeros(t.shape, dtype=int)
    event_times = np.unique(d[e])
    deaths = np.searchsorted(np.sort(d[e]), event_times, side="right") - np.searchsorted(
        np.sort(d[e]), event_times, side="left"
    )
    sorted_d = np.sort(d)
    at_risk_events = d.size - np.searchsorted(sorted_d, event_times, side="left")
    surv = np.cumprod(1.0 - deaths / np.maximum(at_risk_events, 1))
    idx = np.searchsorted(event_times, t, side="right") - 1
    share = np.where(idx >= 0, surv[np.clip(idx, 0, None)] if surv.size else 1.0, 1.0)
    at_risk = d.size - np.searchsorted(sorted_d, t, side="left")
    return share.astype(float), at_risk.astype(int)


def _km_curve(
    durations: np.ndarray, churned: np.ndarray, months: np.ndarray, min_at_risk: int
) -> dict:
    share, at_risk = kaplan_meier(durations / MONTH_DAYS, churned, months)
    keep = at_risk >= min_at_risk
    return {
        "n": int(durations.size),
        "churned": int(churned.sum()),
        "months": [int(m) for m in months[keep]],
        "share": [round(float(s), 5) for s in share[keep]],
        "at_risk": [int(a) for a in at_risk[keep]],
    }


def retention_curves(
    tenure: pd.DataFrame,
    snapshots: pd.DataFrame,
    thresholds: Mapping,
    *,
    as_of: Any,
    setup_window_days: int,
    max_months: int = CURVE_MAX_MONTHS,
    min_at_risk: int = CURVE_MIN_AT_RISK,
) -> dict:
    """Retention curves of accounts that did and did not reach each milestone.

    The anchor of each curve is the date the milestone is judged: the end of the setup
    window (setup), the end of the activation window (activation, ``window_end``), and the
    account's first snapshot date (utilization and maturity, judged on that snapshot's
    trailing window). Only accounts still a customer at their anchor count; the share still
    a customer is a Kaplan-Meier estimate by whole months since the anchor, accounts still a
    customer at ``as_of`` being censored there. Points with fewer than ``min_at_risk``
    accounts followed are left out.

    Parameters
    ----------
    tenure : DataFrame
        The tenure table: ``account_id``, ``signup_date``, ``churned_at``, ``window_end``,
        ``activation_count``, ``setup__<step>``.
    snapshots : DataFrame
        The snapshot table: ``account_id``, ``snapshot_date``, ``utilization_rate``,
        ``maturity__<category>``.
    thresholds : mapping
        The ``thresholds.json`` content.
    as_of : datetime
        The end of follow-up.
    setup_window_days : int
        The setup window.
    max_months, min_at_risk : int
        The curves' extent.

    Returns
    -------
    dict
        Per milestone: ``anchor`` (words), ``reached`` and ``not_reached``, each with ``n``,
        ``churned``, ``months``, ``share``, ``at_risk``. A milestone without a rule is left
        out.
    """
    require_columns(tenure, "tenure", [ACCOUNT_KEY, "signup_date", "churned_at", "window_end"])
    require_columns(snapshots, "snapshots", [ACCOUNT_KEY, SNAPSHOT_KEY])
    end = _naive(as_of)
    months = np.arange(0, int(max_months) + 1, dtype=float)
    churn_by_account = pd.Series(
        _dates(tenure["churned_at"]).to_numpy(), index=tenure[ACCOUNT_KEY].astype(str).to_numpy()
    )
    first = snapshots.sort_values([ACCOUNT_KEY, SNAPSHOT_KEY], kind="stable").drop_duplicates(
        ACCOUNT_KEY, keep="first"
    )
    signup = _dates(tenure["signup_date"])
    anchors = {
        "setup": (
            tenure,
            signup + pd.Timedelta(days=int(setup_window_days)),
            f"the end of the {int(setup_window_days)}-day setup window",
        ),
        "activation": (tenure, _dates(tenure["window_end"]), "the end of the activation window"),
        "utilization": (
            first,
            _dates(first[SNAPSHOT_KEY]),
            "the account's first month-end snapshot",
        ),
        "maturity": (first, _dates(first[SNAPSHOT_KEY]), "the account's first month-end snapshot"),
    }
    out: dict[str, dict] = {}
    for name, (rows, anchor, words) in anchors.items():
        reached = milestone_reached(rows, thresholds, name)
        if reached is None:
            continue
        churned_at = pd.Series(
            churn_by_account.reindex(rows[ACCOUNT_KEY].astype(str).to_numpy()).to_numpy()
        )
        anchor_v = pd.Series(anchor.to_numpy())
        gone = (churned_at.notna() & (churned_at <= end)).to_numpy()
        alive = ((anchor_v <= end) & (churned_at.isna() | (churned_at > anchor_v))).to_numpy()
        stop = churned_at.where(gone, end)
        days = ((stop - anchor_v) / pd.Timedelta(days=1)).to_numpy(dtype=float)
        block = {"anchor": words}
        for key, sel in (("reached", alive & reached), ("not_reached", alive & ~reached)):
            block[key] = _km_curve(days[sel], gone[sel], months, min_at_risk)
        out[name] = block
    return out


# --------------------------------------------------------------------------------------
# the review cohort: later than, and disjoint from, the derivation rows
# --------------------------------------------------------------------------------------


def _compare(
    reached: np.ndarray,
    outcome: np.ndarray,
    confidence: float,
    min_group: int,
    accounts: np.ndarray | None = None,
) -> dict:
    """Outcome rates of the rows that reached a milestone and of the others, and their lift
    with its interval: Katz's for one row per account, cluster-robust over ``accounts`` when
    an account has several rows (snapshots)."""
    n1, n0 = int(reached.sum()), int((~reached).sum())
    a1, a0 = float(outcome[reached].sum()), float(outcome[~reached].sum())
    rate1 = a1 / n1 if n1 else None
    rate0 = a0 / n0 if n0 else None
    interval = risk_ratio(a1, n1, a0, n0, confidence)[1:]
    if accounts is not None and n1 and n0 and rate0:
        codes = pd.factorize(pd.Series(accounts), sort=False)[0].astype(np.int64)
        if codes.max() + 1 < len(codes):  # several rows per account
            interval = pooled_risk_ratio(
                outcome.astype(float),
                reached,
                np.zeros(len(codes), np.int64),
                codes,
                z_value(confidence),
            )[1:]
    lift_ci = [num(v) for v in interval]
    n_acc = (
        None
        if accounts is None
        else (
            int(pd.unique(accounts[reached]).size),
            int(pd.unique(accounts[~reached]).size),
        )
    )
    enough = n1 >= min_group and n0 >= min_group
    if n_acc is not None:
        enough = min(n_acc) >= min_group
    return {
        "n_reached": n1,
        "n_not_reached": n0,
        "accounts_reached": None if n_acc is None else n_acc[0],
        "accounts_not_reached": None if n_acc is None else n_acc[1],
        "rate_reached": rate1,
        "rate_not_reached": rate0,
        "lift": ratio(rate1, rate0),
        "lift_ci": lift_ci,
        "lift_ci_above_1": None if lift_ci[0] is None else bool(lift_ci[0] > 1.0),
        "enough_accounts": bool(enough),
    }


_COHORT_WORDS = {
    "activation": "activation window ended in",
    "setup": "activation window ended in",
    "utilization": "snapshot dates, accounts new since the derivation period",
    "maturity": "snapshot dates, accounts new since the derivation period",
}


def cohort_review(
    tenure: pd.DataFrame,
    snapshots: pd.DataFrame,
    thresholds: Mapping,
    *,
    periods: int = REVIEW_PERIODS,
    confidence: float = CONFIDENCE,
    min_group: int = REVIEW_MIN_GROUP,
) -> dict:
    """Each milestone's outcome for achievers against the others on a later, disjoint cohort.

    The cohorts are those of :func:`models.cohorts.split_cohorts`, the rows the thresholds
    were not derived on: for the snapshot milestones (utilization, maturity), the newest
    ``periods`` labelled snapshot dates of the accounts new since the derivation period;
    for the tenure milestones (setup, activation), the accounts whose activation window
    ended in the newest ``periods`` months with a known label. Retention is the label
    ``retained``; setup, which is derived against activation, also gets the activation rate
    (among accounts whose activation window closed in the newest ``periods`` months), and
    that is the lift its review checks (``checked``). Each block names both periods.

    Parameters
    ----------
    tenure, snapshots : DataFrame
        The feature tables.
    thresholds : mapping
        The ``thresholds.json`` content.
    periods : int, default 3
        Snapshot dates or months in the cohort.
    confidence : float, default 0.95
        Level of the lift intervals (Katz log risk ratio, zero cells by the rule of
        :func:`models.stats.risk_ratio`; cluster-robust over accounts for snapshot rows).
    min_group : int, default 20
        Fewest accounts on each side for the lift to be judged (``enough_accounts``).

    Returns
    -------
    dict
        Per milestone: ``cohort`` (the dates or months), ``cohort_kind``, ``outcome``, ``n``,
        ``n_reached``, ``n_not_reached``, ``accounts_reached``, ``accounts_not_reached``,
        ``rate_reached``, ``rate_not_reached``, ``lift``, ``lift_ci``, ``lift_ci_above_1``,
        ``enough_accounts``, ``derivation_period`` and ``review_period`` (``from``, ``to``,
        ``rows``, ``accounts``); setup adds ``activation`` (the same fields against
        activation); ``checked`` names the block whose lift is checked. None for a milestone
        without a rule or rows.
    """
    if not isinstance(periods, (int, np.integer)) or periods < 1:
        raise ValueError(f"periods must be a positive integer, got {periods!r}")
    require_columns(tenure, "tenure", [LABEL, "window_end", "labelled", "window_closed"])
    require_columns(snapshots, "snapshots", [LABEL, SNAPSHOT_KEY])
    cohorts = split_cohorts(tenure, snapshots, periods=periods)
    ranges = cohorts.ranges(tenure, snapshots)
    cohort_t = tenure.loc[cohorts.activation_review]
    cohort_s = snapshots.loc[cohorts.snapshot_review]

    out: dict[str, dict | None] = {}
    for name in MILESTONES:
        tenure_kind = name in ("setup", "activation")
        rows, words = (
            (cohort_t, cohorts.activation_months)
            if tenure_kind
            else (cohort_s, cohorts.snapshot_dates)
        )
        reached = milestone_reached(rows, thresholds, name) if len(rows) else None
        if reached is None:
            out[name] = None
            continue
        accounts = None if tenure_kind else rows[ACCOUNT_KEY].astype(str).to_numpy()
        block = {
            "cohort": words,
            "cohort_kind": _COHORT_WORDS[name],
            "outcome": "retention",
            "n": len(rows),
            **_compare(
                reached, rows[LABEL].to_numpy(dtype=float) > 0.5, confidence, min_group, accounts
            ),
            "checked": "retention",
            "derivation_period": ranges[name]["derivation"],
            "review_period": ranges[name]["review"],
        }
        if name == "setup":
            block["review_period"] = ranges["activation"]["review"]
            closed = tenure.loc[cohorts.setup_review]
            act_t = _threshold_of(thresholds, "activation")
            done = milestone_reached(closed, thresholds, "setup")
            if act_t is not None and done is not None and len(closed):
                activated = closed["activation_count"].fillna(0).to_numpy(dtype=float) >= act_t
                block["activation"] = {
                    "cohort": cohorts.setup_months,
                    "outcome": "activation",
                    "n": len(closed),
                    **_compare(done, activated, confidence, min_group),
                    "review_period": ranges["setup"]["review"],
                }
                block["checked"] = "activation"
        out[name] = block
    return out


# --------------------------------------------------------------------------------------
# against the previous champion
# --------------------------------------------------------------------------------------


def population_stability(expected: Sequence[float], actual: Sequence[float]) -> float:
    """Population stability index of two distributions over the same bins.

    ``sum((actual - expected) * ln(actual / expected))``, shares clipped at 1e-4 so that an
    empty bin does not make it infinite.
    """
    e = np.clip(np.asarray(expected, dtype=float), _EPS, None)
    a = np.clip(np.asarray(actual, dtype=float), _EPS, None)
    if e.shape != a.shape:
        raise ValueError(
            f"expected and actual must have the same bins, got {e.shape} and {a.shape}"
        )
    e, a = e / e.sum(), a / a.sum()
    return float(np.sum((a - e) * np.log(a / e)))


def _psi_band(psi: float) -> str:
    return next(label for bound, label in PSI_BANDS if psi < bound)


def prevalence_drift(previous: pd.DataFrame, current: pd.DataFrame) -> list[dict]:
    """Prevalence drift of each feature: the PSI of its used / not used shares.

    Parameters
    ----------
    previous, current : DataFrame
        ``importance.csv`` of the two runs (``feature``, ``prevalence``).

    Returns
    -------
    list of dict
        One row per feature of either run, largest PSI first: ``feature``,
        ``prevalence_previous``, ``prevalence_current``, ``change``, ``psi`` and ``band``
        (``stable`` below 0.1, ``moderate`` to 0.25, ``major`` above; ``new`` or ``gone``
        for a feature only one run has).
    """
    require_columns(previous, "previous", ["feature", "prevalence"])
    require_columns(current, "current", ["feature", "prevalence"])
    p = previous.set_index(previous["feature"].astype(str))["prevalence"]
    c = current.set_index(current["feature"].astype(str))["prevalence"]
    rows = []
    for feature in sorted(set(p.index) | set(c.index)):
        before = num(p.get(feature))
        after = num(c.get(feature))
        if before is None and after is None:
            continue  # judged in neither run (too rare, excluded, rolled up): no prevalence
        if before is None or after is None:
            rows.append(
                {
                    "feature": feature,
                    "prevalence_previous": before,
                    "prevalence_current": after,
                    "change": None,
                    "psi": None,
                    "band": "new" if before is None else "gone",
                }
            )
            continue
        psi = population_stability([before, 1 - before], [after, 1 - after])
        rows.append(
            {
                "feature": feature,
                "prevalence_previous": before,
                "prevalence_current": after,
                "change": after - before,
                "psi": psi,
                "band": _psi_band(psi),
            }
        )
    rows.sort(key=lambda r: (r["psi"] is None, -(r["psi"] or 0.0), r["feature"]))
    return rows


def _threshold_row(name: str, before: Mapping | None, after: Mapping | None) -> dict:
    prev = num((before or {}).get("threshold"))
    cur = num((after or {}).get("threshold"))
    ci = [num(v) for v in ((before or {}).get("ci") or [None, None])][:2]
    while len(ci) < 2:
        ci.append(None)
    outside = None
    if cur is not None and ci[0] is not None and ci[1] is not None:
        outside = bool(cur < ci[0] - 1e-9 or cur > ci[1] + 1e-9)
    return {
        "milestone": name,
        "previous": prev,
        "previous_ci": ci,
        "current": cur,
        "current_ci": [num(v) for v in ((after or {}).get("ci") or [None, None])][:2],
        "change": None if prev is None or cur is None else cur - prev,
        "relative_change": ratio(None if prev is None or cur is None else cur - prev, prev),
        "outside_previous_ci": outside,
    }


def compare_thresholds(previous: Mapping, current: Mapping) -> list[dict]:
    """Each threshold of ``current`` against ``previous`` (two ``thresholds.json`` contents).

    Returns
    -------
    list of dict
        One row per milestone and per maturity category (``milestone`` is
        ``maturity.<category>``): ``previous``, ``previous_ci``, ``current``, ``current_ci``,
        ``change``, ``relative_change`` and ``outside_previous_ci`` (None when the previous
        interval is unknown). The setup row adds ``steps_added`` and ``steps_removed``.
    """
    rows = []
    for name in MILESTONES:
        row = _threshold_row(name, previous.get(name), current.get(name))
        if name == "setup":
            before = list((previous.get("setup") or {}).get("steps") or [])
            after = list((current.get("setup") or {}).get("steps") or [])
            row["steps_added"] = [s for s in after if s not in before]
            row["steps_removed"] = [s for s in before if s not in after]
        rows.append(row)
    prev_cats = (previous.get("maturity") or {}).get("categories") or {}
    cur_cats = (current.get("maturity") or {}).get("categories") or {}
    for cat in list(cur_cats) + [c for c in prev_cats if c not in cur_cats]:
        rows.append(_threshold_row(f"maturity.{cat}", prev_cats.get(cat), cur_cats.get(cat)))
    return rows


def compare_metrics(
    previous: Mapping, current: Mapping, names: Sequence[str] = ("gbm", "rf", "baseline")
) -> list[dict]:
    """Test ROC AUC of each model in both runs (``summary.json`` ``metrics`` blocks)."""
    rows = []
    for name in names:
        before = num((previous.get(name) or {}).get("roc_auc"))
        after = num((current.get(name) or {}).get("roc_auc"))
        rows.append(
            {
                "model": name,
                "previous": before,
                "current": after,
                "change": None if before is None or after is None else after - before,
            }
        )
    return rows


# --------------------------------------------------------------------------------------
# warnings and the whole review
# --------------------------------------------------------------------------------------


def review_warnings(
    cohort: Mapping, thresholds_change: Sequence[Mapping] | None, min_lift: float
) -> list[dict]:
    """The review's warnings: a lift below ``min_lift`` on the newest cohort, and a threshold
    outside the previous champion's interval.

    A lift measured on too few accounts (``enough_accounts`` False) is not judged.

    Returns
    -------
    list of dict
        ``kind`` (``low_lift`` or ``threshold_moved``), ``milestone`` and ``message``.
    """
    out = []
    for name in MILESTONES:
        block = cohort.get(name)
        if not block:
            continue
        checked = block.get("activation") if block.get("checked") == "activation" else block
        lift = checked.get("lift") if checked else None
        if lift is not None and lift < min_lift and checked.get("enough_accounts", True):
            what = "activation" if block.get("checked") == "activation" else "retention"
            out.append(
                {
                    "kind": "low_lift",
                    "milestone": name,
                    "message": (
                        f"{name}: on the newest cohort, the {what} of accounts that reached it is "
                        f"{lift:.3f} times the others' "
                        f"({100 * (checked['rate_reached'] or 0):.1f}% vs "
                        f"{100 * (checked['rate_not_reached'] or 0):.1f}%, "
                        f"{checked['n_reached']} and "
                        f"{checked['n_not_reached']} accounts), below the bound {min_lift:g}"
                    ),
                }
            )
    for row in thresholds_change or []:
        if row.get("outside_previous_ci"):
            lo, hi = row["previous_ci"]
            out.append(
                {
                    "kind": "threshold_moved",
                    "milestone": row["milestone"],
                    "message": (
                        f"{row['milestone']}: the threshold moved from "
                        f"{fmt_number(row['previous'])} to "
                        f"{fmt_number(row['current'])}, outside the previous champion's interval "
                        f"{fmt_number(lo)} to {fmt_number(hi)}"
                    ),
                }
            )
    return out


def framework_review(
    tenure: pd.DataFrame,
    snapshots: pd.DataFrame,
    thresholds: Mapping,
    importance: pd.DataFrame,
    metrics: Mapping,
    *,
    previous: Mapping | None = None,
    min_lift: float = REVIEW_MIN_LIFT,
    periods: int = REVIEW_PERIODS,
    confidence: float = CONFIDENCE,
    min_group: int = REVIEW_MIN_GROUP,
) -> dict:
    """The framework review: the newest cohort, the change since the previous champion, and
    the warnings (the content of ``review.json`` without its run identifiers).

    Parameters
    ----------
    tenure, snapshots : DataFrame
        The feature tables of this run.
    thresholds : mapping
        This run's ``thresholds.json`` content.
    importance : DataFrame
        This run's ``importance.csv``.
    metrics : mapping
        This run's test metrics (``summary.json`` ``metrics``).
    previous : mapping, optional
        The previous champion run: ``thresholds``, ``importance`` (DataFrame), ``metrics``
        and optionally ``run_id`` and ``as_of``. None when there is no champion yet.
    min_lift : float, default 1.05
        The bound under which a milestone's lift on the newest cohort is a warning.
    periods, confidence, min_group : see :func:`cohort_review`.

    Returns
    -------
    dict
        ``min_lift``, ``min_group``, ``periods`` (per milestone, the ``derivation`` and the
        ``review`` period: ``from``, ``to``, ``rows``, ``accounts``, and the column they are
        ``dated_by``), ``cohort``, ``previous`` (None or ``run_id``, ``as_of``,
        ``thresholds``, ``prevalence_drift``, ``auc``), ``warnings`` and ``status``
        (``ok`` or ``warning``).
    """
    if not min_lift > 0:
        raise ValueError(f"min_lift must be positive, got {min_lift!r}")
    cohort = cohort_review(
        tenure, snapshots, thresholds, periods=periods, confidence=confidence, min_group=min_group
    )
    compared = None
    if previous is not None:
        compared = {
            "run_id": previous.get("run_id"),
            "as_of": previous.get("as_of"),
            "thresholds": compare_thresholds(previous.get("thresholds") or {}, thresholds),
            "prevalence_drift": (
                prevalence_drift(previous["importance"], importance)
                if previous.get("importance") is not None
                else []
            ),
            "auc": compare_metrics(previous.get("metrics") or {}, metrics),
        }
    warnings = review_warnings(cohort, compared["thresholds"] if compared else None, min_lift)
    return {
        "min_lift": float(min_lift),
        "min_group": int(min_group),
        "periods": split_cohorts(tenure, snapshots, periods=periods).ranges(tenure, snapshots),
        "cohort": cohort,
        "previous": compared,
        "warnings": warnings,
        "status": "warning" if warnings else "ok",
    }
