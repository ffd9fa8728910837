"""The same Ibis expressions give the same feature tables on DuckDB and on PySpark (local mode).

One Spark session serves the module (it takes about ten seconds to start). The tests are
skipped, with the reason, where PySpark or Java is missing.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from features import io, tables
from features.state import milestone_state
from features.validation import validate_inputs
from features.values import engine_of

pytestmark = [pytest.mark.spark, pytest.mark.slow]

AS_OF = dt.datetime(2025, 9, 30, 15, 30, 0)
EVENTS = ["connect", "export", "invite", "report", "send", "view"]
TENURE = dict(
    setup_steps=["connect", "invite"],
    setup_window_days=7,
    activation_event="send",
    activation_window_days=30,
    horizon_days=60,
    golden_week_days=7,
    inactivity_period_days=30,
    inactivity_horizon_days=60,
)
STATE = dict(
    setup_steps=["connect", "invite"],
    setup_window_days=7,
    activation_event="send",
    activation_threshold=6,
    activation_window_days=30,
)
SNAPSHOT = dict(
    categories={"collab": ["invite", "view"], "analytics": ["report", "export"]},
    utilization_event="send",
    utilization_window_days=60,
    period_days=30,
    maturity_window_days=45,
    trailing_days=30,
    horizon_days=60,
    activation_window_days=30,
)


def _java_missing() -> str | None:
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return "PySpark is not installed (pip install -e '.[spark]')"
    java_home = os.environ.get("JAVA_HOME")
    if shutil.which("java") is None and not (java_home and Path(java_home, "bin", "java").exists()):
        return "Java is not installed: PySpark needs a Java runtime"
    return None


@pytest.fixture(scope="module")
def spark():
    """One local session for the module (stopped at the end unless it was there before)."""
    reason = _java_missing()
    if reason:
        pytest.skip(reason)
    from pyspark.sql import SparkSession

    existing = SparkSession.getActiveSession()
    session = io.local_spark_session()
    # Tiny data: one shuffle partition saves most of the per-stage scheduling overhead.
    partitions = session.conf.get("spark.sql.shuffle.partitions")
    session.conf.set("spark.sql.shuffle.partitions", "1")
    yield session
    if existing is None:
        session.stop()
    else:
        session.conf.set("spark.sql.shuffle.partitions", partitions)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> tuple[io.Source, io.Source]:
    """40 accounts, about 2,500 events over nine months, with churn, nulls and day edges."""
    rng = np.random.default_rng(7)
    folder = tmp_path_factory.mktemp("spark_inputs")
    n = 40
    start = pd.Timestamp("2025-01-01")
    signup = start + pd.to_timedelta(rng.integers(0, 200 * 24 * 3600, n), unit="s")
    churn = [
        s + pd.Timedelta(days=int(rng.integers(5, 200))) if rng.random() < 0.4 else pd.NaT
        for s in signup
    ]
    churn[0] = signup[0] + pd.Timedelta(days=30)  # churned exactly at its window end
    accounts = pd.DataFrame(
        {
            "account_id": [f"acc{i:02d}" for i in range(n)],
            "signup_at": signup,
            "churned_at": pd.to_datetime(churn),
            "seats": rng.integers(1, 6, n).astype("int64"),
            "plan": rng.choice(["pro", "starter"], n),
            "region": rng.choice(["eu", "us"], n),
        }
    )
    rows = []
    for i, s in enumerate(signup):
        end = churn[i] if not pd.isna(churn[i]) else pd.Timestamp("2025-10-05")
        k = int(rng.integers(0, 120))
        offsets = rng.integers(0, max(1, int((end - s).total_seconds())), k)
        for off in offsets:
            rows.append((f"acc{i:02d}", rng.choice(EVENTS), s + pd.Timedelta(seconds=int(off))))
        # Day edges: midnight of the day after signup + window, one second before it.
        edge = s.normalize() + pd.Timedelta(days=30)
        rows += [
            (f"acc{i:02d}", "send", edge),
            (f"acc{i:02d}", "send", edge - pd.Timedelta(seconds=1)),
        ]
    events = pd.DataFrame(rows, columns=["account_id", "event", "occurred_at"])
    events["quantity"] = np.where(
        rng.random(len(events)) < 0.1, np.nan, rng.integers(1, 4, len(events))
    )
    events["user_id"] = "u"
    acc_path, ev_path = folder / "accounts.parquet", folder / "events.parquet"
    pq.write_table(
        pa.Table.from_pandas(accounts, preserve_index=False).cast(
            pa.schema(
                [
                    ("account_id", pa.string()),
                    ("signup_at", pa.timestamp("us", tz="UTC")),
                    ("churned_at", pa.timestamp("us", tz="UTC")),
                    ("seats", pa.int64()),
                    ("plan", pa.string()),
                    ("region", pa.string()),
                ]
            )
        ),
        acc_path,
    )
    pq.write_table(
        pa.Table.from_pandas(events, preserve_index=False).cast(
            pa.schema(
                [
                    ("account_id", pa.string()),
                    ("event", pa.string()),
                    ("occurred_at", pa.timestamp("us")),
                    ("quantity", pa.float64()),
                    ("user_id", pa.string()),
                ]
            )
        ),
        ev_path,
    )
    return io.Source(str(acc_path)), io.Source(str(ev_path))


def build(con, accounts: io.Source, events: io.Source) -> dict[str, pd.DataFrame]:
    acc_raw, ev_raw = io.read_inputs(con, accounts, events)
    acc, ev = io.typed_accounts(acc_raw), io.typed_events(ev_raw)
    daily = tables.daily_aggregate(acc, ev, as_of=AS_OF, cache=True)
    names = tables.event_names(daily)
    assert names == EVENTS
    first = pd.Timestamp(acc.signup_at.min().execute()).date()
    # Six month ends, and as_of's own day (the scoring snapshot: its window reaches as_of).
    # Spark pays seconds per query, so one snapshot table covers both.
    dates = tables.snapshot_dates(first, AS_OF, activation_window_days=30, max_snapshots=6)
    dates = [*dates, AS_OF.date()]
    return {
        "daily": daily.named().to_pandas(),
        "tenure": tables.tenure_table(daily, as_of=AS_OF, events=names, **TENURE).to_pandas(),
        "snapshots": tables.snapshot_table(
            daily, dates=dates, as_of=AS_OF, events=names, **SNAPSHOT
        ).to_pandas(),
        # each account's current setup and activation state (a range window over day numbers)
        "state": milestone_state(daily, as_of=AS_OF, **STATE).to_pandas(),
    }


def normalised(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Sorted by keys; times as datetime64[us], numbers and flags as float64, text as object."""
    out = {}
    for col in frame.columns:
        s = frame[col]
        if s.isna().all():
            out[col] = pd.Series(np.nan, index=s.index)
        elif (
            pd.api.types.is_datetime64_any_dtype(s) or s.map(lambda v: isinstance(v, dt.date)).any()
        ):
            out[col] = pd.to_datetime(s).astype("datetime64[us]")
        elif pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
            out[col] = pd.to_numeric(s.astype("float64"), errors="raise")
        else:
            out[col] = s.astype(object).where(s.notna(), None)
    return pd.DataFrame(out).sort_values(keys).reset_index(drop=True)


