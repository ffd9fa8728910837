"""The self-contained HTML report for product leads, built from a run's output files.

Charts are drawn with matplotlib as inline SVG (text kept as text, so that it is searchable
and small), so the page needs no network and no script. The report reads the files of one
run folder: ``thresholds.json``, ``summary.json``, ``importance.csv`` and ``scores.parquet``
(required), and ``review.json``, ``retention_curves.json``, ``validation.json`` and
``promotion.json`` when they exist (a section whose data is missing says so).
"""

from __future__ import annotations

import html
import io
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from jinja2 import Environment, Undefined, select_autoescape

VERDICT_COLOURS = {
    "milestone_candidate": "#1b7837",
    "niche": "#762a83",
    "table_stakes": "#2166ac",
    "confounded": "#e08214",
    "no_signal": "#999999",
}
VERDICT_WORDS = {
    "milestone_candidate": "milestone candidate",
    "niche": "niche",
    "table_stakes": "table stakes",
    "confounded": "confounded",
    "no_signal": "no signal",
}
#: Okabe-Ito colours, readable by colour-blind readers.
REACHED, NOT_REACHED, THRESHOLD, ACCENT = "#0072B2", "#D55E00", "#CC79A7", "#009E73"
MILESTONE_WORDS = {
    "setup": "Setup",
    "activation": "Activation",
    "utilization": "Utilization",
    "maturity": "Maturity",
}
MODEL_WORDS = {"gbm": "gradient boosting", "rf": "random forest", "baseline": "plan & seats only"}
STAGE_WORDS = {
    "new": "has not completed setup",
    "setup": "setup complete, not yet activated",
    "activated": "activated, not using enough per seat",
    "utilized": "utilized, not yet mature",
    "mature": "mature in enough product categories",
}

