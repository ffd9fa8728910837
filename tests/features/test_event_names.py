"""Event names are data, never identifiers (issue 12).

Names that differ only in case or spacing, quotes, HTML, SQL, emoji, 300 characters and the
tables' own column names are each their own feature end to end: the engine's counts match a
brute-force count per name, every name is listed once in ``importance.csv``, the report
shows the HTML names as text. The selection rule (``features.min_accounts``, ``include``,
``exclude``, ``rollup``) is checked on hand-made counts with exact expected values.
"""

from __future__ import annotations

import datetime as dt
import html
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from features import io, tables
from features.columns import (
    code_of,
    feature_col,
    feature_of,
    maturity_col,
    name_lookup,
    setup_col,
    tenure_col,
)
from features.selection import apply_rule, rollup_members, select_features
from features.validation import validate_feature_tables
from models.importance import IMPORTANCE_COLUMNS, with_unjudged

ODD = [
    "Login",
    "login",
    "LOGIN",
    "Invoice Sent",
    "invoice_sent",
    "invoice sent",
    "Invoice  Sent",
    "invoice_sent ",
    'say "hi"',
    "it's",
    "<script>alert(1)</script>",
    "<b>bold</b>",
    "'; DROP TABLE events; --",
    "\U0001f389 party",
    "\U0001f44d",
    "x" * 300,
    "count",
    "event",
    "account_id",
    "gw__x",
    "maturity",
    "used",
    "a__count",
    "h0123456789abcdef",
    "=SUM(A1:A2)",
]
AS_OF = dt.datetime(2025, 6, 30, 23, 59, 59)


# ----------------------------------------------------------------------------- codes


def test_codes_are_column_safe_distinct_and_stable():
    codes = [code_of(n) for n in ODD]
    assert len(set(codes)) == len(ODD)
    # distinct even for an engine whose identifiers ignore case (DuckDB)
    assert len({c.lower() for c in codes}) == len(ODD)
    for name, code in zip(ODD, codes, strict=True):
        assert code.isascii() and code == code.lower() and "__" not in code, (name, code)
        assert len(code) <= 40
    assert code_of("invoice_sent") == "invoice_sent"  # a plain name is its own code
    assert code_of("Invoice Sent") == code_of("Invoice Sent")  # deterministic
    assert code_of("count") != "count" and code_of("h0123456789abcdef") != "h0123456789abcdef"
    lookup = name_lookup(ODD)
    for name in ODD:
        assert feature_of(feature_col(name, "count"), lookup) == name
    assert maturity_col("count") != feature_col("maturity", "count")
    assert setup_col("Login") != setup_col("login")
    assert tenure_col("gw", "LOGIN") != tenure_col("gw", "login")


# ----------------------------------------------------------------------------- engine


def _odd_log(n_accounts: int = 12, seed: int = 5) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    accounts = pd.DataFrame(
        {
            "account_id": [f"a{i:02d}" for i in range(n_accounts)],
            "signup_at": pd.to_datetime("2025-01-01")
            + pd.to_timedelta(rng.integers(0, 40, n_accounts), unit="D"),
            "churned_at": pd.NaT,
            "seats": rng.integers(1, 4, n_accounts).astype("int32"),
            "plan": rng.choice(["basic", "pro"], n_accounts),
        }
    )
    rows = []
    for i, acc in accounts.iterrows():
        for name in ODD:
            for _ in range(int(rng.integers(0, 4))):
                day = int(rng.integers(0, 150))
                at = acc.signup_at + pd.Timedelta(days=day, hours=int(rng.integers(0, 24)))
                rows.append((acc.account_id, name, at))
        del i
    events = pd.DataFrame(rows, columns=["account_id", "event", "occurred_at"])
    events = events[events["occurred_at"] <= pd.Timestamp(AS_OF)].reset_index(drop=True)
    return accounts, events


def _daily(folder: Path, accounts: pd.DataFrame, events: pd.DataFrame):
    folder.mkdir(parents=True, exist_ok=True)
    acc = pa.Table.from_pandas(accounts, preserve_index=False)
    acc = acc.set_column(2, "churned_at", pa.array([None] * len(accounts), pa.timestamp("us")))
    pq.write_table(acc, folder / "accounts.parquet")
    ev = pa.table(
        {
            "account_id": events["account_id"],
            "event": events["event"],
            "occurred_at": pa.array(
                events["occurred_at"].dt.tz_localize("UTC"), pa.timestamp("us", tz="UTC")
            ),
            "quantity": pa.array(np.ones(len(events)), pa.float64()),
        }
    )
    pq.write_table(ev, folder / "events.parquet")
    con = io.connect()
    acc_raw, ev_raw = io.read_inputs(
        con, io.Source(str(folder / "accounts.parquet")), io.Source(str(folder / "events.parquet"))
    )
    acc_t, ev_t = io.typed_accounts(acc_raw), io.typed_events(ev_raw)
    return con, tables.daily_aggregate(acc_t, ev_t, as_of=AS_OF)


