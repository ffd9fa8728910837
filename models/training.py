"""Retention models trained on the snapshot table, their matrices and their evaluation.

The snapshot table has one row per (account, snapshot date) with trailing per-feature usage
columns and a forward-looking ``retained`` label (see :mod:`features.columns`). This module
holds pure functions on pandas frames and the models:

- :func:`model_matrix` and :func:`feature_groups`: the model's X and the columns of each
  product feature;
- :class:`RetentionModels`: a random forest, a LightGBM model and a plan-and-seats baseline
  fitted on the same rows, with their out-of-time evaluation (:func:`calibration_table`,
  :func:`flatten_metrics`).

Which rows are trained and tested on (the out-of-time split, the held-out rows, the bounded
sample) is :mod:`models.splits`.

The model's X holds only the per-event columns (``<event>__used|count|days|per_seat``, named
by the event's code: :mod:`features.columns`; the models name features by name) and the
covariates ``seats``, ``tenure_days`` and ``plan`` (one-hot). ``maturity__*`` and
``utilization_*`` columns are left out on purpose: they are built from the same events, so
they would share (and dilute) the importance of the product features, and the importance
ranking is per product feature. Other account attributes are left out as well. The models
can add breadth columns (features used per category) that they compute themselves from the
``__used`` columns, so that a feature's importance still includes its part in the breadth
(see :class:`RetentionModels`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted

from features.columns import FEATURE_KINDS, LABEL, feature_col, feature_of
from models.defaults import (
    CALIBRATION_BINS,
    COLSAMPLE,
    LEARNING_RATE,
    MAX_DEPTH,
    MAX_FEATURES,
    MIN_SAMPLES_LEAF,
    N_ESTIMATORS,
    NUM_LEAVES,
    REG_LAMBDA,
    SUBSAMPLE,
)
from models.stats import require_columns, to_float

PLAN = "plan"
SEATS = "seats"
TENURE = "tenure_days"
PLAN_PREFIX = "plan="
MODEL_NAMES = ("rf", "gbm", "baseline")

__all__ = [
    "MODEL_FORMAT",
    "MODEL_NAMES",
    "RetentionModels",
    "breadth_col",
    "calibration_table",
    "events_in",
    "feature_groups",
    "flatten_metrics",
    "model_matrix",
]


# --------------------------------------------------------------------------- checks


def _label_array(df: pd.DataFrame, name: str) -> np.ndarray:
    """The ``retained`` column as an int array; raise when a value is null or not 0/1."""
    require_columns(df, name, [LABEL])
    values = df[LABEL]
    n_null = int(values.isna().sum())
    if n_null:
        raise ValueError(
            f"{name} has {n_null} rows with null '{LABEL}'; censored rows must not be "
            "trained on or evaluated (use models.splits.labelled_rows or out_of_time_split first)"
        )
    y = values.to_numpy(dtype="float64")
    bad = ~np.isin(y, (0.0, 1.0))
    if bad.any():
        raise ValueError(
            f"{name} column '{LABEL}' must be 0 or 1, got {sorted(set(y[bad].tolist()))[:5]}"
        )
    return y.astype(np.int64)


# --------------------------------------------------------------------------- matrices


def breadth_col(category: str) -> str:
    """Name of the model's internal breadth column of a category (not a product feature)."""
    return f"breadth[{category}]"


def events_in(columns: Iterable[str], names: Mapping[str, str] | None = None) -> list[str]:
    """The product features (events) that have at least one per-event column, sorted.

    ``names`` is the tables' lookup from code to name (``FeatureTables.names``): without it a
    column gives its code, which is the name only for plain names (:mod:`features.columns`).
    """
    return sorted({e for e in (feature_of(str(c), names) for c in columns) if e is not None})


def _event_columns(columns: Iterable[str], events: Sequence[str]) -> list[str]:
    present = set(map(str, columns))
    out = []
    for event in events:
        cols = [feature_col(event, k) for k in FEATURE_KINDS if feature_col(event, k) in present]
        if not cols:
            raise ValueError(
                f"no column of feature '{event}' (expected one of "
                f"{[feature_col(event, k) for k in FEATURE_KINDS]})"
            )
        out.extend(cols)
    return out


