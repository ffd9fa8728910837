"""Scoring: flags (computed in DuckDB), stage and next step agree with a by-hand computation."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from features.flags import milestone_flags
from features.io import connect
from models.scoring import SCORE_COLUMNS, finish_scores, flag_parameters

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
    tenure = pd.DataFrame(
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
            "activation_count": [0, 4, 10, 30, 50],
            "setup__a": [False, True, True, True, True],
            "setup__b": [False, True, True, True, True],
        }
    )
    current = pd.DataFrame(
        {
            "account_id": ["acc1", "acc2", "acc3", "acc4", "acc5"],
            "utilization_rate": [0.0, 1.0, 4.99, 5.0, 9.0],
            "maturity__x": [0, 0, 1, 2, 2],
            "maturity__y": [0, 0, 0, 0, 1],
            "maturity__z": [0, 0, 0, 1, 0],
        }
    )
    return tenure, current


def score_accounts(
    tenure,
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
    flags = milestone_flags(
        con.create_table("tenure", tenure, temp=True, overwrite=True),
        con.create_table("current", current, temp=True, overwrite=True),
        as_of=as_of,
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
    tenure, current = frames()
    proba = pd.Series([0.1, 0.2, 0.3, 0.4, 0.9], index=["acc1", "acc2", "acc3", "acc4", "acc5"])
    return score_accounts(
        tenure,
        current,
        THRESHOLDS,
        as_of=AS_OF,
        activation_window_days=60,
        activation_event="conversation_closed",
        utilization_event="conversation_closed",
        retention_probability=proba,
    )


def test_flags_match_hand_computation():
    s = score().set_index("account_id")
    assert list(s.reset_index().columns[: len(SCORE_COLUMNS)]) == SCORE_COLUMNS
    assert s["setup_steps_done"].tolist() == [0, 2, 2, 2, 2]
    assert s["setup_complete"].tolist() == [False, True, True, True, True]
    assert s["activated"].tolist() == [False, False, True, True, True]
    assert s["utilized"].tolist() == [False, False, False, True, True]  # 4.99 < 5 <= 5.0
    assert s["mature_categories"].tolist() == [0, 0, 0, 1, 2]
    assert s["mature"].tolist() == [False, False, False, False, True]
    assert s["stage"].tolist() == ["new", "setup", "activated", "utilized", "mature"]
    assert s["retention_probability"].tolist() == [0.1, 0.2, 0.3, 0.4, 0.9]
    assert (s["as_of"] == pd.Timestamp("2026-06-30")).all()


def test_next_step_texts():
    s = score().set_index("account_id")["next_step"]
    assert s["acc1"] == "Complete setup: a, b (0 of 2 steps done)"
    # signup 2026-06-01 + 60 days = window ends 2026-07-31; days after 2026-06-30: 30
    assert (
        s["acc2"]
        == "Reach activation: 6 more conversation_closed (4 of 10); 30 days left in the first 60"
    )
    assert s["acc3"] == "Raise usage to 5 conversation_closed per seat per 30 days (now 4.99)"
    # closest non-mature category: y needs 1 more, z needs 2 more
    assert s["acc4"] == "Adopt more y features (0 of 1 used): 1 of 3 categories mature, 2 needed"
    assert s["acc5"] == "All milestones reached: keep the account mature"


def test_closed_window_is_said():
    tenure, current = frames()
    tenure.loc[1, "signup_at"] = pd.Timestamp("2026-01-01")
    s = score_accounts(
        tenure,
        current,
        THRESHOLDS,
        as_of=AS_OF,
        activation_window_days=60,
        activation_event="e",
        utilization_event="e",
    ).set_index("account_id")
    assert s.loc["acc2", "next_step"].endswith("the first 60 days are over")
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
    }
