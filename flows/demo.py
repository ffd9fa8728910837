"""The demo data generator: a fictional customer-support SaaS with planted milestones.

``generate_demo`` and ``write_demo`` simulate accounts of a support-inbox product month by
month and plant the four milestones in exactly the terms the pipeline measures them:

- day index of an event = ``date(occurred_at) - date(signup_at)`` in days, "within the first
  W days" = day index in ``[0, W)``;
- snapshot dates ``S`` are month ends and a trailing window of W days is ``[S - W + 1, S]``;
- retention label = still a customer at ``signup_date + 60 + 180`` (tenure rows) or at
  ``S + 180`` (snapshot rows).

The churn hazard of the calendar month after month end ``S`` is computed from the events
generated up to ``S`` (the same counts the pipeline computes), so the planted thresholds are
exact:

- setup: the TRUE steps done within 21 days raise the early conversation volume (and so the
  chance of activation); ``verify_email`` is routine (~97%), ``upload_avatar`` and
  ``choose_theme`` have no effect;
- activation: ``conversation_closed`` count in the first 60 days ``>= 20`` lowers the monthly
  hazard for life (from the month end at which the window has closed) and makes quiet
  (dormant, conversation-free) months rarer in the following months, so activated accounts
  rarely go inactive;
- utilization: ``conversation_closed`` in ``[S-89, S]`` / seats / 3 ``>= 10`` lowers the next
  month's hazard;
- maturity: distinct features per category in ``[S-89, S]`` at or above the category threshold
  make the category mature (each mature category multiplies the hazard by 0.4); mature in
  ``>= 3`` categories lowers the hazard more. Each maturity feature is a driver in its own
  right: it can carry its category across the threshold.

Once the activation window has closed, an account that reached no milestone churns four
times as fast as in its first 60 days (``past_onboarding``); the milestones divide that.

Generation is vectorised numpy over blocks of accounts (a Python loop runs only over blocks,
months and event types); events stream out in chunks, so memory stays bounded whatever the
number of accounts. The same ``(seed, n_accounts, end, months)`` gives byte-identical data.

Everything else (plan, seats, region, the per-seat usage level, the niche, table-stakes and
noise features) has no effect beyond the plan's base hazard. At the default size (5,000
accounts over 24 months) this gives about 3.2M events (~640 per account; the count scales
linearly with the number of accounts) and about 43% of the accounts churned by ``end``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

# --------------------------------------------------------------------------------------
# The product and its planted truth
# --------------------------------------------------------------------------------------

SETUP_TRUE = ("install_messenger", "connect_email_channel", "invite_teammate")
SETUP_ROUTINE = ("verify_email",)
SETUP_IRRELEVANT = ("upload_avatar", "choose_theme")
SETUP_STEPS = SETUP_TRUE + SETUP_ROUTINE + SETUP_IRRELEVANT
SETUP_WINDOW_DAYS = 21

ACTIVATION_EVENT = "conversation_closed"
ACTIVATION_WINDOW_DAYS = 60
ACTIVATION_THRESHOLD = 20

UTILIZATION_PERIOD_DAYS = 30
UTILIZATION_WINDOW_DAYS = 90
UTILIZATION_THRESHOLD = 10.0

MATURITY_WINDOW_DAYS = 90
MATURITY_CATEGORIES: dict[str, tuple[str, ...]] = {
    "channels": (
        "chat_channel_used",
        "email_channel_used",
        "whatsapp_channel_used",
        "sms_channel_used",
    ),
    "automation": ("bot_replied", "workflow_triggered", "auto_assign_fired"),
    "operations": ("macro_used", "tag_applied", "note_added", "sla_rule_applied"),
    "interoperability": ("crm_synced", "slack_notified", "api_called"),
    "reporting": ("report_viewed", "report_exported", "dashboard_shared"),
}
MATURITY_THRESHOLDS = {
    "channels": 2,
    "automation": 2,
    "operations": 3,
    "interoperability": 1,
    "reporting": 2,
}
MATURITY_MIN_CATEGORIES = 3

NICHE = "sla_policy_custom"
TABLE_STAKES = "inbox_viewed"
NOISE = ("dark_mode_toggled", "keyboard_shortcut_used", "emoji_reaction_added")

MATURITY_FEATURES = tuple(f for feats in MATURITY_CATEGORIES.values() for f in feats)
EVENT_NAMES = (
    SETUP_STEPS + (ACTIVATION_EVENT,) + MATURITY_FEATURES + (NICHE, TABLE_STAKES) + NOISE
)
EVENT_CODE = {name: i for i, name in enumerate(EVENT_NAMES)}

PLANS = ("starter", "pro", "enterprise")
# no "NA": CSV readers take it for a null
REGIONS = ("north_america", "europe", "asia_pacific", "latin_america")
REGION_SHARES = (0.40, 0.33, 0.18, 0.09)

# Monthly churn hazard (per 30.44 days) of an account of each plan in its first 60 days,
# and the multipliers that apply once the activation window has closed (they compound): an
# account past onboarding that reached no milestone churns 4 times as fast, and each
# milestone divides that. Realised over the simulation this gives about 43% of accounts
# churned by the end at the default size.
#
# The maturity effects are strong on purpose. A feature counts only through its category's
# breadth, so one feature moves retention only for the accounts whose breadth it carries
# across the category threshold (a fifth to a third of its users); with a weak category
# effect (0.75, as in the first version) a single feature's lift within plans was about
# 1.03 and its permutation importance at the noise floor of a 5,000-account demo, and the
# pipeline could not be asked to name each maturity feature a milestone candidate.
PLAN_HAZARD = {"starter": 0.15, "pro": 0.10, "enterprise": 0.05}
HAZARD_MULTIPLIERS = {
    "past_onboarding": 4.0,  # once the 60-day activation window has closed
    "activated": 0.35,  # >= 20 conversations closed in the first 60 days, for life
    "utilized": 0.20,  # >= 10 conversations per seat per 30 days over the trailing 90 days
    "mature": 0.50,  # mature in >= 3 categories
    "mature_category": 0.40,  # each mature category (on top of the above)
}

# Setup steps: probability to ever do the step, mean delay (days) of the first time.
_SETUP_PARAMS = {
    "install_messenger": (0.68, 4.0),
    "connect_email_channel": (0.62, 6.0),
    "invite_teammate": (0.55, 7.0),
    "verify_email": (0.985, 0.8),
    "upload_avatar": (0.48, 6.0),
    "choose_theme": (0.33, 6.0),
}
_SETUP_BOOST = 1.6  # early conversation volume multiplier per TRUE step done within 21 days
_EARLY_MEDIAN = 7.0  # median first-60-day conversation volume without any true step
_EARLY_SIGMA = 0.75
_RATE_MEDIAN = 9.0  # median conversations per seat per 30 days (after the activation window)
_RATE_SIGMA = 0.6
_RATE_RHO = 0.95  # month-to-month persistence of an account's usage level
_RATE_INNOV = 0.015
# Quiet (dormant) months without any conversation, in the months right after the activation
# window (tenure < _DORMANT_DAYS at the month start): rare for activated accounts, so that
# activated accounts rarely go inactive. Later months are never quiet, which keeps the
# per-seat usage of established accounts steady around the utilization threshold.
_DORMANT = {"activated": 0.02, "not_activated": 0.15}
_DORMANT_DAYS = 150

_SEATS_TILT = 0.45
# Per-category adoption propensity ~ Beta(2, 2): most accounts adopt some but not all of a
# category's features, so breadths near the thresholds are common (a uniform propensity puts
# many accounts at none or all of them, where one feature more or less changes nothing).
_ADOPT_BETA = (2.0, 2.0)
# Share of enterprise accounts that use the niche premium feature: under 5% of the live
# accounts in all, below the default adoption band.
_NICHE_ENTERPRISE = 0.22
_BLOCK = 20_000  # accounts per simulation block (part of the determinism contract)
_DAY = 86_400
_MONTH = 30.4375 * _DAY
_EPOCH_DAY_UTC = pd.Timestamp("1970-01-01", tz="UTC")
_NEVER = np.iinfo(np.int64).max


def truth_dict(seed: int, n_accounts: int, end: str | dt.date | dt.datetime, months: int) -> dict:
    """The planted truth, in the pipeline's terms (written as ``truth.json``)."""
    end_ts = _parse_end(end)
    return {
        "generator": "flows.demo",
        "seed": int(seed),
        "n_accounts": int(n_accounts),
        "months": int(months),
        "end": end_ts.isoformat(),
        "as_of": end_ts.isoformat(),
        "retention": {"horizon_days": 180},
        "definitions": {
            "day_index": "date(occurred_at) - date(signup_at) in days; within W days = [0, W)",
            "snapshot": "month ends S; trailing window of W days = dates [S-W+1, S]",
            "label": "customer at signup_date + 60 + 180 (tenure) or at S + 180 (snapshot)",
        },
        "setup": {
            "window_days": SETUP_WINDOW_DAYS,
            "true_steps": list(SETUP_TRUE),
            "routine_steps": list(SETUP_ROUTINE),
            "irrelevant_steps": list(SETUP_IRRELEVANT),
            "effect": "each TRUE step done within window_days multiplies the expected "
            "first-60-day conversation volume (and so raises the activation rate)",
            "early_volume_multiplier_per_true_step": _SETUP_BOOST,
        },
        "activation": {
            "event": ACTIVATION_EVENT,
            "window_days": ACTIVATION_WINDOW_DAYS,
            "threshold": ACTIVATION_THRESHOLD,
        },
        "utilization": {
            "event": ACTIVATION_EVENT,
            "per_seat": True,
            "period_days": UTILIZATION_PERIOD_DAYS,
            "window_days": UTILIZATION_WINDOW_DAYS,
            "threshold": UTILIZATION_THRESHOLD,
        },
        "maturity": {
            "window_days": MATURITY_WINDOW_DAYS,
            "categories": dict(MATURITY_THRESHOLDS),
            "features": {k: list(v) for k, v in MATURITY_CATEGORIES.items()},
            "min_categories": MATURITY_MIN_CATEGORIES,
        },
        "features": {
            # snapshot-level features whose use causally lowers churn (the TRUE setup steps
            # act earlier and only through activation; see "setup")
            "drivers": [ACTIVATION_EVENT, *MATURITY_FEATURES],
            "niche": [NICHE],
            "table_stakes": [TABLE_STAKES],
            "noise": list(NOISE),
        },
        "plan_hazard": dict(PLAN_HAZARD),
        "hazard_model": "monthly hazard = plan_hazard[plan] in the first 60 days; once the "
        "activation window has closed: plan_hazard[plan] x past_onboarding x activated x "
        "utilized x mature_category^(mature categories) x mature (if >= min_categories), "
        "the milestone factors from the state at the preceding month end",
        "hazard_multipliers": dict(HAZARD_MULTIPLIERS),
        "dormant_month_probability": dict(_DORMANT),
        "dormant_months_before_tenure_days": _DORMANT_DAYS,
    }


