"""The backtest: derive the milestones and the models at past origins, then measure what
happened afterwards (``milestones backtest``).

For each origin (the newest the retention horizon before ``as_of``, the others ``k`` steps
before it, :func:`models.backtest.origin_dates`), the
inputs are trimmed at the origin in the engine (:func:`trim_at`): accounts that signed up
after it and events after it are left out, and a churn after it is not known yet. The
feature tables, the models and the thresholds are then built on the trimmed inputs by the
very steps of ``milestones run`` (:mod:`flows.steps.tables`, :mod:`flows.steps.train`,
:func:`flows.steps.score.compute_scores`), nothing is published to the model registry, and
the accounts live at the origin are measured against their real outcome ``horizon_days``
later (:func:`models.backtest.measure_origin`). ``backtest.json`` and ``backtest.html``
are published into the output folder atomically (all or nothing).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from pathlib import Path
from typing import Any

from flows.config import Config
from flows.errors import ConfigError, InvalidInputError
from flows.runtime import Stage
from flows.steps.inputs import Inputs

log = logging.getLogger("milestones")

BACKTEST_FILE = "backtest.json"
BACKTEST_REPORT = "backtest.html"
#: stages of one origin: feature tables; models and thresholds; scores and measurement
ORIGIN_STAGES = 3


def trim_at(accounts: Any, events: Any, origin: Any) -> tuple[Any, Any]:
    """The typed input tables as they stood at ``origin`` (Ibis expressions, in the engine).

    Accounts that signed up after ``origin`` are left out; a ``churned_at`` after it is
    null (not churned yet); events after it are left out.

    Parameters
    ----------
    accounts, events : ibis Table
        Typed accounts and events (:func:`features.io.typed_accounts`, ``typed_events``).
    origin : datetime, date or text
        The origin (naive UTC, or converted to it).
    """
    import ibis

    from features.values import naive_utc

    at = ibis.literal(naive_utc(origin), "timestamp")
    kept = accounts.filter(accounts.signup_at <= at)
    kept = kept.mutate(
        churned_at=ibis.ifelse(kept.churned_at > at, ibis.null("timestamp"), kept.churned_at)
    )
    return kept, events.filter(events.occurred_at <= at)


def trimmed_inputs(cfg: Config, inputs: Inputs, origin: dt.datetime) -> Inputs:
    """The inputs at ``origin``; with ``retention.churn: inactivity`` the churn dates are
    derived again from the events up to the origin (silence after it is not known yet)."""
    accounts, events = trim_at(inputs.accounts, inputs.events, origin)
    validation: dict = {}
    if cfg.retention.churn == "inactivity":
        from features.churn import derive_inactivity_churn

        accounts, churn = derive_inactivity_churn(
            inputs.con,
            accounts,
            events,
            as_of=origin,
            gap_days=cfg.retention.inactivity_gap_days,
        )
        validation = {"churn": churn.to_dict()}
    return Inputs(inputs.con, accounts, events, origin, validation)


def _compact_thresholds(thresholds: dict) -> dict:
    """Each milestone's rule, threshold and interval (the evidence stays out)."""
    out = {}
    for name, block in thresholds.items():
        out[name] = {k: block.get(k) for k in ("rule", "threshold", "ci")}
    out["setup"]["steps"] = thresholds["setup"].get("steps")
    out["maturity"]["min_categories"] = thresholds["maturity"].get("min_categories")
    out["maturity"]["categories"] = {
        n: {"threshold": c.get("threshold"), "ci": c.get("ci")}
        for n, c in (thresholds["maturity"].get("categories") or {}).items()
    }
    return out


def _train_if_possible(cfg: Config, tables: Any, day: dt.date) -> tuple[dict | None, str | None]:
    """The trained models, or None and the reason when the history up to the origin is too
    short to train and test them out of time (the milestones are still derived and
    measured: they need less history)."""
    from flows.steps import train as train_step

    try:
        return train_step.train(cfg, tables), None
    except InvalidInputError as exc:
        log.warning("      origin %s: no model: %s", day, exc)
        return None, str(exc)


def _derive(cfg: Config, tables: Any) -> dict:
    """The thresholds as ``milestones run`` derives them; a history too short to derive them
    on is invalid input (exit 2), not a crash."""
    from flows.steps import train as train_step

    try:
        return train_step.derive(cfg, tables)
    except InvalidInputError:
        raise
    except ValueError as exc:
        raise InvalidInputError(
            f"the milestones cannot be derived on the history {tables.period[0]} to "
            f"{tables.period[1]}: {exc}. The history before this origin is too short: use fewer "
            "--origins or a smaller --step-months."
        ) from None


