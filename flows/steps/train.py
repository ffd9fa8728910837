"""Steps 3 and 4: train the retention models and rank features; derive the thresholds."""

from __future__ import annotations

from typing import Any

import pandas as pd

from flows.config import Config
from flows.errors import InvalidInputError
from flows.steps.tables import FeatureTables


def model_input_example(models: Any, frame: pd.DataFrame, rows: int = 5) -> pd.DataFrame:
    """The snapshot columns the model reads, for MLflow's signature and input example."""
    from features.columns import feature_of

    events = set(models.feature_events_)
    cols = [c for c in frame.columns if feature_of(c) in events]
    cols += [c for c in ("plan", "seats", "tenure_days") if c in frame.columns]
    return frame[cols].head(rows).reset_index(drop=True)


def train(cfg: Config, tables: FeatureTables) -> dict:
    """Fit the retention models out of time and rank every feature against its adoption."""
    from models.importance import rank_features
    from models.splits import held_out_rows, out_of_time_split, stratified_sample
    from models.training import RetentionModels

    check_trainable(cfg, tables)
    train_rows, test = out_of_time_split(
        tables.snapshots,
        test_snapshots=cfg.models.test_snapshots,
        test_account_share=cfg.models.test_account_share,
        random_state=cfg.seed,
    )
    if train_rows.empty or test.empty:
        raise InvalidInputError(
            "not enough labelled history to train: need uncensored snapshots before and at the "
            f"newest {cfg.models.test_snapshots} labelled month ends (check retention.horizon_days "
            "against the data period)"
        )
    _need_both_outcomes(train_rows, "the training snapshots (older labelled month ends)")
    sample = stratified_sample(train_rows, cfg.models.row_budget, random_state=cfg.seed)
    categories = dict(cfg.milestones.maturity.categories) if cfg.models.breadth else None
    models = RetentionModels(
        n_estimators=cfg.models.n_estimators,
        random_state=cfg.seed,
        n_jobs=2,
        categories=categories,
    ).fit(sample)
    evaluation = models.evaluate(test)
    calibration = evaluation.pop("calibration")
    labelled = tables.snapshots[~tables.snapshots["censored"].astype(bool)]
    held_out = held_out_rows(tables.snapshots, train_rows)
    importance = rank_features(
        models,
        held_out if cfg.models.importance_rows == "held_out" else test,
        labelled,
        tables.events,
        prevalence_band=tuple(cfg.importance.prevalence_band),
        min_importance=cfg.importance.min_importance,
        n_repeats=cfg.models.permutation_repeats,
        max_rows=cfg.importance.max_rows,
        lift_snapshots=cfg.importance.lift_snapshots,
        intensity_rule=cfg.importance.intensity_rule,
        random_state=cfg.seed,
    )
    return {
        "models": models,
        "metrics": evaluation,
        "calibration": calibration,
        "importance": importance,
        "example": model_input_example(models, test),
        "rows": {
            "train": len(train_rows),
            "sampled": len(sample),
            "test": len(test),
            "importance": len(held_out) if cfg.models.importance_rows == "held_out" else len(test),
        },
    }


def _labelled(frame: pd.DataFrame, flag_column: str, known_when: bool) -> pd.DataFrame:
    if frame.empty or "retained" not in frame.columns:
        return frame.iloc[0:0]
    keep = frame["retained"].notna()
    if flag_column in frame.columns:
        keep &= frame[flag_column].fillna(not known_when).astype(bool) == known_when
    return frame[keep]


def _need_both_outcomes(rows: pd.DataFrame, what: str) -> None:
    """Both a retained and a churned row among ``rows``; else an error that counts them."""
    retained = int((rows["retained"].astype(float) == 1).sum()) if len(rows) else 0
    churned = len(rows) - retained
    if retained and churned:
        return
    missing = "churned" if not churned else "retained"
    raise InvalidInputError(
        f"cannot learn retention: {what} hold {len(rows):,} labelled rows, {churned:,} of "
        f"accounts that churned within retention.horizon_days and {retained:,} of accounts "
        f"that stayed; need at least one of each (no {missing} account). Check "
        "accounts.churned_at (null means still a customer) and the data period."
    )


def _history_days(tables: FeatureTables) -> int | None:
    try:
        start, end = (pd.Timestamp(v) for v in tables.period)
    except (TypeError, ValueError):
        return None
    return int((end - start).days)


def check_trainable(cfg: Config, tables: FeatureTables) -> None:
    """Enough labelled history, and churners among it, to train and to test; else explain.

    Raises
    ------
    InvalidInputError
        With the counts: labelled month ends against ``models.test_snapshots``, the history
        length against ``retention.horizon_days``; or the churned and retained rows.
    """
    horizon = cfg.retention.horizon_days
    need = cfg.models.test_snapshots
    labelled = _labelled(tables.snapshots, "censored", known_when=False)
    dates = labelled["snapshot_date"].nunique() if len(labelled) else 0
    if dates <= need:
        days = _history_days(tables)
        history = (
            f"the history runs {tables.period[0]} to {tables.period[1]} ({days:,} days) "
            if days is not None
            else ""
        )
        raise InvalidInputError(
            f"not enough labelled history to train: {dates} month end(s) are at least "
            f"retention.horizon_days={horizon} days before as_of, need more than "
            f"models.test_snapshots={need} ({need} to test, the older ones to train); "
            f"{history}and a month end's retention is known only {horizon} days after it. "
            "Provide a longer history, or lower retention.horizon_days or models.test_snapshots."
        )
    _need_both_outcomes(labelled, "the labelled snapshots (month ends past the horizon)")


def derive(cfg: Config, tables: FeatureTables) -> dict:
    """The four milestone thresholds, each with its interval and evidence."""
    from models.thresholds import derive_thresholds

    _need_both_outcomes(
        _labelled(tables.tenure, "labelled", known_when=True),
        "the labelled accounts (activation window closed, horizon passed)",
    )

    m = cfg.milestones
    return derive_thresholds(
        tables.tenure,
        tables.snapshots,
        setup_steps=m.setup.steps,
        categories=m.maturity.categories,
        activation_pin=m.activation.threshold,
        utilization_pin=m.utilization.threshold,
        setup_pin=m.setup.pinned_steps,
        maturity_pins=dict(m.maturity.thresholds) or None,
        min_categories=m.maturity.min_categories,
        max_prevalence=m.setup.max_prevalence,
        min_lift=m.setup.min_lift,
        min_side_share=cfg.thresholds.min_side_share,
        n_bootstrap=cfg.thresholds.bootstrap,
        confidence=cfg.thresholds.confidence,
        random_state=cfg.seed,
        activation_event=m.activation.event,
        activation_window_days=m.activation.window_days,
        utilization_event=m.utilization.event,
        utilization_period_days=m.utilization.period_days,
        utilization_per_seat=m.utilization.per_seat,
        utilization_min_tenure_days=(
            m.activation.window_days + m.utilization.window_days
            if cfg.thresholds.utilization_after_onboarding
            else None
        ),
        maturity_window_days=m.maturity.window_days,
        setup_window_days=m.setup.window_days,
    )
