"""`data.columns` (the source's column names) and `data.timestamps` (epoch numbers), applied
at read time: validation and the typed tables see the contract's names and timestamps."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from features import io
from features.mapping import contract_inputs
from features.validation import validate_inputs
from flows.config import load_config
from flows.errors import ConfigError

# (account_id, signup_at, churned_at, seats, plan)
ACCOUNTS = [
    ("a1", dt.datetime(2025, 1, 1), None, 2, "pro"),
    ("a2", dt.datetime(2025, 2, 1, 10, 0, 0), dt.datetime(2025, 9, 1), 1, "starter"),
    ("a3", dt.datetime(2025, 3, 1, 0, 0, 1), None, 5, "pro"),
]
# (account_id, event, occurred_at, quantity)
EVENTS = [
    ("a1", "x", dt.datetime(2025, 1, 2, 8, 30, 15), 1.0),
    ("a1", "y", dt.datetime(2025, 1, 3), 1.0),
    ("a2", "x", dt.datetime(2025, 2, 2, 23, 59, 59), 2.0),
    ("a3", "y", dt.datetime(2025, 3, 5, 12, 0, 0), 1.0),
]
SOURCE_NAMES = {
    "account_id": "org_id",
    "signup_at": "created",
    "churned_at": "cancelled",
    "seats": "licences",
    "event": "name",
    "occurred_at": "ts",
    "quantity": "qty",
}


def _epoch(value: dt.datetime | None, unit: str):
    if value is None:
        return None
    seconds = int(value.replace(tzinfo=dt.UTC).timestamp())
    return seconds * 1000 if unit == "milliseconds" else seconds


def _time(value: dt.datetime | None, unit: str):
    if unit == "iso":
        return None if value is None else value.isoformat()
    return _epoch(value, unit)


def frames(unit: str = "iso", names: dict[str, str] | None = None):
    """The inputs as pandas frames: times as ISO text or epoch integers, columns renamed."""
    names = names or {}
    accounts = pd.DataFrame(
        {
            "account_id": [a[0] for a in ACCOUNTS],
            "signup_at": pd.array([_time(a[1], unit) for a in ACCOUNTS]),
            "churned_at": pd.array([_time(a[2], unit) for a in ACCOUNTS]),
            "seats": [a[3] for a in ACCOUNTS],
            "plan": [a[4] for a in ACCOUNTS],
            "region": ["eu", "us", "eu"],
        }
    )
    events = pd.DataFrame(
        {
            "account_id": [e[0] for e in EVENTS],
            "event": [e[1] for e in EVENTS],
            "occurred_at": pd.array([_time(e[2], unit) for e in EVENTS]),
            "quantity": [e[3] for e in EVENTS],
        }
    )
    return accounts.rename(columns=names), events.rename(columns=names)


def write(folder: Path, accounts: pd.DataFrame, events: pd.DataFrame, fmt: str):
    folder.mkdir(parents=True, exist_ok=True)
    paths = folder / f"accounts.{fmt}", folder / f"events.{fmt}"
    for frame, path in zip((accounts, events), paths, strict=True):
        if fmt == "csv":
            frame.to_csv(path, index=False)
        else:
            pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    return io.Source(str(paths[0])), io.Source(str(paths[1]))


def typed(con, sources, **settings) -> tuple[pd.DataFrame, pd.DataFrame]:
    accounts, events = contract_inputs(*io.read_inputs(con, *sources), **settings)
    a = io.typed_accounts(accounts).order_by("account_id").execute()
    e = io.typed_events(events).order_by(["account_id", "occurred_at"]).execute()
    return a, e


def test_mapped_csv_validates_and_types_like_renamed_files(tmp_path):
    con = io.connect()
    by_hand = write(tmp_path / "hand", *frames(), fmt="csv")
    mapped = write(tmp_path / "mapped", *frames(names=SOURCE_NAMES), fmt="csv")
    assert "org_id" in Path(mapped[0].location).read_text()

    raw_accounts, raw_events = contract_inputs(*io.read_inputs(con, *mapped), columns=SOURCE_NAMES)
    assert list(raw_accounts.columns) == [
        "account_id", "signup_at", "churned_at", "seats", "plan", "region"
    ]  # fmt: skip
    assert list(raw_events.columns) == ["account_id", "event", "occurred_at", "quantity"]
    report = validate_inputs(
        con, raw_accounts, raw_events, as_of=None, configured_events={"x": "k", "y": "k"}
    )
    assert report.ok, report.format()

    want_a, want_e = typed(con, by_hand)
    got_a, got_e = typed(con, mapped, columns=SOURCE_NAMES)
    pd.testing.assert_frame_equal(got_a, want_a)
    pd.testing.assert_frame_equal(got_e, want_e)


def test_a_failing_rule_names_the_contract_column(tmp_path):
    accounts, events = frames(names=SOURCE_NAMES)
    events.loc[0, "ts"] = "yesterday"
    con = io.connect()
    raw = contract_inputs(
        *io.read_inputs(con, *write(tmp_path, accounts, events, "csv")), columns=SOURCE_NAMES
    )
    report = validate_inputs(con, *raw, as_of=None)
    assert report.failures[0].rule == "events.occurred_at.parseable"
    assert report.failures[0].examples[0]["occurred_at"] == "yesterday"


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize("unit", ["seconds", "milliseconds"])
def test_epoch_integers_give_the_iso_timestamps(tmp_path, fmt, unit):
    con = io.connect()
    iso = write(tmp_path / "iso", *frames(), fmt="csv")
    accounts, events = frames(unit)
    if fmt == "parquet":  # integer columns (churned_at with nulls stays an integer column)
        for frame, column in ((accounts, "signup_at"), (accounts, "churned_at")):
            frame[column] = frame[column].astype("Int64")
        events["occurred_at"] = events["occurred_at"].astype("int64")
    epoch = write(tmp_path / "epoch", accounts, events, fmt=fmt)
    units = dict.fromkeys(["signup_at", "churned_at", "occurred_at"], unit)

    raw = contract_inputs(*io.read_inputs(con, *epoch), timestamps=units)
    if fmt == "parquet":
        assert io.read_source(con, epoch[1], "events").occurred_at.type().is_integer()
    assert raw[1].occurred_at.type().is_timestamp()
    report = validate_inputs(con, *raw, as_of=None)
    assert report.ok, report.format()

    want_a, want_e = typed(io.connect(), iso)  # (one connection reads one kind of file)
    got_a, got_e = typed(con, epoch, timestamps=units)
    pd.testing.assert_frame_equal(got_a, want_a)
    pd.testing.assert_frame_equal(got_e, want_e)
    assert got_a.churned_at.isna().sum() == 2


def test_fractional_epoch_seconds_keep_the_microseconds(tmp_path):
    accounts, events = frames("seconds")
    events["occurred_at"] = events["occurred_at"].astype("float64") + 0.25
    con = io.connect()
    _, got = typed(con, write(tmp_path, accounts, events, "parquet"), timestamps={
        "occurred_at": "seconds", "signup_at": "seconds", "churned_at": "seconds"
    })  # fmt: skip
    assert got.occurred_at.iloc[0] == pd.Timestamp("2025-01-02 08:30:15.250")


def test_numeric_times_without_a_unit_break_the_types_rule_with_a_hint(tmp_path):
    accounts, events = frames()
    events["occurred_at"] = [_epoch(e[2], "seconds") for e in EVENTS]
    con = io.connect()
    raw = contract_inputs(*io.read_inputs(con, *write(tmp_path, accounts, events, "parquet")))
    report = validate_inputs(con, *raw, as_of=None)
    (failure,) = report.failures
    assert failure.rule == "events.columns.types"
    assert "data.timestamps.occurred_at: seconds or milliseconds" in report.format()


def test_errors_name_the_key_the_table_and_the_columns(tmp_path):
    con = io.connect()
    sources = write(tmp_path, *frames(names=SOURCE_NAMES), fmt="csv")

    def read(**settings):
        return contract_inputs(*io.read_inputs(con, *sources), **settings)

    with pytest.raises(ValueError, match=r"unknown contract column 'acount_id'"):
        read(columns={"acount_id": "org_id"})
    with pytest.raises(
        ValueError,
        match=r"data\.columns\.occurred_at: the events table has no column 'time' to read as "
        r"'occurred_at'",
    ):
        read(columns={**SOURCE_NAMES, "occurred_at": "time"})
    # `plan` is a column of the source's accounts: `region` cannot become `plan` too
    with pytest.raises(ValueError, match=r"data\.columns\.plan: the accounts table has a column"):
        read(columns={**SOURCE_NAMES, "plan": "region"})
    with pytest.raises(ValueError, match=r"signup_at and churned_at are both mapped"):
        read(columns={**SOURCE_NAMES, "churned_at": "created"})


def test_collision_with_an_existing_contract_column(tmp_path):
    accounts, events = frames()
    events["name"] = events["event"]
    con = io.connect()
    sources = write(tmp_path, accounts, events, "csv")
    with pytest.raises(
        ValueError, match=r"data\.columns\.event: the events table has a column 'event' besides"
    ):
        contract_inputs(*io.read_inputs(con, *sources), columns={"event": "name"})


def test_epoch_values_that_are_not_numbers_or_out_of_range(tmp_path):
    con = io.connect()
    accounts, events = frames("milliseconds")
    sources = write(tmp_path / "ms", accounts, events, "parquet")
    # milliseconds read as seconds land after the year 9999: named, with the likely cause
    with pytest.raises(
        ValueError, match=r"data\.timestamps\.occurred_at: 4 value\(s\) of events\.occurred_at "
        r"are not epoch seconds .*\(milliseconds\?\)",
    ):  # fmt: skip
        contract_inputs(*io.read_inputs(con, *sources), timestamps={"occurred_at": "seconds"})
    accounts, events = frames("seconds")
    events["occurred_at"] = events["occurred_at"].astype(str)
    events.loc[2, "occurred_at"] = "2025-02-02"
    sources = write(tmp_path / "text", accounts, events, "csv")
    with pytest.raises(ValueError, match=r"1 value\(s\).* for example '2025-02-02'"):
        contract_inputs(
            *io.read_inputs(io.connect(), *sources), timestamps={"occurred_at": "seconds"}
        )


CONFIG = """
data:
  accounts: accounts.csv
  events: events.csv
{extra}
milestones:
  activation: {{event: x}}
  utilization: {{event: x}}
