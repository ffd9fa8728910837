"""The self-contained HTML report for product leads, built from a run's output files.

Charts are drawn with matplotlib as inline SVG, so the page needs no network and no script.
"""

from __future__ import annotations

import html
import io
import json
from pathlib import Path

import pandas as pd
from jinja2 import Environment, select_autoescape

VERDICT_COLOURS = {
    "milestone_candidate": "#1b7837",
    "niche": "#762a83",
    "table_stakes": "#2166ac",
    "confounded": "#e08214",
    "no_signal": "#999999",
}

TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Customer milestones report, as of {{ summary.as_of[:10] }}</title>
<style>
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#222;line-height:1.45;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem} h2{margin-top:2.2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
table{border-collapse:collapse;margin:.8rem 0;font-size:.9rem} th,td{border:1px solid #ddd;padding:.3rem .55rem;text-align:left;vertical-align:top}
th{background:#f4f4f4} td.num{text-align:right;font-variant-numeric:tabular-nums}
.kpis{display:flex;gap:1rem;flex-wrap:wrap}.kpi{border:1px solid #ddd;border-radius:6px;padding:.6rem 1rem;min-width:9rem}
.kpi b{display:block;font-size:1.3rem}.muted{color:#666;font-size:.9rem}.chart svg{max-width:100%;height:auto}
.verdict{padding:.05rem .4rem;border-radius:3px;color:#fff;font-size:.8rem;white-space:nowrap}
</style></head><body>
<h1>Customer milestones</h1>
<p class="muted">Data from {{ summary.period[0] }} to {{ summary.as_of }} · engine {{ summary.engine }} · seed {{ summary.seed }}</p>

<h2 id="summary">Summary</h2>
<div class="kpis">
<div class="kpi">Accounts<b>{{ "{:,}".format(summary.accounts) }}</b></div>
<div class="kpi">Events<b>{{ "{:,}".format(summary.events) }}</b></div>
<div class="kpi">Live accounts scored<b>{{ "{:,}".format(summary.live_accounts) }}</b></div>
<div class="kpi">Validation<b>{{ "passed" if summary.validation_ok else "FAILED" }}</b></div>
{% for name in ["gbm", "rf", "baseline"] %}{% if summary.metrics.get(name) %}
<div class="kpi">Test ROC AUC, {{ {"gbm": "gradient boosting", "rf": "random forest", "baseline": "plan & seats only"}[name] }}<b>{{ "%.3f"|format(summary.metrics[name].roc_auc) }}</b></div>
{% endif %}{% endfor %}
</div>

<h2 id="milestones">The milestones</h2>
<table><tr><th>Milestone</th><th>Rule</th><th>Threshold</th><th>Interval</th><th>Pinned</th></tr>
{% for name in ["setup", "activation", "utilization", "maturity"] %}{% set m = thresholds[name] %}
<tr><td>{{ name }}</td><td>{{ m.rule }}</td><td class="num">{{ fmt(m.threshold) }}</td><td class="num">{{ fmt_ci(m.ci) }}</td><td>{{ "yes" if m.pinned else "no" }}</td></tr>
{% endfor %}</table>
<h3>Maturity categories</h3>
<table><tr><th>Category</th><th>Distinct features needed</th><th>Interval</th></tr>
{% for cat, m in thresholds.maturity.categories.items() %}
<tr><td>{{ cat }}</td><td class="num">{{ fmt(m.threshold) }}</td><td class="num">{{ fmt_ci(m.ci) }}</td></tr>
{% endfor %}</table>
<h3>Setup steps</h3>
<table><tr><th>Step</th><th>Prevalence</th><th>Activation lift</th><th>Interval</th><th>Selected</th><th>Reason</th></tr>
{% for step, c in thresholds.setup.candidates.items() %}
<tr><td>{{ step }}</td><td class="num">{{ pct(c.prevalence) }}</td><td class="num">{{ fmt(c.lift) }}</td><td class="num">{{ fmt_ci(c.lift_ci) }}</td><td>{{ "yes" if c.selected else "no" }}</td><td>{{ c.reason }}</td></tr>
{% endfor %}</table>

<h2 id="importance">Feature importance against adoption</h2>
<p class="muted">Importance is the drop in test ROC AUC when a feature's columns are shuffled (mean of both models); prevalence is the share of live accounts using the feature. The shaded band is where a feature can be a milestone candidate.</p>
<div class="chart">{{ scatter|safe }}</div>
<table><tr><th>Rank</th><th>Feature</th><th>Importance (RF)</th><th>Importance (GBM)</th><th>Prevalence</th><th>Lift</th><th>Lift within plans</th><th>Verdict</th><th>Reason</th></tr>
{% for r in importance %}
<tr><td class="num">{{ r.importance_rank }}</td><td>{{ r.feature }}</td><td class="num">{{ fmt(r.importance_rf) }}</td><td class="num">{{ fmt(r.importance_gbm) }}</td><td class="num">{{ pct(r.prevalence) }}</td><td class="num">{{ fmt(r.retention_lift) }}</td><td class="num">{{ fmt(r.stratified_lift) }}</td><td><span class="verdict" style="background:{{ colours.get(r.verdict, '#999') }}">{{ r.verdict }}</span></td><td>{{ r.reason }}</td></tr>
{% endfor %}</table>

<h2 id="stages">Live accounts by stage</h2>
<div class="chart">{{ stages|safe }}</div>
</body></html>
"""


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and pd.isna(v)):
        return "–"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"
    return html.escape(str(v))


def _fmt_ci(ci) -> str:
    if not ci or len(ci) != 2:
        return "–"
    return f"{_fmt(ci[0])} – {_fmt(ci[1])}"


def _pct(v) -> str:
    return "–" if v is None or pd.isna(v) else f"{100 * float(v):.1f}%"


def _svg(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]


def _scatter(importance: pd.DataFrame, band: tuple[float, float] | None) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5.2))
    if band:
        ax.axvspan(band[0], band[1], color="#e8f4e8", zorder=0, label="candidate band")
    imp = importance[["importance_rf", "importance_gbm"]].mean(axis=1)
    for verdict, colour in VERDICT_COLOURS.items():
        sel = importance["verdict"] == verdict
        if sel.any():
            ax.scatter(importance.loc[sel, "prevalence"], imp[sel], c=colour, label=verdict, s=40, zorder=2)
    for _, r in importance.iterrows():
        ax.annotate(r["feature"], (r["prevalence"], imp[_]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("prevalence (share of live accounts using the feature)")
    ax.set_ylabel("permutation importance (AUC drop)")
    ax.set_xlim(-0.02, 1.02)
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    return _svg(fig)


def _stages(scores: pd.DataFrame) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from models.scoring import STAGES

    counts = scores["stage"].value_counts().reindex(list(STAGES), fill_value=0)
    fig, ax = plt.subplots(figsize=(7, 3))
    bars = ax.bar(counts.index, counts.to_numpy(), color="#4575b4")
    for b, v in zip(bars, counts.to_numpy()):
        ax.annotate(f"{v} ({100 * v / max(1, counts.sum()):.0f}%)", (b.get_x() + b.get_width() / 2, v),
                    ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("accounts")
    ax.grid(axis="y", alpha=0.3)
    return _svg(fig)


def render_report(folder: Path, band: tuple[float, float] | None = None) -> str:
    """The report's HTML from the files of one run (thresholds, importance, scores, summary)."""
    folder = Path(folder)
    thresholds = json.loads((folder / "thresholds.json").read_text())
    summary = json.loads((folder / "summary.json").read_text())
    importance = pd.read_csv(folder / "importance.csv")
    scores = pd.read_parquet(folder / "scores.parquet")
    band = band or tuple(summary.get("prevalence_band", (0.05, 0.9)))
    env = Environment(autoescape=select_autoescape(default=True))
    env.globals.update(fmt=_fmt, fmt_ci=_fmt_ci, pct=_pct, colours=VERDICT_COLOURS)
    return env.from_string(TEMPLATE).render(
        summary=summary,
        thresholds=thresholds,
        importance=importance.to_dict(orient="records"),
        scatter=_scatter(importance, band),
        stages=_stages(scores),
    )


def write_report(folder: Path) -> Path:
    path = Path(folder) / "report.html"
    path.write_text(render_report(folder), encoding="utf-8")
    return path
