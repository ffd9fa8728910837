"""Shared statistics and input checks of :mod:`models`, each with one behaviour.

Checks and conversions:

- :func:`require_columns`: a frame has the columns a function reads (one clear error);
- :func:`flag`: a bool column as a numpy array, missing values counting as False;
- :func:`to_float` and :func:`binary`: numeric and 0/1 arrays, or an error naming the input;
- :func:`num`, :func:`ratio` and :func:`fmt_number`: plain numbers (``None`` where a value
  does not exist) and their text in rule sentences.

Statistics:

- :func:`z_value`: the two-sided normal quantile of a confidence level;
- :func:`make_rng`: a numpy Generator from any seed;
- :func:`risk_ratio`: the risk ratio of a 2x2 table with its Katz (log-scale) interval and
  the one zero-cell rule of the package;
- :func:`p_from_log_interval`: the two-sided p-value of "ratio = 1" read off a log-scale
  interval (below ``1 - confidence`` exactly when the interval excludes 1);
- :func:`bh_qvalues`: Benjamini-Hochberg adjusted p-values (q-values) over a family of tests.

JSON conversion is :func:`features.values.jsonable`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from models.defaults import CONFIDENCE

__all__ = [
    "bh_qvalues",
    "binary",
    "flag",
    "fmt_number",
    "make_rng",
    "num",
    "p_from_log_interval",
    "ratio",
    "require_columns",
    "risk_ratio",
    "to_float",
    "z_value",
]


# --------------------------------------------------------------------------- checks


def require_columns(frame: pd.DataFrame, name: str, columns: Iterable[str]) -> None:
    """Raise unless ``frame`` is a DataFrame holding every one of ``columns``.

    Parameters
    ----------
    frame : DataFrame
        The input to check.
    name : str
        What the caller calls it (``tenure``, ``snapshots``...), for the message.
    columns : iterable of str
        The columns the caller reads.

    Raises
    ------
    TypeError
        When ``frame`` is not a pandas DataFrame.
    ValueError
        When columns are missing: one error naming ``name`` and every missing column, for
        example ``tenure is missing column 'labelled'``.
    """
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"{name} must be a pandas DataFrame, got {type(frame).__name__}")
    missing = [c for c in dict.fromkeys(columns) if c not in frame.columns]
    if missing:
        plural = "s" if len(missing) > 1 else ""
        listed = ", ".join(f"'{c}'" for c in missing)
        raise ValueError(f"{name} is missing column{plural} {listed}")


def flag(frame: pd.DataFrame, column: str, name: str = "frame") -> np.ndarray:
    """A bool column as a numpy bool array, missing values counting as False.

    A missing column raises (see :func:`require_columns`); it never reads as all True.
    """
    require_columns(frame, name, [column])
    return frame[column].fillna(False).astype(bool).to_numpy()


def to_float(values: Any, name: str) -> np.ndarray:
    """A 1-D float array (NaN for missing), or a ValueError naming ``name``.

    Accepts numbers, booleans (nullable ones too) and object columns holding them.
    """
    if isinstance(values, pd.Series | pd.Index):
        try:
            if values.dtype == object or values.dtype == bool or str(values.dtype) == "boolean":
                values = values.astype("Float64")
            arr = values.to_numpy(dtype=float, na_value=np.nan)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"{name} must be numeric or boolean, got dtype {values.dtype}: {exc}"
            ) from exc
    else:
        try:
            arr = np.asarray(values, dtype=float)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name} must be numeric or boolean: {exc}") from exc
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    return arr


def binary(values: Any, name: str) -> np.ndarray:
    """A 1-D array of 0.0/1.0, or a ValueError naming ``name`` and what is wrong."""
    arr = to_float(values, name)
    n_missing = int(np.isnan(arr).sum())
    if n_missing:
        raise ValueError(f"{name} has {n_missing} missing (NaN) values; expected 0/1 or bool")
    bad = np.unique(arr[(arr != 0.0) & (arr != 1.0)])
    if bad.size:
        shown = ", ".join(fmt_number(v) for v in bad[:5])
        raise ValueError(f"{name} must be binary (0/1 or bool), found values {shown}")
    return arr


# --------------------------------------------------------------------------- numbers


def num(value: Any, integral: bool = False) -> int | float | None:
    """A plain number, or None when it does not exist (None, NaN, infinite, not a number).

    With ``integral``, a whole number comes back as an int.
    """
    if value is None:
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(f):
        return None
    if integral and f.is_integer():
        return int(f)
    return f


def ratio(a: float | None, b: float | None) -> float | None:
    """``a / b`` as a float, None when either is None or ``b`` is zero."""
    if a is None or b is None or not b:
        return None
    return float(a) / float(b)


def fmt_number(value: float | None) -> str:
    """A number for a sentence: whole numbers plainly, others to 3 significant digits;
    ``?`` for None."""
    if value is None:
        return "?"
    f = float(value)
    return str(int(f)) if f.is_integer() else f"{f:.3g}"


# --------------------------------------------------------------------------- statistics


def z_value(confidence: float) -> float:
    """The two-sided standard normal quantile of ``confidence`` (1.96 at 0.95).

    Raises
    ------
    ValueError
        When ``confidence`` is not in (0, 1).
    """
    if not 0.0 < float(confidence) < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    return float(stats.norm.ppf(0.5 + float(confidence) / 2.0))


def make_rng(random_state: Any) -> np.random.Generator:
    """A numpy Generator from None, an int, a SeedSequence, a Generator or a RandomState."""
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(0, 2**31 - 1))
    return np.random.default_rng(random_state)


def risk_ratio(a1: Any, n1: Any, a0: Any, n0: Any, confidence: float = CONFIDENCE) -> tuple:
    """Risk ratio ``(a1 / n1) / (a0 / n0)`` with its Katz interval, vectorised.

    ``a1`` of ``n1`` exposed rows and ``a0`` of ``n0`` unexposed rows have the outcome (for
    example: retained among a feature's users and among its non-users). The interval is
    Katz's, on the log scale: ``log RR +- z * sqrt(1/a1 - 1/n1 + 1/a0 - 1/n0)``.

    **Zero-cell rule** (the one rule of the package): when any of the four cells ``a1``,
    ``n1 - a1``, ``a0``, ``n0 - a0`` is zero, the interval is computed with 0.5 added to
    every cell (Haldane-Anscombe: ``a + 0.5`` of ``n + 1`` on each side), so it is finite
    whenever both sides have rows. The estimate stays the observed ratio of the two rates;
    it does not exist (NaN) when ``a0 == 0``. Everything is NaN when a side has no rows.

    Parameters
    ----------
    a1, n1, a0, n0 : number or array-like
        Counts (broadcast together).
    confidence : float, default 0.95
        Level of the interval.

    Returns
    -------
    (rr, low, high)
        Floats for scalar counts, arrays of the broadcast shape otherwise.
    """
    z = z_value(confidence)
    scalar = all(np.ndim(v) == 0 for v in (a1, n1, a0, n0))
    a1, n1, a0, n0 = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (a1, n1, a0, n0)))
    with np.errstate(invalid="ignore", divide="ignore"):
        rr = (a1 / n1) / (a0 / n0)
        zero = (a1 == 0) | (a1 == n1) | (a0 == 0) | (a0 == n0)
        half = np.where(zero, 0.5, 0.0)
        c1, d1, c0, d0 = a1 + half, n1 + 2 * half, a0 + half, n0 + 2 * half
        log_rr = np.log((c1 / d1) / (c0 / d0))
        se = np.sqrt(np.maximum(1 / c1 - 1 / d1 + 1 / c0 - 1 / d0, 0.0))
        low = np.exp(log_rr - z * se)
        high = np.exp(log_rr + z * se)
    empty = (n1 <= 0) | (n0 <= 0)
    rr = np.where(empty | ~np.isfinite(rr), np.nan, rr)
    low = np.where(empty, np.nan, low)
    high = np.where(empty, np.nan, high)
    if scalar:
        return float(rr), float(low), float(high)
    return rr, low, high


def p_from_log_interval(low: Any, high: Any, confidence: float = CONFIDENCE) -> np.ndarray:
    """Two-sided p-value of ``ratio = 1`` from a log-scale (normal) interval, vectorised.

    The interval ``(low, high)`` of a ratio at level ``confidence`` is taken as
    ``exp(m +- z se)``: ``m`` is the middle of the log bounds, ``se`` their half-width over
    ``z``, and ``p = 2 (1 - Phi(|m| / se))``. So ``p < 1 - confidence`` exactly when the
    interval excludes 1 (whatever zero-cell rule made it). NaN where a bound is missing or
    not positive, or the interval has no width.
    """
    z = z_value(confidence)
    lo = np.asarray(low, dtype=float)
    hi = np.asarray(high, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        log_lo, log_hi = np.log(lo), np.log(hi)
        mid = (log_lo + log_hi) / 2.0
        se = (log_hi - log_lo) / (2.0 * z)
        p = 2.0 * stats.norm.sf(np.abs(mid) / se)
    ok = np.isfinite(log_lo) & np.isfinite(log_hi) & (se > 0)
    return np.where(ok, p, np.nan)


def bh_qvalues(p_values: Any) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values); NaN stays NaN and is not counted.

    ``q_(i) = min_{j >= i} p_(j) m / j`` over the ``m`` finite p-values sorted ascending
    (capped at 1). Calling a test significant when its q-value is below ``alpha`` keeps the
    expected share of false discoveries among the significant tests at or below ``alpha``
    (Benjamini & Hochberg 1995; independent or positively dependent tests).
    """
    p = np.asarray(p_values, dtype=float).ravel()
    q = np.full(p.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    m = finite.size
    if not m:
        return q
    order = finite[np.argsort(p[finite], kind="stable")]
    scaled = p[order] * m / np.arange(1, m + 1)
    q[order] = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1.0)
    return q
