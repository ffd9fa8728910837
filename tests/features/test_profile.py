"""The data profile's aggregates in the engine (features.profile), on a few literal rows."""

from __future__ import annotations

import datetime as dt

import ibis
import pandas as pd
import pytest

from features import profile as fp
from features.io import connect
from features.tables import daily_aggregate

AS_OF = dt.datetime(2026, 6, 30, 23, 59)
JAN = dt.datetime(2025, 1, 1, 9)


def _day(n: int, hour: int = 10) -> dt.datetime:
    return dt.datetime(2025, 1, 1, hour) + dt.timedelta(days=n)


@pytest.fixture(scope="module")
def data():
    """A stays; B churns on 15 March after its first 30 days; C churns within them; D is
    young. "setup" is done in the first days, "use" recurs."""
    con = connect()
    accounts = pd.DataFrame(
        {
            "account_id": ["A", "B", "C", "D"],
            "signup_at": [JAN, JAN, JAN, dt.datetime(2026, 6, 1)],
            "churned_at": [None, dt.datetime(2025, 3, 15), dt.datetime(2025, 1, 20), None],
            "seats": [1, 3, 3, 10],
            "plan": ["pro", "starter", "starter", "pro"],
        }
    ).astype({"churned_at": "datetime64[us]"})
    rows = [
        ("A", "setup", _day(0)),
        ("A", "setup", _day(1)),
        ("A", "use", _day(0)),
        ("A", "use", _day(3)),
        ("A", "use", _day(3, 15)),
        ("A", "use", _day(10)),
        ("A", "use", _day(40)),
        ("B", "setup", _day(2)),
        ("B", "use", _day(5)),
        ("C", "use", _day(1)),
        ("D", "use", dt.datetime(2026, 6, 29)),
        ("D", "use", dt.datetime(2026, 6, 30)),
    ]
    events = pd.DataFrame(rows, columns=["account_id", "event", "occurred_at"])
    events["quantity"] = 1.0
    events["user_id"] = "u1"
    acc = con.create_table("t_accounts", ibis.memtable(accounts), temp=True)
    ev = con.create_table("t_events", ibis.memtable(events), temp=True)
    daily = daily_aggregate(acc, ev, as_of=AS_OF)
    usage = fp.usage_table(daily, as_of=AS_OF, windows=(7, 30))
    return {"con": con, "daily": daily, "usage": usage, "accounts": acc}


def test_usage_table_counts_windows_from_signup(data):
    u = data["usage"].to_pandas()
    names = dict(enumerate(data["daily"].codes))
    aid = data["daily"].accounts.select("aid", "account_id").to_pandas()
    u = u.merge(aid, on="aid").assign(event=lambda f: f["code"].map(names))
    a_use = u[(u["account_id"] == "A") & (u["event"] == "use")].iloc[0]
    assert a_use["first_di"] == 0
    assert a_use["n"] == 5
    assert a_use["days"] == 4
    assert a_use["n_w7"] == 3  # days 0 and 3 (twice)
    assert a_use["n_w30"] == 4
    assert a_use["life"] == (AS_OF.date() - JAN.date()).days
    assert a_use["n_trail"] == 0  # nothing in the 90 days before as_of
    b_use = u[(u["account_id"] == "B") & (u["event"] == "use")].iloc[0]
    assert b_use["life"] == (dt.date(2025, 3, 15) - JAN.date()).days
    assert b_use["n_trail"] == 1  # in the 90 days before B churned


def test_event_summary_reach_volume_first_use_and_front_share(data):
    s = fp.event_summary(data["daily"], data["usage"], windows=(7, 30)).set_index("event")
    assert list(s.index) == ["use", "setup"]  # by reach
    assert s.loc["use", "accounts"] == 4
    assert s.loc["use", "events"] == 9
    assert s.loc["setup", "median_first_use_days"] == pytest.approx(1.0)  # days 0 and 2
    assert s.loc["setup", "front_share"] == pytest.approx(1.0)
    # settled accounts (A, B, C) used "use" 7 times, 6 of them in their first 30 days
    assert s.loc["use", "front_share"] == pytest.approx(6 / 7)
    # D's first 30 days are not over: it does not count as an early user
    assert s.loc["use", "early_w30"] == 3
    assert fp.closed_windows(data["daily"], as_of=AS_OF, windows=(7, 30)) == {7: 4, 30: 3}


def test_retention_counts_label_only_known_outcomes(data):
    counts = fp.retention_counts(
        data["daily"], data["usage"], as_of=AS_OF, window_days=30, horizon_days=60
    )
    # C churned within its window and D's label date is after as_of: A and B are labelled
    assert (counts.labelled, counts.retained) == (2, 1)
    b = counts.buckets.set_index(["event", "bucket"])
    assert b.loc[("use", 4), "accounts"] == 1 and b.loc[("use", 4), "retained"] == 1  # A
    assert b.loc[("use", 1), "accounts"] == 1 and b.loc[("use", 1), "retained"] == 0  # B
    assert b.loc[("setup", 2), "retained"] == 1


def test_churn_by_month_counts_customers_at_the_start(data):
    months = fp.churn_by_month(fp.churn_months(data["accounts"], as_of=AS_OF), as_of=AS_OF)
    by = months.set_index("month")
    assert by.loc["2025-01", "customers"] == 0 and by.loc["2025-01", "signups"] == 3
    assert by.loc["2025-02", "customers"] == 2  # C left in January
    assert by.loc["2025-03", "churned"] == 1
    assert by.loc["2025-03", "churn_rate"] == pytest.approx(0.5)
    assert by.loc["2025-04", "customers"] == 1
    assert months["partial"].tolist()[-1] and not months["partial"].tolist()[0]


def test_seats_plans_frequency_and_silence(data):
    seats, plans = fp.seats_and_plans(data["accounts"], as_of=AS_OF)
    assert seats.set_index("seats")["accounts"].to_dict() == {1: 1, 3: 2, 10: 1}
    assert plans.set_index("plan")["churned"].to_dict() == {"starter": 2, "pro": 0}
    freq = fp.activity_frequency(data["daily"], as_of=AS_OF)
    # only D is active in the last 84 days: on 2 days of one week
    assert freq.to_dict("records") == [{"active_days": 2, "active_weeks": 1, "accounts": 1}]
    curve, gap, reached = fp.silence_curve(data["con"], data["daily"], as_of=AS_OF)
    assert curve[0]["gap_days"] == 7
    assert isinstance(gap, int) and isinstance(reached, bool)


def test_usage_sample_is_bounded_and_keeps_unused_accounts(data):
    rows, accounts = fp.usage_sample(
        data["daily"], data["usage"], as_of=AS_OF, events=["setup"], max_accounts=3
    )
    assert len(accounts) == 3
    assert set(rows["event"]) <= {"setup"}
    assert set(rows["aid"]) <= set(accounts["aid"])