def _plan_categories(df: pd.DataFrame) -> list[str]:
    if PLAN not in df.columns:
        return []
    return sorted({str(v) for v in df[PLAN].dropna().unique()})


def _plan_onehot(df: pd.DataFrame, categories: Sequence[str]) -> dict[str, np.ndarray]:
    if not categories:
        return {}
    if PLAN in df.columns:
        plan = df[PLAN].astype("object").where(df[PLAN].notna(), None).to_numpy()
        plan = np.array([None if v is None else str(v) for v in plan], dtype=object)
    else:
        plan = np.full(len(df), None, dtype=object)
    # unknown or missing plans get all zeros
    return {f"{PLAN_PREFIX}{c}": (plan == c).astype("float64") for c in categories}


def model_matrix(
    df: pd.DataFrame,
    feature_events: Sequence[str] | None = None,
    plan_categories: Sequence[str] | None = None,
) -> pd.DataFrame:
    """The model's X: per-event columns plus ``seats``, ``tenure_days`` and one-hot ``plan``.

    Column order is fixed (events sorted as given, kinds in ``FEATURE_KINDS`` order, then
    ``seats``, ``tenure_days``, ``plan=<category>``) so the same inputs give the same matrix.
    ``maturity__*``, ``utilization_*`` and other attributes are left out (see the module
    docstring).

    Parameters
    ----------
    df : DataFrame
        Snapshot rows.
    feature_events : sequence of str, optional
        Product features to include; default: every event with a per-event column in ``df``.
    plan_categories : sequence of str, optional
        Plan values that get a one-hot column; default: the plans present in ``df``. Pass
        the fitted list at predict time so the encoding matches; a plan not in the list (or
        a missing plan) gets zeros in every plan column.

    Returns
    -------
    DataFrame
        Float columns, same index as ``df``.
    """
    require_columns(df, "df", [SEATS, TENURE])
    events = events_in(df.columns) if feature_events is None else list(feature_events)
    cols = _event_columns(df.columns, events)
    cats = _plan_categories(df) if plan_categories is None else [str(c) for c in plan_categories]
    data = {c: to_float(df[c], f"column '{c}'") for c in cols}
    data[SEATS] = to_float(df[SEATS], f"column '{SEATS}'")
    data[TENURE] = to_float(df[TENURE], f"column '{TENURE}'")
    data.update(_plan_onehot(df, cats))
    return pd.DataFrame(data, index=df.index)


def feature_groups(
    columns: Iterable[str],
    include_covariates: bool = False,
    events: Sequence[str] | None = None,
) -> dict[str, list[str]]:
    """Columns of each product feature (``<event>__<kind>`` grouped by event).

    Parameters
    ----------
    columns : iterable of str
        Columns of a model matrix.
    include_covariates : bool, default False
        Also add the groups ``seats``, ``tenure_days`` and ``plan`` (all one-hot columns).
    events : sequence of str, optional
        The features by name: each gets its columns among ``columns`` (the names need no
        lookup, :func:`features.columns.feature_col` codes them); default: every feature with
        a column, named by its code.

    Returns
    -------
    dict
        ``{feature: [columns]}``, features sorted by name.
    """
    groups: dict[str, list[str]] = {}
    if events is not None:
        present = set(map(str, columns))
        for e in events:
            cols = [feature_col(e, k) for k in FEATURE_KINDS if feature_col(e, k) in present]
            if cols:
                groups[str(e)] = cols
    else:
        for c in map(str, columns):
            event = feature_of(c)
            if event is not None:
                groups.setdefault(event, []).append(c)
    groups = {k: groups[k] for k in sorted(groups)}
    if include_covariates:
        cols = list(map(str, columns))
        for cov in (SEATS, TENURE):
            if cov in cols:
                groups[cov] = [cov]
        plan_cols = [c for c in cols if c.startswith(PLAN_PREFIX)]
        if plan_cols:
            groups[PLAN] = plan_cols
    return groups


