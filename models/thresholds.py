"""Milestone thresholds derived backward from retention, each with its evidence.

The milestone derivations, which together make the content of ``thresholds.json``; each
threshold is searched by :class:`models.finder.ThresholdFinder`:

- :func:`derive_activation`: activation-event count in the first days against retention,
  validated against later inactivity;
- :func:`derive_utilization`: per-seat utilization rate against retention (with the raw,
  not-per-seat search beside it);
- :func:`derive_maturity`: distinct features per category, then the number of mature
  categories, against retention;
- :func:`derive_thresholds`: all four milestones, chained: setup
  (:func:`models.setup_steps.derive_setup`, the onboarding steps whose completion lifts
  the activation rate) is derived against activation.

Everything here is a pure function of pandas frames and plain parameters: no configuration
object, no I/O. Every output is JSON-serialisable (plain ints, floats, lists; ``None`` for
values that do not exist, never NaN).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from features.columns import ACCOUNT_KEY, LABEL, SNAPSHOT_KEY, maturity_col
from features.values import jsonable
from models.defaults import (
    CONFIDENCE,
    MIN_SIDE_SHARE,
    N_BOOTSTRAP,
    SETUP_MAX_PREVALENCE,
    SETUP_MIN_LIFT,
    UTILIZATION_PERIOD_DAYS,
)
from models.finder import ThresholdFinder
from models.setup_steps import derive_setup
from models.stats import binary, flag, fmt_number, make_rng, num, ratio, require_columns, to_float

__all__ = [
    "derive_activation",
    "derive_maturity",
    "derive_thresholds",
    "derive_utilization",
]


# --------------------------------------------------------------------------------------
# milestones
# --------------------------------------------------------------------------------------


def _search(
    metric: np.ndarray,
    outcome: np.ndarray,
    groups: np.ndarray | None,
    *,
    pinned: float | None,
    rng: np.random.Generator,
    min_side_share: float,
    n_bootstrap: int,
    confidence: float,
) -> tuple[Any, list, dict, ThresholdFinder]:
    """Threshold, interval and evidence of one metric, honouring a pinned value.

    With a pin, the evidence is computed at the pinned cut and ``ci`` stays the interval of
    the data-driven cut, so that a reader sees whether the pin agrees with the data
    (``evidence.derived`` and ``evidence.pinned_within_ci``).
    """
    finder = ThresholdFinder(
        min_side_share=min_side_share,
        n_bootstrap=n_bootstrap,
        confidence=confidence,
        random_state=rng,
    ).fit(metric, outcome, groups)
    ci = list(finder.ci_)
    if pinned is None:
        return finder.threshold_, ci, dict(finder.evidence_), finder
    evidence = finder.evaluate(metric, outcome, pinned, groups)
    derived = finder.evidence_
    evidence["derived"] = {
        k: derived.get(k) for k in ("threshold", "ci", "statistic", "p_value", "lift", "kind")
    }
    low, high = finder.ci_
    evidence["pinned_within_ci"] = (
        None if low is None or high is None else bool(low <= float(pinned) <= high)
    )
    value = num(pinned, float(pinned).is_integer())
    return value, ci, evidence, finder


def _labelled_rows(frame: pd.DataFrame, name: str, labelled: str | None) -> pd.DataFrame:
    """Rows with a known label, or a ValueError when one of them has no ``retained``.

    With ``labelled`` (a bool column), the rows where it is True; without, the rows not
    ``censored`` (when that column exists).
    """
    if labelled is not None:
        keep = flag(frame, labelled, name)
    else:
        keep = np.ones(len(frame), dtype=bool)
        if "censored" in frame.columns:
            keep &= ~flag(frame, "censored", name)
    rows = frame.loc[keep]
    missing = int(rows[LABEL].isna().sum())
    if missing:
        raise ValueError(f"{name} has {missing} labelled rows with a missing '{LABEL}'")
    return rows


def _milestone(rule: str, threshold: Any, ci: Sequence, evidence: dict, pinned: bool) -> dict:
    return {
        "rule": rule,
        "threshold": threshold,
        "ci": list(ci),
        "evidence": evidence,
        "pinned": bool(pinned),
    }


def derive_activation(
    tenure: pd.DataFrame,
    *,
    pinned: float | None = None,
    event: str | None = None,
    window_days: int | None = None,
    min_side_share: float = MIN_SIDE_SHARE,
    n_bootstrap: int = N_BOOTSTRAP,
    confidence: float = CONFIDENCE,
    random_state: Any = None,
) -> dict:
    """Threshold on ``activation_count`` against retention, validated against inactivity.

    Rows are the tenure rows with ``labelled`` True. The evidence adds ``inactivity``:
    among rows with ``inactivity_labelled`` True, the rate of ``went_inactive`` for
    activated accounts (count at or above the threshold) and the others.

    Parameters
    ----------
    tenure : DataFrame
        Tenure table: ``activation_count``, ``labelled``, ``retained`` and, for the
        validation, ``inactivity_labelled`` and ``went_inactive``.
    pinned : number, optional
        Use this threshold; the evidence is computed at it.
    event, window_days : optional
        For the rule sentence ("at least 20 conversation_closed in the first 60 days").
    min_side_share, n_bootstrap, confidence, random_state
        See :class:`ThresholdFinder`.

    Returns
    -------
    dict
        ``rule``, ``threshold``, ``ci``, ``evidence``, ``pinned``.
    """
    require_columns(tenure, "tenure", ["activation_count", "labelled", LABEL])
    rows = _labelled_rows(tenure, "tenure", "labelled")
    rng = make_rng(random_state)
    metric = to_float(rows["activation_count"], "activation_count")
    outcome = binary(rows[LABEL], LABEL)
    threshold, ci, evidence, _ = _search(
        metric,
        outcome,
        None,
        pinned=pinned,
        rng=rng,
        min_side_share=min_side_share,
        n_bootstrap=n_bootstrap,
        confidence=confidence,
    )
    evidence["retention_with"] = evidence.get("rate_at_or_above")
    evidence["retention_without"] = evidence.get("rate_below")
    evidence["inactivity"] = _inactivity(tenure, threshold)
    what = event or "activation events"
    window = f"in the first {window_days} days" if window_days else "in the activation window"
    rule = f"at least {fmt_number(threshold)} {what} {window}"
    return jsonable(_milestone(rule, threshold, ci, evidence, pinned is not None))


def _inactivity(tenure: pd.DataFrame, threshold: float | None) -> dict | None:
    """Went-inactive rate of activated vs not activated accounts (the validation)."""
    if threshold is None or not {"inactivity_labelled", "went_inactive"} <= set(tenure.columns):
        return None
    rows = tenure.loc[flag(tenure, "inactivity_labelled", "tenure")]
    rows = rows.loc[rows["went_inactive"].notna()]
    count = to_float(rows["activation_count"], "activation_count")
    inactive = binary(rows["went_inactive"], "went_inactive")
    activated = count >= float(threshold)
    n_act = int(activated.sum())
    n_not = int((~activated).sum())
    rate_act = float(inactive[activated].mean()) if n_act else None
    rate_not = float(inactive[~activated].mean()) if n_not else None
    return {
        "n": int(inactive.size),
        "n_activated": n_act,
        "went_inactive_rate_activated": rate_act,
        "went_inactive_rate_not_activated": rate_not,
        "ratio": ratio(rate_act, rate_not),
    }


def _account_share(rows: pd.DataFrame, reached: np.ndarray) -> float | None:
    """Share of accounts reaching the milestone at their latest labelled snapshot."""
    if ACCOUNT_KEY not in rows.columns or SNAPSHOT_KEY not in rows.columns or not len(rows):
        return None
    frame = pd.DataFrame(
        {"a": rows[ACCOUNT_KEY].to_numpy(), "s": rows[SNAPSHOT_KEY].to_numpy(), "r": reached}
    )
    latest = frame.sort_values(["a", "s"], kind="stable").groupby("a", sort=False).tail(1)
    return float(latest["r"].mean())


def _groups(rows: pd.DataFrame) -> np.ndarray | None:
    return rows[ACCOUNT_KEY].to_numpy() if ACCOUNT_KEY in rows.columns else None


def derive_utilization(
    snapshots: pd.DataFrame,
    *,
    pinned: float | None = None,
    event: str | None = None,
    period_days: int = UTILIZATION_PERIOD_DAYS,
    per_seat: bool = True,
    min_tenure_days: int | None = None,
    min_side_share: float = MIN_SIDE_SHARE,
    n_bootstrap: int = N_BOOTSTRAP,
    confidence: float = CONFIDENCE,
    random_state: Any = None,
) -> dict:
    """Threshold on ``utilization_rate`` against retention among uncensored snapshots.

    The bootstrap resamples whole accounts. The evidence adds ``raw_comparison``: the same
    search on ``utilization_raw`` (not divided by seats) beside the per-seat one, with the
    ratio of their effect sizes (``phi``), to show how much the per-seat view gains.

    With ``min_tenure_days`` (the pipeline passes the activation window plus the
    utilization window), only snapshots of accounts at least that old are searched: the
    trailing window of a younger account overlaps its activation window, whose volume is
    onboarding, not per-seat usage, so its rate understates the usage it settles at, and
    the accounts that fail to activate pile up at low rates. Both bend the retention curve
    below the threshold into a trend that pulls a maximally selected cut down (on the
    demo data from 10 to between 6 and 8.5 conversations per seat).

    Parameters
    ----------
    snapshots : DataFrame
        Snapshot table: ``utilization_rate``, ``retained``, ``censored`` (optional),
        ``account_id`` (for the grouped bootstrap), ``utilization_raw`` (optional).
    pinned : number, optional
        Use this threshold; the evidence is computed at it.
    event, period_days, per_seat
        For the rule sentence.
    min_tenure_days : int, optional
        Search only snapshots with ``tenure_days`` at least this (see above); the rows
        left out are counted in ``evidence.n_labelled_snapshots``.
    min_side_share, n_bootstrap, confidence, random_state
        See :class:`ThresholdFinder`.

    Returns
    -------
    dict
        ``rule``, ``threshold``, ``ci``, ``evidence``, ``pinned``.
    """
    require_columns(snapshots, "snapshots", ["utilization_rate", LABEL])
    rows = _labelled_rows(snapshots, "snapshots", None)
    n_labelled = len(rows)
    if min_tenure_days is not None:
        require_columns(snapshots, "snapshots", ["tenure_days"])
        tenure = to_float(rows["tenure_days"], "tenure_days")
        rows = rows.loc[tenure >= float(min_tenure_days)]
    rng = make_rng(random_state)
    metric = to_float(rows["utilization_rate"], "utilization_rate")
    outcome = binary(rows[LABEL], LABEL)
    threshold, ci, evidence, finder = _search(
        metric,
        outcome,
        _groups(rows),
        pinned=pinned,
        rng=rng,
        min_side_share=min_side_share,
        n_bootstrap=n_bootstrap,
        confidence=confidence,
    )
    evidence["retention_with"] = evidence.get("rate_at_or_above")
    evidence["retention_without"] = evidence.get("rate_below")
    if threshold is not None:
        evidence["share_of_accounts_at_latest_snapshot"] = _account_share(
            rows, metric >= float(threshold)
        )
    evidence["raw_comparison"] = _raw_comparison(
        rows, outcome, finder.evidence_, rng, min_side_share, n_bootstrap, confidence
    )
    evidence["min_tenure_days"] = None if min_tenure_days is None else int(min_tenure_days)
    evidence["n_labelled_snapshots"] = n_labelled
    what = event or "utilization events"
    unit = " per seat" if per_seat else ""
    rule = f"at least {fmt_number(threshold)} {what}{unit} per {period_days} days"
    return jsonable(_milestone(rule, threshold, ci, evidence, pinned is not None))


def _raw_comparison(
    rows: pd.DataFrame,
    outcome: np.ndarray,
    per_seat: dict,
    rng: np.random.Generator,
    min_side_share: float,
    n_bootstrap: int,
    confidence: float,
) -> dict | None:
    if "utilization_raw" not in rows.columns:
        return None
    raw = ThresholdFinder(
        min_side_share=min_side_share,
        n_bootstrap=n_bootstrap,
        confidence=confidence,
        random_state=rng,
    ).fit(to_float(rows["utilization_raw"], "utilization_raw"), outcome, _groups(rows))
    keys = ("threshold", "statistic", "phi", "p_value", "lift", "share_at_or_above", "kind")
    ps = {k: per_seat.get(k) for k in keys}
    rw = {k: raw.evidence_.get(k) for k in keys}
    phi_ratio = ratio(rw["phi"], ps["phi"])
    return {
        "per_seat": ps,
        "raw": rw,
        "phi_ratio_raw_to_per_seat": phi_ratio,
        "raw_is_weaker": None if phi_ratio is None else bool(phi_ratio < 1.0),
    }


def derive_maturity(
    snapshots: pd.DataFrame,
    categories: Mapping[str, Sequence[str]],
    *,
    pinned_thresholds: Mapping[str, float] | None = None,
    min_categories: int | None = None,
    window_days: int | None = None,
    min_side_share: float = MIN_SIDE_SHARE,
    n_bootstrap: int = N_BOOTSTRAP,
    confidence: float = CONFIDENCE,
    random_state: Any = None,
) -> dict:
    """Per-category feature-breadth thresholds, then the number of mature categories.

    For each category, the threshold is the minimum number of its distinct features
    (``maturity__<category>``) that separates retention; an account is mature in the
    category at or above it. Then the number of mature categories is searched the same way
    for overall maturity, unless ``min_categories`` is pinned. All searches run on the
    uncensored snapshots and resample whole accounts for their intervals.

    When no cut of a category leaves ``min_side_share`` of the rows on each side (for
    example nobody uses it), its threshold falls back to the category's feature count, and
    ``min_categories`` falls back to the number of categories; ``evidence.fallback`` says
    so.

    Parameters
    ----------
    snapshots : DataFrame
        Snapshot table: ``maturity__<category>``, ``retained``, ``censored`` (optional),
        ``account_id``.
    categories : mapping of str to list of str
        Category name to its features (events).
    pinned_thresholds : mapping of str to number, optional
        Pinned per-category thresholds.
    min_categories : int, optional
        Pinned number of mature categories.
    window_days : int, optional
        For the rule sentence.
    min_side_share, n_bootstrap, confidence, random_state
        See :class:`ThresholdFinder`.

    Returns
    -------
    dict
        ``rule``, ``threshold`` (= ``min_categories``), ``ci``, ``evidence``, ``pinned``
        (``min_categories`` pinned), ``min_categories`` and ``categories`` (per category:
        ``threshold``, ``ci``, ``evidence``, ``pinned``, ``features``).
    """
    pins = dict(pinned_thresholds or {})
    if not isinstance(categories, Mapping):
        raise ValueError("categories must be a mapping of category name to features")
    for name in pins:
        if name not in categories:
            raise ValueError(f"pinned_thresholds names unknown category '{name}'")
    n_cat = len(categories)
    if min_categories is not None and not (1 <= int(min_categories) <= max(n_cat, 1)):
        raise ValueError(
            f"min_categories must be between 1 and the number of categories ({n_cat}), "
            f"got {min_categories!r}"
        )
    if n_cat == 0:
        return jsonable(
            {
                "rule": "no maturity categories configured",
                "threshold": None,
                "ci": [None, None],
                "evidence": {},
                "pinned": False,
                "categories": {},
                "min_categories": None,
            }
        )
    require_columns(snapshots, "snapshots", [LABEL, *(maturity_col(c) for c in categories)])
    rows = _labelled_rows(snapshots, "snapshots", None)
    rng = make_rng(random_state)
    outcome = binary(rows[LABEL], LABEL)
    groups = _groups(rows)
    kwargs = dict(min_side_share=min_side_share, n_bootstrap=n_bootstrap, confidence=confidence)

    per_category: dict[str, dict] = {}
    mature_count = np.zeros(len(rows), dtype=int)
    for name, features in categories.items():
        metric = to_float(rows[maturity_col(name)], maturity_col(name))
        pin = pins.get(name)
        threshold, ci, evidence, _ = _search(metric, outcome, groups, pinned=pin, rng=rng, **kwargs)
        if threshold is None:
            threshold = len(features)
            evidence["fallback"] = (
                f"no cut leaves {min_side_share:g} of the rows on each side; threshold set to "
                "the category's feature count"
            )
        evidence["retention_with"] = evidence.get("rate_at_or_above")
        evidence["retention_without"] = evidence.get("rate_below")
        mature_count += metric >= float(threshold)
        per_category[name] = {
            "threshold": threshold,
            "ci": ci,
            "evidence": evidence,
            "pinned": pin is not None,
            "features": list(features),
        }

    threshold, ci, evidence, _ = _search(
        mature_count.astype(float), outcome, groups, pinned=min_categories, rng=rng, **kwargs
    )
    if threshold is None:
        threshold = n_cat
        evidence["fallback"] = (
            f"no cut leaves {min_side_share:g} of the rows on each side; min_categories set "
            "to the number of categories"
        )
    threshold = int(threshold)
    evidence["retention_with"] = evidence.get("rate_at_or_above")
    evidence["retention_without"] = evidence.get("rate_below")
    evidence["share_of_accounts_at_latest_snapshot"] = _account_share(
        rows, mature_count >= threshold
    )
    evidence["mature_categories_distribution"] = {
        str(k): int(v) for k, v in zip(*np.unique(mature_count, return_counts=True), strict=True)
    }
    window = f" in the last {window_days} days" if window_days else " in the trailing window"
    levels = ", ".join(f"{n} >= {fmt_number(b['threshold'])}" for n, b in per_category.items())
    rule = (
        f"mature in at least {threshold} of {n_cat} categories, mature in a category meaning "
        f"at least this many of its distinct features used{window}: {levels}"
    )
    out = _milestone(rule, threshold, ci, evidence, min_categories is not None)
    out["categories"] = per_category
    out["min_categories"] = threshold
    return jsonable(out)


def derive_thresholds(
    tenure: pd.DataFrame,
    snapshots: pd.DataFrame,
    *,
    setup_steps: Sequence[str],
    categories: Mapping[str, Sequence[str]],
    activation_pin: float | None = None,
    utilization_pin: float | None = None,
    setup_pin: Sequence[str] | None = None,
    maturity_pins: Mapping[str, float] | None = None,
    min_categories: int | None = None,
    max_prevalence: float = SETUP_MAX_PREVALENCE,
    min_lift: float = SETUP_MIN_LIFT,
    min_side_share: float = MIN_SIDE_SHARE,
    n_bootstrap: int = N_BOOTSTRAP,
    confidence: float = CONFIDENCE,
    random_state: Any = 0,
    activation_event: str | None = None,
    activation_window_days: int | None = None,
    setup_window_days: int | None = None,
    utilization_event: str | None = None,
    utilization_period_days: int = UTILIZATION_PERIOD_DAYS,
    utilization_per_seat: bool = True,
    utilization_min_tenure_days: int | None = None,
    maturity_window_days: int | None = None,
) -> dict:
    """All four milestones, working backward from retention: the ``thresholds.json`` content.

    Activation, utilization and maturity are derived against retention; setup against
    activation: an account is activated when its ``activation_count`` reaches the
    activation threshold, among tenure rows whose activation window has closed
    (``window_closed``).

    Parameters
    ----------
    tenure, snapshots : DataFrame
        The tenure and snapshot tables (see :mod:`features.columns`).
    setup_steps : sequence of str
        Candidate setup steps.
    categories : mapping of str to list of str
        Maturity categories and their features.
    activation_pin, utilization_pin, setup_pin, maturity_pins, min_categories : optional
        Pinned values (``setup_pin`` is a list of steps, ``maturity_pins`` per category).
    max_prevalence, min_lift : float
        Setup step selection (see :func:`models.setup_steps.derive_setup`).
    min_side_share, n_bootstrap, confidence : see :class:`ThresholdFinder`.
    random_state : int, default 0
        Seed; each milestone gets its own independent stream, so the same data and seed
        give an identical dict.
    activation_event, activation_window_days, setup_window_days, utilization_event,
    utilization_period_days, utilization_per_seat, maturity_window_days : optional
        Words for the rule sentences.
    utilization_min_tenure_days : int, optional
        See ``min_tenure_days`` of :func:`derive_utilization`.

    Returns
    -------
    dict
        Keys ``setup``, ``activation``, ``utilization``, ``maturity``; each with ``rule``,
        ``threshold``, ``ci``, ``evidence`` and ``pinned``. JSON-serialisable. With a pin,
        ``threshold`` is the pin and ``evidence`` is computed at it, while ``ci`` stays the
        interval of the data-driven cut (see ``evidence.derived`` and
        ``evidence.pinned_within_ci``), so a reader sees whether the pin fits the data.
    """
    require_columns(tenure, "tenure", ["activation_count", "window_closed"])
    seeds: list[Any] = [None] * 4
    if isinstance(random_state, np.random.Generator):
        seeds = list(random_state.spawn(4))
    elif random_state is not None:
        seeds = list(np.random.SeedSequence(random_state).spawn(4))
    common = dict(n_bootstrap=n_bootstrap, confidence=confidence)
    activation = derive_activation(
        tenure,
        pinned=activation_pin,
        event=activation_event,
        window_days=activation_window_days,
        min_side_share=min_side_share,
        random_state=seeds[0],
        **common,
    )
    if activation["threshold"] is None:
        raise ValueError(
            "the activation threshold could not be derived (no cut leaves "
            f"{min_side_share:g} of the labelled accounts on each side); pin it"
        )
    closed = tenure.loc[flag(tenure, "window_closed", "tenure")]
    activated = to_float(closed["activation_count"], "activation_count") >= float(
        activation["threshold"]
    )
    setup = derive_setup(
        closed,
        setup_steps,
        activated,
        max_prevalence=max_prevalence,
        min_lift=min_lift,
        pinned_steps=setup_pin,
        random_state=seeds[1],
        window_days=setup_window_days,
        **common,
    )
    setup["evidence"]["activation_threshold"] = activation["threshold"]
    utilization = derive_utilization(
        snapshots,
        pinned=utilization_pin,
        event=utilization_event,
        period_days=utilization_period_days,
        per_seat=utilization_per_seat,
        min_tenure_days=utilization_min_tenure_days,
        min_side_share=min_side_share,
        random_state=seeds[2],
        **common,
    )
    maturity = derive_maturity(
        snapshots,
        categories,
        pinned_thresholds=maturity_pins,
        min_categories=min_categories,
        window_days=maturity_window_days,
        min_side_share=min_side_share,
        random_state=seeds[3],
        **common,
    )
    return jsonable(
        {"setup": setup, "activation": activation, "utilization": utilization, "maturity": maturity}
    )
