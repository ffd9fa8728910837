"""The data's verdict: which milestones the data confirm, and whether usage predicts at all.

A threshold search always returns a cut, and a model always returns an AUC; neither says by
itself that the data hold a milestone. This module turns the evidence into decisions that
the scores, the report and the command line act on:

- :func:`milestone_status` and :func:`assign_statuses`: each milestone of
  ``thresholds.json`` is ``confirmed`` (a step in the outcome at the threshold, with an
  interval narrow enough to act on), ``unconfirmed`` (no signal, a smooth trend with no
  step, an outcome that falls above the cut, or an interval too wide to act on; with the
  ``reason``) or ``pinned`` (set in the configuration);
- :func:`gating_milestones`: the milestones that gate an account's stage (all but the
  unconfirmed ones);
- :func:`usage_vs_baseline`: the test-set ROC AUC of the usage model against the
  plan-and-seats baseline, with a paired account-level bootstrap interval of the difference;
- :func:`withhold_candidates`: no feature is a milestone candidate when usage does not beat
  the baseline;
- :func:`verdict_lines`: the sentences that head the report and the run's summary.

Pure functions of plain values and pandas frames.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from models.defaults import CONFIDENCE, MAX_CI_RATIO, N_BOOTSTRAP
from models.stats import binary, fmt_number, make_rng, num

__all__ = [
    "MILESTONES",
    "STATUSES",
    "assign_statuses",
    "gating_milestones",
    "milestone_status",
    "usage_vs_baseline",
    "verdict_lines",
    "withhold_candidates",
]

MILESTONES = ("setup", "activation", "utilization", "maturity")
STATUSES = ("confirmed", "unconfirmed", "pinned")
#: What each milestone's metric counts, for the reasons.
_METRIC = {
    "activation": "the early activation count",
    "utilization": "the utilization rate",
    "maturity": "the number of mature categories",
    "category": "the category's distinct features",
}
#: The sentence that heads the report and the run summary when usage does not beat plan.
NO_USAGE_SIGNAL = "Product usage does not predict retention in this data"


def _pct(x: Any) -> str:
    v = num(x)
    return "?" if v is None else f"{100 * v:.0f}%"


def _p(x: Any) -> str:
    v = num(x)
    return "?" if v is None else ("< 0.01" if v < 0.01 else f"= {v:.2f}")


def _interval_too_wide(ci: Sequence | None, max_ratio: float) -> str | None:
    """Why an interval is too wide to act on, or None when it is narrow enough."""
    low, high = (num(v) for v in (list(ci or []) + [None, None])[:2])
    if low is None or high is None:
        return "the data give no interval for it"
    if high <= 0 or high <= low:
        return None
    if low <= 0 or high / low > max_ratio:
        return (
            f"its interval, {fmt_number(low)} to {fmt_number(high)}, is too wide to act on "
            f"(the upper end is more than {fmt_number(max_ratio)} times the lower end)"
        )
    return None


def _search_status(evidence: Mapping, threshold: Any, ci: Sequence, what: str, max_ratio: float):
    """Status and reason of one searched threshold (see :func:`milestone_status`)."""
    t = fmt_number(num(threshold))
    if num(threshold) is None:
        return "unconfirmed", "no cut leaves enough accounts on each side: no threshold"
    if evidence.get("fallback"):
        return "unconfirmed", f"no threshold in the data ({evidence['fallback']})"
    kind = evidence.get("kind")
    above, below = evidence.get("rate_at_or_above"), evidence.get("rate_below")
    rates = f"{_pct(above)} at or above {t} against {_pct(below)} below"
    if kind == "no_signal":
        return "unconfirmed", (
            f"no signal: retention is {rates}, a difference the permutation test does not "
            f"tell from chance (p {_p(evidence.get('p_value'))})"
        )
    if evidence.get("direction") == "lower_at_or_above":
        return "unconfirmed", f"retention is lower above the cut ({rates}): not a milestone"
    if kind == "trend_only":
        step = (evidence.get("step_vs_trend") or {}).get("p_value")
        return "unconfirmed", (
            f"trend only: retention changes smoothly with {what}, and a step at {t} adds "
            f"nothing significant to that trend (p {_p(step)}); {t} is a point on a curve, "
            "not a threshold"
        )
    wide = _interval_too_wide(ci, max_ratio)
    if wide:
        return "unconfirmed", f"a step at {t}, but {wide}"
    return "confirmed", (
        f"a step at {t} (interval {fmt_number(num(ci[0]))} to {fmt_number(num(ci[1]))}): "
        f"retention is {rates} (p {_p(evidence.get('p_value'))})"
    )


def milestone_status(
    name: str,
    block: Mapping,
    *,
    activation_status: str | None = None,
    max_ci_ratio: float = MAX_CI_RATIO,
) -> tuple[str, str]:
    """The status of one milestone of ``thresholds.json`` and its reason in plain words.

    - ``pinned``: its threshold (or setup's steps, maturity's ``min_categories``) is set in
      the configuration; the evidence is still computed at the pin;
    - ``unconfirmed`` when the search found no signal (``evidence.kind`` ``no_signal``), the
      outcome is lower at or above the cut, the outcome follows a smooth trend with no
      significant step (``trend_only``), no cut was possible, or the interval is too wide to
      act on: its upper end above ``max_ci_ratio`` times its lower end (or a lower end of 0);
      setup also when no step is selected, and when activation, which it is derived
      against, is unconfirmed (``activation_status``);
    - ``confirmed`` otherwise.

    Returns
    -------
    (status, reason) : tuple of str
    """
    if name not in MILESTONES:
        raise ValueError(f"milestone must be one of {', '.join(MILESTONES)}, got {name!r}")
    ev = block.get("evidence") or {}
    if block.get("pinned"):
        within = ev.get("pinned_within_ci")
        note = {
            True: "; the data's own interval contains it",
            False: "; it lies outside the data's own interval",
        }.get(within, "")
        return "pinned", f"set in the configuration{note}"
    if name == "setup":
        if activation_status == "unconfirmed":
            return "unconfirmed", (
                "setup steps are selected for the activation they bring, and the data do not "
                "confirm activation"
            )
        if not block.get("steps"):
            return "unconfirmed", "no candidate step lifts the activation rate clearly"
        wide = _interval_too_wide(block.get("ci"), max_ci_ratio)
        if wide:
            return "unconfirmed", f"the number of steps selected is uncertain: {wide}"
        return "confirmed", (
            f"{len(block['steps'])} step(s) clearly lift activation "
            f"({_pct(ev.get('activation_rate_complete'))} activate after completing them, "
            f"{_pct(ev.get('activation_rate_incomplete'))} otherwise)"
        )
    return _search_status(ev, block.get("threshold"), block.get("ci"), _METRIC[name], max_ci_ratio)


def assign_statuses(thresholds: Mapping, *, max_ci_ratio: float = MAX_CI_RATIO) -> dict:
    """``thresholds`` (the ``thresholds.json`` content) with ``status`` and ``reason`` on each
    milestone and on each maturity category (a category's status is for reading only:
    maturity's own status is that of its ``min_categories`` search). A new dict."""
    out = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in thresholds.items()}
    statuses: dict[str, str] = {}
    for name in ("activation", "setup", "utilization", "maturity"):
        if name not in out:
            continue
        status, reason = milestone_status(
            name,
            out[name],
            activation_status=statuses.get("activation"),
            max_ci_ratio=max_ci_ratio,
        )
        out[name]["status"], out[name]["reason"] = status, reason
        statuses[name] = status
    cats = (out.get("maturity") or {}).get("categories") or {}
    if cats:
        out["maturity"]["categories"] = {}
        for cat, block in cats.items():
            block = dict(block)
            if block.get("pinned"):
                block["status"], block["reason"] = "pinned", "set in the configuration"
            else:
                block["status"], block["reason"] = _search_status(
                    block.get("evidence") or {},
                    block.get("threshold"),
                    block.get("ci"),
                    _METRIC["category"],
                    max_ci_ratio,
                )
            out["maturity"]["categories"][cat] = block
    return {k: out[k] for k in thresholds}


