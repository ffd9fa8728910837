"""The feature tables written as DuckDB SQL (``features.tables_sql``, the pipeline's path on
DuckDB) are the tables of the Ibis expressions (``features.tables``, checked by hand and
against brute force in ``test_tables.py``, and the path on Spark): the same columns, types
and values, on small generated logs whose names are as odd as real ones.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from features import io, tables, tables_sql
from features.columns import code_of, feature_col

AS_OF = dt.datetime(2025, 6, 30, 23, 59, 59)  # a month end: its date is a training date too
ODD = [
    "Login",
    "login",
    "LOGIN",
    "Invoice Sent",
    'say "hi"',
    "it's",
    "'; DROP TABLE events; --",
    "<b>bold</b>",
    "\U0001f389 party",
    "x" * 300,
    "count",
    "aid",
    "send",
    "view",
]
DATES = [dt.date(2025, 2, 28), dt.date(2025, 3, 31), dt.date(2025, 4, 30), dt.date(2025, 6, 30)]
TENURE = dict(
    setup_steps=["it's", "Login", "never seen"],
    setup_window_days=7,
    activation_event="send",
    activation_window_days=20,
    horizon_days=40,
    golden_week_days=5,
    inactivity_period_days=10,
    inactivity_horizon_days=30,
)
SNAPSHOT = dict(
    categories={"Mixed Case": ["Login", "LOGIN", "never seen"], "rest": ["view", 'say "hi"']},
    utilization_event="send",
    utilization_window_days=60,
    period_days=30,
    maturity_window_days=45,
    trailing_days=30,
    horizon_days=40,
    activation_window_days=20,
)


def _log(folder: Path, seed: int = 3, n_accounts: int = 30):
    """Accounts (some churned, one signing up after ``as_of``) and about 1,500 events."""
    rng = np.random.default_rng(seed)
    signup = pd.Timestamp("2025-01-01") + pd.to_timedelta(
        rng.integers(0, 150 * 24, n_accounts), unit="h"
    )
    churn = [
        s + pd.Timedelta(days=int(rng.integers(10, 120))) if rng.random() < 0.4 else pd.NaT
        for s in signup
    ]
    accounts = pd.DataFrame(
        {
            "account_id": [f"acc{i:02d}" for i in range(n_accounts)],
            "signup_at": signup,
            "churned_at": pd.to_datetime(churn),
            "seats": rng.integers(1, 5, n_accounts).astype("int32"),
            "plan": rng.choice(["basic", "pro"], n_accounts),
            "region": rng.choice(["eu", "us"], n_accounts),
        }
    )
    accounts.loc[0, "signup_at"] = pd.Timestamp(AS_OF) + pd.Timedelta(hours=1)
    rows = []
    for acc in accounts.itertuples():
        end = acc.churned_at if acc.churned_at is not pd.NaT else pd.Timestamp("2025-07-10")
        for _ in range(int(rng.integers(0, 100))):
            at = acc.signup_at + (end - acc.signup_at) * rng.random()
            rows.append((acc.account_id, ODD[int(rng.integers(0, len(ODD)))], at.floor("s")))
    events = pd.DataFrame(rows, columns=["account_id", "event", "occurred_at"])
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(accounts, preserve_index=False), folder / "a.parquet")
    ev = pa.table(
        {
            "account_id": events["account_id"],
            "event": events["event"],
            "occurred_at": pa.array(
                events["occurred_at"].dt.tz_localize("UTC"), pa.timestamp("us", tz="UTC")
            ),
        }
    )
    pq.write_table(ev, folder / "e.parquet")
    con = io.connect()
    acc_raw, ev_raw = io.read_inputs(
        con, io.Source(str(folder / "a.parquet")), io.Source(str(folder / "e.parquet"))
    )
    acc, evt = io.typed_accounts(acc_raw), io.typed_events(ev_raw)
    return con, tables.daily_aggregate(acc, evt, as_of=AS_OF, cache=True)


ORDER = {"tenure": tables.TENURE_ORDER, "snapshots": tables.SNAPSHOT_ORDER}


def _frames(built: dict, rows: dict | None = None) -> dict[str, pd.DataFrame]:
    rows = rows or {}
    return {
        kind: tables.to_frame(t, ORDER.get(kind, tables.SNAPSHOT_ORDER), rows.get(kind))
        for kind, t in built.items()
    }


CASES = {
    "distinct-windows": ({}, {}, DATES, True),
    "equal-windows": (
        {},
        dict(trailing_days=30, utilization_window_days=30, maturity_window_days=30),
        DATES,
        True,
    ),
    "roll-up": (dict(members={"logins": ("LOGIN", "Login", "login")}), {}, DATES, True),
    "unseen-names": (
        dict(activation_event="never seen"),
        dict(utilization_event="nope"),
        DATES,
        True,
    ),
    "no-dates": ({}, {}, [], True),
    "scoring": ({}, {}, [], False),
}


@pytest.mark.parametrize("case", list(CASES))
def test_sql_tables_are_the_ibis_tables(tmp_path, case):
    extra, windows, dates, training = CASES[case]
    con, daily = _log(tmp_path)
    events = ["count", "never seen", *ODD[:10]]
    members = extra.pop("members", None)
    if members:
        events = ["logins", *[e for e in events if e not in members["logins"]]]
    tenure = dict(as_of=AS_OF, events=events, members=members, **{**TENURE, **extra})
    snapshots = dict(as_of=AS_OF, events=events, members=members, **{**SNAPSHOT, **windows})
    names = {k: f"ref_{k}" for k in ("tenure", "snapshots", "current")}
    want = _frames(
        tables.build_tables(
            con,
            daily,
            tenure=tenure,
            snapshots=snapshots,
            dates=dates,
            training=training,
            names=names,
        )
    )
    built, rows = tables_sql.build_tables(
        con, daily, tenure=tenure, snapshots=snapshots, dates=dates, training=training
    )
    assert set(rows) == {"tenure", "snapshots", "current"}
    for kind, table in built.items():
        assert table.schema() == con.table(f"ref_{kind}").schema(), kind
    for got in (_frames(built), _frames(built, rows)):
        for kind, frame in want.items():
            pd.testing.assert_frame_equal(got[kind], frame, check_exact=True, obj=kind)
    assert len(want["tenure"]) == 29 and len(want["current"]) > 5
    assert (len(want["snapshots"]) > 0) == training
    if training:
        assert want["snapshots"][feature_col(events[1 if members else 0], "count")].sum() > 0


def test_no_event_name_is_written_into_the_sql(tmp_path):
    con, daily = _log(tmp_path)
    events = ODD[:10]
    names = {k: f"h__{k}" for k in ("accounts", "pairs", "sums")}
    tenure = tables_sql.tenure_sql(con, daily, as_of=AS_OF, events=events, names=names, **TENURE)
    plan = tables_sql.snapshot_sql(
        con, daily, dates=DATES, as_of=AS_OF, events=events, names=names, **SNAPSHOT
    )
    text = "\n".join(
        [tenure.per_event, tenure.table, plan.pairs, plan.parts, *plan.tables.values()]
    )
    for name in [*ODD[:10], *TENURE["setup_steps"], *SNAPSHOT["categories"]]:
        if code_of(name) != name:  # a plain lower-case name is its own (column) code
            assert name not in text, name
    assert "DROP TABLE" not in text.upper()


def test_sum_parts_sums_each_pair_and_window_exactly():
    pairs = pa.table(
        {
            "aid": pa.array([0, 0, 2], pa.int32()),
            "snapshot_date": pa.array(
                [dt.date(2025, 1, 31), dt.date(2025, 2, 28)] * 1 + [dt.date(2025, 1, 31)],
                pa.date32(),
            ),
            "_row": pa.array([0, 1, 2], pa.int32()),
        }
    )
    # (row, code, packed, in the 15-day window): code 5 is a feature, code 7 the utilization
    # event, code 9 a code no column asks for
    parts = pa.table(
        {
            "_row": pa.array([0, 0, 0, 1, 2, 2], pa.int32()),
            "code": pa.array([5, 5, 7, 5, 9, 7], pa.int32()),
            "_p": pa.array(
                [31 * 3 + 2, 31 + 1, 31 * 4 + 1, 31 * 2 + 2, 31, 31 * 5 + 3], pa.int64()
            ),
            "_in_15": pa.array([1, 0, 1, 0, 1, 1], pa.int8()),
        }
    )
    columns = [("_t5", 30, 5), ("_u", 30, 7), ("_m5", 15, 5), ("_t8", 30, 8)]
    out = tables_sql.sum_parts(pairs, parts, columns).to_pydict()
    assert out["aid"] == [0, 0, 2]
    assert out["_t5"] == [31 * 4 + 3, 31 * 2 + 2, 0]
    assert out["_u"] == [31 * 4 + 1, 0, 31 * 5 + 3]
    assert out["_m5"] == [31 * 3 + 2, 0, 0]
    assert out["_t8"] == [0, 0, 0]  # a feature without any row


def test_a_second_build_replaces_the_tables_of_the_first(tmp_path):
    con, daily = _log(tmp_path)
    events = ["Login", "send"]
    tenure = dict(as_of=AS_OF, events=events, **TENURE)
    snapshots = dict(as_of=AS_OF, events=events, **SNAPSHOT)
    # an earlier build on the Ibis path left temporary tables under the same names
    tables.build_tables(con, daily, tenure=tenure, snapshots=snapshots, dates=DATES)
    first, _ = tables_sql.build_tables(con, daily, tenure=tenure, snapshots=snapshots, dates=DATES)
    n_first = int(first["snapshots"].count().execute())
    second, _ = tables_sql.build_tables(
        con, daily, tenure=tenure, snapshots=snapshots, dates=DATES[:1]
    )
    assert 0 < int(second["snapshots"].count().execute()) < n_first
    assert int(con.table("ms_snapshots").count().execute()) < n_first
    left = con.raw_sql("SELECT table_name FROM information_schema.tables").fetchall()
    assert not [t for (t,) in left if "__" in t]  # no helper table left behind
