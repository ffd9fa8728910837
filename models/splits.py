"""Which snapshot rows are trained on, tested on and sampled: pure functions on frames.

- :func:`labelled_rows`: the rows whose label is known (not censored, ``retained`` set);
- :func:`out_of_time_split`: train on older labelled snapshots, test on the newest ones,
  never letting one account's rows straddle the split, and training only on labels
  observed by the first test date (a gap of ``horizon_days``);
- :func:`held_out_rows`: every labelled row of the accounts kept out of training (for
  permutation importance);
- :func:`stratified_sample`: a bounded, class-balanced, deterministic sample of rows.

The models trained on these rows are in :mod:`models.training`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from features.columns import ACCOUNT_KEY, LABEL, SNAPSHOT_KEY
from models.defaults import TEST_ACCOUNT_SHARE, TEST_SNAPSHOTS
from models.stats import make_rng, require_columns

__all__ = ["held_out_rows", "labelled_rows", "out_of_time_split", "stratified_sample"]

#: Column marking rows whose label date lies after ``as_of`` (never trained on).
CENSORED = "censored"
#: With a gap, fewer test dates are used while training would hold fewer rows than this per
#: test row (see :func:`out_of_time_split`).
MIN_TRAIN_PER_TEST_ROW = 3


def labelled_rows(snapshots: pd.DataFrame) -> pd.DataFrame:
    """Rows whose label is known: not ``censored`` (when the column exists) and ``retained``
    not null.

    Parameters
    ----------
    snapshots : DataFrame
        The snapshot table.

    Returns
    -------
    DataFrame
        A copy holding the labelled rows only.
    """
    require_columns(snapshots, "snapshots", [LABEL])
    keep = snapshots[LABEL].notna()
    if CENSORED in snapshots.columns:
        keep &= ~snapshots[CENSORED].fillna(True).astype(bool)
    return snapshots.loc[keep.to_numpy()].copy()


def _labelled_positions(snapshots: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame]:
    """The positions of the labelled rows and their keys (account, date, label) only: the
    splits decide on these few columns and copy the wide rows once, at the end (a snapshot
    table of 100M events holds about a million rows of 200+ columns)."""
    keys = [c for c in (ACCOUNT_KEY, SNAPSHOT_KEY, LABEL, CENSORED) if c in snapshots.columns]
    small = snapshots[keys].reset_index(drop=True)
    labelled = labelled_rows(small)
    return labelled.index.to_numpy(), labelled.reset_index(drop=True)


# --------------------------------------------------------------------------- splits


def out_of_time_split(
    snapshots: pd.DataFrame,
    test_snapshots: int = TEST_SNAPSHOTS,
    *,
    test_account_share: float = TEST_ACCOUNT_SHARE,
    random_state: int = 0,
    horizon_days: int | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split labelled snapshots in time: the newest dates are the test set.

    Only labelled rows are used (not ``censored``, ``retained`` not null). The newest
    ``test_snapshots`` labelled snapshot dates form the test set; the older dates form the
    training set, from which every account that appears in the test set is removed, so that
    one account's snapshots never straddle the split.

    **Gap.** A snapshot's label is only known ``horizon_days`` after it: a March snapshot's
    180-day label lands in September, after April to June test dates. Training on it would
    use an outcome observed after the model is supposed to be scoring. So every training
    row's label date (``snapshot_date + horizon_days``) is on or before the first test
    snapshot date; the rows in between (the gap) are used for neither. Without
    ``horizon_days`` there is no gap (the pipeline always passes it).

    The gap costs the training set its newest (and, with customers accumulating, largest)
    month ends. So that the evaluation does not take most of a short history, the test set
    keeps fewer than ``test_snapshots`` dates when the training rows would otherwise number
    fewer than :data:`MIN_TRAIN_PER_TEST_ROW` per test row: test dates are given back one at
    a time, the oldest first (moving the first test date, and so the gap, later), down to a
    single test date. On the demo (24 months, a 180-day horizon, 3 test dates) this keeps
    one test date: 3,012 training rows against 874 test rows, instead of 1,821 against
    2,469.

    Parameters
    ----------
    snapshots : DataFrame
        The snapshot table with ``account_id``, ``snapshot_date`` and ``retained`` (and
        ``censored`` when present).
    test_snapshots : int, default 3
        Number of newest labelled snapshot dates held out.
    test_account_share : float, default 1.0
        Share of the accounts seen at the test dates that go to the test set. With 1.0 (the
        rule above) the training set only keeps accounts that left before the test dates,
        which biases its retention rate downward when most customers stay. With a smaller
        share, a random (seeded) subset of those accounts forms the test set and the other
        accounts keep their older rows in train; their test-date rows are dropped, so the
        split stays both out of time and account-disjoint. The same share of the accounts
        that left before the test dates is dropped from training as well, so that training
        is a random sample of accounts (it would otherwise over-represent early churners and
        bias the predicted retention low).
    random_state : int, default 0
        Seed of the account draw when ``test_account_share < 1``.
    horizon_days : int, optional
        The label horizon (``retention.horizon_days``): training rows need
        ``snapshot_date + horizon_days <= `` the first test date.

    Returns
    -------
    (train, test) : tuple of DataFrame
        Copies of the rows, in their original order.

    Raises
    ------
    ValueError
        When a column is missing, ``test_snapshots`` is not a positive integer, there are
        not more labelled snapshot dates than ``test_snapshots``, or no labelled snapshot
        date is old enough for its label to be known by the first test date (the message
        names the dates and the horizon).
    """
    require_columns(snapshots, "snapshots", [ACCOUNT_KEY, SNAPSHOT_KEY, LABEL])
    if isinstance(test_snapshots, bool) or not isinstance(test_snapshots, (int, np.integer)):
        raise ValueError(f"test_snapshots must be a positive integer, got {test_snapshots!r}")
    if test_snapshots < 1:
        raise ValueError(f"test_snapshots must be a positive integer, got {test_snapshots!r}")
    if not 0.0 < test_account_share <= 1.0:
        raise ValueError(f"test_account_share must be in (0, 1], got {test_account_share!r}")
    if horizon_days is not None and (
        isinstance(horizon_days, bool)
        or not isinstance(horizon_days, (int, np.integer))
        or horizon_days < 0
    ):
        raise ValueError(f"horizon_days must be a non-negative integer, got {horizon_days!r}")
    positions, labelled = _labelled_positions(snapshots)
    dates = labelled[SNAPSHOT_KEY].dropna().drop_duplicates().sort_values().tolist()
    if len(dates) <= test_snapshots:
        raise ValueError(
            f"snapshots has {len(dates)} labelled snapshot dates; need more than "
            f"test_snapshots={test_snapshots} to keep some for training"
        )
    for k in range(int(test_snapshots), 0, -1):
        test_dates = dates[-k:]
        in_test_dates = labelled[SNAPSHOT_KEY].isin(test_dates).to_numpy()
        known = _label_known_by(labelled, test_dates[0], horizon_days)
        in_train, in_test = _assign(labelled, in_test_dates, test_account_share, random_state)
        if known is None:
            break
        in_train &= known
        if in_train.sum() >= MIN_TRAIN_PER_TEST_ROW * in_test.sum():
            break
    if known is not None and not in_train.any():
        oldest = pd.Timestamp(dates[0]).date()
        first = pd.Timestamp(test_dates[0]).date()
        raise ValueError(
            f"no training rows: with horizon_days={horizon_days}, a training snapshot's "
            f"label must be known by the first test date {first}, the newest of "
            f"{len(dates)} labelled snapshot dates "
            f"(the oldest {oldest}; test_snapshots={test_snapshots} asked for); a longer "
            "history or a shorter horizon is needed"
        )
    return snapshots.iloc[positions[in_train]], snapshots.iloc[positions[in_test]]


