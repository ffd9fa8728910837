"""Benchmark of the feature tables against two baselines, at 1M, 10M (and 100M) events.

For each size, the demo generator (``features.demo.write_demo``; a synthetic DuckDB generator when
it is absent) writes Parquet files once into ``bench/data/<size>/``. Then each measurement runs
in a fresh Python process, so its peak memory (``ru_maxrss`` of that process) is its own:

- ``features``: read the files through ``features.io``, build the daily aggregate, the tenure
  table and the snapshot table with ``features.tables`` and materialise both tables (DuckDB
  ``CREATE TABLE``), as the pipeline does (demo configuration, 24 month-end snapshots);
- ``sql``: one hand-written DuckDB SQL script computing the same activation-window counts per
  (account, event) and trailing-window counts per (account, snapshot, event): the floor;
- ``pandas``: a straightforward pandas implementation of the same counts from the Parquet files;
- ``profile``: ``milestones profile`` without its validation (as the ``features`` step has
  none): read the files through ``features.io``, then ``flows.steps.profile.build_profile``
  and the page; timed against ``features`` in the same run.

Times include reading the files, not the interpreter start or imports. Then, unless
``--real-log none``, the shape of a real log (``bench/real_log.py``: 3,000 event names, the
whole ``milestones run``; ``--run-100m`` adds the run at 100M events). Usage::

    python bench/run.py [--sizes 1M,10M] [--with-100m] [--out bench/results/<stamp>.json]
    python bench/run.py [--real-log 10M|none] [--run-100m]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SIZES = {"1M": 1_000_000, "10M": 10_000_000, "100M": 100_000_000}
STEPS = ("features", "sql", "pandas", "profile")
MAX_SNAPSHOTS = 24
GOLDEN_WEEK_DAYS = 7
INACTIVITY_PERIOD_DAYS = 30
INACTIVITY_HORIZON_DAYS = 90


# ----------------------------------------------------------------------------- parameters


def demo_parameters() -> dict[str, Any]:
    """The feature parameters of ``configs/demo.yaml`` (the benchmark's configuration)."""
    import yaml

    cfg = yaml.safe_load((ROOT / "configs" / "demo.yaml").read_text())
    m = cfg["milestones"]
    trailing = (cfg.get("features") or {}).get("trailing_days") or m["maturity"]["window_days"]
    return {
        "setup_steps": list(m["setup"]["steps"]),
        "setup_window_days": int(m["setup"]["window_days"]),
        "activation_event": m["activation"]["event"],
        "activation_window_days": int(m["activation"]["window_days"]),
        "horizon_days": int(cfg["retention"]["horizon_days"]),
        "utilization_event": m["utilization"]["event"],
        "utilization_window_days": int(m["utilization"]["window_days"]),
        "period_days": int(m["utilization"]["period_days"]),
        "maturity_window_days": int(m["maturity"]["window_days"]),
        "categories": {k: list(v) for k, v in m["maturity"]["categories"].items()},
        "trailing_days": int(trailing),
    }


def parse_size(text: str) -> tuple[str, int]:
    label = text.strip().upper()
    if label in SIZES:
        return label, SIZES[label]
    mult = {"K": 1_000, "M": 1_000_000}.get(label[-1], 1)
    n = int(float(label[:-1] if label[-1] in "KM" else label) * mult)
    return label, n


# ----------------------------------------------------------------------------- data


def _generator() -> str:
    try:
        from features.demo import write_demo  # noqa: F401
    except ImportError:
        return "synthetic"
    return "features.demo"


def ensure_data(label: str, n_events: int, root: Path, log) -> dict[str, Any]:
    """Generate the inputs of one size once (cached with a ``meta.json`` beside them)."""
    folder = root / label
    meta_path = folder / "meta.json"
    generator = _generator()
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("generator") == generator and all(
            Path(meta[k]).exists() for k in ("accounts", "events")
        ):
            return meta
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if generator == "features.demo":
        from features.demo import write_demo

        # The demo gives a few hundred events per account: aim with a pilot, then correct
        # once if the first try misses the size by more than 5%.
        pilot = write_demo(root / "_pilot", n_accounts=2000, seed=0)
        per_account = pilot["n_events"] / 2000
        n_accounts = max(50, round(n_events / per_account))
        log(f"generating {label}: {n_accounts:,} demo accounts (~{per_account:.0f} events each)")
        out = write_demo(folder, n_accounts=n_accounts, seed=0)
        if abs(out["n_events"] / n_events - 1) > 0.05:
            n_accounts = max(50, round(n_accounts * n_events / out["n_events"]))
            log(f"  {out['n_events']:,} events: regenerating with {n_accounts:,} accounts")
            out = write_demo(folder, n_accounts=n_accounts, seed=0)
    else:
        from bench.synthetic import write_synthetic

        log(f"generating {label}: synthetic data ({n_events:,} events)")
        out = write_synthetic(folder, n_events)
    gen_seconds = time.perf_counter() - t0

    import duckdb

    from features.tables import snapshot_dates

    con = duckdb.connect()
    con.execute("SET TimeZone='UTC'")
    n_ev, last = con.execute(
        f"SELECT count(*), max(occurred_at)::TIMESTAMP FROM read_parquet('{out['events']}')"
    ).fetchone()
    n_acc, first = con.execute(
        f"SELECT count(*), min(signup_at)::TIMESTAMP FROM read_parquet('{out['accounts']}')"
    ).fetchone()
    params = demo_parameters()
    dates = snapshot_dates(
        first.date(),
        last,
        activation_window_days=params["activation_window_days"],
        max_snapshots=MAX_SNAPSHOTS,
    )
    meta = {
        "generator": generator,
        "label": label,
        "accounts": str(Path(out["accounts"]).resolve()),
        "events": str(Path(out["events"]).resolve()),
        "n_accounts": int(n_acc),
        "n_events": int(n_ev),
        "as_of": last.isoformat(),
        "first_signup": first.date().isoformat(),
        "snapshot_dates": [d.isoformat() for d in dates],
        "generate_seconds": round(gen_seconds, 2),
        "events_bytes": Path(out["events"]).stat().st_size,
    }
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    log(f"  {n_ev:,} events, {n_acc:,} accounts in {gen_seconds:.1f}s")
    return meta


# ----------------------------------------------------------------------------- measuring


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class PeakRSS:
    """Peak resident memory of this process, overall and per phase (sampled every 20 ms)."""

    def __init__(self) -> None:
        import psutil

        self._proc = psutil.Process()
        self._peak = self._proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self._peak = max(self._peak, self._proc.memory_info().rss)

    def take(self) -> float:
        """Peak MiB since the last call."""
        peak = max(self._peak, self._proc.memory_info().rss)
        self._peak = self._proc.memory_info().rss
        return round(peak / 2**20, 1)

    def stop(self) -> None:
        self._stop.set()


def _duckdb_settings(con, settings: dict[str, Any]) -> None:
    """The same engine settings for the feature build and the SQL baseline."""
    run = con.raw_sql if hasattr(con, "raw_sql") else con.execute
    run(f"SET threads={int(settings['threads'])}")
    run(f"SET memory_limit='{settings['memory_limit']}'")
    run(f"SET temp_directory='{settings['temp_directory']}'")
    run("SET preserve_insertion_order=false")


def child_features(meta: dict, params: dict, settings: dict) -> dict:
    # Imports happen before the clock starts, as in the baselines (Ibis loads its DuckDB
    # backend and pandas lazily, on first use).
    import ibis
    import ibis.backends.duckdb
    import ibis.formats.pandas

    from features import io, tables

    ibis.duckdb.connect().disconnect()

    as_of = dt.datetime.fromisoformat(meta["as_of"])
    rss = PeakRSS()
    phases: dict[str, dict] = {}
    t0 = t = time.perf_counter()
    c0 = c = _cpu()

    def phase(name: str, **extra) -> None:
        nonlocal t, c
        now, cpu = time.perf_counter(), _cpu()
        phases[name] = {
            "seconds": round(now - t, 3),
            "cpu_seconds": round(cpu - c, 3),
            "peak_mib": rss.take(),
            **extra,
        }
        t, c = now, cpu

    con = io.connect()
    _duckdb_settings(con, settings)
    acc_raw, ev_raw = io.read_inputs(con, io.Source(meta["accounts"]), io.Source(meta["events"]))
    accounts, events = io.typed_accounts(acc_raw), io.typed_events(ev_raw)
    daily = tables.daily_aggregate(accounts, events, as_of=as_of, cache=True)
    names = tables.event_names(daily)
    phase("read+daily", events=len(names))
    tenure = tables.tenure_table(
        daily,
        as_of=as_of,
        events=names,
        setup_steps=params["setup_steps"],
        setup_window_days=params["setup_window_days"],
        activation_event=params["activation_event"],
        activation_window_days=params["activation_window_days"],
        horizon_days=params["horizon_days"],
        golden_week_days=GOLDEN_WEEK_DAYS,
        inactivity_period_days=INACTIVITY_PERIOD_DAYS,
        inactivity_horizon_days=INACTIVITY_HORIZON_DAYS,
    )
    tenure_t = tables.materialise(con, "bench_tenure", tenure)
    n_tenure = int(tenure_t.count().execute())
    phase("tenure", rows=n_tenure, columns=len(tenure_t.columns))
    first = accounts.signup_at.min().execute()
    dates = tables.snapshot_dates(
        first.date(),
        as_of,
        activation_window_days=params["activation_window_days"],
        max_snapshots=MAX_SNAPSHOTS,
    )
    if [d.isoformat() for d in dates] != meta["snapshot_dates"]:
        raise RuntimeError(f"snapshot dates differ from the baselines': {dates}")
    snaps = tables.snapshot_table(
        daily,
        dates=dates,
        as_of=as_of,
        events=names,
        categories=params["categories"],
        utilization_event=params["utilization_event"],
        utilization_window_days=params["utilization_window_days"],
        period_days=params["period_days"],
        maturity_window_days=params["maturity_window_days"],
        trailing_days=params["trailing_days"],
        horizon_days=params["horizon_days"],
        activation_window_days=params["activation_window_days"],
    )
    snaps_t = tables.materialise(con, "bench_snapshots", snaps)
    n_snaps = int(snaps_t.count().execute())
    phase("snapshots", rows=n_snaps, columns=len(snaps_t.columns))
    total, cpu = time.perf_counter() - t0, _cpu() - c0
    rss.stop()
    return {
        "seconds": round(total, 3),
        "cpu_seconds": round(cpu, 3),
        "phases": phases,
        "rows": {"tenure": n_tenure, "snapshots": n_snaps},
    }


def child_sql(meta: dict, params: dict, settings: dict) -> dict:
    import duckdb

    t0, c0 = time.perf_counter(), _cpu()
    con = duckdb.connect()
    con.execute("SET TimeZone='UTC'")
    _duckdb_settings(con, settings)
    aw = params["activation_window_days"]
    wt = params["trailing_days"]
    dates = ", ".join(f"(DATE '{d}')" for d in meta["snapshot_dates"])
    con.execute(
        f"""
        CREATE TEMP TABLE daily AS
        SELECT account_id, event, occurred_at::DATE AS day, count(*) AS n
        FROM read_parquet('{meta["events"]}')
        WHERE occurred_at <= TIMESTAMPTZ '{meta["as_of"]}+00'
        GROUP BY ALL;
        CREATE TEMP TABLE activation_counts AS
        SELECT d.account_id, d.event, sum(d.n) AS n
        FROM daily d JOIN read_parquet('{meta["accounts"]}') a USING (account_id)
        WHERE d.day >= a.signup_at::DATE AND d.day < a.signup_at::DATE + {aw}
        GROUP BY ALL;
        CREATE TEMP TABLE trailing_counts AS
        SELECT d.account_id, s.snapshot_date, d.event, sum(d.n) AS n
        FROM daily d JOIN (VALUES {dates}) s(snapshot_date)
          ON d.day <= s.snapshot_date AND d.day > s.snapshot_date - {wt}
        GROUP BY ALL;
        """
    )
    rows = {
        "activation_counts": con.execute("SELECT count(*) FROM activation_counts").fetchone()[0],
        "trailing_counts": con.execute("SELECT count(*) FROM trailing_counts").fetchone()[0],
    }
    total, cpu = time.perf_counter() - t0, _cpu() - c0
    return {"seconds": round(total, 3), "cpu_seconds": round(cpu, 3), "rows": rows}


def child_pandas(meta: dict, params: dict, settings: dict) -> dict:
    import pandas as pd

    t0, c0 = time.perf_counter(), _cpu()
    aw = params["activation_window_days"]
    wt = params["trailing_days"]
    as_of = pd.Timestamp(meta["as_of"], tz="UTC")
    ev = pd.read_parquet(meta["events"], columns=["account_id", "event", "occurred_at"])
    acc = pd.read_parquet(meta["accounts"], columns=["account_id", "signup_at"])
    ev = ev[ev["occurred_at"] <= as_of]
    ev["day"] = ev["occurred_at"].dt.tz_convert("UTC").dt.tz_localize(None).dt.normalize()
    acc["signup_day"] = acc["signup_at"].dt.tz_convert("UTC").dt.tz_localize(None).dt.normalize()
    merged = ev.merge(acc[["account_id", "signup_day"]], on="account_id")
    di = (merged["day"] - merged["signup_day"]).dt.days
    activation = merged[(di >= 0) & (di < aw)].groupby(["account_id", "event"]).size()
    parts = []
    for s in meta["snapshot_dates"]:
        s = pd.Timestamp(s)
        window = ev[(ev["day"] <= s) & (ev["day"] > s - pd.Timedelta(days=wt))]
        counts = window.groupby(["account_id", "event"]).size().rename("n").reset_index()
        counts["snapshot_date"] = s
        parts.append(counts)
    trailing = pd.concat(parts, ignore_index=True)
    rows = {"activation_counts": len(activation), "trailing_counts": len(trailing)}
    total, cpu = time.perf_counter() - t0, _cpu() - c0
    return {"seconds": round(total, 3), "cpu_seconds": round(cpu, 3), "rows": rows}


def child_profile(meta: dict, params: dict, settings: dict) -> dict:
    """``milestones profile`` as the command computes it, minus the validation (the feature
    build is timed without it too): read, profile in the engine, render the page."""
    import ibis
    import ibis.backends.duckdb
    import ibis.formats.pandas

    from features import io
    from flows.report.profile_page import render_profile
    from flows.steps.inputs import Inputs
    from flows.steps.profile import build_profile

    ibis.duckdb.connect().disconnect()
    as_of = dt.datetime.fromisoformat(meta["as_of"])
    t0, c0 = time.perf_counter(), _cpu()
    con = io.connect()
    _duckdb_settings(con, settings)
    acc_raw, ev_raw = io.read_inputs(con, io.Source(meta["accounts"]), io.Source(meta["events"]))
    inputs = Inputs(con, io.typed_accounts(acc_raw), io.typed_events(ev_raw), as_of)
    profile = build_profile(inputs, {"source": "column"})
    html = render_profile(profile)
    total, cpu = time.perf_counter() - t0, _cpu() - c0
    return {
        "seconds": round(total, 3),
        "cpu_seconds": round(cpu, 3),
        "rows": {"events": len(profile["events"]), "html_bytes": len(html)},
    }


CHILDREN = {
    "features": child_features,
    "sql": child_sql,
    "pandas": child_pandas,
    "profile": child_profile,
}


def run_child(step: str, meta_path: Path, settings: dict, timeout: float) -> dict:
    """Run one measurement in a fresh interpreter; its result and its own peak RSS."""
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        step,
        "--meta",
        str(meta_path),
        "--settings",
        json.dumps(settings),
    ]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    wall = time.perf_counter() - t0
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        return {
            "step": step,
            "error": (proc.stderr or proc.stdout)[-2000:],
            "process_seconds": round(wall, 2),
        }
    out = json.loads(lines[-1][len("RESULT ") :])
    out["step"] = step
    out["process_seconds"] = round(wall, 2)
    return out