KEYS = {
    "daily": ["account_id", "event", "day"],
    "tenure": ["account_id"],
    "snapshots": ["account_id", "snapshot_date"],
    "state": ["account_id"],
}


@pytest.fixture(scope="module")
def duckdb_tables(inputs):
    return build(io.connect("duckdb"), *inputs)


@pytest.fixture(scope="module")
def spark_tables(spark, inputs):
    return build(io.connect("spark", spark_session=spark), *inputs)


@pytest.mark.parametrize("name", list(KEYS))
def test_spark_matches_duckdb(name, duckdb_tables, spark_tables):
    want, got = duckdb_tables[name], spark_tables[name]
    assert list(got.columns) == list(want.columns)
    assert len(want) > 0
    pd.testing.assert_frame_equal(
        normalised(got, KEYS[name]),
        normalised(want, KEYS[name]),
        check_exact=False,
        rtol=1e-9,
        obj=name,
    )


def test_example_is_not_trivial(duckdb_tables):
    t, s = duckdb_tables["tenure"], duckdb_tables["snapshots"]
    assert t["labelled"].any() and not t["labelled"].all()
    assert set(t["retained"].dropna()) == {0, 1}
    assert s["censored"].any() and not s["censored"].all()
    assert s["snapshot_date"].nunique() == 7
    st = duckdb_tables["state"]
    for flag in ("setup_on_time", "activation_on_time"):
        assert set(st[flag].dropna()) == {True, False}, flag
    assert st["activated"].any() and not st["activated"].all()


def test_engine_of_a_spark_connection(spark):
    con = io.connect("spark", spark_session=spark)
    assert con.name == "pyspark"  # Ibis' name for its PySpark backend
    assert engine_of(con) == "spark"


