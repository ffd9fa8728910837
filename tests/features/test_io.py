"""Reading the inputs: the engine of a connection, and the latest event time."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.parquet as pq

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
