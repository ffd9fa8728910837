"""The backtest's measurements: how did the milestones and the model derived at a past origin do?

Pure functions of pandas frames and plain values (no I/O, no engine), used by
:mod:`flows.steps.backtest`:

- :func:`origin_dates`: the origins, the newest the retention horizon before ``as_of`` (its
  outcome just observed), the others ``k * step`` months before it;
- :func:`retained_after`: each account's real outcome, still a customer ``horizon_days``
  after the origin, read from the full (untrimmed) accounts;
- :func:`outcome_lift`: retention of the accounts that had reached a milestone at the origin
  against the others (risk ratio and its Katz interval, :func:`models.stats.risk_ratio`);
- :func:`setup_activation_lift`: setup is derived against activation, so it is also checked
  against it: among the accounts in their activation window at the origin, the activation
  rate of those that had done the setup steps against the others;
- :func:`auc_against_baseline` and :func:`calibration_deciles`: the model's ROC AUC on the
  real outcome against the plan-and-seats baseline (paired account bootstrap of the
  difference), Brier scores, and expected against observed retention by decile;
- :func:`measure_origin`: all of it for one origin's live accounts;
- :func:`threshold_stability`: each milestone's thresholds per origin and their spread;
- :func:`summarise`: per milestone, the lift at every origin and whether each interval
  excludes 1.

Every output is JSON-serialisable (plain numbers, ``None`` for values that do not exist).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import brier_score_loss

from features.values import naive_utc
from models.defaults import CALIBRATION_BINS, CONFIDENCE, N_BOOTSTRAP, REVIEW_MIN_GROUP
from models.review import milestone_reached
from models.stats import binary, num, ratio, require_columns, risk_ratio
from models.verdict import usage_vs_baseline

__all__ = [
    "DEFAULT_ORIGINS",
    "DEFAULT_STEP_MONTHS",
    "REACHED_FLAGS",
    "auc_against_baseline",
    "calibration_deciles",
    "horizon_months",
    "measure_origin",
    "origin_dates",
    "outcome_lift",
    "retained_after",
    "setup_activation_lift",
    "summarise",
    "threshold_stability",
]

#: Origins of a backtest (``--origins``).
DEFAULT_ORIGINS = 2
#: Months between two origins (``--step-months``); the newest origin lies the retention
#: horizon before ``as_of`` (:func:`origin_dates`).
DEFAULT_STEP_MONTHS = 3
#: The score column that says a live account has reached each milestone at the origin.
REACHED_FLAGS = {
    "setup": "setup_complete",
    "activation": "activated",
    "utilization": "utilized",
    "maturity": "mature",
}


def _naive(ts: Any) -> pd.Timestamp:
    """A timestamp as a naive UTC pandas Timestamp."""
    return pd.Timestamp(naive_utc(ts))


# --------------------------------------------------------------------------------------
# origins and outcomes
# --------------------------------------------------------------------------------------


def horizon_months(as_of: Any, horizon_days: int) -> int:
    """The fewest whole months back from ``as_of`` that leave ``horizon_days`` after them:
    the newest origin whose outcome is observed (6 for a 180-day horizon)."""
    end = _naive(as_of)
    months = max(int(np.ceil(int(horizon_days) / 31)), 0)
    while end - pd.DateOffset(months=months) + pd.Timedelta(days=int(horizon_days)) > end:
        months += 1
    return months


def origin_dates(
    as_of: dt.datetime, *, origins: int, step_months: int, horizon_days: int
) -> list[dt.datetime]:
    """The backtest's origins, oldest first.

    The newest origin is the latest month step back from ``as_of`` whose outcome is observed:
    ``as_of`` minus :func:`horizon_months` (6 months for a 180-day horizon); the others step
    back from it by ``step_months``. Anchoring the newest origin to the horizon, not to the
    step, keeps the step short (3 months by default), so that the oldest origin still has
    the history the models and the thresholds need: on the 24-month demo, origins 9 and 6
    months before ``as_of`` have 15 and 18 months of history; with origins 12 and 6 months
    back (a 6-month step from ``as_of``) the older one had 12 months, too little to derive
    the snapshot milestones once the review cohort and the horizon are set aside.

    Raises
    ------
    ValueError
        When ``origins`` or ``step_months`` is not a positive integer.
    """
    for name, value in (("origins", origins), ("step_months", step_months)):
        if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    end = _naive(as_of)
    newest = horizon_months(end, horizon_days)
    out = [
        end - pd.DateOffset(months=int(newest + k * step_months))
        for k in range(origins - 1, -1, -1)
    ]
    return [t.to_pydatetime() for t in out]


def retained_after(accounts: pd.DataFrame, origin: Any, horizon_days: int) -> pd.Series:
    """Whether each account is still a customer ``horizon_days`` after ``origin``.

    Read from the full accounts (``churned_at`` as known at ``as_of``): still a customer at
    an instant means ``churned_at`` is null or not before it, as the feature tables' labels.

    Returns
    -------
    Series of bool
        Indexed by ``account_id`` (as text).
    """
    require_columns(accounts, "accounts", ["account_id", "churned_at"])
    end = _naive(origin) + pd.Timedelta(days=int(horizon_days))
    churned = pd.to_datetime(accounts["churned_at"])
    if getattr(churned.dt, "tz", None) is not None:
        churned = churned.dt.tz_convert(None)
    kept = churned.isna() | (churned >= end)
    return pd.Series(kept.to_numpy(dtype=bool), index=accounts["account_id"].astype(str).to_numpy())


# --------------------------------------------------------------------------------------
# lift, discrimination, calibration
# --------------------------------------------------------------------------------------


def outcome_lift(
    reached: Any,
    retained: Any,
    *,
    confidence: float = CONFIDENCE,
    min_group: int = REVIEW_MIN_GROUP,
) -> dict:
    """Retention of the accounts that had reached a milestone against the others.

    Parameters
    ----------
    reached, retained : array-like of bool
        Per account: reached the milestone at the origin; still a customer at the horizon.
    confidence : float, default 0.95
        Level of the interval (Katz log risk ratio, zero cells by the rule of
        :func:`models.stats.risk_ratio`).
    min_group : int, default 20
        Fewest accounts on each side for the lift to be judged (``enough_accounts``).

    Returns
    -------
    dict
        ``n``, ``n_reached``, ``n_not_reached``, ``retained_reached``,
        ``retained_not_reached``, ``rate_reached``, ``rate_not_reached``, ``lift``,
        ``lift_ci`` and ``excludes_one`` (the interval lies wholly above or below 1).
    """
    r = binary(reached, "reached").astype(bool)
    y = binary(retained, "retained")
    if r.shape != y.shape:
        raise ValueError(f"reached and retained differ in length: {r.size} and {y.size}")
    n1, n0 = int(r.sum()), int((~r).sum())
    a1, a0 = int(y[r].sum()), int(y[~r].sum())
    lift, low, high = risk_ratio(a1, n1, a0, n0, confidence)
    low, high = num(low), num(high)
    return {
        "n": int(r.size),
        "n_reached": n1,
        "n_not_reached": n0,
        "retained_reached": a1,
        "retained_not_reached": a0,
        "rate_reached": ratio(a1, n1),
        "rate_not_reached": ratio(a0, n0),
        "lift": num(lift),
        "lift_ci": [low, high],
        "excludes_one": bool(low is not None and high is not None and (low > 1 or high < 1)),
        "enough_accounts": bool(n1 >= min_group and n0 >= min_group),
    }


def setup_activation_lift(
    tenure: pd.DataFrame,
    live_ids: Any,
    origin: Any,
    thresholds: Mapping,
    *,
    setup_window_days: int,
    activation_window_days: int,
    confidence: float = CONFIDENCE,
    min_group: int = REVIEW_MIN_GROUP,
) -> dict | None:
    """The activation rate of the accounts that had done the setup steps, against the others.

    The cohort is the accounts live at ``origin`` whose setup window had closed by then but
    whose activation window had not (``setup_window_days <= origin date - signup date <
    activation_window_days``): their setup is known at the origin, their activation only
    afterwards. Both are read from ``tenure`` rows built on the full data (the setup flags
    look only at the setup window, which closed before the origin), each under the origin's
    ``thresholds``.

    Returns
    -------
    dict or None
        :func:`outcome_lift` with ``outcome`` ("activation") and ``cohort`` (the signup
        dates); None when no setup step was selected.
    """
    require_columns(tenure, "tenure", ["account_id", "signup_date", "activation_count"])
    day = _naive(origin).normalize()
    age = (day - pd.to_datetime(tenure["signup_date"])).dt.days
    ids = set(map(str, live_ids))
    in_window = (age >= int(setup_window_days)) & (age < int(activation_window_days))
    keep = (tenure["account_id"].astype(str).isin(ids) & in_window).to_numpy()
    rows = tenure.loc[keep]
    done = milestone_reached(rows, thresholds, "setup")
    activated = milestone_reached(rows, thresholds, "activation")
    if done is None or activated is None:
        return None
    first = (day - pd.Timedelta(days=int(activation_window_days) - 1)).date()
    last = (day - pd.Timedelta(days=int(setup_window_days))).date()
    return {
        "outcome": "activation",
        "cohort": f"live accounts that signed up from {first} to {last}",
        **outcome_lift(done, activated, confidence=confidence, min_group=min_group),
    }


def auc_against_baseline(
    retained: Any,
    predicted: Any,
    baseline: Any,
    *,
    n_bootstrap: int = N_BOOTSTRAP,
    confidence: float = CONFIDENCE,
    random_state: Any = None,
) -> dict:
    """ROC AUC and Brier score of the model and of the baseline on the real outcome.

    The interval of the AUC difference (model minus baseline) is the percentile interval of
    a paired bootstrap over accounts (both models scored on the same resample).

    Returns
    -------
    dict
        ``n``, ``retention_rate``, ``auc_model``, ``auc_baseline``, ``auc_difference``,
        ``auc_difference_ci``, ``beats_baseline`` (the interval lies above 0),
        ``brier_model``, ``brier_baseline``.
    """
    y = binary(retained, "retained")
    p = np.asarray(predicted, dtype=float)
    b = np.asarray(baseline, dtype=float)
    if not (y.shape == p.shape == b.shape):
        raise ValueError("retained, predicted and baseline must have the same length")
    out: dict = {
        "n": int(y.size),
        "retention_rate": float(y.mean()) if y.size else None,
        "auc_model": None,
        "auc_baseline": None,
        "auc_difference": None,
        "auc_difference_ci": [None, None],
        "beats_baseline": False,
        "brier_model": float(brier_score_loss(y, p, labels=[0, 1])) if y.size else None,
        "brier_baseline": float(brier_score_loss(y, b, labels=[0, 1])) if y.size else None,
    }
    # the paired account bootstrap of the run's own comparison (one row per account here)
    paired = usage_vs_baseline(
        y, p, b, n_bootstrap=n_bootstrap, confidence=confidence, random_state=random_state
    )
    if paired["auc_usage"] is None:
        return out
    out.update(
        auc_model=paired["auc_usage"],
        auc_baseline=paired["auc_baseline"],
        auc_difference=paired["auc_difference"],
        auc_difference_ci=paired["ci"],
        beats_baseline=paired["beats"],
    )
    return out


def calibration_deciles(
    retained: Any, predicted: Any, n_bins: int = CALIBRATION_BINS
) -> list[dict]:
    """Expected against observed retention in ``n_bins`` equal-count bins of the prediction.

    Rows are ordered by their predicted probability (ties kept in input order) and cut into
    bins of (nearly) equal size, lowest prediction first.

    Returns
    -------
    list of dict
        Per bin: ``bin``, ``n``, ``low`` and ``high`` (the predicted range),
        ``expected`` (mean predicted), ``observed`` (retained share) and ``gap``
        (observed minus expected).
    """
    y = binary(retained, "retained")
    p = np.asarray(predicted, dtype=float)
    if y.shape != p.shape:
        raise ValueError("retained and predicted must have the same length")
    order = np.argsort(p, kind="stable")
    rows = []
    for i, idx in enumerate(np.array_split(order, min(int(n_bins), max(y.size, 1)))):
        if not idx.size:
            continue
        expected, observed = float(p[idx].mean()), float(y[idx].mean())
        rows.append(
            {
                "bin": i + 1,
                "n": int(idx.size),
                "low": float(p[idx].min()),
                "high": float(p[idx].max()),
                "expected": expected,
                "observed": observed,
                "gap": observed - expected,
            }
        )
    return rows


def measure_origin(
    live: pd.DataFrame,
    retained: pd.Series,
    *,
    confidence: float = CONFIDENCE,
    n_bootstrap: int = N_BOOTSTRAP,
    min_group: int = REVIEW_MIN_GROUP,
    n_bins: int = CALIBRATION_BINS,
    random_state: Any = None,
    setup_activation: dict | None = None,
) -> dict:
    """What happened after one origin to the accounts live at it.

    Parameters
    ----------
    live : DataFrame
        One row per account live at the origin: ``account_id``, the reached flags of
        :data:`REACHED_FLAGS` (missing ones are skipped), ``retention_probability`` (the
        model's) and ``baseline_probability`` (plan and seats only); without both
        probabilities (no model could be trained at the origin), ``model`` and
        ``calibration`` are None.
    retained : Series of bool
        The real outcome by ``account_id`` (:func:`retained_after`); every live account
        must have one.
    setup_activation : dict, optional
        :func:`setup_activation_lift`: then setup's ``checked`` outcome is activation (it is
        derived against activation), as in the framework review.

    Returns
    -------
    dict
        ``accounts``, ``retention_rate``, ``milestones`` (per milestone
        :func:`outcome_lift` of retention, with ``checked``: the outcome whose lift is
        judged, and setup's ``activation`` block when given), ``model``
        (:func:`auc_against_baseline`) and ``calibration`` (``model`` and ``baseline``:
        :func:`calibration_deciles`).
    """
    require_columns(live, "live", ["account_id"])
    ids = live["account_id"].astype(str)
    y = ids.map(retained)
    if y.isna().any():
        missing = ids[y.isna()].iloc[:5].tolist()
        raise ValueError(f"retained has no outcome for {int(y.isna().sum())} accounts: {missing}")
    y = y.astype(bool).to_numpy()
    milestones = {
        name: outcome_lift(
            live[column].fillna(False).astype(bool).to_numpy(),
            y,
            confidence=confidence,
            min_group=min_group,
        )
        for name, column in REACHED_FLAGS.items()
        if column in live.columns
    }
    for block in milestones.values():
        block["checked"] = "retention"
    if setup_activation is not None and "setup" in milestones:
        milestones["setup"].update(activation=setup_activation, checked="activation")
    out = {
        "accounts": int(y.size),
        "retention_rate": float(y.mean()) if y.size else None,
        "milestones": milestones,
        "model": None,
        "calibration": None,
    }
    scored = ["retention_probability", "baseline_probability"]
    if not all(c in live.columns and live[c].notna().all() for c in scored):
        return out  # no model at this origin: the milestones alone are measured
    p = live["retention_probability"].to_numpy(dtype=float)
    b = live["baseline_probability"].to_numpy(dtype=float)
    out["model"] = auc_against_baseline(
        y, p, b, n_bootstrap=n_bootstrap, confidence=confidence, random_state=random_state
    )
    out["calibration"] = {
        "model": calibration_deciles(y, p, n_bins),
        "baseline": calibration_deciles(y, b, n_bins),
    }
    return out


# --------------------------------------------------------------------------------------
# across origins
# --------------------------------------------------------------------------------------


def _spread(values: Mapping[str, Any]) -> dict:
    """Values by origin with their min, max, spread and spread relative to the mean."""
    vals = {k: num(v) for k, v in values.items()}
    known = [v for v in vals.values() if v is not None]
    low, high = (min(known), max(known)) if known else (None, None)
    mean = float(np.mean(known)) if known else None
    spread = high - low if known else None
    return {
        "by_origin": vals,
        "min": low,
        "max": high,
        "spread": spread,
        "relative_spread": ratio(spread, mean),
    }


def _cis_overlap(cis: Sequence[Sequence[Any]]) -> bool | None:
    """Whether the intervals share a point (None when fewer than two are known)."""
    known = [(num(c[0]), num(c[1])) for c in cis if c and len(c) == 2]
    known = [c for c in known if c[0] is not None and c[1] is not None]
    if len(known) < 2:
        return None
    return bool(max(c[0] for c in known) <= min(c[1] for c in known))


def threshold_stability(by_origin: Mapping[str, Mapping]) -> dict:
    """Each milestone's thresholds per origin and their spread.

    Parameters
    ----------
    by_origin : mapping
        Origin (text) to that origin's ``thresholds.json`` content.

    Returns
    -------
    dict
        ``setup``: ``steps`` by origin, ``in_every_origin``, ``in_some_origins``, ``same``;
        ``activation`` and ``utilization``: :func:`_spread` of the thresholds plus ``ci``
        by origin and ``intervals_overlap``; ``maturity``: the spread of
        ``min_categories`` and, per category, the spread of its threshold.
    """
    steps = {o: sorted((t.get("setup") or {}).get("steps") or []) for o, t in by_origin.items()}
    sets = [set(s) for s in steps.values()]
    out: dict = {
        "setup": {
            "steps": steps,
            "in_every_origin": sorted(set.intersection(*sets)) if sets else [],
            "in_some_origins": sorted(set.union(*sets) - set.intersection(*sets)) if sets else [],
            "same": bool(len({tuple(s) for s in steps.values()}) <= 1),
        }
    }
    for name in ("activation", "utilization"):
        blocks = {o: t.get(name) or {} for o, t in by_origin.items()}
        cis = {o: b.get("ci") for o, b in blocks.items()}
        out[name] = {
            **_spread({o: b.get("threshold") for o, b in blocks.items()}),
            "ci": {o: [num(v) for v in (c or [None, None])] for o, c in cis.items()},
            "intervals_overlap": _cis_overlap(list(cis.values())),
        }
    maturity = {o: t.get("maturity") or {} for o, t in by_origin.items()}
    names = dict.fromkeys(n for m in maturity.values() for n in (m.get("categories") or {}))
    out["maturity"] = {
        "min_categories": _spread({o: m.get("min_categories") for o, m in maturity.items()}),
        "categories": {
            n: _spread(
                {
                    o: ((m.get("categories") or {}).get(n) or {}).get("threshold")
                    for o, m in maturity.items()
                }
            )
            for n in names
        },
    }
    return out


def summarise(origins: Sequence[Mapping]) -> dict:
    """Per milestone, the lift at every origin; and the model against the baseline.

    Parameters
    ----------
    origins : sequence of mapping
        Each with ``origin`` (text) and ``measured`` (:func:`measure_origin`).

    Returns
    -------
    dict
        ``milestones``: per milestone the ``outcome`` judged (``checked``: retention, or
        activation for setup), its ``lift`` and ``lift_ci`` by origin and
        ``excludes_one_at_every_origin``; ``model``: ``auc_model``, ``auc_baseline`` by
        origin and ``beats_baseline_at_every_origin``.
    """
    names = dict.fromkeys(n for o in origins for n in o["measured"]["milestones"])
    out: dict = {"milestones": {}, "model": {}}
    for name in names:
        blocks = {o["origin"]: o["measured"]["milestones"].get(name) for o in origins}
        checked = {(b or {}).get("checked", "retention") for b in blocks.values()}
        outcome = "activation" if checked == {"activation"} else "retention"
        if outcome == "activation":
            blocks = {k: b["activation"] for k, b in blocks.items()}
        out["milestones"][name] = {
            "outcome": outcome,
            "lift": {k: (b or {}).get("lift") for k, b in blocks.items()},
            "lift_ci": {k: (b or {}).get("lift_ci") for k, b in blocks.items()},
            "excludes_one_at_every_origin": bool(
                blocks and all(b is not None and b["excludes_one"] for b in blocks.values())
            ),
        }
    models = {o["origin"]: o["measured"]["model"] or {} for o in origins}
    out["model"] = {
        "auc_model": {k: m.get("auc_model") for k, m in models.items()},
        "auc_baseline": {k: m.get("auc_baseline") for k, m in models.items()},
        "beats_baseline_at_every_origin": bool(
            models and all(m.get("beats_baseline") for m in models.values())
        ),
    }
    return out