# --------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------


@dataclass
class DemoData:
    """Generated accounts, the planted truth, and a way to stream the events again."""

    accounts: pd.DataFrame
    truth: dict
    n_accounts: int
    seed: int
    end: str
    months: int
    _sim: dict = field(default_factory=dict, repr=False)

    def iter_event_chunks(self, kind: Literal["pandas", "arrow"] = "pandas") -> Iterator[Any]:
        """Yield the events in chunks (pandas DataFrames, or pyarrow Tables with ``kind="arrow"``).

        The events are regenerated from the seed, so this can be iterated more than once and
        always gives the same rows.
        """
        for what, item in _simulate(self.n_accounts, self.seed, self.end, self.months, emit=True):
            if what == "events":
                table = _plain(item)
                yield table if kind == "arrow" else table.to_pandas()

    def events(self) -> pd.DataFrame:
        """All events as one DataFrame (for small demos and tests)."""
        tables = list(self.iter_event_chunks(kind="arrow"))
        if not tables:
            return _EVENT_SCHEMA.empty_table().to_pandas()
        return pa.concat_tables(tables).to_pandas()


def generate_demo(
    n_accounts: int = 5000, seed: int = 0, end: str = "2026-06-30", months: int = 24
) -> DemoData:
    """Simulate the demo product; the events are streamed by ``DemoData.iter_event_chunks``."""
    _check_args(n_accounts, months, seed)
    accounts = []
    for what, item in _simulate(n_accounts, seed, end, months, emit=False):
        if what == "accounts":
            accounts.append(item)
    frame = pa.concat_tables(accounts).to_pandas()
    return DemoData(
        accounts=frame,
        truth=truth_dict(seed, n_accounts, end, months),
        n_accounts=n_accounts,
        seed=seed,
        end=str(end),
        months=months,
    )


