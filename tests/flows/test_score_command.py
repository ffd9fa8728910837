"""`milestones score`: scoring with the champion, the history table, and no champion."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest
from conftest import FAST, demo_config_text
from typer.testing import CliRunner

from flows.cli import app


def history(path):
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute("SELECT * FROM milestone_scores").df()
    finally:
        con.close()


def test_run_appends_history_without_duplicates(runs):
    # the two runs published the same as_of into two folders sharing one history file: each
    # folder keeps its own rows, one per account and as_of
    h = history(runs["tmp"] / "milestone_history.duckdb")
    scores = pd.read_parquet(runs["tmp"] / "second" / "scores.parquet")
    assert set(h["output"]) == {"first", "second"}
    assert (h.groupby("output").size() == len(scores)).all()
    assert h.groupby(["output", "account_id", "as_of"]).size().max() == 1
    assert h.groupby("output")["run_id"].nunique().max() == 1
    assert {"previous_stage", "movement"} <= set(scores.columns)


def test_score_with_champion_replaces_same_as_of(runs, prefect_harness):
    out = runs["tmp"] / "scored"
    res = CliRunner().invoke(app, ["score", "--config", str(runs["cfg"]), "--out", str(out)])
    assert res.exit_code == 0, res.output + str(res.exception)
    scores = pd.read_parquet(out / "scores.parquet")
    trained = pd.read_parquet(runs["tmp"] / "first" / "scores.parquet")
    # the champion's thresholds give the same flags as the training run's own scoring
    cols = ["account_id", "stage", "activated", "utilized", "mature", "setup_complete"]
    pd.testing.assert_frame_equal(scores[cols], trained[cols])
    assert scores["retention_probability"].between(0, 1).all()
    assert (out / "thresholds.json").read_text() in {
        (runs["tmp"] / "first" / "thresholds.json").read_text(),
        (runs["tmp"] / "second" / "thresholds.json").read_text(),
    }
    # scoring into a folder beside the others shares their history file without touching
    # their rows: one row per account and as_of in each folder
    h = history(runs["tmp"] / "milestone_history.duckdb")
    assert h.groupby(["output", "account_id", "as_of"]).size().max() == 1
    assert (h[h["output"] == "scored"].shape[0]) == len(scores)
    assert (h.groupby("output").size() == len(scores)).all()


def test_score_without_champion_fails_clearly(small_demo, tmp_path, prefect_harness, capfd):
    cfg = tmp_path / "demo.yaml"
    cfg.write_text(
        demo_config_text(
            small_demo["accounts"],
            small_demo["events"],
            f"sqlite:///{tmp_path / 'empty.db'}",
            **FAST,
        )
    )
    res = CliRunner().invoke(app, ["score", "--config", str(cfg), "--out", str(tmp_path / "out")])
    assert res.exit_code == 1
    assert "no champion model 'milestones-retention@champion'" in res.output
    assert "milestones run" in res.output
    assert not (tmp_path / "out").exists()
    captured = capfd.readouterr()
    assert "Traceback" not in res.output + captured.err + captured.out


@pytest.mark.slow
def test_champion_in_another_model_format_is_refused_then_replaced(
    small_demo, tmp_path, prefect_harness
):
    """A champion saved by a version with another model format: `score` refuses it with a
    clear message (no half-read pickle), and the next `run` replaces it whatever its AUC."""
    import json

    import mlflow

    from flows.store.tracking import CHAMPION

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = tmp_path / "demo.yaml"
    cfg.write_text(demo_config_text(small_demo["accounts"], small_demo["events"], uri, **FAST))
    res = CliRunner().invoke(app, ["run", "--config", str(cfg), "--out", str(tmp_path / "first")])
    assert res.exit_code == 0, res.output + str(res.exception)
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    first = client.get_model_version_by_alias("milestones-retention", CHAMPION)
    assert client.get_run(first.run_id).data.tags["model_format"] != "0"
    client.set_tag(first.run_id, "model_format", "0")  # as if an older version had saved it

    res = CliRunner().invoke(
        app, ["score", "--config", str(cfg), "--out", str(tmp_path / "scored")]
    )
    assert res.exit_code == 1
    assert "was saved in model format 0" in res.output
    assert "milestones run" in res.output
    assert not (tmp_path / "scored").exists()

    res = CliRunner().invoke(app, ["run", "--config", str(cfg), "--out", str(tmp_path / "second")])
    assert res.exit_code == 0, res.output + str(res.exception)
    gate = json.loads((tmp_path / "second" / "promotion.json").read_text())
    assert gate["decision"] == "promoted"
    assert "model format 0" in gate["reason"]
    second = client.get_model_version_by_alias("milestones-retention", CHAMPION)
    assert int(second.version) == int(first.version) + 1
