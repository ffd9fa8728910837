"""The Prefect flow: validate -> features -> train -> thresholds -> score -> publish.

Tasks are thin: each calls pure functions of ``features`` and ``models`` and hands plain
values on. Everything is written into a staging folder first; the MLflow run is logged from
it, and only then is the folder renamed into place (all or nothing).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows.config import Config, load_config
from flows.publish import discard, publish, recover, staging_dir, write_text_atomic
from flows.review import review_task
from flows.runtime import Stage

log = logging.getLogger("milestones")
STAGES = 6


class InvalidInputError(ValueError):
    """The input data break the data contract (exit status 2)."""


@dataclass
class Inputs:
    """The open engine connection and the typed input tables."""

    con: Any
    accounts: Any
    events: Any
    as_of: dt.datetime
    validation: dict = field(default_factory=dict)


@dataclass
class FeatureTables:
    tenure_table: Any  # the engine's tables, for engine-side scoring
    current_table: Any
    tenure: pd.DataFrame
    snapshots: pd.DataFrame
    current: pd.DataFrame
    events: list[str]
    dates: list[dt.date]
    n_events: int
    period: tuple[str, str]


def default_out(cfg: Config) -> Path:
    if cfg.out:
        return cfg.resolve(cfg.out)
    return (cfg.base_dir / ".." / "out" / cfg.base_dir.name).resolve()


def history_path(cfg: Config, out: Path) -> Path:
    """The DuckDB file holding the score history."""
    return cfg.resolve(cfg.history) if cfg.history else Path(out).parent / "milestone_history.duckdb"


def validation_sidecar(out: Path) -> Path:
    """Where a run's validation result is kept beside the output folder."""
    return out.with_name(out.name + ".validation.json")


# ----------------------------------------------------------------------------- tasks


def open_inputs(cfg: Config) -> Inputs:
    from features.io import Source, connect, read_inputs, resolve_as_of, typed_accounts, typed_events
    from features.validation import validate_inputs

    con = connect(cfg.engine)
    db = str(cfg.resolve(cfg.data.database)) if cfg.data.database else None
    loc = (lambda p: p) if db else (lambda p: str(cfg.resolve(p)))
    accounts_raw, events_raw = read_inputs(
        con, Source(loc(cfg.data.accounts), db), Source(loc(cfg.data.events), db)
    )
    as_of_cfg = cfg.data.as_of.replace(tzinfo=None) if cfg.data.as_of else None
    report = validate_inputs(
        con,
        accounts_raw,
        events_raw,
        as_of=as_of_cfg,
        configured_events=cfg.configured_events(),
    )
    if not report.ok:
        raise InvalidInputError(report.format(), report.to_dict())
    events = typed_events(events_raw)
    as_of = resolve_as_of(events, as_of_cfg)
    return Inputs(con, typed_accounts(accounts_raw), events, as_of, report.to_dict())


@task(name="validate", cache_policy=NO_CACHE)
def validate_task(cfg: Config) -> Inputs:
    return open_inputs(cfg)


def validate_and_record(cfg: Config, out_dir: Path, validate: Any = open_inputs) -> Inputs:
    """Validate the inputs and keep the result beside the output folder, pass or fail."""
    target = validation_sidecar(out_dir)
    try:
        inputs = validate(cfg)
    except InvalidInputError as exc:
        details = exc.args[1] if len(exc.args) > 1 else {"error": str(exc)}
        write_text_atomic(target, json.dumps(details, indent=2, default=str))
        raise
    write_text_atomic(target, json.dumps(inputs.validation, indent=2, default=str))
    return inputs


