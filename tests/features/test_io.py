"""Reading the inputs: the engine of a connection, and the latest event time."""

from __future__ import annotations

import datetime as dt
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from features import io
from features.values import engine_of


def test_engine_of_a_duckdb_connection():
    con = io.connect("duckdb")
    assert con.name == "duckdb"
    assert engine_of(con) == "duckdb"


def test_latest_event_time_is_naive_utc_on_raw_and_typed_events(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text(
        "account_id,event,occurred_at\n"
        "a,login,2025-03-01T08:00:00+02:00\n"  # 06:00 UTC
        "a,login,2025-03-01 07:00:00\n"  # naive: UTC already
        "a,login,not a time\n"
    )
    con = io.connect()
    raw = io.read_source(con, io.Source(str(path)), "events")
    assert io.latest_event_time(raw) == dt.datetime(2025, 3, 1, 7, 0)
    assert io.latest_event_time(io.typed_events(raw)) == dt.datetime(2025, 3, 1, 7, 0)


def test_latest_event_time_without_a_readable_time_is_none(tmp_path):
    path = tmp_path / "events.parquet"
    empty = pa.table(
        {
            "account_id": pa.array([], pa.string()),
            "event": pa.array([], pa.string()),
            "occurred_at": pa.array([], pa.timestamp("us", tz="UTC")),
        }
    )
    pq.write_table(empty, path)
    con = io.connect()
    assert io.latest_event_time(io.read_source(con, io.Source(str(path)), "events")) is None


def test_a_database_path_is_a_value_not_sql(tmp_path, monkeypatch):
    """A file name holding a quote and a statement opens that file and runs nothing else."""
    import duckdb

    folder = tmp_path / "it's here"
    folder.mkdir()
    monkeypatch.chdir(tmp_path)
    stolen = tmp_path / "stolen.csv"
    db = folder / "x' (READ_ONLY); COPY (SELECT 1) TO 'stolen.csv'; --.duckdb"
    with duckdb.connect(str(db)) as setup:
        setup.execute("CREATE TABLE accounts AS SELECT 'a1' AS account_id")
    con = io.connect(temp_directory=str(tmp_path / "spill's"))
    table = io.read_source(con, io.Source("accounts", str(db)), "accounts")
    assert table.to_pandas()["account_id"].tolist() == ["a1"]
    assert not stolen.exists()


def _written(path, content: bytes):
    path.write_bytes(content)
    return path


def test_file_problems_are_named_before_the_engine_reads(tmp_path):
    """The engine's own messages (SQL, the CSV sniffer's settings) never reach the user."""
    text = b"account_id,event,occurred_at\na,login,2025-03-01\n"
    parquet = tmp_path / "real.parquet"
    pq.write_table(pa.table({"account_id": ["a"]}), parquet)
    folder = tmp_path / "empty_folder"
    folder.mkdir()
    cases = [
        (_written(tmp_path / "zero.parquet", b""), "is empty (0 bytes)"),
        (_written(tmp_path / "text.parquet", text), "is not a Parquet file"),
        (_written(tmp_path / "binary.csv", parquet.read_bytes()), "is a Parquet file, not CSV"),
        (folder, "holds no .parquet file"),
        (_written(tmp_path / "latin.csv", "a,caf\xe9\n1,2\n".encode("latin-1")), "not UTF-8"),
        (_written(tmp_path / "data.txt", text), "cannot tell the format"),
    ]
    con = io.connect()
    for path, words in cases:
        with pytest.raises(ValueError) as info:
            io.read_source(con, io.Source(str(path)), "events")
        message = str(info.value)
        assert message.startswith("data.events: ") and str(path) in message, message
        assert words in message and "LINE 1" not in message, message


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_duplicate_column_names_are_refused(tmp_path, fmt):
    path = tmp_path / f"accounts.{fmt}"
    if fmt == "csv":
        path.write_text("account_id;seats;seats;plan;plan\na;1;2;x;y\n")  # any delimiter
    else:
        columns = [pa.array(["a"]), pa.array([1]), pa.array([2])]
        pq.write_table(pa.Table.from_arrays(columns, names=["account_id", "seats", "seats"]), path)
    with pytest.raises(ValueError, match="duplicate column names: 'seats' \\(2 times\\)"):
        io.read_source(io.connect(), io.Source(str(path)), "accounts")


def test_parquet_files_of_one_folder_must_agree(tmp_path):
    """Today DuckDB reads the first file's schema and fails at the first query (exit 1)."""
    folder = tmp_path / "events"
    folder.mkdir()
    pq.write_table(pa.table({"account_id": ["a"], "quantity": [1]}), folder / "a.parquet")
    pq.write_table(pa.table({"account_id": ["b"], "quantity": ["many"]}), folder / "b.parquet")
    with pytest.raises(ValueError, match=r"b\.parquet has quantity: string \(in a\.parquet: int"):
        io.read_source(io.connect(), io.Source(str(folder)), "events")
    # widths and units may differ between files
    pq.write_table(
        pa.table({"account_id": ["b"], "quantity": pa.array([2], pa.int32())}), folder / "b.parquet"
    )
    assert io.read_source(io.connect(), io.Source(str(folder)), "events").count().execute() == 2


def test_corrupt_parquet_is_named(tmp_path):
    path = tmp_path / "events.parquet"
    pq.write_table(pa.table({"account_id": ["a"] * 50}), path, compression="NONE")
    data = bytearray(path.read_bytes())
    data[8 : len(data) // 2] = b"\xff" * (len(data) // 2 - 8)
    path.write_bytes(bytes(data))
    with pytest.raises(
        ValueError, match=re.escape(f"data.events: cannot read the Parquet file {path}")
    ):
        io.read_source(io.connect(), io.Source(str(path)), "events").count().execute()


def test_latest_event_time_beyond_year_9999_in_utc_is_held_there(tmp_path):
    """9999-12-31 23:00 at -05:00 is in year 10000 in UTC: Python cannot hold it."""
    path = tmp_path / "events.csv"
    path.write_text("account_id,event,occurred_at\na,login,9999-12-31T23:00:00-05:00\n")
    raw = io.read_source(io.connect(), io.Source(str(path)), "events")
    assert io.latest_event_time(raw) == dt.datetime(9999, 12, 31, 23, 59, 59)


def test_a_missing_quantity_is_the_default_one(tmp_path):
    """pandas stores a NaN of a float column as a Parquet null: a missing quantity, which the
    data contract reads as 1 (a NaN value itself breaks events.quantity.numeric; see
    tests/features/test_validation.py::test_nan_example_is_json_null)."""
    import numpy as np
    import pandas as pd

    events = pd.DataFrame(
        {
            "account_id": ["a", "a"],
            "event": ["x", "x"],
            "occurred_at": [pd.Timestamp("2025-01-02")] * 2,
            "quantity": [2.0, np.nan],
        }
    )
    events.to_parquet(tmp_path / "events.parquet")
    assert pq.read_table(tmp_path / "events.parquet").column("quantity").null_count == 1
    con = io.connect()
    raw = io.read_source(con, io.Source(str(tmp_path / "events.parquet")), "events")
    typed = io.typed_events(raw).to_pandas()
    assert sorted(typed["quantity"]) == [1.0, 2.0]
