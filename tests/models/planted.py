"""Synthetic snapshot tables with planted product-feature effects, shared by the model tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

# plan: (share of accounts, retention log-odds without the driver)
PLANS = {"basic": (0.6, -0.4), "pro": (0.3, 0.4), "premium": (0.1, 1.6)}


def make_snapshots(
    n_accounts: int = 2500,
    n_dates: int = 10,
    n_censored: int = 2,
    seed: int = 0,
    *,
    plan_proxy: bool = False,
) -> pd.DataFrame:
    """Monthly snapshots where using ``driver`` (40% of rows) raises retention within every plan.

    ``niche`` is used only on the premium plan (about 4%), which churns less; ``common`` by
    99% of rows and ``noise`` by 30%, at random; none of them has an effect. With
    ``plan_proxy``, a fifth feature is used mostly on the better-retaining plans (about 20%),
    without an effect. Accounts start and stop at random, so some leave before the test dates;
    rows of the last ``n_censored`` dates are censored.
    """
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2025-01-31", periods=n_dates, freq="ME")
    names = list(PLANS)
    plan = rng.choice(names, size=n_accounts, p=[PLANS[p][0] for p in names])
    seats = rng.integers(1, 20, size=n_accounts)
    start = rng.integers(-6, n_dates, size=n_accounts)
    life = rng.geometric(0.12, size=n_accounts)
    pairs = [
        (i, d)
        for i in range(n_accounts)
        for d in range(max(start[i], 0), min(start[i] + life[i], n_dates))
    ]
    acc = np.array([p[0] for p in pairs])
    di = np.array([p[1] for p in pairs])
    n = len(pairs)
    p = plan[acc]
    used = {
        "driver": rng.random(n) < 0.4,
        "niche": (p == "premium") & (rng.random(n) < 0.4),
        "common": rng.random(n) < 0.99,
        "noise": rng.random(n) < 0.3,
    }
    if plan_proxy:
        used["plan_proxy"] = rng.random(n) < np.select([p == "basic", p == "pro"], [0.05, 0.4], 0.7)
    logit = np.array([PLANS[x][1] for x in p]) + 1.6 * used["driver"]
    retained = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    columns = {
        "account_id": [f"a{i:05d}" for i in acc],
        "snapshot_date": dates[di],
        "plan": p,
        "seats": seats[acc],
        "tenure_days": 60 + 30 * (di - np.maximum(start[acc], 0)),
    }
    for event, u in used.items():
        count = u * (1 + rng.poisson(4, n))
        columns[f"{event}__used"] = u.astype(int)
        columns[f"{event}__count"] = count
        columns[f"{event}__days"] = np.minimum(count, u * (1 + rng.poisson(2, n)))
        columns[f"{event}__per_seat"] = count / seats[acc]
    df = pd.DataFrame(columns)
    df["utilization_rate"] = df["driver__per_seat"]
    df["utilization_raw"] = df["driver__count"]
    df["maturity__core"] = df["driver__used"] + df["noise__used"]
    df["label_date"] = df["snapshot_date"] + pd.Timedelta(days=60)
    censored = di >= n_dates - n_censored
    df["censored"] = censored
    df["retained"] = pd.array(np.where(censored, 0, retained), dtype="Int64")
    df.loc[censored, "retained"] = pd.NA
    return df
