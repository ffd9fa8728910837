"""Each account's current state (features.state, features.flags) on a tiny hand-made log.

The milestones are learned on the early windows, but the state is the account's state now:
a setup step done late completes setup (not on time), an activation count reached in a later
span activates (not on time), and a three-year-old heavy user is ``mature``, not ``new``.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from features import io, tables
from features.flags import milestone_flags
from features.state import milestone_state, state_columns

AS_OF = dt.datetime(2026, 6, 30, 12, 0)
STEPS = ["s1", "s2"]
PARAMS = dict(
    setup_steps=STEPS,
    setup_window_days=21,
    activation_event="send",
    activation_threshold=10,
    activation_window_days=60,
)
SIGNUP = {
    "late_setup": "2025-01-01 08:00",
    "late_activation": "2025-01-01 08:00",
    "spread_out": "2025-01-01 08:00",
    "edge_59": "2025-01-01 08:00",
    "edge_60": "2025-01-01 08:00",
    "span_60": "2025-01-01 08:00",
    "span_61": "2025-01-01 08:00",
    "veteran": "2023-06-01 08:00",
    "veteran_no_s2": "2023-06-01 08:00",
    "fresh": "2026-06-20 08:00",
}


def day(account: str, n: int) -> pd.Timestamp:
    """Noon of day index ``n`` after the account's signup day."""
    return pd.Timestamp(SIGNUP[account]).normalize() + pd.Timedelta(days=n, hours=12)


def event_log() -> pd.DataFrame:
    rows = []

    def add(account, event, days):
        rows.extend((account, event, day(account, d)) for d in days)

    add("late_setup", "s1", [2])
    add("late_setup", "s2", [200, 230])  # skipped in the first 21 days, done on day 200
    add("late_activation", "s1", [1])
    add("late_activation", "s2", [3])
    add("late_activation", "send", [10, 11, 12])  # too few in the first 60 days
    add("late_activation", "send", [100 + 6 * k for k in range(10)])  # 10 within days 100-154
    add("spread_out", "send", [0, 1, 2, 3, 4, 100, 101, 102, 103, 104])  # never 10 in 60 days
    add("edge_59", "send", [59] * 10)  # reached on the window's last day: on time
    add("edge_60", "send", [60] * 10)  # one day later: late
    add("span_60", "send", [300] * 5 + [359] * 5)  # days 300-359: one span of 60 days
    add("span_61", "send", [300] * 5 + [360] * 5)  # days 300-360: 61 days, never in one span
    for acc in ("veteran", "veteran_no_s2"):
        add(acc, "s1", [5])
        add(acc, "send", [1000 + k for k in range(0, 120, 3)])  # 40 in the last 120 days
    add("veteran", "s2", [400])
    return pd.DataFrame(rows, columns=["account_id", "event", "occurred_at"]).assign(
        quantity=1.0, user_id="u"
    )


def accounts() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "account_id": list(SIGNUP),
            "signup_at": pd.to_datetime(list(SIGNUP.values())),
            "churned_at": pd.Series([pd.NaT] * len(SIGNUP), dtype="datetime64[ns]"),
            "seats": 1,
            "plan": "pro",
        }
    )


def current() -> pd.DataFrame:
    """The rows at as_of: the two veterans use the product heavily and broadly."""
    heavy = {"veteran", "veteran_no_s2"}
    return pd.DataFrame(
        {
            "account_id": list(SIGNUP),
            "utilization_rate": [9.0 if a in heavy else 1.0 for a in SIGNUP],
            "maturity__x": [2 if a in heavy else 0 for a in SIGNUP],
            "maturity__y": [1 if a in heavy else 0 for a in SIGNUP],
        }
    )


@pytest.fixture(scope="module")
def engine():
    con = io.connect()
    acc = io.typed_accounts(con.create_table("acc", accounts(), temp=True))
    ev = io.typed_events(con.create_table("ev", event_log(), temp=True))
    daily = tables.daily_aggregate(acc, ev, as_of=AS_OF)
    return con, daily


@pytest.fixture(scope="module")
def state(engine):
    _, daily = engine
    frame = milestone_state(daily, as_of=AS_OF, **PARAMS).to_pandas()
    assert list(frame.columns) == state_columns(STEPS)
    return frame.set_index("account_id")


@pytest.fixture(scope="module")
def flags(engine):
    con, daily = engine
    frame = milestone_flags(
        daily,
        con.create_table("cur", current(), temp=True),
        as_of=AS_OF,
        utilization_threshold=5.0,
        category_thresholds={"x": 2, "y": 1},
        min_categories=2,
        **PARAMS,
    ).to_pandas()
    return frame.set_index("account_id")


def _date(account: str, n: int) -> pd.Timestamp:
    return pd.Timestamp(SIGNUP[account]).normalize() + pd.Timedelta(days=n)


