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


def derive(cfg: Config, tables: FeatureTables) -> dict:
    """The four milestone thresholds, each with its interval and evidence."""
    from models.thresholds import derive_thresholds

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