def write_demo(
    out_dir: str | os.PathLike,
    n_accounts: int = 5000,
    seed: int = 0,
    fmt: Literal["parquet", "csv"] = "parquet",
    end: str = "2026-06-30",
    months: int = 24,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Write ``accounts.<fmt>``, ``events.<fmt>`` and ``truth.json`` into ``out_dir``.

    Events stream to disk in chunks (bounded memory); every file is written under a temporary
    name and renamed into place once all are complete.

    Returns
    -------
    dict
        ``accounts``, ``events`` and ``truth`` (paths), ``n_accounts``, ``n_events``, ``seconds``.
    """
    _check_args(n_accounts, months, seed)
    if fmt not in ("parquet", "csv"):
        raise ValueError(f"fmt must be 'parquet' or 'csv', got {fmt!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    final = {
        "accounts": out / f"accounts.{fmt}",
        "events": out / f"events.{fmt}",
        "truth": out / "truth.json",
    }
    tag = f".tmp-{os.getpid()}"
    tmp = {k: p.with_name(p.name + tag) for k, p in final.items()}
    say = progress or (lambda _msg: None)
    t0 = time.perf_counter()
    n_events = 0
    account_tables: list[pa.Table] = []
    writer = _EventWriter(tmp["events"], fmt)
    # One background thread encodes and writes while numpy generates the next chunk (both
    # release the GIL); a single worker keeps the chunks in order, so output stays identical.
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="demo-writer")
    writing: Future | None = None
    try:
        pending: list[pa.Table] = []
        pending_rows = 0
        n_blocks = -(-n_accounts // _BLOCK)
        done_accounts = 0
        for what, item in _simulate(n_accounts, seed, end, months, emit=True):
            if what == "events":
                pending.append(item)
                pending_rows += item.num_rows
                n_events += item.num_rows
                if pending_rows >= 1_000_000:
                    if writing is not None:
                        writing.result()
                    writing = pool.submit(writer.write, pa.concat_tables(pending))
                    pending, pending_rows = [], 0
            else:
                account_tables.append(item)
                done_accounts += item.num_rows
                secs = time.perf_counter() - t0
                say(
                    f"demo: block {len(account_tables)}/{n_blocks}: {done_accounts:,} accounts, "
                    f"{n_events:,} events, {secs:.1f}s ({n_events / max(secs, 1e-9):,.0f} events/s)"
                )
        if writing is not None:
            writing.result()
            writing = None
        if pending:
            writer.write(pa.concat_tables(pending))
        writer.close()
        accounts = pa.concat_tables(account_tables)
        if fmt == "parquet":
            pq.write_table(accounts, tmp["accounts"], store_schema=False)
        else:
            pacsv.write_csv(_csv_table(accounts), tmp["accounts"], _CSV_OPTIONS)
        truth = truth_dict(seed, n_accounts, end, months)
        truth["n_events"] = int(n_events)
        tmp["truth"].write_text(json.dumps(truth, indent=2) + "\n", encoding="utf-8")
        for key in ("accounts", "events", "truth"):
            os.replace(tmp[key], final[key])
    except BaseException:
        if writing is not None:
            writing.cancel()
            try:
                writing.result()
            except BaseException:  # noqa: BLE001 - the first error is the one raised
                pass
        writer.abort()
        for p in tmp.values():
            p.unlink(missing_ok=True)
        raise
    finally:
        pool.shutdown(wait=True)
    secs = time.perf_counter() - t0
    say(f"demo: wrote {n_accounts:,} accounts and {n_events:,} events to {out} in {secs:.1f}s")
    return {
        "accounts": str(final["accounts"]),
        "events": str(final["events"]),
        "truth": str(final["truth"]),
        "n_accounts": int(n_accounts),
        "n_events": int(n_events),
        "seconds": round(secs, 3),
    }


# --------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------

_TS = pa.timestamp("us", tz="UTC")
_EVENT_SCHEMA = pa.schema(
    [
        ("account_id", pa.string()),
        ("event", pa.string()),
        ("occurred_at", _TS),
        ("quantity", pa.float64()),
        ("user_id", pa.string()),
    ]
)
# what the simulation yields: the string columns still dictionary-encoded (cheap to build);
# `_plain` turns them into plain strings (in the writer thread when writing files)
_RAW_EVENT_SCHEMA = pa.schema(
    [
        ("account_id", pa.dictionary(pa.int32(), pa.string())),
        ("event", pa.dictionary(pa.int8(), pa.string())),
        ("occurred_at", _TS),
        ("quantity", pa.float64()),
        ("user_id", pa.dictionary(pa.int32(), pa.string())),
    ]
)


def _plain(table: pa.Table) -> pa.Table:
    return table if table.schema.equals(_EVENT_SCHEMA) else table.cast(_EVENT_SCHEMA)


_ACCOUNT_SCHEMA = pa.schema(
    [
        ("account_id", pa.string()),
        ("signup_at", _TS),
        ("churned_at", _TS),
        ("seats", pa.int64()),
        ("plan", pa.string()),
        ("region", pa.string()),
    ]
)


class _EventWriter:
    """Append event tables to one Parquet file (row groups) or one CSV file."""

    def __init__(self, path: Path, fmt: str):
        self.path, self.fmt = path, fmt
        self._pq: pq.ParquetWriter | None = None
        self._csv: pacsv.CSVWriter | None = None
        self._sink = None
        if fmt == "parquet":
            self._pq = pq.ParquetWriter(
                path,
                _EVENT_SCHEMA,
                compression="zstd",
                # dictionary pages for the repetitive columns only: hashing ~1M distinct
                # timestamps per row group would cost time for nothing
                use_dictionary=["account_id", "event", "user_id", "quantity"],
                store_schema=False,
            )
        else:
            self._sink = pa.OSFile(str(path), "wb")
            self._csv = pacsv.CSVWriter(
                self._sink, _csv_schema(_EVENT_SCHEMA), write_options=_CSV_OPTIONS
            )

    def write(self, table: pa.Table) -> None:
        table = _plain(table)
        if self._pq is not None:
            self._pq.write_table(table, row_group_size=1 << 20)
        else:
            self._csv.write_table(_csv_table(table))

    def close(self) -> None:
        if self._pq is not None:
            self._pq.close()
            self._pq = None
        if self._csv is not None:
            self._csv.close()
            self._sink.close()
            self._csv = None

    def abort(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - best effort while failing anyway
            pass


def _csv_schema(schema: pa.Schema) -> pa.Schema:
    return pa.schema(
        [
            (f.name, pa.string() if f.type == _TS or pa.types.is_floating(f.type) else f.type)
            for f in schema
        ]
    )


_TOD_STR: pa.Array | None = None


def _iso_strings(ts: pa.ChunkedArray | pa.Array) -> pa.Array:
    """ISO 8601 strings (``2026-01-31T12:34:56Z``) of whole-second UTC timestamps, fast."""
    global _TOD_STR
    if isinstance(ts, pa.ChunkedArray):
        ts = ts.combine_chunks()
    valid = ts.is_valid()
    secs = ts.cast(pa.int64()).fill_null(0).to_numpy() // 1_000_000
    days = secs // _DAY
    d0 = int(days.min()) if len(days) else 0
    span = int(days.max()) - d0 + 1 if len(days) else 1
    day_str = pa.array(
        np.datetime_as_string(np.arange(d0, d0 + span).astype("datetime64[D]"), unit="D")
    )
    if _TOD_STR is None:
        tod = np.arange(_DAY)
        _TOD_STR = pa.array(
            [f"T{h:02d}:{m:02d}:{s:02d}Z" for h, m, s in zip(tod // 3600, tod // 60 % 60, tod % 60)]
        )
    out = pc.binary_join_element_wise(
        day_str.take(pa.array(days - d0)), _TOD_STR.take(pa.array(secs - days * _DAY)), ""
    )
    return pc.if_else(valid, out, pa.scalar(None, pa.string()))


def _float_strings(values: pa.ChunkedArray | pa.Array) -> pa.Array:
    """Decimal strings that read back as floats (``1.0``, not ``1``)."""
    text = pc.cast(values, pa.string())
    plain = pc.match_substring_regex(text, r"^-?[0-9]+$")
    return pc.if_else(plain, pc.binary_join_element_wise(text, ".0", ""), text)


def _csv_table(table: pa.Table) -> pa.Table:
    """Timestamps as ISO 8601 strings, floats with a decimal point (the CSV form)."""
    cols = []
    for c in table.columns:
        if c.type == _TS:
            cols.append(_iso_strings(c))
        elif pa.types.is_floating(c.type):
            cols.append(_float_strings(c))
        else:
            cols.append(c)
    return pa.table(cols, schema=_csv_schema(table.schema))


# our strings never hold a comma, a quote or a line break, so nothing needs quoting
_CSV_OPTIONS = pacsv.WriteOptions(quoting_style="none")


# --------------------------------------------------------------------------------------
# Simulation
# --------------------------------------------------------------------------------------


def _check_args(n_accounts: int, months: int, seed: int = 0) -> None:
    if int(seed) < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if int(n_accounts) < 1:
        raise ValueError(f"n_accounts must be >= 1, got {n_accounts}")
    if int(months) < 1:
        raise ValueError(f"months must be >= 1, got {months}")


def _parse_end(end: str | dt.date | dt.datetime) -> pd.Timestamp:
    ts = pd.Timestamp(end)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _id_width(n_accounts: int) -> int:
    return max(6, len(str(n_accounts)))


def _periods(start_s: int, end_s: int) -> list[tuple[int, int]]:
    """Calendar-month periods ``[ps, pe)`` (seconds) covering ``[start_s, end_s)``."""
    start = pd.Timestamp(start_s, unit="s", tz="UTC")
    end = pd.Timestamp(end_s, unit="s", tz="UTC")
    bounds = pd.date_range(start.normalize() + pd.offsets.MonthBegin(1), end, freq="MS")
    cuts = [start_s] + [int(b.value // 10**9) for b in bounds if start_s < b.value // 10**9 < end_s]
    cuts.append(end_s)
    return list(zip(cuts[:-1], cuts[1:]))


def _simulate(
    n_accounts: int, seed: int, end: str, months: int, emit: bool
) -> Iterator[tuple[str, pa.Table]]:
    """Yield ("events", table) chunks (if ``emit``) and one ("accounts", table) per block."""
    end_ts = _parse_end(end)
    start_ts = end_ts - pd.DateOffset(months=int(months))
    end_s = int(end_ts.value // 10**9)
    start_s = int(start_ts.value // 10**9)
    periods = _periods(start_s, end_s)
    width = _id_width(n_accounts)
    for b, first in enumerate(range(0, n_accounts, _BLOCK)):
        n = min(_BLOCK, n_accounts - first)
        yield from _simulate_block(seed, b, first, n, start_s, end_s, periods, width, emit)


def _stochastic_round(rng: np.random.Generator, x: np.ndarray) -> np.ndarray:
    return np.floor(x + rng.random(x.size)).astype(np.int64)


def _simulate_block(
    seed: int,
    b: int,
    first: int,
    n: int,
    start_s: int,
    end_s: int,
    periods: list[tuple[int, int]],
    width: int,
    emit: bool,
) -> Iterator[tuple[str, pa.Table]]:
    # Two random streams: `rng` drives everything that decides churn (so the accounts come out
    # the same whether or not events are emitted); `deco` draws what has no effect.
    rng = np.random.default_rng([int(seed), b, 1])
    deco = np.random.default_rng([int(seed), b, 2])

    # ---- accounts -------------------------------------------------------------------
    signup = start_s + np.floor(rng.random(n) * (end_s - start_s - 3600)).astype(np.int64)
    signup_day = signup // _DAY
    # log(seats) roughly uniform on [0, ln 51), tilted toward small teams (median 3, mean ~7)
    tilt, top = _SEATS_TILT, np.log(51.0)
    log_seats = -np.log1p(-rng.random(n) * (1.0 - np.exp(-tilt * top))) / tilt
    seats = np.clip(np.floor(np.exp(log_seats)), 1, 50).astype(np.int64)
    z = np.log(seats) / np.log(50.0)
    p_ent = 0.03 + 0.25 * z
    p_pro = 0.26 + 0.12 * z
    u = rng.random(n)
    plan = np.where(u < p_ent, 2, np.where(u < p_ent + p_pro, 1, 0)).astype(np.int8)
    region = np.searchsorted(np.cumsum(REGION_SHARES), rng.random(n) * 0.999999).astype(np.int8)
    base_h = np.array([PLAN_HAZARD[p] for p in PLANS])[plan]

    # ---- setup steps (first time; done within 21 days drives the early volume) ---------
    setup_first = np.full((n, len(SETUP_STEPS)), _NEVER, dtype=np.int64)
    for j, step in enumerate(SETUP_STEPS):
        p_do, mean_days = _SETUP_PARAMS[step]
        does = rng.random(n) < p_do
        delay = (rng.exponential(mean_days, n) * _DAY).astype(np.int64) + 60
        setup_first[:, j] = np.where(does, signup + delay, _NEVER)
    window21 = (signup_day + SETUP_WINDOW_DAYS) * _DAY
    n_true = np.zeros(n)
    for j, step in enumerate(SETUP_STEPS):
        if step in SETUP_TRUE:
            n_true += setup_first[:, j] < window21
    lam_early = np.exp(rng.normal(np.log(_EARLY_MEDIAN), _EARLY_SIGMA, n)) * _SETUP_BOOST**n_true
    act_end = (signup_day + ACTIVATION_WINDOW_DAYS) * _DAY  # first second after the window

    # ---- usage level (conversations per seat per 30 days), persistent per account -------
    rate_mu = rng.normal(np.log(_RATE_MEDIAN), _RATE_SIGMA, n)
    rate_eps = rng.normal(0.0, _RATE_INNOV / np.sqrt(1 - _RATE_RHO**2), n)

    # ---- maturity: persistent adoption propensity per category and feature --------------
    n_feat = len(MATURITY_FEATURES)
    cat_of = np.array(
        [ci for ci, feats in enumerate(MATURITY_CATEGORIES.values()) for _ in feats], dtype=np.int64
    )
    q = rng.beta(*_ADOPT_BETA, (n, len(MATURITY_CATEGORIES)))
    feat_pop = np.linspace(1.0, 0.8, n_feat).reshape(1, -1)  # slightly different popularity
    adopter = rng.random((n, n_feat)) < q[:, cat_of] * feat_pop
    adopt_lag = (rng.exponential(1.0, (n, n_feat)) * _MONTH).astype(np.int64)
    adopt_at = np.where(adopter, signup[:, None] + adopt_lag, _NEVER)
    feat_lam = 0.3 + 0.2 * np.sqrt(seats)  # extra uses per month beyond the first
    last_used = np.full((n, n_feat), -1, dtype=np.int64)
    cat_thr = np.array([MATURITY_THRESHOLDS[c] for c in MATURITY_CATEGORIES])
    cat_start = np.flatnonzero(np.r_[True, cat_of[1:] != cat_of[:-1]])

    # ---- decorative propensities (no effect; only drawn when emitting) ------------------
    if emit:
        noise_adopt = deco.random((n, len(NOISE))) < np.array([0.30, 0.50, 0.40])
        niche_adopt = np.where(
            plan == 2, deco.random(n) < _NICHE_ENTERPRISE, deco.random(n) < 0.003
        )
        ids = [f"acc_{i:0{width}d}" for i in range(first + 1, first + n + 1)]
        acc_dict = pa.array(ids, pa.string())
        user_off = np.concatenate([[0], np.cumsum(seats)[:-1]])
        user_dict = pa.array(
            [f"{a}_u{k:02d}" for a, s in zip(ids, seats.tolist()) for k in range(1, s + 1)],
            pa.string(),
        )
        event_dict = pa.array(EVENT_NAMES, pa.string())

    # ---- state over the months ----------------------------------------------------------
    churn = np.full(n, _NEVER, dtype=np.int64)
    act_count = np.zeros(n, dtype=np.int64)
    day0 = start_s // _DAY
    n_days = end_s // _DAY - day0 + 1
    daily = np.zeros((n, n_days), dtype=np.uint16)  # conversations per account and day
    mat_w = HAZARD_MULTIPLIERS["mature_category"]

    def chunk(parts: list[tuple[int, np.ndarray, np.ndarray]]) -> pa.Table:
        codes = np.concatenate([np.full(a.size, c, dtype=np.int8) for c, a, _ in parts])
        acc = np.concatenate([a for _, a, _ in parts]).astype(np.int32)
        ts = np.concatenate([t for _, _, t in parts])
        user = user_off[acc] + np.floor(deco.random(acc.size) * seats[acc]).astype(np.int64)
        m = acc.size
        return pa.table(
            [
                pa.DictionaryArray.from_arrays(pa.array(acc), acc_dict),
                pa.DictionaryArray.from_arrays(pa.array(codes), event_dict),
                pa.array(ts * 1_000_000, pa.int64()).cast(_TS),
                pa.array(np.ones(m)),
                pa.DictionaryArray.from_arrays(pa.array(user.astype(np.int32)), user_dict),
            ],
            schema=_RAW_EVENT_SCHEMA,
        )

    def place(rng_: np.random.Generator, acc, counts, lo, span):
        """``counts[i]`` uniform times in ``[lo[i], lo[i] + span[i])`` for account ``acc[i]``."""
        idx = np.repeat(np.arange(acc.size), counts)
        off = np.minimum((rng_.random(idx.size) * span[idx]).astype(np.int64), span[idx] - 1)
        return acc[idx], lo[idx] + off

    for ps, pe in periods:
        live = np.flatnonzero((signup < pe) & (churn == _NEVER))
        if live.size == 0:
            continue
        S = ps // _DAY - 1  # the month end before the period (a day number)
        lo = np.maximum(signup[live], ps)
        span = pe - lo

        # ---- hazard from the state at S (what the pipeline sees at that snapshot) --------
        closed = signup_day[live] + ACTIVATION_WINDOW_DAYS <= S
        activated = closed & (act_count[live] >= ACTIVATION_THRESHOLD)
        h = base_h[live].copy()
        h[closed] *= HAZARD_MULTIPLIERS["past_onboarding"]
        h[activated] *= HAZARD_MULTIPLIERS["activated"]
        if closed.any():
            w0 = max(S - UTILIZATION_WINDOW_DAYS + 1 - day0, 0)
            conv90 = daily[live, w0 : S - day0 + 1].sum(axis=1, dtype=np.int64)
            rate = conv90 / seats[live] / (UTILIZATION_WINDOW_DAYS / UTILIZATION_PERIOD_DAYS)
            utilized = closed & (rate >= UTILIZATION_THRESHOLD)
            h[utilized] *= HAZARD_MULTIPLIERS["utilized"]
            used = last_used[live] >= (S - MATURITY_WINDOW_DAYS + 1) * _DAY
            distinct = np.add.reduceat(used.astype(np.int64), cat_start, axis=1)
            mature_c = (distinct >= cat_thr) & closed[:, None]
            h *= mat_w ** mature_c.sum(axis=1)
            h[mature_c.sum(axis=1) >= MATURITY_MIN_CATEGORIES] *= HAZARD_MULTIPLIERS["mature"]

        # ---- churn in this period ---------------------------------------------------------
        p_churn = 1.0 - (1.0 - h) ** (span / _MONTH)
        goes = rng.random(live.size) < p_churn
        when = lo + 1 + np.floor(rng.random(live.size) * span).astype(np.int64)
        when = np.minimum(when, pe - 1)
        churn[live[goes]] = when[goes]
        hi = np.where(goes, when, pe)  # events in [lo, hi)
        span = hi - lo
        ok = span > 0
        live, lo, hi, span, closed, activated = (
            x[ok] for x in (live, lo, hi, span, closed, activated)
        )
        parts: list[tuple[int, np.ndarray, np.ndarray]] = []

        # ---- conversations: early (first 60 days) and later (usage level x seats) ---------
        a_end = act_end[live]
        e_span = np.clip(np.minimum(hi, a_end) - lo, 0, None)
        n_early = rng.poisson(lam_early[live] * e_span / (ACTIVATION_WINDOW_DAYS * _DAY))
        acc_e, ts_e = place(rng, live, n_early, lo, np.maximum(e_span, 1))
        act_count[live] += n_early
        l_lo = np.maximum(lo, a_end)
        l_span = np.clip(hi - l_lo, 0, None)
        rate_eps[live] = _RATE_RHO * rate_eps[live] + rng.normal(0.0, _RATE_INNOV, live.size)
        level = np.exp(rate_mu[live] + rate_eps[live])
        p_dormant = np.where(activated, _DORMANT["activated"], _DORMANT["not_activated"])
        early = lo - signup[live] < _DORMANT_DAYS * _DAY
        dormant = closed & early & (rng.random(live.size) < p_dormant)
        expected = level * seats[live] * l_span / (UTILIZATION_PERIOD_DAYS * _DAY)
        n_late = np.where(dormant, 0, _stochastic_round(rng, expected))
        acc_l, ts_l = place(rng, live, n_late, l_lo, np.maximum(l_span, 1))
        acc_c = np.concatenate([acc_e, acc_l])
        ts_c = np.concatenate([ts_e, ts_l])
        if acc_c.size:
            p0 = ps // _DAY
            nd = (pe - 1) // _DAY - p0 + 1
            counts = np.bincount((acc_c * nd + (ts_c // _DAY - p0)), minlength=n * nd)
            daily[:, p0 - day0 : p0 - day0 + nd] += counts.reshape(n, nd).astype(np.uint16)
        parts.append((EVENT_CODE[ACTIVATION_EVENT], acc_c, ts_c))

        # ---- maturity features: adopters use them most months ---------------------------
        frac = np.minimum(span / _MONTH, 1.0)
        for f, name in enumerate(MATURITY_FEATURES):
            adopted = adopt_at[live, f] <= lo
            p_use = np.where(adopted, 0.92 * np.minimum(span / (10 * _DAY), 1.0), 0.02 * frac)
            users = np.flatnonzero(rng.random(live.size) < p_use)
            if users.size == 0:
                continue
            cnt = 1 + rng.poisson(feat_lam[live[users]] * frac[users])
            acc_f, ts_f = place(rng, live[users], cnt, lo[users], span[users])
            starts = np.concatenate([[0], np.cumsum(cnt)[:-1]])
            last = np.maximum.reduceat(ts_f, starts)
            last_used[live[users], f] = np.maximum(last_used[live[users], f], last)
            parts.append((EVENT_CODE[name], acc_f, ts_f))

        if not emit:
            continue

        # ---- decorative events: table stakes, niche, noise --------------------------------
        p_inbox = 0.99 * np.minimum(span / (7 * _DAY), 1.0)
        users = np.flatnonzero(deco.random(live.size) < p_inbox)
        cnt = 1 + deco.poisson(2.0 * frac[users])
        parts.append(
            (EVENT_CODE[TABLE_STAKES], *place(deco, live[users], cnt, lo[users], span[users]))
        )
        users = np.flatnonzero(niche_adopt[live] & (deco.random(live.size) < 0.85 * frac))
        cnt = 1 + deco.poisson(1.5 * frac[users])
        parts.append((EVENT_CODE[NICHE], *place(deco, live[users], cnt, lo[users], span[users])))
        for k, name in enumerate(NOISE):
            p = np.where(noise_adopt[live, k], 0.8, 0.01) * frac
            users = np.flatnonzero(deco.random(live.size) < p)
            cnt = 1 + deco.poisson(1.0 * frac[users])
            parts.append((EVENT_CODE[name], *place(deco, live[users], cnt, lo[users], span[users])))
        table = chunk(parts)
        if table.num_rows:
            yield "events", table

    # ---- setup events (now that churn is known), then the accounts ------------------------
    stop = np.minimum(churn, end_s)
    if emit:
        parts = []
        for j, step in enumerate(SETUP_STEPS):
            first_t = setup_first[:, j]
            extra = deco.poisson(0.1 if step in SETUP_ROUTINE else 0.8, n)
            acc = np.repeat(np.arange(n), 1 + extra)
            is_first = np.zeros(acc.size, dtype=bool)
            is_first[np.concatenate([[0], np.cumsum(1 + extra)[:-1]])] = True
            later = (deco.exponential(4.0, acc.size) * _DAY).astype(np.int64) + 1
            done = first_t[acc] != _NEVER
            ts = np.where(done, first_t[acc], 0) + np.where(is_first, 0, later)
            keep = done & (ts < stop[acc])
            parts.append((EVENT_CODE[step], acc[keep], ts[keep]))
        table = chunk(parts)
        if table.num_rows:
            yield "events", table

    ids = [f"acc_{i:0{width}d}" for i in range(first + 1, first + n + 1)]
    churned = churn != _NEVER
    yield "accounts", pa.table(
        [
            pa.array(ids, pa.string()),
            pa.array(signup * 1_000_000, pa.int64()).cast(_TS),
            pa.array(np.where(churned, churn, 0) * 1_000_000, pa.int64(), mask=~churned).cast(_TS),
            pa.array(seats, pa.int64()),
            pa.DictionaryArray.from_arrays(pa.array(plan), pa.array(PLANS)).cast(pa.string()),
            pa.DictionaryArray.from_arrays(pa.array(region), pa.array(REGIONS)).cast(pa.string()),
        ],
        schema=_ACCOUNT_SCHEMA,
    )