def build_feature_tables(
    cfg: Config, inputs: Inputs, stage: Stage | None = None, *, training: bool = True
) -> FeatureTables:
    """The tenure table, the snapshot table (when ``training``) and the rows at ``as_of``."""
    from features import tables as ft
    from features.validation import validate_feature_tables

    m = cfg.milestones
    daily = ft.daily_aggregate(inputs.accounts, inputs.events, as_of=inputs.as_of, cache=True)
    events = ft.event_names(daily)
    n_events = int(inputs.events.count().execute())
    tenure_expr = ft.tenure_table(
        daily,
        as_of=inputs.as_of,
        events=events,
        setup_steps=m.setup.steps,
        setup_window_days=m.setup.window_days,
        activation_event=m.activation.event,
        activation_window_days=m.activation.window_days,
        horizon_days=cfg.retention.horizon_days,
        golden_week_days=cfg.features.golden_week_days,
        inactivity_period_days=m.activation.inactivity_period_days,
        inactivity_horizon_days=m.activation.inactivity_horizon_days,
    )
    first = inputs.accounts.signup_at.min().execute()
    dates = ft.snapshot_dates(
        pd.Timestamp(first).date(),
        inputs.as_of,
        activation_window_days=m.activation.window_days,
        max_snapshots=cfg.snapshots.max_snapshots,
    )
    common = dict(
        as_of=inputs.as_of,
        events=events,
        categories=m.maturity.categories,
        utilization_event=m.utilization.event,
        utilization_window_days=m.utilization.window_days,
        period_days=m.utilization.period_days,
        maturity_window_days=m.maturity.window_days,
        trailing_days=cfg.trailing_days,
        horizon_days=cfg.retention.horizon_days,
        activation_window_days=m.activation.window_days,
    )
    if not training:
        dates = []
    snapshots_expr = ft.snapshot_table(
        daily, dates=dates or [inputs.as_of.date()], **common
    )
    if not training:
        snapshots_expr = snapshots_expr.limit(0)
    current_expr = ft.snapshot_table(
        daily, dates=[inputs.as_of.date()], require_window_closed=False, **common
    )
    built = {
        "tenure": ft.materialise(inputs.con, "ms_tenure", tenure_expr),
        "snapshots": ft.materialise(inputs.con, "ms_snapshots", snapshots_expr),
    }
    report = validate_feature_tables(inputs.con, built)
    if not report.ok:
        raise RuntimeError("the built feature tables break their own checks:\n" + report.format())
    current_table = ft.materialise(inputs.con, "ms_current", current_expr)
    tenure = ft.to_frame(built["tenure"], ft.TENURE_ORDER)
    snapshots = ft.to_frame(built["snapshots"], ft.SNAPSHOT_ORDER)
    current = ft.to_frame(current_table, ft.SNAPSHOT_ORDER)
    if stage:
        stage.note(
            "%d accounts, %d events (%d distinct), %d snapshot rows over %d month ends, "
            "%d live accounts",
            len(tenure), n_events, len(events), len(snapshots), len(dates), len(current),
        )
    start = tenure["signup_date"].min()
    return FeatureTables(
        tenure_table=built["tenure"],
        current_table=current_table,
        tenure=tenure,
        snapshots=snapshots,
        current=current,
        events=events,
        dates=dates,
        n_events=n_events,
        period=(str(pd.Timestamp(start).date()), str(inputs.as_of)),
    )


@task(name="features", cache_policy=NO_CACHE)
def features_task(cfg: Config, inputs: Inputs) -> FeatureTables:
    return build_feature_tables(cfg, inputs)


def model_input_example(models: Any, frame: pd.DataFrame, rows: int = 5) -> pd.DataFrame:
    """The snapshot columns the model reads, for MLflow's signature and input example."""
    from features.columns import feature_of

    events = set(models.feature_events_)
    cols = [c for c in frame.columns if feature_of(c) in events]
    cols += [c for c in ("plan", "seats", "tenure_days") if c in frame.columns]
    return frame[cols].head(rows).reset_index(drop=True)


