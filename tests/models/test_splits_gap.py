"""The out-of-time split's gap: no training label is observed after the first test date."""

from __future__ import annotations

import pandas as pd
import pytest

from models.splits import out_of_time_split

MONTH_ENDS = ["2025-01-31", "2025-02-28", "2025-03-31", "2025-04-30", "2025-05-31", "2025-06-30"]


def _frame() -> pd.DataFrame:
    """Accounts a..c seen at every month end; test dates are May and June."""
    rows = [
        {"account_id": acc, "snapshot_date": pd.Timestamp(d), "retained": 1}
        for acc in ("a", "b", "c")
        for d in MONTH_ENDS
    ]
    # d only before the test dates: the one account left in training with share 1.0
    rows += [
        {"account_id": "d", "snapshot_date": pd.Timestamp(d), "retained": k % 2}
        for k, d in enumerate(MONTH_ENDS[:4])
    ]
    return pd.DataFrame(rows)


def test_every_training_label_is_known_by_the_first_test_date():
    df = _frame()
    train, test = out_of_time_split(df, test_snapshots=1, test_account_share=1.0, horizon_days=60)
    first_test = test["snapshot_date"].min()
    assert first_test == pd.Timestamp("2025-06-30")
    assert (train["snapshot_date"] + pd.Timedelta(days=60) <= first_test).all()
    # January to April are kept (April's label lands on 2025-06-29); May (label 2025-07-30)
    # lies in the gap, and d has no row there anyway
    assert sorted(train["snapshot_date"].dt.strftime("%m").tolist()) == ["01", "02", "03", "04"]
    assert set(train["account_id"]) == {"d"}
    # a shorter horizon: the same rows (d has none in May)
    train, test = out_of_time_split(df, test_snapshots=1, test_account_share=1.0, horizon_days=45)
    assert train["snapshot_date"].max() == pd.Timestamp("2025-04-30")


def test_without_a_horizon_there_is_no_gap():
    train, _ = out_of_time_split(_frame(), test_snapshots=2, test_account_share=1.0)
    assert len(train) == 4


def test_fewer_test_dates_when_the_gap_would_leave_training_too_small():
    # five accounts at every month end and d before the test dates: with three test dates
    # and a 60-day gap, training would be d's January row against 15 test rows
    df = pd.concat(
        [_frame(), _frame().query("account_id == 'a'").assign(account_id="e")],
        ignore_index=True,
    )
    train, test = out_of_time_split(df, test_snapshots=3, test_account_share=1.0, horizon_days=30)
    assert test["snapshot_date"].nunique() < 3
    assert (train["snapshot_date"] + pd.Timedelta(days=30) <= test["snapshot_date"].min()).all()


def test_a_gap_longer_than_the_history_names_the_numbers():
    df = _frame()
    message = r"horizon_days=180.*first test date 2025-06-30, the newest of 6"
    with pytest.raises(ValueError, match=message):
        out_of_time_split(df, test_snapshots=2, horizon_days=180)
    with pytest.raises(ValueError, match="horizon_days must be a non-negative integer"):
        out_of_time_split(df, test_snapshots=2, horizon_days=-1)


def test_the_gap_applies_with_a_test_account_share():
    df = _frame()
    train, test = out_of_time_split(
        df, test_snapshots=2, test_account_share=0.5, random_state=0, horizon_days=60
    )
    assert (train["snapshot_date"] + pd.Timedelta(days=60) <= test["snapshot_date"].min()).all()
    assert not set(train["account_id"]) & set(test["account_id"])