def _assign(
    labelled: pd.DataFrame,
    in_test_dates: np.ndarray,
    test_account_share: float,
    random_state: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Training and test rows (before the gap) of the account rule described above."""
    test_accounts = pd.unique(labelled.loc[in_test_dates, ACCOUNT_KEY])
    if test_account_share < 1.0:
        rng = make_rng(random_state)
        accounts = labelled[ACCOUNT_KEY].astype(str)
        seen = np.sort(test_accounts.astype(str))
        n_test = max(1, round(test_account_share * len(seen)))
        chosen = set(rng.choice(seen, size=n_test, replace=False).tolist())
        # The same share of the accounts that left before the test dates is held out too
        # (their rows are dropped), so that training keeps 1 - share of every kind of
        # account: otherwise it over-represents the accounts that churned early.
        gone = np.setdiff1d(np.sort(accounts.unique()), seen)
        n_gone = round(test_account_share * len(gone))
        dropped = set(rng.choice(gone, size=n_gone, replace=False).tolist()) if n_gone else set()
        is_test_account = accounts.isin(chosen).to_numpy()
        is_held_out = is_test_account | accounts.isin(dropped).to_numpy()
    else:
        is_test_account = labelled[ACCOUNT_KEY].isin(test_accounts).to_numpy()
        is_held_out = is_test_account
    return ~in_test_dates & ~is_held_out, in_test_dates & is_test_account


def _label_known_by(
    labelled: pd.DataFrame, first_test: object, horizon_days: int | None
) -> np.ndarray | None:
    """Rows whose label date is on or before ``first_test``; None when there is no gap."""
    first = pd.Timestamp(first_test)
    if horizon_days is not None:
        snap = pd.to_datetime(labelled[SNAPSHOT_KEY])
        label_date = snap + pd.Timedelta(days=int(horizon_days))
    else:
        return None
    if getattr(label_date.dt, "tz", None) is not None and first.tzinfo is None:
        first = first.tz_localize(label_date.dt.tz)
    return (label_date <= first).fillna(False).to_numpy(dtype=bool)


def held_out_rows(snapshots: pd.DataFrame, train: pd.DataFrame) -> pd.DataFrame:
    """Labelled rows, at every date, of the accounts that are not in ``train``.

    After :func:`out_of_time_split` these are the test rows plus the older rows of the
    held-out accounts (the test accounts and, with ``test_account_share < 1``, the accounts
    dropped to keep training a random sample). No row of these accounts was trained on, so
    the set suits permutation importance, which needs held-out rows but not the newest
    dates, and it holds several times the test set's churned accounts: the per-feature
    importances are then far less noisy. Metrics stay on the out-of-time test set.

    Parameters
    ----------
    snapshots : DataFrame
        The snapshot table.
    train : DataFrame
        The training rows (only ``account_id`` is read).

    Returns
    -------
    DataFrame
        A copy of the rows, in their original order.
    """
    require_columns(train, "train", [ACCOUNT_KEY])
    require_columns(snapshots, "snapshots", [ACCOUNT_KEY])
    positions, labelled = _labelled_positions(snapshots)
    trained = set(train[ACCOUNT_KEY].astype(str))
    keep = ~labelled[ACCOUNT_KEY].astype(str).isin(trained).to_numpy()
    return snapshots.iloc[positions[keep]]


def stratified_sample(
    df: pd.DataFrame,
    row_budget: int,
    random_state: int = 0,
    by: Sequence[str] = (LABEL,),
) -> pd.DataFrame:
    """A bounded sample that keeps the share of each stratum (proportional allocation).

    Each stratum (a combination of the ``by`` columns, nulls included) gets
    ``row_budget * its share`` rows, the rounding remainder going to the largest fractional
    parts, and at least one row while the budget allows. The draw is seeded, so the same
    inputs give the same rows.

    Parameters
    ----------
    df : DataFrame
        Rows to sample from.
    row_budget : int
        Maximum number of rows returned. When ``df`` is not larger, a copy of ``df`` is
        returned.
    random_state : int, default 0
        Seed.
    by : sequence of str, default ("retained",)
        Columns defining the strata.

    Returns
    -------
    DataFrame
        A copy of the sampled rows, in their original order.
    """
    by = [by] if isinstance(by, str) else list(by)
    require_columns(df, "df", by)
    if isinstance(row_budget, bool) or not isinstance(row_budget, (int, np.integer)):
        raise ValueError(f"row_budget must be a positive integer, got {row_budget!r}")
    if row_budget < 1:
        raise ValueError(f"row_budget must be a positive integer, got {row_budget!r}")
    n = len(df)
    if n <= row_budget:
        return df.copy()
    codes = df.groupby(by, dropna=False, sort=True).ngroup().to_numpy()
    sizes = np.bincount(codes)
    alloc = _allocate(sizes, row_budget)
    rng = make_rng(random_state)
    chosen = []
    for code, k in enumerate(alloc):
        if k == 0:
            continue
        positions = np.flatnonzero(codes == code)
        chosen.append(rng.choice(positions, size=int(k), replace=False))
    picked = np.sort(np.concatenate(chosen))
    return df.iloc[picked].copy()


def _allocate(sizes: np.ndarray, budget: int) -> np.ndarray:
    """Largest-remainder proportional allocation of ``budget`` over strata of ``sizes``."""
    exact = sizes * budget / sizes.sum()
    alloc = np.floor(exact).astype(np.int64)
    # every non-empty stratum keeps at least one row while the budget allows
    empty = (alloc == 0) & (sizes > 0)
    alloc[empty] = 1
    left = budget - alloc.sum()
    if left > 0:
        order = np.lexsort((np.arange(len(sizes)), -(exact - np.floor(exact))))
        for i in order:
            if left == 0:
                break
            if alloc[i] < sizes[i]:
                alloc[i] += 1
                left -= 1
    while left < 0:  # the minimum of one row overshot: take back from the largest strata
        i = int(np.argmax(alloc))
        alloc[i] -= 1
        left += 1
    return np.minimum(alloc, sizes)
