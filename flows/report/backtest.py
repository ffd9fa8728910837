"""The backtest's report section: ``backtest.json`` into ``backtest.html``.

The page is the template ``backtest.html.j2`` beside this module, styled like the run's
report and rendered with autoescaping on: every name that comes from the data (events,
categories, rules) is escaped.
"""

from __future__ import annotations

from flows.report.format import (
    MILESTONE_WORDS,
    fmt_3,
    fmt_count,
    fmt_lift,
    fmt_lift_ci,
    fmt_number,
    fmt_pct,
    fmt_signed,
    page_environment,
)

#: The page template, beside this module (package data: ``flows/report/*.j2``).
TEMPLATE = "backtest.html.j2"

_ENV = page_environment(
    fmt=fmt_number,
    pct=fmt_pct,
    num=fmt_count,
    fmt3=fmt_3,
    signed=fmt_signed,
    lift=fmt_lift,
    lift_ci=fmt_lift_ci,
    milestone_words=MILESTONE_WORDS,
)


def render_backtest(result: dict) -> str:
    """The backtest page of ``result`` (the content of ``backtest.json``)."""
    origins = [o["origin"] for o in result["origins"]]
    return _ENV.get_template(TEMPLATE).render(r=result, origins=origins)
