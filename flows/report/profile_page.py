"""The data profile's page: a profile (:func:`flows.steps.profile.build_profile`) into HTML.

The page is the template ``profile.html.j2`` beside this module, rendered with autoescaping
on: every name that comes from the data (events, plans, sources) is escaped. Bars are plain
``<div>`` widths computed here, so the page needs no script and no chart library.
"""

from __future__ import annotations

from typing import Any

from flows.report.format import fmt_count, fmt_lift, fmt_number, fmt_pct, page_environment

#: The page template, beside this module (package data: ``flows/report/*.j2``).
TEMPLATE = "profile.html.j2"
#: Events listed on the page (all of them are in profile.json).
MAX_EVENTS = 300

_ENV = page_environment(fmt=fmt_number, pct=fmt_pct, num=fmt_count, lift=fmt_lift)


def _width(value: Any, top: float) -> float:
    """A bar's width in percent of the widest (0 for a missing value)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return 0.0
    return round(100.0 * v / top, 1) if top > 0 and v == v else 0.0


def render_profile(profile: dict) -> str:
    """The profile page as one self-contained HTML document."""
    months = list(profile.get("churn_by_month") or [])
    top_rate = max((m.get("churn_rate") or 0.0 for m in months), default=0.0)
    for m in months:
        m["bar"] = _width(m.get("churn_rate"), top_rate)
    events = list(profile.get("events") or [])[:MAX_EVENTS]
    top_reach = max((e.get("reach") or 0.0 for e in events), default=0.0)
    for e in events:
        e["bar"] = _width(e.get("reach"), top_reach)
    seats = list((profile.get("seats") or {}).get("distribution") or [])
    top_seats = max((s.get("accounts") or 0 for s in seats), default=0)
    for s in seats:
        s["bar"] = _width(s.get("accounts"), top_seats)
    return _ENV.get_template(TEMPLATE).render(
        p=profile,
        months=months,
        events=events,
        n_events=len(profile.get("events") or []),
        seats=seats,
        max_events=MAX_EVENTS,
    )
