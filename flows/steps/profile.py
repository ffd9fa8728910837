"""The data profile (`milestones profile`) and the evidence behind `milestones init`.

:func:`open_sources` reads and validates the two tables as the pipeline does (the readers of
:mod:`features.io`, the column mapping of :mod:`features.mapping`, the contract's rules of
:mod:`features.validation`, churn from silence of :mod:`features.churn` when the accounts
carry no churn date). :func:`build_profile` computes the profile's aggregates in the engine
(:mod:`features.profile`) and reads the proposals off them (:mod:`models.proposals`); the
result is one JSON-ready dictionary, which the page (:mod:`flows.report.profile_page`) and
the proposed configuration (:mod:`flows.steps.init`) both read.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from features.values import jsonable
from flows.errors import InvalidInputError
from flows.steps.inputs import Inputs

log = logging.getLogger("milestones")

#: Accounts sampled for the co-usage correlation (the only per-account data in pandas).
SAMPLE_ACCOUNTS = 20_000
#: Rows of the activation scan kept in the profile.
SCAN_ROWS = 30
#: Points of the inactivity return curve shown.
CURVE_POINTS = (7, 14, 21, 30, 45, 60, 90, 120, 180, 270, 365)
#: Seat buckets of the distribution (lower bounds).
SEAT_BUCKETS = (1, 2, 3, 5, 10, 20, 50, 100, 500, 1000)


@dataclass(frozen=True)
class Sources:
    """Where the inputs are and how to read them (from the command line or a config).

    ``churn`` is ``"column"`` or ``"inactivity"``, or None to decide from the data: churn
    from silence when the accounts have no ``churned_at`` column or no churn date at all.
    ``windows`` holds configured windows (``setup``, ``activation``, ``utilization``,
    ``maturity``, ``horizon``) that replace the proposed ones in the profile.
    """

    accounts: str
    events: str
    database: str | None = None
    columns: dict = field(default_factory=dict)
    timestamps: dict = field(default_factory=dict)
    as_of: dt.datetime | None = None
    engine: str = "duckdb"
    churn: str | None = None
    gap_days: int | None = None
    windows: dict | None = None
    configured_events: dict | None = None


def sources_from_config(cfg: Any) -> Sources:
    """The sources, churn rule and windows of a loaded configuration."""
    m = cfg.milestones
    return Sources(
        accounts=cfg.data.accounts,
        events=cfg.data.events,
        database=cfg.data.database,
        columns=dict(cfg.data.columns),
        timestamps=dict(cfg.data.timestamps),
        as_of=cfg.data.as_of,
        engine=cfg.engine,
        churn=cfg.retention.churn,
        gap_days=cfg.retention.inactivity_gap_days,
        windows={
            "setup": m.setup.window_days,
            "activation": m.activation.window_days,
            "utilization": m.utilization.window_days,
            "maturity": m.maturity.window_days,
            "horizon": cfg.retention.horizon_days,
        },
        configured_events=cfg.configured_events(),
    )


def open_config_inputs(cfg: Any) -> tuple[Inputs, dict]:
    """The inputs of a configuration, read and validated as a run reads them
    (:func:`flows.steps.inputs.open_inputs`), and how churn was obtained."""
    from flows.steps.inputs import open_inputs

    inputs = open_inputs(cfg)
    fit = inputs.validation.get("churn")
    if not fit:
        return inputs, {"source": "column"}
    return inputs, {"source": "inactivity", **{k: v for k, v in fit.items() if k != "curve"}}


def _read_error(exc: Exception) -> InvalidInputError | None:
    """The input error a reading failure means (an engine's or a file's), else None."""
    if isinstance(exc, OSError | ValueError):
        return InvalidInputError(f"cannot read the input data: {exc}")
    if type(exc).__module__.split(".")[0].lstrip("_") in ("duckdb", "pyspark", "py4j"):
        return InvalidInputError(f"cannot read the input data: {exc}")
    return None


def open_sources(src: Sources) -> tuple[Inputs, dict]:
    """Read, map and validate both tables; derive churn from silence when needed.

    Returns
    -------
    (Inputs, dict)
        The typed inputs (churn derived when it comes from silence) and how churn was
        obtained: ``source`` (``column`` or ``inactivity``) and, from silence, the fit.

    Raises
    ------
    InvalidInputError
        When a table cannot be read or a rule of the data contract breaks.
    """
    from features.churn import derive_inactivity_churn, without_churn_column
    from features.io import Source, connect, read_inputs, typed_accounts, typed_events
    from features.mapping import contract_inputs
    from features.validation import validate_inputs

    con = connect(src.engine)
    try:
        accounts_raw, events_raw = contract_inputs(
            *read_inputs(con, Source(src.accounts, src.database), Source(src.events, src.database)),
            columns=src.columns,
            timestamps=src.timestamps,
        )
        churn = src.churn or _churn_source(accounts_raw)
    except Exception as exc:
        error = _read_error(exc)
        if error is None:
            raise
        raise error from None
    report = validate_inputs(
        con,
        accounts_raw,
        events_raw,
        as_of=src.as_of,
        configured_events=src.configured_events,
        churn_column=churn == "column",
    )
    if not report.ok:
        raise InvalidInputError(report.format(), report.to_dict())
    events = typed_events(events_raw)
    if churn == "column":
        inputs = Inputs(con, typed_accounts(accounts_raw), events, report.as_of, report.to_dict())
        return inputs, {"source": "column"}
    accounts, fit = derive_inactivity_churn(
        con,
        typed_accounts(without_churn_column(accounts_raw)),
        events,
        as_of=report.as_of,
        gap_days=src.gap_days,
    )
    return Inputs(con, accounts, events, report.as_of, report.to_dict()), {
        "source": "inactivity",
        **{k: v for k, v in fit.to_dict().items() if k != "curve"},
    }


def _churn_source(accounts_raw: Any) -> str:
    """``column`` when the accounts have a ``churned_at`` column holding at least one date,
    else ``inactivity`` (churn derived from silence)."""
    if "churned_at" not in accounts_raw.columns:
        return "inactivity"
    dated = accounts_raw.churned_at.notnull().sum().execute()
    return "column" if int(dated or 0) > 0 else "inactivity"


# ----------------------------------------------------------------------------- the profile


def _seat_rows(seats: Any) -> list[dict]:
    """Accounts and churned ones per bucket of seats (1, 2, 3-4, 5-9, ...)."""
    import numpy as np

    bounds = list(SEAT_BUCKETS)
    rows = []
    values = seats["seats"].to_numpy(dtype=float)
    for i, lo in enumerate(bounds):
        hi = bounds[i + 1] if i + 1 < len(bounds) else None
        inside = (values >= lo) & (values < hi if hi is not None else np.isfinite(values))
        n = int(seats.loc[inside, "accounts"].sum())
        if not n:
            continue
        label = str(lo) if hi == lo + 1 else (f"{lo}-{hi - 1}" if hi else f"{lo}+")
        rows.append(
            {"seats": label, "accounts": n, "churned": int(seats.loc[inside, "churned"].sum())}
        )
    return rows


def _records(frame: Any, limit: int | None = None) -> list[dict]:
    rows = frame.head(limit) if limit is not None else frame
    return jsonable(rows.to_dict(orient="records"))


def build_profile(
    inputs: Inputs,
    churn: dict,
    *,
    windows: dict | None = None,
    groups: bool = False,
    sample_accounts: int = SAMPLE_ACCOUNTS,
    seed: int = 0,
    sources: dict | None = None,
) -> dict:
    """The profile of the inputs, as one JSON-ready dictionary.

    Parameters
    ----------
    inputs : Inputs
        Validated, typed inputs (:func:`open_sources`, or ``open_inputs`` of a run).
    churn : dict
        How churn was obtained (:func:`open_sources`).
    windows : dict, optional
        Configured windows (see :class:`Sources`); absent ones are proposed from the usage
        frequency and the history's length.
    groups : bool
        Also group the features by co-usage (for ``init``; it samples per-account usage).
    """
    from features import profile as fp
    from features import tables as ft
    from models import proposals as mp

    as_of, con, windows = inputs.as_of, inputs.con, dict(windows or {})
    daily = ft.daily_aggregate(inputs.accounts, inputs.events, as_of=as_of, cache=True)
    over = fp.overview(daily, as_of=as_of)
    history_days = (
        (over.last_event - over.first_signup).days + 1
        if over.first_signup and over.last_event
        else 0
    )
    months = fp.churn_by_month(fp.churn_months(inputs.accounts, as_of=as_of), as_of=as_of)
    frequency = mp.classify_frequency(fp.activity_frequency(daily, as_of=as_of))
    monthly_churn = mp.recent_churn_rate(months)
    proposed = mp.propose_windows(frequency["product"], history_days, monthly_churn)
    horizon = int(windows.get("horizon", proposed["horizon"]))
    scanned = [int(windows["activation"])] if "activation" in windows else []
    scanned = scanned or list(proposed["activation_candidates"])
    usage_windows = sorted({*fp.CANDIDATE_WINDOWS, *mp.SETUP_WINDOWS, *scanned})
    if "setup" in windows:
        usage_windows = sorted({*usage_windows, int(windows["setup"])})
    maturity = int(windows.get("maturity", proposed["maturity"]))
    usage = ft.materialise(
        con,
        "ms_profile_usage",
        fp.usage_table(daily, as_of=as_of, windows=usage_windows, trailing_days=maturity),
    )
    summary = fp.event_summary(daily, usage, windows=usage_windows)
    closed = fp.closed_windows(daily, as_of=as_of, windows=usage_windows)
    setup, setup_window = mp.setup_candidates(summary, closed)
    # a setup step is done once: its count is no amount of use (it has its own milestone)
    one_off = set(setup["event"])
    counts_by_window, scans = {}, {}
    for w in scanned:
        counts_by_window[w] = fp.retention_counts(
            daily, usage, as_of=as_of, window_days=w, horizon_days=horizon
        )
        c = counts_by_window[w]
        scans[w] = mp.activation_scan(c.buckets, c.labelled, c.retained, exclude=one_off)
    activation_window = mp.pick_activation_window(scans) or scanned[0]
    counts, scan = counts_by_window[activation_window], scans[activation_window]
    chosen = {
        "setup": int(windows.get("setup", setup_window)),
        "activation": int(activation_window),
        "utilization": int(windows.get("utilization", proposed["utilization"])),
        "maturity": maturity,
        "horizon": horizon,
    }
    lifts = mp.event_retention(counts.buckets, counts.labelled, counts.retained)
    events = summary.merge(lifts, on="event", how="left")
    events.insert(2, "reach", events["accounts"] / max(over.accounts, 1))
    seats, plans = fp.seats_and_plans(inputs.accounts, as_of=as_of)
    curve, gap, reached = fp.silence_curve(con, daily, as_of=as_of)
    at = {p["gap_days"]: p for p in curve}
    silence = {
        "fitted_gap_days": gap,
        "reached_target": reached,
        "return_rate": at.get(gap, {}).get("return_rate"),
        "curve": [at[g] for g in CURVE_POINTS if g in at],
    }
    plans = plans.assign(
        churn_share=plans["churned"] / plans["accounts"].where(plans["accounts"] > 0)
    )
    profile = {
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "sources": sources or {},
        "as_of": as_of.isoformat(),
        "history": {
            **over.to_dict(),
            "live": over.accounts - over.churned,
            "days": history_days,
            "months": round(history_days / 30.4375, 1),
        },
        "churn": {**churn, "silence": silence},
        "churn_by_month": _records(months),
        "frequency": {**frequency, "monthly_churn": monthly_churn},
        "windows": {
            **chosen,
            "proposed": dict(proposed),
            "configured": sorted(windows),
            "scanned": {
                str(w): (_records(sc, 1)[0] if not sc.empty else None) for w, sc in scans.items()
            },
        },
        "seats": {
            "distribution": _seat_rows(seats),
            "vary": mp.seats_vary(seats),
            "median": _weighted_median(seats),
        },
        "plans": _records(plans),
        "retention": {
            "window_days": counts.window_days,
            "horizon_days": counts.horizon_days,
            "labelled": counts.labelled,
            "retained": counts.retained,
        },
        "events": _records(events),
        "activation_scan": _records(scan, SCAN_ROWS),
        "setup": {"window_days": int(setup_window), "candidates": _records(setup)},
    }
    if groups:
        profile["groups"] = _groups(
            daily, usage, summary, scan, setup, over.accounts, as_of, chosen, seed, sample_accounts
        )
    return jsonable(profile)


def _weighted_median(seats: Any) -> float | None:
    s = seats.dropna(subset=["seats"]).sort_values("seats")
    if s.empty:
        return None
    cum = s["accounts"].cumsum() / s["accounts"].sum()
    return float(s["seats"].to_numpy()[int((cum >= 0.5).to_numpy().argmax())])


def _groups(
    daily, usage, summary, scan, setup, n_accounts, as_of, chosen, seed, sample_accounts
) -> dict:
    """The co-usage groups of the features worth grouping (not setup steps, not the
    proposed activation event, neither niche nor table stakes)."""
    from features import profile as fp
    from models import proposals as mp

    exclude = set(setup["event"])
    if not scan.empty:
        exclude.add(str(scan["event"].iloc[0]))
    features = mp.maturity_features(summary, n_accounts, exclude=exclude)
    rows, accounts = fp.usage_sample(
        daily,
        usage,
        as_of=as_of,
        events=features,
        max_accounts=sample_accounts,
        random_state=seed,
    )
    found = mp.usage_groups(rows, accounts, features, min_life_days=int(chosen["maturity"]))
    uses = dict(zip(summary["event"], summary["accounts"], strict=True))
    return {
        "features": features,
        "groups": [
            {"members": g, "cohesion": c, "accounts": [int(uses.get(f, 0)) for f in g]}
            for g, c in zip(found.groups, found.cohesion, strict=True)
        ],
        "unassigned": found.unassigned,
        "level": found.level,
        "accounts": found.accounts,
        "min_life_days": int(chosen["maturity"]),
    }


def write_profile(profile: dict, out: Path) -> Path:
    """Publish ``profile.json`` and ``profile.html`` into ``out`` atomically (all or none)."""
    from flows.report.profile_page import render_profile
    from flows.store.publish import naming_path, publish, staged

    out = Path(out).resolve()
    html = render_profile(profile)
    with staged(out) as staging:
        with naming_path(staging):
            (staging / "profile.json").write_text(
                json.dumps(profile, indent=2, ensure_ascii=False), encoding="utf-8"
            )
            (staging / "profile.html").write_text(html, encoding="utf-8")
        publish(staging, out)
    return out / "profile.html"