def child_main(step: str, meta_path: str, settings_json: str) -> None:
    meta = json.loads(Path(meta_path).read_text())
    settings = json.loads(settings_json)
    result = CHILDREN[step](meta, demo_parameters(), settings)
    result["peak_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print("RESULT " + json.dumps(result), flush=True)


# ----------------------------------------------------------------------------- report


def _fmt_ratio(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}x"


def print_table(results: list[dict], say) -> None:
    header = (
        f"{'size':>5} {'events':>12} {'step':<14} {'seconds':>8} {'cpu s':>7} {'peak MiB':>9} "
        f"{'/ SQL':>7} {'/ pandas':>9} {'cpu/SQL':>8} {'cpu/pandas':>10}"
    )
    say(header)
    say("-" * len(header))
    for r in results:
        step, lead = r["step"], f"{r['size']:>5} {r['n_events']:>12,} {r['step']:<14}"
        if "error" in r:
            say(f"{lead} {'failed':>8}")
            continue
        if r.get("skipped"):
            say(f"{lead} {'skipped':>8}  ({r['skipped']})")
            continue
        ratios = [r.get(k) for k in ("ratio_to_sql", "ratio_to_pandas")]
        cpu_ratios = [r.get(k) for k in ("cpu_ratio_to_sql", "cpu_ratio_to_pandas")]
        say(
            f"{lead} {r['seconds']:>8.2f} {r['cpu_seconds']:>7.2f} {r['peak_mib']:>9.0f} "
            f"{_fmt_ratio(ratios[0]):>7} {_fmt_ratio(ratios[1]):>9} "
            f"{_fmt_ratio(cpu_ratios[0]):>8} {_fmt_ratio(cpu_ratios[1]):>10}"
        )
        if step == "features":
            for name, ph in (r.get("phases") or {}).items():
                say(
                    f"{'':>5} {'':>12} {'  ' + name:<14} {ph['seconds']:>8.2f} "
                    f"{ph['cpu_seconds']:>7.2f} {ph['peak_mib']:>9.0f}"
                )


def _best(runs: list[dict]) -> dict:
    """The fastest of repeated runs (the least disturbed by other work on the machine)."""
    ok = [r for r in runs if "seconds" in r]
    if not ok:
        return runs[-1]
    best = dict(min(ok, key=lambda r: r["seconds"]))
    best["runs"] = [
        {k: r.get(k) for k in ("seconds", "cpu_seconds", "peak_mib", "load_avg")} for r in ok
    ]
    best["peak_mib"] = max(r["peak_mib"] for r in ok)
    return best


def run_stats(which: str) -> int:
    """The statistics benchmarks of issue 13 (each script's own defaults)."""
    sys.path.insert(0, str(BENCH))
    code = 0
    if which in ("null", "all"):
        import null_sim

        code |= null_sim.main([])
    if which in ("seeds", "all"):
        import seeds

        code |= seeds.main([])
    return code


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1M,10M", help="comma-separated sizes (default 1M,10M)")
    ap.add_argument("--with-100m", action="store_true", help="also run 100M events (minutes)")
    ap.add_argument(
        "--pandas-max",
        default="10M",
        help="largest size at which the pandas baseline runs (default 10M: "
        "at 100M it needs tens of GiB)",
    )
    ap.add_argument(
        "--steps", default=",".join(STEPS), help="subset of features,sql,pandas,profile"
    )
    ap.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="runs of each measurement below 100M events, interleaved; the fastest "
        "is reported (default 3; 100M runs once)",
    )
    ap.add_argument(
        "--out", default=None, help="JSON file (default bench/results/<timestamp>.json)"
    )
    ap.add_argument("--data", default=str(BENCH / "data"), help="where generated inputs are cached")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--memory-limit", default="5GB", help="DuckDB memory_limit (both engines)")
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds per measurement")
    ap.add_argument(
        "--stats",
        choices=["null", "seeds", "all"],
        default=None,
        help="run the statistics benchmarks instead: the null simulation of the threshold "
        "tests (bench/null_sim.py), the acceptance set over demo seeds 0-7 (bench/seeds.py)",
    )
    ap.add_argument(
        "--real-log",
        default="10M",
        help="sizes of the real-log benchmark run after these (bench/real_log.py: 3,000 "
        "Zipf-distributed names; the whole run against 50 names); 'none' to skip",
    )
    ap.add_argument(
        "--run-100m",
        action="store_true",
        help="with the real log, also the whole `milestones run` on 100M events (~10 minutes)",
    )
    ap.add_argument("--child", choices=list(CHILDREN), help=argparse.SUPPRESS)
    ap.add_argument("--meta", help=argparse.SUPPRESS)
    ap.add_argument("--settings", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child_main(args.child, args.meta, args.settings)
        return 0
    if args.stats:
        return run_stats(args.stats)
    real = [] if args.real_log.lower() == "none" else ["--sizes", args.real_log]
    if args.run_100m:
        real += ["--run-100m"] if real else ["--sizes", "100M"]
    if not args.sizes.strip() or args.sizes.lower() == "none":
        return run_real_log(real, args) if real else 0

    def say(msg: str = "") -> None:
        print(msg, flush=True)

    sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]
    if args.with_100m and "100M" not in [s for s, _ in sizes]:
        sizes.append(("100M", SIZES["100M"]))
    steps = [s.strip() for s in args.steps.split(",") if s.strip()]
    unknown = set(steps) - set(STEPS)
    if unknown:
        ap.error(f"--steps: unknown {', '.join(sorted(unknown))} (choose from {', '.join(STEPS)})")
    pandas_max = parse_size(args.pandas_max)[1]
    data_root = Path(args.data)
    tmp = data_root / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    settings = {
        "threads": args.threads,
        "memory_limit": args.memory_limit,
        "temp_directory": str(tmp),
    }
    out = (
        Path(args.out)
        if args.out
        else BENCH / "results" / (dt.datetime.now().strftime("%Y%m%d-%H%M%S") + ".json")
    )

    results: list[dict] = []
    metas: dict[str, dict] = {}
    for label, n in sizes:
        meta = ensure_data(label, n, data_root, say)
        metas[label] = meta
        meta_path = data_root / label / "meta.json"
        runs: dict[str, list[dict]] = {step: [] for step in steps}
        repeat = 1 if n >= SIZES["100M"] else max(1, args.repeat)
        for i in range(repeat):
            for step in steps:
                if step == "pandas" and n > pandas_max:
                    continue
                load = round(os.getloadavg()[0], 2)
                say(f"[{label}] {step} (run {i + 1}/{repeat}, load average {load}) ...")
                r = run_child(step, meta_path, settings, args.timeout)
                r["load_avg"] = load
                if "error" in r:
                    say(f"  failed: {r['error']}")
                else:
                    say(
                        f"  {r['seconds']:.2f}s ({r['cpu_seconds']:.2f} CPU s), "
                        f"peak {r['peak_mib']:.0f} MiB"
                    )
                runs[step].append(r)
        by_step: dict[str, dict] = {}
        for step in steps:
            if not runs[step]:
                r = {"step": step, "skipped": f"above --pandas-max {args.pandas_max}"}
            else:
                r = _best(runs[step])
            r.update(size=label, n_events=meta["n_events"], n_accounts=meta["n_accounts"])
            by_step[step] = r
            results.append(r)
        for key in ("seconds", "cpu_seconds"):
            sql_s = by_step.get("sql", {}).get(key)
            pd_s = by_step.get("pandas", {}).get(key)
            prefix = "" if key == "seconds" else "cpu_"
            for r in by_step.values():
                if key in r:
                    r[prefix + "ratio_to_sql"] = round(r[key] / sql_s, 3) if sql_s else None
                    r[prefix + "ratio_to_pandas"] = round(r[key] / pd_s, 3) if pd_s else None
            feat_s = by_step.get("features", {}).get(key)
            prof = by_step.get("profile", {})
            if key in prof and feat_s:
                prof[prefix + "ratio_to_features"] = round(prof[key] / feat_s, 3)

    say()
    print_table(results, say)
    targets = {}
    for label in metas:
        feat = next(
            (
                r
                for r in results
                if r["size"] == label and r["step"] == "features" and "seconds" in r
            ),
            None,
        )
        if feat is None:
            continue
        t: dict[str, Any] = {
            "features_seconds": feat["seconds"],
            "features_peak_mib": feat["peak_mib"],
        }
        if feat.get("ratio_to_sql") is not None:
            t["ratio_to_sql"] = feat["ratio_to_sql"]
            t["cpu_ratio_to_sql"] = feat["cpu_ratio_to_sql"]
            t["within_1.5x_of_sql"] = feat["ratio_to_sql"] <= 1.5
        if feat.get("ratio_to_pandas") is not None:
            t["speedup_over_pandas"] = round(1 / feat["ratio_to_pandas"], 2)
            t["cpu_speedup_over_pandas"] = round(1 / feat["cpu_ratio_to_pandas"], 2)
            t["at_least_5x_faster_than_pandas"] = feat["ratio_to_pandas"] <= 0.2
        prof = next(
            (
                r
                for r in results
                if r["size"] == label and r["step"] == "profile" and "seconds" in r
            ),
            None,
        )
        if prof is not None and prof.get("ratio_to_features") is not None:
            t["profile_seconds"] = prof["seconds"]
            t["profile_ratio_to_features"] = prof["ratio_to_features"]
            t["profile_cpu_ratio_to_features"] = prof["cpu_ratio_to_features"]
            t["profile_within_1.5x_of_features"] = prof["ratio_to_features"] <= 1.5
        if label == "100M":
            t["under_5_minutes"] = feat["seconds"] < 300
            t["under_8_GiB"] = feat["peak_mib"] < 8 * 1024
        targets[label] = t
    say()
    for label, t in targets.items():
        say(f"{label}: " + ", ".join(f"{k}={v}" for k, v in t.items()))
    import platform

    report = {
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "settings": settings,
        "parameters": demo_parameters(),
        "data": metas,
        "results": results,
        "targets": targets,
    }
    try:
        import duckdb
        import ibis

        report["versions"] = {"duckdb": duckdb.__version__, "ibis": ibis.__version__}
    except ImportError:  # pragma: no cover
        pass
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    say(f"\nwrote {out}")
    code = 0 if all("error" not in r for r in results) else 1
    return code | (run_real_log(real, args) if real else 0)


def run_real_log(real: list[str], args) -> int:
    """The real-log benchmark (``bench/real_log.py``) with this run's engine settings."""
    from bench import real_log

    print(flush=True)
    common = ["--data", args.data, "--threads", str(args.threads)]
    common += ["--memory-limit", args.memory_limit, "--repeat", str(min(args.repeat, 2))]
    return real_log.main([*real, *common])


if __name__ == "__main__":
    sys.exit(main())
