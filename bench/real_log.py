"""Benchmark of a real log's shape (issue 12, points 4 and 5): thousands of event names, and
the whole ``milestones run`` at 100M events.

The data are the demo's, relabelled by :mod:`bench.real_data`: the events that
``configs/demo.yaml`` does not name are spread over a Zipf-distributed long tail (3,000
distinct names in all), with a twin of the same rows folded to 50 names. Each measurement
runs in a fresh process:

- ``features``: the pipeline's feature build on the 3,000-name log,
  ``flows.steps.tables.build_feature_tables`` (the daily aggregate, the feature selection,
  the tenure, snapshot and current tables, their checks and their pandas copies), without
  the input validation; per-part times from wrappers around the module functions it calls;
- ``sql-long``: a hand-written DuckDB script that computes the same long tables from the
  Parquet files, for every name: per (account, event, day), per (account, event) in the
  activation window, per (account, snapshot, event) in the trailing window (``sql`` of
  ``bench/run.py``): a floor that computes less than the build, ``features / sql-long`` is
  reported beside;
- ``sql-same``: a hand-written DuckDB script that computes, for every name, the long tables
  the feature build computes for its judged features: ``sql-long``'s, plus each tenure
  window (setup, golden week, activation, time to first use, the activation event's
  inactivity periods), the active days beside the trailing counts, and the rows at
  ``as_of``'s date (the live accounts'): the issue's "hand-written DuckDB query that
  computes the same long table", ``features / sql-same`` at most 1.3 is the target;
- ``run``: ``milestones run --config <generated yaml> --out <temp>`` as a subprocess, on the
  3,000-name and on the 50-name log: wall time, the peak resident memory of the whole process
  tree (the command, Prefect's temporary server, the watchdog; sampled every 0.2 s) and the
  time of each phase from the command's progress lines; targets ``3000 / 50`` at most 1.5
  and under 4 GiB;
- ``run`` at 100M events (``--run-100m``): under 10 minutes and 8 GiB, with each phase.

Each run gets its own temporary folder (output, MLflow store, Prefect home, crash logs), so
nothing lands in the repository and every run starts from the same state (no champion).
Usage::

    python bench/real_log.py [--sizes 10M] [--run-100m] [--repeat 2] [--tag before]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import real_data  # noqa: E402
from bench import run as base  # noqa: E402

STEPS = ("features", "sql-long", "sql-same", "run")
RUN_TIMEOUT = 1800.0
STAGE_LINE = re.compile(r"\[(\d+)/(\d+)\] (.+?) (done in|failed after) ([\d.]+) s")
PROGRESS_LINE = re.compile(r"\[\d+/\d+\] (.+?) (\.\.\.|done in|failed after)")
GIB = 2**30


# ----------------------------------------------------------------------------- configuration


def write_config(meta: dict[str, Any], folder: Path) -> Path:
    """``configs/demo.yaml`` pointed at the log of ``meta``, its MLflow store, output folder
    and score history inside ``folder``."""
    import yaml

    cfg = yaml.safe_load((ROOT / "configs" / "demo.yaml").read_text())
    cfg["data"] = {"accounts": meta["accounts"], "events": meta["events"]}
    cfg.setdefault("tracking", {})["tracking_uri"] = f"sqlite:///{folder / 'mlflow.db'}"
    cfg["out"] = str(folder / "out")
    cfg["history"] = str(folder / "history.duckdb")
    path = folder / "milestones.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))
    return path


def run_environment(folder: Path | None, code: str | None = None) -> dict[str, str]:
    """The environment of a measured process: with ``code``, the pipeline's packages are
    imported from that folder (a ``git archive`` of another commit) instead of the checkout."""
    env = dict(os.environ)
    if code:
        env["PYTHONPATH"] = os.pathsep.join(
            [str(Path(code).resolve()), str(ROOT), *filter(None, [env.get("PYTHONPATH")])]
        )
    if folder is None:
        return env
    env.update(
        PREFECT_HOME=str(folder / "prefect"),
        MLFLOW_TRACKING_URI=f"sqlite:///{folder / 'mlflow.db'}",
        MILESTONES_LOG_DIR=str(folder / "logs"),
    )
    env.pop("PREFECT_API_URL", None)
    return env


# ----------------------------------------------------------------------------- children


class _Timers:
    """Seconds spent in chosen module functions (wrapped in place, for this process only)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def wrap(self, module: Any, name: str, key: str | None = None, by_arg: int | None = None):
        fn = getattr(module, name, None)
        if fn is None:
            return

        def timed(*args, **kwargs):
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                k = key or name
                if by_arg is not None and len(args) > by_arg:
                    k = f"{k} {args[by_arg]}"
                self.seconds[k] = round(self.seconds.get(k, 0.0) + time.perf_counter() - t, 3)

        setattr(module, name, timed)


