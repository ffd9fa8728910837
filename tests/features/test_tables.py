"""Point-in-time correctness of the feature tables, on hand-made data worked out by hand.

Every input is written to small files (Parquet, and the same data as CSV with ISO 8601
offsets and naive timestamps) and read back through ``features.io`` as the pipeline does.

The example (as_of = 2025-03-31 12:00 UTC; all times below are UTC):

    account  signup_at          churned_at   seats  plan     region
    A        2025-01-01 08:00   -            2      pro      eu
    B        2025-01-10 00:00   2025-01-25   1      starter  us
    C        2025-03-25 23:30   -            4      pro      eu
    D        2025-03-31 18:00   -            1      starter  us    (signs up after as_of)

Day index = date(occurred_at) - date(signup_at), in days.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import ibis
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from features import io, tables
from features.columns import feature_col, maturity_col, setup_col

AS_OF = dt.datetime(2025, 3, 31, 12, 0, 0)
EVENTS = ["connect", "invite", "send", "view"]

# account_id, signup_at (UTC), churned_at (UTC), seats, plan, region, and how the CSV copy
# spells the two timestamps (offsets, "Z", naive values: all the same instants).
ACCOUNTS = [
    ("A", "2025-01-01 08:00:00", None, 2, "pro", "eu", "2025-01-01T10:00:00+02:00", ""),
    (
        "B",
        "2025-01-10 00:00:00",
        "2025-01-25 00:00:00",
        1,
        "starter",
        "us",
        "2025-01-10 00:00:00",
        "2025-01-24T19:00:00-05:00",
    ),
    ("C", "2025-03-25 23:30:00", None, 4, "pro", "eu", "2025-03-26T01:30:00+02:00", ""),
    ("D", "2025-03-31 18:00:00", None, 1, "starter", "us", "2025-03-31T18:00:00Z", ""),
]

# account_id, event, occurred_at (UTC), quantity (None: default 1), the CSV spelling.
# The comment gives the day index and what the event is there to show.
EVENT_ROWS = [
    # A signed up on 2025-01-01
    ("A", "connect", "2025-01-01 09:00:00", 1.0, "2025-01-01T11:00:00+02:00"),  # d0
    ("A", "send", "2025-01-01 10:00:00", 2.0, "2025-01-01 10:00:00"),  # d0, quantity 2
    ("A", "view", "2025-01-03 00:00:00", 1.0, "2025-01-02T19:00:00-05:00"),  # d2, other local day
    ("A", "invite", "2025-01-04 00:00:00", 1.0, "2025-01-04T01:00:00+01:00"),  # d3 = setup window
    ("A", "send", "2025-01-05 23:59:00", 1.0, "2025-01-05 23:59:00"),  # d4, last golden-week day
    ("A", "send", "2025-01-06 00:00:00", 1.0, "2025-01-06T02:00:00+02:00"),  # d5 = golden week
    ("A", "send", "2025-01-10 23:59:59", 1.0, "2025-01-10 23:59:59"),  # d9, last window day
    ("A", "send", "2025-01-11 00:00:00", 1.0, "2025-01-11T00:00:00Z"),  # d10 = activation window
    ("A", "send", "2025-01-25 12:00:00", 1.0, "2025-01-25 12:00:00"),  # d24
    ("A", "send", "2025-02-20 12:00:00", 1.0, "2025-02-20 12:00:00"),
    ("A", "view", "2025-02-25 08:00:00", 1.0, "2025-02-25 08:00:00"),
    ("A", "send", "2025-03-10 00:00:00", 1.0, "2025-03-10 00:00:00"),
    # B signed up on 2025-01-10 and churned on 2025-01-25
    ("B", "send", "2025-01-10 00:00:00", None, "2025-01-10 00:00:00"),  # d0, quantity default 1
    ("B", "send", "2025-01-10 13:00:00", 3.0, "2025-01-10T14:00:00+01:00"),  # d0 again
    ("B", "view", "2025-01-11 23:00:00", 1.0, "2025-01-12T01:00:00+02:00"),  # d1 (d2 locally)
    ("B", "invite", "2025-01-11 08:00:00", 1.0, "2025-01-11 08:00:00"),  # d1
    ("B", "send", "2025-01-16 09:00:00", 1.0, "2025-01-16 09:00:00"),  # d6
    # C signed up on 2025-03-25 (23:30)
    ("C", "connect", "2025-03-26 00:10:00", 1.0, "2025-03-25T20:10:00-04:00"),  # d1
    ("C", "send", "2025-03-31 11:00:00", 1.0, "2025-03-31 11:00:00"),  # d6, before as_of
    ("C", "send", "2025-03-31 12:00:01", 1.0, "2025-03-31T14:00:01+02:00"),  # after as_of
]

TENURE = dict(
    setup_steps=["connect", "invite"],
    setup_window_days=3,
    activation_event="send",
    activation_window_days=10,
    horizon_days=20,
    golden_week_days=5,
    inactivity_period_days=10,
    inactivity_horizon_days=20,
)
SNAPSHOT = dict(
    categories={"collab": ["invite", "view"], "core": ["connect", "send"]},
    utilization_event="send",
    utilization_window_days=20,
    period_days=10,
    maturity_window_days=15,
    trailing_days=10,
    horizon_days=30,
    activation_window_days=10,
)
DATES = [dt.date(2025, 1, 15), dt.date(2025, 1, 31), dt.date(2025, 2, 28), dt.date(2025, 3, 15)]


# ----------------------------------------------------------------------------- helpers


def _ts(text: str | None) -> pd.Timestamp | None:
    return None if text is None else pd.Timestamp(text)


def write_inputs(folder: Path, accounts=ACCOUNTS, events=EVENT_ROWS, *, fmt: str):
    """Write the inputs as Parquet (UTC-aware events, naive accounts) or CSV; return Sources."""
    folder.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        acc = pa.table(
            {
                "account_id": [a[0] for a in accounts],
                "signup_at": pa.array([_ts(a[1]) for a in accounts], pa.timestamp("us")),
                "churned_at": pa.array([_ts(a[2]) for a in accounts], pa.timestamp("us")),
                "seats": pa.array([a[3] for a in accounts], pa.int32()),
                "plan": [a[4] for a in accounts],
                "region": [a[5] for a in accounts],
            }
        )
        ev = pa.table(
            {
                "account_id": [e[0] for e in events],
                "event": [e[1] for e in events],
                "occurred_at": pa.array(
                    [_ts(e[2]).tz_localize("UTC") for e in events], pa.timestamp("us", tz="UTC")
                ),
                "quantity": pa.array([e[3] for e in events], pa.float64()),
                "user_id": ["u1"] * len(events),
            }
        )
        pq.write_table(acc, folder / "accounts.parquet")
        pq.write_table(ev, folder / "events.parquet")
        return io.Source(str(folder / "accounts.parquet")), io.Source(
            str(folder / "events.parquet")
        )
    if fmt == "duckdb":  # the Parquet tables copied into a DuckDB database file
        write_inputs(folder, accounts, events, fmt="parquet")
        db = folder / "inputs.duckdb"
        con = duckdb.connect(str(db))
        for name in ("accounts", "events"):
            con.execute(
                f"CREATE TABLE {name} AS SELECT * FROM read_parquet(?)",
                [str(folder / f"{name}.parquet")],
            )
        con.close()
        return io.Source("accounts", str(db)), io.Source("events", str(db))
    lines = ["account_id,signup_at,churned_at,seats,plan,region"]
    lines += [f"{a[0]},{a[6]},{a[7]},{a[3]},{a[4]},{a[5]}" for a in accounts]
    (folder / "accounts.csv").write_text("\n".join(lines) + "\n")
    lines = ["account_id,event,occurred_at,quantity,user_id"]
    lines += [f"{e[0]},{e[1]},{e[4]},{'' if e[3] is None else e[3]},u1" for e in events]
    (folder / "events.csv").write_text("\n".join(lines) + "\n")
    return io.Source(str(folder / "accounts.csv")), io.Source(str(folder / "events.csv"))


def build(
    folder: Path, accounts=ACCOUNTS, events=EVENT_ROWS, *, fmt="parquet", as_of=AS_OF, dates=DATES
) -> dict[str, pd.DataFrame]:
    """Daily aggregate, tenure table, snapshot table and the scoring snapshot at as_of."""
    con = io.connect()
    acc_raw, ev_raw = io.read_inputs(con, *write_inputs(folder, accounts, events, fmt=fmt))
    acc, ev = io.typed_accounts(acc_raw), io.typed_events(ev_raw)
    daily = tables.daily_aggregate(acc, ev, as_of=as_of, quantity=True)
    names = tables.event_names(daily)
    out = {"daily": daily.named().to_pandas().sort_values(["account_id", "event", "day"])}
    out["names"] = names
    tenure = tables.tenure_table(daily, as_of=as_of, events=EVENTS, **TENURE)
    out["tenure"] = tables.to_frame(tenure, tables.TENURE_ORDER)
    common = dict(as_of=as_of, events=EVENTS, **SNAPSHOT)
    snaps = tables.snapshot_table(daily, dates=dates, **common)
    out["snapshots"] = tables.to_frame(snaps, tables.SNAPSHOT_ORDER)
    current = tables.snapshot_table(
        daily, dates=[as_of.date()], require_window_closed=False, **common
    )
    out["current"] = tables.to_frame(current, tables.SNAPSHOT_ORDER)
    return {
        k: (v.reset_index(drop=True) if isinstance(v, pd.DataFrame) else v) for k, v in out.items()
    }


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, pd.DataFrame]:
    return build(tmp_path_factory.mktemp("parquet"))


def row(frame: pd.DataFrame, account: str, snapshot: dt.date | None = None) -> pd.Series:
    sel = frame["account_id"] == account
    if snapshot is not None:
        sel &= frame["snapshot_date"] == pd.Timestamp(snapshot)
    assert sel.sum() == 1, f"expected one row for {account} {snapshot}, got {sel.sum()}"
    return frame[sel].iloc[0]


def expect(r: pd.Series, values: dict) -> None:
    for col, want in values.items():
        got = r[col]
        if want is None:
            assert pd.isna(got), f"{col}: expected null, got {got!r}"
        else:
            assert not pd.isna(got) and got == want, (
                f"{r['account_id']} {col}: expected {want!r}, got {got!r}"
            )


def features_of(frame: pd.DataFrame, tenure: bool) -> list[str]:
    if tenure:
        prefixes = ("setup__", "gw__", "aw__", "ttf__")
        return [c for c in frame.columns if c.startswith(prefixes) or c == "activation_count"]
    return [c for c in frame.columns if "__" in c or c.startswith("utilization_")] + ["tenure_days"]


# ----------------------------------------------------------------------------- daily aggregate


def test_daily_aggregate_exact_counts(built):
    got = built["daily"]
    got = [
        (r.account_id, r.event, pd.Timestamp(r.day).date().isoformat(), r.n, r.qty)
        for r in got.itertuples()
    ]
    assert got == [
        ("A", "connect", "2025-01-01", 1, 1.0),
        ("A", "invite", "2025-01-04", 1, 1.0),
        ("A", "send", "2025-01-01", 1, 2.0),
        ("A", "send", "2025-01-05", 1, 1.0),
        ("A", "send", "2025-01-06", 1, 1.0),
        ("A", "send", "2025-01-10", 1, 1.0),
        ("A", "send", "2025-01-11", 1, 1.0),
        ("A", "send", "2025-01-25", 1, 1.0),
        ("A", "send", "2025-02-20", 1, 1.0),
        ("A", "send", "2025-03-10", 1, 1.0),
        ("A", "view", "2025-01-03", 1, 1.0),
        ("A", "view", "2025-02-25", 1, 1.0),
        ("B", "invite", "2025-01-11", 1, 1.0),
        ("B", "send", "2025-01-10", 2, 4.0),  # two events on one day; quantities 1 (default) + 3
        ("B", "send", "2025-01-16", 1, 1.0),
        ("B", "view", "2025-01-11", 1, 1.0),  # 2025-01-12T01:00+02:00 is the 11th in UTC
        ("C", "connect", "2025-03-26", 1, 1.0),
        ("C", "send", "2025-03-31", 1, 1.0),  # the 12:00:01 event is after as_of
    ]
    assert built["names"] == EVENTS


def test_daily_aggregate_without_as_of_keeps_every_event(tmp_path):
    con = io.connect()
    acc_raw, ev_raw = io.read_inputs(con, *write_inputs(tmp_path, fmt="parquet"))
    daily = tables.daily_aggregate(io.typed_accounts(acc_raw), io.typed_events(ev_raw))
    daily = daily.named().to_pandas()
    assert int(daily["n"].sum()) == len(EVENT_ROWS)
    c_send = daily[(daily.account_id == "C") & (daily.event == "send")]
    assert c_send["n"].tolist() == [2]


# ----------------------------------------------------------------------------- tenure table


def test_tenure_rows_are_accounts_signed_up_by_as_of(built):
    # D signs up at 18:00 on as_of's day, after as_of (12:00): it has no row.
    assert built["tenure"]["account_id"].tolist() == ["A", "B", "C"]


def test_tenure_exact_values(built):
    t = built["tenure"]
    # Setup window 3 days: day indexes 0, 1, 2. Golden week 5 days: 0..4. Activation window
    # 10 days: 0..9. Activation event "send".
    # A (signup 2025-01-01): connect d0 (setup), invite d3 (not setup: d3 == window; still in
    # the golden week and the activation window), view d2, sends at d0, d4, d5, d9 count; the
    # send at d10 (2025-01-11 00:00) is on the window boundary and is excluded.
    # Window end 2025-01-11, label date 2025-01-31 (<= as_of): labelled, never churned: 1.
    # Inactivity: periods [d10, d20) and [d20, d30) after the window hold sends at d10 and
    # d24, so A did not go inactive; 2025-01-11 + 20 days <= as_of, so it is labelled.
    expect(
        row(t, "A"),
        {
            setup_col("connect"): True,
            setup_col("invite"): False,
            "setup_window_closed": True,
            "activation_count": 4,
            "gw__connect": 1,
            "gw__invite": 1,
            "gw__send": 2,
            "gw__view": 1,
            "aw__connect": 1,
            "aw__invite": 1,
            "aw__send": 4,
            "aw__view": 1,
            "ttf__connect": 0.0,
            "ttf__invite": 3.0,
            "ttf__send": 0.0,
            "ttf__view": 2.0,
            "window_end": pd.Timestamp("2025-01-11"),
            "window_closed": True,
            "label_date": pd.Timestamp("2025-01-31"),
            "labelled": True,
            "retained": 1,
            "inactivity_labelled": True,
            "went_inactive": 0,
            "seats": 2,
            "plan": "pro",
            "region": "eu",
        },
    )
    # B (signup 2025-01-10, churned 2025-01-25): two sends on d0 and one on d6 (3 in the
    # window, 2 in the golden week), invite d1, view d1 (01:00+02:00 on the 12th is the 11th
    # in UTC). A customer at its window end (01-20), gone by its label date (02-09): 0.
    # No send in the 20 days after the window: went inactive.
    expect(
        row(t, "B"),
        {
            setup_col("connect"): False,
            setup_col("invite"): True,
            "setup_window_closed": True,
            "activation_count": 3,
            "gw__connect": 0,
            "gw__invite": 1,
            "gw__send": 2,
            "gw__view": 1,
            "aw__connect": 0,
            "aw__invite": 1,
            "aw__send": 3,
            "aw__view": 1,
            "ttf__connect": None,
            "ttf__invite": 1.0,
            "ttf__send": 0.0,
            "ttf__view": 1.0,
            "window_end": pd.Timestamp("2025-01-20"),
            "window_closed": True,
            "label_date": pd.Timestamp("2025-02-09"),
            "labelled": True,
            "retained": 0,
            "inactivity_labelled": True,
            "went_inactive": 1,
        },
    )
    # C (signup 2025-03-25 23:30): connect d1 (00:10 UTC, still the 25th at -04:00), send d6
    # before as_of; the send at 12:00:01 is after as_of and ignored. Setup window closed
    # (03-28 <= as_of), activation window (ends 04-04) not: unlabelled, labels null.
    expect(
        row(t, "C"),
        {
            setup_col("connect"): True,
            setup_col("invite"): False,
            "setup_window_closed": True,
            "activation_count": 1,
            "gw__connect": 1,
            "gw__invite": 0,
            "gw__send": 0,
            "gw__view": 0,
            "aw__connect": 1,
            "aw__invite": 0,
            "aw__send": 1,
            "aw__view": 0,
            "ttf__connect": 1.0,
            "ttf__invite": None,
            "ttf__send": 6.0,
            "ttf__view": None,
            "window_end": pd.Timestamp("2025-04-04"),
            "window_closed": False,
            "label_date": pd.Timestamp("2025-04-24"),
            "labelled": False,
            "retained": None,
            "inactivity_labelled": False,
            "went_inactive": None,
        },
    )


def test_tenure_columns_and_types(built):
    t = built["tenure"]
    assert t.columns[:6].tolist() == [
        "account_id",
        "signup_at",
        "churned_at",
        "plan",
        "seats",
        "region",
    ]
    assert t["activation_count"].dtype == "int64"
    assert t[setup_col("connect")].dtype == bool
    assert t["ttf__send"].dtype == "float64"


def test_tenure_event_after_window_end_changes_no_feature(tmp_path, built):
    # One second after A's window end (2025-01-11 00:00) and right at B's window end.
    extra = [
        ("A", "invite", "2025-01-11 00:00:01", 1.0, "2025-01-11 00:00:01"),
        ("B", "connect", "2025-01-20 00:00:00", 1.0, "2025-01-20 00:00:00"),
        ("A", "view", "2025-01-10 23:59:59", 1.0, "2025-01-10 23:59:59"),  # control: inside
    ]
    t0 = built["tenure"]
    t1 = build(tmp_path, events=EVENT_ROWS + extra[:2])["tenure"]
    cols = features_of(t0, tenure=True)
    pd.testing.assert_frame_equal(t0[cols], t1[cols])
    # The control event one second before the window end does change A's features.
    t2 = build(tmp_path / "control", events=EVENT_ROWS + extra[2:])["tenure"]
    assert row(t2, "A")["aw__view"] == 2 and row(t0, "A")["aw__view"] == 1


def test_tenure_ignores_daily_rows_after_as_of(tmp_path):
    # Even when the daily aggregate was built without as_of, nothing after as_of's day
    # reaches a tenure row: C's window is still open.
    con = io.connect()
    acc_raw, ev_raw = io.read_inputs(con, *write_inputs(tmp_path, fmt="parquet"))
    acc, ev = io.typed_accounts(acc_raw), io.typed_events(ev_raw)
    late = ev.union(
        ev.filter(ev.account_id == "C").mutate(occurred_at=ibis.literal(dt.datetime(2025, 4, 2)))
    )
    daily = tables.daily_aggregate(acc, late)
    t = tables.tenure_table(daily, as_of=AS_OF, events=EVENTS, **TENURE).to_pandas()
    assert row(t, "C")["aw__send"] == 2  # the two sends of 03-31; nothing of 04-02


# ----------------------------------------------------------------------------- snapshot table


def test_snapshot_rows(built):
    s = built["snapshots"]
    got = [(r.account_id, pd.Timestamp(r.snapshot_date).date()) for r in s.itertuples()]
    # 01-15: B's window (ends 01-20) has not closed: no row. 01-31, 02-28, 03-15: B churned
    # on 01-25, before these anchors: no row. C signs up after 03-15.
    assert got == [("A", d) for d in DATES]


def test_snapshot_exact_values(built):
    s = built["snapshots"]
    # Trailing window 10 days [S-9, S], utilization window 20 days (2 periods of 10), maturity
    # window 15 days [S-14, S]; A has 2 seats.
    # S = 01-15: trailing [01-06, 01-15] holds sends on 01-06, 01-10, 01-11 (01-05 is just
    # outside); utilization [12-27, 01-15]: sends 01-01, 01-05, 01-06, 01-10, 01-11 = 5,
    # 5 / 2 periods = 2.5 raw, / 2 seats = 1.25; maturity [01-01, 01-15]: connect, send (core
    # 2), invite, view (collab 2). Label 02-14, A never churns: retained.
    expect(
        row(s, "A", dt.date(2025, 1, 15)),
        {
            "tenure_days": 14,
            "seats": 2,
            "plan": "pro",
            "region": "eu",
            feature_col("send", "used"): 1,
            feature_col("send", "count"): 3,
            feature_col("send", "days"): 3,
            feature_col("send", "per_seat"): 1.5,
            feature_col("view", "used"): 0,
            feature_col("view", "count"): 0,
            feature_col("connect", "count"): 0,
            feature_col("invite", "days"): 0,
            "utilization_rate": 1.25,
            "utilization_raw": 2.5,
            maturity_col("core"): 2,
            maturity_col("collab"): 2,
            "label_date": pd.Timestamp("2025-02-14"),
            "censored": False,
            "retained": 1,
        },
    )
    # S = 01-31: trailing [01-22, 01-31]: the send of 01-25; utilization [01-12, 01-31]: 1.
    expect(
        row(s, "A", dt.date(2025, 1, 31)),
        {
            "tenure_days": 30,
            feature_col("send", "used"): 1,
            feature_col("send", "count"): 1,
            feature_col("send", "days"): 1,
            feature_col("send", "per_seat"): 0.5,
            feature_col("view", "count"): 0,
            "utilization_rate": 0.25,
            "utilization_raw": 0.5,
            maturity_col("core"): 1,
            maturity_col("collab"): 0,
            "label_date": pd.Timestamp("2025-03-02"),
            "censored": False,
            "retained": 1,
        },
    )
    # S = 02-28: trailing [02-19, 02-28]: send 02-20, view 02-25. Label 03-30, before as_of.
    expect(
        row(s, "A", dt.date(2025, 2, 28)),
        {
            "tenure_days": 58,
            feature_col("send", "count"): 1,
            feature_col("view", "count"): 1,
            feature_col("view", "used"): 1,
            feature_col("view", "per_seat"): 0.5,
            "utilization_rate": 0.25,
            "utilization_raw": 0.5,
            maturity_col("core"): 1,
            maturity_col("collab"): 1,
            "label_date": pd.Timestamp("2025-03-30"),
            "censored": False,
            "retained": 1,
        },
    )
    # S = 03-15: label date 04-14 is after as_of: censored, label null.
    expect(
        row(s, "A", dt.date(2025, 3, 15)),
        {
            "tenure_days": 73,
            feature_col("send", "count"): 1,
            maturity_col("core"): 1,
            maturity_col("collab"): 0,
            "label_date": pd.Timestamp("2025-04-14"),
            "censored": True,
            "retained": None,
        },
    )


def test_snapshot_columns_and_types(built):
    s = built["snapshots"]
    assert s.columns[:6].tolist() == [
        "account_id",
        "snapshot_date",
        "plan",
        "seats",
        "tenure_days",
        "region",
    ]
    kinds = [feature_col("send", k) for k in ("used", "count", "days", "per_seat")]
    assert [str(s[c].dtype) for c in kinds] == ["int8", "int64", "int64", "float64"]
    assert s[maturity_col("core")].dtype == "int64"


def test_scoring_snapshot_at_as_of(built):
    c = built["current"]
    # Every customer at as_of, window closed or not; B churned; D signs up after as_of.
    assert c["account_id"].tolist() == ["A", "C"]
    expect(
        row(c, "A"),
        {
            "tenure_days": 89,
            feature_col("send", "count"): 0,
            "utilization_rate": 0.0,
            maturity_col("core"): 0,
            "censored": True,
        },
    )
    # C (4 seats): connect 03-26 and the send of 03-31 11:00; the 12:00:01 send is after as_of.
    expect(
        row(c, "C"),
        {
            "tenure_days": 6,
            feature_col("connect", "count"): 1,
            feature_col("send", "count"): 1,
            feature_col("send", "per_seat"): 0.25,
            "utilization_raw": 0.5,
            "utilization_rate": 0.125,
            maturity_col("core"): 2,
            maturity_col("collab"): 0,
            "censored": True,
            "retained": None,
        },
    )


def test_snapshot_event_one_second_after_anchor_changes_no_feature(tmp_path, built):
    # The anchor of the 01-31 row is the end of 2025-01-31.
    after = [("A", "view", "2025-02-01 00:00:00", 1.0, "2025-02-01T01:00:00+01:00")]
    before = [("A", "view", "2025-01-31 23:59:59", 1.0, "2025-01-31 23:59:59")]
    s0 = built["snapshots"]
    s1 = build(tmp_path / "after", events=EVENT_ROWS + after)["snapshots"]
    cols = features_of(s0, tenure=False)
    anchor = dt.date(2025, 1, 31)
    pd.testing.assert_series_equal(row(s0, "A", anchor)[cols], row(s1, "A", anchor)[cols])
    s2 = build(tmp_path / "before", events=EVENT_ROWS + before)["snapshots"]
    assert row(s2, "A", anchor)[feature_col("view", "count")] == 1


def test_snapshot_window_boundary(tmp_path):
    # An event on day S - W (one day before the trailing window [S-W+1, S]) is left out.
    events = EVENT_ROWS + [("A", "invite", "2025-01-21 23:00:00", 1.0, "2025-01-21 23:00:00")]
    s = build(tmp_path, events=events)["snapshots"]
    r = row(s, "A", dt.date(2025, 1, 31))  # trailing [01-22, 01-31]; maturity [01-17, 01-31]
    assert r[feature_col("invite", "count")] == 0
    assert r[maturity_col("collab")] == 1


def test_snapshot_label_on_as_of_day_is_censored(tmp_path):
    # S = 03-01 + 30 days = 03-31, as_of's day: "a customer through the end of 03-31" is not
    # known at 12:00 on 03-31, so the row is censored; S = 02-28 (label 03-30) is not.
    s = build(tmp_path, dates=[dt.date(2025, 2, 28), dt.date(2025, 3, 1)])["snapshots"]
    assert s["censored"].tolist() == [False, True]
    assert s["retained"].isna().tolist() == [False, True]


def test_snapshot_churn_labels(tmp_path):
    # E churns on 02-10 (after its 01-31 anchor, before the label date 03-02): retained 0.
    accounts = ACCOUNTS + [
        (
            "E",
            "2025-01-05 00:00:00",
            "2025-02-10 06:00:00",
            1,
            "pro",
            "eu",
            "2025-01-05 00:00:00",
            "2025-02-10 06:00:00",
        )
    ]
    s = build(tmp_path, accounts=accounts, dates=[dt.date(2025, 1, 31)])["snapshots"]
    assert s["account_id"].tolist() == ["A", "E"]
    assert s["retained"].tolist() == [1, 0]


def test_snapshot_table_needs_dates(tmp_path):
    con = io.connect()
    acc_raw, ev_raw = io.read_inputs(con, *write_inputs(tmp_path, fmt="parquet"))
    daily = tables.daily_aggregate(io.typed_accounts(acc_raw), io.typed_events(ev_raw), as_of=AS_OF)
    with pytest.raises(ValueError, match="no snapshot dates"):
        tables.snapshot_table(daily, dates=[], as_of=AS_OF, events=EVENTS, **SNAPSHOT)


# ----------------------------------------------------------------------------- CSV and Parquet


def test_csv_and_parquet_give_identical_tables(tmp_path, built):
    csv = build(tmp_path / "csv", fmt="csv")
    for name in ("daily", "tenure", "snapshots", "current"):
        pd.testing.assert_frame_equal(csv[name], built[name], check_dtype=True, obj=name)


def test_duckdb_database_gives_identical_tables(tmp_path, built):
    db = build(tmp_path / "db", fmt="duckdb")
    for name in ("daily", "tenure", "snapshots", "current"):
        pd.testing.assert_frame_equal(db[name], built[name], check_dtype=True, obj=name)


def test_missing_table_in_duckdb_database_is_named(tmp_path):
    _, events = write_inputs(tmp_path, fmt="duckdb")
    con = io.connect()
    with pytest.raises(
        ValueError, match=r"no table 'visits' in .*inputs.duckdb \(tables: accounts, events\)"
    ):
        io.read_source(con, io.Source("visits", events.database), "events")


# ----------------------------------------------------------------------------- against brute force


def _random_inputs(seed: int):
    """40 accounts and about 3,000 events over five months, some churned."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2025-01-01")
    accounts, events = [], []
    names = ["a", "b", "c", "d", "e"]
    for i in range(40):
        signup = start + pd.Timedelta(minutes=int(rng.integers(0, 60 * 24 * 60)))
        churn = (
            signup + pd.Timedelta(days=int(rng.integers(20, 150))) if rng.random() < 0.4 else None
        )
        accounts.append(
            (
                f"acc{i:02d}",
                str(signup),
                None if churn is None else str(churn),
                int(rng.integers(1, 6)),
                "pro",
                "eu",
                str(signup),
                "" if churn is None else str(churn),
            )
        )
        end = churn if churn is not None else pd.Timestamp("2025-06-01")
        for _ in range(int(rng.integers(0, 150))):
            at = signup + (end - signup) * rng.random()
            events.append(
                (
                    f"acc{i:02d}",
                    names[int(rng.integers(0, 5))],
                    str(at.floor("s")),
                    1.0,
                    str(at.floor("s")),
                )
            )
    return accounts, events


