"""The score history: a DuckDB table ``milestone_scores`` keyed by (account, as_of, run id).

Every publication appends its scores; re-publishing an ``as_of`` replaces that date's rows
(in one transaction) instead of duplicating them. Each row carries the account's stage at the
previous publication (the newest earlier ``as_of``) and whether it moved up or down since.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from pathlib import Path

import duckdb
import pandas as pd

from models.scoring import STAGES

TABLE = "milestone_scores"
_RANK = {s: i for i, s in enumerate(STAGES)}


def _connect(path: Path, read_only: bool = False):
    if read_only and not Path(path).exists():
        return None
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return duckdb.connect(str(path), read_only=read_only)


def with_previous_stage(path: Path, scores: pd.DataFrame, as_of: dt.datetime) -> pd.DataFrame:
    """Add ``previous_stage`` and ``movement`` (up, down, same, new) from the history."""
    out = scores.copy()
    previous = pd.Series(dtype=object)
    con = _connect(path, read_only=True)
    if con is not None:
        try:
            exists = con.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [TABLE]
            ).fetchone()[0]
            if exists:
                prev = con.execute(
                    f"SELECT account_id, arg_max(stage, as_of) AS stage FROM {TABLE} "
                    "WHERE as_of < ? GROUP BY account_id",
                    [pd.Timestamp(as_of).date()],
                ).df()
                previous = prev.set_index("account_id")["stage"]
        finally:
            con.close()
    out["previous_stage"] = out["account_id"].map(previous).astype(object)
    now = out["stage"].map(_RANK)
    before = out["previous_stage"].map(_RANK)
    out["movement"] = "same"
    out.loc[before.isna(), "movement"] = "new"
    out.loc[before.notna() & (now > before), "movement"] = "up"
    out.loc[before.notna() & (now < before), "movement"] = "down"
    out["previous_stage"] = out["previous_stage"].where(out["previous_stage"].notna(), None)
    return out


def record(path: Path, scores: pd.DataFrame, run_id: str) -> int:
    """Append one publication; rows of the same ``as_of`` are replaced. Returns rows written."""
    frame = scores.copy()
    frame["as_of"] = pd.to_datetime(frame["as_of"]).dt.date
    frame["run_id"] = run_id
    frame["published_at"] = pd.Timestamp.now(tz="UTC").tz_localize(None)
    as_of_values = sorted(set(frame["as_of"]))
    con = _connect(path)
    try:
        con.register("incoming", frame)
        con.execute("BEGIN TRANSACTION")
        con.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} AS SELECT * FROM incoming LIMIT 0")
        cols = [r[0] for r in con.execute(f"DESCRIBE {TABLE}").fetchall()]
        shared = [c for c in cols if c in frame.columns]
        for day in as_of_values:
            con.execute(f"DELETE FROM {TABLE} WHERE as_of = ?", [day])
        names = ", ".join(f'"{c}"' for c in shared)
        con.execute(f"INSERT INTO {TABLE} ({names}) SELECT {names} FROM incoming")
        con.execute("COMMIT")
        con.unregister("incoming")
    except BaseException:
        with contextlib.suppress(duckdb.Error):  # nothing to roll back
            con.execute("ROLLBACK")
        raise
    finally:
        con.close()
    return len(frame)