def child_features(meta: dict, settings: dict) -> dict:
    """The feature step of a run, without its input validation (as ``sql-long`` has none)."""
    import ibis
    import ibis.backends.duckdb
    import ibis.formats.pandas

    import features.validation
    from features import io
    from features import tables as ft
    from flows.config import load_config
    from flows.steps import tables as steps
    from flows.steps.inputs import Inputs

    try:
        from features import tables_sql
    except ImportError:  # --code: a commit before it
        tables_sql = None

    ibis.duckdb.connect().disconnect()
    with contextlib.suppress(ImportError):  # a run has loaded it for the input validation
        import great_expectations
        import great_expectations.data_context.types.base  # noqa: F401
    folder = Path(tempfile.mkdtemp(prefix="bench-real-features-"))
    try:
        cfg = load_config(write_config(meta, folder))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    timers = _Timers()
    timers.wrap(ft, "daily_aggregate", "daily")
    timers.wrap(steps, "select", "select")
    timers.wrap(ft, "materialise", "materialise", by_arg=1)  # the Ibis path (--code: older)
    if tables_sql is not None:  # the path on DuckDB: SQL text, the pivots in numpy
        timers.wrap(tables_sql, "build_tables", "tables")
        timers.wrap(tables_sql, "pivot_events", "tenure pivot")
        timers.wrap(tables_sql, "sum_parts", "snapshot sums")
    timers.wrap(features.validation, "validate_feature_tables", "checks")
    timers.wrap(ft, "to_frame", "to_pandas")
    as_of = dt.datetime.fromisoformat(meta["as_of"])
    t0, c0 = time.perf_counter(), base._cpu()
    con = io.connect()
    base._duckdb_settings(con, settings)
    acc_raw, ev_raw = io.read_inputs(con, io.Source(meta["accounts"]), io.Source(meta["events"]))
    inputs = Inputs(con, io.typed_accounts(acc_raw), io.typed_events(ev_raw), as_of)
    inputs.validation = {"row_counts": {"events": meta["n_events"]}}  # as a run's validation
    built = steps.build_feature_tables(cfg, inputs)
    total, cpu = time.perf_counter() - t0, base._cpu() - c0
    parts = dict(timers.seconds)
    tables_only = total - sum(
        v for k, v in parts.items() if k in ("checks", "to_pandas", "materialise ms_current")
    )
    return {
        "seconds": round(total, 3),
        "cpu_seconds": round(cpu, 3),
        "tables_seconds": round(tables_only, 3),
        "parts": parts,
        "rows": {
            "tenure": len(built.tenure),
            # in the engine, and fetched into pandas (``snapshots.max_rows``)
            "snapshots": built.sample.total_rows if built.sample else len(built.snapshots),
            "snapshots_analysed": len(built.snapshots),
            "current": len(built.current),
        },
        "columns": {"tenure": built.tenure.shape[1], "snapshots": built.snapshots.shape[1]},
        "judged_features": len(built.events),
        "distinct_names": getattr(built, "n_names", None),
    }