def _nan(value: Any) -> float:
    return float("nan") if value is None else float(value)


def _note_measured(stage: Stage, measured: dict) -> None:
    """Progress lines: each milestone's lift at this origin, and the model against the
    baseline."""
    for name, block in measured["milestones"].items():
        checks = [("retention", block)]
        if block.get("activation"):
            checks.append(("activation", block["activation"]))
        for outcome, b in checks:
            stage.note(
                "%s: %d of %d reached it; %s %.3f vs %.3f, lift %.2f [%.2f, %.2f]%s",
                name,
                b["n_reached"],
                b["n"],
                outcome,
                *(_nan(v) for v in (b["rate_reached"], b["rate_not_reached"], b["lift"])),
                *(_nan(v) for v in b["lift_ci"]),
                f" ({b['cohort']})" if "cohort" in b else "",
            )
    model = measured["model"]
    if model is not None:
        stage.note(
            "model ROC AUC %.3f vs plan-and-seats baseline %.3f on the real outcome",
            _nan(model["auc_model"]),
            _nan(model["auc_baseline"]),
        )


def backtest_origin(
    cfg: Config,
    inputs: Inputs,
    origin: dt.datetime,
    outcomes: Any,
    tenure: Any,
    stages: tuple[int, int],
) -> dict:
    """Derive the milestones and models on the inputs trimmed at ``origin``, then measure
    the accounts live at it against what really happened.

    ``outcomes`` holds the full accounts (``account_id``, ``churned_at``), ``tenure`` the
    tenure rows built on the full data (setup is checked against activation); ``stages`` is
    the number of this origin's first progress stage and the total.
    """
    from flows.steps import score as score_step
    from flows.steps import tables as tables_step
    from models.backtest import measure_origin, retained_after, setup_activation_lift

    day = origin.date()
    first_stage, total = stages
    m = cfg.milestones
    trimmed = trimmed_inputs(cfg, inputs, origin)
    if not int(trimmed.accounts.count().execute()):
        raise InvalidInputError(
            f"at the backtest origin {day}: no account had signed up yet, so there is nothing "
            "to derive the milestones on. Use fewer --origins or a smaller --step-months."
        )
    try:
        with Stage(first_stage, total, f"origin {day}: build the feature tables") as st:
            tables = tables_step.build_feature_tables(cfg, trimmed, st)
        with Stage(first_stage + 1, total, f"origin {day}: train and derive thresholds") as st:
            trained, untrained = _train_if_possible(cfg, tables, day)
            thresholds = _derive(cfg, tables)
            if trained is not None:
                st.note(
                    "test ROC AUC gbm %.3f, plan-and-seats baseline %.3f",
                    trained["metrics"]["gbm"]["roc_auc"],
                    trained["metrics"]["baseline"]["roc_auc"],
                )
            st.note(
                "activation %s, utilization %.2f, setup steps %s, maturity %s",
                thresholds["activation"]["threshold"],
                thresholds["utilization"]["threshold"],
                thresholds["setup"]["steps"],
                thresholds["maturity"]["min_categories"],
            )
    except InvalidInputError as exc:
        raise InvalidInputError(f"at the backtest origin {day}: {exc}", exc.details) from None
    with Stage(first_stage + 2, total, f"origin {day}: measure what happened since") as st:
        models = trained["models"] if trained is not None else None
        scores = score_step.compute_scores(
            cfg, tables, thresholds, models and models.predict_retention, trimmed.as_of
        )
        live = scores
        if models is not None and len(tables.current):
            baseline = dict(
                zip(
                    tables.current["account_id"].astype(str),
                    models.predict_retention(tables.current, model="baseline"),
                    strict=True,
                )
            )
            live = scores.assign(
                baseline_probability=scores["account_id"].astype(str).map(baseline)
            )
        setup_check = setup_activation_lift(
            tenure,
            live["account_id"],
            origin,
            thresholds,
            setup_window_days=m.setup.window_days,
            activation_window_days=m.activation.window_days,
            confidence=cfg.thresholds.confidence,
        )
        measured = measure_origin(
            live,
            retained_after(outcomes, origin, cfg.retention.horizon_days),
            confidence=cfg.thresholds.confidence,
            n_bootstrap=cfg.thresholds.bootstrap,
            random_state=cfg.seed,
            setup_activation=setup_check,
        )
        _note_measured(st, measured)
    return {
        "origin": str(day),
        "period": list(tables.period),
        "accounts": len(tables.tenure),
        "live_accounts": len(tables.current),
        "outcome_date": str((origin + dt.timedelta(days=cfg.retention.horizon_days)).date()),
        "thresholds": _compact_thresholds(thresholds),
        "test_metrics": {name: trained["metrics"][name] for name in ("gbm", "rf", "baseline")}
        if trained is not None
        else None,
        "untrained": untrained,
        "measured": measured,
    }


