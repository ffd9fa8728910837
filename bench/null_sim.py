"""Null simulation of the threshold finder's tests on snapshot rows (issue 13).

Snapshot rows repeat accounts month after month: an account's usage level and its churn
propensity persist, so its rows are correlated. A test that resamples rows as if they were
independent then finds "thresholds" in pure noise. This script generates datasets of
``accounts x snapshots`` rows in which usage is independent of churn (scenario ``null``), or
in which retention rises smoothly with usage without any step (scenario ``smooth``), runs
:class:`models.finder.ThresholdFinder` on each and counts how often

- the finder's permutation p-value is below 0.05 (``null``: every such case is a false
  positive);
- the step-versus-trend p-value is below 0.05 (in both scenarios there is no step);
- the finder's verdict is ``step``.

``--resample rows`` runs the finder without the account ids (every row its own group: the
row-level resampling of the tests before issue 13), ``--resample accounts`` with them.

Usage::

    python bench/null_sim.py [--datasets 200] [--accounts 400] [--snapshots 12]
        [--scenario null|smooth] [--resample accounts|rows|both] [--bootstrap 199]
        [--metric usage|count]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from models.finder import ThresholdFinder  # noqa: E402

ALPHA = 0.05


def snapshot_rows(
    rng: np.random.Generator,
    n_accounts: int = 400,
    n_snapshots: int = 12,
    scenario: str = "null",
    horizon: int = 6,
    metric: str = "usage",
) -> pd.DataFrame:
    """One dataset of monthly snapshot rows with within-account correlation.

    Each account has a persistent usage level (log-normal, an AR(1) drift month to month)
    and a persistent monthly churn hazard (log-normal across accounts). With ``null`` the
    hazard is drawn independently of usage; with ``smooth`` the log-hazard falls linearly
    in log-usage (retention rises gradually with use, no step). The account churns at a
    geometric month; it has a row at each of the ``n_snapshots`` month ends while still a
    customer, labelled retained when it is still a customer ``horizon`` months later.

    With ``metric="count"`` the row's metric is a small count (0 to 5, like the number of
    mature categories) drawn each month as binomial(5, p) with ``logit p`` the account's
    standardised usage level plus its drift: the same smooth (or absent) dependence of
    churn on use, seen through a metric with six values, where the finder places the cut at
    the largest step beyond a straight trend.
    """
    level = rng.normal(np.log(8.0), 0.6, n_accounts)
    drift = rng.normal(0.0, 0.1, (n_accounts, n_snapshots)).cumsum(axis=1)
    usage = np.exp(level[:, None] + drift)
    log_h = rng.normal(np.log(0.03), 1.0, n_accounts)
    if scenario == "smooth":
        log_h = log_h - 1.2 * (level - np.log(8.0)) / 0.6
    elif scenario != "null":
        raise ValueError(f"scenario must be 'null' or 'smooth', got {scenario!r}")
    hazard = np.clip(np.exp(log_h), 1e-4, 0.9)
    churn_month = rng.geometric(hazard)  # churns during month churn_month (1-based)
    t = np.arange(n_snapshots)
    active = t[None, :] < churn_month[:, None]
    retained = churn_month[:, None] > t[None, :] + horizon
    acc, snap = np.nonzero(active)
    if metric == "count":
        logit = (level[acc] - np.log(8.0)) / 0.6 + drift[acc, snap] / 0.3
        value = rng.binomial(5, 1.0 / (1.0 + np.exp(-logit))).astype(float)
    elif metric == "usage":
        value = np.round(usage[acc, snap], 2)
    else:
        raise ValueError(f"metric must be 'usage' or 'count', got {metric!r}")
    return pd.DataFrame(
        {
            "account_id": acc,
            "snapshot": snap,
            "metric": value,
            "retained": retained[acc, snap].astype(int),
        }
    )


def simulate(
    n_datasets: int = 200,
    n_accounts: int = 400,
    n_snapshots: int = 12,
    scenario: str = "null",
    resample: str = "accounts",
    n_bootstrap: int = 199,
    seed: int = 0,
    metric: str = "usage",
) -> dict:
    """Rates of p < 0.05 over ``n_datasets`` generated datasets (see the module docstring)."""
    perm, step, kind_step, n_rows = [], [], [], []
    t0 = time.perf_counter()
    for i in range(n_datasets):
        rows = snapshot_rows(
            np.random.default_rng([seed, i]), n_accounts, n_snapshots, scenario, metric=metric
        )
        groups = rows["account_id"] if resample == "accounts" else None
        finder = ThresholdFinder(n_bootstrap=n_bootstrap, random_state=[seed, i, 1])
        ev = finder.fit(rows["metric"], rows["retained"], groups=groups).evidence_
        perm.append(ev["p_value"] is not None and ev["p_value"] < ALPHA)
        svt = ev.get("step_vs_trend") or {}
        step.append(svt.get("p_value") is not None and svt["p_value"] < ALPHA)
        kind_step.append(ev["kind"] == "step")
        n_rows.append(len(rows))
    return {
        "scenario": scenario,
        "metric": metric,
        "resample": resample,
        "n_datasets": n_datasets,
        "n_accounts": n_accounts,
        "n_snapshots": n_snapshots,
        "mean_rows": float(np.mean(n_rows)),
        "n_bootstrap": n_bootstrap,
        "permutation_p_below_005": float(np.mean(perm)),
        "step_vs_trend_p_below_005": float(np.mean(step)),
        "kind_step": float(np.mean(kind_step)),
        "seconds": round(time.perf_counter() - t0, 1),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", type=int, default=200)
    ap.add_argument("--accounts", type=int, default=400)
    ap.add_argument("--snapshots", type=int, default=12)
    ap.add_argument("--scenario", choices=["null", "smooth", "both"], default="both")
    ap.add_argument("--resample", choices=["accounts", "rows", "both"], default="both")
    ap.add_argument("--bootstrap", type=int, default=199)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--metric",
        choices=["usage", "count"],
        default="usage",
        help="usage: a continuous rate; count: a count 0 to 5 (like mature categories)",
    )
    args = ap.parse_args(argv)
    scenarios = ["null", "smooth"] if args.scenario == "both" else [args.scenario]
    modes = ["rows", "accounts"] if args.resample == "both" else [args.resample]
    print(
        f"{'scenario':<8} {'resample':<9} {'datasets':>8} {'rows':>6} "
        f"{'perm p<.05':>10} {'step p<.05':>10} {'kind=step':>9} {'s':>6}"
    )
    for scenario in scenarios:
        for mode in modes:
            r = simulate(
                args.datasets,
                args.accounts,
                args.snapshots,
                scenario,
                mode,
                args.bootstrap,
                args.seed,
                args.metric,
            )
            print(
                f"{scenario:<8} {mode:<9} {r['n_datasets']:>8} {r['mean_rows']:>6.0f} "
                f"{r['permutation_p_below_005']:>10.3f} {r['step_vs_trend_p_below_005']:>10.3f} "
                f"{r['kind_step']:>9.3f} {r['seconds']:>6.1f}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