def test_a_step_done_late_completes_setup_late(state, flags):
    row = state.loc["late_setup"]
    assert row["setup_done__s2"] and row["setup_steps_done"] == 2
    assert row["setup_complete"]
    assert pd.Timestamp(row["setup_reached_at"]) == _date("late_setup", 200)
    assert not pd.isna(row["setup_on_time"]) and not bool(row["setup_on_time"])
    assert flags.loc["late_setup", "stage"] == "setup"
    on_time = state.loc["late_activation"]
    assert pd.Timestamp(on_time["setup_reached_at"]) == _date("late_activation", 3)
    assert bool(on_time["setup_on_time"])


def test_activation_reached_in_a_later_span(state, flags):
    row = state.loc["late_activation"]
    assert row["activated"]
    assert row["activation_count"] == 10
    assert pd.Timestamp(row["activation_reached_at"]) == _date("late_activation", 154)
    assert not bool(row["activation_on_time"])
    assert flags.loc["late_activation", "stage"] == "activated"


def test_no_span_holds_enough_events(state, flags):
    row = state.loc["spread_out"]
    assert not row["activated"] and row["activation_count"] == 5
    assert pd.isna(row["activation_reached_at"]) and pd.isna(row["activation_on_time"])
    assert flags.loc["spread_out", "stage"] == "new"
    # the events still needed are counted in the span ending at as_of (none there)
    assert flags.loc["spread_out", "activation_needed"] == 10


def test_on_time_ends_with_the_window(state):
    assert pd.Timestamp(state.loc["edge_59", "activation_reached_at"]) == _date("edge_59", 59)
    assert bool(state.loc["edge_59", "activation_on_time"])
    assert pd.Timestamp(state.loc["edge_60", "activation_reached_at"]) == _date("edge_60", 60)
    assert not bool(state.loc["edge_60", "activation_on_time"])


def test_a_span_is_window_days_long(state):
    assert state.loc["span_60", "activated"]
    assert pd.Timestamp(state.loc["span_60", "activation_reached_at"]) == _date("span_60", 359)
    assert not state.loc["span_61", "activated"]
    assert state.loc["span_61", "activation_count"] == 5


def test_a_three_year_old_heavy_user_is_mature(state, flags):
    for acc in ("veteran", "veteran_no_s2"):
        assert flags.loc[acc, "stage"] == "mature", acc
        assert flags.loc[acc, "activated"] and flags.loc[acc, "utilized"]
        assert pd.Timestamp(flags.loc[acc, "maturity_reached_at"]) == pd.Timestamp(AS_OF.date())
        assert pd.Timestamp(flags.loc[acc, "utilization_reached_at"]) == pd.Timestamp(AS_OF.date())
        # as_of is day 1125: the span ending there is days 1066-1125, holding 1066, ..., 1117
        assert flags.loc[acc, "activation_count_recent"] == 18
    assert flags.loc["veteran", "setup_complete"]
    assert not bool(flags.loc["veteran", "setup_on_time"])
    # never did s2: setup is not complete, but activation passes the setup rung
    assert not flags.loc["veteran_no_s2", "setup_complete"]
    assert pd.isna(flags.loc["veteran_no_s2", "setup_reached_at"])


def test_a_fresh_account_is_new(state, flags):
    row = flags.loc["fresh"]
    assert row["stage"] == "new" and row["setup_steps_done"] == 0
    assert pd.isna(row["setup_reached_at"]) and pd.isna(row["setup_on_time"])
    assert pd.isna(row["utilization_reached_at"]) and pd.isna(row["maturity_reached_at"])


def test_the_tenure_table_still_holds_the_early_facts(engine):
    """The thresholds are still learned on the early windows: the late step and the late
    activation do not count there."""
    _, daily = engine
    tenure = (
        tables.tenure_table(
            daily,
            as_of=AS_OF,
            events=tables.event_names(daily),
            horizon_days=90,
            **{k: v for k, v in PARAMS.items() if k != "activation_threshold"},
        )
        .to_pandas()
        .set_index("account_id")
    )
    assert not tenure.loc["late_setup", "setup__s2"]
    assert tenure.loc["late_activation", "activation_count"] == 3
    assert tenure.loc["edge_59", "activation_count"] == 10
    assert tenure.loc["edge_60", "activation_count"] == 0


def test_no_selected_step_means_setup_at_signup(engine):
    _, daily = engine
    params = {**PARAMS, "setup_steps": []}
    frame = milestone_state(daily, as_of=AS_OF, **params).to_pandas().set_index("account_id")
    assert frame["setup_complete"].all()
    assert pd.Timestamp(frame.loc["fresh", "setup_reached_at"]) == _date("fresh", 0)