# --------------------------------------------------------------------------- evaluation


def calibration_table(
    y_true: Sequence[int], y_prob: Sequence[float], n_bins: int = CALIBRATION_BINS
) -> pd.DataFrame:
    """Reliability table over ``n_bins`` equal-width bins of the predicted probability.

    Returns
    -------
    DataFrame
        One row per bin (empty bins included): ``bin``, ``bin_low``, ``bin_high``,
        ``mean_predicted``, ``observed_rate`` (NaN for an empty bin) and ``count``.
    """
    y = np.asarray(y_true, dtype="float64")
    p = np.asarray(y_prob, dtype="float64")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, n_bins - 1)
    count = np.bincount(idx, minlength=n_bins)
    sum_p = np.bincount(idx, weights=p, minlength=n_bins)
    sum_y = np.bincount(idx, weights=y, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.where(count > 0, sum_p / np.maximum(count, 1), np.nan)
        rate = np.where(count > 0, sum_y / np.maximum(count, 1), np.nan)
    return pd.DataFrame(
        {
            "bin": np.arange(n_bins),
            "bin_low": edges[:-1],
            "bin_high": edges[1:],
            "mean_predicted": mean_p,
            "observed_rate": rate,
            "count": count.astype(np.int64),
        }
    )


def _scores(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    two_classes = len(np.unique(y)) == 2
    return {
        "roc_auc": float(roc_auc_score(y, p)) if two_classes else float("nan"),
        "pr_auc": float(average_precision_score(y, p)) if two_classes else float("nan"),
        "brier": float(brier_score_loss(y, p, labels=[0, 1])),
    }


def flatten_metrics(evaluation: dict) -> dict[str, float]:
    """Flat ``{"<model>_<metric>": value}`` view of :meth:`RetentionModels.evaluate` for
    experiment tracking (the calibration table is left out)."""
    flat: dict[str, float] = {}
    for name in MODEL_NAMES:
        for metric, value in evaluation.get(name, {}).items():
            flat[f"{name}_{metric}"] = float(value)
    for key in ("n_rows", "retention_rate"):
        if key in evaluation:
            flat[key] = float(evaluation[key])
    return flat


# --------------------------------------------------------------------------- models

# The format of a pickled RetentionModels. Raise it whenever the class changes in a way that
# an older pickle cannot be read back (attributes renamed, moved or removed): a champion saved
# in another format is then refused with a clear message, and the next run replaces it.
# Format 2: the champion is a models-from-code pyfunc shipping models/ and features/, its
# RetentionModels saved with skops (no pickle), with the training reference values
# (reference_median_, reference_mean_) that the risk drivers compare against.
MODEL_FORMAT = "2"


class RetentionModels(BaseEstimator):
    """A random forest, a LightGBM model and a plan-and-seats baseline for retention.

    All three are fitted on the same rows; the random forest and LightGBM see the same
    matrix (:func:`model_matrix`), the baseline only the plan one-hot columns and
    ``log1p(seats)`` (a standardised logistic regression). Retention probabilities for
    scoring come from LightGBM. Fitting is deterministic: fixed seeds, LightGBM with
    ``deterministic=True`` and ``force_row_wise=True``.

    Parameters
    ----------
    The defaults are deliberately regularised (shallow trees, large leaves, column and
    row subsampling): with about a hundred columns, most of them counts of no consequence,
    and a few thousand training rows, fully grown trees fit noise, which shows as
    overconfident probabilities and as negative permutation importances of real drivers.

    Breadth. With ``categories`` (the maturity categories), the models also see, for each
    category, the number of its features used (``<event>__used``) in the row, a column
    computed from the matrix itself (:func:`breadth_col`). Retention often depends on how
    many features of a category an account uses rather than on any single one; a tree
    needs many splits to count, a breadth column gives it the count directly. It is not a
    product feature: :meth:`score_matrix` recomputes it from the event columns, so the
    permutation importance of a feature includes its part in its category's breadth, and
    :meth:`feature_contributions` and :meth:`impurity_by_feature` share the breadth
    column's contribution among the category's features.

    Parameters
    ----------
    n_estimators : int, default 200
        Trees of the random forest and boosting rounds of LightGBM.
    max_depth : int, default 6
        Maximum tree depth of both models.
    random_state : int, default 0
        Seed of both models.
    n_jobs : int, default 1
        Threads of both models.
    learning_rate : float, default 0.05
        LightGBM learning rate.
    num_leaves : int, default 7
        LightGBM leaves per tree.
    min_samples_leaf : int, default 50
        Minimum rows per leaf, for both models (``min_child_samples`` in LightGBM); larger
        leaves give smoother, better calibrated probabilities than fully grown trees.
    feature_events : sequence of str, optional
        Product features to model; default: every event with per-event columns in the
        training frame.
    max_features : float or str, default 0.3
        Share of the columns each random-forest split considers.
    subsample : float, default 0.8
        Share of the rows each LightGBM round uses (bagging; 1.0: all).
    colsample : float, default 0.5
        Share of the columns each LightGBM tree uses.
    reg_lambda : float, default 0.0
        LightGBM L2 penalty on leaf values.
    categories : mapping of str to list of str, optional
        Categories of features whose breadth the models see (see above).

    Attributes
    ----------
    rf_ : RandomForestClassifier
    gbm_ : lightgbm.LGBMClassifier
    baseline_ : sklearn Pipeline (StandardScaler, LogisticRegression)
    feature_events_ : list of str
        Events in the matrix.
    plan_categories_ : list of str
        Plan values one-hot encoded (the fixed encoding used at predict time).
    feature_names_in_ : list of str
        Columns of the model matrix, in order (the input of :meth:`score_matrix`).
    breadth_ : dict
        ``{category: [positions of its features' __used columns]}``; empty without
        ``categories``.
    breadth_columns_ : list of str
        Names of the breadth columns.
    model_columns_ : list of str
        Columns the random forest and LightGBM were fitted on: ``feature_names_in_`` then
        ``breadth_columns_``.
    groups_ : dict
        ``{event: [columns]}`` for the product features.
    baseline_columns_ : list of str
        Columns of the baseline's matrix.
    classes_ : ndarray
        ``[0, 1]``; column 1 of :meth:`predict_proba` is the retention probability.
    reference_median_, reference_mean_ : ndarray
        Median and mean of each column of the training matrix (``feature_names_in_``,
        NaN ignored): what :meth:`explain` calls low or high.
    n_train_rows_ : int
    train_retention_rate_ : float
    """

    def __init__(
        self,
        n_estimators: int = N_ESTIMATORS,
        max_depth: int = MAX_DEPTH,
        random_state: int = 0,
        n_jobs: int = 1,
        learning_rate: float = LEARNING_RATE,
        num_leaves: int = NUM_LEAVES,
        min_samples_leaf: int = MIN_SAMPLES_LEAF,
        feature_events: Sequence[str] | None = None,
        max_features: float | str = MAX_FEATURES,
        subsample: float = SUBSAMPLE,
        colsample: float = COLSAMPLE,
        reg_lambda: float = REG_LAMBDA,
        categories: Mapping[str, Sequence[str]] | None = None,
    ):
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_samples_leaf = min_samples_leaf
        self.feature_events = feature_events
        self.max_features = max_features
        self.subsample = subsample
        self.colsample = colsample
        self.reg_lambda = reg_lambda
        self.categories = categories

    # -- fitting

    def fit(self, train_df: pd.DataFrame, y=None) -> RetentionModels:
        """Fit the three models on labelled snapshot rows.

        Parameters
        ----------
        train_df : DataFrame
            Labelled snapshot rows (``retained`` 0/1, never null), with the per-event
            columns, ``seats``, ``tenure_days`` and optionally ``plan``. Sample it first
            (:func:`models.splits.stratified_sample`) to bound the random forest's cost.
        y : ignored
            The label is the ``retained`` column.

        Returns
        -------
        self
        """
        from lightgbm import LGBMClassifier  # heavy import, only when fitting

        require_columns(train_df, "train_df", [LABEL, SEATS, TENURE])
        y_arr = _label_array(train_df, "train_df")
        if len(np.unique(y_arr)) < 2:
            raise ValueError(
                f"train_df column '{LABEL}' has a single class ({int(y_arr[0])}); "
                "need both retained and churned rows"
            )
        events = (
            events_in(train_df.columns)
            if self.feature_events is None
            else list(self.feature_events)
        )
        if not events:
            raise ValueError(
                "train_df has no per-event column (expected '<event>__used' and the like)"
            )
        self.feature_events_ = events
        self.plan_categories_ = _plan_categories(train_df)
        X = model_matrix(train_df, events, self.plan_categories_)
        self.feature_names_in_ = list(X.columns)
        self.n_features_in_ = X.shape[1]
        self.groups_ = feature_groups(X.columns, events=events)
        self.breadth_ = self._breadth_spec(self.feature_names_in_)
        self.breadth_columns_ = [breadth_col(c) for c in self.breadth_]
        self.model_columns_ = self.feature_names_in_ + self.breadth_columns_
        raw = X.to_numpy(dtype="float64")
        with np.errstate(all="ignore"):
            self.reference_median_ = np.nan_to_num(np.nanmedian(raw, axis=0))
            self.reference_mean_ = np.nan_to_num(np.nanmean(raw, axis=0))
        Xa = self._with_breadth(raw)

        self.rf_ = RandomForestClassifier(
            n_estimators=self.n_estimators,
            max_depth=self.max_depth,
            min_samples_leaf=self.min_samples_leaf,
            max_features=self.max_features,
            random_state=self.random_state,
            n_jobs=self.n_jobs,
        ).fit(Xa, y_arr)
        # numpy input: LightGBM rejects some characters in feature names, and the same
        # input type at fit and predict time avoids sklearn's feature-name warnings
        self.gbm_ = LGBMClassifier(
            n_estimators=self.n_estimators,
            max_depth=self.max_depth,
            learning_rate=self.learning_rate,
            num_leaves=self.num_leaves,
            min_child_samples=self.min_samples_leaf,
            subsample=self.subsample,
            subsample_freq=1 if self.subsample < 1.0 else 0,
            colsample_bytree=self.colsample,
            reg_lambda=self.reg_lambda,
            random_state=self.random_state,
            n_jobs=self.n_jobs,
            deterministic=True,
            force_row_wise=True,
            verbose=-1,
        ).fit(Xa, y_arr)
        B = self._baseline_matrix(train_df)
        self.baseline_columns_ = list(B.columns)
        self.baseline_ = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(
            B.to_numpy(dtype="float64"), y_arr
        )
        self.classes_ = np.array([0, 1])
        self.n_train_rows_ = len(train_df)
        self.train_retention_rate_ = float(y_arr.mean())
        return self

    def _breadth_spec(self, columns: Sequence[str]) -> dict[str, list[int]]:
        """Positions of the ``__used`` columns of each category's features in ``columns``."""
        if self.categories is None:
            return {}
        if not isinstance(self.categories, Mapping):
            raise ValueError("categories must be a mapping of category name to features")
        position = {c: i for i, c in enumerate(columns)}
        spec = {}
        for name, features in self.categories.items():
            idx = [
                position[feature_col(f, "used")]
                for f in features
                if feature_col(f, "used") in position
            ]
            if idx:
                spec[str(name)] = idx
        return spec

    def _with_breadth(self, Xa: np.ndarray) -> np.ndarray:
        """The raw matrix with one breadth column per category appended (see the class
        docstring); computed from the matrix itself, so permuting a feature's columns moves
        the breadth of its category with it."""
        if not self.breadth_:
            return Xa
        extra = [(np.nan_to_num(Xa[:, idx]) > 0).sum(axis=1) for idx in self.breadth_.values()]
        return np.column_stack([Xa, *extra]).astype("float64")

    def column_contributions(self, X: pd.DataFrame | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """LightGBM's SHAP contributions (``pred_contrib``, log-odds) per raw matrix column.

        The contribution of a category's breadth column is folded into the ``__used`` columns
        of its features, split evenly among those the row used (among all of them when it
        used none), so that each row's contributions plus its bias sum to its raw score.

        Parameters
        ----------
        X : DataFrame or ndarray
            Raw model matrix (:meth:`matrix`).

        Returns
        -------
        (ndarray of shape (n_rows, len(feature_names_in_)), ndarray of shape (n_rows,))
            The contributions and the bias (LightGBM's last ``pred_contrib`` column).
        """
        check_is_fitted(self, "gbm_")
        Xa = self._raw_array(X)
        contrib = np.asarray(self.gbm_.booster_.predict(self._with_breadth(Xa), pred_contrib=True))
        out = contrib[:, : len(self.feature_names_in_)].copy()
        position = {c: i for i, c in enumerate(self.model_columns_)}
        for name, idx in self.breadth_.items():
            share = contrib[:, position[breadth_col(name)]]
            used = np.nan_to_num(Xa[:, idx]) > 0
            n_used = used.sum(axis=1)
            weight = np.where(
                n_used[:, None] > 0, used / np.maximum(n_used, 1)[:, None], 1.0 / len(idx)
            )
            out[:, idx] += share[:, None] * weight
        return out, contrib[:, -1]

    def feature_contributions(self, X: pd.DataFrame | np.ndarray) -> pd.DataFrame:
        """LightGBM's SHAP contributions (log-odds) per product feature: the sum of
        :meth:`column_contributions` over the feature's own columns (its share of its
        category's breadth included).

        Returns
        -------
        DataFrame
            One column per product feature (``groups_``), one row per row of ``X``.
        """
        contrib, _ = self.column_contributions(X)
        position = {c: i for i, c in enumerate(self.feature_names_in_)}
        out = {
            f: contrib[:, [position[c] for c in cols]].sum(axis=1)
            for f, cols in self.groups_.items()
        }
        return pd.DataFrame(out, index=X.index if isinstance(X, pd.DataFrame) else None)

    def explain(self, frame: pd.DataFrame, top: int = 3) -> pd.Series:
        """The ``risk_drivers`` text of each row: its ``top`` product features that move its
        predicted retention most (see :func:`models.drivers.risk_drivers`).

        Parameters
        ----------
        frame : DataFrame
            Snapshot rows, as for :meth:`predict_retention`.
        top : int, default 3

        Returns
        -------
        Series of str
            Same index as ``frame``, named ``risk_drivers``.
        """
        from models.drivers import risk_drivers

        return risk_drivers(self, frame, top=top)

    def impurity_by_feature(self) -> dict[str, float]:
        """The random forest's impurity importance per product feature (biased; reference
        only), a breadth column's importance split evenly among its category's features."""
        check_is_fitted(self, "rf_")
        values = np.asarray(self.rf_.feature_importances_, dtype="float64")
        position = {c: i for i, c in enumerate(self.model_columns_)}
        out = {
            f: float(values[[position[c] for c in cols]].sum()) for f, cols in self.groups_.items()
        }
        feature_at = {c: f for f, cols in self.groups_.items() for c in cols}
        for name, idx in self.breadth_.items():
            share = values[position[breadth_col(name)]] / len(idx)
            for col_index in idx:
                out[feature_at[self.feature_names_in_[col_index]]] += float(share)
        return out

    def _raw_array(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        if isinstance(X, pd.DataFrame):
            require_columns(X, "X", self.feature_names_in_)
            X = X[self.feature_names_in_]
        Xa = np.asarray(X, dtype="float64")
        if Xa.ndim != 2 or Xa.shape[1] != len(self.feature_names_in_):
            raise ValueError(
                f"X must have {len(self.feature_names_in_)} columns, got shape {Xa.shape}"
            )
        return Xa

    def _baseline_matrix(self, df: pd.DataFrame) -> pd.DataFrame:
        seats = to_float(df[SEATS], f"column '{SEATS}'")
        seats = np.where(np.isnan(seats), 1.0, seats)
        data = {"log1p_seats": np.log1p(np.maximum(seats, 0.0))}
        data.update(_plan_onehot(df, self.plan_categories_))
        return pd.DataFrame(data, index=df.index)

    # -- prediction

    def matrix(self, df: pd.DataFrame) -> pd.DataFrame:
        """The fitted model matrix of ``df`` (same columns and plan encoding as in fit)."""
        check_is_fitted(self, "gbm_")
        return model_matrix(df, self.feature_events_, self.plan_categories_)

    def score_matrix(self, X: pd.DataFrame | np.ndarray, model: str = "gbm") -> np.ndarray:
        """Retention probability from a model matrix (see :meth:`matrix`).

        Parameters
        ----------
        X : DataFrame or ndarray
            Columns ``feature_names_in_`` in that order.
        model : {"gbm", "rf"}
            Which model predicts.

        Returns
        -------
        ndarray of shape (n_rows,)
        """
        check_is_fitted(self, "gbm_")
        Xa = self._with_breadth(self._raw_array(X))
        if model == "gbm":
            return self.gbm_.predict_proba(Xa)[:, 1]
        if model == "rf":
            return self.rf_.predict_proba(Xa)[:, 1]
        raise ValueError(f"model must be 'gbm' or 'rf' for a model matrix, got {model!r}")

    def predict_retention(self, df: pd.DataFrame, model: str = "gbm") -> np.ndarray:
        """Probability that each row is retained, shape (n_rows,).

        Parameters
        ----------
        df : DataFrame
            Snapshot rows (censored rows are fine: scoring needs no label).
        model : {"gbm", "rf", "baseline"}, default "gbm"
        """
        check_is_fitted(self, "gbm_")
        if model not in MODEL_NAMES:
            raise ValueError(f"model must be one of {MODEL_NAMES}, got {model!r}")
        if model == "baseline":
            require_columns(df, "df", [SEATS])
            B = self._baseline_matrix(df).to_numpy(dtype="float64")
            return self.baseline_.predict_proba(B)[:, 1]
        return self.score_matrix(self.matrix(df), model=model)

    def predict_proba(self, df: pd.DataFrame, model: str = "gbm") -> np.ndarray:
        """sklearn-style probabilities, shape (n_rows, 2): column 1 is P(retained) from
        LightGBM (or ``model``), column 0 its complement."""
        p = self.predict_retention(df, model=model)
        return np.column_stack([1.0 - p, p])

    def predict(self, df: pd.DataFrame, model: str = "gbm") -> np.ndarray:
        """1 where the retention probability is at least 0.5, else 0."""
        return (self.predict_retention(df, model=model) >= 0.5).astype(np.int64)

    # -- evaluation

    def evaluate(self, test_df: pd.DataFrame, n_bins: int = CALIBRATION_BINS) -> dict:
        """Out-of-time metrics of the three models on labelled test rows.

        Returns
        -------
        dict
            ``{"rf": {...}, "gbm": {...}, "baseline": {...}}`` each with ``roc_auc``,
            ``pr_auc`` (average precision, retained = positive class) and ``brier``
            (AUCs are NaN when the test rows hold a single class); ``"calibration"``: the
            LightGBM :func:`calibration_table`; ``"n_rows"`` and ``"retention_rate"``.
            :func:`flatten_metrics` turns it into flat metrics.
        """
        check_is_fitted(self, "gbm_")
        y = _label_array(test_df, "test_df")
        if len(y) == 0:
            raise ValueError("test_df has no rows")
        out: dict = {}
        probs = {}
        for name in MODEL_NAMES:
            probs[name] = self.predict_retention(test_df, model=name)
            out[name] = _scores(y, probs[name])
        out["calibration"] = calibration_table(y, probs["gbm"], n_bins=n_bins)
        out["n_rows"] = len(y)
        out["retention_rate"] = float(y.mean())
        return out
