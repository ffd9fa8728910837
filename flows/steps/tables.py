"""Step 2: the point-in-time feature tables (tenure rows, snapshot rows, rows at ``as_of``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from flows.config import Config
from flows.runtime import Stage
from flows.steps.inputs import Inputs


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
    tenure_expr = ft.tenure_table(
        daily,
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
    snapshots_expr = ft.snapshot_table(daily, dates=dates or [inputs.as_of.date()], **common)
    if not training:
        snapshots_expr = snapshots_expr.limit(0)
    current_expr = ft.snapshot_table(
        daily, dates=[inputs.as_of.date()], require_window_closed=False, **common
    )
    built = {
        "tenure": ft.materialise(inputs.con, "ms_tenure", tenure_expr),
        "snapshots": ft.materialise(inputs.con, "ms_snapshots", snapshots_expr),
    }
    report = validate_feature_tables(inputs.con, built)
    if not report.ok:
        raise RuntimeError("the built feature tables break their own checks:\n" + report.format())
    current_table = ft.materialise(inputs.con, "ms_current", current_expr)
    tenure = ft.to_frame(built["tenure"], ft.TENURE_ORDER)
    snapshots = ft.to_frame(built["snapshots"], ft.SNAPSHOT_ORDER)
    current = ft.to_frame(current_table, ft.SNAPSHOT_ORDER)
    if stage:
        stage.note(
            "%d accounts, %d events (%d distinct names, %d features judged), %d snapshot "
            "rows over %d month ends, %d live accounts",
            len(tenure),
            n_events,
            len(daily.codes),
            len(events),
            len(snapshots),
            len(dates),
            len(current),
        )
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
    )