def test_validation_on_spark_matches_duckdb(spark, inputs):
    """The rules and the derived as_of are the same when Spark runs them."""
    reports = {}
    for engine, con in (
        ("duckdb", io.connect("duckdb")),
        ("spark", io.connect("spark", spark_session=spark)),
    ):
        accounts, events = io.read_inputs(con, *inputs)
        reports[engine] = validate_inputs(con, accounts, events, as_of=None)
    duck, spk = reports["duckdb"], reports["spark"]
    assert spk.engine == "spark" and duck.engine == "duckdb"
    assert spk.ok and duck.ok, spk.format()
    assert spk.as_of == duck.as_of
    assert spk.as_of.tzinfo is None
    assert spk.row_counts == duck.row_counts
    assert [r.rule for r in spk.results] == [r.rule for r in duck.results]


def test_features_command_on_spark_matches_duckdb(spark, tmp_path):
    """`milestones features --engine spark` writes the same tables as the DuckDB default."""
    from conftest import demo_config_text
    from typer.testing import CliRunner

    from features.demo import write_demo
    from flows.cli import app

    demo = write_demo(tmp_path / "demo", n_accounts=60, seed=3)
    cfg = tmp_path / "demo.yaml"
    cfg.write_text(
        demo_config_text(
            demo["accounts"],
            demo["events"],
            f"sqlite:///{tmp_path / 'mlflow.db'}",
            snapshots="  max_snapshots: 4",
        )
    )
    out = {}
    for engine in ("duckdb", "spark"):
        res = CliRunner().invoke(
            app,
            ["features", "--config", str(cfg), "--out", str(tmp_path / engine), "--engine", engine],
        )
        assert res.exit_code == 0, res.output
        out[engine] = {
            name: pd.read_parquet(tmp_path / engine / f"{name}.parquet")
            for name in ("tenure", "snapshots", "current")
        }
    assert len(out["duckdb"]["snapshots"]) > 50
    keys = {
        "tenure": ["account_id"],
        "snapshots": ["snapshot_date", "account_id"],
        "current": ["account_id"],
    }
    for name, k in keys.items():
        got, want = out["spark"][name], out["duckdb"][name]
        assert list(got.columns) == list(want.columns), name
        pd.testing.assert_frame_equal(
            normalised(got, k), normalised(want, k), check_dtype=False, obj=name
        )


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_mapped_epoch_inputs_on_spark_match_duckdb(spark, tmp_path, fmt):
    """`data.columns` and epoch milliseconds (integers; text in CSV) read the same on Spark."""
    from features.mapping import contract_inputs

    signup = [1_735_689_600_123, 1_738_404_000_000]  # 2025-01-01T00:00:00.123, 2025-02-01T10:00
    accounts = pd.DataFrame(
        {"org_id": ["a1", "a2"], "signup_at": signup, "churned_at": [None, 1_756_684_800_000]}
    )
    accounts["churned_at"] = accounts["churned_at"].astype("Int64")
    accounts["seats"] = [2, 1]
    events = pd.DataFrame(
        {"org_id": ["a1", "a2"], "name": ["x", "y"], "ts": [1_735_776_000_500, 1_738_454_400_000]}
    )
    paths = tmp_path / f"accounts.{fmt}", tmp_path / f"events.{fmt}"
    for frame, path in zip((accounts, events), paths, strict=True):
        frame.to_csv(path, index=False) if fmt == "csv" else frame.to_parquet(path, index=False)
    settings = dict(
        columns={"account_id": "org_id", "event": "name", "occurred_at": "ts"},
        timestamps=dict.fromkeys(["signup_at", "churned_at", "occurred_at"], "milliseconds"),
    )
    typed = {}
    for engine, con in (
        ("duckdb", io.connect("duckdb")),
        ("spark", io.connect("spark", spark_session=spark)),
    ):
        raw = contract_inputs(*io.read_inputs(con, *(io.Source(str(p)) for p in paths)), **settings)
        assert validate_inputs(con, *raw, as_of=AS_OF).ok
        typed[engine] = (
            io.typed_accounts(raw[0]).order_by("account_id").execute(),
            io.typed_events(raw[1]).order_by("account_id").execute(),
        )
    for duck, spk in zip(typed["duckdb"], typed["spark"], strict=True):
        pd.testing.assert_frame_equal(
            normalised(spk, ["account_id"]), normalised(duck, ["account_id"])
        )
    assert typed["spark"][0].signup_at.iloc[0] == pd.Timestamp("2025-01-01 00:00:00.123")
    assert typed["spark"][1].occurred_at.iloc[0] == pd.Timestamp("2025-01-02 00:00:00.500")
