"""The source's own column names and epoch timestamps, made the data contract's at read time.

Two settings of the configuration's ``data`` section, applied to the raw tables right after
they are read (before validation, so rules, messages and everything downstream see the
contract's names and timestamp columns):

- ``data.columns``: contract column -> the source's column name, in one of two forms. Flat,
  ``{account_id: org_id, occurred_at: ts, event: name}``: one mapping serves both tables, a
  key is applied to each table whose contract has that column (``account_id`` to both). Per
  table, ``{accounts: {account_id: id}, events: {account_id: org_id, occurred_at: ts}}``: each
  table has its own mapping (a table left out keeps its names), for sources whose tables name
  the same contract column differently. Renaming is an Ibis ``select`` of the columns under
  their new names; no SQL text is built.
- ``data.timestamps``: contract timestamp column -> ``seconds``, ``milliseconds`` or ``iso``
  (the default: a timestamp, a date or ISO 8601 text). A numeric column, or CSV text, of epoch
  seconds or milliseconds becomes a naive UTC timestamp.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import ibis
import ibis.expr.datatypes as idt
from ibis.expr.types import Table, Value

from features.io import ACCOUNT_COLUMNS, EVENT_COLUMNS, TIMESTAMP_COLUMNS, epoch_as_timestamp

CONTRACT_COLUMNS = {"accounts": ACCOUNT_COLUMNS, "events": EVENT_COLUMNS}
TIMESTAMP_UNITS = ("iso", "seconds", "milliseconds")
# the epochs of 0001-01-01 and 9999-12-31T23:59:59 in seconds: the range every engine holds
_EPOCH_RANGE_SECONDS = (-62_135_596_800, 253_402_300_799)
_PER_SECOND = {"seconds": 1, "milliseconds": 1_000}


def table_mappings(columns: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """``data.columns`` in either form as one mapping per table: ``{accounts: {...}, events:
    {...}}`` (contract column -> source column).

    Raises
    ------
    ValueError
        When the two forms are mixed, a per-table key is not ``accounts`` or ``events``, or a key
        is not a contract column (of that table, in the per-table form).
    """
    nested = [key for key, value in columns.items() if isinstance(value, Mapping)]
    if not nested:
        known = dict.fromkeys([*ACCOUNT_COLUMNS, *EVENT_COLUMNS])
        unknown = [k for k in columns if k not in known]
        if unknown:
            raise ValueError(
                f"unknown contract column {', '.join(repr(k) for k in unknown)} (the keys are "
                f"contract columns: {', '.join(known)}; the values the source's column names; "
                "or, per table, {accounts: {...}, events: {...}})"
            )
        return {
            table: {k: str(v) for k, v in columns.items() if k in contract}
            for table, contract in CONTRACT_COLUMNS.items()
        }
    if len(nested) != len(columns):
        flat = [key for key in columns if key not in nested]
        raise ValueError(
            f"mixes the two forms ({', '.join(flat)} flat, {', '.join(nested)} per table): write "
            "either {contract column: source column} for both tables, or {accounts: {...}, "
            "events: {...}}"
        )
    tables = [k for k in columns if k not in CONTRACT_COLUMNS]
    if tables:
        raise ValueError(
            f"unknown table {', '.join(repr(k) for k in tables)} in the per-table form (the "
            "tables: accounts, events)"
        )
    out = {}
    for table, contract in CONTRACT_COLUMNS.items():
        mapping = dict(columns.get(table) or {})
        unknown = [k for k in mapping if k not in contract]
        if unknown:
            raise ValueError(
                f"{table}: {', '.join(repr(k) for k in unknown)} is not a column of the {table} "
                f"contract (its columns: {', '.join(contract)})"
            )
        out[table] = {k: str(v) for k, v in mapping.items()}
    return out


def _key_path(columns: Mapping[str, Any], table: str, key: str) -> str:
    """The configuration key of a mapped column: ``data.columns[.table].key``."""
    nested = any(isinstance(v, Mapping) for v in columns.values())
    return f"data.columns.{table}.{key}" if nested else f"data.columns.{key}"


def check_column_mapping(columns: Mapping[str, Any]) -> None:
    """``data.columns`` (flat or per table): keys are contract columns; no table takes one
    source column twice.

    Raises
    ------
    ValueError
        Naming the unknown keys (and the contract's columns), an empty source name, the keys
        that map one table's columns to the same source column, or a mix of the two forms.
    """
    per_table = table_mappings(columns)
    for table, mapping in per_table.items():
        empty = [k for k, v in mapping.items() if not v.strip()]
        if empty:
            raise ValueError(f"an empty source column name for {', '.join(empty)}")
        by_source: dict[str, list[str]] = {}
        for key, source in mapping.items():
            by_source.setdefault(source, []).append(key)
        for source, keys in by_source.items():
            if len(keys) > 1:
                raise ValueError(
                    f"{' and '.join(keys)} are both mapped to the {table} column '{source}'"
                )


def check_timestamp_units(units: Mapping[str, str]) -> None:
    """``data.timestamps``: keys are the contract's timestamp columns.

    Raises
    ------
    ValueError
        Naming the keys that are not timestamp columns of the contract, or a unit that is
        not one of ``iso``, ``seconds``, ``milliseconds``.
    """
    known = [c for cols in TIMESTAMP_COLUMNS.values() for c in cols]
    unknown = [k for k in units if k not in known]
    if unknown:
        raise ValueError(
            f"not a timestamp column of the contract: {', '.join(repr(k) for k in unknown)} "
            f"(the timestamp columns: {', '.join(known)})"
        )
    wrong = [f"{k}: {v!r}" for k, v in units.items() if v not in TIMESTAMP_UNITS]
    if wrong:
        raise ValueError(f"expected {' or '.join(TIMESTAMP_UNITS)}, got {', '.join(wrong)}")


def rename_columns(raw: Table, table: str, columns: Mapping[str, Any]) -> Table:
    """``raw`` with the mapped source columns under their contract names (order kept).

    ``columns`` is ``data.columns`` in either form (flat or per table).

    Raises
    ------
    ValueError
        When a mapped source column is absent from ``raw``, or when a column of ``raw`` already
        bears the contract name a source column is mapped to.
    """
    mapped = table_mappings(columns)[table]
    renamed = {source: key for key, source in mapped.items() if source != key}
    have = list(raw.columns)
    for key, source in mapped.items():
        if source not in have:
            shown = ", ".join(have[:30]) + (", ..." if len(have) > 30 else "")
            raise ValueError(
                f"{_key_path(columns, table, key)}: the {table} table has no column '{source}' "
                f"to read as '{key}' (its columns: {shown})"
            )
    for source, key in renamed.items():
        if key in have and key not in renamed:
            raise ValueError(
                f"{_key_path(columns, table, key)}: the {table} table has a column '{key}' "
                f"besides '{source}', which is mapped to '{key}': drop or rename one of them in "
                f"the source, or map '{key}' to another name"
            )
    if not renamed:
        return raw
    return raw.select(*[raw[c].name(renamed.get(c, c)) for c in have])


def _epoch_number(col: Value) -> Value:
    """The column as a number: text is trimmed and parsed (an empty text is missing)."""
    if col.type().is_string():
        trimmed = col.strip()
        return ibis.ifelse(trimmed == "", ibis.null(idt.float64), trimmed.try_cast(idt.float64))
    return col


def _epoch_columns(raw: Table, table: str, units: Mapping[str, str]) -> dict[str, str]:
    """The columns of ``raw`` to read as epoch numbers, with their units."""
    out = {}
    for column in TIMESTAMP_COLUMNS[table]:
        unit = units.get(column, "iso")
        if unit == "iso" or column not in raw.columns:
            continue
        dtype = raw[column].type()
        if dtype.is_string() or dtype.is_numeric():
            out[column] = unit  # a timestamp, date or other type is left to validation
    return out


def check_epoch_values(raw: Table, table: str, epoch: Mapping[str, str]) -> None:
    """Every present value of an epoch column is a number within the years 1 to 9999.

    One aggregate query over ``raw``.

    Raises
    ------
    ValueError
        Naming the key, the table, the column, how many values break it and an example.
    """
    if not epoch:
        return
    checks = {}
    for column, unit in epoch.items():
        col = raw[column]
        number = _epoch_number(col)
        lo, hi = (bound * _PER_SECOND[unit] for bound in _EPOCH_RANGE_SECONDS)
        if col.type().is_string():
            present = col.notnull() & (col.strip() != "")
            text = col
        else:
            present = col.notnull()
            text = col.cast("string")
        # NaN compares false both ways: it is out of range too
        bad = present & ~((number >= lo) & (number <= hi)).fill_null(False)
        checks[f"{column}__n"] = bad.cast("int64").sum()
        checks[f"{column}__example"] = ibis.ifelse(bad, text, ibis.null(idt.string)).min()
    row = raw.aggregate(**checks).execute().iloc[0]
    for column, unit in epoch.items():
        count = row[f"{column}__n"]
        if count is None or count != count or int(count) == 0:
            continue
        hint = "" if unit == "milliseconds" else " (milliseconds?)"
        raise ValueError(
            f"data.timestamps.{column}: {int(count):,} value(s) of {table}.{column} are not "
            f"epoch {unit} within the years 1 to 9999{hint}, for example "
            f"{row[f'{column}__example']!r}"
        )


def epoch_timestamps(raw: Table, table: str, units: Mapping[str, str]) -> Table:
    """``raw`` with its epoch-number timestamp columns as naive UTC timestamps.

    A column configured ``seconds`` or ``milliseconds`` that holds numbers or text (CSV) is
    checked (:func:`check_epoch_values`) and converted; an empty text is a missing value.
    """
    epoch = _epoch_columns(raw, table, units)
    if not epoch:
        return raw
    check_epoch_values(raw, table, epoch)
    return raw.mutate(
        **{c: epoch_as_timestamp(_epoch_number(raw[c]), unit) for c, unit in epoch.items()}
    )


def contract_inputs(
    accounts_raw: Table,
    events_raw: Table,
    *,
    columns: Mapping[str, Any] | None = None,
    timestamps: Mapping[str, str] | None = None,
) -> tuple[Table, Table]:
    """Both raw tables with the contract's column names and epoch columns as timestamps.

    Raises
    ------
    ValueError
        A mapping that names an unknown contract column or a missing source column, a source
        column whose new name collides with another column, or an epoch column holding a
        value that is not an epoch number of its unit (each message names the key).
    """
    columns, timestamps = dict(columns or {}), dict(timestamps or {})
    check_column_mapping(columns)
    check_timestamp_units(timestamps)
    tables = []
    for table, raw in (("accounts", accounts_raw), ("events", events_raw)):
        raw = rename_columns(raw, table, columns)
        tables.append(epoch_timestamps(raw, table, timestamps))
    return tables[0], tables[1]
