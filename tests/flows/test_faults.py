"""Faults a run must survive: a killed command, a locked history, a full disk, a second
writer, leftovers of killed runs; and no machine path in what a run publishes."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest
from conftest import FAST, ROOT, demo_config_text
from typer.testing import CliRunner


@pytest.fixture()
def project(small_demo, tmp_path) -> dict:
    """The small demo configured with a private MLflow store, in a fresh folder."""
    cfg = tmp_path / "demo.yaml"
    cfg.write_text(
        demo_config_text(
            small_demo["accounts"],
            small_demo["events"],
            f"sqlite:///{tmp_path / 'mlflow.db'}",
            **FAST,
        )
    )
    return {"cfg": cfg, "tmp": tmp_path, "out": tmp_path / "out"}


def run_cli(*args: str):
    from flows.cli import app

    return CliRunner().invoke(app, list(args))


def mlflow_client(project: dict):
    import mlflow

    return mlflow.MlflowClient(tracking_uri=f"sqlite:///{project['tmp'] / 'mlflow.db'}")


def champion_version(project: dict) -> str | None:
    import mlflow

    try:
        mv = mlflow_client(project).get_model_version_by_alias("milestones-retention", "champion")
    except mlflow.exceptions.MlflowException:
        return None
    return mv.version


def all_runs(project: dict) -> list:
    client = mlflow_client(project)
    exp = client.get_experiment_by_name("milestones-demo")
    if exp is None:
        return []
    return client.search_runs([exp.experiment_id])


def tree(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def descendants(proc: psutil.Process) -> list[psutil.Process]:
    try:
        return proc.children(recursive=True)
    except psutil.NoSuchProcess:
        return []


# 1. no process outlives the command -------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("command", ["run", "serve"])
def test_kill_9_of_the_command_leaves_no_process(project, command):
    """``kill -9`` of ``milestones run`` (while Prefect's temporary server runs) or of
    ``milestones serve`` (while the Prefect server it started runs): within a few seconds
    none of the command's descendants is left."""
    env = dict(os.environ, PREFECT_HOME=str(project["tmp"] / "prefect"))
    env.pop("PREFECT_API_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "flows.cli", command, "--config", str(project["cfg"])]
        + ["--out", str(project["out"])],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    seen: dict[int, psutil.Process] = {}
    try:
        command = psutil.Process(proc.pid)
        deadline = time.monotonic() + 180
        server = None
        while server is None and time.monotonic() < deadline and proc.poll() is None:
            for child in descendants(command):
                seen.setdefault(child.pid, child)
                try:
                    line = " ".join(child.cmdline())
                    if "uvicorn" in line or ("prefect" in line and "server" in line):
                        server = child
                except psutil.NoSuchProcess:
                    pass
            time.sleep(0.2)
        assert server is not None, "no Prefect server started"
        for child in descendants(command):
            seen.setdefault(child.pid, child)
        proc.kill()
        proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(p.is_running() for p in seen.values()):
            time.sleep(0.2)
        left = [f"{p.pid} {' '.join(p.cmdline())[:80]}" for p in seen.values() if p.is_running()]
        assert left == []
    finally:
        if proc.poll() is None:
            proc.kill()
        for p in seen.values():
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()


# 3. start-up recovery -----------------------------------------------------------------------


def test_staging_folders_of_dead_processes_are_removed(tmp_path):
    """A killed run's ``.<out>.staging-*`` folder goes at the next publication to ``out``;
    a live process's stays."""
    from flows.store.publish import publish, staged

    out = tmp_path / "out"
    code = textwrap.dedent(
        f"""
        import os
        from pathlib import Path
        from flows.store.publish import staged
        with staged(Path({str(out)!r})) as s:
            (s / "half.csv").write_text("half")
            os.kill(os.getpid(), 9)
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=False)
    assert proc.returncode == -9
    dead = [p for p in tmp_path.iterdir() if p.name.startswith(".out.staging-")]
    assert len(dead) == 1
    alive = tmp_path / f".out.staging-{os.getppid()}-keep"  # the test runner's parent lives
    alive.mkdir()
    with staged(out) as staging:
        (staging / "scores.csv").write_text("new\n")
        publish(staging, out)
    left = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".out.staging-"))
    assert left == [alive.name]


# 4. one writer at a time -------------------------------------------------------------------


HOLD = """
import sys, time
from pathlib import Path
from flows.store.publish import locked
with locked(Path(sys.argv[1]), "the output folder"):
    print("held", flush=True)
    time.sleep(60)
"""


def test_a_second_writer_of_the_same_folder_fails_naming_the_lock_and_holder(tmp_path):
    from flows.errors import LockedError
    from flows.store.publish import staged

    out = tmp_path / "out"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(out)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with (
            pytest.raises(LockedError, match=rf"pid {holder.pid}\b.*out\.lock"),
            staged(out),
        ):
            pass
        assert not [p for p in tmp_path.iterdir() if ".staging-" in p.name]
    finally:
        holder.kill()
        holder.wait()
    with staged(out):  # free again once the holder is gone
        pass


def test_history_of_two_output_folders_never_replace_each_other(tmp_path):
    """Two output folders sharing one history file, the same as_of: each keeps its rows, and
    each one's previous stage comes from its own earlier rows."""
    import duckdb
    import pandas as pd

    from flows.store.history import output_key, record, with_previous_stage

    path = tmp_path / "milestone_history.duckdb"

    def scores(day: str, stage: str) -> pd.DataFrame:
        return pd.DataFrame({"account_id": ["a1"], "as_of": pd.Timestamp(day), "stage": [stage]})

    first, second = (output_key(path, tmp_path / name) for name in ("first", "second"))
    assert (first, second) == ("first", "second")
    for key, stage in ((first, "setup"), (second, "mature")):
        rows = with_previous_stage(path, scores("2026-01-31", stage), "2026-01-31", output=key)
        record(path, rows, f"run-{key}", output=key)
    con = duckdb.connect(str(path), read_only=True)
    try:
        kept = con.execute("SELECT output, stage FROM milestone_scores ORDER BY output").fetchall()
    finally:
        con.close()
    assert kept == [("first", "setup"), ("second", "mature")]
    later = with_previous_stage(path, scores("2026-02-28", "activated"), "2026-02-28", first)
    assert later.loc[0, "previous_stage"] == "setup" and later.loc[0, "movement"] == "up"


def test_history_writer_waits_for_no_one_and_names_the_holder(tmp_path):
    """A history file another process holds open for writing: a clear LockedError naming the
    file (and, through DuckDB's message, the holder's pid)."""
    import pandas as pd

    from flows.errors import LockedError
    from flows.store.history import record

    path = tmp_path / "milestone_history.duckdb"
    hold = (
        "import duckdb, sys, time\n"
        "con = duckdb.connect(sys.argv[1])\n"
        "con.execute('CREATE TABLE IF NOT EXISTS x (a INT)')\n"
        "print('held', flush=True)\n"
        "time.sleep(60)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", hold, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        frame = pd.DataFrame({"account_id": ["a1"], "as_of": pd.Timestamp("2026-01-31")})
        frame["stage"] = "setup"
        with pytest.raises(LockedError, match=rf"{path.name}.*PID {holder.pid}"):
            record(path, frame, "run-1", output="out")
    finally:
        holder.kill()
        holder.wait()


# 5. a full disk names the path -------------------------------------------------------------


def test_a_full_disk_names_the_path(tmp_path, monkeypatch):
    """``OSError: [Errno 28]`` while publishing, writing the history or the side file: a
    MilestonesError (exit 1) that names the path and keeps the system's message."""
    import errno

    import pandas as pd

    import flows.store.publish as publish_mod
    from flows.errors import MilestonesError
    from flows.store.history import record
    from flows.store.publish import publish, staging_dir, write_text_atomic

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    out = tmp_path / "out"
    staging = staging_dir(out)
    monkeypatch.setattr(publish_mod.os, "rename", full)
    with pytest.raises(MilestonesError, match=rf"{out}.*Errno 28.*No space left") as info:
        publish(staging, out)
    assert info.value.exit_code == 1
    monkeypatch.undo()

    side = tmp_path / "out.validation.json"
    monkeypatch.setattr(publish_mod.os, "replace", full)
    with pytest.raises(MilestonesError, match=rf"{side}.*No space left"):
        write_text_atomic(side, "{}")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.validation.json.")]
    monkeypatch.undo()

    import duckdb

    history = tmp_path / "milestone_history.duckdb"
    monkeypatch.setattr(duckdb, "connect", full)
    frame = pd.DataFrame({"account_id": ["a1"], "as_of": pd.Timestamp("2026-01-31")})
    frame["stage"] = "setup"
    with pytest.raises(MilestonesError, match=rf"{history}.*No space left"):
        record(history, frame, "run-1", output="out")


# 2. publish, then promote; 6. no machine path in MLflow ------------------------------------


HOLD_HISTORY = (
    "import duckdb, sys, time\n"
    "con = duckdb.connect(sys.argv[1])\n"
    "con.execute('CREATE TABLE IF NOT EXISTS x (a INT)')\n"
    "print('held', flush=True)\n"
    "time.sleep(120)\n"
)


@pytest.mark.slow
def test_a_failed_publication_leaves_the_champion_and_fails_the_run(
    project, prefect_harness, monkeypatch
):
    """The history file held open for writing by another process once the run is logged:
    exit 1, no champion moved, the MLflow run FAILED, the previous folder untouched, and the
    logged configuration holds no machine path."""
    from flows.store import tracking

    out = project["out"]
    out.mkdir()
    (out / "scores.csv").write_text("account_id\nold\n")
    before = tree(out)
    history_file = project["tmp"] / "milestone_history.duckdb"
    holders = []
    real = tracking.log_run

    def log_then_lock(*args, **kwargs):
        logged = real(*args, **kwargs)
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLD_HISTORY, str(history_file)],
            stdout=subprocess.PIPE,
            text=True,
        )
        holders.append(holder)
        assert holder.stdout.readline().strip() == "held"
        return logged

    monkeypatch.setattr(tracking, "log_run", log_then_lock)
    try:
        res = run_cli("run", "--config", str(project["cfg"]), "--out", str(out))
    finally:
        for holder in holders:
            holder.kill()
            holder.wait()
    assert holders, res.output
    assert res.exit_code == 1, res.output
    assert str(history_file) in res.output
    assert "Traceback" not in res.output
    assert champion_version(project) is None
    runs = all_runs(project)
    assert [r.info.status for r in runs] == ["FAILED"]
    assert tree(out) == before
    assert not [p for p in project["tmp"].iterdir() if ".staging-" in p.name]
    # 6. the logged configuration names files relative to the configuration's folder
    logged = json.dumps(runs[0].data.params) + json.dumps(
        json.loads(
            Path(
                mlflow_client(project).download_artifacts(
                    runs[0].info.run_id, "config.json", str(project["tmp"])
                )
            ).read_text()
        )
    )
    assert str(project["tmp"]) not in logged
    assert str(Path(project["cfg"]).parent.parent) not in logged


# 3. orphaned MLflow runs --------------------------------------------------------------------


def test_runs_left_running_by_a_dead_process_are_marked_failed(project):
    """A run whose process was killed stays RUNNING in MLflow; the next run marks it FAILED
    (and leaves alone a RUNNING run of a live process)."""
    import mlflow

    from flows.config import load_config
    from flows.store import tracking

    cfg = load_config(project["cfg"])
    tracking._mlflow(cfg)
    code = textwrap.dedent(
        f"""
        import os, mlflow, socket
        mlflow.set_tracking_uri({cfg.tracking.tracking_uri!r})
        mlflow.set_experiment({cfg.tracking.experiment!r})
        mlflow.start_run(tags={{"milestones.pid": str(os.getpid()),
                               "milestones.host": socket.gethostname()}})
        os.kill(os.getpid(), 9)
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], check=False)
    assert proc.returncode == -9
    live = mlflow.MlflowClient().create_run(
        mlflow.get_experiment_by_name(cfg.tracking.experiment).experiment_id,
        tags={
            "milestones.pid": str(os.getppid()),
            "milestones.host": __import__("socket").gethostname(),
        },
    )
    assert sorted(r.info.status for r in all_runs(project)) == ["RUNNING", "RUNNING"]
    failed = tracking.fail_orphaned_runs(cfg)
    assert len(failed) == 1 and failed[0] != live.info.run_id
    statuses = {r.info.run_id: r.info.status for r in all_runs(project)}
    assert statuses == {failed[0]: "FAILED", live.info.run_id: "RUNNING"}


# 3. the validation side file ---------------------------------------------------------------


def test_a_run_that_passes_validation_but_never_publishes_keeps_the_side_file(project):
    """``<out>.validation.json`` is rewritten only by a publication (or by rejected inputs,
    or by ``milestones validate``): a run that validates and then fails leaves it alone."""
    from flows.config import load_config
    from flows.steps.inputs import validate_and_record, validation_sidecar

    cfg = load_config(project["cfg"])
    side = validation_sidecar(project["out"])
    side.write_text('{"published": true}\n')
    validate_and_record(cfg, project["out"], publishing=True)
    assert side.read_text() == '{"published": true}\n'
