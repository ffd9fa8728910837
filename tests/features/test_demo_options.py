"""The demo generator's options: --effect planted|weak|smooth and --names standard|messy."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from scipy import stats

from features.demo import generate_demo, truth_dict, write_demo
from features.demo.simulate import simulate
from features.demo.world import ACTIVATION_EVENT, EVENT_CODE, EVENT_NAMES, messy_names

# sha256 of write_demo(n_accounts=300, seed=3, fmt="csv") before the options existed
DEFAULT_CSV_SHA256 = {
    "accounts.csv": "304b25db2efb02baee4504e18280a4bac7d5486d5c4198774f02dc1e4445e6a9",
    "events.csv": "5d8dfbdfc7d51a6ebbc20b62cad1f934fc101cb4fb755617f34a6062423532da",
    "truth.json": "e9c4db5ace265b47e3c8156c53f625ee169d935a3967f119020b80dbe7731398",
}


def test_default_options_write_the_same_bytes_as_before(tmp_path):
    write_demo(tmp_path, n_accounts=300, seed=3, fmt="csv", effect="planted", names="standard")
    for name, digest in DEFAULT_CSV_SHA256.items():
        assert hashlib.sha256((tmp_path / name).read_bytes()).hexdigest() == digest, name


def test_unknown_options_are_refused():
    with pytest.raises(ValueError, match="effect must be one of planted, weak, smooth"):
        generate_demo(50, effect="strong")
    with pytest.raises(ValueError, match="names must be one of standard, messy"):
        generate_demo(50, names="odd")


def _usage(effect: str, n_accounts: int = 2000, seed: int = 5) -> pd.DataFrame:
    """Per account: conversations per seat per 30 days over days 60-240 after signup, and
    whether it was still a customer 180 days after that; accounts followed for all of it
    and still customers at day 240."""
    end = "2026-06-30"
    accounts, acc_idx, ts = [], [], []
    code = EVENT_CODE[ACTIVATION_EVENT]
    for what, item in simulate(n_accounts, seed, end, 24, emit=True, effect=effect):
        if what == "accounts":
            accounts.append(item.to_pandas())
            continue
        events = item.column("event").combine_chunks()
        keep = events.indices.to_numpy(zero_copy_only=False) == code
        acc_idx.append(item.column("account_id").combine_chunks().indices.to_numpy()[keep])
        ts.append(item.column("occurred_at").cast(pa.int64()).to_numpy()[keep] // 10**6)
    acc = pd.concat(accounts, ignore_index=True)
    signup = acc["signup_at"].astype("int64").to_numpy() // 10**6
    idx, t = np.concatenate(acc_idx), np.concatenate(ts)
    day = (t - signup[idx]) / 86_400
    counts = np.bincount(idx[(day >= 60) & (day < 240)], minlength=len(acc))
    churn = acc["churned_at"]
    followed = acc["signup_at"] + pd.Timedelta(days=240 + 180) <= pd.Timestamp(end, tz="UTC")
    alive = churn.isna() | (churn > acc["signup_at"] + pd.Timedelta(days=240))
    frame = acc.assign(rate=counts / acc["seats"] / 6.0)
    frame["retained"] = churn.isna() | (churn > acc["signup_at"] + pd.Timedelta(days=420))
    return frame.loc[followed & alive]


def _high_low_p(frame: pd.DataFrame) -> tuple[float, float]:
    high = frame["rate"] >= frame["rate"].median()
    table = pd.crosstab(high, frame["retained"])
    diff = frame.loc[high, "retained"].mean() - frame.loc[~high, "retained"].mean()
    return float(stats.chi2_contingency(table)[1]), float(diff)


def test_weak_effect_churn_does_not_depend_on_usage():
    p_weak, diff_weak = _high_low_p(_usage("weak"))
    assert p_weak > 0.05 and abs(diff_weak) < 0.06, (p_weak, diff_weak)
    # the same check has the power to see the planted effect
    p_planted, diff_planted = _high_low_p(_usage("planted"))
    assert p_planted < 0.01 and diff_planted > 0.05, (p_planted, diff_planted)


def test_smooth_effect_retention_rises_by_usage_decile_without_a_step():
    frame = _usage("smooth", n_accounts=4000)
    decile = pd.qcut(frame["rate"].rank(method="first"), 10, labels=False)
    by_decile = frame.groupby(decile)["retained"].mean().to_numpy()
    rise = by_decile[-1] - by_decile[0]
    steps = np.diff(by_decile)
    assert rise > 0.15, by_decile
    assert stats.spearmanr(np.arange(10), by_decile)[0] > 0.85, by_decile
    assert (steps > 0).sum() >= 7, by_decile  # many small increments...
    assert steps.max() < 0.4 * rise, by_decile  # ... none of them a step


def test_messy_names_add_a_long_tail_and_keep_the_planted_events(tmp_path):
    standard = generate_demo(150, seed=2).events()
    demo = generate_demo(150, seed=2, names="messy")
    events = demo.events()
    names = set(events["event"].unique())
    for expected in (
        "Conversation Closed",
        "CONVERSATION_CLOSED",
        " inbox_viewed",
        'user said "hi"',
        "<b>x</b>",
        "'; DROP TABLE events; --",
        "\U0001f389 celebration",
        "x" * 300,
        "count",
        "event",
        "account_id",
    ):
        assert expected in names, expected
    assert len(names - set(EVENT_NAMES)) > 150
    # Zipf volumes: the commonest noise name far more frequent than the median one
    volumes = events.loc[~events["event"].isin(EVENT_NAMES), "event"].value_counts()
    assert volumes.iloc[0] > 20 * volumes.median()
    # the product's own events are exactly those of the standard names
    kept = events[events["event"].isin(EVENT_NAMES)].reset_index(drop=True)
    pd.testing.assert_frame_equal(kept, standard.reset_index(drop=True))
    assert demo.truth["options"]["names"] == "messy"
    assert truth_dict(2, 150, demo.end, 24) == generate_demo(150, seed=2).truth
    # the names survive a CSV round trip (quoted where needed)
    written = write_demo(tmp_path, n_accounts=60, seed=2, fmt="csv", names="messy")
    back = pd.read_csv(written["events"], keep_default_na=False)
    assert set(back["event"]) - set(EVENT_NAMES) <= set(messy_names())
    assert "a,b;c" in set(back["event"]) or "a,b;c" not in set(events["event"])