def test_counts_per_name_match_a_brute_force_count(tmp_path):
    accounts, events = _odd_log()
    con, daily = _daily(tmp_path, accounts, events)
    assert sorted(tables.event_names(daily)) == sorted(ODD)
    aw, gw = 60, 7
    tenure_expr = tables.tenure_table(
        daily,
        as_of=AS_OF,
        events=ODD,
        setup_steps=["Login", "login", "<b>bold</b>"],
        setup_window_days=14,
        activation_event="Invoice Sent",
        activation_window_days=aw,
        horizon_days=30,
        golden_week_days=gw,
    )
    date = dt.date(2025, 5, 31)
    snap_expr = tables.snapshot_table(
        daily,
        dates=[date],
        as_of=AS_OF,
        events=ODD,
        categories={"Mixed Case": ["Login", "LOGIN"], "mixed case": ["login", "count"]},
        utilization_event="invoice_sent",
        utilization_window_days=30,
        period_days=30,
        maturity_window_days=30,
        trailing_days=30,
        horizon_days=30,
        activation_window_days=aw,
        require_window_closed=False,
    )
    built = {
        "tenure": tables.materialise(con, "ms_tenure", tenure_expr),
        "snapshots": tables.materialise(con, "ms_snapshots", snap_expr),
    }
    assert validate_feature_tables(con, built).ok
    tenure = tables.to_frame(built["tenure"], tables.TENURE_ORDER).set_index("account_id")
    snaps = tables.to_frame(built["snapshots"], tables.SNAPSHOT_ORDER).set_index("account_id")

    ev = events.merge(accounts[["account_id", "signup_at"]], on="account_id")
    ev["di"] = (ev["occurred_at"].dt.normalize() - ev["signup_at"].dt.normalize()).dt.days
    ev["day"] = ev["occurred_at"].dt.date
    for name in ODD:
        mine = ev[ev["event"] == name]
        want_aw = mine[mine["di"] < aw].groupby("account_id").size()
        want_gw = mine[mine["di"] < gw].groupby("account_id").size()
        got_aw = tenure[tenure_col("aw", name)]
        got_gw = tenure[tenure_col("gw", name)]
        assert got_aw.to_dict() == want_aw.reindex(tenure.index, fill_value=0).to_dict(), name
        assert got_gw.to_dict() == want_gw.reindex(tenure.index, fill_value=0).to_dict(), name
        window = mine[(mine["day"] > date - dt.timedelta(days=30)) & (mine["day"] <= date)]
        want = window.groupby("account_id").size().reindex(snaps.index, fill_value=0)
        assert snaps[feature_col(name, "count")].to_dict() == want.to_dict(), name
        days = window.groupby("account_id")["day"].nunique().reindex(snaps.index, fill_value=0)
        assert snaps[feature_col(name, "days")].to_dict() == days.to_dict(), name
    # setup steps and categories that differ only in case are their own columns
    for step in ("Login", "login", "<b>bold</b>"):
        mine = ev[(ev["event"] == step) & (ev["di"] < 14)]
        done = tenure.index.isin(mine["account_id"])
        assert tenure[setup_col(step)].tolist() == done.tolist(), step
    for cat, feats in {"Mixed Case": ["Login", "LOGIN"], "mixed case": ["login", "count"]}.items():
        used = sum(snaps[feature_col(f, "count")] > 0 for f in feats)
        assert snaps[maturity_col(cat)].tolist() == used.tolist(), cat