def child_sql_same(meta: dict, settings: dict) -> dict:
    """``sql-long`` computing what the feature build computes, in long form, for every name
    (the windows of ``configs/demo.yaml``; its utilization and maturity windows are the
    trailing window, 90 days, so the trailing counts stand for them)."""
    import duckdb

    p = base.demo_parameters()
    aw, wt, sw = (p[k] for k in ("activation_window_days", "trailing_days", "setup_window_days"))
    gw, period = base.GOLDEN_WEEK_DAYS, base.INACTIVITY_PERIOD_DAYS
    periods = max(1, base.INACTIVITY_HORIZON_DAYS // period)
    as_of = f"TIMESTAMPTZ '{meta['as_of']}+00'"
    live = dt.datetime.fromisoformat(meta["as_of"]).date().isoformat()
    dates = ", ".join(f"(DATE '{d}')" for d in [*meta["snapshot_dates"], live])
    event = p["activation_event"].replace("'", "''")
    posts = ", ".join(
        f"sum(n) FILTER (WHERE event = '{event}' AND di >= {aw + k * period} "
        f"AND di < {aw + (k + 1) * period}) AS post_{k}"
        for k in range(periods)
    )
    t0, c0 = time.perf_counter(), base._cpu()
    con = duckdb.connect()
    con.execute("SET TimeZone='UTC'")
    base._duckdb_settings(con, settings)
    con.execute(
        f"""
        CREATE TEMP TABLE daily AS
        SELECT account_id, event, occurred_at::DATE AS day, count(*) AS n
        FROM read_parquet('{meta["events"]}') WHERE occurred_at <= {as_of} GROUP BY ALL;
        CREATE TEMP TABLE tenure_counts AS
        SELECT account_id, event,
          sum(n) FILTER (WHERE di < {sw}) AS setup, sum(n) FILTER (WHERE di < {gw}) AS gw,
          sum(n) FILTER (WHERE di < {aw}) AS aw, min(di) FILTER (WHERE di < {aw}) AS ttf, {posts}
        FROM (SELECT d.account_id, d.event, d.n, d.day - a.signup_at::DATE AS di
              FROM daily d JOIN read_parquet('{meta["accounts"]}') a USING (account_id)
              WHERE a.signup_at <= {as_of})
        WHERE di >= 0 AND di < {aw + periods * period} GROUP BY ALL;
        CREATE TEMP TABLE trailing_counts AS
        SELECT d.account_id, s.snapshot_date, d.event, sum(d.n) AS n, count(*) AS days
        FROM daily d JOIN (VALUES {dates}) s(snapshot_date)
          ON d.day <= s.snapshot_date AND d.day > s.snapshot_date - {wt}
        GROUP BY ALL;
        """
    )
    rows = {
        t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
        for t in ("tenure_counts", "trailing_counts")
    }
    total, cpu = time.perf_counter() - t0, base._cpu() - c0
    return {"seconds": round(total, 3), "cpu_seconds": round(cpu, 3), "rows": rows}


def run_child(
    step: str,
    meta_path: Path,
    settings: dict,
    timeout: float,
    guard_gib: float | None = None,
    code: str | None = None,
) -> dict:
    """``features`` here, ``sql-long`` as ``bench/run.py``'s ``sql``, each in a fresh process."""
    if step == "sql-long":  # no pipeline code: the same whatever ``code`` says
        out = base.run_child("sql", meta_path, settings, timeout)
        out["step"] = step
        return out
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", step]
    cmd += ["--meta", str(meta_path), "--settings", json.dumps(settings)]
    sp = spawn(cmd, run_environment(None, code), ROOT, timeout, guard_gib)
    # a child stopped by a signal leaves DuckDB's spill files behind (15 GB once)
    for leftover in Path(settings["temp_directory"]).glob(f"duckdb_temp_{sp['pid']}_*"):
        leftover.unlink(missing_ok=True)
    lines = [ln for _, ln in sp["lines"] if ln.startswith("RESULT ")]
    if sp["error"] or not lines:
        tail = "\n".join(ln for _, ln in sp["lines"][-40:])
        return {
            "step": step,
            "error": sp["error"] or "no result",
            "detail": tail[-3000:],
            "seconds": sp["seconds"],
            "peak_mib": sp["peak_mib"],
        }
    out = json.loads(lines[-1][len("RESULT ") :])
    out.update(step=step, process_seconds=sp["seconds"], tree_peak_mib=sp["peak_mib"])
    return out


def child_main(step: str, meta_path: str, settings_json: str) -> None:
    import resource

    meta = json.loads(Path(meta_path).read_text())
    child = child_sql_same if step == "sql-same" else child_features
    result = child(meta, json.loads(settings_json))
    result["peak_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print("RESULT " + json.dumps(result), flush=True)


# ----------------------------------------------------------------------------- whole run


class TreeRSS:
    """Peak resident memory of a process and all its descendants, summed (every 0.2 s);
    ``guard`` bytes, when set, kills the tree once it is reached."""

    def __init__(self, pid: int, guard: float | None = None, every: float = 0.2) -> None:
        import psutil

        self._root = psutil.Process(pid)
        self.peak = 0
        self.peak_processes = 0
        self.phase = "start"  # set by the reader of the progress lines
        self.by_phase: dict[str, int] = {}
        self.guard_hit = False
        self._guard = guard
        self._every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _tree(self) -> list:
        import psutil

        try:
            return [self._root, *self._root.children(recursive=True)]
        except psutil.Error:
            return []

    def _loop(self) -> None:
        import psutil

        while not self._stop.wait(self._every):
            total, procs = 0, self._tree()
            for p in procs:
                with contextlib.suppress(psutil.Error):
                    total += p.memory_info().rss
            if total > self.peak:
                self.peak, self.peak_processes = total, len(procs)
            if total > self.by_phase.get(self.phase, 0):
                self.by_phase[self.phase] = total
            if self._guard and total > self._guard and not self.guard_hit:
                self.guard_hit = True
                self.kill()

    def kill(self) -> None:
        """Stop the tree this bench started: the descendants first, then the command."""
        import psutil

        for p in reversed(self._tree()):
            with contextlib.suppress(psutil.Error):
                p.kill()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)


def spawn(
    cmd: list[str],
    env: dict,
    cwd: Path,
    timeout: float,
    guard_gib: float | None,
    echo: bool = False,
) -> dict[str, Any]:
    """Run ``cmd`` and watch it: its output lines (timed), wall time, the peak memory of its
    process tree, and why it was stopped (timeout, memory guard) or failed."""
    lines: list[tuple[float, str]] = []
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    )
    rss = TreeRSS(proc.pid, guard=guard_gib * GIB if guard_gib else None)

    def read() -> None:
        for line in proc.stdout:
            lines.append((round(time.perf_counter() - t0, 2), line.rstrip("\n")))
            m = PROGRESS_LINE.search(line)
            if m:
                rss.phase = m.group(1) if m.group(2) == "..." else "after " + m.group(1)
                if echo:
                    _say(f"    {lines[-1][0]:7.1f}s {lines[-1][1]}")

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    timed_out = False
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        rss.kill()
        code = proc.wait()
    wall = time.perf_counter() - t0
    rss.stop()
    reader.join(timeout=5)
    error = None
    if timed_out:
        error = f"timed out after {timeout:.0f} s"
    elif rss.guard_hit:
        error = f"stopped by the memory guard at {guard_gib} GiB"
    elif code != 0:
        error = f"exit {code}"
    return {
        "pid": proc.pid,
        "lines": lines,
        "seconds": round(wall, 2),
        "peak_mib": round(rss.peak / 2**20, 1),
        "peak_processes": rss.peak_processes,
        "peak_mib_by_phase": {k: round(v / 2**20, 1) for k, v in rss.by_phase.items()},
        "exit_code": code,
        "error": error,
    }


