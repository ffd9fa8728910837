"""Step 2: the point-in-time feature tables (tenure rows, snapshot rows, rows at ``as_of``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from features.columns import ACCOUNT_KEY
from flows.config import Config
from flows.runtime import Stage
from flows.steps.inputs import Inputs


@dataclass(frozen=True)
class SnapshotSample:
    """How many of the engine's snapshot rows reached pandas (``snapshots.max_rows``)."""

    rows: int  # fetched into pandas
    accounts: int
    total_rows: int  # in the engine's snapshot table
    total_accounts: int
    budget: int

    @property
    def sampled(self) -> bool:
        return self.rows < self.total_rows

    def note(self) -> str:
        return (
            f"{self.rows:,} of {self.total_rows:,} snapshot rows ({self.accounts:,} of "
            f"{self.total_accounts:,} accounts) sampled for analysis "
            f"(snapshots.max_rows={self.budget:,})"
        )


@dataclass
class FeatureTables:
    tenure_table: Any  # the engine's tables, for engine-side scoring
    current_table: Any
    tenure: pd.DataFrame
    snapshots: pd.DataFrame
    current: pd.DataFrame
    events: list[str]
    dates: list[dt.date]
    n_events: int
    period: tuple[str, str]
    daily: Any = None  # the engine's (account, event, day) aggregate: each account's state
    # The judged features (``events`` above) and the names not judged, with their reasons
    # (features.selection.FeatureSelection); the number of distinct event names in the data.
    selection: Any = None
    n_names: int = 0
    # {column code: name} of every event, roll-up, setup step and category (columns carry
    # codes, never names: features.columns)
    names: dict[str, str] = field(default_factory=dict)
    # the snapshot rows in the engine and those fetched into ``snapshots`` (the row budget)
    sample: SnapshotSample | None = None
    snapshots_table: Any = None  # the engine's whole snapshot table


def configured_events(cfg: Config) -> list[str]:
    """The events a milestone is configured with: always computed, never capped out."""
    m = cfg.milestones
    cats = [f for feats in m.maturity.categories.values() for f in feats]
    return list(dict.fromkeys([*m.setup.steps, m.activation.event, m.utilization.event, *cats]))


def select(cfg: Config, daily: Any, as_of: Any, keep: Sequence[str] = ()) -> Any:
    """The features the models judge (``features.*``, :mod:`features.selection`); ``keep``:
    features that get their columns whatever the rule says (a champion's, when scoring)."""
    from dataclasses import replace

    from features.selection import select_features

    f = cfg.features
    selection = select_features(
        daily,
        as_of=as_of,
        min_accounts=f.min_accounts,
        include=f.include,
        exclude=f.exclude,
        rollup=f.rollup,
        max_features=f.max_features,
        configured=configured_events(cfg),
    )
    extra = [k for k in keep if k not in selection.judged]
    if not extra:
        return selection
    return replace(selection, judged=tuple(sorted([*selection.judged, *extra])))


def sample_accounts(counts: pd.DataFrame, budget: int, seed: int) -> np.ndarray:
    """The accounts whose snapshot rows are analysed, from ``counts`` (``account_id`` and
    ``rows``: each account's snapshot rows): all of them when their rows fit ``budget``;
    else whole accounts in a random order (numpy's generator seeded with ``seed``, over the
    accounts sorted by id, so every engine picks the same) up to the last one whose rows
    still fit: at most ``budget`` rows, and short of it by less than the next account's rows.
    The first account of the order is always taken, even when its rows alone exceed
    ``budget``.
    """
    ids = counts[ACCOUNT_KEY].astype(str).to_numpy()
    rows = counts["rows"].to_numpy(dtype=np.int64)
    order = np.argsort(ids, kind="stable")
    ids, rows = ids[order], rows[order]
    if int(rows.sum()) <= budget:
        return ids
    shuffled = np.random.default_rng(seed).permutation(len(ids))
    filled = np.cumsum(rows[shuffled])
    n = max(int(np.searchsorted(filled, budget, side="right")), 1)
    return np.sort(ids[shuffled[:n]])


def budgeted_snapshots(
    table: Any, budget: int, seed: int, rows: Any = None
) -> tuple[pd.DataFrame, SnapshotSample]:
    """The engine's snapshot ``table`` as pandas (sorted as ``features.tables.to_frame``),
    bounded by the row budget: past ``budget`` rows, the rows of a seeded sample of whole
    accounts (:func:`sample_accounts`), fetched with a semi-join on the chosen ids;
    ``rows``: the table's rows already fetched as Arrow, sorted (used when all fit)."""
    import ibis

    from features import tables as ft

    counts = table.group_by(ACCOUNT_KEY).aggregate(rows=table.count()).to_pandas()
    total = int(counts["rows"].sum()) if len(counts) else 0
    chosen = sample_accounts(counts, budget, seed)
    if len(chosen) == len(counts):
        frame = ft.to_frame(table, ft.SNAPSHOT_ORDER, rows)
    else:
        keys = ibis.memtable(pd.DataFrame({ACCOUNT_KEY: chosen}))
        keys = keys.select(keys[ACCOUNT_KEY].cast(table.schema()[ACCOUNT_KEY]))
        frame = ft.to_frame(table.semi_join(keys, ACCOUNT_KEY), ft.SNAPSHOT_ORDER)
    sample = SnapshotSample(
        rows=len(frame),
        accounts=len(chosen),
        total_rows=total,
        total_accounts=len(counts),
        budget=budget,
    )
    return frame, sample


