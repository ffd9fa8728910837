"""Tests of models.stats: the shared checks and statistics, on tiny hand-made inputs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from models import defaults
from models.stats import (
    binary,
    flag,
    fmt_number,
    make_rng,
    num,
    ratio,
    require_columns,
    risk_ratio,
    to_float,
    z_value,
)

Z95 = 1.959963984540054  # the two-sided 95% normal quantile

# --------------------------------------------------------------------------- checks


def test_require_columns_names_the_frame_and_every_missing_column():
    frame = pd.DataFrame({"a": [1], "b": [2]})
    require_columns(frame, "tenure", ["a", "b"])  # all present: no error
    with pytest.raises(ValueError, match=r"^tenure is missing column 'labelled'$"):
        require_columns(frame, "tenure", ["a", "labelled"])
    with pytest.raises(ValueError, match=r"^snapshots is missing columns 'x', 'y'$"):
        require_columns(frame, "snapshots", ["x", "a", "y", "x"])
    with pytest.raises(TypeError, match="flags must be a pandas DataFrame, got dict"):
        require_columns({"a": [1]}, "flags", ["a"])


def test_flag_counts_missing_values_as_false_and_never_invents_a_column():
    frame = pd.DataFrame({"done": pd.array([True, None, False], dtype="boolean")})
    assert flag(frame, "done").tolist() == [True, False, False]
    assert flag(frame, "done").dtype == bool
    with pytest.raises(ValueError, match="tenure is missing column 'labelled'"):
        flag(frame, "labelled", "tenure")


def test_to_float_and_binary():
    assert to_float(pd.Series([1, None], dtype="Int64"), "x").tolist()[0] == 1.0
    assert np.isnan(to_float(pd.Series([True, None], dtype="boolean"), "x")[1])
    assert to_float(pd.Series([True, False]), "x").tolist() == [1.0, 0.0]
    with pytest.raises(ValueError, match="metric must be numeric"):
        to_float(pd.Series(["a"]), "metric")
    with pytest.raises(ValueError, match="one-dimensional"):
        to_float(np.zeros((2, 2)), "metric")
    assert binary([True, False, 1], "y").tolist() == [1.0, 0.0, 1.0]
    with pytest.raises(ValueError, match=r"y must be binary \(0/1 or bool\), found values 0.5, 2$"):
        binary([0, 2, 0.5], "y")
    with pytest.raises(ValueError, match="y has 1 missing"):
        binary([0, None], "y")


# --------------------------------------------------------------------------- numbers


def test_num_ratio_and_fmt_number():
    assert num(None) is None and num(float("nan")) is None and num(math.inf) is None
    assert num(pd.NA) is None and num("not a number") is None
    assert num(np.float64(3.0), integral=True) == 3 and isinstance(num(3.0, True), int)
    assert isinstance(num(3.0), float) and num(2.5, integral=True) == 2.5
    assert ratio(3, 4) == 0.75
    assert ratio(3, 0) is None and ratio(None, 2) is None and ratio(1, None) is None
    assert fmt_number(None) == "?"
    assert fmt_number(12.0) == "12" and fmt_number(2.34567) == "2.35"


# --------------------------------------------------------------------------- statistics


def test_z_value_and_its_check():
    assert z_value(0.95) == pytest.approx(Z95)
    assert z_value(0.90) == pytest.approx(1.6448536269514722)
    for bad in (0.0, 1.0, 95):
        with pytest.raises(ValueError, match="confidence must be in"):
            z_value(bad)


def test_make_rng_accepts_every_kind_of_seed():
    assert make_rng(7).integers(1000) == np.random.default_rng(7).integers(1000)
    gen = np.random.default_rng(1)
    assert make_rng(gen) is gen
    a = make_rng(np.random.RandomState(3)).integers(1000)
    assert a == make_rng(np.random.RandomState(3)).integers(1000)
    assert isinstance(make_rng(None), np.random.Generator)


def test_risk_ratio_katz_interval_by_hand():
    # 30 of 40 exposed and 20 of 50 unexposed have the outcome: RR = 0.75 / 0.4 = 1.875,
    # var(log RR) = 1/30 - 1/40 + 1/20 - 1/50 = 0.038333...
    rr, low, high = risk_ratio(30, 40, 20, 50)
    var = 1 / 30 - 1 / 40 + 1 / 20 - 1 / 50
    assert var == pytest.approx(0.0383333333)
    assert rr == pytest.approx(1.875)
    assert low == pytest.approx(1.875 * math.exp(-Z95 * math.sqrt(var)))
    assert high == pytest.approx(1.875 * math.exp(Z95 * math.sqrt(var)))
    assert (low, high) == pytest.approx((1.2775, 2.7521), abs=1e-4)
    assert isinstance(rr, float)
    # a narrower level gives a narrower interval
    _, low90, high90 = risk_ratio(30, 40, 20, 50, confidence=0.90)
    assert low < low90 < rr < high90 < high


def test_risk_ratio_zero_cell_rule():
    # A zero cell (here: no unexposed row has the outcome) adds 0.5 to every cell for the
    # interval: (10.5 / 21) / (0.5 / 11) = 11, var = 1/10.5 - 1/21 + 1/0.5 - 1/11.
    rr, low, high = risk_ratio(10, 20, 0, 10)
    assert math.isnan(rr)  # the observed ratio does not exist (reference rate 0)
    half = Z95 * math.sqrt(1 / 10.5 - 1 / 21 + 1 / 0.5 - 1 / 11)
    assert (low, high) == pytest.approx((11 * math.exp(-half), 11 * math.exp(half)))
    # every exposed row has the outcome (the cell n1 - a1 is zero): corrected too
    rr, low, high = risk_ratio(4, 4, 2, 4)
    half = Z95 * math.sqrt(1 / 4.5 - 1 / 5 + 1 / 2.5 - 1 / 5)
    assert rr == pytest.approx(2.0)
    c = (4.5 / 5) / (2.5 / 5)
    assert (low, high) == pytest.approx((c * math.exp(-half), c * math.exp(half)))
    # no exposed outcome: the estimate is 0, the interval is around (0.5/6) / (3.5/6) = 1/7
    rr, low, high = risk_ratio(0, 5, 3, 5)
    half = Z95 * math.sqrt(1 / 0.5 - 1 / 6 + 1 / 3.5 - 1 / 6)
    assert rr == 0.0
    assert (low, high) == pytest.approx((math.exp(-half) / 7, math.exp(half) / 7))
    # a side without rows: nothing exists
    assert all(math.isnan(v) for v in risk_ratio(0, 0, 3, 5))
    assert all(math.isnan(v) for v in risk_ratio(2, 5, 0, 0))


def test_risk_ratio_is_vectorised_with_the_same_rule():
    rr, low, high = risk_ratio(np.array([30, 10]), np.array([40, 20]), [20, 0], [50, 10])
    assert isinstance(rr, np.ndarray) and rr.shape == (2,)
    one = risk_ratio(30, 40, 20, 50)
    zero = risk_ratio(10, 20, 0, 10)
    assert [rr[0], low[0], high[0]] == pytest.approx(list(one))
    assert np.isnan(rr[1]) and [low[1], high[1]] == pytest.approx(list(zero[1:]))
    # broadcasting: bootstrap replicates in rows, candidates in columns
    _, low2, _ = risk_ratio(np.array([[30, 10]]), [40, 20], [[20, 0], [20, 0]], [50, 10])
    assert low2.shape == (2, 2)
    assert low2[1].tolist() == pytest.approx(low.tolist())


def test_defaults_hold_each_shared_value_once():
    assert defaults.CONFIDENCE == 0.95
    assert defaults.N_BOOTSTRAP == 200
    assert defaults.MIN_SIDE_SHARE == 0.05
    assert defaults.PREVALENCE_BAND == (0.05, 0.90)
    assert defaults.MIN_IMPORTANCE == 0.002