def measure_run(
    meta: dict[str, Any],
    timeout: float,
    guard_gib: float | None,
    keep: bool = False,
    code: str | None = None,
) -> dict[str, Any]:
    """``milestones run`` on the log of ``meta`` in a fresh temporary folder."""
    folder = Path(tempfile.mkdtemp(prefix=f"bench-{meta['label']}-"))
    config = write_config(meta, folder)
    cmd = [sys.executable, "-m", "flows.cli", "run", "--config", str(config)]
    cmd += ["--out", str(folder / "out")]
    load = [round(x, 2) for x in os.getloadavg()]
    sp = spawn(cmd, run_environment(folder, code), folder, timeout, guard_gib, echo=True)
    phases: dict[str, float] = {}
    failed_phase = None
    for _, line in sp["lines"]:
        m = STAGE_LINE.search(line)
        if m:
            phases[m.group(3)] = float(m.group(5))
            if m.group(4) == "failed after":
                failed_phase = m.group(3)
    result: dict[str, Any] = {
        "step": "run",
        "seconds": sp["seconds"],
        "peak_mib": sp["peak_mib"],
        "peak_processes": sp["peak_processes"],
        "peak_mib_by_phase": sp["peak_mib_by_phase"],
        "exit_code": sp["exit_code"],
        "phases": phases,
        "phases_seconds": round(sum(phases.values()), 2),
        "load_avg_start": load,
        "load_avg_end": [round(x, 2) for x in os.getloadavg()],
        "log": [f"{t:7.1f}s {ln}" for t, ln in sp["lines"][-60:]],
    }
    if sp["error"]:
        result["error"] = sp["error"] + (f" in {failed_phase}" if failed_phase else "")
        crash = sorted((folder / "logs").glob("*.log")) if (folder / "logs").is_dir() else []
        if crash:
            result["crash_log"] = crash[-1].read_text(errors="replace")[-4000:]
    if keep:
        result["folder"] = str(folder)
    else:
        shutil.rmtree(folder, ignore_errors=True)
    return result


