"""A demo world where product usage carries no information about retention.

The demo generator plants milestones; here its accounts keep their plans, seats and usage,
but every churn date is drawn again, from a constant monthly hazard that depends on the plan
only: usage, setup, activation and breadth then say nothing about who stays beyond what the
plan says. The pipeline run on it must say so (issue 13).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

#: Monthly churn hazard by plan: the plan still predicts retention, usage does not.
HAZARD = {"starter": 0.06, "pro": 0.045, "enterprise": 0.03}
MONTH = pd.Timedelta(days=30.4375)


def write_null_world(out: Path, *, n_accounts: int = 1500, seed: int = 3) -> dict:
    """Write a demo into ``out``, then replace each account's ``churned_at`` by a draw that
    ignores its usage. Returns the demo's paths (``accounts``, ``events``)."""
    from features.demo import write_demo

    written = write_demo(Path(out), n_accounts=n_accounts, seed=seed)
    accounts = pd.read_parquet(written["accounts"])
    last_event = pd.read_parquet(written["events"], columns=["occurred_at"])["occurred_at"].max()
    rng = np.random.default_rng(seed)
    rate = accounts["plan"].map(HAZARD).fillna(min(HAZARD.values())).to_numpy(dtype=float)
    months = rng.exponential(1.0 / rate)
    churned = accounts["signup_at"] + pd.to_timedelta(months * MONTH / pd.Timedelta(days=1), "D")
    accounts["churned_at"] = churned.where(churned <= last_event).astype(
        accounts["signup_at"].dtype
    )
    accounts.to_parquet(written["accounts"], index=False)
    return written
