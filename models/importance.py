"""Product-feature importance for retention, set against adoption prevalence.

A random forest's impurity importance favours niche features whose few users sit on plans
that churn less. This module ranks product features (events) more honestly:

- :func:`grouped_permutation_importance`: drop in ROC AUC on held-out rows when all columns
  of one feature are permuted together (mean and standard deviation over repeats);
- :func:`shap_importance`: mean absolute LightGBM contribution of a feature's columns;
- :func:`impurity_importance`: the random forest's impurity importance per feature, kept
  only as a labelled, biased reference;
- :func:`assign_verdicts`: one verdict per feature (:data:`VERDICTS`) with a plain reason;
- :func:`rank_features`: all of the above with the adoption statistics
  (:func:`models.adoption.adoption_table`: prevalence, lifts crude and within plans, the
  intensity lift) as the ``importance.csv`` table (:data:`IMPORTANCE_COLUMNS`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from features.columns import LABEL
from features.selection import SKIPPED_VERDICTS
from models.adoption import adoption_table
from models.defaults import (
    CONFIDENCE,
    CONFOUNDING_SHARE,
    LIFT_SNAPSHOTS,
    MIN_IMPORTANCE,
    PERMUTATION_MAX_ROWS,
    PERMUTATION_REPEATS,
    PREVALENCE_BAND,
    SHAP_MAX_ROWS,
)
from models.splits import labelled_rows, stratified_sample
from models.stats import bh_qvalues, make_rng, p_from_log_interval, require_columns
from models.training import RetentionModels

VERDICTS = ("milestone_candidate", "niche", "table_stakes", "confounded", "no_signal")

IMPORTANCE_COLUMNS = [
    "feature",
    "importance_rf",
    "importance_gbm",
    "importance_rank",
    "prevalence",
    "retention_lift",
    "stratified_lift",
    "verdict",
    "importance_rf_std",
    "importance_gbm_std",
    "shap_gbm",
    "impurity_rf_biased",
    "retention_lift_low",
    "retention_lift_high",
    "retention_lift_q",
    "stratified_lift_low",
    "stratified_lift_high",
    "stratified_lift_q",
    "intensity_lift",
    "intensity_lift_low",
    "intensity_lift_high",
    "intensity_lift_q",
    "reason",
    "judged",
    "accounts",
    "rolled_up_into",
]

__all__ = [
    "IMPORTANCE_COLUMNS",
    "SKIPPED_VERDICTS",
    "VERDICTS",
    "assign_verdicts",
    "grouped_permutation_importance",
    "impurity_importance",
    "rank_features",
    "shap_importance",
]

# --------------------------------------------------------------------------- helpers


def _check_groups(groups: Mapping[str, Sequence[str]], columns: Sequence[str]) -> None:
    if not groups:
        raise ValueError("groups is empty; expected {feature: [columns]}")
    present = set(columns)
    for feature, cols in groups.items():
        if len(cols) == 0:
            raise ValueError(f"group '{feature}' has no columns")
        for c in cols:
            if c not in present:
                raise ValueError(f"X is missing column '{c}' of group '{feature}'")


def _row_sample(
    y: np.ndarray | None, n: int, max_rows: int | None, random_state: int
) -> np.ndarray:
    """Positions of a seeded sample of at most ``max_rows`` rows, stratified by ``y``."""
    if max_rows is not None and (isinstance(max_rows, bool) or int(max_rows) < 1):
        raise ValueError(f"max_rows must be a positive integer or None, got {max_rows!r}")
    if max_rows is None or n <= max_rows:
        return np.arange(n)
    frame = pd.DataFrame({"_y": np.zeros(n) if y is None else y})
    picked = stratified_sample(frame, int(max_rows), random_state, by=("_y",))
    return picked.index.to_numpy()


# --------------------------------------------------------------------------- importance


def grouped_permutation_importance(
    predict_fn: Callable[[pd.DataFrame], np.ndarray],
    X: pd.DataFrame,
    y: Sequence[int],
    groups: Mapping[str, Sequence[str]],
    n_repeats: int = PERMUTATION_REPEATS,
    random_state: int = 0,
    max_rows: int | None = PERMUTATION_MAX_ROWS,
) -> pd.DataFrame:
    """Drop in ROC AUC when all columns of a feature are permuted together.

    For each group, the rows of its columns are shuffled with one permutation (so the
    columns of a feature stay consistent with each other and only their link to the label
    is broken) and the model is scored again. Every group sees the same ``n_repeats``
    permutations, as in :func:`sklearn.inspection.permutation_importance`. Pass held-out
    rows: on training rows the importance measures memorisation.

    Parameters
    ----------
    predict_fn : callable
        Takes a DataFrame with the columns of ``X`` and returns one score per row (a
        probability of the positive class).
    X : DataFrame
        Held-out model matrix.
    y : array-like of 0/1
        Labels of ``X``'s rows; both classes must be present.
    groups : dict
        ``{feature: [columns of X]}``.
    n_repeats : int, default 5
        Permutations per feature.
    random_state : int, default 0
        Seed of the row sample and the permutations.
    max_rows : int or None, default 5000
        Rows used (a sample stratified by ``y``); None uses all.

    Returns
    -------
    DataFrame
        ``feature``, ``mean``, ``std`` (over repeats, ``ddof=0``), in the order of
        ``groups``; ``attrs["baseline_score"]`` holds the unpermuted ROC AUC.
    """
    if not isinstance(X, pd.DataFrame):
        raise TypeError(f"X must be a pandas DataFrame, got {type(X).__name__}")
    y_arr = np.asarray(y, dtype="float64")
    if y_arr.shape != (len(X),):
        raise ValueError(f"y must have one value per row of X ({len(X)}), got {y_arr.shape}")
    if len(np.unique(y_arr)) != 2:
        raise ValueError("y must hold both classes (0 and 1) to compute ROC AUC")
    if isinstance(n_repeats, bool) or int(n_repeats) < 1:
        raise ValueError(f"n_repeats must be a positive integer, got {n_repeats!r}")
    columns = [str(c) for c in X.columns]
    _check_groups(groups, columns)

    rng = make_rng(random_state)
    rows = _row_sample(y_arr, len(X), max_rows, int(rng.integers(2**31 - 1)))
    data = X.to_numpy(dtype="float64")[rows].copy()
    y_s = y_arr[rows]
    n = len(rows)
    position = {c: i for i, c in enumerate(columns)}
    perms = [rng.permutation(n) for _ in range(int(n_repeats))]

    def score() -> float:
        frame = pd.DataFrame(data, columns=X.columns, copy=True)
        return float(roc_auc_score(y_s, np.asarray(predict_fn(frame), dtype="float64")))

    baseline = score()
    records = []
    for feature, cols in groups.items():
        idx = [position[c] for c in cols]
        original = data[:, idx].copy()
        drops = []
        for perm in perms:
            data[:, idx] = original[perm]
            drops.append(baseline - score())
        data[:, idx] = original
        records.append((feature, float(np.mean(drops)), float(np.std(drops))))
    out = pd.DataFrame(records, columns=["feature", "mean", "std"])
    out.attrs["baseline_score"] = baseline
    return out


def shap_importance(
    lgbm_model,
    X: pd.DataFrame,
    groups: Mapping[str, Sequence[str]],
    max_rows: int | None = SHAP_MAX_ROWS,
    random_state: int = 0,
) -> pd.DataFrame:
    """Mean absolute SHAP value of each feature, from LightGBM's ``pred_contrib``.

    A feature's contribution in a row is the sum of its columns' contributions (raw log-odds
    scale); the importance is the mean over rows of its absolute value. ``pred_contrib`` costs
    a few CPU-seconds per 1,000 rows at 200 trees, hence the row sample.

    Parameters
    ----------
    lgbm_model : lightgbm.LGBMClassifier or lightgbm.Booster
        Fitted on the columns of ``X`` in that order.
    X : DataFrame
        Model matrix.
    groups : dict
        ``{feature: [columns of X]}``.
    max_rows : int or None, default 1000
        Rows used (seeded random sample); None uses all.
    random_state : int, default 0

    Returns
    -------
    DataFrame
        ``feature``, ``mean_abs_shap``.
    """
    if not isinstance(X, pd.DataFrame):
        raise TypeError(f"X must be a pandas DataFrame, got {type(X).__name__}")
    columns = [str(c) for c in X.columns]
    _check_groups(groups, columns)
    booster = getattr(lgbm_model, "booster_", lgbm_model)
    rows = _row_sample(None, len(X), max_rows, random_state)
    contrib = np.asarray(booster.predict(X.to_numpy(dtype="float64")[rows], pred_contrib=True))
    if contrib.shape[1] != len(columns) + 1:
        raise ValueError(
            f"the LightGBM model gives {contrib.shape[1] - 1} contributions but X has "
            f"{len(columns)} columns; pass the matrix the model was fitted on"
        )
    contrib = contrib[:, :-1]  # the last column is the bias
    position = {c: i for i, c in enumerate(columns)}
    records = [
        (feature, float(np.abs(contrib[:, [position[c] for c in cols]].sum(axis=1)).mean()))
        for feature, cols in groups.items()
    ]
    return pd.DataFrame(records, columns=["feature", "mean_abs_shap"])


def impurity_importance(
    rf_model, columns: Sequence[str], groups: Mapping[str, Sequence[str]]
) -> pd.DataFrame:
    """The random forest's impurity importance summed over each feature's columns.

    Biased: it is computed on training rows and favours columns with many split points and
    features used by small, distinctive groups (niche premium features). Report it only
    beside the permutation importance, labelled as biased.

    Returns
    -------
    DataFrame
        ``feature``, ``impurity_biased``.
    """
    columns = [str(c) for c in columns]
    _check_groups(groups, columns)
    values = np.asarray(rf_model.feature_importances_, dtype="float64")
    if len(values) != len(columns):
        raise ValueError(
            f"the model has {len(values)} importances but {len(columns)} columns were given"
        )
    position = {c: i for i, c in enumerate(columns)}
    records = [
        (feature, float(values[[position[c] for c in cols]].sum()))
        for feature, cols in groups.items()
    ]
    return pd.DataFrame(records, columns=["feature", "impurity_biased"])


# --------------------------------------------------------------------------- verdicts


def _decimals(x: float, digits: int = 2) -> str:
    """``x`` with ``digits`` decimals (never ``-0.00``); ``n/a`` when it does not exist."""
    if x is None or not np.isfinite(x):
        return "n/a"
    text = f"{x:.{digits}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text  # no "-0.00"


def _pct(x: float) -> str:
    """``x`` as a percentage with one decimal; ``n/a`` when it does not exist."""
    return "n/a" if x is None or not np.isfinite(x) else f"{100 * x:.1f}%"


def _gt(x: float, bound: float) -> bool:
    """``x > bound``, False when x is NaN."""
    return x is not None and np.isfinite(x) and x > bound


def assign_verdicts(
    table: pd.DataFrame,
    prevalence_band: tuple[float, float] = PREVALENCE_BAND,
    min_importance: float = MIN_IMPORTANCE,
    top_n: int | None = None,
    confounding_share: float = CONFOUNDING_SHARE,
    confidence: float = CONFIDENCE,
    intensity_rule: bool = True,
) -> pd.DataFrame:
    """Give each feature exactly one verdict and a plain-words reason.

    The rules are applied in this order; the first that matches wins:

    1. ``no_signal`` when the prevalence is unknown (no rows to measure it).
    2. ``niche``: prevalence below ``prevalence_band[0]``. Few accounts use it; even when it
       predicts retention it describes a niche (often premium plans), not the base.
    3. Prevalence above ``prevalence_band[1]``: nearly everyone uses it, so *using* it
       separates nobody. It is ``milestone_candidate`` when ``intensity_rule`` is on, it is
       important (as in rule 4) and its ``intensity_lift`` interval lies above 1: how
       *much* it is used (per seat) predicts retention within plans, so the milestone is a
       threshold on its intensity (like utilization), not its use. Otherwise
       ``table_stakes``.
    4. ``milestone_candidate``: important (the permutation importance of the random forest or
       of LightGBM is at least ``min_importance``, or the feature is ranked within the top
       ``top_n`` with a positive importance) and the stratified (within-plan) lift's
       interval lies above 1.
    5. ``confounded``: the crude lift's interval lies above 1, but within plans the lift's
       interval includes 1 (or is undefined), or the within-plan excess
       ``log(stratified_lift)`` is less than ``confounding_share`` of the crude excess
       ``log(retention_lift)``: the gap mostly comes from plan, not from the feature.
    6. ``no_signal``: anything else (not important, no lift within plans, or users retain
       less than non-users).

    **Many features, many tests.** "Lies above 1" is decided with the false discovery rate
    controlled over all the features, not feature by feature: each lift's two-sided
    p-value of "lift = 1" is read off its interval (:func:`models.stats.p_from_log_interval`,
    below ``1 - confidence`` exactly when the interval excludes 1), the p-values of each
    family (crude lifts, lifts within plans, intensity lifts) are adjusted by
    Benjamini-Hochberg over the features (:func:`models.stats.bh_qvalues`), and a lift
    counts as above 1 when it is above 1 and its q-value is below ``1 - confidence``. Among
    the features called milestone candidates by their lift within plans, the expected share
    with no real lift is then at most ``1 - confidence``, however many features the data
    hold. The q-values are the ``retention_lift_q``, ``stratified_lift_q`` and
    ``intensity_lift_q`` columns.

    Parameters
    ----------
    table : DataFrame
        Columns ``feature``, ``prevalence``, ``importance_rf``, ``importance_gbm``,
        ``retention_lift``, ``retention_lift_low``, ``stratified_lift``,
        ``stratified_lift_low``, ``stratified_lift_high``, and ``importance_rank`` when
        ``top_n`` is given.
    prevalence_band : (low, high), default (0.05, 0.90)
    min_importance : float, default 0.002
        Minimum drop in ROC AUC.
    top_n : int or None, default None
        Also count the ``top_n`` best-ranked features as important. Off by default: with few
        features the top group can hold noise.
    confounding_share : float, default 0.5
    confidence : float, default 0.95
        The level of the intervals in ``table``; ``1 - confidence`` is the false discovery
        rate of each family of lift tests.
    intensity_rule : bool, default True
        Apply the intensity part of rule 3; it needs the ``intensity_lift_low`` column
        (:func:`adoption_table`) and is skipped without it.

    Returns
    -------
    DataFrame
        A copy of ``table`` with ``verdict``, ``reason`` and the q-values
        ``retention_lift_q``, ``stratified_lift_q`` (and ``intensity_lift_q`` when the
        intensity columns are present).
    """
    required = [
        "feature",
        "prevalence",
        "importance_rf",
        "importance_gbm",
        "retention_lift",
        "retention_lift_low",
        "retention_lift_high",
        "stratified_lift",
        "stratified_lift_low",
        "stratified_lift_high",
    ]
    if top_n is not None:
        required.append("importance_rank")
    require_columns(table, "table", required)
    low, high = (float(v) for v in prevalence_band)
    if not 0.0 <= low < high <= 1.0:
        raise ValueError(
            f"prevalence_band must satisfy 0 <= low < high <= 1, got {prevalence_band!r}"
        )
    if min_importance < 0:
        raise ValueError(f"min_importance must be >= 0, got {min_importance!r}")
    level = f"{100 * confidence:g}%"
    use_intensity = bool(intensity_rule) and "intensity_lift_low" in table.columns
    alpha = 1.0 - float(confidence)
    qvalues = {
        name: _lift_q(table, name, confidence)
        for name in ("retention_lift", "stratified_lift", "intensity_lift")
        if f"{name}_low" in table.columns and f"{name}_high" in table.columns
    }
    above = {
        name: (q < alpha) & (table[name].to_numpy(dtype="float64") > 1.0)
        for name, q in qvalues.items()
    }
    n_tested = int(np.isfinite(qvalues["stratified_lift"]).sum())
    fdr = f"q {{q}} over {n_tested} features, false discovery rate {100 * alpha:g}%"

    verdicts, reasons = [], []
    for i, row in enumerate(table.itertuples(index=False)):
        p = float(row.prevalence)
        imp = np.array([row.importance_rf, row.importance_gbm], dtype="float64")
        best = float(np.nanmax(imp)) if np.isfinite(imp).any() else math.nan
        in_top = (
            top_n is not None
            and np.isfinite(float(row.importance_rank))
            and float(row.importance_rank) <= top_n
            and _gt(best, 0.0)
        )
        important = (np.isfinite(best) and best >= min_importance) or in_top
        crude, crude_low = float(row.retention_lift), float(row.retention_lift_low)
        strat = float(row.stratified_lift)
        s_low, s_high = float(row.stratified_lift_low), float(row.stratified_lift_high)
        imp_words = (
            f"permuting it costs {_decimals(row.importance_rf, 4)} (random forest) and "
            f"{_decimals(row.importance_gbm, 4)} (LightGBM) ROC AUC"
        )
        strat_q = float(qvalues["stratified_lift"][i])
        within = (
            f"within the same plan, users' retention is {_decimals(strat)} times non-users' "
            f"({level} CI {_decimals(s_low)} to {_decimals(s_high)}; "
            + fdr.format(q="< 0.001" if strat_q < 0.001 else _decimals(strat_q, 3))
            + ")"
        )
        overall = (
            f"overall, users' retention is {_decimals(crude)} times non-users' "
            f"({level} CI {_decimals(crude_low)} to {_decimals(float(row.retention_lift_high))})"
        )

        if not np.isfinite(p):
            verdict = "no_signal"
            reason = "No labelled rows to measure how many accounts use it."
        elif p < low:
            verdict = "niche"
            reason = (
                f"Used by {_pct(p)} of accounts, below the {_pct(low)} adoption band: it "
                f"describes a niche, not the customer base ({imp_words})."
            )
        elif p > high:
            i_low = float(getattr(row, "intensity_lift_low", math.nan))
            intensity = (
                f"within the same plan, its heavier users (above the median count per seat) "
                f"retain {_decimals(float(getattr(row, 'intensity_lift', math.nan)))} times "
                "as well as "
                f"its lighter users ({level} CI {_decimals(i_low)} to "
                f"{_decimals(float(getattr(row, 'intensity_lift_high', math.nan)))})"
            )
            i_above = "intensity_lift" in above and bool(above["intensity_lift"][i])
            if use_intensity and important and i_above:
                verdict = "milestone_candidate"
                reason = (
                    f"Used by {_pct(p)} of accounts, so using it separates nobody, but its "
                    f"intensity (count per seat) predicts retention: {intensity}; {imp_words}. "
                    "The milestone is a threshold on how much it is used, not on its use."
                )
            else:
                verdict = "table_stakes"
                reason = (
                    f"Used by {_pct(p)} of accounts, above the {_pct(high)} adoption band: "
                    f"nearly everyone uses it, so it separates nobody ({imp_words}"
                    + (f"; {intensity}" if use_intensity and np.isfinite(i_low) else "")
                    + ")."
                )
        elif important and above["stratified_lift"][i]:
            verdict = "milestone_candidate"
            reason = f"Used by {_pct(p)} of accounts; {within}; {imp_words}."
        elif above["retention_lift"][i] and (
            not above["stratified_lift"][i]
            or not _gt(strat, 0.0)
            or math.log(strat) < confounding_share * math.log(crude)
        ):
            verdict = "confounded"
            reason = (
                f"Used by {_pct(p)} of accounts; {overall}, but {within}: the gap mostly "
                "comes from plan, not from the feature."
            )
        else:
            verdict = "no_signal"
            if np.isfinite(s_high) and s_high < 1.0:
                why = f"users retain less than non-users: {within}"
            elif not above["stratified_lift"][i]:
                why = f"no retention lift: {within}"
            else:
                why = f"not important enough: {imp_words} (below {min_importance:g}); {within}"
            reason = f"Used by {_pct(p)} of accounts; {why}."
        verdicts.append(verdict)
        reasons.append(reason)
    out = table.copy()
    for name, q in qvalues.items():
        out[f"{name}_q"] = q
    out["verdict"] = verdicts
    out["reason"] = reasons
    return out


def _lift_q(table: pd.DataFrame, name: str, confidence: float) -> np.ndarray:
    """Benjamini-Hochberg q-values of ``name`` = 1 over the features, from its intervals."""
    p = p_from_log_interval(
        table[f"{name}_low"].to_numpy(dtype="float64"),
        table[f"{name}_high"].to_numpy(dtype="float64"),
        confidence,
    )
    return bh_qvalues(p)


# --------------------------------------------------------------------------- ranking


def rank_features(
    models: RetentionModels,
    test_df: pd.DataFrame,
    snapshots_labelled: pd.DataFrame,
    events: Sequence[str] | None = None,
    *,
    n_repeats: int = PERMUTATION_REPEATS,
    max_rows: int | None = PERMUTATION_MAX_ROWS,
    shap_rows: int | None = SHAP_MAX_ROWS,
    prevalence_band: tuple[float, float] = PREVALENCE_BAND,
    min_importance: float = MIN_IMPORTANCE,
    top_n: int | None = None,
    confounding_share: float = CONFOUNDING_SHARE,
    confidence: float = CONFIDENCE,
    plan_col: str | None = "plan",
    lift_snapshots: int = LIFT_SNAPSHOTS,
    intensity_rule: bool = True,
    random_state: int = 0,
) -> pd.DataFrame:
    """Rank product features by permutation importance and set them against adoption.

    Parameters
    ----------
    models : RetentionModels
        Fitted models.
    test_df : DataFrame
        Held-out labelled rows for the permutation and SHAP importance: the out-of-time
        test set, or every row of the accounts kept out of training
        (:func:`models.training.held_out_rows`), which gives far less noisy per-feature
        importances.
    snapshots_labelled : DataFrame
        Snapshot rows for :func:`adoption_table` (prevalence at its newest labelled
        snapshot date, lifts over the newest ``lift_snapshots`` dates).
    events : sequence of str, optional
        Features to rank; default: the features the models were fitted on.
    n_repeats, max_rows : see :func:`grouped_permutation_importance`
    shap_rows : see ``max_rows`` of :func:`shap_importance`
    prevalence_band, min_importance, top_n, confounding_share, intensity_rule :
        see :func:`assign_verdicts`
    confidence, plan_col, lift_snapshots : see :func:`adoption_table`
    random_state : int, default 0

    Returns
    -------
    DataFrame
        :data:`IMPORTANCE_COLUMNS`, one row per feature, sorted by ``importance_rank``
        (1 = the highest mean of ``importance_rf`` and ``importance_gbm``; ties by name).
        ``importance_rf``/``_gbm`` are mean drops in ROC AUC, ``_std`` their spread;
        ``shap_gbm`` is the mean absolute LightGBM contribution (log-odds);
        ``impurity_rf_biased`` the random forest's impurity importance (biased toward niche
        features, for reference only).
    """
    if not hasattr(models, "gbm_"):
        raise ValueError("models must be a fitted RetentionModels (call fit first)")
    events = list(models.feature_events_ if events is None else events)
    unknown = [e for e in events if e not in models.groups_]
    if unknown:
        raise ValueError(f"feature '{unknown[0]}' is not in the fitted models")
    if len(set(events)) != len(events):
        raise ValueError("events holds duplicates")
    groups = {e: models.groups_[e] for e in events}
    test = labelled_rows(test_df)
    if test.empty:
        raise ValueError("test_df has no labelled rows")
    X = models.matrix(test)
    y = test[LABEL].to_numpy(dtype="float64")

    perm = {}
    for name in ("rf", "gbm"):
        perm[name] = grouped_permutation_importance(
            lambda frame, name=name: models.score_matrix(frame, model=name),
            X,
            y,
            groups,
            n_repeats=n_repeats,
            random_state=random_state,
            max_rows=max_rows,
        ).set_index("feature")
    # through the models, so that a category's breadth column (see RetentionModels) is
    # shared among its features
    rows = _row_sample(None, len(X), shap_rows, random_state)
    contrib = models.feature_contributions(X.iloc[rows])
    shap = pd.DataFrame(
        {"feature": events, "mean_abs_shap": [float(contrib[e].abs().mean()) for e in events]}
    )
    impurity_all = models.impurity_by_feature()
    impurity = pd.DataFrame(
        {"feature": events, "impurity_biased": [impurity_all[e] for e in events]}
    )
    adoption = adoption_table(
        snapshots_labelled,
        events,
        plan_col=plan_col,
        confidence=confidence,
        lift_snapshots=lift_snapshots,
    ).set_index("feature")

    table = pd.DataFrame({"feature": events})
    table["importance_rf"] = table["feature"].map(perm["rf"]["mean"])
    table["importance_gbm"] = table["feature"].map(perm["gbm"]["mean"])
    table["importance_rf_std"] = table["feature"].map(perm["rf"]["std"])
    table["importance_gbm_std"] = table["feature"].map(perm["gbm"]["std"])
    table["shap_gbm"] = table["feature"].map(shap.set_index("feature")["mean_abs_shap"])
    table["impurity_rf_biased"] = table["feature"].map(
        impurity.set_index("feature")["impurity_biased"]
    )
    for col in (
        "prevalence",
        "retention_lift",
        "retention_lift_low",
        "retention_lift_high",
        "stratified_lift",
        "stratified_lift_low",
        "stratified_lift_high",
        "intensity_lift",
        "intensity_lift_low",
        "intensity_lift_high",
    ):
        table[col] = table["feature"].map(adoption[col]).astype("float64")

    mean_imp = table[["importance_rf", "importance_gbm"]].mean(axis=1)
    names = table["feature"].astype(str).to_numpy()
    order = np.lexsort((names, -mean_imp.fillna(-np.inf).to_numpy()))
    rank = np.empty(len(table), dtype=np.int64)
    rank[order] = np.arange(1, len(table) + 1)
    table["importance_rank"] = rank

    table = assign_verdicts(
        table,
        prevalence_band=prevalence_band,
        min_importance=min_importance,
        top_n=top_n,
        confounding_share=confounding_share,
        confidence=confidence,
        intensity_rule=intensity_rule,
    )
    table = table.sort_values("importance_rank", kind="stable").reset_index(drop=True)
    table["judged"] = True
    table["accounts"] = pd.array([pd.NA] * len(table), dtype="Int64")
    table["rolled_up_into"] = pd.Series([None] * len(table), dtype=object)
    return table[IMPORTANCE_COLUMNS]


def with_unjudged(table: pd.DataFrame, selection=None) -> pd.DataFrame:
    """``importance.csv`` whole: the judged features' rows with the accounts that used each,
    then one row per name the models did not judge (``selection.skipped``, a
    :class:`features.selection.FeatureSelection`): its verdict (:data:`SKIPPED_VERDICTS`),
    its reason, its accounts, no importance. Without a selection, ``table`` unchanged."""
    if selection is None:
        return table
    out = table.copy()
    out["accounts"] = pd.array(
        [selection.accounts.get(f, pd.NA) for f in out["feature"]], dtype="Int64"
    )
    if not selection.skipped:
        return out
    rest = pd.DataFrame(list(selection.skipped))
    rest["judged"] = False
    rest["accounts"] = rest["accounts"].astype("Int64")
    rest = rest.reindex(columns=IMPORTANCE_COLUMNS)
    order = {v: i for i, v in enumerate(SKIPPED_VERDICTS)}
    rest = rest.sort_values(
        ["verdict", "accounts", "feature"],
        key=lambda c: c.map(order) if c.name == "verdict" else (-c if c.name == "accounts" else c),
        kind="stable",
    )
    out = pd.concat([out, rest], ignore_index=True)
    out["importance_rank"] = out["importance_rank"].astype("Int64")
    out["judged"] = out["judged"].astype(bool)
    return out[IMPORTANCE_COLUMNS]
