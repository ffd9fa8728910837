"""The report page: render a run folder's files into ``report.html``.

The report reads the files of one run folder: ``thresholds.json``, ``summary.json``,
``importance.csv`` and ``scores.parquet`` (required), and ``review.json``,
``retention_curves.json``, ``validation.json`` and ``promotion.json`` when they exist (a
section whose data is missing says so). The page is the template ``report.html.j2`` beside
this module, rendered with autoescaping on: every name that comes from the data (events,
plans, accounts, messages) is escaped; only the charts, drawn by :mod:`flows.report.charts`,
are inserted as markup.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from flows.report import charts
from flows.report.format import (
    MILESTONE_WORDS,
    MODEL_WORDS,
    REASON_WORDS,
    STAGE_WORDS,
    VERDICT_COLOURS,
    VERDICT_WORDS,
    fmt_3,
    fmt_ci,
    fmt_count,
    fmt_importance,
    fmt_lift,
    fmt_lift_ci,
    fmt_number,
    fmt_pct,
    fmt_signed,
    page_environment,
)
from flows.steps.inputs import DATA_DOCS
from flows.store.publish import read_importance

#: The page template, beside this module (package data: ``flows/report/*.j2``).
TEMPLATE = "report.html.j2"

# the names the template calls, as it has always called them
_ENV = page_environment(
    fmt=fmt_number,
    fmt_ci=fmt_ci,
    pct=fmt_pct,
    num=fmt_count,
    fmt3=fmt_3,
    signed=fmt_signed,
    lift=fmt_lift,
    lift_ci=fmt_lift_ci,
    imp=fmt_importance,
    colours=VERDICT_COLOURS,
    verdict_words=VERDICT_WORDS,
    model_words=MODEL_WORDS,
    reasons=REASON_WORDS,
)


# ----------------------------------------------------------------------------- the tables


def _stage_table(scores: pd.DataFrame) -> list[dict]:
    from models.scoring import STAGES

    counts = scores["stage"].astype(str).value_counts()
    order = list(STAGES) + [s for s in counts.index if s not in STAGES]
    total = max(1, int(counts.sum()))
    return [
        {
            "stage": s,
            "meaning": STAGE_WORDS.get(s, ""),
            "n": int(counts.get(s, 0)),
            "share": int(counts.get(s, 0)) / total,
        }
        for s in order
    ]


def _curve_at(c: dict, month: int) -> float | None:
    months = c.get("months") or []
    if month in months:
        return c["share"][months.index(month)]
    return None


def _curve_rows(curves: dict) -> list[dict]:
    rows = []
    for name in ("setup", "activation", "utilization", "maturity"):
        b = curves.get(name)
        if not b:
            continue
        r, n = b.get("reached") or {}, b.get("not_reached") or {}
        rows.append(
            {
                "title": MILESTONE_WORDS[name],
                "anchor": b.get("anchor"),
                "n1": r.get("n"),
                "r6": _curve_at(r, 6),
                "r12": _curve_at(r, 12),
                "n0": n.get("n"),
                "n6": _curve_at(n, 6),
                "n12": _curve_at(n, 12),
            }
        )
    return rows


_COHORT_KEYS = ("n_reached", "n_not_reached", "rate_reached", "rate_not_reached", "lift", "lift_ci")


def _cohort_rows(review: dict) -> list[dict]:
    rows = []
    bound = review.get("min_lift", 1.0)
    for name in ("setup", "activation", "utilization", "maturity"):
        block = (review.get("cohort") or {}).get(name)
        if not block:
            continue
        checked = block.get("checked", "retention")
        parts = [("retention", block)]
        if block.get("activation"):
            parts.append(("activation", block["activation"]))
        for outcome, b in parts:
            lift = b.get("lift")
            enough = b.get("enough_accounts", True)
            rows.append(
                {
                    "title": MILESTONE_WORDS[name],
                    "outcome": outcome,
                    **{k: b.get(k) for k in _COHORT_KEYS},
                    "checked": outcome == checked,
                    "enough": enough,
                    "low": enough and lift is not None and lift < bound,
                }
            )
    return rows


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else None


def _overview(thresholds: dict, scores: pd.DataFrame) -> list[dict]:
    share_now = {
        "setup": "setup_complete",
        "activation": "activated",
        "utilization": "utilized",
        "maturity": "mature",
    }
    rows = []
    for name in ("setup", "activation", "utilization", "maturity"):
        m = thresholds[name]
        ev = m.get("evidence") or {}
        col = share_now[name]
        if name == "setup":
            w, wo, lift = (
                ev.get("activation_rate_complete"),
                ev.get("activation_rate_incomplete"),
                ev.get("lift"),
            )
        else:
            w, wo, lift = ev.get("rate_at_or_above"), ev.get("rate_below"), ev.get("lift")
        rows.append(
            {
                "name": name,
                "title": MILESTONE_WORDS[name],
                "rule": m.get("rule"),
                "share_now": float(scores[col].astype(bool).mean())
                if col in scores and len(scores)
                else None,
                "with": w,
                "without": wo,
                "lift": lift,
                "status": m.get("status"),
                "reason": m.get("reason"),
            }
        )
    return rows


def _verdict(thresholds: dict, summary: dict) -> dict | None:
    """What the data could and could not confirm (:func:`models.verdict.verdict_lines`), for
    the head of the page; None for a run from before the statuses."""
    from models.verdict import MILESTONES, verdict_lines

    comparison = summary.get("usage_vs_baseline")
    status = {n: (thresholds.get(n) or {}).get("status") for n in MILESTONES}
    if comparison is None and not any(status.values()):
        return None
    unconfirmed = [n for n, st in status.items() if st == "unconfirmed"]
    no_usage = comparison is not None and not comparison.get("beats")
    return {
        "lines": verdict_lines(thresholds, comparison),
        "warn": bool(no_usage or unconfirmed),
        "no_usage": no_usage,
        "unconfirmed": unconfirmed,
        "gating": [n for n, st in status.items() if st != "unconfirmed"],
    }


def _auc_sentence(metrics: dict, comparison: dict | None = None) -> str | None:
    gbm = (metrics.get("gbm") or {}).get("roc_auc")
    base = (metrics.get("baseline") or {}).get("roc_auc")
    if gbm is None or base is None:
        return None
    gain = gbm - base
    low, high = ((comparison or {}).get("ci") or [None, None])[:2]
    interval = (
        f", interval {low:+.3f} to {high:+.3f} from resampling the test accounts"
        if low is not None and high is not None
        else ""
    )
    if comparison is not None and not comparison.get("beats"):
        verdict = (
            "so product usage does not predict retention better than plan and seats in this "
            "data: no feature is a milestone candidate"
        )
    elif gain >= 0.02:
        verdict = "so product usage adds real information beyond the plan"
    elif gain >= 0:
        verdict = "so product usage adds little beyond the plan on this data"
    else:
        verdict = (
            "so on this data the plan alone ranks better: read the feature ranking with caution"
        )
    return (
        f"On the newest months, which the models never saw, the model that reads product usage "
        f"ranks staying accounts above leaving ones with a ROC AUC of {gbm:.3f}, "
        f"against {base:.3f} "
        f"for a baseline that knows only the plan and seats ({gain:+.3f}{interval}), {verdict}."
    )


def _cohort_words(review: dict | None) -> dict:
    if not review:
        return {}
    cohort = review.get("cohort") or {}

    def join(values):
        values = list(values or [])
        return (
            ", ".join(values[:-1])
            + (" and " if len(values) > 1 else "")
            + (values[-1] if values else "")
        )

    tenure = next((cohort[n]["cohort"] for n in ("activation", "setup") if cohort.get(n)), [])
    snaps = next((cohort[n]["cohort"] for n in ("utilization", "maturity") if cohort.get(n)), [])
    act = ((cohort.get("setup") or {}).get("activation") or {}).get("cohort")
    periods = review.get("periods") or {}

    def derived(name):
        span = (periods.get(name) or {}).get("derivation") or {}
        return f"{span['from']} to {span['to']}" if span.get("from") else None

    return {
        "tenure": join(tenure) or "–",
        "snapshots": join(snaps) or "–",
        "setup_activation": join(act) if act else None,
        "tenure_derived": derived("activation"),
        "snapshots_derived": derived("utilization"),
    }


def _judged(importance: pd.DataFrame) -> tuple[pd.DataFrame, dict | None]:
    """The judged features' rows, and a count of the names not judged by verdict (too rare,
    excluded, rolled up; importance.csv lists each with its reason), None when every name
    was judged (or the run predates the selection)."""
    if "judged" not in importance.columns:
        return importance, None
    judged = importance["judged"].fillna(True).astype(bool)
    rest = importance[~judged]
    if rest.empty:
        return importance, None
    counts = rest["verdict"].value_counts()
    return importance[judged].reset_index(drop=True), {
        "total": len(rest),
        **{v: int(counts.get(v, 0)) for v in ("too_rare", "excluded", "rolled_up")},
    }


def _draw_charts(
    thresholds: dict,
    importance: pd.DataFrame,
    stages: list[dict],
    curves: dict,
    review: dict | None,
    cohort_rows: list[dict],
    band: tuple[float, float],
    settings: dict,
) -> dict[str, str]:
    """Every chart of the page as inline SVG, in page order (the order numbers the ids)."""
    figures = charts.Charts()
    drift = ((review or {}).get("previous") or {}).get("prevalence_drift") or []
    return {
        "setup_candidates": charts.setup_candidates_chart(figures, thresholds["setup"], settings),
        "setup_steps": charts.setup_steps_chart(figures, thresholds["setup"]),
        "activation": charts.milestone_chart(
            figures,
            thresholds["activation"],
            outcome="retention",
            metric="activation events in the first days (groups of accounts)",
        ),
        "utilization": charts.milestone_chart(
            figures,
            thresholds["utilization"],
            outcome="retention",
            metric="utilization rate (groups of account-months)",
        ),
        "maturity": charts.milestone_chart(
            figures, thresholds["maturity"], outcome="retention", metric="mature categories"
        ),
        "maturity_categories": charts.category_charts(figures, thresholds["maturity"]),
        "retention": charts.retention_chart(figures, curves),
        "scatter": charts.importance_chart(
            figures, importance, band, settings.get("min_importance")
        ),
        "stages": charts.stages_chart(figures, stages),
        "cohort": charts.cohort_chart(figures, cohort_rows, (review or {}).get("min_lift", 1.0)),
        "psi": charts.psi_chart(figures, drift),
    }


def render_report(
    folder: Path, band: tuple[float, float] | None = None, run_id: str | None = None
) -> str:
    """The report's HTML from the files of one run folder.

    Parameters
    ----------
    folder : Path
        Holds ``thresholds.json``, ``summary.json``, ``importance.parquet`` (or, from older
        runs, ``importance.csv``) and ``scores.parquet``;
        ``review.json``, ``retention_curves.json``, ``validation.json`` and ``promotion.json``
        are used when present.
    band : (float, float), optional
        The prevalence band (default: the run's, from ``summary.json``).
    run_id : str, optional
        The MLflow run, named in the header (when rebuilt from MLflow).
    """
    folder = Path(folder)
    thresholds = json.loads((folder / "thresholds.json").read_text())
    summary = json.loads((folder / "summary.json").read_text())
    importance = read_importance(folder)
    if importance is None:
        raise FileNotFoundError(f"{folder} holds no importance.parquet or importance.csv")
    scores = pd.read_parquet(folder / "scores.parquet")
    review = _read_json(folder / "review.json")
    curves = _read_json(folder / "retention_curves.json") or {}
    validation_raw = _read_json(folder / "validation.json")
    promotion = _read_json(folder / "promotion.json")
    band = band or tuple(summary.get("prevalence_band", (0.05, 0.9)))
    settings = dict((review or {}).get("settings") or {})
    for key in ("setup_min_lift", "setup_max_prevalence", "horizon_days", "min_importance"):
        settings.setdefault(key, summary.get(key))
    validation = None
    if validation_raw and isinstance(validation_raw.get("results"), list):
        results = validation_raw["results"]
        validation = {"passed": sum(1 for r in results if r.get("ok")), "total": len(results)}
        # GE's data docs beside the report (a run folder), linked relatively
        if (folder / DATA_DOCS / "index.html").is_file():
            validation["docs"] = f"{DATA_DOCS}/index.html"

    importance, not_judged = _judged(importance)
    stages = _stage_table(scores)
    cohort_rows = _cohort_rows(review) if review else []
    rendered = _draw_charts(
        thresholds, importance, stages, curves, review, cohort_rows, band, settings
    )
    drift = ((review or {}).get("previous") or {}).get("prevalence_drift") or []
    psis = [r["psi"] for r in drift if r.get("psi") is not None]
    confidence = (thresholds["activation"].get("evidence") or {}).get("confidence") or 0.95
    horizon_days = settings.get("horizon_days")
    return _ENV.get_template(TEMPLATE).render(
        summary=summary,
        as_of_day=str(summary.get("as_of", ""))[:10],
        run_id=run_id,
        thresholds=thresholds,
        setup_ev=thresholds["setup"].get("evidence") or {},
        milestones=["setup", "activation", "utilization", "maturity"],
        titles=MILESTONE_WORDS,
        headings={
            "activation": "Activation: how much early use marks a customer who stays",
            "utilization": "Utilization: is the customer using what it bought",
        },
        overview=_overview(thresholds, scores),
        verdict=_verdict(thresholds, summary),
        auc_sentence=_auc_sentence(summary.get("metrics") or {}, summary.get("usage_vs_baseline")),
        validation=validation,
        importance=importance.to_dict(orient="records"),
        not_judged=not_judged,
        stages=stages,
        curve_rows=_curve_rows(curves),
        review=review,
        cohort_rows=cohort_rows,
        cohort_words=_cohort_words(review),
        promotion=promotion,
        settings=settings,
        charts=rendered,
        max_psi=max(psis) if psis else None,
        confidence=f"{100 * float(confidence):.0f}%",
        horizon=f"{horizon_days} days" if horizon_days else "the retention horizon",
    )


def write_report(folder: Path) -> Path:
    """Write ``report.html`` into a run folder (see :func:`render_report`)."""
    path = Path(folder) / "report.html"
    path.write_text(render_report(folder), encoding="utf-8")
    return path
