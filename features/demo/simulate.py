"""The demo's simulation: accounts month by month, vectorised over blocks of accounts.

:func:`simulate` yields the events of each block in chunks (pyarrow tables, their string
columns still dictionary-encoded; :func:`plain_events` decodes them) and then the block's
accounts. A Python loop runs only over blocks, months and event types, so memory stays
bounded whatever the number of accounts, and the same ``(seed, n_accounts, end, months)``
always gives the same rows. :func:`generate_demo` keeps the accounts in memory and streams
the events again on demand.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa

from features.demo.world import (
    ACTIVATION_EVENT,
    ACTIVATION_THRESHOLD,
    ACTIVATION_WINDOW_DAYS,
    ADOPT_BETA,
    BLOCK,
    DAY,
    DEMO_ACCOUNTS,
    DORMANT,
    DORMANT_DAYS,
    EARLY_MEDIAN,
    EARLY_SIGMA,
    EVENT_CODE,
    EVENT_NAMES,
    HAZARD_MULTIPLIERS,
    MATURITY_CATEGORIES,
    MATURITY_FEATURES,
    MATURITY_MIN_CATEGORIES,
    MATURITY_THRESHOLDS,
    MATURITY_WINDOW_DAYS,
    MESSY_PER_MONTH,
    MESSY_ZIPF,
    MONTH,
    NEVER,
    NICHE,
    NICHE_ENTERPRISE,
    NOISE,
    PLAN_HAZARD,
    PLANS,
    RATE_INNOV,
    RATE_MEDIAN,
    RATE_RHO,
    RATE_SIGMA,
    REGION_SHARES,
    REGIONS,
    SEATS_TILT,
    SETUP_BOOST,
    SETUP_PARAMS,
    SETUP_ROUTINE,
    SETUP_STEPS,
    SETUP_TRUE,
    SETUP_WINDOW_DAYS,
    SMOOTH_EARLY,
    SMOOTH_POWER,
    SMOOTH_RATE,
    TABLE_STAKES,
    UTILIZATION_PERIOD_DAYS,
    UTILIZATION_THRESHOLD,
    UTILIZATION_WINDOW_DAYS,
    WEAK_FACTOR,
    check_args,
    check_options,
    messy_names,
    parse_end,
    truth_dict,
)

# --------------------------------------------------------------------------------------
# The tables the simulation yields
# --------------------------------------------------------------------------------------

TS = pa.timestamp("us", tz="UTC")
EVENT_SCHEMA = pa.schema(
    [
        ("account_id", pa.string()),
        ("event", pa.string()),
        ("occurred_at", TS),
        ("quantity", pa.float64()),
        ("user_id", pa.string()),
    ]
)
# what the simulation yields: the string columns still dictionary-encoded (cheap to build);
# `plain_events` turns them into plain strings (in the writer thread when writing files)
RAW_EVENT_SCHEMA = pa.schema(
    [
        ("account_id", pa.dictionary(pa.int32(), pa.string())),
        ("event", pa.dictionary(pa.int8(), pa.string())),
        ("occurred_at", TS),
        ("quantity", pa.float64()),
        ("user_id", pa.dictionary(pa.int32(), pa.string())),
    ]
)


def plain_events(table: pa.Table) -> pa.Table:
    return table if table.schema.equals(EVENT_SCHEMA) else table.cast(EVENT_SCHEMA)


ACCOUNT_SCHEMA = pa.schema(
    [
        ("account_id", pa.string()),
        ("signup_at", TS),
        ("churned_at", TS),
        ("seats", pa.int64()),
        ("plan", pa.string()),
        ("region", pa.string()),
    ]
)


# --------------------------------------------------------------------------------------
# In memory
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
    effect: str = "planted"
    names: str = "standard"

    def iter_event_chunks(self, kind: Literal["pandas", "arrow"] = "pandas") -> Iterator[Any]:
        """Yield the events in chunks (pandas DataFrames, or pyarrow Tables with ``kind="arrow"``).

        The events are regenerated from the seed, so this can be iterated more than once and
        always gives the same rows.
        """
        for what, item in simulate(
            self.n_accounts,
            self.seed,
            self.end,
            self.months,
            emit=True,
            effect=self.effect,
            names=self.names,
        ):
            if what == "events":
                table = plain_events(item)
                yield table if kind == "arrow" else table.to_pandas()

    def events(self) -> pd.DataFrame:
        """All events as one DataFrame (for small demos and tests)."""
        tables = list(self.iter_event_chunks(kind="arrow"))
        if not tables:
            return EVENT_SCHEMA.empty_table().to_pandas()
        return pa.concat_tables(tables).to_pandas()


def generate_demo(
    n_accounts: int = DEMO_ACCOUNTS,
    seed: int = 0,
    end: str = "2026-06-30",
    months: int = 24,
    effect: str = "planted",
    names: str = "standard",
) -> DemoData:
    """Simulate the demo product; the events are streamed by ``DemoData.iter_event_chunks``.

    ``effect`` (``planted``, ``weak``, ``smooth``) and ``names`` (``standard``, ``messy``)
    are the generator options of :mod:`features.demo.world` (``EFFECTS``, ``NAME_STYLES``).
    """
    check_args(n_accounts, months, seed)
    check_options(effect, names)
    accounts = []
    for what, item in simulate(n_accounts, seed, end, months, emit=False, effect=effect):
        if what == "accounts":
            accounts.append(item)
    frame = pa.concat_tables(accounts).to_pandas()
    return DemoData(
        accounts=frame,
        truth=truth_dict(seed, n_accounts, end, months, effect, names),
        n_accounts=n_accounts,
        seed=seed,
        end=str(end),
        months=months,
        effect=effect,
        names=names,
    )


# --------------------------------------------------------------------------------------
# Simulation
# --------------------------------------------------------------------------------------


def _id_width(n_accounts: int) -> int:
    return max(6, len(str(n_accounts)))


def _periods(start_s: int, end_s: int) -> list[tuple[int, int]]:
    """Calendar-month periods ``[ps, pe)`` (seconds) covering ``[start_s, end_s)``."""
    start = pd.Timestamp(start_s, unit="s", tz="UTC")
    end = pd.Timestamp(end_s, unit="s", tz="UTC")
    bounds = pd.date_range(start.normalize() + pd.offsets.MonthBegin(1), end, freq="MS")
    cuts = [start_s] + [int(b.value // 10**9) for b in bounds if start_s < b.value // 10**9 < end_s]
    cuts.append(end_s)
    return list(itertools.pairwise(cuts))


def simulate(
    n_accounts: int,
    seed: int,
    end: str,
    months: int,
    emit: bool,
    effect: str = "planted",
    names: str = "standard",
) -> Iterator[tuple[str, pa.Table]]:
    """Yield ("events", table) chunks (if ``emit``) and one ("accounts", table) per block.

    With ``names="messy"`` the noise events of the long tail come as separate chunks with
    their own dictionary (and their own random stream, so every other event is the same as
    with the standard names).
    """
    check_options(effect, names)
    end_ts = parse_end(end)
    start_ts = end_ts - pd.DateOffset(months=int(months))
    end_s = int(end_ts.value // 10**9)
    start_s = int(start_ts.value // 10**9)
    periods = _periods(start_s, end_s)
    width = _id_width(n_accounts)
    for b, first in enumerate(range(0, n_accounts, BLOCK)):
        n = min(BLOCK, n_accounts - first)
        yield from _simulate_block(
            seed, b, first, n, start_s, end_s, periods, width, emit, effect, names
        )


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
    effect: str = "planted",
    names: str = "standard",
) -> Iterator[tuple[str, pa.Table]]:
    # Two random streams: `rng` drives everything that decides churn (so the accounts come out
    # the same whether or not events are emitted); `deco` draws what has no effect.
    rng = np.random.default_rng([int(seed), b, 1])
    deco = np.random.default_rng([int(seed), b, 2])

    # ---- accounts -------------------------------------------------------------------
    signup = start_s + np.floor(rng.random(n) * (end_s - start_s - 3600)).astype(np.int64)
    signup_day = signup // DAY
    # log(seats) roughly uniform on [0, ln 51), tilted toward small teams (median 3, mean ~7)
    tilt, top = SEATS_TILT, np.log(51.0)
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
    setup_first = np.full((n, len(SETUP_STEPS)), NEVER, dtype=np.int64)
    for j, step in enumerate(SETUP_STEPS):
        p_do, mean_days = SETUP_PARAMS[step]
        does = rng.random(n) < p_do
        delay = (rng.exponential(mean_days, n) * DAY).astype(np.int64) + 60
        setup_first[:, j] = np.where(does, signup + delay, NEVER)
    window21 = (signup_day + SETUP_WINDOW_DAYS) * DAY
    n_true = np.zeros(n)
    for j, step in enumerate(SETUP_STEPS):
        if step in SETUP_TRUE:
            n_true += setup_first[:, j] < window21
    lam_early = np.exp(rng.normal(np.log(EARLY_MEDIAN), EARLY_SIGMA, n)) * SETUP_BOOST**n_true
    act_end = (signup_day + ACTIVATION_WINDOW_DAYS) * DAY  # first second after the window

    # ---- usage level (conversations per seat per 30 days), persistent per account -------
    rate_mu = rng.normal(np.log(RATE_MEDIAN), RATE_SIGMA, n)
    rate_eps = rng.normal(0.0, RATE_INNOV / np.sqrt(1 - RATE_RHO**2), n)

    # ---- maturity: persistent adoption propensity per category and feature --------------
    n_feat = len(MATURITY_FEATURES)
    cat_of = np.array(
        [ci for ci, feats in enumerate(MATURITY_CATEGORIES.values()) for _ in feats], dtype=np.int64
    )
    q = rng.beta(*ADOPT_BETA, (n, len(MATURITY_CATEGORIES)))
    feat_pop = np.linspace(1.0, 0.8, n_feat).reshape(1, -1)  # slightly different popularity
    adopter = rng.random((n, n_feat)) < q[:, cat_of] * feat_pop
    adopt_lag = (rng.exponential(1.0, (n, n_feat)) * MONTH).astype(np.int64)
    adopt_at = np.where(adopter, signup[:, None] + adopt_lag, NEVER)
    feat_lam = 0.3 + 0.2 * np.sqrt(seats)  # extra uses per month beyond the first
    last_used = np.full((n, n_feat), -1, dtype=np.int64)
    cat_thr = np.array([MATURITY_THRESHOLDS[c] for c in MATURITY_CATEGORIES])
    cat_start = np.flatnonzero(np.r_[True, cat_of[1:] != cat_of[:-1]])

    # ---- decorative propensities (no effect; only drawn when emitting) ------------------
    if emit:
        noise_adopt = deco.random((n, len(NOISE))) < np.array([0.30, 0.50, 0.40])
        niche_adopt = np.where(plan == 2, deco.random(n) < NICHE_ENTERPRISE, deco.random(n) < 0.003)
        ids = [f"acc_{i:0{width}d}" for i in range(first + 1, first + n + 1)]
        acc_dict = pa.array(ids, pa.string())
        user_off = np.concatenate([[0], np.cumsum(seats)[:-1]])
        user_dict = pa.array(
            [
                f"{a}_u{k:02d}"
                for a, s in zip(ids, seats.tolist(), strict=True)
                for k in range(1, s + 1)
            ],
            pa.string(),
        )
        event_dict = pa.array(EVENT_NAMES, pa.string())
        if names == "messy":
            # own stream: the other events stay exactly those of the standard names
            messy = np.random.default_rng([int(seed), b, 3])
            messy_dict = pa.array(messy_names(), pa.string())
            zipf = 1.0 / np.arange(1, len(messy_dict) + 1) ** MESSY_ZIPF
            zipf /= zipf.sum()

    # ---- state over the months ----------------------------------------------------------
    churn = np.full(n, NEVER, dtype=np.int64)
    act_count = np.zeros(n, dtype=np.int64)
    day0 = start_s // DAY
    n_days = end_s // DAY - day0 + 1
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
                pa.array(ts * 1_000_000, pa.int64()).cast(TS),
                pa.array(np.ones(m)),
                pa.DictionaryArray.from_arrays(pa.array(user.astype(np.int32)), user_dict),
            ],
            schema=RAW_EVENT_SCHEMA,
        )

    def messy_chunk(live: np.ndarray, lo: np.ndarray, span: np.ndarray, frac: np.ndarray):
        """The long tail of oddly named noise events (Zipf volumes), as plain strings."""
        cnt = messy.poisson(MESSY_PER_MONTH * frac)
        acc, ts = place(messy, live, cnt, lo, np.maximum(span, 1))
        codes = messy.choice(len(messy_dict), size=acc.size, p=zipf)
        user = user_off[acc] + np.floor(messy.random(acc.size) * seats[acc]).astype(np.int64)
        return pa.table(
            [
                acc_dict.take(pa.array(acc)),
                messy_dict.take(pa.array(codes)),
                pa.array(ts * 1_000_000, pa.int64()).cast(TS),
                pa.array(np.ones(acc.size)),
                user_dict.take(pa.array(user)),
            ],
            schema=EVENT_SCHEMA,
        )

    def place(rng_: np.random.Generator, acc, counts, lo, span):
        """``counts[i]`` uniform times in ``[lo[i], lo[i] + span[i])`` for account ``acc[i]``."""
        idx = np.repeat(np.arange(acc.size), counts)
        off = np.minimum((rng_.random(idx.size) * span[idx]).astype(np.int64), span[idx] - 1)
        return acc[idx], lo[idx] + off

    for ps, pe in periods:
        live = np.flatnonzero((signup < pe) & (churn == NEVER))
        if live.size == 0:
            continue
        S = ps // DAY - 1  # the month end before the period (a day number)
        lo = np.maximum(signup[live], ps)
        span = pe - lo

        # ---- hazard from the state at S (what the pipeline sees at that snapshot) --------
        closed = signup_day[live] + ACTIVATION_WINDOW_DAYS <= S
        activated = closed & (act_count[live] >= ACTIVATION_THRESHOLD)
        h = base_h[live].copy()
        if effect == "weak":
            h[closed] *= WEAK_FACTOR
        elif effect == "smooth":
            h[closed] *= HAZARD_MULTIPLIERS["past_onboarding"]
            if closed.any():
                w0 = max(S - UTILIZATION_WINDOW_DAYS + 1 - day0, 0)
                conv90 = daily[live, w0 : S - day0 + 1].sum(axis=1, dtype=np.int64)
                rate = conv90 / seats[live] / (UTILIZATION_WINDOW_DAYS / UTILIZATION_PERIOD_DAYS)
                smooth = (1.0 + rate / SMOOTH_RATE) ** -SMOOTH_POWER
                smooth *= (1.0 + act_count[live] / SMOOTH_EARLY) ** -SMOOTH_POWER
                h = np.where(closed, h * smooth, h)
        else:
            h[closed] *= HAZARD_MULTIPLIERS["past_onboarding"]
            h[activated] *= HAZARD_MULTIPLIERS["activated"]
        if effect == "planted" and closed.any():
            w0 = max(S - UTILIZATION_WINDOW_DAYS + 1 - day0, 0)
            conv90 = daily[live, w0 : S - day0 + 1].sum(axis=1, dtype=np.int64)
            rate = conv90 / seats[live] / (UTILIZATION_WINDOW_DAYS / UTILIZATION_PERIOD_DAYS)
            utilized = closed & (rate >= UTILIZATION_THRESHOLD)
            h[utilized] *= HAZARD_MULTIPLIERS["utilized"]
            used = last_used[live] >= (S - MATURITY_WINDOW_DAYS + 1) * DAY
            distinct = np.add.reduceat(used.astype(np.int64), cat_start, axis=1)
            mature_c = (distinct >= cat_thr) & closed[:, None]
            h *= mat_w ** mature_c.sum(axis=1)
            h[mature_c.sum(axis=1) >= MATURITY_MIN_CATEGORIES] *= HAZARD_MULTIPLIERS["mature"]

        # ---- churn in this period ---------------------------------------------------------
        p_churn = 1.0 - (1.0 - h) ** (span / MONTH)
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
        n_early = rng.poisson(lam_early[live] * e_span / (ACTIVATION_WINDOW_DAYS * DAY))
        acc_e, ts_e = place(rng, live, n_early, lo, np.maximum(e_span, 1))
        act_count[live] += n_early
        l_lo = np.maximum(lo, a_end)
        l_span = np.clip(hi - l_lo, 0, None)
        rate_eps[live] = RATE_RHO * rate_eps[live] + rng.normal(0.0, RATE_INNOV, live.size)
        level = np.exp(rate_mu[live] + rate_eps[live])
        p_dormant = np.where(activated, DORMANT["activated"], DORMANT["not_activated"])
        early = lo - signup[live] < DORMANT_DAYS * DAY
        dormant = closed & early & (rng.random(live.size) < p_dormant)
        expected = level * seats[live] * l_span / (UTILIZATION_PERIOD_DAYS * DAY)
        n_late = np.where(dormant, 0, _stochastic_round(rng, expected))
        acc_l, ts_l = place(rng, live, n_late, l_lo, np.maximum(l_span, 1))
        acc_c = np.concatenate([acc_e, acc_l])
        ts_c = np.concatenate([ts_e, ts_l])
        if acc_c.size:
            p0 = ps // DAY
            nd = (pe - 1) // DAY - p0 + 1
            counts = np.bincount((acc_c * nd + (ts_c // DAY - p0)), minlength=n * nd)
            daily[:, p0 - day0 : p0 - day0 + nd] += counts.reshape(n, nd).astype(np.uint16)
        parts.append((EVENT_CODE[ACTIVATION_EVENT], acc_c, ts_c))

        # ---- maturity features: adopters use them most months ---------------------------
        frac = np.minimum(span / MONTH, 1.0)
        for f, name in enumerate(MATURITY_FEATURES):
            adopted = adopt_at[live, f] <= lo
            p_use = np.where(adopted, 0.92 * np.minimum(span / (10 * DAY), 1.0), 0.02 * frac)
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
        p_inbox = 0.99 * np.minimum(span / (7 * DAY), 1.0)
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
        if names == "messy":
            table = messy_chunk(live, lo, span, frac)
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
            later = (deco.exponential(4.0, acc.size) * DAY).astype(np.int64) + 1
            done = first_t[acc] != NEVER
            ts = np.where(done, first_t[acc], 0) + np.where(is_first, 0, later)
            keep = done & (ts < stop[acc])
            parts.append((EVENT_CODE[step], acc[keep], ts[keep]))
        table = chunk(parts)
        if table.num_rows:
            yield "events", table

    ids = [f"acc_{i:0{width}d}" for i in range(first + 1, first + n + 1)]
    churned = churn != NEVER
    yield (
        "accounts",
        pa.table(
            [
                pa.array(ids, pa.string()),
                pa.array(signup * 1_000_000, pa.int64()).cast(TS),
                pa.array(np.where(churned, churn, 0) * 1_000_000, pa.int64(), mask=~churned).cast(
                    TS
                ),
                pa.array(seats, pa.int64()),
                pa.DictionaryArray.from_arrays(pa.array(plan), pa.array(PLANS)).cast(pa.string()),
                pa.DictionaryArray.from_arrays(pa.array(region), pa.array(REGIONS)).cast(
                    pa.string()
                ),
            ],
            schema=ACCOUNT_SCHEMA,
        ),
    )