TEMPLATE = r"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Customer milestones report, as of {{ as_of_day }}</title>
<style>
:root{--line:#d9d9d9;--muted:#5f6368;--soft:#f5f6f7}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:2rem auto;max-width:1120px;color:#1f2328;line-height:1.5;padding:0 1.2rem}
h1{font-size:1.7rem;margin:0 0 .2rem} h2{margin-top:2.6rem;border-bottom:2px solid #e4e4e4;padding-bottom:.25rem;font-size:1.35rem}
h3{margin-top:1.6rem;font-size:1.08rem}
table{border-collapse:collapse;margin:.7rem 0 1rem;font-size:.88rem;width:100%}
th,td{border-bottom:1px solid var(--line);padding:.32rem .55rem;text-align:left;vertical-align:top}
th{background:var(--soft);font-weight:600;border-bottom:1px solid #bbb}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
table.compact{width:auto}
table.features tr.head td{border-bottom:none;padding-bottom:.05rem}table.features tr.why td{color:var(--muted);font-size:.8rem;padding-top:0}
.kpis{display:grid;grid-template-columns:repeat(auto-fill,minmax(10.5rem,1fr));gap:.7rem;margin:.8rem 0}
.kpi{border:1px solid var(--line);border-radius:8px;padding:.55rem .8rem;background:#fff}
.kpi span{display:block;color:var(--muted);font-size:.8rem}.kpi b{display:block;font-size:1.3rem;font-variant-numeric:tabular-nums}
.muted{color:var(--muted);font-size:.9rem}.small{font-size:.82rem}
.chart{margin:.6rem 0 .2rem}.chart svg{max-width:100%;height:auto;display:block}.chart.wide svg{width:100%}
.verdict{padding:.05rem .45rem;border-radius:3px;color:#fff;font-size:.78rem;white-space:nowrap}
.tag{display:inline-block;padding:.02rem .45rem;border-radius:3px;font-size:.78rem;white-space:nowrap;border:1px solid var(--line)}
.tag.ok{background:#e6f4ea;border-color:#a8d5b5}.tag.warn{background:#fdecea;border-color:#f1a9a0}.tag.info{background:#eef3fb;border-color:#b9cbe8}
.callout{border-left:4px solid #2166ac;background:#f4f7fb;padding:.7rem 1rem;margin:1rem 0;border-radius:0 6px 6px 0}
.callout.warn{border-color:#c5221f;background:#fdf1f0}.callout.ok{border-color:#1b7837;background:#f1f8f3}
.callout ul{margin:.3rem 0 0;padding-left:1.2rem}
nav.toc{font-size:.9rem;margin:1rem 0;padding:.6rem .9rem;background:var(--soft);border-radius:6px}
nav.toc a{margin-right:1rem;color:#0b57d0;text-decoration:none;white-space:nowrap}
.rule{font-size:1rem;margin:.3rem 0 .6rem}
.grid2{display:grid;grid-template-columns:1fr 1fr;gap:1rem}
@media (max-width:800px){.grid2{grid-template-columns:1fr}}
details summary{cursor:pointer;color:#0b57d0}
footer{margin-top:3rem;border-top:1px solid var(--line);padding-top:.8rem}
@media print{nav.toc{display:none}.chart{break-inside:avoid}}
</style></head><body>
<header>
<h1>Customer milestones</h1>
<p class="muted">As of {{ summary.as_of }} · data from {{ summary.period[0] }} · engine {{ summary.engine }} · seed {{ summary.seed }}{% if run_id %} · MLflow run {{ run_id }}{% endif %}</p>
</header>
<nav class="toc" aria-label="Sections">
<a href="#summary">Summary</a><a href="#milestones">The milestones</a><a href="#setup">Setup</a><a href="#activation">Activation</a><a href="#utilization">Utilization</a><a href="#maturity">Maturity</a><a href="#retention">Retention curves</a><a href="#importance">Features</a><a href="#stages">Live accounts</a><a href="#review">Framework review</a><a href="#about">How to read</a>
</nav>
{% if review and review.warnings %}
<div class="callout warn" role="alert"><b>The framework review raised {{ review.warnings|length }} warning{{ "s" if review.warnings|length != 1 }}</b> (details in <a href="#review">Framework review</a>):
<ul>{% for w in review.warnings %}<li>{{ w.message }}</li>{% endfor %}</ul></div>
{% endif %}

<h2 id="summary">Summary</h2>
<p>This page explains which customers are likely to stay. From {{ num(summary.accounts) }} accounts and their product usage, the pipeline learned four <b>milestones</b> &mdash; steps that customers who stay tend to reach &mdash; and checked each against who actually stayed. {{ num(summary.live_accounts) }} accounts are customers today and are scored against them.</p>
<div class="kpis">
<div class="kpi"><span>Data period</span><b>{{ summary.period[0] }}</b><span>to {{ as_of_day }}</span></div>
<div class="kpi"><span>Accounts</span><b>{{ num(summary.accounts) }}</b></div>
<div class="kpi"><span>Product events</span><b>{{ num(summary.events) }}</b>{% if summary.distinct_events %}<span>{{ summary.distinct_events }} distinct features</span>{% endif %}</div>
<div class="kpi"><span>Live accounts scored</span><b>{{ num(summary.live_accounts) }}</b></div>
<div class="kpi"><span>Input validation</span><b>{{ "passed" if summary.validation_ok else "FAILED" }}</b>{% if validation %}<span>{{ validation.passed }} of {{ validation.total }} data-contract rules</span>{% endif %}</div>
{% for name in ["gbm", "rf", "baseline"] %}{% if summary.metrics.get(name) %}
<div class="kpi"><span>Test ROC AUC, {{ model_words[name] }}</span><b>{{ "%.3f"|format(summary.metrics[name].roc_auc) }}</b></div>
{% endif %}{% endfor %}
</div>
{% if auc_sentence %}<p>{{ auc_sentence }}</p>{% endif %}
<table>
<tr><th>Milestone</th><th>In plain words</th><th class="num">Live accounts reaching it now</th><th class="num">Outcome with</th><th class="num">without</th><th class="num">Lift</th></tr>
{% for row in overview %}
<tr><td><a href="#{{ row.name }}">{{ row.title }}</a></td><td>{{ row.rule }}</td><td class="num">{{ pct(row.share_now) }}</td><td class="num">{{ pct(row.with) }}</td><td class="num">{{ pct(row.without) }}</td><td class="num">{{ lift(row.lift) }}</td></tr>
{% endfor %}</table>
<p class="muted small">"Outcome" is the share still a customer {{ horizon }} later (for setup: the share that went on to activate). Lift is the ratio of the two: 1.20 means 20% more likely.</p>

<h2 id="milestones">The milestones</h2>
<p>Every threshold is read off the data where the outcome changes most, with a {{ confidence }} confidence interval from resampling the accounts: a narrow interval is a threshold the data pin down.</p>
<table>
<tr><th>Milestone</th><th>Rule</th><th class="num">Threshold</th><th class="num">Interval</th><th>Pinned in the configuration</th></tr>
{% for name in milestones %}{% set m = thresholds[name] %}
<tr><td>{{ titles[name] }}</td><td>{{ m.rule }}</td><td class="num">{{ fmt(m.threshold) }}</td><td class="num">{{ fmt_ci(m.ci) }}</td><td>{{ "yes" if m.pinned else "no" }}</td></tr>
{% endfor %}</table>

<h2 id="setup">Setup: which onboarding steps matter</h2>
<p class="rule"><b>Rule:</b> {{ thresholds.setup.rule }}.</p>
<p>Each candidate step is kept when accounts that did it activate clearly more often than those that did not (the lower end of the lift interval above {{ fmt(settings.setup_min_lift) }}), unless nearly everyone does it (more than {{ pct(settings.setup_max_prevalence) }}: a routine step separates nobody).{% if thresholds.setup.steps and setup_ev.activation_rate_complete is not none %} Accounts that completed all selected steps activated {{ pct(setup_ev.activation_rate_complete) }} of the time, the others {{ pct(setup_ev.activation_rate_incomplete) }} (lift {{ lift(setup_ev.lift) }}).{% endif %}</p>
<div class="chart wide">{{ charts.setup_candidates|safe }}</div>
<p class="muted small">Green: selected steps. Left, the share of accounts that did each step; right, how much more often they activated than the others, with its interval.</p>
<table>
<tr><th>Step</th><th class="num">Done by</th><th class="num">Activation if done</th><th class="num">if not</th><th class="num">Lift</th><th class="num">Interval</th><th>Selected</th><th>Why</th></tr>
{% for step, c in thresholds.setup.candidates.items() %}
<tr><td>{{ step }}</td><td class="num">{{ pct(c.prevalence) }}</td><td class="num">{{ pct(c.activation_rate_done) }}</td><td class="num">{{ pct(c.activation_rate_not_done) }}</td><td class="num">{{ lift(c.lift) }}</td><td class="num">{{ lift_ci(c.lift_ci) }}</td><td>{% if c.selected %}<span class="tag ok">selected</span>{% else %}no{% endif %}</td><td>{{ reasons.get(c.reason, c.reason) }}</td></tr>
{% endfor %}</table>
{% if charts.setup_steps %}<h3>Activation by number of selected steps done</h3><div class="chart">{{ charts.setup_steps|safe }}</div>{% endif %}

{% for name in ["activation", "utilization"] %}{% set m = thresholds[name] %}{% set ev = m.evidence %}
<h2 id="{{ name }}">{{ headings[name] }}</h2>
<p class="rule"><b>Rule:</b> {{ m.rule }}.</p>
<p>{% if ev.rate_at_or_above is not none %}Accounts at or above the threshold of <b>{{ fmt(m.threshold) }}</b> (interval {{ fmt_ci(m.ci) }}) stayed {{ pct(ev.rate_at_or_above) }} of the time, those below it {{ pct(ev.rate_below) }}: a lift of {{ lift(ev.lift) }}. {{ pct(ev.share_at_or_above) }} of the {{ num(ev.n) }} labelled {{ "accounts" if name == "activation" else "account-months" }} reach it.{% endif %}
{% if name == "activation" and ev.inactivity %} Validation: {{ pct(ev.inactivity.went_inactive_rate_activated) }} of activated accounts later went inactive for a month, against {{ pct(ev.inactivity.went_inactive_rate_not_activated) }} of the others.{% endif %}
{% if name == "utilization" and ev.raw_comparison and ev.raw_comparison.phi_ratio_raw_to_per_seat is not none %} Counting per purchased seat separates retention {{ "better" if ev.raw_comparison.raw_is_weaker else "no better" }} than the raw count (effect size ratio raw / per seat {{ fmt(ev.raw_comparison.phi_ratio_raw_to_per_seat) }}).{% endif %}</p>
<div class="chart wide">{{ charts[name]|safe }}</div>
<p class="muted small">Each point is one group of about a tenth of the {{ "accounts" if name == "activation" else "account-months" }}, ordered by the metric, with its count under the axis and a 95% interval. The vertical line is the threshold, the shaded band its interval; the dashed lines are the retention below and at or above it.</p>
{% endfor %}

<h2 id="maturity">Maturity: breadth of product use</h2>{% set m = thresholds.maturity %}{% set ev = m.evidence %}
<p class="rule"><b>Rule:</b> {{ m.rule }}.</p>
<p>{% if ev.rate_at_or_above is not none %}Accounts mature in at least <b>{{ fmt(m.threshold) }}</b> categories (interval {{ fmt_ci(m.ci) }}) stayed {{ pct(ev.rate_at_or_above) }} of the time, the others {{ pct(ev.rate_below) }} (lift {{ lift(ev.lift) }}).{% endif %}</p>
<div class="chart wide">{{ charts.maturity|safe }}</div>
<h3>Per category: distinct features used against retention</h3>
<div class="chart wide">{{ charts.maturity_categories|safe }}</div>
<table>
<tr><th>Category</th><th>Features</th><th class="num">Distinct features needed</th><th class="num">Interval</th><th class="num">Retention with</th><th class="num">without</th></tr>
{% for cat, c in m.categories.items() %}
<tr><td>{{ cat }}</td><td class="small">{{ (c.features or [])|join(", ") }}</td><td class="num">{{ fmt(c.threshold) }}</td><td class="num">{{ fmt_ci(c.ci) }}</td><td class="num">{{ pct(c.evidence.retention_with) }}</td><td class="num">{{ pct(c.evidence.retention_without) }}</td></tr>
{% endfor %}</table>

<h2 id="retention">Retention curves: accounts that did and did not reach each milestone</h2>
{% if charts.retention %}
<p>The share of accounts still a customer, month by month after the date the milestone is judged (accounts still customers today are followed as long as the data allow). A gap that opens and keeps widening is what a milestone worth pursuing looks like.</p>
<div class="chart wide">{{ charts.retention|safe }}</div>
<table>
<tr><th>Milestone</th><th>Judged at</th><th class="num">Reached</th><th class="num">Still a customer after 6 months</th><th class="num">12 months</th><th class="num">Not reached</th><th class="num">6 months</th><th class="num">12 months</th></tr>
{% for row in curve_rows %}
<tr><td>{{ row.title }}</td><td>{{ row.anchor }}</td><td class="num">{{ num(row.n1) }}</td><td class="num">{{ pct(row.r6) }}</td><td class="num">{{ pct(row.r12) }}</td><td class="num">{{ num(row.n0) }}</td><td class="num">{{ pct(row.n6) }}</td><td class="num">{{ pct(row.n12) }}</td></tr>
{% endfor %}</table>
{% else %}<p class="muted">This run has no retention curves (it predates them).</p>{% endif %}

<h2 id="importance">Which product features predict retention, against how common they are</h2>
<p>A random forest and a gradient-boosted model predict who stays; a feature's importance is how much their accuracy (test ROC AUC) drops when that feature is shuffled. Importance alone favours features used by a few premium customers, so each feature is set against its prevalence: only features inside the shaded band, important, and still lifting retention within the same plan are milestone candidates.</p>
<div class="chart wide">{{ charts.scatter|safe }}</div>
<table class="features">
<tr><th class="num">Rank</th><th>Feature</th><th class="num">Importance, random forest</th><th class="num">gradient boosting</th><th class="num">Prevalence</th><th class="num">Lift</th><th class="num">Lift within plans</th><th>Verdict</th></tr>
{% for r in importance %}
<tr class="head"><td class="num">{{ r.importance_rank }}</td><td><b>{{ r.feature }}</b></td><td class="num">{{ imp(r.importance_rf) }}</td><td class="num">{{ imp(r.importance_gbm) }}</td><td class="num">{{ pct(r.prevalence) }}</td><td class="num">{{ lift(r.retention_lift) }}</td><td class="num">{{ lift(r.stratified_lift) }}</td><td><span class="verdict" style="background:{{ colours.get(r.verdict, '#999') }}">{{ verdict_words.get(r.verdict, r.verdict) }}</span></td></tr>
{% if r.reason %}<tr class="why"><td></td><td colspan="7">{{ r.reason }}</td></tr>{% endif %}
{% endfor %}</table>

<h2 id="stages">Live accounts by stage today</h2>
<p>Each of the {{ num(summary.live_accounts) }} live accounts is at the furthest stage whose milestones it has reached, in order; its next best step is in <code>scores.csv</code>.</p>
<div class="chart">{{ charts.stages|safe }}</div>
<table class="compact">
<tr><th>Stage</th><th>Meaning</th><th class="num">Accounts</th><th class="num">Share</th></tr>
{% for s in stages %}<tr><td>{{ s.stage }}</td><td>{{ s.meaning }}</td><td class="num">{{ num(s.n) }}</td><td class="num">{{ pct(s.share) }}</td></tr>{% endfor %}
</table>

<h2 id="review">Framework review: do the milestones still work?</h2>
{% if review %}
<p>Status: {% if review.status == "ok" %}<span class="tag ok">no warning</span>{% else %}<span class="tag warn">{{ review.warnings|length }} warning{{ "s" if review.warnings|length != 1 }}</span>{% endif %} · a warning is raised when a milestone's lift on the newest cohort falls below {{ fmt(review.min_lift) }}, or when a threshold moves outside the previous champion's interval. A lift is judged when each side holds at least {{ review.min_group or 20 }} accounts.</p>
<h3>On the newest out-of-time cohort</h3>
<p class="muted">The newest labelled accounts: activation windows that ended in {{ cohort_words.tenure }} (setup, activation) and the snapshots of {{ cohort_words.snapshots }} (utilization, maturity).{% if cohort_words.setup_activation %} Setup is derived against activation, so its check is on activation, among accounts whose activation window ended in {{ cohort_words.setup_activation }}.{% endif %}</p>
{% if charts.cohort %}<div class="chart">{{ charts.cohort|safe }}</div>{% endif %}
<table>
<tr><th>Milestone</th><th>Outcome</th><th class="num">Reached</th><th class="num">Rate</th><th class="num">Not reached</th><th class="num">Rate</th><th class="num">Lift</th><th class="num">Interval</th><th>Check</th></tr>
{% for row in cohort_rows %}
<tr><td>{{ row.title }}</td><td>{{ row.outcome }}</td><td class="num">{{ num(row.n_reached) }}</td><td class="num">{{ pct(row.rate_reached) }}</td><td class="num">{{ num(row.n_not_reached) }}</td><td class="num">{{ pct(row.rate_not_reached) }}</td><td class="num">{{ lift(row.lift) }}</td><td class="num">{{ lift_ci(row.lift_ci) }}</td><td>{% if not row.checked %}<span class="muted">for reference</span>{% elif not row.enough %}<span class="tag info">too few accounts to judge</span>{% elif row.low %}<span class="tag warn">below {{ fmt(review.min_lift) }}</span>{% else %}<span class="tag ok">ok</span>{% endif %}</td></tr>
{% endfor %}</table>
<h3>Against the previous champion</h3>
{% if review.previous %}{% set prev = review.previous %}
<p>Compared with MLflow run <code>{{ prev.run_id }}</code>{% if prev.version %} (model version {{ prev.version }}){% endif %}{% if prev.as_of %}, as of {{ prev.as_of }}{% endif %}, the champion when this run started.</p>
<table>
<tr><th>Threshold</th><th class="num">Previous</th><th class="num">Previous interval</th><th class="num">Now</th><th class="num">Change</th><th>Check</th></tr>
{% for row in prev.thresholds %}
<tr><td>{{ row.milestone }}</td><td class="num">{{ fmt(row.previous) }}</td><td class="num">{{ fmt_ci(row.previous_ci) }}</td><td class="num">{{ fmt(row.current) }}</td><td class="num">{{ signed(row.change) }}</td><td>{% if row.outside_previous_ci %}<span class="tag warn">outside the previous interval</span>{% elif row.outside_previous_ci is none %}<span class="muted">no interval</span>{% else %}<span class="tag ok">within</span>{% endif %}{% if row.steps_added %} added: {{ row.steps_added|join(", ") }}{% endif %}{% if row.steps_removed %} removed: {{ row.steps_removed|join(", ") }}{% endif %}</td></tr>
{% endfor %}</table>
<table class="compact">
<tr><th>Test ROC AUC</th><th class="num">Previous</th><th class="num">Now</th><th class="num">Change</th></tr>
{% for row in prev.auc %}<tr><td>{{ model_words.get(row.model, row.model) }}</td><td class="num">{{ fmt3(row.previous) }}</td><td class="num">{{ fmt3(row.current) }}</td><td class="num">{{ signed(row.change, 3) }}</td></tr>{% endfor %}
</table>
<h3>Prevalence drift of each feature</h3>
<p class="muted">Population stability index (PSI) of the share of accounts using each feature: below 0.1 stable, 0.1 to 0.25 moderate, above 0.25 a major shift.</p>
{% if charts.psi %}<div class="chart">{{ charts.psi|safe }}</div>{% elif prev.prevalence_drift %}<p>No feature's prevalence moved: the largest PSI is {{ fmt(max_psi) }}.</p>{% endif %}
<details><summary>Every feature ({{ prev.prevalence_drift|length }})</summary>
<table>
<tr><th>Feature</th><th class="num">Prevalence before</th><th class="num">now</th><th class="num">PSI</th><th>Drift</th></tr>
{% for row in prev.prevalence_drift %}<tr><td>{{ row.feature }}</td><td class="num">{{ pct(row.prevalence_previous) }}</td><td class="num">{{ pct(row.prevalence_current) }}</td><td class="num">{{ fmt(row.psi) }}</td><td>{% if row.band in ("major", "new", "gone") %}<span class="tag warn">{{ row.band }}</span>{% elif row.band == "moderate" %}<span class="tag info">moderate</span>{% else %}stable{% endif %}</td></tr>{% endfor %}
</table></details>
{% else %}<p>There was no champion run to compare with yet: this is the first reviewed run of this MLflow experiment. The next run will be compared with this one's thresholds, prevalences and AUC.</p>{% endif %}
{% else %}<p class="muted">This run has no framework review (it predates the review).</p>{% endif %}
{% if promotion %}<p>Model promotion: <b>{{ promotion.decision|replace("_", " ") }}</b> &mdash; {{ promotion.reason }}.</p>{% endif %}

<h2 id="about">How to read this report</h2>
<dl class="small">
<dt><b>Retention</b></dt><dd>Whether an account is still a customer {{ horizon }} after the date it is judged on.</dd>
<dt><b>Lift</b></dt><dd>The outcome rate of accounts that reached a milestone (or use a feature) divided by the others'. 1 means no difference.</dd>
<dt><b>Interval</b></dt><dd>The {{ confidence }} confidence interval: the range the value would plausibly take on another sample of the same customers.</dd>
<dt><b>ROC AUC</b></dt><dd>How well a model ranks staying accounts above leaving ones, on the newest months it never saw (0.5 is a coin toss, 1 is perfect). "Plan &amp; seats only" is the baseline that knows no product usage.</dd>
<dt><b>Prevalence</b></dt><dd>The share of accounts that used a feature in the trailing window.</dd>
<dt><b>PSI</b></dt><dd>Population stability index: how far a distribution moved between two runs.</dd>
</dl>
<footer class="muted small">Generated by the customer-milestones pipeline from thresholds.json, importance.csv, scores.parquet, summary.json{% if review %}, review.json{% endif %}. Every chart is embedded; the page loads nothing from the network.</footer>
</body></html>
"""

REASON_WORDS = {
    "lift": "lifts activation",
    "routine": "routine: done by nearly everyone",
    "no_lift": "no clear lift in activation",
}


# ----------------------------------------------------------------------------- formatting


def _missing(v: Any) -> bool:
    if v is None or isinstance(v, Undefined):
        return True
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def fmt_number(v: Any) -> str:
    """A number as the report prints it: integers plainly, others to 3 significant digits."""
    if _missing(v):
        return "–"
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}" if abs(int(v)) >= 10_000 else str(int(v))
    if isinstance(v, (float, np.floating)):
        f = float(v)
        if f.is_integer() and abs(f) < 1e15:
            return fmt_number(int(f))
        return f"{f:.3g}" if abs(f) < 1000 else f"{f:,.0f}"
    return html.escape(str(v))


def _fmt_ci(ci) -> str:
    if not ci or len(ci) != 2 or all(_missing(c) for c in ci):
        return "–"
    return f"{fmt_number(ci[0])} – {fmt_number(ci[1])}"


def _pct(v) -> str:
    return "–" if _missing(v) else f"{100 * float(v):.1f}%"


def _num(v) -> str:
    return "–" if _missing(v) else f"{int(v):,}"


def _lift(v) -> str:
    return "–" if _missing(v) else f"{float(v):.2f}"


def _lift_ci(ci) -> str:
    if not ci or len(ci) != 2 or all(_missing(c) for c in ci):
        return "–"
    return f"{_lift(ci[0])} – {_lift(ci[1])}"


def _imp(v) -> str:
    return "–" if _missing(v) else f"{float(v):.4f}".replace("-", "−")


def _fmt3(v) -> str:
    return "–" if _missing(v) else f"{float(v):.3f}"


def _signed(v, digits: int | None = None) -> str:
    if _missing(v):
        return "–"
    f = float(v)
    if f == 0:
        return "0"
    text = f"{f:+.{digits}f}" if digits else ("+" if f > 0 else "−") + fmt_number(abs(f))
    return text.replace("-", "−")


# ----------------------------------------------------------------------------- charts


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "svg.fonttype": "none",  # text stays text: searchable, small, crisp
            "svg.hashsalt": "milestones-report",
            "font.size": 9,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.titlesize": 10,
            "axes.titleweight": "bold",
            "axes.titlelocation": "left",
        }
    )
    return plt


class _Charts:
    """Renders figures to inline SVG with ids unique across the page."""

    def __init__(self) -> None:
        self.count = 0

    def svg(self, fig) -> str:
        plt = _plt()
        buf = io.StringIO()
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
        plt.close(fig)
        text = buf.getvalue()
        text = text[text.index("<svg"):]
        text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.DOTALL)
        self.count += 1
        prefix = f"c{self.count}-"
        text = re.sub(r'id="([^"]+)"', lambda m: f'id="{prefix}{m.group(1)}"', text)
        text = re.sub(r'url\(#([^)]+)\)', lambda m: f"url(#{prefix}{m.group(1)})", text)
        text = re.sub(r'href="#([^"]+)"', lambda m: f'href="#{prefix}{m.group(1)}"', text)
        return text.replace("<svg ", '<svg role="img" ', 1)


def _wilson(k: float, n: float, z: float = 1.96) -> tuple[float, float]:
    if not n:
        return (math.nan, math.nan)
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return centre - half, centre + half


def _position(value: float | None, bins: list[dict]) -> float | None:
    """Where a metric value sits on the bin-index axis (bin i spans i - 0.5 .. i + 0.5).

    A threshold ``t`` means ``metric >= t``, so it sits on the left edge of the first bin
    whose smallest value reaches it, or inside a bin that straddles it.
    """
    if value is None or not bins:
        return None
    for i, b in enumerate(bins):
        lo, hi = b.get("metric_min"), b.get("metric_max")
        if lo is None or hi is None:
            continue
        if value <= lo:
            return i - 0.5
        if value <= hi:
            span = hi - lo
            return i - 0.5 + ((value - lo) / span if span else 0.5)
    return len(bins) - 0.5


def _range_label(lo, hi) -> str:
    if lo is None or hi is None:
        return "?"
    return fmt_number(lo) if lo == hi else f"{fmt_number(lo)}–{fmt_number(hi)}"


def _binned_axes(ax, block: dict, *, outcome: str, metric: str, compact: bool = False) -> bool:
    """Outcome rate by metric bins with counts, the threshold, its interval, the side rates."""
    ev = block.get("evidence") or {}
    bins = [b for b in (ev.get("curve") or []) if b.get("n")]
    if not bins:
        ax.text(0.5, 0.5, "no binned evidence", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return False
    x = np.arange(len(bins))
    rate = np.array([b["rate"] for b in bins], dtype=float)
    n = np.array([b["n"] for b in bins], dtype=float)
    low, high = zip(*(_wilson(r * k, k) for r, k in zip(rate, n)))
    err = np.clip(np.vstack([rate - np.array(low), np.array(high) - rate]), 0, None)
    t = block.get("threshold")
    t_pos = _position(t, bins)
    colours = [REACHED if (t_pos is not None and xi > t_pos) else NOT_REACHED for xi in x]
    ci = block.get("ci") or [None, None]
    if ci[0] is not None and ci[1] is not None:
        a, b = _position(ci[0], bins), _position(ci[1], bins)
        if a is not None and b is not None:
            ax.axvspan(a, max(b, a + 0.06), color=THRESHOLD, alpha=0.14, lw=0,
                       label=f"interval {fmt_number(ci[0])} to {fmt_number(ci[1])}")
    ax.errorbar(x, rate, yerr=err, fmt="none", ecolor="#9a9a9a", elinewidth=1, capsize=2, zorder=2)
    ax.scatter(x, rate, c=colours, s=28 if compact else 36, zorder=3)
    ax.plot(x, rate, color="#bdbdbd", lw=1, zorder=1)
    if t_pos is not None:
        ax.axvline(t_pos, color=THRESHOLD, lw=2, zorder=2, label=f"threshold {fmt_number(t)}")
        below, above = ev.get("rate_below"), ev.get("rate_at_or_above")
        if below is not None:
            ax.hlines(below, -0.5, t_pos, colors=NOT_REACHED, linestyles="--", lw=1.2, zorder=1,
                      label=f"{outcome} below the threshold: {_pct(below)}")
        if above is not None:
            ax.hlines(above, t_pos, len(bins) - 0.5, colors=REACHED, linestyles="--", lw=1.2,
                      zorder=1, label=f"{outcome} at or above: {_pct(above)}")
    labels = [_range_label(b.get("metric_min"), b.get("metric_max")) for b in bins]
    if compact:
        ax.set_xticks(x, labels, fontsize=7)
    else:
        ax.set_xticks(x, [f"{lab}\nn={int(k):,}" for lab, k in zip(labels, n)], fontsize=7.5)
    lo_y = float(np.nanmin(np.array(low)))
    hi_y = float(np.nanmax(np.array(high)))
    pad = max(0.02, (hi_y - lo_y) * 0.12)
    ax.set_ylim(max(0.0, lo_y - pad), min(1.0, hi_y + pad))
    ax.yaxis.set_major_formatter(_percent_formatter())
    ax.set_xlim(-0.6, len(bins) - 0.4)
    ax.set_ylabel(outcome)
    ax.set_xlabel(metric)
    ax.grid(axis="y", alpha=0.3)
    return True


def _percent_formatter():
    from matplotlib.ticker import PercentFormatter

    return PercentFormatter(xmax=1.0, decimals=None)


def _milestone_chart(charts: _Charts, block: dict, *, outcome: str, metric: str) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8.2, 3.9))
    _binned_axes(ax, block, outcome=outcome, metric=metric)
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                  frameon=False)
    return charts.svg(fig)


def _category_charts(charts: _Charts, maturity: dict) -> str:
    cats = maturity.get("categories") or {}
    if not cats:
        return ""
    plt = _plt()
    cols = min(3, len(cats))
    rows = math.ceil(len(cats) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(10, 2.7 * rows), squeeze=False)
    for ax, (name, block) in zip(axes.flat, cats.items()):
        _binned_axes(ax, block, outcome="retention", metric="distinct features used", compact=True)
        ax.set_title(f"{name} (≥ {fmt_number(block.get('threshold'))})")
        ax.set_ylabel("")
    for ax in list(axes.flat)[len(cats):]:
        ax.set_axis_off()
    fig.tight_layout()
    return charts.svg(fig)


def _setup_candidates_chart(charts: _Charts, setup: dict, settings: dict) -> str:
    cands = setup.get("candidates") or {}
    if not cands:
        return ""
    plt = _plt()
    names = list(cands)[::-1]
    y = np.arange(len(names))
    fig, (ax1, ax2) = plt.subplots(
        1, 2, figsize=(10, 0.45 * len(names) + 1.3), sharey=True,
        gridspec_kw={"width_ratios": [1, 1.5], "wspace": 0.08},
    )
    sel = [bool(cands[s].get("selected")) for s in names]
    colour = [ACCENT if s else "#9a9a9a" for s in sel]
    prev = [cands[s].get("prevalence") or 0.0 for s in names]
    ax1.barh(y, prev, color=colour, height=0.6)
    for yi, p in zip(y, prev):
        ax1.annotate(_pct(p), (p, yi), xytext=(3, 0), textcoords="offset points", va="center", fontsize=7.5)
    maxp = settings.get("setup_max_prevalence")
    if maxp is not None:
        ax1.axvline(maxp, color="#444", ls=":", lw=1)
        ax1.text(maxp, 1.0, f"routine above {_pct(maxp)} ", transform=ax1.get_xaxis_transform(),
                 fontsize=7, ha="right", va="bottom", color="#444")
    ax1.set_xlim(0, 1.12)
    ax1.xaxis.set_major_formatter(_percent_formatter())
    ax1.set_xlabel("prevalence (share of accounts doing the step)")
    ax1.set_yticks(y, [f"{s}  ✓" if c else s for s, c in zip(names, sel)])
    for tick, c in zip(ax1.get_yticklabels(), sel):
        tick.set_fontweight("bold" if c else "normal")
    for yi, s in zip(y, names):
        c = cands[s]
        lift = c.get("lift")
        lo, hi = (c.get("lift_ci") or [None, None])[:2]
        if lift is None:
            continue
        col = ACCENT if c.get("selected") else "#9a9a9a"
        if lo is not None and hi is not None:
            ax2.hlines(yi, lo, hi, color=col, lw=2)
        ax2.plot([lift], [yi], "o", color=col, ms=6)
        ax2.annotate(f"{_lift(lift)} ({_lift_ci([lo, hi])})", (hi if hi is not None else lift, yi),
                     xytext=(4, 0), textcoords="offset points", va="center", fontsize=7.5)
    ax2.axvline(1.0, color="#444", lw=0.8)
    ml = settings.get("setup_min_lift")
    if ml is not None:
        ax2.axvline(ml, color=THRESHOLD, ls="--", lw=1.2, label=f"minimum lift {fmt_number(ml)}")
        ax2.legend(fontsize=7.5, loc="lower right", frameon=False)
    lifts = [v for s in names for v in (cands[s].get("lift_ci") or []) if v is not None]
    if lifts:
        ax2.set_xlim(min(0.7, min(lifts) - 0.05), max(lifts) * 1.28)
    ax2.set_xlabel("activation lift (done / not done), with interval")
    ax2.grid(axis="x", alpha=0.3)
    return charts.svg(fig)


def _setup_steps_chart(charts: _Charts, setup: dict) -> str:
    by = (setup.get("evidence") or {}).get("by_steps_done") or []
    if len(by) < 2:
        return ""
    plt = _plt()
    total = len(setup.get("steps") or [])
    fig, ax = plt.subplots(figsize=(7, 2.8))
    x = [b["steps_done"] for b in by]
    r = [b["activation_rate"] for b in by]
    cols = [REACHED if k == total else NOT_REACHED for k in x]
    bars = ax.bar(x, r, color=cols, width=0.6)
    for b, row in zip(bars, by):
        ax.annotate(f"{_pct(row['activation_rate'])}\nn={row['n']:,}", (b.get_x() + b.get_width() / 2, b.get_height()),
                    xytext=(0, 2), textcoords="offset points", ha="center", fontsize=7.5)
    ax.set_xticks(x, [f"{k} of {total}" for k in x])
    ax.set_xlabel("selected setup steps done in the setup window")
    ax.set_ylabel("activation rate")
    ax.set_ylim(0, min(1.0, max(r) * 1.3 + 0.05))
    ax.yaxis.set_major_formatter(_percent_formatter())
    ax.grid(axis="y", alpha=0.3)
    return charts.svg(fig)


def _place_labels(ax, xs, ys, texts, colours, fontsize: float = 7.5) -> None:
    """Label points without overlaps: greedy placement, most important points first.

    Each label tries offsets around its point at growing distances and takes the first
    whose box overlaps no placed label, no marker and stays inside the axes; a label placed
    away from its point gets a thin leader line.
    """
    fig = ax.figure
    renderer = fig.canvas.get_renderer()  # limits and scales are set: transforms are final
    to_px = ax.transData.transform
    pts = to_px(np.column_stack([xs, ys]))
    box = ax.get_window_extent(renderer)
    scale = fig.dpi / 72.0
    marker = 4 * scale
    taken = [(px - marker, py - marker, px + marker, py + marker) for px, py in pts]
    placed: list[tuple[float, float, float, float]] = []
    from matplotlib.text import Text

    def overlaps(b, others):
        return sum(
            max(0.0, min(b[2], o[2]) - max(b[0], o[0])) * max(0.0, min(b[3], o[3]) - max(b[1], o[1]))
            for o in others
        )

    directions = [(1, 1), (1, -1), (-1, 1), (-1, -1), (1, 0), (-1, 0), (0, 1), (0, -1),
                  (1, 2), (-1, 2), (1, -2), (-1, -2), (2, 1), (-2, 1), (2, -1), (-2, -1)]
    for i in range(len(texts)):
        probe = Text(0, 0, texts[i], fontsize=fontsize, figure=fig)
        ext = probe.get_window_extent(renderer)
        # a margin around each label: the browser's font may run a little wider
        w, h = ext.width + 6 * scale, ext.height + 2 * scale
        px, py = pts[i]
        best, best_cost = None, math.inf
        for dist in (4, 9, 16, 26, 38, 52, 70, 90):
            for dx, dy in directions:
                norm = math.hypot(dx, dy) / (1.4142 if dx and dy else 1.0)
                ox, oy = dx / norm * dist * scale, dy / norm * dist * scale
                left = px + ox if dx > 0 else (px + ox - w if dx < 0 else px - w / 2)
                bottom = py + oy if dy > 0 else (py + oy - h if dy < 0 else py - h / 2)
                b = (left, bottom, left + w, bottom + h)
                outside = (b[0] < box.x0) or (b[2] > box.x1 + 40 * scale) or (b[1] < box.y0) or (b[3] > box.y1)
                cost = overlaps(b, placed) * 4 + overlaps(b, taken) + (1e6 if outside else 0) + dist * 0.5
                if cost < best_cost:
                    best, best_cost = b, cost
            if best is not None and best_cost <= dist * 0.5 + 1e-9:
                break
        placed.append(best)
        cx = (best[0] + best[2]) / 2
        inv = ax.transData.inverted()
        tx, ty = inv.transform((best[0] + 3 * scale, best[1] + 1 * scale))
        far = math.hypot(cx - px, (best[1] + best[3]) / 2 - py) > 22 * scale
        ax.annotate(
            texts[i], (xs[i], ys[i]), xytext=(tx, ty), textcoords="data", fontsize=fontsize,
            color=colours[i], ha="left", va="bottom", zorder=4,
            arrowprops={"arrowstyle": "-", "color": "#b0b0b0", "lw": 0.6, "shrinkA": 0, "shrinkB": 3}
            if far else None,
        )


def _scatter(charts: _Charts, importance: pd.DataFrame, band: tuple[float, float] | None,
             min_importance: float | None = None) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(10, 6.2))
    if band:
        ax.axvspan(band[0], band[1], color="#e8f4e8", zorder=0, label="prevalence band for candidates")
    imp = importance[["importance_rf", "importance_gbm"]].mean(axis=1).fillna(0.0)
    prev = importance["prevalence"].fillna(0.0)
    for verdict, colour in VERDICT_COLOURS.items():
        sel = importance["verdict"] == verdict
        if sel.any():
            ax.scatter(prev[sel], imp[sel], c=colour, label=VERDICT_WORDS[verdict], s=34, zorder=3,
                       edgecolors="white", linewidths=0.5)
    linthresh = max(float(min_importance or 0.0), 1e-3)
    ax.set_yscale("symlog", linthresh=linthresh, linscale=1.0)
    if min_importance:
        ax.axhline(min_importance, color="#777", ls=":", lw=1, zorder=1,
                   label=f"minimum importance {fmt_number(min_importance)}")
    ax.axhline(0, color="#555", lw=0.6, zorder=1)
    ax.set_xlim(-0.03, 1.1)
    top = float(imp.max()) if len(imp) else 0.01
    bottom = float(imp.min()) if len(imp) else 0.0
    ax.set_ylim(min(bottom * 1.6, -linthresh * 0.5), max(top * 1.6, linthresh * 4))
    order = np.argsort(-imp.to_numpy(), kind="stable")
    _place_labels(
        ax,
        prev.to_numpy()[order],
        imp.to_numpy()[order],
        importance["feature"].astype(str).to_numpy()[order].tolist(),
        [VERDICT_COLOURS.get(v, "#555") for v in importance["verdict"].to_numpy()[order]],
    )
    from matplotlib.ticker import FuncFormatter

    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_major_formatter(_percent_formatter())
    ax.set_xlabel("prevalence (share of accounts using the feature)")
    ax.set_ylabel("importance: drop in test ROC AUC (symmetric log scale)")
    ax.legend(fontsize=8, loc="upper left", frameon=True, framealpha=0.9)
    ax.grid(alpha=0.25)
    return charts.svg(fig)


def _stage_table(scores: pd.DataFrame) -> list[dict]:
    from models.scoring import STAGES

    counts = scores["stage"].astype(str).value_counts()
    order = list(STAGES) + [s for s in counts.index if s not in STAGES]
    total = max(1, int(counts.sum()))
    return [
        {"stage": s, "meaning": STAGE_WORDS.get(s, ""), "n": int(counts.get(s, 0)),
         "share": int(counts.get(s, 0)) / total}
        for s in order
    ]


def _stages_chart(charts: _Charts, stages: list[dict]) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 0.5 * len(stages) + 0.9))
    names = [s["stage"] for s in stages][::-1]
    shares = [s["share"] for s in stages][::-1]
    counts = [s["n"] for s in stages][::-1]
    palette = ["#c6dbef", "#9ecae1", "#6baed6", "#3182bd", "#08519c", "#08306b"]
    cols = [palette[min(i, len(palette) - 1)] for i in range(len(stages))][::-1]
    ax.barh(names, shares, color=cols, height=0.62)
    for yi, (s, c) in enumerate(zip(shares, counts)):
        ax.annotate(f"{_pct(s)}  ({c:,})", (s, yi), xytext=(4, 0), textcoords="offset points",
                    va="center", fontsize=8)
    ax.set_xlim(0, max(shares + [0.1]) * 1.25)
    ax.xaxis.set_major_formatter(_percent_formatter())
    ax.set_xlabel("share of live accounts")
    ax.grid(axis="x", alpha=0.3)
    return charts.svg(fig)


def _retention_chart(charts: _Charts, curves: dict) -> str:
    names = [n for n in ("setup", "activation", "utilization", "maturity") if n in curves]
    if not names:
        return ""
    from matplotlib.ticker import MaxNLocator

    plt = _plt()
    fig, axes = plt.subplots(2, 2, figsize=(10, 6.4), sharey=True, squeeze=False)
    for ax, name in zip(axes.flat, names):
        block = curves[name]
        for key, colour, words in (("reached", REACHED, "reached"), ("not_reached", NOT_REACHED, "not reached")):
            c = block.get(key) or {}
            if not c.get("months"):
                continue
            ax.step(c["months"], c["share"], where="post", color=colour, lw=1.8,
                    label=f"{words} (n={c['n']:,})")
        ax.set_title(f"{MILESTONE_WORDS[name]}: from {block.get('anchor', 'the anchor')}", fontsize=9)
        ax.yaxis.set_major_formatter(_percent_formatter())
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7.5, loc="lower left", frameon=False)
        ax.set_xlabel("months since then")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in list(axes.flat)[len(names):]:
        ax.set_axis_off()
    for ax in axes[:, 0]:
        ax.set_ylabel("still a customer")
    lows = [min(c.get("share") or [1.0]) for b in curves.values() for k, c in b.items() if isinstance(c, dict)]
    axes[0, 0].set_ylim(max(0.0, min(lows + [1.0]) - 0.05), 1.01)
    fig.tight_layout()
    return charts.svg(fig)


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
        rows.append({
            "title": MILESTONE_WORDS[name], "anchor": b.get("anchor"),
            "n1": r.get("n"), "r6": _curve_at(r, 6), "r12": _curve_at(r, 12),
            "n0": n.get("n"), "n6": _curve_at(n, 6), "n12": _curve_at(n, 12),
        })
    return rows


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
            rows.append({
                "title": MILESTONE_WORDS[name], "outcome": outcome,
                **{k: b.get(k) for k in ("n_reached", "n_not_reached", "rate_reached",
                                         "rate_not_reached", "lift", "lift_ci")},
                "checked": outcome == checked,
                "enough": enough,
                "low": enough and lift is not None and lift < bound,
            })
    return rows


def _cohort_chart(charts: _Charts, rows: list[dict], bound: float) -> str:
    rows = [r for r in rows if r["checked"] and r["lift"] is not None and r["enough"]]
    if not rows:
        return ""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 0.55 * len(rows) + 1.0))
    y = np.arange(len(rows))[::-1]
    for yi, r in zip(y, rows):
        col = NOT_REACHED if r["low"] else ACCENT
        lo, hi = (r.get("lift_ci") or [None, None])[:2]
        if lo is not None and hi is not None:
            ax.hlines(yi, lo, hi, color=col, lw=2)
        ax.plot([r["lift"]], [yi], "o", color=col, ms=6)
        ax.annotate(_lift(r["lift"]), (r["lift"], yi), xytext=(0, 6), textcoords="offset points",
                    ha="center", fontsize=7.5)
    ax.axvline(1.0, color="#444", lw=0.8)
    ax.axvline(bound, color=THRESHOLD, ls="--", lw=1.2, label=f"warning below {fmt_number(bound)}")
    ax.set_yticks(y, [f"{r['title']} ({r['outcome']})" for r in rows])
    ax.set_xlabel("lift on the newest cohort (reached / not reached), with interval")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=7.5, loc="lower right", frameon=False)
    ax.set_ylim(-0.7, len(rows) - 0.3)
    return charts.svg(fig)


def _psi_chart(charts: _Charts, drift: list[dict], top: int = 12) -> str:
    rows = [r for r in drift if r.get("psi") is not None][:top]
    if not rows or max(r["psi"] for r in rows) < 0.01:
        return ""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 0.32 * len(rows) + 1.0))
    names = [r["feature"] for r in rows][::-1]
    psi = [r["psi"] for r in rows][::-1]
    cols = ["#c5221f" if p >= 0.25 else ("#e08214" if p >= 0.1 else "#9ecae1") for p in psi]
    ax.barh(names, psi, color=cols, height=0.6)
    for yi, p in enumerate(psi):
        ax.annotate(f"{p:.3g}", (p, yi), xytext=(3, 0), textcoords="offset points", va="center", fontsize=7.5)
    for bound in (0.1, 0.25):
        ax.axvline(bound, color="#777", ls=":", lw=1)
    ax.set_xlim(0, max(max(psi) * 1.25, 0.3))
    ax.set_xlabel(f"PSI of prevalence (the {len(rows)} largest)")
    ax.grid(axis="x", alpha=0.3)
    return charts.svg(fig)


# ----------------------------------------------------------------------------- the page


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else None


def _overview(thresholds: dict, scores: pd.DataFrame) -> list[dict]:
    share_now = {
        "setup": "setup_complete", "activation": "activated", "utilization": "utilized", "maturity": "mature",
    }
    rows = []
    for name in ("setup", "activation", "utilization", "maturity"):
        m = thresholds[name]
        ev = m.get("evidence") or {}
        col = share_now[name]
        if name == "setup":
            w, wo, lift = ev.get("activation_rate_complete"), ev.get("activation_rate_incomplete"), ev.get("lift")
        else:
            w, wo, lift = ev.get("rate_at_or_above"), ev.get("rate_below"), ev.get("lift")
        rows.append({
            "name": name, "title": MILESTONE_WORDS[name], "rule": m.get("rule"),
            "share_now": float(scores[col].astype(bool).mean()) if col in scores and len(scores) else None,
            "with": w, "without": wo, "lift": lift,
        })
    return rows


def _auc_sentence(metrics: dict) -> str | None:
    gbm, base = (metrics.get("gbm") or {}).get("roc_auc"), (metrics.get("baseline") or {}).get("roc_auc")
    if gbm is None or base is None:
        return None
    gain = gbm - base
    if gain >= 0.02:
        verdict = "so product usage adds real information beyond the plan"
    elif gain >= 0:
        verdict = "so product usage adds little beyond the plan on this data"
    else:
        verdict = (
            "so on this data the plan alone ranks better: read the feature ranking with caution"
        )
    return (
        f"On the newest months, which the models never saw, the model that reads product usage "
        f"ranks staying accounts above leaving ones with a ROC AUC of {gbm:.3f}, against {base:.3f} "
        f"for a baseline that knows only the plan and seats ({gain:+.3f}), {verdict}."
    )


def _cohort_words(review: dict | None) -> dict:
    if not review:
        return {}
    cohort = review.get("cohort") or {}

    def join(values):
        values = list(values or [])
        return ", ".join(values[:-1]) + (" and " if len(values) > 1 else "") + (values[-1] if values else "")

    tenure = next((cohort[n]["cohort"] for n in ("activation", "setup") if cohort.get(n)), [])
    snaps = next((cohort[n]["cohort"] for n in ("utilization", "maturity") if cohort.get(n)), [])
    act = ((cohort.get("setup") or {}).get("activation") or {}).get("cohort")
    return {"tenure": join(tenure) or "–", "snapshots": join(snaps) or "–",
            "setup_activation": join(act) if act else None}


def render_report(folder: Path, band: tuple[float, float] | None = None, run_id: str | None = None) -> str:
    """The report's HTML from the files of one run folder.

    Parameters
    ----------
    folder : Path
        Holds ``thresholds.json``, ``summary.json``, ``importance.csv`` and ``scores.parquet``;
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
    importance = pd.read_csv(folder / "importance.csv")
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

    charts = _Charts()
    stages = _stage_table(scores)
    cohort_rows = _cohort_rows(review) if review else []
    rendered = {
        "setup_candidates": _setup_candidates_chart(charts, thresholds["setup"], settings),
        "setup_steps": _setup_steps_chart(charts, thresholds["setup"]),
        "activation": _milestone_chart(
            charts, thresholds["activation"], outcome="retention",
            metric="activation events in the first days (groups of accounts)",
        ),
        "utilization": _milestone_chart(
            charts, thresholds["utilization"], outcome="retention",
            metric="utilization rate (groups of account-months)",
        ),
        "maturity": _milestone_chart(
            charts, thresholds["maturity"], outcome="retention", metric="mature categories",
        ),
        "maturity_categories": _category_charts(charts, thresholds["maturity"]),
        "retention": _retention_chart(charts, curves),
        "scatter": _scatter(charts, importance, band, settings.get("min_importance")),
        "stages": _stages_chart(charts, stages),
        "cohort": _cohort_chart(charts, cohort_rows, (review or {}).get("min_lift", 1.0)),
        "psi": _psi_chart(charts, ((review or {}).get("previous") or {}).get("prevalence_drift") or []),
    }
    confidence = (thresholds["activation"].get("evidence") or {}).get("confidence") or 0.95
    env = Environment(autoescape=select_autoescape(default=True))
    env.globals.update(
        fmt=fmt_number, fmt_ci=_fmt_ci, pct=_pct, num=_num, fmt3=_fmt3, signed=_signed,
        lift=_lift, lift_ci=_lift_ci, imp=_imp,
        colours=VERDICT_COLOURS, verdict_words=VERDICT_WORDS, model_words=MODEL_WORDS,
        reasons=REASON_WORDS,
    )
    horizon_days = settings.get("horizon_days")
    return env.from_string(TEMPLATE).render(
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
        auc_sentence=_auc_sentence(summary.get("metrics") or {}),
        validation=validation,
        importance=importance.to_dict(orient="records"),
        stages=stages,
        curve_rows=_curve_rows(curves),
        review=review,
        cohort_rows=cohort_rows,
        cohort_words=_cohort_words(review),
        promotion=promotion,
        settings=settings,
        charts=rendered,
        max_psi=max(
            [r["psi"] for r in ((review or {}).get("previous") or {}).get("prevalence_drift") or []
             if r.get("psi") is not None] or [None], key=lambda v: -1 if v is None else v,
        ),
        confidence=f"{100 * float(confidence):.0f}%",
        horizon=f"{horizon_days} days" if horizon_days else "the retention horizon",
    )


def write_report(folder: Path) -> Path:
    """Write ``report.html`` into a run folder (see :func:`render_report`)."""
    path = Path(folder) / "report.html"
    path.write_text(render_report(folder), encoding="utf-8")
    return path