"""


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("  columns: {acount_id: org_id}", "data.columns: unknown contract column 'acount_id'"),
        ("  columns: {region: area}", "unknown contract column 'region'"),
        ("  columns: {event: ''}", "data.columns: an empty source column name for event"),
        ("  timestamps: {seats: seconds}", "data.timestamps: not a timestamp column"),
        ("  timestamps: {occurred_at: minutes}", "data.timestamps.occurred_at"),
    ],
)
def test_config_rejects_unknown_keys(tmp_path, extra, message):
    (tmp_path / "cfg.yaml").write_text(CONFIG.format(extra=extra))
    with pytest.raises(ConfigError, match=message):
        load_config(tmp_path / "cfg.yaml")


def test_config_keeps_the_mapping_and_units(tmp_path):
    extra = "  columns: {account_id: org_id, occurred_at: ts}\n  timestamps: {occurred_at: seconds}"
    (tmp_path / "cfg.yaml").write_text(CONFIG.format(extra=extra))
    data = load_config(tmp_path / "cfg.yaml").data
    assert data.columns == {"account_id": "org_id", "occurred_at": "ts"}
    assert data.timestamps == {"occurred_at": "seconds"}


PER_TABLE = {
    "accounts": {"account_id": "id", "signup_at": "created"},
    "events": {"account_id": "org_id", "occurred_at": "ts"},
}


def _per_table_frames():
    accounts, events = frames()
    accounts = accounts.rename(columns={"account_id": "id", "signup_at": "created"})
    events = events.rename(columns={"account_id": "org_id", "occurred_at": "ts"})
    return accounts, events


def test_per_table_mapping_reads_each_table_with_its_own_names(tmp_path):
    con = io.connect()
    by_hand = write(tmp_path / "hand", *frames(), fmt="csv")
    mapped = write(tmp_path / "mapped", *_per_table_frames(), fmt="csv")
    header = Path(mapped[1].location).read_text().splitlines()[0]
    assert header.startswith("org_id,") and ",ts," in header

    raw_accounts, raw_events = contract_inputs(*io.read_inputs(con, *mapped), columns=PER_TABLE)
    assert list(raw_accounts.columns)[:2] == ["account_id", "signup_at"]
    assert list(raw_events.columns)[:3] == ["account_id", "event", "occurred_at"]
    report = validate_inputs(
        con, raw_accounts, raw_events, as_of=None, configured_events={"x": "k", "y": "k"}
    )
    assert report.ok, report.format()
    want_a, want_e = typed(con, by_hand)
    got_a, got_e = typed(con, mapped, columns=PER_TABLE)
    pd.testing.assert_frame_equal(got_a, want_a)
    pd.testing.assert_frame_equal(got_e, want_e)
    # the flat form cannot say it: `id` is not a column of events
    with pytest.raises(ValueError, match=r"data\.columns\.account_id: the events table has no "):
        contract_inputs(*io.read_inputs(con, *mapped), columns={"account_id": "id"})


def test_per_table_mapping_errors_name_the_table_and_key(tmp_path):
    con = io.connect()
    sources = write(tmp_path, *_per_table_frames(), fmt="csv")

    def read(columns):
        return contract_inputs(*io.read_inputs(con, *sources), columns=columns)

    with pytest.raises(
        ValueError,
        match=r"data\.columns\.events\.occurred_at: the events table has no column 'time'",
    ):
        read({**PER_TABLE, "events": {"account_id": "org_id", "occurred_at": "time"}})
    with pytest.raises(ValueError, match=r"events: 'seats' is not a column of the events contract"):
        read({"events": {"seats": "licences"}})
    with pytest.raises(ValueError, match=r"unknown table 'users' in the per-table form"):
        read({"users": {"account_id": "id"}})
    with pytest.raises(ValueError, match=r"mixes the two forms \(event flat, accounts per table\)"):
        read({"accounts": {"account_id": "id"}, "event": "name"})
    # a table left out keeps its names
    accounts, events = read({"accounts": {"account_id": "id", "signup_at": "created"}})
    assert "account_id" in accounts.columns
    assert list(events.columns) == ["org_id", "event", "ts", "quantity"]


def test_config_takes_the_per_table_form(tmp_path):
    extra = (
        "  columns:\n"
        "    accounts: {account_id: id}\n"
        "    events: {account_id: org_id, occurred_at: ts}"
    )
    (tmp_path / "cfg.yaml").write_text(CONFIG.format(extra=extra))
    data = load_config(tmp_path / "cfg.yaml").data
    assert data.columns == {
        "accounts": {"account_id": "id"},
        "events": {"account_id": "org_id", "occurred_at": "ts"},
    }
    bad = "  columns:\n    accounts: {account_id: id}\n    events: {plan: tier}"
    (tmp_path / "cfg.yaml").write_text(CONFIG.format(extra=bad))
    with pytest.raises(
        ConfigError, match=r"data\.columns: events: 'plan' is not a column of the events contract"
    ):
        load_config(tmp_path / "cfg.yaml")