@task(name="train", cache_policy=NO_CACHE)
def train_task(cfg: Config, tables: FeatureTables) -> dict:
    from models.importance import rank_features
    from models.training import (
        RetentionModels,
        held_out_rows,
        out_of_time_split,
        stratified_sample,
    )

    train, test = out_of_time_split(
        tables.snapshots,
        test_snapshots=cfg.models.test_snapshots,
        test_account_share=cfg.models.test_account_share,
        random_state=cfg.seed,
    )
    if train.empty or test.empty:
        raise InvalidInputError(
            "not enough labelled history to train: need uncensored snapshots before and at the "
            f"newest {cfg.models.test_snapshots} labelled month ends (check retention.horizon_days "
            "against the data period)"
        )
    sample = stratified_sample(train, cfg.models.row_budget, random_state=cfg.seed)
    categories = dict(cfg.milestones.maturity.categories) if cfg.models.breadth else None
    models = RetentionModels(
        n_estimators=cfg.models.n_estimators, random_state=cfg.seed, n_jobs=2,
        categories=categories,
    ).fit(sample)
    evaluation = models.evaluate(test)
    calibration = evaluation.pop("calibration")
    labelled = tables.snapshots[~tables.snapshots["censored"].astype(bool)]
    held_out = held_out_rows(tables.snapshots, train)
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
            "train": len(train), "sampled": len(sample), "test": len(test),
            "importance": len(held_out) if cfg.models.importance_rows == "held_out" else len(test),
        },
    }


@task(name="thresholds", cache_policy=NO_CACHE)
def thresholds_task(cfg: Config, tables: FeatureTables) -> dict:
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


def compute_scores(
    cfg: Config, tables: FeatureTables, thresholds: dict, predict: Any, as_of: dt.datetime
) -> pd.DataFrame:
    """Milestone flags in the engine, then the next step and the model's probability.

    ``predict`` maps a frame of snapshot rows to retention probabilities; it is called in
    batches of 50,000 rows.
    """
    from features.flags import milestone_flags
    from models.scoring import finish_scores, flag_parameters

    m = cfg.milestones
    flags = milestone_flags(
        tables.tenure_table,
        tables.current_table,
        as_of=as_of,
        activation_window_days=m.activation.window_days,
        utilization_column="utilization_rate" if m.utilization.per_seat else "utilization_raw",
        **flag_parameters(thresholds),
    ).to_pandas()
    proba = None
    if predict is not None and len(tables.current):
        parts = [
            np.asarray(predict(tables.current.iloc[i : i + 50_000]), dtype=float)
            for i in range(0, len(tables.current), 50_000)
        ]
        proba = pd.Series(np.concatenate(parts), index=tables.current["account_id"].astype(str).to_numpy())
    return finish_scores(
        flags,
        thresholds,
        as_of=as_of,
        activation_window_days=m.activation.window_days,
        activation_event=m.activation.event,
        utilization_event=m.utilization.event,
        period_days=m.utilization.period_days,
        retention_probability=proba,
    )


@task(name="score", cache_policy=NO_CACHE)
def score_task(cfg: Config, tables: FeatureTables, thresholds: dict, models: Any, as_of) -> pd.DataFrame:
    predict = models.predict_retention if models is not None else None
    return compute_scores(cfg, tables, thresholds, predict, as_of)


