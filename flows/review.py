"""The framework review as a pipeline step, and the report rebuilt from a past MLflow run.

:func:`review_task` compares this run with the previous champion run in MLflow (fetched
before this run is logged, so the champion is still the previous one) and writes
``review.json`` and ``retention_curves.json`` into the staging folder, where the report and
the MLflow run pick them up. :func:`review_tags` are the MLflow tags of a review;
:func:`rebuild_report` renders ``report.html`` again from a past run's artifacts.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from flows.config import Config

log = logging.getLogger("milestones")

REVIEW_FILE = "review.json"
CURVES_FILE = "retention_curves.json"
#: The files of a run that the report reads (the others are optional).
REPORT_INPUTS = ("thresholds.json", "summary.json", "importance.csv", "scores.parquet")
OPTIONAL_INPUTS = (REVIEW_FILE, CURVES_FILE, "validation.json", "promotion.json")
_TAG_LIMIT = 4000


def _download(cfg: Config, run_id: str, names: tuple[str, ...], dest: Path) -> dict[str, Path]:
    """Download the named artifacts of a run into ``dest``; returns those that exist."""
    import mlflow
    from mlflow.artifacts import download_artifacts

    from flows.tracking import tracking_uri

    uri = tracking_uri(cfg)
    client = mlflow.MlflowClient(tracking_uri=uri)
    present = {a.path for a in client.list_artifacts(run_id)}
    got = {}
    for name in names:
        if name not in present:
            continue
        got[name] = Path(
            download_artifacts(run_id=run_id, artifact_path=name, dst_path=str(dest), tracking_uri=uri)
        )
    return got


def previous_champion(cfg: Config) -> dict | None:
    """The champion run's thresholds, importance and test metrics, or None without one.

    Must be called before this run is logged: the champion alias may move to it.
    """
    from flows.tracking import current_champion

    champion = current_champion(cfg)
    if champion is None:
        return None
    with tempfile.TemporaryDirectory(prefix="milestones-champion-") as tmp:
        files = _download(
            cfg, champion["run_id"], ("thresholds.json", "importance.csv", "summary.json"), Path(tmp)
        )
        if "thresholds.json" not in files:
            log.warning("      the champion run %s has no thresholds.json; review without it",
                        champion["run_id"])
            return None
        summary = json.loads(files["summary.json"].read_text()) if "summary.json" in files else {}
        return {
            "run_id": champion["run_id"],
            "version": champion["version"],
            "as_of": summary.get("as_of"),
            "thresholds": json.loads(files["thresholds.json"].read_text()),
            "importance": (
                pd.read_csv(files["importance.csv"]) if "importance.csv" in files else None
            ),
            "metrics": summary.get("metrics") or {"gbm": {"roc_auc": champion.get("gbm_roc_auc")}},
        }


def build_review(
    cfg: Config,
    tables: Any,
    thresholds: dict,
    importance: pd.DataFrame,
    metrics: dict,
    as_of: Any,
    previous: dict | None,
) -> tuple[dict, dict]:
    """The review (``review.json``) and the retention curves (``retention_curves.json``)."""
    from models.review import framework_review, retention_curves

    review = framework_review(
        tables.tenure,
        tables.snapshots,
        thresholds,
        importance,
        metrics,
        previous=previous,
        min_lift=cfg.review.min_lift,
        periods=cfg.models.test_snapshots,
        confidence=cfg.thresholds.confidence,
    )
    if review["previous"] is not None:
        review["previous"]["version"] = previous.get("version")
    review["as_of"] = str(as_of)
    review["settings"] = {
        "min_lift": cfg.review.min_lift,
        "cohort_periods": cfg.models.test_snapshots,
        "setup_min_lift": cfg.milestones.setup.min_lift,
        "setup_max_prevalence": cfg.milestones.setup.max_prevalence,
        "horizon_days": cfg.retention.horizon_days,
        "min_importance": cfg.importance.min_importance,
    }
    curves = retention_curves(
        tables.tenure,
        tables.snapshots,
        thresholds,
        as_of=as_of,
        setup_window_days=cfg.milestones.setup.window_days,
    )
    return review, curves


@task(name="review", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=2)
def review_task(cfg: Config, staging: Path, tables: Any, as_of: Any) -> dict:
    """Compare with the previous champion; write review.json and retention_curves.json."""
    staging = Path(staging)
    thresholds = json.loads((staging / "thresholds.json").read_text())
    summary = json.loads((staging / "summary.json").read_text())
    importance = pd.read_csv(staging / "importance.csv")
    previous = previous_champion(cfg)
    review, curves = build_review(
        cfg, tables, thresholds, importance, summary.get("metrics") or {}, as_of, previous
    )
    (staging / REVIEW_FILE).write_text(json.dumps(review, indent=2, default=str) + "\n")
    (staging / CURVES_FILE).write_text(json.dumps(curves) + "\n")
    for w in review["warnings"]:
        log.warning("      review warning: %s", w["message"])
    return review


def review_tags(review: dict) -> dict[str, str]:
    """MLflow tags of a review: its status, the warnings, the champion it was compared with."""
    warnings = review.get("warnings") or []
    text = "; ".join(w["message"] for w in warnings)
    if len(text) > _TAG_LIMIT:
        text = text[: _TAG_LIMIT - 3] + "..."
    tags = {
        "review_status": review.get("status", "ok"),
        "review_warnings": str(len(warnings)),
        "review_compared_with": (review.get("previous") or {}).get("run_id") or "none",
    }
    if text:
        tags["review_warning"] = text
    for kind in sorted({w["kind"] for w in warnings}):
        tags[f"review_warning_{kind}"] = ", ".join(
            w["milestone"] for w in warnings if w["kind"] == kind
        )
    return tags


def rebuild_report(cfg: Config, run_id: str, out: Path) -> Path:
    """Render ``report.html`` again from the artifacts of a past MLflow run.

    Parameters
    ----------
    cfg : Config
        For the tracking store.
    run_id : str
        The MLflow run.
    out : Path
        The report file (a path ending in ``.html``) or a folder that receives
        ``report.html``.

    Raises
    ------
    FileNotFoundError
        When the run lacks one of the files the report needs.
    """
    import mlflow

    from flows.publish import write_text_atomic
    from flows.report import render_report
    from flows.tracking import tracking_uri

    try:
        mlflow.MlflowClient(tracking_uri=tracking_uri(cfg)).get_run(run_id)
    except Exception as exc:
        raise FileNotFoundError(
            f"MLflow run {run_id!r} not found in {tracking_uri(cfg)}"
        ) from exc
    out = Path(out)
    target = out if out.suffix.lower() in (".html", ".htm") else out / "report.html"
    tmp = Path(tempfile.mkdtemp(prefix="milestones-report-"))
    try:
        files = _download(cfg, run_id, REPORT_INPUTS + OPTIONAL_INPUTS, tmp)
        missing = [n for n in REPORT_INPUTS if n not in files]
        if missing:
            raise FileNotFoundError(
                f"MLflow run {run_id} has no artifact {missing[0]!r}; cannot rebuild its report"
            )
        folder = files["thresholds.json"].parent
        for name, path in files.items():
            if path.parent != folder:
                shutil.copy(path, folder / name)
        write_text_atomic(target, render_report(folder, run_id=run_id))
        target.chmod(0o644)  # a report is for readers (the atomic write made it private)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
