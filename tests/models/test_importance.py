"""Tests of models.importance: grouped importance, lift by plan, verdicts and the ranking."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from planted import make_snapshots
from scipy.stats import norm

from models.adoption import adoption_table, mantel_haenszel_risk_ratio
from models.importance import (
    IMPORTANCE_COLUMNS,
    VERDICTS,
    assign_verdicts,
    grouped_permutation_importance,
    impurity_importance,
    rank_features,
    shap_importance,
)
from models.splits import out_of_time_split
from models.stats import risk_ratio
from models.training import RetentionModels

EVENTS = ["common", "driver", "niche", "noise", "plan_proxy"]


@pytest.fixture(scope="module")
def snapshots():
    return make_snapshots(plan_proxy=True)


@pytest.fixture(scope="module")
def split(snapshots):
    return out_of_time_split(snapshots, test_snapshots=3)


@pytest.fixture(scope="module")
def fitted(split):
    return RetentionModels(n_estimators=40, random_state=0, n_jobs=1).fit(split[0])


def _rank(fitted, split, snapshots):
    return rank_features(
        fitted,
        split[1],
        snapshots,
        n_repeats=3,
        max_rows=2000,
        shap_rows=300,
        lift_snapshots=1,
        random_state=0,
    )


@pytest.fixture(scope="module")
def ranking(fitted, split, snapshots):
    return _rank(fitted, split, snapshots)


# --------------------------------------------------------------------------- ranking


def test_planted_features_get_their_verdicts(ranking):
    verdict = ranking.set_index("feature")["verdict"]
    assert verdict["driver"] == "milestone_candidate"
    assert verdict["niche"] in ("niche", "confounded")
    assert verdict["common"] == "table_stakes"
    assert verdict["noise"] == "no_signal"
    assert verdict["plan_proxy"] == "confounded"


def test_ranking_has_the_importance_csv_columns_and_one_row_per_feature(ranking):
    assert list(ranking.columns) == IMPORTANCE_COLUMNS
    assert sorted(ranking["feature"]) == EVENTS
    assert ranking["importance_rank"].tolist() == list(range(1, len(EVENTS) + 1))
    assert ranking.iloc[0]["feature"] == "driver"
    assert ranking["verdict"].isin(VERDICTS).all()
    assert (ranking["reason"].str.len() > 20).all()
    row = ranking.set_index("feature").loc["driver"]
    assert row["stratified_lift_low"] > 1.0
    assert row["retention_lift_low"] <= row["retention_lift"] <= row["retention_lift_high"]
    assert row["shap_gbm"] == ranking["shap_gbm"].max()
    assert ranking["importance_rf_std"].ge(0).all()


def test_ranking_is_deterministic(ranking, fitted, split, snapshots):
    pd.testing.assert_frame_equal(_rank(fitted, split, snapshots), ranking)
    refitted = RetentionModels(n_estimators=40, random_state=0, n_jobs=1).fit(split[0])
    pd.testing.assert_frame_equal(_rank(refitted, split, snapshots), ranking)


def test_rank_features_checks_its_events(fitted, split, snapshots):
    with pytest.raises(ValueError, match="feature 'unknown' is not in the fitted models"):
        rank_features(fitted, split[1], snapshots, events=["unknown"])
    with pytest.raises(ValueError, match="fitted RetentionModels"):
        rank_features(RetentionModels(), split[1], snapshots)


# --------------------------------------------------------------------------- importances


def test_permutation_permutes_a_feature_columns_jointly_and_ignores_unused_ones():
    rng = np.random.default_rng(0)
    n = 400
    signal = rng.normal(size=n)
    y = (signal + rng.normal(scale=0.5, size=n) > 0).astype(int)
    X = pd.DataFrame(
        {"a__count": signal, "a__days": 2 * signal, "b__used": rng.integers(0, 2, n).astype(float)}
    )
    seen = []

    def predict(frame: pd.DataFrame) -> np.ndarray:
        seen.append(frame.copy())
        return frame["a__count"].to_numpy()

    out = grouped_permutation_importance(
        predict,
        X,
        y,
        {"a": ["a__count", "a__days"], "b": ["b__used"]},
        n_repeats=4,
        random_state=0,
        max_rows=None,
    )
    assert list(out.columns) == ["feature", "mean", "std"]
    assert out["feature"].tolist() == ["a", "b"]
    assert out.loc[0, "mean"] > 0.2
    assert out.loc[1, "mean"] == 0.0 and out.loc[1, "std"] == 0.0
    for frame in seen:  # rows of one feature move together: the 2x relation survives
        np.testing.assert_allclose(frame["a__days"], 2 * frame["a__count"])
    assert len(seen) == 1 + 2 * 4
    with pytest.raises(ValueError, match="both classes"):
        grouped_permutation_importance(predict, X, np.ones(n), {"a": ["a__count"]})
    with pytest.raises(ValueError, match="missing column 'zz'"):
        grouped_permutation_importance(predict, X, y, {"a": ["zz"]})


def test_permutation_subsamples_rows_deterministically():
    rng = np.random.default_rng(1)
    X = pd.DataFrame({"a__count": rng.normal(size=3000)})
    y = (X["a__count"] + rng.normal(size=3000) > 0).astype(int).to_numpy()
    sizes = []

    def predict(frame):
        sizes.append(len(frame))
        return frame["a__count"].to_numpy()

    args = (predict, X, y, {"a": ["a__count"]})
    first = grouped_permutation_importance(*args, n_repeats=2, random_state=5, max_rows=500)
    second = grouped_permutation_importance(*args, n_repeats=2, random_state=5, max_rows=500)
    pd.testing.assert_frame_equal(first, second)
    assert set(sizes) == {500}


def test_shap_and_impurity_sum_a_feature_columns(fitted, split):
    X = fitted.matrix(split[1]).head(200)
    groups = fitted.groups_
    shap = shap_importance(fitted.gbm_, X, groups, max_rows=None).set_index("feature")
    contrib = fitted.gbm_.predict(X.to_numpy(), pred_contrib=True)
    # the contributions add up to the raw score, the last column is the bias
    np.testing.assert_allclose(
        contrib.sum(axis=1), fitted.gbm_.predict(X.to_numpy(), raw_score=True), rtol=1e-6
    )
    driver = [fitted.feature_names_in_.index(c) for c in groups["driver"]]
    assert shap.loc["driver", "mean_abs_shap"] == pytest.approx(
        np.abs(contrib[:, driver].sum(axis=1)).mean()
    )
    assert shap["mean_abs_shap"].idxmax() == "driver"
    impurity = impurity_importance(fitted.rf_, fitted.feature_names_in_, groups)
    expected = sum(
        fitted.rf_.feature_importances_[fitted.feature_names_in_.index(c)] for c in groups["niche"]
    )
    assert impurity.set_index("feature").loc["niche", "impurity_biased"] == pytest.approx(expected)


# --------------------------------------------------------------------------- lift


def _tiny_table() -> pd.DataFrame:
    """Newest date 2025-02-28: plan A has 4 users (3 retained) and 4 non-users (1 retained),
    plan B 2 users (2 retained) and 6 non-users (3 retained). Older and censored rows must be
    ignored."""

    def rows(plan, used, retained):
        return [(plan, used, r) for r in retained]

    data = (
        rows("A", 1, [1, 1, 1, 0])
        + rows("A", 0, [1, 0, 0, 0])
        + rows("B", 1, [1, 1])
        + rows("B", 0, [1, 1, 1, 0, 0, 0])
    )
    newest = pd.DataFrame(data, columns=["plan", "x__used", "retained"])
    newest["nobody__used"] = 0
    newest["snapshot_date"] = pd.Timestamp("2025-02-28")
    newest["censored"] = False
    older = newest.assign(snapshot_date=pd.Timestamp("2025-01-31"), retained=1 - newest["retained"])
    censored = newest.head(3).assign(
        snapshot_date=pd.Timestamp("2025-03-31"), censored=True, retained=None
    )
    out = pd.concat([older, newest, censored], ignore_index=True)
    out["retained"] = out["retained"].astype("Int64")
    return out


def test_mantel_haenszel_risk_ratio_by_hand():
    table = adoption_table(
        _tiny_table(), ["x", "nobody"], plan_col="plan", lift_snapshots=1
    ).set_index("feature")
    z = norm.ppf(0.975)
    # plan A: a=3, n1=4, c=1, n0=4, N=8;  plan B: a=2, n1=2, c=3, n0=6, N=8
    numerator = 3 * 4 / 8 + 2 * 6 / 8  # sum a*n0/N = 1.5 + 1.5
    denominator = 1 * 4 / 8 + 3 * 2 / 8  # sum c*n1/N = 0.5 + 0.75
    assert numerator / denominator == pytest.approx(2.4)
    # Greenland-Robins: sum (n1*n0*(a+c) - a*c*N) / N^2 = 40/64 + 12/64
    var = (40 / 64 + 12 / 64) / (numerator * denominator)
    x = table.loc["x"]
    assert x["stratified_lift"] == pytest.approx(2.4)
    assert x["stratified_lift_low"] == pytest.approx(2.4 * math.exp(-z * math.sqrt(var)))
    assert x["stratified_lift_high"] == pytest.approx(2.4 * math.exp(z * math.sqrt(var)))
    # crude: 5 of 6 users and 4 of 10 non-users retained
    crude_var = 1 / 5 - 1 / 6 + 1 / 4 - 1 / 10
    assert x["retention_lift"] == pytest.approx((5 / 6) / (4 / 10))
    crude = (5 / 6) / (4 / 10)
    assert x["retention_lift_low"] == pytest.approx(crude * math.exp(-z * math.sqrt(crude_var)))
    assert x["prevalence"] == pytest.approx(6 / 16)
    assert x["n_rows"] == 16 and x["n_strata"] == 2
    # nobody uses "nobody": no crash, undefined lifts
    nobody = table.loc["nobody"]
    assert nobody["prevalence"] == 0.0
    assert np.isnan(nobody["retention_lift"]) and np.isnan(nobody["stratified_lift"])


def test_risk_ratios_handle_zero_cells_and_one_stratum():
    assert risk_ratio(3, 4, 1, 4) == pytest.approx(mantel_haenszel_risk_ratio([3], [4], [1], [4]))
    # Zero cells (the one rule of models.stats.risk_ratio): the estimate is the observed
    # ratio, the interval adds 0.5 to every cell. No retained non-user: no estimate, and the
    # interval of (3.5/5) / (0.5/5) = 7 with var = 1/3.5 - 1/5 + 1/0.5 - 1/5.
    z = norm.ppf(0.975)
    rr, low, high = risk_ratio(3, 4, 0, 4)
    half = z * math.sqrt(1 / 3.5 - 1 / 5 + 1 / 0.5 - 1 / 5)
    assert np.isnan(rr)
    assert (low, high) == pytest.approx((7 * math.exp(-half), 7 * math.exp(half)))
    # No retained user: estimate 0, interval around (0.5/5) / (2.5/5) = 0.2.
    rr, low, high = risk_ratio(0, 4, 2, 4)
    half = z * math.sqrt(1 / 0.5 - 1 / 5 + 1 / 2.5 - 1 / 5)
    assert rr == 0.0
    assert (low, high) == pytest.approx((0.2 * math.exp(-half), 0.2 * math.exp(half)))
    assert all(np.isnan(v) for v in mantel_haenszel_risk_ratio([0, 0], [0, 0], [1, 2], [3, 4]))
    # a stratum with users only adds nothing
    assert mantel_haenszel_risk_ratio([3, 5], [4, 5], [1, 0], [4, 0]) == pytest.approx(
        risk_ratio(3, 4, 1, 4)
    )


def test_adoption_table_checks_its_input():
    with pytest.raises(ValueError, match="missing column 'y__used'"):
        adoption_table(_tiny_table(), ["y"])
    with pytest.raises(ValueError, match="missing column 'snapshot_date'"):
        adoption_table(_tiny_table().drop(columns="snapshot_date"), ["x"])
    without_plan = adoption_table(_tiny_table().drop(columns="plan"), ["x"], lift_snapshots=1)
    row = without_plan.iloc[0]
    assert row["stratified_lift"] == pytest.approx(row["retention_lift"])


# --------------------------------------------------------------------------- verdicts


def _verdict_row(feature, prevalence, imp, crude, strat):
    return {
        "feature": feature,
        "prevalence": prevalence,
        "importance_rf": imp,
        "importance_gbm": imp / 2,
        "importance_rank": 1,
        "retention_lift": crude[0],
        "retention_lift_low": crude[1],
        "retention_lift_high": crude[2],
        "stratified_lift": strat[0],
        "stratified_lift_low": strat[1],
        "stratified_lift_high": strat[2],
    }


def test_assign_verdicts_applies_the_rules_in_order():
    nan = float("nan")
    table = pd.DataFrame(
        [
            _verdict_row("candidate", 0.4, 0.05, (1.5, 1.3, 1.7), (1.4, 1.2, 1.6)),
            _verdict_row("niche", 0.03, 0.05, (1.5, 1.3, 1.7), (1.4, 1.2, 1.6)),
            _verdict_row("everyone", 0.97, 0.05, (1.5, 1.3, 1.7), (1.4, 1.2, 1.6)),
            _verdict_row("via_plan", 0.3, 0.05, (1.5, 1.3, 1.7), (1.05, 0.9, 1.2)),
            _verdict_row("shrinks", 0.3, 0.001, (2.0, 1.8, 2.2), (1.1, 1.02, 1.2)),
            _verdict_row("weak", 0.3, 0.001, (1.2, 1.1, 1.3), (1.2, 1.1, 1.3)),
            _verdict_row("harmful", 0.3, 0.05, (0.7, 0.6, 0.8), (0.7, 0.6, 0.8)),
            _verdict_row("zero_cells", 0.3, 0.05, (nan, nan, nan), (nan, nan, nan)),
            _verdict_row("no_rows", nan, nan, (nan, nan, nan), (nan, nan, nan)),
        ]
    )
    out = assign_verdicts(table, prevalence_band=(0.05, 0.90), min_importance=0.002)
    assert dict(zip(out["feature"], out["verdict"], strict=True)) == {
        "candidate": "milestone_candidate",
        "niche": "niche",
        "everyone": "table_stakes",
        "via_plan": "confounded",
        "shrinks": "confounded",
        "weak": "no_signal",
        "harmful": "no_signal",
        "zero_cells": "no_signal",
        "no_rows": "no_signal",
    }
    assert "below the 5.0% adoption band" in out.set_index("feature").loc["niche", "reason"]
    assert "less than non-users" in out.set_index("feature").loc["harmful", "reason"]
    assert "verdict" not in table.columns  # the input frame is left alone
    top = assign_verdicts(table, min_importance=0.01, top_n=1)
    assert top.set_index("feature").loc["weak", "verdict"] == "milestone_candidate"
    with pytest.raises(ValueError, match="missing column 'prevalence'"):
        assign_verdicts(table.drop(columns="prevalence"))