def gating_milestones(thresholds: Mapping) -> list[str]:
    """The milestones that gate an account's stage: every one but the ``unconfirmed`` ones
    (a ``thresholds.json`` without statuses, from before them, gates on all four)."""
    return [
        name
        for name in MILESTONES
        if (thresholds.get(name) or {}).get("status", "confirmed") != "unconfirmed"
    ]


# --------------------------------------------------------------------------------------
# usage against the plan-and-seats baseline
# --------------------------------------------------------------------------------------


def usage_vs_baseline(
    y: Any,
    p_usage: Any,
    p_baseline: Any,
    groups: Any = None,
    *,
    n_bootstrap: int = N_BOOTSTRAP,
    confidence: float = CONFIDENCE,
    random_state: Any = 0,
) -> dict:
    """Does the usage model rank retention better than the plan-and-seats baseline?

    The difference of the two test-set ROC AUCs, with a percentile interval from a paired
    bootstrap over accounts: each replicate draws the accounts (``groups``) with
    replacement, weighs each row by its account's draw count and recomputes both AUCs on the
    same rows. Usage beats the baseline when the interval's lower end is above 0.

    Parameters
    ----------
    y : array-like of 0/1
        The test rows' outcome (retained).
    p_usage, p_baseline : array-like of float
        The two models' predicted retention on the same rows.
    groups : array-like, optional
        The account of each row (default: each row its own account).
    n_bootstrap, confidence, random_state
        Replicates, interval level and seed.

    Returns
    -------
    dict
        ``beats`` (bool), ``auc_usage``, ``auc_baseline``, ``auc_difference``, ``ci``,
        ``confidence``, ``n_bootstrap``, ``n_valid``, ``n_rows``, ``n_accounts``, ``method``
        and, when there is no answer (one class only), ``note``.
    """
    yv = binary(y, "y")
    pu = np.asarray(p_usage, dtype=float)
    pb = np.asarray(p_baseline, dtype=float)
    if not (yv.shape == pu.shape == pb.shape) or yv.ndim != 1:
        raise ValueError("y, p_usage and p_baseline must be 1-D arrays of the same length")
    codes = (
        np.arange(yv.size)
        if groups is None
        else pd.factorize(pd.Series(np.asarray(groups)), sort=False)[0]
    )
    n_groups = int(codes.max()) + 1 if codes.size else 0
    out: dict[str, Any] = {
        "beats": False,
        "auc_usage": None,
        "auc_baseline": None,
        "auc_difference": None,
        "ci": [None, None],
        "confidence": float(confidence),
        "n_bootstrap": int(n_bootstrap),
        "n_valid": 0,
        "n_rows": int(yv.size),
        "n_accounts": n_groups,
        "method": (
            "test-set ROC AUC of the gradient-boosted usage model minus that of the "
            "plan-and-seats baseline; percentile interval of a paired bootstrap over accounts"
        ),
    }
    if np.unique(yv).size < 2:
        out["note"] = "the test rows hold one outcome only: no AUC"
        return out
    auc_u, auc_b = float(roc_auc_score(yv, pu)), float(roc_auc_score(yv, pb))
    rng = make_rng(random_state)
    diffs = []
    for _ in range(int(n_bootstrap)):
        weight = np.bincount(rng.integers(0, n_groups, n_groups), minlength=n_groups)[codes]
        keep = weight > 0
        yk = yv[keep]
        if yk.min() == yk.max():
            continue
        w = weight[keep]
        diffs.append(
            roc_auc_score(yk, pu[keep], sample_weight=w)
            - roc_auc_score(yk, pb[keep], sample_weight=w)
        )
    alpha = 1.0 - float(confidence)
    low, high = (
        (float(v) for v in np.quantile(diffs, [alpha / 2, 1 - alpha / 2]))
        if diffs
        else (None, None)
    )
    out.update(
        auc_usage=auc_u,
        auc_baseline=auc_b,
        auc_difference=auc_u - auc_b,
        ci=[low, high],
        n_valid=len(diffs),
        beats=bool(low is not None and low > 0),
    )
    return out


