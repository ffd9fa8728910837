"""The demo generator: determinism, the data contract, and the planted milestones.

The planted effects are checked with plain pandas, in the pipeline's own terms (day index =
date difference, "within W days" = day index in [0, W), trailing windows [S - W + 1, S],
labels at signup + 60 + 180 and at S + 180).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from features.demo import generate_demo, write_demo
from features.demo.world import (
    MATURITY_CATEGORIES,
    MATURITY_THRESHOLDS,
    SETUP_IRRELEVANT,
    SETUP_TRUE,
)

END = pd.Timestamp("2026-06-30", tz="UTC")
DEMO_YAML = Path(__file__).resolve().parents[2] / "configs" / "demo.yaml"


@pytest.fixture(scope="module")
def small():
    data = generate_demo(n_accounts=500, seed=11)
    return data, data.events()


@pytest.fixture(scope="module")
def sample():
    """A moderately sized sample (2000 accounts), with the daily aggregate the checks use."""
    data = generate_demo(n_accounts=2000, seed=3)
    acc = data.accounts.set_index("account_id")
    acc["signup_date"] = acc.signup_at.dt.normalize()
    acc["churn_date"] = acc.churned_at.dt.normalize()
    daily = pd.concat(
        [
            c.assign(day=c.occurred_at.dt.normalize())
            .groupby(["account_id", "event", "day"], observed=True)
            .size()
            .rename("n")
            .reset_index()
            for c in data.iter_event_chunks()
        ]
    )
    daily = daily.groupby(["account_id", "event", "day"], as_index=False).n.sum()
    daily["day_index"] = (daily.day - daily.account_id.map(acc.signup_date)).dt.days
    return data, acc, daily


def _customer_at(acc: pd.DataFrame, date) -> pd.Series:
    return acc.churned_at.isna() | (acc.churn_date > date)


def _tenure(acc: pd.DataFrame, daily: pd.DataFrame) -> pd.DataFrame:
    """Accounts labelled for activation: customers at signup + 60, label date <= end."""
    conv = daily[(daily.event == "conversation_closed") & daily.day_index.between(0, 59)]
    t = acc.copy()
    t["activation_count"] = conv.groupby("account_id").n.sum().reindex(t.index).fillna(0)
    window_end = t.signup_date + pd.Timedelta(days=60)
    label = window_end + pd.Timedelta(days=180)
    t["labelled"] = _customer_at(t, window_end) & (label <= END)
    t["retained"] = _customer_at(t, label)
    t["window_closed"] = _customer_at(t, window_end) & (window_end <= END)
    return t


# --------------------------------------------------------------------------------------


def test_same_seed_same_data_other_seed_differs(small):
    data, events = small
    again = generate_demo(n_accounts=500, seed=11)
    pd.testing.assert_frame_equal(data.accounts, again.accounts)
    pd.testing.assert_frame_equal(events, again.events())
    other = generate_demo(n_accounts=500, seed=12)
    assert not data.accounts.equals(other.accounts)
    assert len(other.events()) != len(events) or not other.events().equals(events)


def test_accounts_contract(small):
    data, _ = small
    acc = data.accounts
    assert list(acc.columns) == ["account_id", "signup_at", "churned_at", "seats", "plan", "region"]
    assert len(acc) == 500 and acc.account_id.is_unique
    assert acc.account_id.iloc[0] == "acc_000001"
    assert str(acc.signup_at.dt.tz) == "UTC" and str(acc.churned_at.dt.tz) == "UTC"
    assert (acc.signup_at >= END - pd.DateOffset(months=24)).all() and (acc.signup_at < END).all()
    churned = acc[acc.churned_at.notna()]
    assert 0.15 < len(churned) / len(acc) < 0.7
    assert (churned.churned_at >= churned.signup_at).all() and (churned.churned_at <= END).all()
    assert (acc.seats >= 1).all() and acc.seats.max() > 20 and (acc.seats == 1).any()
    assert set(acc.plan) == {"starter", "pro", "enterprise"}
    assert acc.region.notna().all()


def test_events_contract(small):
    data, ev = small
    acc = data.accounts.set_index("account_id")
    assert list(ev.columns) == ["account_id", "event", "occurred_at", "quantity", "user_id"]
    assert str(ev.occurred_at.dt.tz) == "UTC"
    assert set(ev.account_id) <= set(acc.index)
    assert (ev.quantity == 1.0).all() and ev.user_id.notna().all()
    signup = ev.account_id.map(acc.signup_at)
    churn = ev.account_id.map(acc.churned_at)
    assert (ev.occurred_at >= signup).all(), "event before signup"
    assert (ev.occurred_at <= END).all(), "event after end"
    assert not (churn.notna() & (ev.occurred_at >= churn)).any(), "event at or after churn"
    configured = yaml.safe_load(DEMO_YAML.read_text())["milestones"]
    names = set(configured["setup"]["steps"]) | {configured["activation"]["event"]}
    for feats in configured["maturity"]["categories"].values():
        names |= set(feats)
    assert names <= set(ev.event), names - set(ev.event)


def test_truth_matches_the_demo_configuration():
    truth = generate_demo(n_accounts=5, seed=0).truth
    m = yaml.safe_load(DEMO_YAML.read_text())["milestones"]
    setup = truth["setup"]
    assert set(setup["true_steps"] + setup["routine_steps"] + setup["irrelevant_steps"]) == set(
        m["setup"]["steps"]
    )
    assert truth["activation"] == {
        "event": "conversation_closed",
        "window_days": 60,
        "threshold": 20,
    }
    assert truth["utilization"]["threshold"] == 10 and truth["utilization"]["per_seat"] is True
    assert truth["maturity"]["categories"] == {
        "channels": 2,
        "automation": 2,
        "operations": 3,
        "interoperability": 1,
        "reporting": 2,
    }
    assert truth["maturity"]["min_categories"] == 3
    assert {k: list(v) for k, v in MATURITY_CATEGORIES.items()} == m["maturity"]["categories"]
    assert truth["features"]["niche"] == ["sla_policy_custom"]
    assert truth["features"]["table_stakes"] == ["inbox_viewed"]
    assert "sla_rule_applied" in truth["features"]["drivers"]
    json.dumps(truth)


def test_activation_step_is_planted(sample):
    _, acc, daily = sample
    t = _tenure(acc, daily)
    lab = t[t.labelled]
    count = lab.activation_count
    # spread smoothly across the threshold, no pile-up at it
    assert (count < 20).mean() > 0.3 and (count >= 20).mean() > 0.25
    assert (count >= 60).mean() > 0.02 and (count == 20).mean() < 0.05
    above = lab.retained[count >= 20].mean()
    below = lab.retained[count < 20].mean()
    assert above - below > 0.06, (above, below)
    # the step sits at the threshold: just below looks like far below
    near = lab.retained[count.between(12, 19)].mean()
    assert near < above - 0.04


def test_setup_steps_drive_activation(sample):
    _, acc, daily = sample
    t = _tenure(acc, daily)
    t = t[t.window_closed]
    activated = t.activation_count >= 20
    done = (
        daily[daily.day_index.between(0, 20)]
        .groupby(["account_id", "event"])
        .size()
        .unstack(fill_value=0)
        .gt(0)
        .reindex(t.index, fill_value=False)
    )

    def lift(step):
        f = done[step].astype(bool)
        return activated[f].mean() - activated[~f].mean()

    true_lifts = [lift(s) for s in SETUP_TRUE]
    other_lifts = [lift(s) for s in SETUP_IRRELEVANT]
    assert min(true_lifts) > max(other_lifts) + 0.08, (true_lifts, other_lifts)
    for s in SETUP_TRUE:
        assert 0.35 < done[s].mean() < 0.75
    assert done["verify_email"].mean() > 0.9


def test_utilization_and_maturity_are_planted(sample):
    _, acc, daily = sample
    rows = []
    for S in pd.date_range("2024-10-31", "2025-12-31", freq="ME", tz="UTC"):
        a = acc[(acc.signup_date + pd.Timedelta(days=60) <= S) & _customer_at(acc, S)]
        w = daily[(daily.day > S - pd.Timedelta(days=90)) & (daily.day <= S)]
        conv = w[w.event == "conversation_closed"].groupby("account_id").n.sum()
        rate = conv.reindex(a.index).fillna(0) / a.seats / 3
        used = w.groupby(["account_id", "event"]).size().unstack(fill_value=0).gt(0)
        used = used.reindex(a.index, fill_value=False)
        mature = sum(
            used.reindex(columns=list(f), fill_value=False).sum(axis=1) >= MATURITY_THRESHOLDS[c]
            for c, f in MATURITY_CATEGORIES.items()
        )
        rows.append(
            pd.DataFrame(
                {
                    "rate": rate,
                    "mature": mature,
                    "retained": _customer_at(a, S + pd.Timedelta(days=180)),
                }
            )
        )
    snap = pd.concat(rows)
    assert 0.15 < (snap.rate >= 10).mean() < 0.6
    utilized = snap.retained[snap.rate >= 10].mean()
    not_utilized = snap.retained[snap.rate < 10].mean()
    assert utilized - not_utilized > 0.04, (utilized, not_utilized)
    mature = snap.retained[snap.mature >= 3].mean()
    immature = snap.retained[snap.mature < 3].mean()
    assert mature - immature > 0.05, (mature, immature)
    # every count of mature categories occurs
    assert set(snap.mature) == set(range(6))


def test_niche_and_table_stakes_features(sample):
    data, acc, daily = sample
    sla_users = daily.loc[daily.event == "sla_policy_custom", "account_id"].unique()
    assert 0.02 < len(sla_users) / len(acc) < 0.08
    assert (acc.plan.reindex(sla_users) == "enterprise").mean() > 0.8
    # enterprise has the lowest base hazard
    hazard = data.truth["plan_hazard"]
    assert hazard["enterprise"] < hazard["pro"] < hazard["starter"]
    months = daily.assign(m=daily.day.dt.tz_localize(None).dt.to_period("M"))
    per_month = months.groupby("m").account_id.nunique()
    inbox = months[months.event == "inbox_viewed"].groupby("m").account_id.nunique()
    assert (inbox / per_month).loc["2025-01":"2026-05"].min() > 0.95


def test_write_demo_csv_and_parquet_hold_the_same_rows(tmp_path):
    messages = []
    p = write_demo(tmp_path / "pq", n_accounts=300, seed=4, fmt="parquet", progress=messages.append)
    c = write_demo(tmp_path / "csv", n_accounts=300, seed=4, fmt="csv")
    assert messages
    assert p["n_events"] == c["n_events"] > 0 and p["n_accounts"] == 300
    for res, fmt in ((p, "parquet"), (c, "csv")):
        assert Path(res["accounts"]).name == f"accounts.{fmt}"
        assert Path(res["events"]).name == f"events.{fmt}"
        assert sorted(x.name for x in Path(res["events"]).parent.iterdir()) == sorted(
            [f"accounts.{fmt}", f"events.{fmt}", "truth.json"]
        ), "temporary files left behind"
    schema = pq.read_schema(p["events"])
    assert str(schema.field("occurred_at").type) == "timestamp[us, tz=UTC]"
    assert str(pq.read_schema(p["accounts"]).field("signup_at").type) == "timestamp[us, tz=UTC]"
    truth = json.loads(Path(p["truth"]).read_text())
    assert truth["seed"] == 4 and truth["n_accounts"] == 300 and truth["n_events"] == p["n_events"]

    key = ["account_id", "occurred_at", "event", "user_id"]
    ev_p = pd.read_parquet(p["events"]).sort_values(key, ignore_index=True)
    ev_c = pd.read_csv(c["events"])
    ev_c["occurred_at"] = pd.to_datetime(ev_c.occurred_at, utc=True).dt.as_unit("us")
    ev_c = ev_c.sort_values(key, ignore_index=True)
    assert len(ev_p) == p["n_events"]
    pd.testing.assert_frame_equal(ev_p, ev_c, check_dtype=False)

    acc_p = pd.read_parquet(p["accounts"])
    acc_c = pd.read_csv(c["accounts"])
    for col in ("signup_at", "churned_at"):
        acc_c[col] = pd.to_datetime(acc_c[col], utc=True).dt.as_unit("us")
    pd.testing.assert_frame_equal(acc_p, acc_c, check_dtype=False)
    assert np.array_equal(acc_p.seats.to_numpy(), acc_c.seats.to_numpy())

    # the same data as the in-memory generator
    gen = generate_demo(n_accounts=300, seed=4)
    pd.testing.assert_frame_equal(gen.accounts, acc_p)


def test_invalid_arguments(tmp_path):
    with pytest.raises(ValueError):
        generate_demo(n_accounts=0)
    with pytest.raises(ValueError):
        write_demo(tmp_path, n_accounts=10, fmt="json")


def test_the_cli_and_the_functions_default_to_the_same_demo_size():
    """``milestones demo`` without ``--accounts`` writes the size the acceptance set (and
    ``bench/seeds.py``) measure: ``world.DEMO_ACCOUNTS``."""
    import inspect

    from typer.main import get_command

    from features.demo.world import DEMO_ACCOUNTS
    from flows.cli import app

    options = {p.name: p for p in get_command(app).commands["demo"].params}
    assert options["accounts"].default == DEMO_ACCOUNTS
    for fn in (generate_demo, write_demo):
        assert inspect.signature(fn).parameters["n_accounts"].default == DEMO_ACCOUNTS