def write_outputs(
    staging: Path,
    *,
    thresholds: dict,
    importance: pd.DataFrame,
    scores: pd.DataFrame,
    validation: dict,
    summary: dict,
    calibration: pd.DataFrame | None = None,
) -> None:
    from models.scoring import SCORE_COLUMNS

    (staging / "thresholds.json").write_text(json.dumps(thresholds, indent=2, sort_keys=False) + "\n")
    importance.to_csv(staging / "importance.csv", index=False)
    ordered = scores[SCORE_COLUMNS + [c for c in scores.columns if c not in SCORE_COLUMNS]]
    csv = ordered.copy()
    csv["as_of"] = pd.to_datetime(csv["as_of"]).dt.strftime("%Y-%m-%d")
    csv.to_csv(staging / "scores.csv", index=False, encoding="utf-8", float_format="%.6g")
    ordered.to_parquet(staging / "scores.parquet", index=False)
    if calibration is not None:
        calibration.to_csv(staging / "calibration.csv", index=False)
    (staging / "validation.json").write_text(json.dumps(validation, indent=2, default=str) + "\n")
    (staging / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")


@task(name="publish", cache_policy=NO_CACHE)
def publish_task(
    cfg: Config, staging: Path, out: Path, trained: dict, summary: dict, scores: pd.DataFrame
) -> str | None:
    from flows.history import record
    from flows.report import write_report
    from flows.tracking import log_run

    write_report(staging)
    run_id = log_run(cfg, staging, trained, summary)
    record(history_path(cfg, out), scores, run_id)
    publish(staging, out)
    return run_id


# ----------------------------------------------------------------------------- the flow


@flow(name="pipeline", log_prints=False, validate_parameters=False)
def pipeline(
    config_path: str,
    out: str | None = None,
    engine: str | None = None,
    as_of: str | None = None,
) -> dict:
    """Validate the inputs, build the feature tables, train, derive thresholds, score, publish.

    Parameters
    ----------
    config_path : str
        The YAML configuration.
    out : str, optional
        Output folder (default: ``out`` of the configuration, else ``out/<config folder>``).
    engine : {"duckdb", "spark"}, optional
        Overrides the configuration's engine.
    as_of : str, optional
        Overrides ``data.as_of``.
    """
    started = time.perf_counter()
    cfg = load_config(config_path, engine=engine, **{"data.as_of": as_of})
    out_dir = Path(out).resolve() if out else default_out(cfg)
    recover(out_dir)
    staging = staging_dir(out_dir)
    try:
        with Stage(1, STAGES, "validate the inputs") as st:
            inputs = validate_and_record(cfg, out_dir, validate_task)
            st.note("all rules pass; as_of %s", inputs.as_of)
        with Stage(2, STAGES, "build the feature tables") as st:
            tables = features_task(cfg, inputs)
            st.note(
                "%d accounts, %d events, %d snapshot rows, %d live accounts",
                len(tables.tenure), tables.n_events, len(tables.snapshots), len(tables.current),
            )
        with Stage(3, STAGES, "train the retention models and rank features") as st:
            trained = train_task(cfg, tables)
            auc = trained["metrics"]
            st.note(
                "test ROC AUC: gbm %.3f, rf %.3f, plan-and-seats baseline %.3f (%s rows sampled)",
                auc["gbm"]["roc_auc"], auc["rf"]["roc_auc"], auc["baseline"]["roc_auc"],
                trained["rows"]["sampled"],
            )
        with Stage(4, STAGES, "derive the milestone thresholds") as st:
            thresholds = thresholds_task(cfg, tables)
            st.note(
                "activation %s, utilization %.2f, setup steps %s, maturity %s of %d categories",
                thresholds["activation"]["threshold"], thresholds["utilization"]["threshold"],
                thresholds["setup"]["steps"], thresholds["maturity"]["min_categories"],
                len(thresholds["maturity"]["categories"]),
            )
        with Stage(5, STAGES, "score the live accounts") as st:
            from flows.history import with_previous_stage

            scores = score_task(cfg, tables, thresholds, trained["models"], inputs.as_of)
            scores = with_previous_stage(history_path(cfg, out_dir), scores, inputs.as_of)
            st.note("%d accounts scored; stages: %s", len(scores), scores["stage"].value_counts().to_dict())
        with Stage(6, STAGES, "publish and track") as st:
            summary = {
                "config": str(Path(config_path).resolve()),
                "engine": cfg.engine,
                "as_of": str(inputs.as_of),
                "period": tables.period,
                "accounts": len(tables.tenure),
                "events": tables.n_events,
                "distinct_events": len(tables.events),
                "snapshot_rows": len(tables.snapshots),
                "snapshot_dates": [str(d) for d in tables.dates],
                "live_accounts": len(scores),
                "metrics": trained["metrics"],
                "rows": trained["rows"],
                "validation_ok": True,
                "prevalence_band": list(cfg.importance.prevalence_band),
                "seed": cfg.seed,
            }
            write_outputs(
                staging,
                thresholds=thresholds,
                importance=trained["importance"],
                scores=scores,
                validation=inputs.validation,
                summary=summary,
                calibration=trained["calibration"],
            )
            review_task(cfg, staging, tables, inputs.as_of)  # before log_run moves the champion
            run_id = publish_task(cfg, staging, out_dir, trained, summary, scores)
            st.note("MLflow run %s", run_id)
    except BaseException:
        discard(staging)
        raise
    log.info("done in %.1f s", time.perf_counter() - started)
    return {
        "out": str(out_dir),
        "report": str(out_dir / "report.html"),
        "scores": str(out_dir / "scores.csv"),
        "run_id": run_id,
    }
