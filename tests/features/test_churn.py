"""Churn derived from silence (``features.churn``) on a hand-made DuckDB event log.

The log plants a return curve (as_of 2026-01-01):

- 100 churners, active every day of 2025-01-01..10 and never again;
- returners active until the day before as_of with one interior gap: 20 of 10 days, 5 of 20
  days, 3 of 30 days;
- single-event accounts: ``silent`` (31 days before as_of), ``edge21`` (21 days), ``edge20``
  (20 days), ``inside`` (12 days); ``old_quiet`` and ``new_quiet`` have no event at all.

At a gap G the return rate is (returners with a gap above G) / (those + churners + single-
event accounts whose final silence is above G): G = 19 gives 8 / 111, G = 20 gives 3 / 105,
so the fit with a 5 % target is 20 days, and with a 10 % target 10 days (8 / 112).
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from features.churn import (
    derive_inactivity_churn,
    pick_gap,
    without_churn_column,
)
from features.io import connect, typed_accounts, typed_events
from features.validation import validate_inputs

AS_OF = dt.datetime(2026, 1, 1)
DAY = dt.timedelta(days=1)


def _log() -> tuple[pd.DataFrame, pd.DataFrame]:
    accounts, events = [], []

    def account(aid: str, signup: dt.datetime, days: list[dt.datetime]) -> None:
        accounts.append({"account_id": aid, "signup_at": signup, "seats": 1, "plan": "p"})
        events.extend(
            {"account_id": aid, "event": "used", "occurred_at": d + dt.timedelta(hours=10)}
            for d in days
        )

    start = dt.datetime(2025, 1, 1)
    for i in range(100):
        account(f"churner{i:03d}", start, [start + k * DAY for k in range(10)])
    last = AS_OF - DAY  # returners are active up to the day before as_of
    for gap, n in ((10, 20), (20, 5), (30, 3)):
        for i in range(n):
            before = last - gap * DAY - 5 * DAY
            days = [before + k * DAY for k in range(6)] + [before + 5 * DAY + gap * DAY]
            days += [last]
            account(f"back{gap}_{i}", start, sorted(set(days)))
    for aid, silent_days in (("silent", 31), ("edge21", 21), ("edge20", 20), ("inside", 12)):
        account(aid, start, [AS_OF - silent_days * DAY])
    account("old_quiet", dt.datetime(2025, 11, 1), [])
    account("new_quiet", dt.datetime(2025, 12, 25), [])
    return pd.DataFrame(accounts), pd.DataFrame(events)


@pytest.fixture(scope="module")
def log():
    con = connect("duckdb")
    accounts, events = _log()
    accounts_raw = con.create_table("raw_accounts", accounts)
    events_raw = con.create_table("raw_events", events)
    return con, accounts_raw, events_raw


def _derive(log, **kwargs):
    con, accounts_raw, events_raw = log
    accounts, churn = derive_inactivity_churn(
        con,
        typed_accounts(without_churn_column(accounts_raw)),
        typed_events(events_raw),
        as_of=AS_OF,
        **kwargs,
    )
    frame = accounts.to_pandas().set_index("account_id")
    return frame, churn


def test_the_fitted_gap_is_the_smallest_with_few_returns(log):
    _, churn = _derive(log)
    assert churn.fitted and churn.reached_target
    assert churn.gap_days == 20
    assert churn.return_rate == pytest.approx(3 / 105)
    curve = {p["gap_days"]: p for p in churn.curve}
    assert curve[19]["returned_accounts"] == 8 and curve[19]["silent_accounts"] == 111
    assert curve[9]["return_rate"] == pytest.approx(28 / 132)
    assert curve[30]["returned_accounts"] == 0
    assert min(curve) == 7 and max(curve) == 365
    _, looser = _derive(log, max_return_rate=0.10)
    assert looser.gap_days == 10


def test_silent_accounts_churn_at_their_last_day_and_recent_ones_are_live(log):
    frame, churn = _derive(log)
    churned = frame.churned_at
    assert churned["silent"] == pd.Timestamp(AS_OF - 30 * DAY)  # last day + 1, midnight
    assert churned["edge21"] == pd.Timestamp(AS_OF - 20 * DAY)
    assert pd.isna(churned["edge20"])  # silent exactly the gap: not yet churned
    assert pd.isna(churned["inside"])
    assert churned["churner000"] == pd.Timestamp(2025, 1, 11)
    assert churned.filter(like="back").isna().all()
    # no event: churned at signup + gap when that is over by as_of, else live
    assert churned["old_quiet"] == pd.Timestamp(2025, 11, 21)
    assert pd.isna(churned["new_quiet"])
    assert churn.churned == 100 + 2 + 1 and churn.live == len(frame) - 103
    assert list(frame.columns[:4]) == ["signup_at", "churned_at", "seats", "plan"]


def test_a_configured_gap_overrides_the_fit(log):
    frame, churn = _derive(log, gap_days=40)
    assert not churn.fitted and churn.gap_days == 40
    assert churn.return_rate == 0.0 and churn.reached_target
    assert pd.isna(frame.churned_at["silent"])
    assert frame.churned_at["old_quiet"] == pd.Timestamp(2025, 12, 11)
    assert frame.churned_at["churner000"] == pd.Timestamp(2025, 1, 11)


def test_no_gap_reaches_the_target():
    curve = [
        {"gap_days": g, "silent_accounts": 50, "returned_accounts": 10, "return_rate": 0.2}
        for g in range(7, 366)
    ]
    assert pick_gap(curve) == (365, False)
    # too few silent accounts to judge a gap: not chosen
    curve[0] = {"gap_days": 7, "silent_accounts": 5, "returned_accounts": 0, "return_rate": 0.0}
    assert pick_gap(curve, min_silent_accounts=20) == (365, False)
    assert pick_gap(curve, min_silent_accounts=5) == (7, True)


def test_validation_requires_churned_at_only_in_column_mode(log):
    con, accounts_raw, events_raw = log
    column = validate_inputs(con, accounts_raw, events_raw, as_of=AS_OF)
    assert column.failures[0].rule == "accounts.columns.present"
    assert column.failures[0].examples == [{"missing_column": "churned_at"}]
    inactivity = validate_inputs(con, accounts_raw, events_raw, as_of=AS_OF, churn_column=False)
    assert inactivity.ok, inactivity.format()
    # a churned_at that is present is ignored in inactivity mode, even a broken one
    broken = accounts_raw.mutate(churned_at=accounts_raw.account_id)
    assert not validate_inputs(con, broken, events_raw, as_of=AS_OF).ok
    assert validate_inputs(con, broken, events_raw, as_of=AS_OF, churn_column=False).ok
