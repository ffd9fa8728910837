"""The report's charts: matplotlib figures rendered to inline SVG.

Text stays text in the SVG (searchable and small), so the page needs no network and no
script. Every chart function takes a :class:`Charts`, which keeps element ids unique across
the page, and returns the SVG markup (or ``""`` when there is nothing to draw). The markup
is made here, from numbers and from names that matplotlib escapes; the template marks only
these charts ``|safe``.
"""

from __future__ import annotations

import io
import math
import re

import numpy as np
import pandas as pd

from flows.report.format import (
    MILESTONE_WORDS,
    VERDICT_COLOURS,
    VERDICT_WORDS,
    fmt_lift,
    fmt_lift_ci,
    fmt_number,
    fmt_pct,
)

#: Okabe-Ito colours, readable by colour-blind readers.
REACHED, NOT_REACHED, THRESHOLD, ACCENT = "#0072B2", "#D55E00", "#CC79A7", "#009E73"


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
            # names come from the data (events, categories): an event named `$\foo$` is
            # drawn as spelt, never parsed as mathtext (which raised and failed the run)
            "text.parse_math": False,
            "text.usetex": False,
        }
    )
    return plt


class Charts:
    """Renders figures to inline SVG with ids unique across the page."""

    def __init__(self) -> None:
        self.count = 0

    def svg(self, fig) -> str:
        plt = _plt()
        buf = io.StringIO()
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
        plt.close(fig)
        text = buf.getvalue()
        text = text[text.index("<svg") :]
        text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.DOTALL)
        self.count += 1
        prefix = f"c{self.count}-"
        text = re.sub(r'id="([^"]+)"', lambda m: f'id="{prefix}{m.group(1)}"', text)
        text = re.sub(r"url\(#([^)]+)\)", lambda m: f"url(#{prefix}{m.group(1)})", text)
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
    low, high = zip(*(_wilson(r * k, k) for r, k in zip(rate, n, strict=True)), strict=True)
    err = np.clip(np.vstack([rate - np.array(low), np.array(high) - rate]), 0, None)
    t = block.get("threshold")
    t_pos = _position(t, bins)
    colours = [REACHED if (t_pos is not None and xi > t_pos) else NOT_REACHED for xi in x]
    ci = block.get("ci") or [None, None]
    if ci[0] is not None and ci[1] is not None:
        a, b = _position(ci[0], bins), _position(ci[1], bins)
        if a is not None and b is not None:
            ax.axvspan(
                a,
                max(b, a + 0.06),
                color=THRESHOLD,
                alpha=0.14,
                lw=0,
                label=f"interval {fmt_number(ci[0])} to {fmt_number(ci[1])}",
            )
    ax.errorbar(x, rate, yerr=err, fmt="none", ecolor="#9a9a9a", elinewidth=1, capsize=2, zorder=2)
    ax.scatter(x, rate, c=colours, s=28 if compact else 36, zorder=3)
    ax.plot(x, rate, color="#bdbdbd", lw=1, zorder=1)
    if t_pos is not None:
        ax.axvline(t_pos, color=THRESHOLD, lw=2, zorder=2, label=f"threshold {fmt_number(t)}")
        below, above = ev.get("rate_below"), ev.get("rate_at_or_above")
        if below is not None:
            ax.hlines(
                below,
                -0.5,
                t_pos,
                colors=NOT_REACHED,
                linestyles="--",
                lw=1.2,
                zorder=1,
                label=f"{outcome} below the threshold: {fmt_pct(below)}",
            )
        if above is not None:
            ax.hlines(
                above,
                t_pos,
                len(bins) - 0.5,
                colors=REACHED,
                linestyles="--",
                lw=1.2,
                zorder=1,
                label=f"{outcome} at or above: {fmt_pct(above)}",
            )
    labels = [_range_label(b.get("metric_min"), b.get("metric_max")) for b in bins]
    if compact:
        ax.set_xticks(x, labels, fontsize=7)
    else:
        ax.set_xticks(
            x, [f"{lab}\nn={int(k):,}" for lab, k in zip(labels, n, strict=True)], fontsize=7.5
        )
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


def milestone_chart(charts: Charts, block: dict, *, outcome: str, metric: str) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8.2, 3.9))
    _binned_axes(ax, block, outcome=outcome, metric=metric)
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(
            handles, labels, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False
        )
    return charts.svg(fig)


def category_charts(charts: Charts, maturity: dict) -> str:
    cats = maturity.get("categories") or {}
    if not cats:
        return ""
    plt = _plt()
    cols = min(3, len(cats))
    rows = math.ceil(len(cats) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(10, 2.7 * rows), squeeze=False)
    for ax, (name, block) in zip(axes.flat, cats.items(), strict=False):
        _binned_axes(ax, block, outcome="retention", metric="distinct features used", compact=True)
        ax.set_title(f"{name} (≥ {fmt_number(block.get('threshold'))})")
        ax.set_ylabel("")
    for ax in list(axes.flat)[len(cats) :]:
        ax.set_axis_off()
    fig.tight_layout()
    return charts.svg(fig)


