"""Step 5: score the live accounts; write the output files into the staging folder."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from flows.config import Config
from flows.steps.tables import FeatureTables

PREDICT_BATCH = 50_000


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
            np.asarray(predict(tables.current.iloc[i : i + PREDICT_BATCH]), dtype=float)
            for i in range(0, len(tables.current), PREDICT_BATCH)
        ]
        proba = pd.Series(
            np.concatenate(parts), index=tables.current["account_id"].astype(str).to_numpy()
        )
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

    (staging / "thresholds.json").write_text(
        json.dumps(thresholds, indent=2, sort_keys=False) + "\n"
    )
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


def run_summary(
    cfg: Config, inputs: Any, tables: FeatureTables, trained: dict, scores: pd.DataFrame
) -> dict:
    """``summary.json`` of a retrain run: counts, periods, metrics and settings."""
    return {
        "config": str(cfg.source) if cfg.source else None,
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