def _difference_words(comparison: Mapping) -> str:
    d = num(comparison.get("auc_difference"))
    low, high = (num(v) for v in (list(comparison.get("ci") or []) + [None, None])[:2])
    if d is None:
        return comparison.get("note") or "no AUC could be computed"
    level = f"{100 * float(comparison.get('confidence') or CONFIDENCE):.0f}%"
    interval = (
        f", {level} interval {low:+.3f} to {high:+.3f}"
        if low is not None and high is not None
        else ""
    )
    return (
        f"test ROC AUC {num(comparison.get('auc_usage')):.3f} with usage against "
        f"{num(comparison.get('auc_baseline')):.3f} for plan and seats alone "
        f"(difference {d:+.3f}{interval})"
    )


def withhold_candidates(importance: pd.DataFrame, comparison: Mapping) -> pd.DataFrame:
    """``importance`` with no ``milestone_candidate`` left when usage does not beat the
    plan-and-seats baseline (``comparison["beats"]`` False): each former candidate becomes
    ``no_signal``, and its reason says why first. A new frame; unchanged otherwise."""
    out = importance.copy()
    if comparison.get("beats", True) or "verdict" not in out.columns:
        return out
    was = out["verdict"] == "milestone_candidate"
    if was.any():
        why = (
            "Not a milestone candidate: product usage does not predict retention better than "
            f"plan and seats alone in this data ({_difference_words(comparison)}). Before that "
            "check: "
        )
        out.loc[was, "reason"] = why + out.loc[was, "reason"].fillna("").astype(str)
        out.loc[was, "verdict"] = "no_signal"
    return out


