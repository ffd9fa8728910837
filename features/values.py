"""Small value conversions every layer shares, each with one behaviour.

- :func:`naive_utc`: a timestamp as naive UTC (the one form ``as_of`` travels in).
- :func:`jsonable`: any value as plain JSON (numpy unwrapped, NaN and NaT as ``None``).
- :func:`engine_of`: the engine (``duckdb`` or ``spark``) behind an Ibis connection.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

ENGINES = ("duckdb", "spark")


def naive_utc(value: Any) -> dt.datetime | None:
    """``value`` (datetime, date, pandas Timestamp or ISO text) as a naive UTC datetime.

    A value without a zone is taken as UTC already; an aware one is converted. ``None`` and
    missing values (NaT) give ``None``.
    """
    if value is None:
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if hasattr(value, "to_pydatetime"):  # pandas Timestamp; NaT compares unequal to itself
        if value != value:
            return None
        value = value.to_pydatetime()
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return dt.datetime(value.year, value.month, value.day)
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def jsonable(value: Any) -> Any:
    """Plain JSON values: mappings and sequences walked, numpy scalars unwrapped, NaN,
    infinities, NaT and NA as ``None``, dates as ISO text, anything else as its text."""
    if value is None or isinstance(value, str | bool):
        return value
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset) or type(value).__name__ == "ndarray":
        return [jsonable(v) for v in value]
    if isinstance(value, int):
        return value
    if isinstance(value, float | Decimal):
        f = float(value)
        return f if math.isfinite(f) else None
    if isinstance(value, dt.datetime | dt.date):
        return None if value != value else value.isoformat()  # NaT is unequal to itself
    if hasattr(value, "item") and not hasattr(value, "__len__"):  # numpy scalars
        return jsonable(value.item())
    try:
        if value != value:  # NaT, NA
            return None
    except (TypeError, ValueError):  # pd.NA refuses to be a bool
        return None
    return str(value)


def engine_of(con: Any) -> str:
    """``duckdb`` or ``spark``: the engine of an Ibis backend (its ``name``)."""
    name = getattr(con, "name", None)
    if name == "pyspark":
        return "spark"
    if name not in ENGINES:
        raise ValueError(f"unsupported engine {name!r}: expected one of {', '.join(ENGINES)}")
    return name
