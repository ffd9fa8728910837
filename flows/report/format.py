"""How the report prints values: numbers, shares, lifts, and the words for the run's codes.

Each formatter takes what a run's files hold (a number, ``None``, NaN or a Jinja2
``Undefined``) and returns plain text, ``"–"`` for a missing value. The page escapes the
text (the template is autoescaped), so none of these return markup.
"""

from __future__ import annotations

import html
from typing import Any

import numpy as np
import pandas as pd
from jinja2 import Environment, PackageLoader, Undefined, select_autoescape

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
REASON_WORDS = {
    "lift": "lifts activation",
    "routine": "routine: done by nearly everyone",
    "no_lift": "no clear lift in activation",
}


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


def fmt_ci(ci) -> str:
    """An interval ``lo – hi`` of two numbers (see :func:`fmt_number`)."""
    if not ci or len(ci) != 2 or all(_missing(c) for c in ci):
        return "–"
    return f"{fmt_number(ci[0])} – {fmt_number(ci[1])}"


def fmt_pct(v) -> str:
    """A share as a percentage with one decimal."""
    return "–" if _missing(v) else f"{100 * float(v):.1f}%"


def fmt_count(v) -> str:
    """A count with thousands separators."""
    return "–" if _missing(v) else f"{int(v):,}"


def fmt_lift(v) -> str:
    """A lift (a ratio of two rates) to two decimals."""
    return "–" if _missing(v) else f"{float(v):.2f}"


def fmt_lift_ci(ci) -> str:
    """An interval of two lifts."""
    if not ci or len(ci) != 2 or all(_missing(c) for c in ci):
        return "–"
    return f"{fmt_lift(ci[0])} – {fmt_lift(ci[1])}"


def fmt_importance(v) -> str:
    """A permutation importance to four decimals, with a true minus sign."""
    return "–" if _missing(v) else f"{float(v):.4f}".replace("-", "−")


def fmt_3(v) -> str:
    """A number to three decimals (a ROC AUC)."""
    return "–" if _missing(v) else f"{float(v):.3f}"


def fmt_signed(v, digits: int | None = None) -> str:
    """A change with its sign (``+`` or a true minus), to ``digits`` decimals if given."""
    if _missing(v):
        return "–"
    f = float(v)
    if f == 0:
        return "0"
    text = f"{f:+.{digits}f}" if digits else ("+" if f > 0 else "−") + fmt_number(abs(f))
    return text.replace("-", "−")


def page_environment(**names: Any) -> Environment:
    """The Jinja2 environment of a page template beside this package (``flows/report/*.j2``),
    autoescaped (every name from the data is text), with ``names`` as the template's
    globals (its formatters)."""
    env = Environment(
        loader=PackageLoader("flows.report", ""),
        autoescape=select_autoescape(
            enabled_extensions=("html", "htm", "xml", "j2"), default_for_string=True, default=True
        ),
    )
    env.globals.update(names)
    return env