def test_a_roll_up_counts_its_events_as_one_feature(tmp_path):
    accounts, events = _odd_log(8, seed=2)
    con, daily = _daily(tmp_path, accounts, events)
    members = {"logins": ("LOGIN", "Login", "login")}
    date = dt.date(2025, 5, 31)
    snaps = tables.to_frame(
        tables.snapshot_table(
            daily,
            dates=[date],
            as_of=AS_OF,
            events=["logins", "count"],
            categories={},
            utilization_event="count",
            utilization_window_days=30,
            period_days=30,
            maturity_window_days=30,
            trailing_days=30,
            horizon_days=30,
            activation_window_days=10,
            require_window_closed=False,
            members=members,
        ),
        tables.SNAPSHOT_ORDER,
    ).set_index("account_id")
    ev = events.assign(day=events["occurred_at"].dt.date)
    window = ev[(ev["day"] > date - dt.timedelta(days=30)) & (ev["day"] <= date)]
    rolled = window[window["event"].isin(members["logins"])]
    count = rolled.groupby("account_id").size().reindex(snaps.index, fill_value=0)
    days = rolled.groupby("account_id")["day"].nunique().reindex(snaps.index, fill_value=0)
    assert snaps[feature_col("logins", "count")].to_dict() == count.to_dict()
    assert snaps[feature_col("logins", "days")].to_dict() == days.to_dict()  # a day once
    assert feature_col("Login", "count") not in snaps.columns  # only the roll-up
    n = tables.feature_accounts(daily, {"logins": members["logins"], "count": ["count"]})
    assert n["logins"] == ev[ev["event"].isin(members["logins"])]["account_id"].nunique()
    assert n["count"] == ev[ev["event"] == "count"]["account_id"].nunique()
    con.disconnect()


# ----------------------------------------------------------------------------- the rule

NAMES = ["a", "b", "B", "page_view:home", "page_view:pricing", "page_view", "debug_x", "rare"]
USERS = {
    "a": 50,
    "b": 31,
    "B": 30,
    "page_view:home": 20,
    "page_view:pricing": 15,
    "page_view": 5,
    "debug_x": 99,
    "rare": 29,
}


def test_the_rule_min_accounts_exclude_rollup_with_exact_values():
    members = rollup_members(NAMES, exclude=["debug_*"], rollup={"page_view": "page_view:*"})
    assert members == {"page_view": ("page_view", "page_view:home", "page_view:pricing")}
    sel = apply_rule(
        NAMES,
        USERS,
        {"page_view": 33},
        min_accounts=30,
        exclude=["debug_*"],
        rollup={"page_view": "page_view:*"},
    )
    assert sel.judged == ("B", "a", "b", "page_view")
    assert sel.accounts == {"B": 30, "a": 50, "b": 31, "page_view": 33}
    assert sel.judged_members() == members
    rows = {r["feature"]: r for r in sel.skipped}
    assert set(rows) == {"debug_x", "rare", "page_view:home", "page_view:pricing"}
    assert rows["debug_x"]["verdict"] == "excluded" and "'debug_*'" in rows["debug_x"]["reason"]
    assert rows["rare"]["verdict"] == "too_rare" and rows["rare"]["accounts"] == 29
    assert "fewer than features.min_accounts = 30" in rows["rare"]["reason"]
    assert rows["page_view:home"]["verdict"] == "rolled_up"
    assert rows["page_view:home"]["rolled_up_into"] == "page_view"
    # every name once: judged, or listed with its reason (a roll-up's own name is the roll-up)
    assert sorted([*sel.judged, *rows]) == sorted(NAMES)


def test_the_rule_include_and_the_cap():
    sel = apply_rule(NAMES, USERS, min_accounts=30, include=["a", "b*", "debug_*"])
    assert sel.judged == ("a", "b", "debug_x")  # "B": include is case-sensitive
    rows = {r["feature"]: r for r in sel.skipped}
    assert rows["B"]["verdict"] == "excluded" and "include" in rows["B"]["reason"]
    assert rows["rare"]["verdict"] == "excluded"  # not included comes before too rare
    capped = apply_rule(NAMES, USERS, min_accounts=1, max_features=2, configured=["rare"])
    # the two most used, and the configured event on top of the cap
    assert capped.judged == ("a", "debug_x", "rare")
    cut = {r["feature"]: r for r in capped.skipped}
    assert cut["b"]["verdict"] == "too_rare" and "only the 2 most used" in cut["b"]["reason"]
    assert sorted([*capped.judged, *cut]) == sorted(NAMES)