def plan_origins(cfg: Config, as_of: dt.datetime, origins: int | None, step: int | None) -> list:
    """The origins, oldest first; a configuration error (exit 2) when they do not fit."""
    from models.backtest import DEFAULT_ORIGINS, DEFAULT_STEP_MONTHS, origin_dates

    try:
        return origin_dates(
            as_of,
            origins=DEFAULT_ORIGINS if origins is None else origins,
            step_months=DEFAULT_STEP_MONTHS if step is None else step,
            horizon_days=cfg.retention.horizon_days,
        )
    except ValueError as exc:
        raise ConfigError(f"backtest: {exc}") from None


def run_backtest(
    cfg: Config, out: Path, origins: int | None = None, step_months: int | None = None
) -> dict:
    """Backtest at each origin and publish ``backtest.json`` and ``backtest.html`` into
    ``out`` (all or nothing).

    Parameters
    ----------
    cfg : Config
        The loaded configuration (its ``as_of`` or the latest event is the end).
    out : Path
        The output folder (replaced as a whole).
    origins, step_months : int, optional
        Number of origins and months between them (defaults:
        :data:`models.backtest.DEFAULT_ORIGINS`, :data:`~models.backtest.DEFAULT_STEP_MONTHS`).

    Raises
    ------
    ConfigError
        When the retention horizon does not fit between the newest origin and ``as_of``.
    InvalidInputError
        When the inputs break the data contract, or an origin has too little history.
    """
    from features.tables import materialise
    from features.values import jsonable
    from flows.report.backtest import render_backtest
    from flows.steps.inputs import open_inputs
    from flows.steps.tables import build_feature_tables
    from flows.store.publish import naming_path, publish, staged
    from models.backtest import DEFAULT_ORIGINS, DEFAULT_STEP_MONTHS, summarise
    from models.backtest import threshold_stability as stability

    started = time.perf_counter()
    out = Path(out).resolve()
    planned = DEFAULT_ORIGINS if origins is None else max(int(origins), 1)
    with Stage(1, 3 + ORIGIN_STAGES * planned, "validate the inputs") as st:
        inputs = open_inputs(cfg)
        dates = plan_origins(cfg, inputs.as_of, origins, step_months)
        st.note("as_of %s; origins %s", inputs.as_of, ", ".join(str(d.date()) for d in dates))
    # the full accounts under a name of their own: deriving churn again at an origin
    # (retention.churn: inactivity) replaces the engine table they may come from
    full = materialise(inputs.con, "ms_backtest_accounts", inputs.accounts)
    inputs = Inputs(inputs.con, full, inputs.events, inputs.as_of, inputs.validation)
    total = 3 + ORIGIN_STAGES * len(dates)
    with Stage(2, total, "read what happened after the origins") as st:
        outcomes = full.select("account_id", "churned_at").to_pandas()
        tenure = build_feature_tables(cfg, inputs, training=False).tenure
        st.note("%d accounts followed up to %s", len(outcomes), inputs.as_of)
    results = [
        backtest_origin(cfg, inputs, origin, outcomes, tenure, (3 + ORIGIN_STAGES * i, total))
        for i, origin in enumerate(dates)
    ]
    result = jsonable(
        {
            "config": cfg.source.name if cfg.source else None,
            "engine": cfg.engine,
            "as_of": str(inputs.as_of),
            "horizon_days": cfg.retention.horizon_days,
            "step_months": DEFAULT_STEP_MONTHS if step_months is None else step_months,
            "seed": cfg.seed,
            "confidence": cfg.thresholds.confidence,
            "bootstrap": cfg.thresholds.bootstrap,
            "origins": results,
            "stability": stability({r["origin"]: r["thresholds"] for r in results}),
            "summary": summarise(results),
        }
    )
    stage = Stage(total, total, "publish backtest.json and backtest.html")
    with stage, staged(out) as staging, naming_path(staging):
        (staging / BACKTEST_FILE).write_text(json.dumps(result, indent=2) + "\n")
        (staging / BACKTEST_REPORT).write_text(render_backtest(result))
        publish(staging, out)
    log.info("done in %.1f s", time.perf_counter() - started)
    return {"out": str(out), "json": str(out / BACKTEST_FILE), "report": str(out / BACKTEST_REPORT)}
