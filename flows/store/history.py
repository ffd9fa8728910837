"""The score history: a DuckDB table ``milestone_scores`` keyed by (output, account, as_of).

``output`` names the output folder a row was published to (:func:`output_key`: its path
relative to the history file's folder), so that several output folders can share one history
file: each reads and replaces only its own rows. Rows written before the key existed hold
null there and belong to no output folder.

Every publication appends its scores; re-publishing an ``as_of`` to the same output folder
replaces that date's rows (in one transaction) instead of duplicating them. One writer at a
time: :func:`record` holds ``<history>.lock``; a file that another process holds open (the
lock, or DuckDB's own file lock) fails at once with a :class:`~flows.errors.LockedError`
naming it. Each row carries the account's stage at the
previous publication (its newest row with an earlier ``as_of``) and its ``movement`` since:
``up``, ``down``, ``same``, or ``new`` (no earlier row). Re-publishing a date (a backfill, a
corrected run) recomputes both for the later rows, so the history always reads as one chain.

The table's columns are the union of what was ever published: a publication with a new
column adds it (earlier rows hold null there). Values never enter SQL text: they are
parameters or a registered frame; column names are quoted identifiers.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from pathlib import Path

import duckdb
import pandas as pd

from flows.errors import LockedError
from flows.store.publish import locked, naming_path
from models.scoring import STAGES

TABLE = "milestone_scores"
_RANK = {s: i for i, s in enumerate(STAGES)}
#: the types of the columns every publication has (a column of nulls has no type of its own)
CORE_TYPES = {
    "account_id": "VARCHAR",
    "as_of": "DATE",
    "stage": "VARCHAR",
    "previous_stage": "VARCHAR",
    "movement": "VARCHAR",
    "next_step": "VARCHAR",
    "retention_probability": "DOUBLE",
    "run_id": "VARCHAR",
    "published_at": "TIMESTAMP",
    "output": "VARCHAR",
}
#: what ``milestones history`` shows of each publication, in this order
SHOWN = (
    "as_of",
    "stage",
    "movement",
    "previous_stage",
    "next_step",
    "retention_probability",
    "run_id",
)


def output_key(history_file: Path, out: Path) -> str:
    """The ``output`` key of an output folder: its path relative to the history file's
    folder (``out`` for the default history beside it), with ``/`` separators."""
    rel = os.path.relpath(Path(out).resolve(), Path(history_file).resolve().parent)
    return Path(rel).as_posix()


def _connect(path: Path, read_only: bool = False):
    if read_only and not Path(path).exists():
        return None
    with naming_path(path, "open the score history"):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    try:
        return duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as exc:
        if "lock" not in str(exc).lower():
            raise
        raise LockedError(
            f"the score history {path} is held open by another process: {exc}"
        ) from None


def _same_output(output: str | None) -> tuple[str, list]:
    """A SQL condition (and its parameter) selecting the rows of one output folder."""
    return "output IS NOT DISTINCT FROM ?", [output]


def _ident(name: str) -> str:
    """A column name as a quoted SQL identifier."""
    return '"' + str(name).replace('"', '""') + '"'


def _has_table(con) -> bool:
    return bool(
        con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [TABLE]
        ).fetchone()[0]
    )


def _types(con, relation: str) -> dict[str, str]:
    return {r[0]: r[1] for r in con.execute(f"DESCRIBE {relation}").fetchall()}


def _untyped(kind: str) -> bool:
    return kind.strip('"').upper() == "NULL"


def with_previous_stage(
    path: Path, scores: pd.DataFrame, as_of: dt.datetime, output: str | None = None
) -> pd.DataFrame:
    """Add ``previous_stage`` and ``movement`` (up, down, same, new) from the history rows
    of the output folder ``output`` (see :func:`output_key`)."""
    out = scores.copy()
    previous = pd.Series(dtype=object)
    con = _connect(path, read_only=True)
    if con is not None:
        try:
            if _has_table(con):
                scope, params = (
                    _same_output(output) if "output" in _types(con, TABLE) else ("TRUE", [])
                )
                prev = con.execute(
                    f"SELECT account_id, arg_max(stage, as_of) AS stage FROM {TABLE} "
                    f"WHERE as_of < ? AND {scope} GROUP BY account_id",
                    [pd.Timestamp(as_of).date(), *params],
                ).df()
                previous = prev.set_index("account_id")["stage"]
        finally:
            con.close()
    out["previous_stage"] = out["account_id"].astype(str).map(previous).astype(object)
    now = out["stage"].map(_RANK)
    before = out["previous_stage"].map(_RANK)
    out["movement"] = "same"
    out.loc[before.isna(), "movement"] = "new"
    out.loc[before.notna() & (now > before), "movement"] = "up"
    out.loc[before.notna() & (now < before), "movement"] = "down"
    out["previous_stage"] = out["previous_stage"].where(out["previous_stage"].notna(), None)
    return out


def _ensure_table(con, incoming: dict[str, str]) -> dict[str, str]:
    """Create the table, or add the incoming columns it lacks; returns its column types."""
    wanted = {
        c: CORE_TYPES.get(c, "VARCHAR" if _untyped(kind) else kind) for c, kind in incoming.items()
    }
    if not _has_table(con):
        cols = ", ".join(f"{_ident(c)} {kind}" for c, kind in wanted.items())
        con.execute(f"CREATE TABLE {TABLE} ({cols})")
        return wanted
    existing = _types(con, TABLE)
    for c, kind in existing.items():
        if _untyped(kind):  # written by an earlier version from a column of nulls
            con.execute(f"ALTER TABLE {TABLE} ALTER {_ident(c)} TYPE {wanted.get(c, 'VARCHAR')}")
    for c, kind in wanted.items():
        if c not in existing:
            con.execute(f"ALTER TABLE {TABLE} ADD COLUMN {_ident(c)} {kind}")
    return _types(con, TABLE)


def _rechain(con, after: dt.date, output: str | None) -> None:
    """Recompute ``previous_stage`` and ``movement`` of the output folder's rows published
    after ``after``."""
    con.execute(
        f"""
        UPDATE {TABLE} AS t SET previous_stage = p.prev,
            movement = CASE
                WHEN p.prev IS NULL THEN 'new'
                WHEN list_position($stages, t.stage) > list_position($stages, p.prev) THEN 'up'
                WHEN list_position($stages, t.stage) < list_position($stages, p.prev) THEN 'down'
                ELSE 'same' END
        FROM (
            SELECT output, account_id, as_of,
                lag(stage) OVER (PARTITION BY output, account_id ORDER BY as_of) AS prev
            FROM {TABLE}
        ) AS p
        WHERE t.account_id = p.account_id AND t.as_of = p.as_of AND t.as_of > $after
            AND t.output IS NOT DISTINCT FROM p.output
            AND t.output IS NOT DISTINCT FROM $output
        """,
        {"stages": list(STAGES), "after": after, "output": output},
    )


def record(path: Path, scores: pd.DataFrame, run_id: str, output: str | None = None) -> int:
    """Append one publication to the output folder ``output`` (see :func:`output_key`); its
    rows of the same ``as_of`` are replaced. Returns rows written.

    Later publications' ``previous_stage`` and ``movement`` are recomputed when an earlier
    date is re-published. All in one transaction, under ``<history>.lock``.

    Raises
    ------
    LockedError
        When another process writes the history (or holds the file open).
    WriteError
        When the file cannot be written (full disk, permissions), naming it.
    """
    frame = scores.copy()
    frame["account_id"] = frame["account_id"].astype(str)
    frame["as_of"] = pd.to_datetime(frame["as_of"]).dt.date
    frame["run_id"] = run_id
    frame["published_at"] = pd.Timestamp.now(tz="UTC").tz_localize(None)
    frame["output"] = pd.Series([output] * len(frame), index=frame.index, dtype=object)
    with locked(Path(path), "the score history"), naming_path(path):
        return _record(path, frame, output)


def _record(path: Path, frame: pd.DataFrame, output: str | None) -> int:
    as_of_values = sorted(set(frame["as_of"]))
    con = _connect(path)
    try:
        con.register("incoming", frame)
        con.execute("BEGIN TRANSACTION")
        types = _ensure_table(con, _types(con, "incoming"))
        scope, params = _same_output(output)
        for day in as_of_values:
            con.execute(f"DELETE FROM {TABLE} WHERE as_of = ? AND {scope}", [day, *params])
        shared = [c for c in frame.columns if c in types]
        names = ", ".join(_ident(c) for c in shared)
        values = ", ".join(f"CAST({_ident(c)} AS {types[c]})" for c in shared)
        con.execute(f"INSERT INTO {TABLE} ({names}) SELECT {values} FROM incoming")
        if {"stage", "previous_stage", "movement"} <= set(types) and as_of_values:
            _rechain(con, as_of_values[0], output)
        con.execute("COMMIT")
        con.unregister("incoming")
    except BaseException:
        with contextlib.suppress(duckdb.Error):  # nothing to roll back
            con.execute("ROLLBACK")
        raise
    finally:
        con.close()
    return len(frame)


def account_history(path: Path, account_id: str, output: str | None = None) -> pd.DataFrame | None:
    """One account's publications, newest first (the columns of :data:`SHOWN` the history
    has, a missing one as null); None when there is no history file or table at all.

    ``output`` (see :func:`output_key`) keeps the rows of one output folder; None keeps all.
    """
    con = _connect(path, read_only=True)
    if con is None:
        return None
    try:
        if not _has_table(con):
            return None
        present = _types(con, TABLE)
        cols = ", ".join(_ident(c) if c in present else f"NULL AS {_ident(c)}" for c in SHOWN)
        order = "as_of DESC" + (", published_at DESC" if "published_at" in present else "")
        scope, params = ("TRUE", [])
        if output is not None and "output" in present:
            scope, params = _same_output(output)
        return con.execute(
            f"SELECT {cols} FROM {TABLE} WHERE account_id = ? AND {scope} ORDER BY {order}",
            [str(account_id), *params],
        ).df()
    finally:
        con.close()


def history_table(rows: pd.DataFrame) -> str:
    """The publications as an aligned text table (``-`` for a missing value)."""

    def cell(column: str, value) -> str:
        if value is None or (not isinstance(value, str) and pd.isna(value)):
            return "-"
        if column == "as_of":
            return str(pd.Timestamp(value).date())
        if column == "retention_probability":
            return f"{float(value):.3f}"
        return str(value)

    header = list(SHOWN)
    body = [[cell(c, row[c]) for c in SHOWN] for _, row in rows.iterrows()]
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(SHOWN))]
    numeric = {SHOWN.index("retention_probability")}

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in numeric else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, body)])