def test_unjudged_names_are_listed_once_in_importance():
    sel = apply_rule(
        NAMES, USERS, {"page_view": 33}, min_accounts=30, rollup={"page_view": "page_view:*"}
    )
    judged = pd.DataFrame({c: [np.nan] * len(sel.judged) for c in IMPORTANCE_COLUMNS})
    judged["feature"] = list(sel.judged)
    judged["verdict"] = "no_signal"
    judged["importance_rank"] = range(1, len(sel.judged) + 1)
    out = with_unjudged(judged, sel)
    assert list(out.columns) == IMPORTANCE_COLUMNS
    assert out["feature"].is_unique and sorted(out["feature"]) == sorted([*NAMES])
    assert out.set_index("feature")["accounts"].to_dict()["page_view"] == 33
    assert out["judged"].tolist() == [True] * len(sel.judged) + [False] * len(sel.skipped)


def test_selection_counts_accounts_in_the_engine(tmp_path):
    accounts, events = _odd_log(12, seed=3)
    con, daily = _daily(tmp_path, accounts, events)
    want = events.groupby("event")["account_id"].nunique()
    sel = select_features(daily, as_of=AS_OF, min_accounts=int(want.median()))
    passing = sorted(want[want >= int(want.median())].index)
    assert list(sel.judged) == passing
    assert sel.accounts == {e: int(want[e]) for e in passing}
    assert sorted([*sel.judged, *(r["feature"] for r in sel.skipped)]) == sorted(ODD)
    con.disconnect()


def test_event_accounts_count_only_the_days_up_to_as_of(tmp_path):
    """The selection's one query: per name, the accounts with a row on or before ``as_of``'s
    date (0 for a name used only later), against a brute-force count."""
    accounts, events = _odd_log(12, seed=4)
    con, daily = _daily(tmp_path, accounts, events)
    cut = dt.datetime(2025, 3, 15, 12, 0)
    early = events[events["occurred_at"].dt.date <= cut.date()]
    want = early.groupby("event")["account_id"].nunique()
    got = tables.event_accounts(daily, as_of=cut)
    assert list(got) == sorted(events["event"].unique())  # every name, in name order
    assert got == {e: int(want.get(e, 0)) for e in got}
    assert tables.event_accounts(daily) == events.groupby("event")["account_id"].nunique().to_dict()
    con.disconnect()


# ----------------------------------------------------------------------------- whole runs


def _messy_run(tmp: Path, n_accounts: int, fast: bool) -> tuple[Path, dict]:
    from conftest import FAST, demo_config_text
    from typer.testing import CliRunner

    from features.demo import write_demo
    from flows.cli import app

    written = write_demo(tmp / "data", n_accounts=n_accounts, seed=1, names="messy")
    cfg = tmp / "demo.yaml"
    cfg.write_text(
        demo_config_text(
            written["accounts"],
            written["events"],
            f"sqlite:///{tmp / 'mlflow.db'}",
            **(FAST if fast else {}),
        )
    )
    res = CliRunner().invoke(app, ["run", "--config", str(cfg), "--out", str(tmp / "out")])
    assert res.exit_code == 0, res.output + str(res.exception)
    return tmp / "out", written


@pytest.mark.slow
def test_a_run_on_messy_names_lists_every_name_once_and_escapes_them(tmp_path, prefect_harness):
    out, written = _messy_run(tmp_path, 400, fast=True)
    names = set(pd.read_parquet(written["events"], columns=["event"])["event"])
    importance = pd.read_parquet(out / "importance.parquet")
    assert importance["feature"].is_unique
    assert set(importance["feature"]) == names
    assert (importance["judged"] | importance["verdict"].isin(["too_rare"])).all()
    csv = pd.read_csv(out / "importance.csv", keep_default_na=False)
    assert len(csv) == len(importance)
    page = (out / "report.html").read_text()
    assert "<script>alert(1)</script>" not in page
    shown = importance[importance["judged"]]["feature"]
    for name in shown:
        if "<" in name:
            assert html.escape(name, quote=False) in page or html.escape(name) in page, name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["distinct_events"] == len(names)
    assert summary["judged_features"] == int(importance["judged"].sum())


@pytest.mark.slow
def test_the_planted_activation_threshold_is_recovered_on_messy_names(tmp_path, prefect_harness):
    out, written = _messy_run(tmp_path, 5000, fast=False)
    truth = json.loads(Path(written["truth"]).read_text())
    block = json.loads((out / "thresholds.json").read_text())["activation"]
    planted = truth["activation"]["threshold"]
    assert abs(block["threshold"] - planted) <= 0.10 * planted, block["threshold"]
    assert block["ci"][0] <= planted <= block["ci"][1], block["ci"]