def setup_candidates_chart(charts: Charts, setup: dict, settings: dict) -> str:
    cands = setup.get("candidates") or {}
    if not cands:
        return ""
    plt = _plt()
    names = list(cands)[::-1]
    y = np.arange(len(names))
    fig, (ax1, ax2) = plt.subplots(
        1,
        2,
        figsize=(10, 0.45 * len(names) + 1.3),
        sharey=True,
        gridspec_kw={"width_ratios": [1, 1.5], "wspace": 0.08},
    )
    sel = [bool(cands[s].get("selected")) for s in names]
    colour = [ACCENT if s else "#9a9a9a" for s in sel]
    prev = [cands[s].get("prevalence") or 0.0 for s in names]
    ax1.barh(y, prev, color=colour, height=0.6)
    for yi, p in zip(y, prev, strict=True):
        ax1.annotate(
            fmt_pct(p),
            (p, yi),
            xytext=(3, 0),
            textcoords="offset points",
            va="center",
            fontsize=7.5,
        )
    maxp = settings.get("setup_max_prevalence")
    if maxp is not None:
        ax1.axvline(maxp, color="#444", ls=":", lw=1)
        ax1.text(
            maxp,
            1.0,
            f"routine above {fmt_pct(maxp)} ",
            transform=ax1.get_xaxis_transform(),
            fontsize=7,
            ha="right",
            va="bottom",
            color="#444",
        )
    ax1.set_xlim(0, 1.12)
    ax1.xaxis.set_major_formatter(_percent_formatter())
    ax1.set_xlabel("prevalence (share of accounts doing the step)")
    ax1.set_yticks(y, [f"{s}  ✓" if c else s for s, c in zip(names, sel, strict=True)])
    for tick, c in zip(ax1.get_yticklabels(), sel, strict=True):
        tick.set_fontweight("bold" if c else "normal")
    for yi, s in zip(y, names, strict=True):
        c = cands[s]
        lift = c.get("lift")
        lo, hi = (c.get("lift_ci") or [None, None])[:2]
        if lift is None:
            continue
        col = ACCENT if c.get("selected") else "#9a9a9a"
        if lo is not None and hi is not None:
            ax2.hlines(yi, lo, hi, color=col, lw=2)
        ax2.plot([lift], [yi], "o", color=col, ms=6)
        ax2.annotate(
            f"{fmt_lift(lift)} ({fmt_lift_ci([lo, hi])})",
            (hi if hi is not None else lift, yi),
            xytext=(4, 0),
            textcoords="offset points",
            va="center",
            fontsize=7.5,
        )
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


def setup_steps_chart(charts: Charts, setup: dict) -> str:
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
    for b, row in zip(bars, by, strict=True):
        ax.annotate(
            f"{fmt_pct(row['activation_rate'])}\nn={row['n']:,}",
            (b.get_x() + b.get_width() / 2, b.get_height()),
            xytext=(0, 2),
            textcoords="offset points",
            ha="center",
            fontsize=7.5,
        )
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
            max(0.0, min(b[2], o[2]) - max(b[0], o[0]))
            * max(0.0, min(b[3], o[3]) - max(b[1], o[1]))
            for o in others
        )

    directions = [
        (1, 1),
        (1, -1),
        (-1, 1),
        (-1, -1),
        (1, 0),
        (-1, 0),
        (0, 1),
        (0, -1),
        (1, 2),
        (-1, 2),
        (1, -2),
        (-1, -2),
        (2, 1),
        (-2, 1),
        (2, -1),
        (-2, -1),
    ]
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
                outside = (
                    (b[0] < box.x0)
                    or (b[2] > box.x1 + 40 * scale)
                    or (b[1] < box.y0)
                    or (b[3] > box.y1)
                )
                cost = (
                    overlaps(b, placed) * 4
                    + overlaps(b, taken)
                    + (1e6 if outside else 0)
                    + dist * 0.5
                )
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
            texts[i],
            (xs[i], ys[i]),
            xytext=(tx, ty),
            textcoords="data",
            fontsize=fontsize,
            color=colours[i],
            ha="left",
            va="bottom",
            zorder=4,
            arrowprops={
                "arrowstyle": "-",
                "color": "#b0b0b0",
                "lw": 0.6,
                "shrinkA": 0,
                "shrinkB": 3,
            }
            if far
            else None,
        )


def importance_chart(
    charts: Charts,
    importance: pd.DataFrame,
    band: tuple[float, float] | None,
    min_importance: float | None = None,
) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(10, 6.2))
    if band:
        ax.axvspan(
            band[0], band[1], color="#e8f4e8", zorder=0, label="prevalence band for candidates"
        )
    imp = importance[["importance_rf", "importance_gbm"]].mean(axis=1).fillna(0.0)
    prev = importance["prevalence"].fillna(0.0)
    for verdict, colour in VERDICT_COLOURS.items():
        sel = importance["verdict"] == verdict
        if sel.any():
            ax.scatter(
                prev[sel],
                imp[sel],
                c=colour,
                label=VERDICT_WORDS[verdict],
                s=34,
                zorder=3,
                edgecolors="white",
                linewidths=0.5,
            )
    linthresh = max(float(min_importance or 0.0), 1e-3)
    ax.set_yscale("symlog", linthresh=linthresh, linscale=1.0)
    if min_importance:
        ax.axhline(
            min_importance,
            color="#777",
            ls=":",
            lw=1,
            zorder=1,
            label=f"minimum importance {fmt_number(min_importance)}",
        )
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