@pytest.mark.parametrize(
    "windows",
    [
        dict(trailing_days=30, utilization_window_days=60, maturity_window_days=45),
        dict(trailing_days=30, utilization_window_days=30, maturity_window_days=30),
    ],
    ids=["distinct-windows", "equal-windows"],
)
def test_snapshot_table_matches_brute_force(tmp_path, windows):
    accounts, events = _random_inputs(7)
    as_of = dt.datetime(2025, 6, 1)
    dates = [dt.date(2025, 2, 28), dt.date(2025, 3, 31), dt.date(2025, 4, 15), dt.date(2025, 5, 31)]
    con = io.connect()
    acc_raw, ev_raw = io.read_inputs(con, *write_inputs(tmp_path, accounts, events, fmt="parquet"))
    daily = tables.daily_aggregate(io.typed_accounts(acc_raw), io.typed_events(ev_raw), as_of=as_of)
    categories = {"x": ["a", "b"], "y": ["c", "d", "e"]}
    params = dict(
        categories=categories,
        utilization_event="a",
        period_days=10,
        horizon_days=30,
        activation_window_days=10,
        **windows,
    )
    got = tables.to_frame(
        tables.snapshot_table(daily, dates=dates, as_of=as_of, events=list("abcde"), **params),
        tables.SNAPSHOT_ORDER,
    )
    assert len(got) > 50
    ev = pd.DataFrame(events, columns=["account_id", "event", "at", "q", "csv"])
    ev["day"] = pd.to_datetime(ev["at"]).dt.normalize()
    seats = {a[0]: a[3] for a in accounts}
    checked = 0
    for r in got.itertuples():
        s = pd.Timestamp(r.snapshot_date)
        mine = ev[(ev.account_id == r.account_id) & (ev.day <= s)]

        def window(w, mine=mine, s=s):
            return mine[mine.day > s - pd.Timedelta(days=w)]

        trailing = window(windows["trailing_days"])
        for e in "abcde":
            rows = trailing[trailing.event == e]
            assert getattr(r, f"{e}__count") == len(rows), (r.account_id, s, e)
            assert getattr(r, f"{e}__days") == rows.day.nunique(), (r.account_id, s, e)
            assert getattr(r, f"{e}__used") == int(len(rows) > 0)
            assert getattr(r, f"{e}__per_seat") == pytest.approx(len(rows) / seats[r.account_id])
        util = window(windows["utilization_window_days"])
        n_util = int((util.event == "a").sum())
        periods = windows["utilization_window_days"] / 10
        assert r.utilization_raw == pytest.approx(n_util / periods)
        assert r.utilization_rate == pytest.approx(n_util / periods / seats[r.account_id])
        used = set(window(windows["maturity_window_days"]).event)
        for cat, feats in categories.items():
            assert getattr(r, f"maturity__{cat}") == len(used & set(feats)), (r.account_id, s, cat)
        checked += 1
    assert checked == len(got)


