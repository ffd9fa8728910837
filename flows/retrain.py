"""The retrain flow: validate -> features -> train -> thresholds -> score -> review -> publish.

A thin Prefect flow: each task wraps one step of :mod:`flows.steps` and hands plain values on.
Everything is written into a staging folder first (under ``<out>.lock``: one writer per
folder). Then, in this order (:func:`publish_tracked`): the MLflow run is logged from the
folder and its model registered; the history is recorded and the folder renamed into place
(all or nothing), with the side file ``<out>.validation.json``; only then does the champion
alias move and the run end FINISHED. A failure after logging marks the run FAILED and leaves
the champion where it was.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows.config import Config, load_config
from flows.runtime import Stage
from flows.served import check_served_run
from flows.steps import inputs as inputs_step
from flows.steps import review as review_step
from flows.steps import score as score_step
from flows.steps import tables as tables_step
from flows.steps import train as train_step
from flows.store import history, tracking
from flows.store.publish import naming_path, publish, staged, write_text_atomic

log = logging.getLogger("milestones")
STAGES = 6

validate_task = task(inputs_step.open_inputs, name="validate", cache_policy=NO_CACHE)
features_task = task(tables_step.build_feature_tables, name="features", cache_policy=NO_CACHE)
train_task = task(train_step.train, name="train", cache_policy=NO_CACHE)
thresholds_task = task(train_step.derive, name="thresholds", cache_policy=NO_CACHE)
score_task = task(score_step.compute_scores, name="score", cache_policy=NO_CACHE)


@task(name="review", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=2)
def review_task(cfg: Config, staging: Path, tables: Any, as_of: Any) -> dict:
    previous = tracking.previous_champion(cfg)
    return review_step.write_review(cfg, staging, tables, as_of, previous)


@task(name="publish", cache_policy=NO_CACHE)
def publish_task(
    cfg: Config, staging: Path, out: Path, trained: dict, summary: dict, scores: Any
) -> str:
    from flows.report.render import write_report

    with naming_path(staging / "report.html"):
        write_report(staging)
    logged = tracking.log_run(cfg, staging, trained, summary)
    return publish_tracked(cfg, staging, out, logged, scores)


def publish_tracked(cfg: Config, staging: Path, out: Path, logged: dict, scores: Any) -> str:
    """Record the history, publish the folder and its validation side file, then finish the
    logged MLflow run (the champion moves now, when its gate passed); returns the run id.

    On any failure the run is marked FAILED and the champion stays where it was.
    """
    hist = cfg.history_file(out)
    try:
        history.record(hist, scores, logged["run_id"], output=history.output_key(hist, out))
        validation = (staging / "validation.json").read_text()
        publish(staging, out)
        write_text_atomic(inputs_step.validation_sidecar(out), validation)
    except BaseException as exc:
        tracking.fail_run(cfg, logged["run_id"], exc)
        raise
    tracking.finish_run(cfg, logged)
    return logged["run_id"]


def retrain(cfg: Config, out: str | Path | None = None) -> dict:
    """The retrain flow's body, on a loaded configuration (see :func:`retrain_flow`)."""
    from models.stats import fmt_number
    from models.verdict import verdict_lines

    started = time.perf_counter()
    out_dir = Path(out).resolve() if out else cfg.out_dir
    with staged(out_dir) as staging:
        with Stage(1, STAGES, "validate the inputs") as st:
            inputs = inputs_step.validate_and_record(cfg, out_dir, validate_task, publishing=True)
            st.note("all rules pass; as_of %s", inputs.as_of)
        with Stage(2, STAGES, "build the feature tables") as st:
            tables = features_task(cfg, inputs, st)
        with Stage(3, STAGES, "train the retention models and rank features") as st:
            trained = train_task(cfg, tables)
            auc = trained["metrics"]
            st.note(
                "test ROC AUC: gbm %.3f, rf %.3f, plan-and-seats baseline %.3f (%s rows sampled)",
                auc["gbm"]["roc_auc"],
                auc["rf"]["roc_auc"],
                auc["baseline"]["roc_auc"],
                trained["rows"]["sampled"],
            )
            beats = trained["usage_vs_baseline"]
            st.note(
                "usage %s plan and seats: ROC AUC difference %s (interval %s to %s)",
                "beats" if beats["beats"] else "does not beat",
                *(fmt_number(v) for v in (beats["auc_difference"], *beats["ci"])),
            )
        with Stage(4, STAGES, "derive the milestone thresholds") as st:
            thresholds = thresholds_task(cfg, tables)
            st.note(
                "activation %s (%s), utilization %s (%s), setup steps %s (%s), maturity %s of %d "
                "categories (%s)",
                fmt_number(thresholds["activation"]["threshold"]),
                thresholds["activation"]["status"],
                fmt_number(thresholds["utilization"]["threshold"]),
                thresholds["utilization"]["status"],
                thresholds["setup"]["steps"],
                thresholds["setup"]["status"],
                thresholds["maturity"]["min_categories"],
                len(thresholds["maturity"]["categories"]),
                thresholds["maturity"]["status"],
            )
        with Stage(5, STAGES, "score the live accounts") as st:
            models = trained["models"]
            scores = score_task(
                cfg, tables, thresholds, models.predict_retention, inputs.as_of, models.explain
            )
            scores = score_step.as_published(cfg, tables, scores, inputs.as_of, out_dir)
            st.note(
                "%d accounts scored; stages: %s",
                len(scores),
                scores["stage"].value_counts().to_dict(),
            )
        with Stage(6, STAGES, "publish and track") as st:
            summary = score_step.run_summary(cfg, inputs, tables, trained, scores)
            with naming_path(staging):
                score_step.write_outputs(
                    staging,
                    thresholds=thresholds,
                    importance=trained["importance"],
                    scores=scores,
                    validation=inputs.validation,
                    summary=summary,
                    calibration=trained["calibration"],
                )
                inputs_step.write_data_docs(staging, inputs)  # GE's HTML pages of validation
            review_task(cfg, staging, tables, inputs.as_of)  # against the champion before it
            run_id = publish_task(cfg, staging, out_dir, trained, summary, scores)
            st.note("MLflow run %s", run_id)
    log.info("done in %.1f s", time.perf_counter() - started)
    return {
        "out": str(out_dir),
        "report": str(out_dir / "report.html"),
        "scores": str(out_dir / "scores.csv"),
        "run_id": run_id,
        # what the data could and could not confirm: the run summary's first lines
        "verdict": verdict_lines(thresholds, summary.get("usage_vs_baseline")),
    }


@flow(name="pipeline", log_prints=False, validate_parameters=False)
def retrain_flow(
    config: str | Config,
    out: str | None = None,
    engine: str | None = None,
    as_of: str | None = None,
) -> dict:
    """Validate the inputs, build the feature tables, train, derive thresholds, score, publish.

    Parameters
    ----------
    config : str or Config
        The YAML configuration's path (a deployment), or the configuration the command line
        has loaded already (then ``engine`` and ``as_of`` were applied by it).
    out : str, optional
        Output folder (default: ``out`` of the configuration, else ``out/<config folder>``).
    engine : {"duckdb", "spark"}, optional
        Overrides the configuration's engine.
    as_of : str, optional
        Overrides ``data.as_of``.
    """
    check_served_run(config, out)  # a served run keeps to its config and output folder
    if not isinstance(config, Config):
        config = load_config(config, engine=engine, **{"data.as_of": as_of})
    return retrain(config, out)