def stages_chart(charts: Charts, stages: list[dict]) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 0.5 * len(stages) + 0.9))
    names = [s["stage"] for s in stages][::-1]
    shares = [s["share"] for s in stages][::-1]
    counts = [s["n"] for s in stages][::-1]
    palette = ["#c6dbef", "#9ecae1", "#6baed6", "#3182bd", "#08519c", "#08306b"]
    cols = [palette[min(i, len(palette) - 1)] for i in range(len(stages))][::-1]
    ax.barh(names, shares, color=cols, height=0.62)
    for yi, (s, c) in enumerate(zip(shares, counts, strict=True)):
        ax.annotate(
            f"{fmt_pct(s)}  ({c:,})",
            (s, yi),
            xytext=(4, 0),
            textcoords="offset points",
            va="center",
            fontsize=8,
        )
    ax.set_xlim(0, max(shares + [0.1]) * 1.25)
    ax.xaxis.set_major_formatter(_percent_formatter())
    ax.set_xlabel("share of live accounts")
    ax.grid(axis="x", alpha=0.3)
    return charts.svg(fig)


def retention_chart(charts: Charts, curves: dict) -> str:
    names = [n for n in ("setup", "activation", "utilization", "maturity") if n in curves]
    if not names:
        return ""
    from matplotlib.ticker import MaxNLocator

    plt = _plt()
    fig, axes = plt.subplots(2, 2, figsize=(10, 6.4), sharey=True, squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        block = curves[name]
        for key, colour, words in (
            ("reached", REACHED, "reached"),
            ("not_reached", NOT_REACHED, "not reached"),
        ):
            c = block.get(key) or {}
            if not c.get("months"):
                continue
            ax.step(
                c["months"],
                c["share"],
                where="post",
                color=colour,
                lw=1.8,
                label=f"{words} (n={c['n']:,})",
            )
        ax.set_title(
            f"{MILESTONE_WORDS[name]}: from {block.get('anchor', 'the anchor')}", fontsize=9
        )
        ax.yaxis.set_major_formatter(_percent_formatter())
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7.5, loc="lower left", frameon=False)
        ax.set_xlabel("months since then")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in list(axes.flat)[len(names) :]:
        ax.set_axis_off()
    for ax in axes[:, 0]:
        ax.set_ylabel("still a customer")
    lows = [
        min(c.get("share") or [1.0])
        for b in curves.values()
        for k, c in b.items()
        if isinstance(c, dict)
    ]
    axes[0, 0].set_ylim(max(0.0, min(lows + [1.0]) - 0.05), 1.01)
    fig.tight_layout()
    return charts.svg(fig)


def cohort_chart(charts: Charts, rows: list[dict], bound: float) -> str:
    rows = [r for r in rows if r["checked"] and r["lift"] is not None and r["enough"]]
    if not rows:
        return ""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 0.55 * len(rows) + 1.0))
    y = np.arange(len(rows))[::-1]
    for yi, r in zip(y, rows, strict=True):
        col = NOT_REACHED if r["low"] else ACCENT
        lo, hi = (r.get("lift_ci") or [None, None])[:2]
        if lo is not None and hi is not None:
            ax.hlines(yi, lo, hi, color=col, lw=2)
        ax.plot([r["lift"]], [yi], "o", color=col, ms=6)
        ax.annotate(
            fmt_lift(r["lift"]),
            (r["lift"], yi),
            xytext=(0, 6),
            textcoords="offset points",
            ha="center",
            fontsize=7.5,
        )
    ax.axvline(1.0, color="#444", lw=0.8)
    ax.axvline(bound, color=THRESHOLD, ls="--", lw=1.2, label=f"warning below {fmt_number(bound)}")
    ax.set_yticks(y, [f"{r['title']} ({r['outcome']})" for r in rows])
    ax.set_xlabel("lift on the review cohort (reached / not reached), with interval")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=7.5, loc="lower right", frameon=False)
    ax.set_ylim(-0.7, len(rows) - 0.3)
    return charts.svg(fig)


def psi_chart(charts: Charts, drift: list[dict], top: int = 12) -> str:
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
        ax.annotate(
            f"{p:.3g}",
            (p, yi),
            xytext=(3, 0),
            textcoords="offset points",
            va="center",
            fontsize=7.5,
        )
    for bound in (0.1, 0.25):
        ax.axvline(bound, color="#777", ls=":", lw=1)
    ax.set_xlim(0, max(max(psi) * 1.25, 0.3))
    ax.set_xlabel(f"PSI of prevalence (the {len(rows)} largest)")
    ax.grid(axis="x", alpha=0.3)
    return charts.svg(fig)
