"""The setup milestone: the onboarding steps whose completion lifts the activation rate.

:func:`derive_setup` measures, for each candidate step, the activation rate of the accounts
that did and did not do it in the setup window, and selects the steps whose activation
lift is clearly above a bound (the lower end of its Katz interval,
:func:`models.stats.risk_ratio`) without being routine (done by nearly everyone). Unlike the
other milestones (:mod:`models.thresholds`), setup is a set of steps, not a cut point of
one metric; :func:`models.thresholds.derive_thresholds` chains it after activation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from features.columns import setup_col
from features.values import jsonable
from models.defaults import CONFIDENCE, N_BOOTSTRAP, SETUP_MAX_PREVALENCE, SETUP_MIN_LIFT
from models.stats import binary, make_rng, ratio, require_columns, risk_ratio, z_value

__all__ = ["derive_setup"]


def derive_setup(
    tenure: pd.DataFrame,
    steps: Sequence[str],
    activated: Any,
    *,
    max_prevalence: float = SETUP_MAX_PREVALENCE,
    min_lift: float = SETUP_MIN_LIFT,
    pinned_steps: Sequence[str] | None = None,
    confidence: float = CONFIDENCE,
    n_bootstrap: int = N_BOOTSTRAP,
    random_state: Any = None,
    window_days: int | None = None,
) -> dict:
    """Select the onboarding steps whose completion lifts the activation rate.

    For each candidate step: its prevalence (share of accounts doing it), the activation
    rate of accounts that did and did not do it, and the lift (rate ratio) with a Katz
    log risk-ratio interval (:func:`models.stats.risk_ratio`, zero cells by its rule). A
    step is selected when the interval's lower end is above ``min_lift`` and its prevalence
    is at most ``max_prevalence``; otherwise its reason is ``"routine"`` (done by nearly
    everyone, so it separates nobody) or ``"no_lift"``.

    Parameters
    ----------
    tenure : DataFrame
        One row per account whose activation window has closed, with bool columns
        ``setup__<step>``.
    steps : sequence of str
        Candidate steps.
    activated : array-like of bool, shape (len(tenure),)
        Whether each account reached activation.
    max_prevalence, min_lift : float
        Selection rule, see above.
    pinned_steps : sequence of str, optional
        Use exactly these steps; candidates are evaluated all the same.
    confidence : float
        Level of the lift intervals and of the interval of the number of steps.
    n_bootstrap : int
        Account resamples for the interval of the number of selected steps and each
        candidate's ``selection_frequency``.
    random_state : None, int or numpy Generator
    window_days : int, optional
        The setup window, for the rule sentence.

    Returns
    -------
    dict
        ``rule``, ``steps``, ``candidates`` (per step: ``prevalence``, ``n_done``,
        ``activation_rate_done``, ``activation_rate_not_done``, ``lift``, ``lift_ci``,
        ``selected``, ``reason``, ``selection_frequency``), ``pinned``, ``threshold``
        (number of steps required), ``ci`` (interval of the number of steps the data
        select, from the account bootstrap, also when pinned), ``evidence`` (``n``, ``n_complete``,
        ``share_complete``, ``activation_rate_complete``, ``activation_rate_incomplete``,
        ``lift``, ``activation_rate_overall``, ``by_steps_done``, ``selection_rule``).
    """
    if isinstance(steps, str):
        raise ValueError("steps must be a list of step names, got a string")
    steps = list(dict.fromkeys(steps))
    pinned_list = None if pinned_steps is None else list(dict.fromkeys(pinned_steps))
    z_value(confidence)  # checks the level before any work
    if not (0.0 <= float(max_prevalence) <= 1.0):
        raise ValueError(f"max_prevalence must be in [0, 1], got {max_prevalence!r}")
    if not isinstance(n_bootstrap, (int, np.integer)) or n_bootstrap < 1:
        raise ValueError(f"n_bootstrap must be a positive integer, got {n_bootstrap!r}")
    candidates = steps + [s for s in (pinned_list or []) if s not in steps]
    require_columns(tenure, "tenure", [setup_col(s) for s in candidates])
    act = binary(activated, "activated").astype(bool)
    if act.size != len(tenure):
        raise ValueError(
            f"activated and tenure must have the same length, got {act.size} and {len(tenure)}"
        )
    if act.size == 0:
        raise ValueError("tenure has no rows (no account whose activation window has closed)")
    for s in candidates:
        n_missing = int(tenure[setup_col(s)].isna().sum())
        if n_missing:
            raise ValueError(f"tenure column '{setup_col(s)}' has {n_missing} missing values")
    done = (
        np.column_stack([tenure[setup_col(s)].astype(bool).to_numpy() for s in candidates])
        if candidates
        else np.zeros((act.size, 0), dtype=bool)
    )
    n_rows = act.size

    def select(n1, a1, n_total, a_total):
        lift, low, high = risk_ratio(a1, n1, a_total - a1, n_total - n1, confidence)
        prevalence = n1 / n_total
        routine = prevalence > max_prevalence
        chosen = ~routine & (np.nan_to_num(low, nan=-np.inf) > min_lift)
        return prevalence, lift, low, high, routine, chosen

    n1 = done.sum(axis=0).astype(float)
    a1 = (done & act[:, None]).sum(axis=0).astype(float)
    prevalence, lift, low, high, routine, chosen = select(n1, a1, n_rows, float(act.sum()))

    # Bootstrap of accounts as a multinomial over the distinct (steps done, activated) rows.
    rng = make_rng(random_state)
    patterns, counts = np.unique(
        np.column_stack([done, act]).astype(np.uint8), axis=0, return_counts=True
    )
    draws = rng.multinomial(n_rows, counts / n_rows, size=int(n_bootstrap)).astype(float)
    p_done = patterns[:, :-1].astype(float)
    p_act = patterns[:, -1].astype(float)
    bn1 = draws @ p_done
    ba1 = draws @ (p_done * p_act[:, None])
    b_chosen = select(bn1, ba1, n_rows, (draws @ p_act)[:, None])[-1]
    alpha = 1.0 - float(confidence)
    selected_count = b_chosen[:, : len(steps)].sum(axis=1)
    ci_low, ci_high = np.quantile(selected_count, [alpha / 2, 1 - alpha / 2], method="inverted_cdf")

    used = (
        pinned_list
        if pinned_list is not None
        else [s for s, c in zip(steps, chosen[: len(steps)], strict=True) if c]
    )
    table = {}
    for i, s in enumerate(candidates):
        reason = "routine" if routine[i] else ("lift" if chosen[i] else "no_lift")
        rate_done = a1[i] / n1[i] if n1[i] else None
        rate_not = (act.sum() - a1[i]) / (n_rows - n1[i]) if n_rows - n1[i] else None
        table[s] = {
            "prevalence": prevalence[i],
            "n_done": int(n1[i]),
            "activation_rate_done": rate_done,
            "activation_rate_not_done": rate_not,
            "lift": lift[i],
            "lift_ci": [low[i], high[i]],
            "selected": s in used,
            "reason": reason,
            "selection_frequency": float(b_chosen[:, i].mean()),
            "candidate": s in steps,
        }

    idx = [candidates.index(s) for s in used]
    complete = done[:, idx].all(axis=1) if idx else np.ones(n_rows, dtype=bool)
    n_complete = int(complete.sum())
    rate_with = float(act[complete].mean()) if n_complete else None
    rate_without = float(act[~complete].mean()) if n_complete < n_rows else None
    n_done_count = done[:, idx].sum(axis=1) if idx else np.zeros(n_rows, dtype=int)
    by_steps = [
        {
            "steps_done": k,
            "n": int((n_done_count == k).sum()),
            "activation_rate": float(act[n_done_count == k].mean()),
        }
        for k in range(len(idx) + 1)
        if (n_done_count == k).any()
    ]
    evidence = {
        "n": n_rows,
        "n_complete": n_complete,
        "share_complete": n_complete / n_rows,
        "activation_rate_complete": rate_with,
        "activation_rate_incomplete": rate_without,
        "lift": ratio(rate_with, rate_without),
        "activation_rate_overall": float(act.mean()),
        "by_steps_done": by_steps,
        "selection_rule": (
            f"lower end of the {confidence:.0%} lift interval above {min_lift:g} and "
            f"prevalence at most {max_prevalence:g}"
        ),
        "ci_method": f"account bootstrap of the selection ({int(n_bootstrap)} resamples)",
    }
    window = f"within the first {window_days} days" if window_days else "within the setup window"
    if used:
        rule = f"complete all of {', '.join(used)} {window}"
    else:
        rule = "no setup step: no candidate step lifts the activation rate enough"
    ci = [int(ci_low), int(ci_high)]
    return jsonable(
        {
            "rule": rule,
            "threshold": len(used),
            "ci": ci,
            "evidence": evidence,
            "pinned": pinned_list is not None,
            "steps": used,
            "candidates": table,
        }
    )
