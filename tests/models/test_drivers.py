"""Tests of models.drivers: each account's risk drivers from the model's own contributions."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from planted import make_snapshots

from models.drivers import DRIVER_COLUMNS, KIND_WORDS, driver_table, format_driver
from models.splits import out_of_time_split
from models.training import RetentionModels

CATEGORIES = {"core": ["driver", "noise"]}
TEXT = re.compile(
    r"^(?P<feature>.+) (?P<kind>" + "|".join(KIND_WORDS.values()) + r") "
    r"(?P<direction>low|high|typical|missing) \((?P<effect>[+-]\d\.\d{2,3})\)$"
)


@pytest.fixture(scope="module")
def data():
    train, test = out_of_time_split(make_snapshots(n_accounts=1500), test_snapshots=3)
    return train, test


@pytest.fixture(scope="module", params=[None, CATEGORIES], ids=["plain", "breadth"])
def fitted(request, data):
    train, _ = data
    return RetentionModels(n_estimators=60, n_jobs=1, categories=request.param).fit(train)


def _raw_contrib(models, X: pd.DataFrame) -> np.ndarray:
    """LightGBM's own pred_contrib over the fitted columns (breadth columns included)."""
    Xa = models._with_breadth(X.to_numpy(dtype="float64"))
    return np.asarray(models.gbm_.booster_.predict(Xa, pred_contrib=True))


def test_feature_sums_equal_the_models_per_column_contributions(fitted, data):
    _, test = data
    X = fitted.matrix(test)
    raw = _raw_contrib(fitted, X)
    position = {c: i for i, c in enumerate(fitted.model_columns_)}
    per_feature = fitted.feature_contributions(X)
    assert list(per_feature.columns) == sorted(fitted.groups_)
    event_cols = [position[c] for cols in fitted.groups_.values() for c in cols]
    breadth = [position[c] for c in fitted.breadth_columns_]
    # all features together: every event column plus every breadth column, nothing else
    np.testing.assert_allclose(
        per_feature.sum(axis=1), raw[:, event_cols + breadth].sum(axis=1), atol=1e-9
    )
    if not fitted.breadth_:
        for feature, cols in fitted.groups_.items():
            expected = raw[:, [position[c] for c in cols]].sum(axis=1)
            np.testing.assert_allclose(per_feature[feature], expected, atol=1e-12)
    # per column (breadth folded in) plus the bias is the raw score
    contrib, bias = fitted.column_contributions(X)
    np.testing.assert_allclose(bias, raw[:, -1])
    score = fitted.gbm_.booster_.predict(fitted._with_breadth(X.to_numpy(float)), raw_score=True)
    np.testing.assert_allclose(contrib.sum(axis=1) + bias, score, atol=1e-9)


def test_driver_table_reports_each_features_own_contribution(fitted, data):
    _, test = data
    rows = test.head(300)
    table = driver_table(fitted, rows)
    per_feature = fitted.feature_contributions(fitted.matrix(rows)).to_numpy()
    col = {f: j for j, f in enumerate(fitted.groups_)}
    got = table["contribution"].to_numpy()
    want = per_feature[table["row"].to_numpy(), table["feature"].map(col).to_numpy()]
    np.testing.assert_allclose(got, want, atol=1e-12)
    # the effect in probability points: sigmoid(score) - sigmoid(score - contribution)
    p = fitted.predict_retention(rows)[table["row"].to_numpy()]
    logit = np.log(p / (1 - p))
    expected = p - 1 / (1 + np.exp(-(logit - got)))
    np.testing.assert_allclose(table["effect"], expected, atol=1e-9)
    assert (np.sign(table["effect"]) == np.sign(table["contribution"])).all()


def test_every_row_gets_up_to_three_drivers_naming_real_features(fitted, data):
    _, test = data
    rows = test.head(400)
    table = driver_table(fitted, rows)
    assert list(table.columns) == DRIVER_COLUMNS
    assert set(table["feature"]) <= set(fitted.groups_)
    assert not set(table["feature"]) & {"plan", "seats", "tenure_days"}
    counts = table.groupby("row").size()
    assert counts.max() <= 3 and counts.index.isin(range(len(rows))).all()
    assert len(counts) == len(rows)  # every account gets at least one reason
    for _, group in table.groupby("row"):
        assert group["rank"].tolist() == list(range(1, len(group) + 1))
        assert group["feature"].is_unique
        assert (np.diff(group["effect"].abs().to_numpy()) <= 1e-12).all()
    texts = fitted.explain(rows)
    assert texts.index.equals(rows.index) and texts.name == "risk_drivers"
    assert texts.str.len().gt(0).all()
    for text, (_, group) in zip(texts.iloc[counts.index], table.groupby("row"), strict=True):
        parts = text.split("; ")
        assert len(parts) == len(group)
        for part, feature in zip(parts, group["feature"], strict=True):
            m = TEXT.match(part)
            assert m, part
            assert m["feature"] == feature
    assert fitted.explain(rows, top=1).map(lambda t: t.count("; ")).max() == 0


def test_an_account_without_the_true_driver_gets_it_with_a_negative_effect(fitted, data):
    _, test = data
    rows = test.head(600).reset_index(drop=True)
    table = driver_table(fitted, rows)
    unused = rows.index[rows["driver__used"] == 0]
    used = rows.index[rows["driver__used"] == 1]
    assert len(unused) > 50 and len(used) > 50
    driver = table[table["feature"] == "driver"].set_index("row")
    assert set(unused) <= set(driver.index)
    assert (driver.loc[unused, "effect"] < 0).all()
    assert (driver.loc[unused, "direction"] == "low").all()
    assert (driver.loc[unused, "rank"] == 1).mean() > 0.9
    # and the accounts that use it get it as a positive driver, called high
    seen = used[used.isin(driver.index)]
    assert len(seen) > 0.9 * len(used)
    assert (driver.loc[seen, "effect"] > 0).all()
    assert (driver.loc[seen, "direction"] == "high").all()


def test_drivers_do_not_depend_on_the_batch_size(data):
    train, test = data
    models = RetentionModels(n_estimators=30, n_jobs=1).fit(train)
    rows = test.head(101)
    one = models.explain(rows)
    batched = driver_table(models, rows, batch_rows=7)
    pd.testing.assert_frame_equal(batched, driver_table(models, rows))
    assert one.str.len().gt(0).all()
    assert models.explain(rows.head(0)).empty
    with pytest.raises(ValueError, match="top"):
        driver_table(models, rows, top=0)


def test_format_driver_reads_like_the_issue_example():
    assert format_driver("invoice_sent", "per_seat", "low", -0.0812) == (
        "invoice_sent per seat low (-0.08)"
    )
    assert format_driver("Report Viewed", "used", "high", 0.031) == "Report Viewed use high (+0.03)"
    assert format_driver("x", "count", "low", -0.0031) == "x count low (-0.003)"
