"""The demo acceptance set on several generator seeds: how often the planted truth is found.

For each seed, the demo is generated at its default size (10,000 accounts; ``--accounts``
changes it), the feature tables are built, the models trained and the thresholds derived
exactly as the acceptance fixture of ``tests/models/test_acceptance.py`` does; then every
acceptance test of that module that reads only the ``demo`` fixture runs against this seed's
results, unchanged (the checks are the tests themselves, imported, not a copy). Prints one
row per seed with the tests that failed and their first message line, and writes the table
as JSON.

Usage::

    python bench/seeds.py [--seeds 0-7] [--accounts 10000] [--out bench/results/seeds.json]

About 35 s per seed on two free cores.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
for path in (ROOT, TESTS, TESTS / "models"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from features.demo.world import DEMO_ACCOUNTS  # noqa: E402 (after the path set-up)


def acceptance_module():
    spec = importlib.util.spec_from_file_location(
        "acceptance_set", TESTS / "models" / "test_acceptance.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def acceptance_tests(module) -> dict:
    """The module's tests whose only argument is the ``demo`` fixture."""
    return {
        name: fn
        for name, fn in vars(module).items()
        if name.startswith("test_")
        and callable(fn)
        and list(inspect.signature(fn).parameters) == ["demo"]
    }


def run_seed(seed: int, n_accounts: int, module, tests: dict) -> dict:
    t0 = time.perf_counter()
    failed: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix=f"seeds-{seed}-") as tmp:
        try:
            demo = module.planted_run(Path(tmp), seed=seed, n_accounts=n_accounts)
        except Exception as exc:  # noqa: BLE001 - the whole seed fails, the table goes on
            return {
                "seed": seed,
                "passed": 0,
                "total": len(tests),
                "failed": {"build": f"{type(exc).__name__}: {exc}".splitlines()[0][:300]},
                "seconds": round(time.perf_counter() - t0, 1),
            }
        for name, fn in tests.items():
            try:
                fn(demo)
            except Exception as exc:  # noqa: BLE001 - a failed check is a result here
                text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                failed[name] = text[:300] or traceback.format_exc(limit=1)
    return {
        "seed": seed,
        "passed": len(tests) - len(failed),
        "total": len(tests),
        "failed": failed,
        "seconds": round(time.perf_counter() - t0, 1),
    }


def parse_seeds(text: str) -> list[int]:
    seeds: list[int] = []
    for part in text.split(","):
        if "-" in part:
            lo, hi = part.split("-")
            seeds.extend(range(int(lo), int(hi) + 1))
        else:
            seeds.append(int(part))
    return seeds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0-7", help="e.g. 0-7 or 0,3,5")
    ap.add_argument("--accounts", type=int, default=DEMO_ACCOUNTS)
    ap.add_argument("--out", default=None, help="JSON file for the table")
    args = ap.parse_args(argv)
    module = acceptance_module()
    tests = acceptance_tests(module)
    print(f"{len(tests)} acceptance tests per seed: {', '.join(tests)}", flush=True)
    print(f"{'seed':>4} {'passed':>8} {'s':>6}  failed", flush=True)
    rows = []
    for seed in parse_seeds(args.seeds):
        row = run_seed(seed, args.accounts, module, tests)
        rows.append(row)
        failed = "; ".join(f"{k}: {v}" for k, v in row["failed"].items()) or "-"
        print(
            f"{seed:>4} {row['passed']:>3}/{row['total']:<4} {row['seconds']:>6.0f}  {failed}",
            flush=True,
        )
    all_pass = sum(1 for r in rows if not r["failed"])
    print(f"seeds passing the whole set: {all_pass} of {len(rows)}", flush=True)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
