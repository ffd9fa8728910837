"""The score history over several publications: previous stage, movement, no duplicate rows,
and the `milestones history` command that reads it."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest
from typer.testing import CliRunner

from flows.cli import app
from flows.store.history import record, with_previous_stage

DATES = ("2026-01-31", "2026-02-28", "2026-03-31")
#: account -> its stage at each of the three dates (None: not published that day)
STAGES = {
    "climber": ("new", "setup", "activated"),  # up, up
    "faller": ("mature", "utilized", "activated"),  # down, down
    "steady": ("utilized", "utilized", "utilized"),  # same, same
    "late": (None, "setup", "setup"),  # appears on the second date
    "newest": (None, None, "new"),  # appears on the third date
    "mixed": ("setup", "mature", "activated"),  # up, then down
}
EXPECTED = {
    "climber": (("new", None), ("up", "new"), ("up", "setup")),
    "faller": (("new", None), ("down", "mature"), ("down", "utilized")),
    "steady": (("new", None), ("same", "utilized"), ("same", "utilized")),
    "late": (None, ("new", None), ("same", "setup")),
    "newest": (None, None, ("new", None)),
    "mixed": (("new", None), ("up", "setup"), ("down", "mature")),
}


def scores_at(i: int, stages: dict = STAGES) -> pd.DataFrame:
    rows = [(a, s[i]) for a, s in stages.items() if s[i] is not None]
    return pd.DataFrame(
        {
            "account_id": [a for a, _ in rows],
            "as_of": pd.Timestamp(DATES[i]),
            "stage": [s for _, s in rows],
            "next_step": [f"step for {a} on {DATES[i]}" for a, _ in rows],
            "retention_probability": [0.5 + 0.1 * i] * len(rows),
            "activated": [s in ("activated", "utilized", "mature") for _, s in rows],
        }
    )


def publish(path, i: int, run_id: str, stages: dict = STAGES) -> pd.DataFrame:
    scored = with_previous_stage(path, scores_at(i, stages), pd.Timestamp(DATES[i]))
    record(path, scored, run_id)
    return scored


def table(path) -> pd.DataFrame:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute("SELECT * FROM milestone_scores ORDER BY account_id, as_of").df()
    finally:
        con.close()


def movements(frame: pd.DataFrame) -> dict:
    return {
        r.account_id: (r.movement, r.previous_stage if isinstance(r.previous_stage, str) else None)
        for r in frame.itertuples()
    }


@pytest.fixture()
def three(tmp_path):
    path = tmp_path / "history.duckdb"
    published = [publish(path, i, f"run-{i}") for i in range(3)]
    return path, published


def test_three_publications_chain_previous_stage_and_movement(three):
    path, published = three
    for i, scored in enumerate(published):
        want = {a: e[i] for a, e in EXPECTED.items() if e[i] is not None}
        assert movements(scored) == want, DATES[i]
    h = table(path)
    assert len(h) == sum(len(p) for p in published)
    for i, day in enumerate(DATES):
        rows = h[pd.to_datetime(h["as_of"]) == pd.Timestamp(day)]
        assert movements(rows) == {a: e[i] for a, e in EXPECTED.items() if e[i] is not None}
        assert set(rows["run_id"]) == {f"run-{i}"}


def test_republishing_the_middle_date_replaces_it(three):
    path, _ = three
    before = table(path)
    again = publish(path, 1, "run-1-again")
    assert movements(again) == {a: e[1] for a, e in EXPECTED.items() if e[1] is not None}
    after = table(path)
    assert len(after) == len(before)
    assert after.groupby(["account_id", "as_of"]).size().max() == 1
    middle = after[pd.to_datetime(after["as_of"]) == pd.Timestamp(DATES[1])]
    assert set(middle["run_id"]) == {"run-1-again"}


def test_a_corrected_middle_date_rechains_the_later_one(three):
    path, _ = three
    corrected = {**STAGES, "steady": ("utilized", "mature", "utilized")}
    publish(path, 1, "run-1-fixed", corrected)
    h = table(path)
    steady = h[h["account_id"] == "steady"]
    steady = steady.set_index(pd.to_datetime(steady["as_of"]))
    assert steady.loc[pd.Timestamp(DATES[1]), "movement"] == "up"
    assert steady.loc[pd.Timestamp(DATES[2]), "movement"] == "down"
    assert steady.loc[pd.Timestamp(DATES[2]), "previous_stage"] == "mature"


def test_new_columns_join_the_history(three):
    path, _ = three
    scored = with_previous_stage(path, scores_at(2), pd.Timestamp(DATES[2]))
    scored["plan"] = "pro"
    record(path, scored, "run-2-plan")
    h = table(path)
    assert set(h.loc[pd.to_datetime(h["as_of"]) == pd.Timestamp(DATES[2]), "plan"]) == {"pro"}
    assert h.loc[pd.to_datetime(h["as_of"]) < pd.Timestamp(DATES[2]), "plan"].isna().all()


def test_values_are_never_sql(tmp_path):
    path = tmp_path / "history.duckdb"
    odd = {"x'; DROP TABLE milestone_scores; --": ("new", "setup", "setup")}
    for i in range(3):
        publish(path, i, "run'); --", odd)
    h = table(path)
    assert len(h) == 3 and set(h["run_id"]) == {"run'); --"}


# --- the command ------------------------------------------------------------------------------

CONFIG = """
data: {accounts: accounts.csv, events: events.csv}
milestones:
  activation: {event: x}
  utilization: {event: x}
"""


def invoke(cfg, *args):
    return CliRunner().invoke(app, ["history", "--config", str(cfg), *args])


def test_history_command_prints_newest_first(three, tmp_path):
    path, _ = three
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(CONFIG + f"history: {path}\n")
    res = invoke(cfg, "--account", "mixed")
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0].startswith("account mixed: 3 publication(s), newest first")
    header = lines[1].split()
    assert header == [
        "as_of",
        "stage",
        "movement",
        "previous_stage",
        "next_step",
        "retention_probability",
        "run_id",
    ]
    body = lines[3:]
    assert [r.split()[0] for r in body] == list(reversed(DATES))
    assert body[0].split()[:4] == [DATES[2], "activated", "down", "mature"]
    assert body[2].split()[:4] == [DATES[0], "setup", "new", "-"]
    assert "step for mixed on 2026-03-31" in body[0] and "0.700" in body[0]
    assert body[0].rstrip().endswith("run-2")


def test_history_command_reads_the_file_beside_out(three, tmp_path):
    path, _ = three
    folder = tmp_path / "project"
    folder.mkdir()
    path.rename(folder / "milestone_history.duckdb")
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(CONFIG)
    res = invoke(cfg, "--account", "late", "--out", str(folder / "scores"))
    assert res.exit_code == 0, res.output
    assert "2 publication(s)" in res.output


def test_history_command_unknown_account_or_no_history(three, tmp_path):
    path, _ = three
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(CONFIG + f"history: {path}\n")
    res = invoke(cfg, "--account", "nobody")
    assert res.exit_code == 2
    assert "account 'nobody' has no score history" in res.output
    assert "Traceback" not in res.output
    cfg.write_text(CONFIG + f"history: {tmp_path / 'none.duckdb'}\n")
    res = invoke(cfg, "--account", "mixed")
    assert res.exit_code == 2
    assert "no score history at" in res.output and "none.duckdb" in res.output
    assert not (tmp_path / "none.duckdb").exists()  # reading never creates the file