# --------------------------------------------------------------------------------------
# the sentences
# --------------------------------------------------------------------------------------


def verdict_lines(thresholds: Mapping, comparison: Mapping | None) -> list[str]:
    """What the data could and could not confirm, most important first: the report's and
    the run summary's first lines.

    What could not be confirmed comes first: that product usage does not predict retention
    better than plan and seats (``comparison``: :func:`usage_vs_baseline`; None: not known),
    then one line per unconfirmed milestone with its reason; then that usage does predict
    retention (when it does), and the confirmed and pinned milestones the stage is built on.
    """
    lines = []
    beats = None
    if comparison is not None:
        words = _difference_words(comparison)
        if comparison.get("beats"):
            beats = f"Product usage predicts retention better than plan and seats: {words}."
        else:
            lines.append(
                f"{NO_USAGE_SIGNAL}: it does not predict retention better than plan and seats "
                f"alone ({words}). No feature is a milestone candidate."
            )
    kept = []
    for name in MILESTONES:
        block = thresholds.get(name) or {}
        status = block.get("status")
        if status == "unconfirmed":
            lines.append(
                f"{name.capitalize()} is unconfirmed: {block.get('reason')}. It does not gate "
                "any account's stage, and no next step points to it."
            )
        elif status is not None:
            kept.append(f"{name} ({status})")
    if beats:
        lines.append(beats)
    if kept:
        lines.append(f"Milestones the stage is built on: {', '.join(kept)}.")
    elif any((thresholds.get(n) or {}).get("status") for n in MILESTONES):
        lines.append("The data confirm no milestone: every account's stage stays 'new'.")
    return lines
