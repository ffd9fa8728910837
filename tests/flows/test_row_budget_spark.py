"""The snapshot row budget on Spark (issue 12): past ``snapshots.max_rows`` Spark samples the
same whole accounts as DuckDB, their rows reach pandas equal to DuckDB's, and ``milestones
features`` still exports every snapshot row. Slow: starts Spark in local mode."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from conftest import FAST, demo_config_text

from features.columns import ACCOUNT_KEY, SNAPSHOT_KEY
from flows.config import load_config
from flows.steps.inputs import open_inputs
from flows.steps.tables import build_feature_tables, write_snapshots

pytestmark = [pytest.mark.spark, pytest.mark.slow]

BUDGET = 700
KEYS = [SNAPSHOT_KEY, ACCOUNT_KEY]


def _spark_missing() -> str | None:
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return "PySpark is not installed (make install-spark)"
    import shutil

    return None if shutil.which("java") else "no Java runtime for Spark"


def _normalised(frame: pd.DataFrame) -> pd.DataFrame:
    """Sorted by (snapshot, account); times as datetime64[us], numbers as float64."""
    out = {}
    for col in frame.columns:
        s = frame[col]
        if pd.api.types.is_datetime64_any_dtype(s) or s.map(lambda v: isinstance(v, dt.date)).any():
            out[col] = pd.to_datetime(s).astype("datetime64[us]")
        elif pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
            out[col] = s.astype("float64")
        else:
            out[col] = s.astype(object)
    return pd.DataFrame(out).sort_values(KEYS).reset_index(drop=True)


@pytest.fixture(scope="module")
def both(small_demo, tmp_path_factory):
    why = _spark_missing()
    if why:
        pytest.skip(why)
    tmp = tmp_path_factory.mktemp("row-budget-spark")
    path = tmp / "demo.yaml"
    path.write_text(
        demo_config_text(
            small_demo["accounts"], small_demo["events"], f"sqlite:///{tmp / 'mlflow.db'}", **FAST
        )
    )
    base = load_config(path)
    out = {"tmp": tmp}
    for engine in ("duckdb", "spark"):
        cfg = base.model_copy(
            update={
                "engine": engine,
                "snapshots": base.snapshots.model_copy(update={"max_rows": BUDGET}),
            }
        )
        out[engine] = build_feature_tables(cfg, open_inputs(cfg))
    return out


def test_spark_samples_the_same_whole_accounts_as_duckdb(both):
    duck, spark = both["duckdb"], both["spark"]
    assert duck.sample.sampled and spark.sample.sampled
    assert len(spark.snapshots) <= BUDGET
    for field in ("rows", "accounts", "total_rows", "total_accounts"):
        assert getattr(spark.sample, field) == getattr(duck.sample, field), field
    assert duck.sample.total_rows > 2 * BUDGET  # the budget bites
    assert sorted(spark.snapshots[ACCOUNT_KEY].unique()) == sorted(
        duck.snapshots[ACCOUNT_KEY].unique()
    )
    assert list(spark.snapshots.columns) == list(duck.snapshots.columns)
    pd.testing.assert_frame_equal(
        _normalised(spark.snapshots), _normalised(duck.snapshots), check_dtype=False
    )


def test_the_export_on_spark_holds_every_snapshot_row(both):
    tmp = both["tmp"]
    files = {}
    for engine in ("duckdb", "spark"):
        files[engine] = tmp / f"snapshots-{engine}.parquet"
        write_snapshots(both[engine], files[engine])
    duck, spark = (pd.read_parquet(files[e]) for e in ("duckdb", "spark"))
    assert len(spark) == both["spark"].sample.total_rows > len(both["spark"].snapshots)
    assert spark[ACCOUNT_KEY].nunique() == both["spark"].sample.total_accounts
    pd.testing.assert_frame_equal(_normalised(spark), _normalised(duck), check_dtype=False)
    # the analysed sample is exactly the export's rows of the sampled accounts
    chosen = set(both["spark"].snapshots[ACCOUNT_KEY])
    part = spark[spark[ACCOUNT_KEY].isin(chosen)]
    assert np.array_equal(
        _normalised(part)[KEYS].to_numpy(), _normalised(both["spark"].snapshots)[KEYS].to_numpy()
    )