# ----------------------------------------------------------------------------- snapshot dates


def test_month_ends():
    assert tables.month_ends(dt.date(2023, 12, 15), dt.date(2024, 3, 31)) == [
        dt.date(2023, 12, 31),
        dt.date(2024, 1, 31),
        dt.date(2024, 2, 29),
        dt.date(2024, 3, 31),
    ]
    assert tables.month_ends(dt.date(2024, 1, 31), dt.date(2024, 1, 31)) == [dt.date(2024, 1, 31)]
    assert tables.month_ends(dt.date(2024, 2, 1), dt.date(2024, 2, 28)) == []
    assert tables.month_ends(dt.date(2024, 5, 1), dt.date(2024, 3, 1)) == []


def test_snapshot_dates_end_at_a_complete_day():
    first = dt.date(2024, 1, 1)
    kw = dict(activation_window_days=30, max_snapshots=24)
    # as_of at the very end of a month end keeps it; earlier in the day it does not.
    assert tables.snapshot_dates(first, dt.datetime(2024, 4, 30, 23, 59, 59), **kw)[-1] == dt.date(
        2024, 4, 30
    )
    assert tables.snapshot_dates(first, dt.datetime(2024, 4, 30, 12, 0), **kw)[-1] == dt.date(
        2024, 3, 31
    )
    assert tables.snapshot_dates(first, dt.datetime(2024, 5, 1, 0, 0), **kw)[-1] == dt.date(
        2024, 4, 30
    )


