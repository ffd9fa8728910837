"""The framework review as a pipeline step, and the report rebuilt from a past run.

:func:`write_review` measures each milestone on a later cohort the thresholds were not
derived on (the cut of :func:`flows.steps.train.review_cohorts`; ``review.json`` records both
periods under ``periods``), compares this run with the previous champion run (its outputs
fetched by :func:`flows.store.tracking.previous_champion` before this run is logged, so the
champion is still the previous one) and writes ``review.json`` and ``retention_curves.json``
into the staging folder, where the report and the MLflow run pick them up. :func:`rebuild_report`
renders ``report.html`` again from a past run's files.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from flows.config import Config
from flows.errors import NotFoundError
from flows.store.publish import IMPORTANCE_FILES, read_importance

log = logging.getLogger("milestones")

REVIEW_FILE = "review.json"
CURVES_FILE = "retention_curves.json"
#: The files of a run that the report reads (the others are optional).
REPORT_INPUTS = ("thresholds.json", "summary.json", "scores.parquet")
OPTIONAL_INPUTS = (REVIEW_FILE, CURVES_FILE, "validation.json", "promotion.json")
#: one of these (the Parquet copy since it exists, the CSV in older runs)
IMPORTANCE_INPUTS = IMPORTANCE_FILES


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


def write_review(
    cfg: Config, staging: Path, tables: Any, as_of: Any, previous: dict | None
) -> dict:
    """Compare with the previous champion; write review.json and retention_curves.json.

    ``previous`` is the champion run's outputs (:func:`flows.store.tracking.previous_champion`),
    fetched before this run is logged; None when there is no champion yet.
    """
    staging = Path(staging)
    thresholds = json.loads((staging / "thresholds.json").read_text())
    summary = json.loads((staging / "summary.json").read_text())
    importance = read_importance(staging)
    review, curves = build_review(
        cfg, tables, thresholds, importance, summary.get("metrics") or {}, as_of, previous
    )
    (staging / REVIEW_FILE).write_text(json.dumps(review, indent=2, default=str) + "\n")
    (staging / CURVES_FILE).write_text(json.dumps(curves) + "\n")
    for w in review["warnings"]:
        log.warning("      review warning: %s", w["message"])
    return review


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
    NotFoundError
        When the run does not exist or lacks one of the files the report needs.
    """
    from flows.report.render import render_report
    from flows.store.publish import write_text_atomic
    from flows.store.tracking import download_run_files, require_run

    require_run(cfg, run_id)
    out = Path(out)
    target = out if out.suffix.lower() in (".html", ".htm") else out / "report.html"
    tmp = Path(tempfile.mkdtemp(prefix="milestones-report-"))
    try:
        files = download_run_files(
            cfg, run_id, REPORT_INPUTS + IMPORTANCE_INPUTS + OPTIONAL_INPUTS, tmp
        )
        missing = [n for n in REPORT_INPUTS if n not in files]
        if not any(n in files for n in IMPORTANCE_INPUTS):
            missing.append(IMPORTANCE_INPUTS[1])
        if missing:
            raise NotFoundError(
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
