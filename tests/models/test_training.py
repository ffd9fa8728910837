"""Tests of models.training: the out-of-time split, the sample, the matrix and the models."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from planted import make_snapshots

from models.splits import labelled_rows, out_of_time_split, stratified_sample
from models.training import (
    RetentionModels,
    calibration_table,
    events_in,
    feature_groups,
    flatten_metrics,
    model_matrix,
)


@pytest.fixture(scope="module")
def snapshots():
    return make_snapshots()


@pytest.fixture(scope="module")
def split(snapshots):
    return out_of_time_split(snapshots, test_snapshots=3)


@pytest.fixture(scope="module")
def fitted(split):
    train, _ = split
    return RetentionModels(n_estimators=40, random_state=0, n_jobs=1).fit(train)


# --------------------------------------------------------------------------- split


def test_out_of_time_split_is_account_disjoint_and_tests_on_newest_dates(snapshots, split):
    train, test = split
    labelled_dates = sorted(labelled_rows(snapshots)["snapshot_date"].unique())
    assert sorted(test["snapshot_date"].unique()) == labelled_dates[-3:]
    assert train["snapshot_date"].max() < test["snapshot_date"].min()
    assert not set(train["account_id"]) & set(test["account_id"])
    assert len(train) > 0
    for part in (train, test):
        assert not part["censored"].any()
        assert part["retained"].notna().all()


def test_out_of_time_split_with_account_share_keeps_more_training_rows(snapshots, split):
    train, test = out_of_time_split(snapshots, 3, test_account_share=0.5, random_state=1)
    assert not set(train["account_id"]) & set(test["account_id"])
    assert train["snapshot_date"].max() < test["snapshot_date"].min()
    assert len(train) > len(split[0])
    again = out_of_time_split(snapshots, 3, test_account_share=0.5, random_state=1)
    pd.testing.assert_frame_equal(test, again[1])


def test_out_of_time_split_does_not_change_its_input():
    df = pd.DataFrame(
        {
            "account_id": ["a", "a", "b", "c"],
            "snapshot_date": pd.to_datetime(
                ["2025-01-31", "2025-02-28", "2025-01-31", "2025-03-31"]
            ),
            "censored": [False, False, False, True],
            "retained": pd.array([1, 0, 1, None], dtype="Int64"),
        }
    )
    before = df.copy()
    train, test = out_of_time_split(df, test_snapshots=1)
    pd.testing.assert_frame_equal(df, before)
    assert test["account_id"].tolist() == ["a"]
    assert train["account_id"].tolist() == ["b"]  # a's January row would straddle the split


def test_out_of_time_split_needs_enough_dates():
    df = pd.DataFrame(
        {
            "account_id": ["a", "b"],
            "snapshot_date": pd.to_datetime(["2025-01-31", "2025-02-28"]),
            "retained": [1, 0],
        }
    )
    with pytest.raises(ValueError, match="2 labelled snapshot dates"):
        out_of_time_split(df, test_snapshots=2)
    with pytest.raises(ValueError, match="missing column 'account_id'"):
        out_of_time_split(df.drop(columns="account_id"))
    with pytest.raises(ValueError, match="test_snapshots must be a positive integer"):
        out_of_time_split(df, test_snapshots=0)


# --------------------------------------------------------------------------- sample


def test_stratified_sample_is_bounded_balanced_and_deterministic():
    df = pd.DataFrame({"retained": [1] * 800 + [0] * 200, "x": np.arange(1000)})
    a = stratified_sample(df, row_budget=101, random_state=3)
    b = stratified_sample(df, row_budget=101, random_state=3)
    assert len(a) == 101
    assert a["retained"].sum() in (80, 81)
    pd.testing.assert_frame_equal(a, b)
    assert a.index.is_monotonic_increasing
    assert not stratified_sample(df, 101, random_state=4).equals(a)


def test_stratified_sample_keeps_small_strata_and_small_frames():
    df = pd.DataFrame({"retained": [1] * 997 + [0] * 3})
    sample = stratified_sample(df, row_budget=50, random_state=0)
    assert len(sample) == 50
    assert (sample["retained"] == 0).sum() == 1
    small = stratified_sample(df.head(10), row_budget=50, random_state=0)
    pd.testing.assert_frame_equal(small, df.head(10))
    with pytest.raises(ValueError, match="missing column 'plan'"):
        stratified_sample(df, 10, 0, by=("plan",))
    with pytest.raises(ValueError, match="row_budget"):
        stratified_sample(df, 0, 0)


# --------------------------------------------------------------------------- matrix


def test_model_matrix_takes_event_columns_and_covariates_only():
    df = pd.DataFrame(
        {
            "account_id": ["a", "b", "c"],
            "plan": ["pro", "basic", None],
            "seats": [2, 5, 1],
            "tenure_days": [100, 200, 300],
            "b__used": [1, 0, 1],
            "b__count": [3, 0, 1],
            "a__per_seat": [0.5, 0.0, 2.0],
            "a__used": [True, False, True],
            "utilization_rate": [0.1, 0.2, 0.3],
            "maturity__core": [1, 0, 2],
            "retained": [1, 0, 1],
        }
    )
    X = model_matrix(df)
    assert list(X.columns) == [
        "a__used",
        "a__per_seat",
        "b__used",
        "b__count",
        "seats",
        "tenure_days",
        "plan=basic",
        "plan=pro",
    ]
    assert X["a__used"].tolist() == [1.0, 0.0, 1.0]
    assert X[["plan=basic", "plan=pro"]].to_numpy().tolist() == [[0, 1], [1, 0], [0, 0]]
    fixed = model_matrix(df, feature_events=["b"], plan_categories=["enterprise", "pro"])
    assert list(fixed.columns) == [
        "b__used",
        "b__count",
        "seats",
        "tenure_days",
        "plan=enterprise",
        "plan=pro",
    ]
    assert events_in(df.columns) == ["a", "b"]
    assert feature_groups(X.columns) == {
        "a": ["a__used", "a__per_seat"],
        "b": ["b__used", "b__count"],
    }
    assert feature_groups(X.columns, include_covariates=True)["plan"] == ["plan=basic", "plan=pro"]
    with pytest.raises(ValueError, match="no column of feature 'zzz'"):
        model_matrix(df, feature_events=["zzz"])
    with pytest.raises(ValueError, match="missing column 'seats'"):
        model_matrix(df.drop(columns="seats"))


# --------------------------------------------------------------------------- models


def test_models_fit_and_the_usage_model_beats_the_plan_baseline(fitted, split):
    _, test = split
    result = fitted.evaluate(test)
    for name in ("rf", "gbm", "baseline"):
        assert set(result[name]) == {"roc_auc", "pr_auc", "brier"}
        assert 0.0 <= result[name]["brier"] <= 1.0
    assert result["gbm"]["roc_auc"] > result["baseline"]["roc_auc"] + 0.03
    assert result["rf"]["roc_auc"] > result["baseline"]["roc_auc"] + 0.03
    calib = result["calibration"]
    assert list(calib.columns) == [
        "bin",
        "bin_low",
        "bin_high",
        "mean_predicted",
        "observed_rate",
        "count",
    ]
    assert len(calib) == 10 and calib["count"].sum() == len(test)
    flat = flatten_metrics(result)
    assert flat["gbm_roc_auc"] == result["gbm"]["roc_auc"] and flat["n_rows"] == len(test)
    assert not any(c.startswith(("maturity__", "utilization")) for c in fitted.feature_names_in_)
    assert fitted.plan_categories_ == ["basic", "premium", "pro"]


def test_predict_proba_follows_sklearn_and_scores_censored_rows(fitted, snapshots):
    censored = snapshots[snapshots["censored"]]
    proba = fitted.predict_proba(censored)
    assert proba.shape == (len(censored), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_allclose(proba[:, 1], fitted.predict_retention(censored))
    assert set(np.unique(fitted.predict(censored))) <= {0, 1}
    with pytest.raises(ValueError, match="missing column 'driver__count'"):
        fitted.predict_proba(censored.drop(columns="driver__count"))


def test_fitting_is_deterministic(fitted, split):
    train, test = split
    again = RetentionModels(n_estimators=40, random_state=0, n_jobs=1).fit(train)
    for model in ("gbm", "rf", "baseline"):
        np.testing.assert_array_equal(
            fitted.predict_retention(test, model=model), again.predict_retention(test, model=model)
        )


def test_more_driver_usage_does_not_lower_predicted_retention(fitted, split):
    _, test = split
    raised = test.copy()
    raised["driver__used"] = 1
    raised["driver__count"] = np.maximum(raised["driver__count"], 5)
    raised["driver__days"] = np.maximum(raised["driver__days"], 3)
    raised["driver__per_seat"] = raised["driver__count"] / raised["seats"]
    for model in ("gbm", "rf"):
        before = fitted.predict_retention(test, model=model).mean()
        after = fitted.predict_retention(raised, model=model).mean()
        assert after >= before + 0.05


def test_fit_rejects_unlabelled_or_single_class_rows(snapshots):
    with pytest.raises(ValueError, match="null 'retained'"):
        RetentionModels(n_estimators=5).fit(snapshots)
    one_class = labelled_rows(snapshots).head(50).assign(retained=1)
    with pytest.raises(ValueError, match="single class"):
        RetentionModels(n_estimators=5).fit(one_class)


def test_calibration_table_bins_by_predicted_probability():
    table = calibration_table([0, 1, 1, 1], [0.05, 0.15, 0.95, 1.0], n_bins=10)
    assert table["count"].tolist() == [1, 1, 0, 0, 0, 0, 0, 0, 0, 2]
    assert table.loc[9, "mean_predicted"] == pytest.approx(0.975)
    assert table.loc[0, "observed_rate"] == 0.0 and table.loc[9, "observed_rate"] == 1.0
    assert np.isnan(table.loc[5, "observed_rate"])


def test_fit_keeps_the_training_reference_of_each_column(fitted, split):
    train, _ = split
    X = model_matrix(train, fitted.feature_events_, fitted.plan_categories_)
    np.testing.assert_allclose(fitted.reference_median_, X.median().to_numpy())
    np.testing.assert_allclose(fitted.reference_mean_, X.mean().to_numpy())
    assert len(fitted.reference_median_) == len(fitted.feature_names_in_)
    # a usage flag used by 40% of the rows: median 0, mean about 0.4 (low/high break ties)
    j = fitted.feature_names_in_.index("driver__used")
    assert fitted.reference_median_[j] == 0 and 0.3 < fitted.reference_mean_[j] < 0.5