def test_snapshot_dates_take_an_aware_as_of_in_utc():
    kw = dict(activation_window_days=30, max_snapshots=24)
    # 05-01 01:00 at +02:00 is 04-30 23:00 UTC: the end of 04-30 has not come yet
    aware = dt.datetime(2024, 5, 1, 1, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert tables.snapshot_dates(dt.date(2024, 1, 1), aware, **kw)[-1] == dt.date(2024, 3, 31)
    # a plain date is its start
    assert tables.snapshot_dates(dt.date(2024, 1, 1), dt.date(2024, 5, 1), **kw)[-1] == dt.date(
        2024, 4, 30
    )


def test_snapshot_dates_start_when_a_window_closed():
    as_of = dt.datetime(2024, 6, 30, 23, 59, 59)
    # 01-01 + 30 days = 01-31: the first month end at which an activation window has closed.
    assert tables.snapshot_dates(
        dt.date(2024, 1, 1), as_of, activation_window_days=30, max_snapshots=24
    )[0] == dt.date(2024, 1, 31)
    assert tables.snapshot_dates(
        dt.date(2024, 1, 1), as_of, activation_window_days=31, max_snapshots=24
    )[0] == dt.date(2024, 2, 29)
    # A datetime (or pandas Timestamp) first signup is taken by its date.
    assert tables.snapshot_dates(
        pd.Timestamp("2024-01-01 18:00"), as_of, activation_window_days=30, max_snapshots=24
    )[0] == dt.date(2024, 1, 31)


def test_snapshot_dates_keep_the_newest():
    as_of = dt.datetime(2024, 6, 30, 23, 59, 59)
    kw = dict(activation_window_days=0)
    assert tables.snapshot_dates(dt.date(2024, 1, 1), as_of, max_snapshots=2, **kw) == [
        dt.date(2024, 5, 31),
        dt.date(2024, 6, 30),
    ]
    assert len(tables.snapshot_dates(dt.date(2024, 1, 1), as_of, max_snapshots=100, **kw)) == 6
    assert tables.snapshot_dates(dt.date(2024, 1, 1), as_of, max_snapshots=0, **kw) == []
    # History shorter than the activation window: no snapshot.
    assert (
        tables.snapshot_dates(
            dt.date(2024, 6, 1), as_of, activation_window_days=60, max_snapshots=24
        )
        == []
    )
