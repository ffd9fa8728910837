"""Step 5: score the live accounts; write the output files into the staging folder."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from flows.config import Config
from flows.steps.tables import FeatureTables

PREDICT_BATCH = 50_000


def compute_scores(
    cfg: Config,
    tables: FeatureTables,
    thresholds: dict,
    predict: Any,
    as_of: dt.datetime,
    explain: Any = None,
) -> pd.DataFrame:
    """Milestone flags in the engine, then the next step, the model's probability and the
    reasons behind it.

    ``predict`` maps a frame of snapshot rows to retention probabilities; ``explain`` maps it
    to each row's ``risk_drivers`` text (a Series on the frame's index). Both are called in
    batches of 50,000 rows.
    """
    from features.flags import milestone_flags
    from models.scoring import finish_scores, flag_parameters

    m = cfg.milestones
    flags = milestone_flags(
        tables.daily,
        tables.current_table,
        as_of=as_of,
        setup_window_days=m.setup.window_days,
        activation_event=m.activation.event,
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
    scores = finish_scores(
        flags,
        thresholds,
        as_of=as_of,
        activation_window_days=m.activation.window_days,
        activation_event=m.activation.event,
        utilization_event=m.utilization.event,
        period_days=m.utilization.period_days,
        retention_probability=proba,
    )
    scores["risk_drivers"] = ""
    if explain is not None and len(tables.current):
        texts = pd.concat(
            [
                pd.Series(explain(rows), index=rows.index, dtype=object)
                for rows in (
                    tables.current.iloc[i : i + PREDICT_BATCH]
                    for i in range(0, len(tables.current), PREDICT_BATCH)
                )
            ]
        )
        by_account = pd.Series(
            texts.to_numpy(), index=tables.current["account_id"].astype(str).to_numpy()
        )
        scores["risk_drivers"] = scores["account_id"].map(by_account).fillna("").to_numpy()
    return scores


def contract_columns(present: Sequence[str]) -> list[str]:
    """The output contract's columns among ``present``, in the contract's order: those of
    :data:`models.scoring.SCORE_COLUMNS`, ``risk_drivers``, then the milestone dates and
    on-time flags (:data:`models.scoring.REACHED_COLUMNS`)."""
    from models.scoring import REACHED_COLUMNS, SCORE_COLUMNS

    lead = dict.fromkeys([*SCORE_COLUMNS, "risk_drivers", *REACHED_COLUMNS])
    return [c for c in lead if c in set(present)]


def with_account_columns(
    scores: pd.DataFrame, accounts: pd.DataFrame, columns: Sequence[str]
) -> pd.DataFrame:
    """The scores with the configured pass-through account columns (``scores.columns``)
    placed right after the contract columns, their values taken from ``accounts`` (one row
    per account, keyed by ``account_id``: the feature tables' tenure rows carry every account
    column). The names are kept in ``attrs["account_columns"]`` for :func:`write_outputs`.

    Raises
    ------
    ConfigError
        When a column is already a score column, or ``accounts`` lacks it.
    """
    from flows.errors import ConfigError

    columns = list(columns)
    if not columns:
        return scores
    clash = [c for c in columns if c in scores.columns]
    missing = [c for c in columns if c not in accounts.columns]
    if clash or missing:
        which = "already a score column" if clash else "not an account column"
        raise ConfigError(f"scores.columns: {', '.join(clash or missing)}: {which}")
    values = (
        accounts[["account_id", *columns]]
        .assign(account_id=accounts["account_id"].astype(str))
        .drop_duplicates("account_id", keep="last")
        .set_index("account_id")
        .reindex(scores["account_id"].astype(str).to_numpy())
    )
    out = scores.copy()
    for c in columns:
        out[c] = values[c].array
    contract = contract_columns(scores.columns)
    rest = [c for c in scores.columns if c not in contract]
    out = out[contract + columns + rest]
    out.attrs["account_columns"] = columns
    return out


def as_published(
    cfg: Config, tables: FeatureTables, scores: pd.DataFrame, as_of: dt.datetime, out_dir: Path
) -> pd.DataFrame:
    """The scores as they are published into ``out_dir``: the pass-through account columns
    (``scores.columns``) and, from the score history, each account's ``previous_stage`` and
    ``movement`` (only the rows of this output folder count)."""
    from flows.store import history

    scores = with_account_columns(scores, tables.tenure, cfg.scores.columns)
    hist = cfg.history_file(out_dir)
    return history.with_previous_stage(hist, scores, as_of, history.output_key(hist, out_dir))


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
    """Write the run's files into ``staging``; every CSV through
    :func:`flows.store.publish.write_csv` (formulas neutralised, booleans ``true``/``false``).

    ``scores`` columns: the contract's, then the pass-through account columns (named by
    ``scores.attrs["account_columns"]``, see :func:`with_account_columns`), then the rest.
    Computed float columns are written with 6 significant digits, pass-through ones in full.
    """
    from flows.store.publish import write_csv

    (staging / "thresholds.json").write_text(
        json.dumps(thresholds, indent=2, sort_keys=False) + "\n"
    )
    write_csv(importance, staging / "importance.csv")
    importance.to_parquet(staging / "importance.parquet", index=False)  # raw names, for readers
    passed = [c for c in scores.attrs.get("account_columns", []) if c in scores.columns]
    contract = contract_columns(scores.columns)
    first = contract + [c for c in passed if c not in contract]
    ordered = scores[first + [c for c in scores.columns if c not in first]]
    csv = ordered.copy()
    csv["as_of"] = pd.to_datetime(csv["as_of"]).dt.strftime("%Y-%m-%d")
    compact = {c: "%.6g" for c in csv.columns if c not in passed}
    write_csv(csv, staging / "scores.csv", float_format=compact)
    ordered.to_parquet(staging / "scores.parquet", index=False)
    if calibration is not None:
        write_csv(calibration, staging / "calibration.csv")
    (staging / "validation.json").write_text(json.dumps(validation, indent=2, default=str) + "\n")
    (staging / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")


def run_summary(
    cfg: Config, inputs: Any, tables: FeatureTables, trained: dict, scores: pd.DataFrame
) -> dict:
    """``summary.json`` of a retrain run: counts, periods, metrics and settings, and whether
    product usage predicts retention better than plan and seats alone:
    ``usage_beats_baseline`` (true or false) with ``usage_vs_baseline`` (the test-set ROC AUC
    difference and its paired account-level bootstrap interval,
    :func:`models.verdict.usage_vs_baseline`)."""
    comparison = trained.get("usage_vs_baseline") or {}
    return {
        "config": cfg.source.name if cfg.source else None,  # a name, no machine path
        "engine": cfg.engine,
        "as_of": str(inputs.as_of),
        "period": tables.period,
        "accounts": len(tables.tenure),
        "events": tables.n_events,
        "distinct_events": tables.n_names or len(tables.events),
        "judged_features": len(tables.events),
        "snapshot_rows": tables.sample.total_rows if tables.sample else len(tables.snapshots),
        "snapshot_dates": [str(d) for d in tables.dates],
        "live_accounts": len(scores),
        "metrics": trained["metrics"],
        "usage_beats_baseline": bool(comparison.get("beats", False)),
        "usage_vs_baseline": comparison or None,
        "rows": trained["rows"],
        "validation_ok": True,
        "churn": {
            k: v
            for k, v in inputs.validation.get("churn", {"mode": "column"}).items()
            if k != "curve"
        },
        "prevalence_band": list(cfg.importance.prevalence_band),
        "seed": cfg.seed,
    }
