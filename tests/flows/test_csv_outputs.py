"""The published CSV files a CRM or a spreadsheet imports: formulas neutralised, booleans as
true/false, UTF-8, numbers kept numbers; and the configured pass-through account columns."""

from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
import pytest
from conftest import FAST, demo_config_text
from typer.testing import CliRunner

from flows.cli import app
from flows.steps.score import contract_columns, with_account_columns
from flows.store.publish import neutralise, write_csv
from models.scoring import SCORE_COLUMNS

HOSTILE = [
    '=HYPERLINK("http://x","y")',
    "+cmd|' /C calc'!A0",
    "@SUM(A1)",
    "-2+3",
    "\tleading tab",
    "\rleading carriage return",
]
PLAIN = ["Zoë Ærøskøbing", "東京 office", "plain", "it's fine", "a=b", "-3.5"]


@pytest.fixture()
def written(tmp_path):
    ids = HOSTILE + PLAIN
    n = len(ids)
    frame = pd.DataFrame(
        {
            "account_id": ids,
            "value": [-3.5] * n,
            "count": np.arange(-6, n - 6, dtype="int64"),
            "flag": [True, False] * (n // 2),
            "note": [None] + ["x"] * (n - 1),
        }
    )
    path = tmp_path / "out.csv"
    write_csv(frame, path)
    return frame, path


def test_formula_cells_are_neutralised(written):
    _, path = written
    back = pd.read_csv(path, keep_default_na=False, encoding="utf-8")
    assert back["account_id"].tolist() == ["'" + v for v in HOSTILE] + PLAIN
    # a spreadsheet sees a quote first: nothing it would run starts a text cell
    for cell in back["account_id"]:
        assert not cell.startswith(("=", "+", "@", "\t", "\r")) and cell not in ("-2+3",)
    # the quote is the only change: strip it and the data is back
    assert [c[1:] if c.startswith("'") else c for c in back["account_id"]] == HOSTILE + PLAIN


def test_numbers_stay_numbers_and_booleans_are_words(written):
    frame, path = written
    text = path.read_bytes().decode("utf-8")
    rows = list(pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False).itertuples())
    assert {r.value for r in rows} == {"-3.5"}  # a negative number is not text
    assert [r.count for r in rows] == [str(v) for v in frame["count"]]
    assert [r.flag for r in rows] == ["true", "false"] * (len(rows) // 2)
    assert rows[0].note == ""  # a missing value is an empty cell
    back = pd.read_csv(path)
    assert back["value"].dtype == float and (back["value"] == -3.5).all()
    assert back["flag"].tolist() == frame["flag"].tolist()


def test_utf8_round_trip_without_bom(written):
    _, path = written
    raw = path.read_bytes()
    assert not raw.startswith(b"\xef\xbb\xbf")
    assert "Zoë Ærøskøbing".encode() in raw and "東京 office".encode() in raw
    back = pd.read_csv(path, encoding="utf-8")
    assert "Zoë Ærøskøbing" in set(back["account_id"]) and "東京 office" in set(back["account_id"])


def test_line_breaks_inside_cells_keep_rows_whole(tmp_path):
    frame = pd.DataFrame({"id": ["a\rb", "c\nd", "\re"], "n": [1, 2, 3]})
    write_csv(frame, tmp_path / "x.csv")
    back = pd.read_csv(tmp_path / "x.csv")
    assert back["id"].tolist() == ["a\rb", "c\nd", "'\re"]
    assert back["n"].tolist() == [1, 2, 3]


def test_write_csv_details(tmp_path):
    frame = pd.DataFrame(
        {
            "=header": ["x"],
            "nullable": pd.array([pd.NA], dtype="boolean"),
            "mixed": pd.Series([np.True_], dtype=object),
            "category": pd.Categorical(["@x"]),
            "p": [1 / 3],
            "q": [1 / 3],
        }
    )
    write_csv(frame, tmp_path / "x.csv", float_format={"p": "%.3g"})
    header, row = (tmp_path / "x.csv").read_text(encoding="utf-8").splitlines()
    assert header == "'=header,nullable,mixed,category,p,q"
    assert row == f"x,,true,'@x,0.333,{1 / 3!r}"
    assert frame.columns[0] == "=header" and frame["category"][0] == "@x"  # frame untouched
    assert neutralise("'=x") == "'=x"  # idempotent: a re-written file gains no second quote
    assert neutralise("+1e-3") == "+1e-3" and neutralise("-") == "'-"


def test_with_account_columns_places_them_after_the_contract():
    scores = pd.DataFrame({c: [0, 0] for c in SCORE_COLUMNS})
    scores["account_id"] = ["b", "a"]
    scores["detail"] = [1.5, 2.5]
    accounts = pd.DataFrame(
        {"account_id": ["a", "b", "z"], "owner": ["=ann", "bob", "x"], "seats": [3, 4, 5]}
    )
    out = with_account_columns(scores, accounts, ["owner", "seats"])
    assert list(out.columns) == SCORE_COLUMNS + ["owner", "seats", "detail"]
    assert out["owner"].tolist() == ["bob", "=ann"] and out["seats"].tolist() == [4, 3]
    assert out.attrs["account_columns"] == ["owner", "seats"]
    assert with_account_columns(scores, accounts, []) is scores


# --- end to end: the CLI --------------------------------------------------------------------


def _config(runs, small_demo, tmp_path, columns: str) -> str:
    """The `runs` fixture's data and MLflow store (its champion) with pass-through columns
    and a private history file."""
    text = demo_config_text(
        small_demo["accounts"],
        small_demo["events"],
        f"sqlite:///{runs['tmp'] / 'mlflow.db'}",
        scores=f"  columns: {columns}",
        history=f"  {tmp_path / 'history.duckdb'}",
        **FAST,
    )
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    return str(path)


def test_scores_csv_carries_the_pass_through_columns(runs, small_demo, tmp_path, prefect_harness):
    cfg = _config(runs, small_demo, tmp_path, "[region, plan, seats]")
    out = tmp_path / "scored"
    res = CliRunner().invoke(app, ["score", "--config", cfg, "--out", str(out)])
    assert res.exit_code == 0, res.output + str(res.exception)
    csv = pd.read_csv(out / "scores.csv")
    parquet = pd.read_parquet(out / "scores.parquet")
    contract = contract_columns(parquet.columns)  # SCORE_COLUMNS, milestone dates, drivers
    assert contract[: len(SCORE_COLUMNS)] == SCORE_COLUMNS
    n = len(contract)
    for frame in (csv, parquet):
        assert list(frame.columns[:n]) == contract
        assert list(frame.columns[n : n + 3]) == ["region", "plan", "seats"]
        assert list(frame.columns).count("plan") == 1
    accounts = pd.read_parquet(small_demo["accounts"])
    truth = accounts.set_index("account_id").loc[parquet["account_id"]]
    assert parquet["region"].tolist() == truth["region"].tolist()
    assert parquet["plan"].tolist() == truth["plan"].tolist()
    assert csv["seats"].tolist() == truth["seats"].tolist()
    # booleans are words in the CSV file, true values in Parquet
    raw = pd.read_csv(out / "scores.csv", dtype=str)
    assert set(raw["activated"]) <= {"true", "false"}
    assert parquet["activated"].dtype == bool


def test_published_csvs_use_the_house_format(runs):
    folder = runs["tmp"] / "first"
    for name in ("scores.csv", "importance.csv", "calibration.csv"):
        if not (folder / name).is_file():
            continue
        raw = (folder / name).read_bytes()
        assert b"\r\n" in raw and b"True" not in raw and b"False" not in raw, name
    prob = pd.read_csv(folder / "scores.csv")["retention_probability"]
    assert prob.between(0, 1).all() and not math.isnan(prob.iloc[0])


def test_unknown_pass_through_column_exits_2_naming_it(
    runs, small_demo, tmp_path, prefect_harness, capfd
):
    cfg = _config(runs, small_demo, tmp_path, "[plan, crm_id]")
    out = tmp_path / "scored"
    for command in (["validate"], ["score"], ["run"]):
        res = CliRunner().invoke(app, [*command, "--config", cfg, "--out", str(out)])
        assert res.exit_code == 2, (command, res.output)
        assert "scores.columns" in res.output and "'crm_id'" in res.output
        assert "'plan'" not in res.output.split("(its columns")[0]
        assert "Traceback" not in res.output + capfd.readouterr().err
    assert not out.exists()


def test_a_score_column_cannot_be_passed_through(tmp_path):
    from flows.config import load_config
    from flows.errors import ConfigError

    base = "data: {accounts: a.csv, events: e.csv}\nmilestones:\n"
    base += "  activation: {event: x}\n  utilization: {event: x}\n"
    for columns, words in (("[stage]", "already a score column"), ("[plan, plan]", "twice")):
        (tmp_path / "c.yaml").write_text(base + f"scores:\n  columns: {columns}\n")
        with pytest.raises(ConfigError, match=words):
            load_config(tmp_path / "c.yaml")
    (tmp_path / "c.yaml").write_text(base)
    assert load_config(tmp_path / "c.yaml").scores.columns == []


def test_event_names_are_neutralised_in_importance_csv_and_read_back_raw(tmp_path):
    """A spreadsheet sees `'=cmd`; the report and the review read the raw name back."""
    from flows.steps.score import write_outputs
    from flows.store.publish import read_importance

    names = ["=cmd|' /C calc'!A0", "@mention", "+plus", "-minus", "plain"]
    importance = pd.DataFrame({"feature": names, "importance_rf": [0.1, 0.2, -0.3, 0.0, 1.0]})
    scores = pd.DataFrame({"account_id": ["=HYPERLINK(1)"], "as_of": ["2026-01-31"]})
    write_outputs(
        tmp_path, thresholds={}, importance=importance, scores=scores, validation={}, summary={}
    )
    csv_text = (tmp_path / "importance.csv").read_text(encoding="utf-8")
    for name in names[:4]:
        assert f"'{name}" in csv_text or f"\"'{name}" in csv_text
    assert "'=HYPERLINK(1)" in (tmp_path / "scores.csv").read_text(encoding="utf-8")
    back = read_importance(tmp_path)
    assert back["feature"].tolist() == names
    assert back["importance_rf"].tolist() == [0.1, 0.2, -0.3, 0.0, 1.0]
