"""The score flow: score live accounts with the champion's thresholds and model, no training.

champion -> validate -> features (tenure and ``as_of`` rows only) -> score -> publish. A thin
Prefect flow over the steps of :mod:`flows.steps`, publishing atomically like the retrain flow
(one writer per folder; the MLflow run ends FINISHED only once the folder is published, else
FAILED: :func:`flows.retrain.publish_tracked`).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows.config import Config, load_config
from flows.retrain import publish_tracked
from flows.runtime import Stage
from flows.served import check_served_run
from flows.steps import inputs as inputs_step
from flows.steps import score as score_step
from flows.steps import tables as tables_step
from flows.store import tracking
from flows.store.publish import naming_path, read_importance, staged

log = logging.getLogger("milestones")
STAGES = 5

validate_task = task(inputs_step.open_inputs, name="validate", cache_policy=NO_CACHE)
score_task = task(score_step.compute_scores, name="score", cache_policy=NO_CACHE)


@task(name="features", cache_policy=NO_CACHE)
def features_task(cfg: Config, inputs: Any, keep: list[str] | None = None) -> Any:
    return tables_step.build_feature_tables(cfg, inputs, training=False, keep=keep or ())


def champion_features(folder: Path) -> list[str]:
    """The features the champion judged (its importance.csv in ``folder``): their columns
    are built whatever the selection rule says on today's data, as the model reads them."""
    importance = read_importance(folder)
    if importance is None or "feature" not in importance.columns:
        return []
    if "judged" in importance.columns:
        importance = importance[importance["judged"].fillna(True).astype(bool)]
    return [str(f) for f in importance["feature"]]


def champion_callables(model: Any) -> tuple[Any, Any]:
    """``(predict, explain)`` of the champion pyfunc on snapshot rows.

    ``predict(rows) -> ndarray`` of retention probabilities; ``explain(rows) -> Series`` of
    ``risk_drivers`` texts (same index as ``rows``; see :mod:`models.drivers`). Both pass the
    pyfunc only the columns its signature names.
    """
    schema = model.metadata.get_input_schema()
    columns = schema.input_names() if schema is not None else None

    def _rows(rows: pd.DataFrame) -> pd.DataFrame:
        return rows[columns] if columns else rows

    def predict(rows: pd.DataFrame):
        return pd.Series(model.predict(_rows(rows))).to_numpy()

    def explain(rows: pd.DataFrame) -> pd.Series:
        texts = model.predict(_rows(rows), params={"output": "risk_drivers"})
        return pd.Series(list(texts), index=rows.index, name="risk_drivers", dtype=object)

    return predict, explain


def score(cfg: Config, out: str | Path | None = None) -> dict:
    """The score flow's body, on a loaded configuration (see :func:`score_flow`)."""
    started = time.perf_counter()
    out_dir = Path(out).resolve() if out else cfg.out_dir
    with staged(out_dir) as staging:
        with Stage(1, STAGES, "load the champion"):
            best = tracking.champion(cfg, staging)
            thresholds = json.loads((staging / "thresholds.json").read_text())
            log.info("      model version %s from run %s", best["version"], best["run_id"])
        with Stage(2, STAGES, "validate the inputs"):
            inputs = inputs_step.validate_and_record(cfg, out_dir, validate_task, publishing=True)
        with Stage(3, STAGES, "build the rows at as_of") as st:
            tables = features_task(cfg, inputs, champion_features(staging))
            st.note("%d live accounts at %s", len(tables.current), inputs.as_of)
        with Stage(4, STAGES, "score the live accounts") as st:
            predict, explain = champion_callables(best["model"])
            scores = score_task(cfg, tables, thresholds, predict, inputs.as_of, explain)
            scores = score_step.as_published(cfg, tables, scores, inputs.as_of, out_dir)
            st.note(
                "%d accounts scored; stages: %s",
                len(scores),
                scores["stage"].value_counts().to_dict(),
            )
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
            importance = read_importance(staging)
            if importance is None:
                importance = pd.DataFrame()
            with naming_path(staging):
                score_step.write_outputs(
                    staging,
                    thresholds=thresholds,
                    importance=importance,
                    scores=scores,
                    validation=inputs.validation,
                    summary=summary,
                )
            logged = tracking.log_score_run(cfg, staging, summary)
            run_id = publish_tracked(cfg, staging, out_dir, logged, scores)
    log.info("done in %.1f s", time.perf_counter() - started)
    return {"out": str(out_dir), "scores": str(out_dir / "scores.csv"), "run_id": run_id}


@flow(name="score", log_prints=False, validate_parameters=False)
def score_flow(
    config: str | Config,
    out: str | None = None,
    engine: str | None = None,
    as_of: str | None = None,
) -> dict:
    """Score every live account with the current champion's thresholds and model.

    Publishes scores.csv and scores.parquet (with the champion's thresholds.json,
    importance.csv and report.html beside them) atomically, and appends to the history.
    ``config`` is the YAML file's path (a deployment) or an already loaded configuration.
    """
    check_served_run(config, out)  # a served run keeps to its config and output folder
    if not isinstance(config, Config):
        config = load_config(config, engine=engine, **{"data.as_of": as_of})
    return score(config, out)
