"""Scoring: the current state (computed in DuckDB from a tiny event log), stage and next step
agree with a by-hand computation."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from features.flags import milestone_flags
from features.io import connect, typed_accounts, typed_events
from features.tables import daily_aggregate
from models.scoring import REACHED_COLUMNS, SCORE_COLUMNS, finish_scores, flag_parameters

THRESHOLDS = {
    "setup": {"steps": ["a", "b"], "threshold": 2},
    "activation": {"threshold": 10},
    "utilization": {"threshold": 5.0},
    "maturity": {
        "threshold": 2,
        "min_categories": 2,
        "categories": {"x": {"threshold": 2}, "y": {"threshold": 1}, "z": {"threshold": 3}},
    },
}
AS_OF = dt.datetime(2026, 6, 30, 12, 0)


def frames():
    # acc1: nothing done; acc2: setup only, in window; acc3: setup+activation;
    # acc4: +utilization, 1 mature category; acc5: everything.
    accounts = pd.DataFrame(
        {
            "account_id": ["acc1", "acc2", "acc3", "acc4", "acc5"],
            "signup_at": pd.to_datetime(
                [
                    "2026-06-20 09:00",
                    "2026-06-01 23:00",
                    "2025-01-01 00:00",
                    "2025-01-01 00:00",
                    "2025-01-01 00:00",
                ]
            ),
            "churned_at": pd.Series([pd.NaT] * 5, dtype="datetime64[ns]"),
            "seats": 1,
            "plan": "pro",
        }
    )
    rows = []
    for acc, signup, sends in [
        ("acc2", "2026-06-02 10:00", 4),
        ("acc3", "2025-01-02 10:00", 10),
        ("acc4", "2025-01-02 10:00", 30),
        ("acc5", "2025-01-02 10:00", 50),
    ]:
        first = pd.Timestamp(signup)
        rows += [(acc, step, first) for step in ("a", "b")]
        rows += [(acc, "e", first + pd.Timedelta(hours=5 * k)) for k in range(sends)]
    events = pd.DataFrame(rows, columns=["account_id", "event", "occurred_at"])
    current = pd.DataFrame(
        {
            "account_id": ["acc1", "acc2", "acc3", "acc4", "acc5"],
            "utilization_rate": [0.0, 1.0, 4.99, 5.0, 9.0],
            "maturity__x": [0, 0, 1, 2, 2],
            "maturity__y": [0, 0, 0, 0, 1],
            "maturity__z": [0, 0, 0, 1, 0],
        }
    )
    return accounts, events, current


def score_accounts(
    accounts,
    events,
    current,
    thresholds,
    *,
    as_of,
    activation_window_days,
    activation_event,
    utilization_event,
    retention_probability=None,
):
    con = connect()
    daily = daily_aggregate(
        typed_accounts(con.create_table("accounts", accounts, temp=True, overwrite=True)),
        typed_events(
            con.create_table(
                "events", events.assign(quantity=1.0, user_id="u"), temp=True, overwrite=True
            )
        ),
        as_of=as_of,
    )
    flags = milestone_flags(
        daily,
        con.create_table("current", current, temp=True, overwrite=True),
        as_of=as_of,
        setup_window_days=21,
        activation_event=activation_event,
        activation_window_days=activation_window_days,
        **flag_parameters(thresholds),
    ).to_pandas()
    return finish_scores(
        flags,
        thresholds,
        as_of=as_of,
        activation_window_days=activation_window_days,
        activation_event=activation_event,
        utilization_event=utilization_event,
        retention_probability=retention_probability,
    )


def score():
    accounts, events, current = frames()
    proba = pd.Series([0.1, 0.2, 0.3, 0.4, 0.9], index=["acc1", "acc2", "acc3", "acc4", "acc5"])
    return score_accounts(
        accounts,
        events,
        current,
        THRESHOLDS,
        as_of=AS_OF,
        activation_window_days=60,
        activation_event="e",
        utilization_event="conversation_closed",
        retention_probability=proba,
    )


def test_flags_match_hand_computation():
    s = score().set_index("account_id")
    columns = list(s.reset_index().columns)
    assert columns[: len(SCORE_COLUMNS)] == SCORE_COLUMNS
    assert columns[len(SCORE_COLUMNS) : len(SCORE_COLUMNS) + len(REACHED_COLUMNS)] == (
        REACHED_COLUMNS
    )
    assert s["setup_steps_done"].tolist() == [0, 2, 2, 2, 2]
    assert s["setup_complete"].tolist() == [False, True, True, True, True]
    assert s["activation_count"].tolist() == [0, 4, 10, 30, 50]
    assert s["activated"].tolist() == [False, False, True, True, True]
    assert s["utilized"].tolist() == [False, False, False, True, True]  # 4.99 < 5 <= 5.0
    assert s["mature_categories"].tolist() == [0, 0, 0, 1, 2]
    assert s["mature"].tolist() == [False, False, False, False, True]
    assert s["stage"].tolist() == ["new", "setup", "activated", "utilized", "mature"]
    assert s["retention_probability"].tolist() == [0.1, 0.2, 0.3, 0.4, 0.9]
    assert (s["as_of"] == pd.Timestamp("2026-06-30")).all()


def test_reached_dates_and_on_time_flags():
    s = score().set_index("account_id")
    assert s["setup_reached_at"].dtype == s["as_of"].dtype
    assert pd.isna(s.loc["acc1", "setup_reached_at"]) and pd.isna(s.loc["acc1", "setup_on_time"])
    assert s.loc["acc2", "setup_reached_at"] == pd.Timestamp("2026-06-02")
    assert s.loc["acc2", "setup_on_time"] == True  # noqa: E712 (a nullable boolean)
    assert pd.isna(s.loc["acc2", "activation_reached_at"])
    # acc3's tenth event: 45 hours after 2025-01-02 10:00
    assert s.loc["acc3", "activation_reached_at"] == pd.Timestamp("2025-01-04")
    assert s.loc["acc3", "activation_on_time"] == True  # noqa: E712
    assert str(s["activation_on_time"].dtype) == "boolean"
    as_of = pd.Timestamp("2026-06-30")
    assert s["utilization_reached_at"].tolist()[2:] == [pd.NaT, as_of, as_of]
    assert s["maturity_reached_at"].isna().tolist() == [True, True, True, True, False]


def test_next_step_texts():
    s = score().set_index("account_id")["next_step"]
    assert s["acc1"] == "Complete setup: a, b (0 of 2 steps done)"
    assert s["acc2"] == (
        "Reach activation: 6 more e within 60 days (4 in the last 60 days; "
        "10 needed in one 60-day span)"
    )
    assert s["acc3"] == "Raise usage to 5 conversation_closed per seat per 30 days (now 4.99)"
    # closest non-mature category: y needs 1 more, z needs 2 more
    assert s["acc4"] == "Adopt more y features (0 of 1 used): 1 of 3 categories mature, 2 needed"
    assert s["acc5"] == "All milestones reached: keep the account mature"


def test_a_closed_window_still_leaves_a_step_to_take():
    """Past its first 60 days, an account below the threshold is told what it can do now:
    the events still needed in the span ending at as_of (older events no longer count)."""
    accounts, events, current = frames()
    accounts.loc[1, "signup_at"] = pd.Timestamp("2026-01-01")
    old = pd.DataFrame(
        {"account_id": "acc2", "event": "e", "occurred_at": pd.date_range("2026-01-05", periods=5)}
    )
    s = score_accounts(
        accounts,
        pd.concat([events, old], ignore_index=True),
        current,
        THRESHOLDS,
        as_of=AS_OF,
        activation_window_days=60,
        activation_event="e",
        utilization_event="e",
    ).set_index("account_id")
    assert s.loc["acc2", "stage"] == "setup"
    assert s.loc["acc2", "setup_on_time"] == False  # noqa: E712 (signup 2026-01-01, done in June)
    assert s.loc["acc2", "activation_count"] == 5  # the best span: January's five
    assert s.loc["acc2", "next_step"].startswith("Reach activation: 6 more e within 60 days (4 in")
    assert "over" not in s.loc["acc2", "next_step"]
    assert np.isnan(s["retention_probability"]).all()


def test_missing_column_is_named():
    flags = score().drop(columns="utilization_rate")
    with pytest.raises(ValueError, match="flags is missing column 'utilization_rate'"):
        finish_scores(
            flags,
            THRESHOLDS,
            as_of=AS_OF,
            activation_window_days=60,
            activation_event="e",
            utilization_event="e",
        )


def test_flag_parameters_read_the_thresholds():
    p = flag_parameters(THRESHOLDS)
    assert p == {
        "setup_steps": ["a", "b"],
        "activation_threshold": 10.0,
        "utilization_threshold": 5.0,
        "category_thresholds": {"x": 2.0, "y": 1.0, "z": 3.0},
        "min_categories": 2,
        "gating": ["setup", "activation", "utilization", "maturity"],
    }
