"""The scoring flow: score live accounts with the champion's thresholds and model, no training.

validate -> features (tenure and as_of rows only) -> champion -> score -> publish.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pandas as pd
from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows.config import Config, load_config
from flows.pipeline import (
    FeatureTables,
    build_feature_tables,
    compute_scores,
    default_out,
    history_path,
    validate_and_record,
    validate_task,
)
from flows.publish import discard, publish, recover, staging_dir
from flows.runtime import Stage

log = logging.getLogger("milestones")
STAGES = 5


@task(name="features", cache_policy=NO_CACHE)
def _features(cfg: Config, inputs) -> FeatureTables:
    return build_feature_tables(cfg, inputs, training=False)


@task(name="score", cache_policy=NO_CACHE)
def _score(cfg: Config, tables: FeatureTables, thresholds: dict, model, as_of) -> pd.DataFrame:
    schema = model.metadata.get_input_schema()
    columns = schema.input_names() if schema is not None else None

    def predict(rows: pd.DataFrame):
        return pd.Series(model.predict(rows[columns] if columns else rows)).to_numpy()

    return compute_scores(cfg, tables, thresholds, predict, as_of)


@flow(name="score", log_prints=False, validate_parameters=False)
def score_flow(
    config_path: str,
    out: str | None = None,
    engine: str | None = None,
    as_of: str | None = None,
) -> dict:
    """Score every live account with the current champion's thresholds and model.

    Publishes scores.csv and scores.parquet (with the champion's thresholds.json,
    importance.csv and report.html beside them) atomically, and appends to the history.
    """
    from flows.history import record, with_previous_stage
    from flows.pipeline import write_outputs
    from flows.tracking import champion, log_score_run

    started = time.perf_counter()
    cfg = load_config(config_path, engine=engine, **{"data.as_of": as_of})
    out_dir = Path(out).resolve() if out else default_out(cfg)
    recover(out_dir)
    staging = staging_dir(out_dir)
    try:
        with Stage(1, STAGES, "load the champion"):
            best = champion(cfg, staging)
            thresholds = json.loads((staging / "thresholds.json").read_text())
            log.info("      model version %s from run %s", best["version"], best["run_id"])
        with Stage(2, STAGES, "validate the inputs"):
            inputs = validate_and_record(cfg, out_dir, validate_task)
        with Stage(3, STAGES, "build the rows at as_of") as st:
            tables = _features(cfg, inputs)
            st.note("%d live accounts at %s", len(tables.current), inputs.as_of)
        with Stage(4, STAGES, "score the live accounts") as st:
            scores = _score(cfg, tables, thresholds, best["model"], inputs.as_of)
            scores = with_previous_stage(history_path(cfg, out_dir), scores, inputs.as_of)
            st.note("%d accounts scored; stages: %s", len(scores), scores["stage"].value_counts().to_dict())
        with Stage(5, STAGES, "publish"):
            summary = {
                "kind": "score",
                "as_of": str(inputs.as_of),
                "accounts": len(tables.tenure),
                "events": tables.n_events,
                "live_accounts": len(scores),
                "champion_run_id": best["run_id"],
                "champion_version": best["version"],
            }
            importance = (
                pd.read_csv(staging / "importance.csv")
                if (staging / "importance.csv").is_file()
                else pd.DataFrame()
            )
            write_outputs(
                staging,
                thresholds=thresholds,
                importance=importance,
                scores=scores,
                validation=inputs.validation,
                summary=summary,
            )
            run_id = log_score_run(cfg, staging, summary)
            record(history_path(cfg, out_dir), scores, run_id)
            publish(staging, out_dir)
    except BaseException:
        discard(staging)
        raise
    log.info("done in %.1f s", time.perf_counter() - started)
    return {"out": str(out_dir), "scores": str(out_dir / "scores.csv"), "run_id": run_id}