# ----------------------------------------------------------------------------- driver


def _say(msg: str = "") -> None:
    print(msg, flush=True)


def _best(runs: list[dict]) -> dict:
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return dict(runs[-1], runs=runs)
    best = dict(min(ok, key=lambda r: r["seconds"]))
    keys = ("seconds", "cpu_seconds", "peak_mib", "load_avg", "load_avg_start", "phases")
    best["runs"] = [{k: r[k] for k in keys if k in r} for r in runs]
    best["peak_mib"] = max(r["peak_mib"] for r in ok)
    return best


def _ratio(a: dict | None, b: dict | None, key: str = "seconds") -> float | None:
    if not a or not b or a.get(key) is None or not b.get(key) or "error" in a or "error" in b:
        return None
    return round(a[key] / b[key], 3)


def _report_run(r: dict, say) -> None:
    if "error" in r:
        say(f"  failed ({r['error']}) after {r.get('seconds', 0):.1f}s, peak {r['peak_mib']} MiB")
        tail = r.get("crash_log") or "\n".join(r.get("log", [])[-15:])
        say("    " + "\n    ".join(tail.strip().splitlines()[-12:]))
        return
    phases = ", ".join(f"{k} {v:.1f}" for k, v in r["phases"].items())
    say(f"  {r['seconds']:.1f}s, peak {r['peak_mib']:.0f} MiB (process tree); phases: {phases}")


