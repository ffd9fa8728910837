"""Steps 3 and 4: train the retention models and rank features; derive the thresholds."""

from __future__ import annotations

from typing import Any

import pandas as pd

from features.columns import ACCOUNT_KEY
from flows.config import Config
from flows.errors import InvalidInputError
from flows.steps.tables import FeatureTables


def model_input_example(models: Any, frame: pd.DataFrame, rows: int = 5) -> pd.DataFrame:
    """The snapshot columns the model reads, for MLflow's signature and input example."""
    read = {c for cols in models.groups_.values() for c in cols}
    cols = [c for c in frame.columns if c in read]
    cols += [c for c in ("plan", "seats", "tenure_days") if c in frame.columns]
    return frame[cols].head(rows).reset_index(drop=True)


def train(cfg: Config, tables: FeatureTables) -> dict:
    """Fit the retention models out of time and rank every feature against its adoption."""
    from models.importance import rank_features
    from models.splits import held_out_rows, out_of_time_split, stratified_sample
    from models.training import RetentionModels
    from models.verdict import withhold_candidates

    check_trainable(cfg, tables)
    # Evaluation is out of time with a gap: no training label observed after the first test
    # date (issue 13). The champion, whose importance is measured on the accounts it never
    # saw, is then refitted on every labelled row of the training accounts (no gap): the
    # gap guards the test, and would otherwise cost the model its newest months.
    try:
        eval_rows, test = out_of_time_split(
            tables.snapshots,
            test_snapshots=cfg.models.test_snapshots,
            test_account_share=cfg.models.test_account_share,
            random_state=cfg.seed,
            horizon_days=cfg.retention.horizon_days,
        )
    except ValueError as exc:
        raise InvalidInputError(f"not enough labelled history to train: {exc}") from exc
    train_rows = out_of_time_split(
        tables.snapshots,
        test_snapshots=cfg.models.test_snapshots,
        test_account_share=cfg.models.test_account_share,
        random_state=cfg.seed,
    )[0]
    if train_rows.empty or test.empty:
        raise InvalidInputError(
            "not enough labelled history to train: need uncensored snapshots before and at the "
            f"newest {cfg.models.test_snapshots} labelled month ends (check retention.horizon_days "
            "against the data period)"
        )
    _need_both_outcomes(eval_rows, "the training snapshots (older labelled month ends)")
    _need_both_outcomes(train_rows, "the training snapshots (older labelled month ends)")
    categories = dict(cfg.milestones.maturity.categories) if cfg.models.breadth else None

    def fit(rows: pd.DataFrame) -> tuple[Any, pd.DataFrame]:
        sample = stratified_sample(rows, cfg.models.row_budget, random_state=cfg.seed)
        return RetentionModels(
            n_estimators=cfg.models.n_estimators,
            random_state=cfg.seed,
            n_jobs=2,
            categories=categories,
            feature_events=list(tables.events),  # by name: the columns carry codes
        ).fit(sample), sample

    # Each training set is sampled to the row budget as soon as it is cut, and its wide rows
    # let go: only their counts and the training accounts are kept (100M events: ~1M rows of
    # 200+ columns per copy).
    n_eval, n_train = len(eval_rows), len(train_rows)
    train_accounts = train_rows[[ACCOUNT_KEY]]
    evaluated, _ = fit(eval_rows)
    del eval_rows
    models, sample = fit(train_rows)
    del train_rows
    evaluation = evaluated.evaluate(test)
    calibration = evaluation.pop("calibration")
    comparison = compare_with_baseline(cfg, evaluated, test)
    labelled = tables.snapshots[~tables.snapshots["censored"].astype(bool)]
    held_out = held_out_rows(tables.snapshots, train_accounts)
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
    from models.importance import with_unjudged

    importance = with_unjudged(withhold_candidates(importance, comparison), tables.selection)
    return {
        "models": models,
        "metrics": evaluation,
        "usage_vs_baseline": comparison,
        "calibration": calibration,
        "importance": importance,
        "example": model_input_example(models, test),
        "rows": {
            **snapshot_counts(tables),
            "train": n_train,
            "evaluation_train": n_eval,
            "sampled": len(sample),
            "test": len(test),
            "importance": len(held_out) if cfg.models.importance_rows == "held_out" else len(test),
        },
    }


def snapshot_counts(tables: FeatureTables) -> dict[str, int]:
    """The snapshot rows and accounts in the engine, and those analysed: all of them, or the
    sample of whole accounts within ``snapshots.max_rows`` (``summary.json``'s ``rows``)."""
    analysed = len(tables.snapshots)
    accounts = int(tables.snapshots[ACCOUNT_KEY].nunique()) if analysed else 0
    sample = tables.sample
    return {
        "snapshots": sample.total_rows if sample else analysed,
        "snapshots_analysed": analysed,
        "snapshot_accounts": sample.total_accounts if sample else accounts,
        "snapshot_accounts_analysed": accounts,
    }


def compare_with_baseline(cfg: Config, models: Any, test: pd.DataFrame) -> dict:
    """Does usage beat plan and seats? The gradient-boosted model's test-set ROC AUC against
    the baseline's, with a paired account-level bootstrap interval of the difference
    (:func:`models.verdict.usage_vs_baseline`): ``summary.json``'s ``usage_vs_baseline``."""
    from models.verdict import usage_vs_baseline

    return usage_vs_baseline(
        test["retained"].to_numpy(dtype=float),
        models.predict_retention(test, model="gbm"),
        models.predict_retention(test, model="baseline"),
        test["account_id"].astype(str).to_numpy(),
        n_bootstrap=cfg.thresholds.bootstrap,
        confidence=cfg.thresholds.confidence,
        random_state=cfg.seed,
    )


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


def review_cohorts(cfg: Config, tables: FeatureTables) -> Any:
    """The cut between the rows the thresholds are derived on and the later, disjoint cohorts
    that review them (:func:`models.cohorts.split_cohorts`, ``models.test_snapshots``
    months or dates); the derivation and the framework review read the same cut."""
    from models.cohorts import split_cohorts

    return split_cohorts(tables.tenure, tables.snapshots, periods=cfg.models.test_snapshots)


def derive(cfg: Config, tables: FeatureTables) -> dict:
    """The four milestone thresholds, each with its interval, evidence and status, derived on
    the labelled history before the review cohorts (see :func:`review_cohorts`)."""
    from models.cohorts import derivation_rows
    from models.thresholds import derive_thresholds
    from models.verdict import assign_statuses

    cohorts = review_cohorts(cfg, tables)
    tenure, snapshots = derivation_rows(tables.tenure, tables.snapshots, cohorts)
    _need_both_outcomes(
        _labelled(tenure, "labelled", known_when=True),
        "the labelled accounts before the review cohort (window closed, horizon passed)",
    )
    _need_both_outcomes(
        _labelled(snapshots, "censored", known_when=False),
        "the labelled snapshots before the review cohort",
    )

    m = cfg.milestones
    thresholds = derive_thresholds(
        tenure,
        snapshots,
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
    periods = cohorts.ranges(tables.tenure, tables.snapshots)
    for name, block in thresholds.items():
        block["evidence"]["derivation_period"] = periods[name]["derivation"]
    return assign_statuses(thresholds, max_ci_ratio=cfg.thresholds.max_ci_ratio)
