"""Great Expectations checks of the built feature tables."""

import datetime as dt

import pandas as pd
import pytest

from features.io import connect
from features.validation import validate_feature_tables


def tenure_frame():
    return pd.DataFrame(
        {
            "account_id": ["a", "b", "c"],
            "seats": [1, 2, 3],
            "plan": ["p", "p", "q"],
            "activation_count": [0, 5, 9],
            "aw__x": [0, 5, 9],
            "window_closed": [True, True, False],
            "labelled": [True, False, False],
            "retained": pd.array([1, None, None], dtype="Int8"),
        }
    )


def snapshot_frame():
    return pd.DataFrame(
        {
            "account_id": ["a", "a", "b"],
            "snapshot_date": [dt.date(2025, 1, 31), dt.date(2025, 2, 28), dt.date(2025, 2, 28)],
            "seats": [1, 1, 2],
            "plan": ["p", "p", "p"],
            "tenure_days": [30, 58, 40],
            "x__count": [1, 0, 4],
            "x__used": [1, 0, 1],
            "utilization_rate": [0.3, 0.0, 1.0],
            "maturity__c": [1, 0, 1],
            "censored": [False, True, True],
            "retained": pd.array([1, None, None], dtype="Int8"),
        }
    )


def check(tenure, snapshots):
    con = connect()
    tables = {
        "tenure": con.create_table("t_tenure", tenure, temp=True),
        "snapshots": con.create_table("t_snap", snapshots, temp=True),
    }
    return validate_feature_tables(con, tables)


def test_clean_tables_pass():
    report = check(tenure_frame(), snapshot_frame())
    assert report.ok, report.format()
    assert report.row_counts == {"tenure": 3, "snapshots": 3}


@pytest.mark.parametrize(
    "table,change,rule,count",
    [
        ("tenure", lambda t: pd.concat([t, t.iloc[[0]]]), "tenure.key.unique", 1),
        ("tenure", lambda t: t.assign(aw__x=[0, -1, 9]), "tenure.counts.non_negative", 1),
        (
            "tenure",
            lambda t: t.assign(retained=pd.array([1, 1, None], dtype="Int8")),
            "tenure.label.only_when_labelled",
            1,
        ),
        (
            "snapshots",
            lambda s: s.assign(retained=pd.array([1, 0, None], dtype="Int8")),
            "snapshots.label.only_uncensored",
            1,
        ),
        (
            "snapshots",
            lambda s: s.assign(seats=pd.array([1, None, 2], dtype="Int64")),
            "snapshots.required.not_null",
            1,
        ),
        (
            "snapshots",
            lambda s: s.assign(snapshot_date=[dt.date(2025, 2, 28)] * 2 + [dt.date(2025, 2, 28)]),
            "snapshots.key.unique",
            1,
        ),
    ],
)
def test_broken_tables_are_reported(table, change, rule, count):
    t, s = tenure_frame(), snapshot_frame()
    if table == "tenure":
        t = change(t)
    else:
        s = change(s)
    report = check(t, s)
    failed = {r.rule: r.unexpected_count for r in report.failures}
    assert failed == {rule: count}, report.format()