def _build(
    con: Any, daily: Any, tenure: dict, snapshots: dict, dates: list, training: bool
) -> tuple[dict, dict]:
    """The tenure table, the training snapshots (empty when not ``training``) and the rows at
    ``as_of`` in the engine, and the rows already fetched as Arrow (``{kind: rows}``, sorted
    for ``features.tables.to_frame``): on DuckDB from SQL text (``features.tables_sql``, the
    same tables without building and compiling Ibis expressions of a few hundred columns),
    elsewhere from the Ibis expressions (``features.tables.build_tables``)."""
    from features import tables as ft
    from features.values import engine_of

    if engine_of(con) == "duckdb":
        from features.tables_sql import build_tables

        return build_tables(
            con, daily, tenure=tenure, snapshots=snapshots, dates=dates, training=training
        )
    built = ft.build_tables(
        con, daily, tenure=tenure, snapshots=snapshots, dates=dates, training=training
    )
    return built, {}


def build_feature_tables(
    cfg: Config,
    inputs: Inputs,
    stage: Stage | None = None,
    *,
    training: bool = True,
    keep: Sequence[str] = (),
) -> FeatureTables:
    """The tenure table, the snapshot table (when ``training``) and the rows at ``as_of``.

    Only the judged features (:func:`select`) and the configured events become columns;
    ``keep`` adds features (the champion's, when scoring without training).
    """
    from features import tables as ft
    from features.columns import name_lookup
    from features.validation import validate_feature_tables

    m = cfg.milestones
    daily = ft.daily_aggregate(inputs.accounts, inputs.events, as_of=inputs.as_of, cache=True)
    selection = select(cfg, daily, inputs.as_of, keep)
    events = list(selection.judged)
    members = selection.judged_members()
    names = name_lookup(
        daily.codes, selection.members, m.setup.steps, m.maturity.categories, configured_events(cfg)
    )
    counted = inputs.validation.get("row_counts", {}).get("events")  # validation counted them
    n_events = int(counted) if counted is not None else int(inputs.events.count().execute())
    tenure_params = dict(
        as_of=inputs.as_of,
        events=events,
        setup_steps=m.setup.steps,
        setup_window_days=m.setup.window_days,
        activation_event=m.activation.event,
        activation_window_days=m.activation.window_days,
        horizon_days=cfg.retention.horizon_days,
        golden_week_days=cfg.features.golden_week_days,
        inactivity_period_days=m.activation.inactivity_period_days,
        inactivity_horizon_days=m.activation.inactivity_horizon_days,
        members=members,
    )
    first = inputs.accounts.signup_at.min().execute()
    dates = ft.snapshot_dates(
        pd.Timestamp(first).date(),
        inputs.as_of,
        activation_window_days=m.activation.window_days,
        max_snapshots=cfg.snapshots.max_snapshots,
    )
    common = dict(
        as_of=inputs.as_of,
        events=events,
        categories=m.maturity.categories,
        utilization_event=m.utilization.event,
        utilization_window_days=m.utilization.window_days,
        period_days=m.utilization.period_days,
        maturity_window_days=m.maturity.window_days,
        trailing_days=cfg.trailing_days,
        horizon_days=cfg.retention.horizon_days,
        activation_window_days=m.activation.window_days,
        members=members,
    )
    if not training:
        dates = []
    built, rows = _build(inputs.con, daily, tenure_params, common, dates, training)
    current_table = built.pop("current")
    report = validate_feature_tables(inputs.con, built)
    if not report.ok:
        raise RuntimeError("the built feature tables break their own checks:\n" + report.format())
    tenure = ft.to_frame(built["tenure"], ft.TENURE_ORDER, rows.get("tenure"))
    # Only the row budget's whole accounts of the snapshot rows reach pandas (issue 12); the
    # tenure rows (one per account, fewer columns) come whole.
    snapshots, sample = budgeted_snapshots(
        built["snapshots"], cfg.snapshots.max_rows, cfg.seed, rows.get("snapshots")
    )
    current = ft.to_frame(current_table, ft.SNAPSHOT_ORDER, rows.get("current"))
    if stage:
        stage.note(
            "%d accounts, %d events (%d distinct names, %d features judged), %d snapshot "
            "rows over %d month ends, %d live accounts",
            len(tenure),
            n_events,
            len(daily.codes),
            len(events),
            sample.total_rows,
            len(dates),
            len(current),
        )
        if sample.sampled:
            stage.note("%s", sample.note())
    start = tenure["signup_date"].min()
    return FeatureTables(
        tenure_table=built["tenure"],
        current_table=current_table,
        tenure=tenure,
        snapshots=snapshots,
        current=current,
        events=events,
        dates=dates,
        n_events=n_events,
        period=(str(pd.Timestamp(start).date()), str(inputs.as_of)),
        daily=daily,
        selection=selection,
        n_names=len(daily.codes),
        names=names,
        sample=sample,
        snapshots_table=built["snapshots"],
    )


def write_snapshots(tables: FeatureTables, path: Any) -> None:
    """Write every snapshot row to the Parquet file ``path`` (``milestones features``):
    from pandas when it holds them all; past ``snapshots.max_rows`` (``snapshots`` holds
    only the sample), from the engine in the same order: DuckDB's own ``COPY``, or Arrow."""
    if tables.sample is None or not tables.sample.sampled or tables.snapshots_table is None:
        tables.snapshots.to_parquet(path, index=False)
        return
    from features import tables as ft
    from features.values import engine_of

    table = tables.snapshots_table
    dates = {c: table[c].cast("timestamp") for c, t in table.schema().items() if t.is_date()}
    ordered = table.mutate(**dates).order_by(list(ft.SNAPSHOT_ORDER))  # dates as pandas has them
    if engine_of(ordered._find_backend()) == "duckdb":
        ordered.to_parquet(str(path))  # DuckDB's COPY, streamed
        return
    import pyarrow.parquet as pq

    pq.write_table(ordered.to_pyarrow(), str(path))  # a cluster's table, through Arrow
