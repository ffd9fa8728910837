"""The snapshot row budget (``snapshots.max_rows``, issue 12): past it, only the rows of a
seeded sample of whole accounts reach pandas; below it, every row does."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from conftest import FAST, demo_config_text

from features.columns import ACCOUNT_KEY
from flows.config import SnapshotsConfig, load_config
from flows.runtime import Stage
from flows.steps.inputs import open_inputs
from flows.steps.tables import budgeted_snapshots, build_feature_tables, sample_accounts

BUDGET = 700


def _with(cfg, **update):
    """``cfg`` with other ``snapshots`` values and/or another seed."""
    seed = update.pop("seed", cfg.seed)
    snapshots = cfg.snapshots.model_copy(update=update)
    return cfg.model_copy(update={"snapshots": snapshots, "seed": seed})


@pytest.fixture(scope="module")
def built(small_demo, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("row-budget")
    path = tmp / "demo.yaml"
    text = demo_config_text(
        small_demo["accounts"], small_demo["events"], f"sqlite:///{tmp / 'mlflow.db'}", **FAST
    )
    path.write_text(text)
    cfg = load_config(path)
    inputs = open_inputs(cfg)
    whole = build_feature_tables(cfg, inputs)  # the default budget
    small = _with(cfg, max_rows=BUDGET)
    return {
        "cfg": small,
        "inputs": inputs,
        "whole": whole,
        "tables": build_feature_tables(small, inputs),
    }


def _rows_per_account(frame: pd.DataFrame) -> pd.Series:
    return frame.groupby(ACCOUNT_KEY).size()


# ----------------------------------------------------------------------- the choice, in pandas


def _counts(n: int, seed: int = 0) -> pd.DataFrame:
    rows = np.random.default_rng(seed).integers(1, 25, size=n)
    return pd.DataFrame({ACCOUNT_KEY: [f"a{i:05d}" for i in range(n)], "rows": rows})


@pytest.mark.parametrize("budget", [1, 24, 500, 2_000, 7_777])
def test_sampled_accounts_fill_the_budget_without_passing_it(budget):
    counts = _counts(1_000)
    per = counts.set_index(ACCOUNT_KEY)["rows"]
    chosen = sample_accounts(counts, budget, seed=3)
    taken = int(per[chosen].sum())
    assert len(chosen) == len(set(chosen)) >= 1
    if len(chosen) > 1:
        assert taken <= budget
        # short of the budget by less than the next account of the order: at most 24 rows
        assert budget - taken < per.max()
    else:  # the first account alone may exceed a budget smaller than its rows
        assert taken <= max(budget, per.max())


def test_the_choice_is_seeded_and_ignores_the_row_order():
    counts = _counts(1_000)
    first = sample_accounts(counts, 3_000, seed=1)
    shuffled = counts.sample(frac=1.0, random_state=9)  # an engine returns groups in any order
    assert list(sample_accounts(shuffled, 3_000, seed=1)) == list(first)
    assert set(sample_accounts(counts, 3_000, seed=2)) != set(first)


def test_within_the_budget_every_account_is_kept():
    counts = _counts(100)
    assert len(sample_accounts(counts, int(counts["rows"].sum()), seed=1)) == 100
    assert SnapshotsConfig().max_rows == 300_000


# ------------------------------------------------------------------------- the built tables


def test_default_budget_samples_nothing(built):
    whole = built["whole"]
    assert not whole.sample.sampled
    assert whole.sample.rows == whole.sample.total_rows == len(whole.snapshots) > BUDGET
    assert whole.sample.accounts == whole.sample.total_accounts


def test_small_budget_fetches_whole_accounts_within_it(built):
    tables, whole = built["tables"], built["whole"]
    snapshots = tables.snapshots
    every = _rows_per_account(whole.snapshots)
    fetched = _rows_per_account(snapshots)
    # at most the budget (no account is cut: the next one of the order did not fit)
    assert 0 < len(snapshots) <= BUDGET
    assert BUDGET - len(snapshots) < every.max()
    assert tables.sample.sampled
    assert tables.sample.rows == len(snapshots)
    assert tables.sample.accounts == len(fetched)
    assert tables.sample.total_rows == len(whole.snapshots)
    assert tables.sample.total_accounts == len(every)
    # whole accounts: each fetched account has every one of its rows
    pd.testing.assert_series_equal(fetched, every[fetched.index])
    # the same rows, values and order as the whole table's (to_frame's sort)
    expected = whole.snapshots[whole.snapshots[ACCOUNT_KEY].isin(fetched.index)]
    pd.testing.assert_frame_equal(snapshots, expected.reset_index(drop=True))
    # the tenure rows and the live accounts stay whole
    assert len(tables.tenure) == len(whole.tenure)
    assert len(tables.current) == len(whole.current)


def test_the_same_seed_picks_the_same_accounts(built):
    table = built["inputs"].con.table("ms_snapshots")
    seed = built["cfg"].seed
    first, _ = budgeted_snapshots(table, BUDGET, seed)
    again, _ = budgeted_snapshots(table, BUDGET, seed)
    other, _ = budgeted_snapshots(table, BUDGET, seed + 1)
    chosen = set(first[ACCOUNT_KEY])
    assert chosen == set(built["tables"].snapshots[ACCOUNT_KEY])
    pd.testing.assert_frame_equal(first, again)
    assert set(other[ACCOUNT_KEY]) != chosen


def test_the_run_says_how_many_rows_it_sampled(built, caplog):
    cfg, inputs = built["cfg"], built["inputs"]
    with caplog.at_level(logging.INFO, logger="milestones"), Stage(2, 6, "features") as st:
        tables = build_feature_tables(cfg, inputs, st)
    s = tables.sample
    line = (
        f"{s.rows:,} of {s.total_rows:,} snapshot rows ({s.accounts:,} of "
        f"{s.total_accounts:,} accounts) sampled for analysis (snapshots.max_rows={BUDGET:,})"
    )
    assert line in caplog.text


def test_a_run_on_the_sample_trains_and_derives(built):
    from flows.steps.train import derive, train

    cfg, tables = built["cfg"], built["tables"]
    trained = train(cfg, tables)
    rows = trained["rows"]
    assert rows["snapshots"] == tables.sample.total_rows
    assert rows["snapshots_analysed"] == len(tables.snapshots) <= BUDGET
    assert rows["snapshot_accounts"] == tables.sample.total_accounts
    assert rows["snapshot_accounts_analysed"] == tables.sample.accounts
    assert rows["train"] + rows["test"] <= BUDGET
    thresholds = derive(cfg, tables)
    assert set(thresholds) >= {"setup", "activation", "utilization", "maturity"}


def test_the_exported_snapshot_table_holds_every_row_past_the_budget(built, tmp_path):
    """``milestones features`` exports the whole table, not the sample the analysis holds."""
    from flows.steps.tables import write_snapshots

    tables, whole = built["tables"], built["whole"].snapshots
    assert len(tables.snapshots) < len(whole)  # the analysis holds a sample
    write_snapshots(tables, tmp_path / "snapshots.parquet")
    exported = pd.read_parquet(tmp_path / "snapshots.parquet")
    assert len(exported) == len(whole)
    assert list(exported.columns) == list(whole.columns)
    pd.testing.assert_frame_equal(
        exported.reset_index(drop=True), whole.reset_index(drop=True), check_dtype=False
    )