def measure_size(label: str, n: int, args, settings: dict, data_root: Path) -> dict[str, Any]:
    """Every measurement of one size; the best of ``--repeat`` interleaved runs of each."""
    params = base.demo_parameters()
    base_meta = base.ensure_data(label, n, data_root, _say)
    metas = real_data.ensure_real(base_meta, data_root, params, _say, threads=args.threads)
    wide_key = str(real_data.NAMES_TOTAL)
    wide, narrow = metas[wide_key], metas[str(real_data.FOLDED_TOTAL)]
    logs = [k for k in args.logs.split(",") if k in metas]
    wide_path = data_root / wide["label"] / "meta.json"
    big = n >= base.SIZES["100M"]
    steps = ["run"] if big else [s for s in args.steps.split(",") if s]
    repeat = 1 if big else max(1, args.repeat)
    runs: dict[str, list[dict]] = {}
    for i in range(repeat):
        for step in steps:
            todo = [(step, wide)]
            if step == "run":
                todo = [(f"run-{k}", metas[k]) for k in logs if not (big and k != wide_key)]
            for key, meta in todo:
                load = round(os.getloadavg()[0], 2)
                _say(f"[{label}] {key} (run {i + 1}/{repeat}, load average {load}) ...")
                if step == "run":
                    r = measure_run(meta, args.run_timeout, args.memory_guard, args.keep, args.code)
                    _report_run(r, _say)
                else:
                    r = run_child(
                        step, wide_path, settings, args.timeout, args.memory_guard, args.code
                    )
                    if "error" in r:
                        _say(f"  failed ({r['error']}): {r.get('detail', '')[-1500:]}")
                    else:
                        _say(
                            f"  {r['seconds']:.2f}s ({r['cpu_seconds']:.2f} CPU s), "
                            f"peak {r['peak_mib']:.0f} MiB"
                        )
                r["load_avg"] = load
                runs.setdefault(key, []).append(r)
    best = {k: _best(v) for k, v in runs.items()}
    out: dict[str, Any] = {"data": {"3000": wide, "50": narrow}, "results": best}
    feat, sql = best.get("features"), best.get("sql-long")
    r3, r50 = best.get("run-3000"), best.get("run-50")
    t: dict[str, Any] = {}
    if feat and sql:
        t["features_over_sql_long"] = _ratio(feat, sql)
        t["features_over_sql_long_cpu"] = _ratio(feat, sql, "cpu_seconds")
        t["tables_over_sql_long"] = (
            round(feat["tables_seconds"] / sql["seconds"], 3) if _ratio(feat, sql) else None
        )
        t["features_within_1.3x"] = (t["features_over_sql_long"] or 99) <= 1.3
    same = best.get("sql-same")
    if feat and same:
        t["features_over_sql_same"] = _ratio(feat, same)
        t["features_over_sql_same_cpu"] = _ratio(feat, same, "cpu_seconds")
        t["features_within_1.3x_of_sql_same"] = (t["features_over_sql_same"] or 99) <= 1.3
    if r3 and r50:
        t["run_3000_over_50"] = _ratio(r3, r50)
        t["run_3000_over_50_phases"] = _ratio(r3, r50, "phases_seconds")
        t["run_within_1.5x"] = (t["run_3000_over_50"] or 99) <= 1.5
        t["run_under_4_GiB"] = "error" not in r3 and r3["peak_mib"] < 4 * 1024
    if big and r3:
        t["run_seconds"] = r3["seconds"]
        t["run_under_10_minutes"] = "error" not in r3 and r3["seconds"] < 600
        t["run_under_8_GiB"] = "error" not in r3 and r3["peak_mib"] < 8 * 1024
    out["targets"] = t
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10M", help="comma-separated sizes (default 10M)")
    ap.add_argument("--run-100m", action="store_true", help="also the whole run at 100M events")
    ap.add_argument("--steps", default=",".join(STEPS), help="subset of " + ",".join(STEPS))
    ap.add_argument("--repeat", type=int, default=2, help="interleaved runs below 100M (2)")
    ap.add_argument("--tag", default="", help="a word for the results file (e.g. before)")
    ap.add_argument("--out", default=None, help="JSON file (default bench/results/real-*.json)")
    ap.add_argument("--data", default=str(BENCH / "data"), help="where inputs are cached")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--memory-limit", default="5GB", help="DuckDB memory_limit (features, sql)")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds per measurement")
    ap.add_argument(
        "--run-timeout", type=float, default=RUN_TIMEOUT, help="seconds per milestones run"
    )
    ap.add_argument(
        "--memory-guard",
        type=float,
        default=16.0,
        help="GiB of the run's process tree at which it is stopped (default 16)",
    )
    ap.add_argument("--logs", default="3000,50", help="which logs `run` measures (default 3000,50)")
    ap.add_argument(
        "--code",
        default=None,
        help="import features/models/flows from this folder (e.g. `git archive` of an "
        "older commit) instead of the checkout",
    )
    ap.add_argument("--keep", action="store_true", help="keep each run's temporary folder")
    ap.add_argument("--child", choices=["features", "sql-same"], help=argparse.SUPPRESS)
    ap.add_argument("--meta", help=argparse.SUPPRESS)
    ap.add_argument("--settings", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child_main(args.child, args.meta, args.settings)
        return 0
    unknown = {s for s in args.steps.split(",") if s} - set(STEPS)
    if unknown:
        ap.error(f"--steps: unknown {', '.join(sorted(unknown))}")
    data_root = Path(args.data)
    (data_root / "tmp").mkdir(parents=True, exist_ok=True)
    settings = {
        "threads": args.threads,
        "memory_limit": args.memory_limit,
        "temp_directory": str(data_root / "tmp"),
    }
    sizes = [base.parse_size(s) for s in args.sizes.split(",") if s.strip()]
    if args.run_100m and "100M" not in [s for s, _ in sizes]:
        sizes.append(("100M", base.SIZES["100M"]))
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    tag = f"-{args.tag}" if args.tag else ""
    out = Path(args.out) if args.out else BENCH / "results" / f"real-{stamp}{tag}.json"
    report: dict[str, Any] = {
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "tag": args.tag,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {"cpus": os.cpu_count(), "memory_gib": _memory_gib()},
        "settings": settings,
        "code": _code_state(args.code),
        "sizes": {},
    }
    for label, n in sizes:
        report["sizes"][label] = measure_size(label, n, args, settings, data_root)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    _say()
    for line in summary(report):
        _say(line)
    _say(f"\nwrote {out}")
    failed = [
        k for res in report["sizes"].values() for k, r in res["results"].items() if "error" in r
    ]
    return 1 if failed else 0


def summary(report: dict[str, Any]) -> list[str]:
    """The figures as Markdown tables (the section of ``bench/README.md``)."""
    out = []
    for label, res in report["sizes"].items():
        d = res["data"]["3000"]
        out.append(
            f"{label}: {d['n_events']:,} events, {d['n_accounts']:,} accounts, "
            f"{d['tail_share_of_events']:.1%} of the events on the {d['tail_names']:,} tail names"
        )
        out += [
            "",
            "| measurement | s (CPU s) | peak MiB | load avg | detail |",
            "|---|---|---|---|---|",
        ]
        for key, r in res["results"].items():
            load = r.get("load_avg", "-")
            if "error" in r:
                out.append(
                    f"| {key} | failed: {r['error']} | {r.get('peak_mib', '-')} | {load} | |"
                )
                continue
            cpu = f" ({r['cpu_seconds']:.1f})" if "cpu_seconds" in r else ""
            detail = ""
            if key == "features":
                detail = ", ".join(f"{k} {v:.1f}" for k, v in r.get("parts", {}).items())
                detail += f"; tables only {r['tables_seconds']:.1f} s"
            elif key.startswith("run"):
                detail = ", ".join(f"{k} {v:.1f}" for k, v in r.get("phases", {}).items())
                by_phase = r.get("peak_mib_by_phase") or {}
                if by_phase:
                    top = max(by_phase, key=by_phase.get)
                    detail += f"; peak during: {top}"
            out.append(
                f"| {key} | {r['seconds']:.1f}{cpu} | {r['peak_mib']:,.0f} | {load} | {detail} |"
            )
        out += ["", f"{label}: " + ", ".join(f"{k}={v}" for k, v in res["targets"].items()), ""]
    return out


def _memory_gib() -> float | None:
    try:
        import psutil

        return round(psutil.virtual_memory().total / GIB, 1)
    except ImportError:  # pragma: no cover
        return None


def _read(path: Path) -> str | None:
    return path.read_text().strip() if path.is_file() else None


def _code_state(code: str | None) -> dict[str, Any]:
    """The commit and whether the pipeline's code differs from it (the figures' code state)."""

    def git(*a: str) -> str:
        try:
            return subprocess.run(
                ["git", *a], cwd=ROOT, capture_output=True, text=True, timeout=30
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    where = ("--", "features", "models", "flows")
    changed = git("diff", "--name-only", "HEAD", *where).splitlines()
    changed += git("ls-files", "--others", "--exclude-standard", *where).splitlines()
    return {
        "commit": git("rev-parse", "HEAD"),
        "uncommitted_files": len(changed),
        "core_done_marker": Path("/tmp/issue12-core-done").exists(),
        "imported_from": str(Path(code).resolve()) if code else str(ROOT),
        # a copy made with `git archive` may say its commit in a COMMIT file
        "imported_commit": _read(Path(code) / "COMMIT") if code else None,
    }


if __name__ == "__main__":
    sys.exit(main())
