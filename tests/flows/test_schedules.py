"""Schedules: the deployments and their crons, and a served deployment on a real server.

A served deployment is steered by its owner only: the server ``milestones serve`` starts
requires the credential it writes to ``serve.auth``, and a flow run's parameters cannot point
it at another configuration or outside its output folder.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from flows.serve import deployments, local_server


def test_deployments_carry_the_configured_crons(runs):
    deps = {d.name: d for d in deployments(runs["cfg"])}
    assert set(deps) == {"retrain", "score"}
    assert deps["retrain"].schedules[0].schedule.cron == "0 3 1 * *"
    assert deps["score"].schedules[0].schedule.cron == "0 6 * * *"
    assert deps["score"].parameters["config"] == str(Path(runs["cfg"]).resolve())


# --- the guard of a served run, in-process --------------------------------------------------


@pytest.fixture
def served_env(tmp_path, monkeypatch):
    from flows.served import SERVED_CONFIG, SERVED_OUT

    cfg = tmp_path / "conf" / "served.yaml"
    cfg.parent.mkdir()
    demo = Path(__file__).resolve().parents[2] / "configs" / "demo.yaml"
    cfg.write_text(demo.read_text() + f"out: {tmp_path / 'conf-out'}\n")
    allowed = tmp_path / "allowed"
    monkeypatch.setenv(SERVED_CONFIG, str(cfg.resolve()))
    monkeypatch.setenv(SERVED_OUT, str(allowed.resolve()))
    return {"cfg": cfg, "allowed": allowed, "tmp": tmp_path}


def test_a_served_run_keeps_to_its_configuration_and_output_folder(served_env):
    from flows.errors import MilestonesError
    from flows.served import check_served_run

    cfg, allowed, tmp = served_env["cfg"], served_env["allowed"], served_env["tmp"]
    check_served_run(str(cfg), str(allowed))
    check_served_run(str(cfg), str(allowed / "backfill"))
    (tmp / "conf" / "sub").mkdir()
    check_served_run(str(tmp / "conf" / "sub" / ".." / "served.yaml"), str(allowed))
    other = tmp / "other.yaml"
    other.write_text(cfg.read_text())
    outside = tmp / "outside"
    (tmp / "link").symlink_to(outside)
    allowed.mkdir()
    (allowed / "escape").symlink_to(outside)
    refused = [
        (str(other), str(allowed)),
        ({"data": {}}, str(allowed)),
        (str(cfg), str(outside)),
        (str(cfg), str(allowed / ".." / "outside")),
        (str(cfg), str(allowed / "escape")),
        (str(cfg), str(tmp / "link")),
        (str(cfg), str(tmp)),
        (str(cfg), None),  # the configuration's own folder is not the served one
    ]
    for config, out in refused:
        with pytest.raises(MilestonesError, match="refused"):
            check_served_run(config, out)
    assert not outside.exists()


def test_an_empty_out_means_the_served_configurations_folder(served_env, monkeypatch):
    from flows.served import SERVED_OUT, check_served_run

    monkeypatch.setenv(SERVED_OUT, str((served_env["tmp"] / "conf-out").resolve()))
    check_served_run(str(served_env["cfg"]), None)
    check_served_run(str(served_env["cfg"]), "")


def test_outside_a_served_process_the_guard_does_nothing(tmp_path, monkeypatch):
    from flows.served import SERVED_CONFIG, check_served_run

    monkeypatch.delenv(SERVED_CONFIG, raising=False)
    check_served_run(str(tmp_path / "any.yaml"), str(tmp_path / "anywhere"))


def test_the_credential_file_is_the_owners_alone(tmp_path):
    from flows.serve import write_auth_file

    path = tmp_path / "home" / "serve.auth"
    write_auth_file(path, "milestones:one")
    write_auth_file(path, "milestones:two")
    assert path.read_text().strip() == "milestones:two"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["serve.auth"]


# --- real servers ---------------------------------------------------------------------------


def _stop(proc: subprocess.Popen) -> None:
    """Interrupt a process started in its own session, then kill whatever of it is left,
    including the process groups its children started (the Prefect server)."""
    import psutil

    try:
        groups = {os.getpgid(c.pid) for c in psutil.Process(proc.pid).children(recursive=True)}
    except (psutil.Error, ProcessLookupError):
        groups = set()
    groups.add(proc.pid)
    try:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=30)
    except (subprocess.TimeoutExpired, ProcessLookupError):
        pass
    for group in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signal.SIGKILL)
    proc.wait()


def _run_deployment(name: str, parameters: dict | None = None, timeout: float = 180):
    """Start a flow run of a served deployment and wait for its final state (the Prefect
    settings in effect say which server and credential)."""
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    deadline = time.monotonic() + timeout
    flow_run = None
    while flow_run is None and time.monotonic() < deadline:
        try:
            flow_run = run_deployment(name, parameters=parameters, timeout=0)
        except Exception:  # noqa: BLE001 - the deployment is not registered yet
            time.sleep(1)
    assert flow_run is not None, f"the {name} deployment never appeared"
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            state = client.read_flow_run(flow_run.id).state
            if state.is_final():
                return state
            time.sleep(1)
    raise AssertionError(f"the flow run of {name} did not finish within {timeout:.0f} s: {state}")


def _tree(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
    }


@pytest.fixture(scope="module")
def owned_service(runs, tmp_path_factory):
    """``milestones serve`` with no PREFECT_API_URL: it starts its own server on 127.0.0.1."""
    tmp = tmp_path_factory.mktemp("owned")
    home, out = tmp / "prefect", tmp / "served"
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"PREFECT_API_URL", "PREFECT_API_AUTH_STRING", "PREFECT_SERVER_API_AUTH_STRING"}
    }
    env["PREFECT_HOME"] = str(home)
    proc = subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "serve", "--config", str(runs["cfg"])]
        + ["--out", str(out)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 150
        url = None
        while url is None and time.monotonic() < deadline and proc.poll() is None:
            found = re.search(r"started a Prefect server at (\S+/api)", "".join(lines))
            url = found.group(1) if found else None
            time.sleep(0.5)
        assert url, "serve did not start its server:\n" + "".join(lines)
        auth_file = home / "serve.auth"
        assert auth_file.is_file(), "serve wrote no credential file:\n" + "".join(lines)
        auth = auth_file.read_text().strip()
        import httpx

        names: set[str] = set()
        while names != {"retrain", "score"} and time.monotonic() < deadline:
            time.sleep(0.5)
            answer = httpx.post(
                f"{url}/deployments/filter", json={}, auth=tuple(auth.split(":", 1)), timeout=10
            )
            names = {d["name"] for d in answer.json()} if answer.status_code == 200 else set()
        assert names == {"retrain", "score"}, "serve registered no deployments:\n" + "".join(lines)
        from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

        with temporary_settings(updates={PREFECT_API_URL: url, PREFECT_API_AUTH_STRING: auth}):
            yield {
                "url": url,
                "auth": auth,
                "auth_file": auth_file,
                "out": out,
                "tmp": tmp,
                "lines": lines,
            }
    finally:
        _stop(proc)
    assert not (home / "serve.auth").exists(), "serve left its credential file behind"


@pytest.mark.slow
def test_served_api_refuses_requests_without_the_owners_credential(owned_service):
    import httpx

    svc = owned_service
    assert stat.S_IMODE(svc["auth_file"].stat().st_mode) == 0o600
    user, password = svc["auth"].split(":", 1)
    assert len(password) >= 32
    endpoint = f"{svc['url']}/deployments/filter"
    assert httpx.post(endpoint, json={}, timeout=10).status_code == 401
    assert httpx.post(endpoint, json={}, auth=(user, "guess"), timeout=10).status_code == 401
    answer = httpx.post(endpoint, json={}, auth=(user, password), timeout=10)
    assert answer.status_code == 200
    assert {d["name"] for d in answer.json()} == {"retrain", "score"}
    assert password not in "".join(svc["lines"]), "serve printed its secret"
    assert str(svc["auth_file"]) in "".join(svc["lines"])


@pytest.mark.slow
def test_served_runs_cannot_redirect_the_output_or_the_configuration(owned_service, runs):
    svc = owned_service
    outside = svc["tmp"] / "outside"
    (outside / "elsewhere").mkdir(parents=True)
    (outside / "elsewhere" / "keep.txt").write_text("not the pipeline's\n")
    other = outside / "other.yaml"
    other.write_text(runs["cfg"].read_text() + f"out: {outside / 'via-config'}\n")
    before = _tree(outside)
    attempts = [
        ("score/score", {"out": str(outside / "elsewhere")}),
        ("score/score", {"out": str(outside / "new")}),
        ("pipeline/retrain", {"out": str(outside / "elsewhere")}),
        ("score/score", {"config": str(other), "out": None}),
    ]
    for name, parameters in attempts:
        state = _run_deployment(name, parameters)
        assert state.is_failed(), (name, parameters, state)
        assert "refused" in (state.message or ""), (name, parameters, state.message)
    assert _tree(outside) == before


@pytest.mark.slow
def test_served_score_run_completes_with_the_owners_credential(owned_service, runs):
    state = _run_deployment("score/score")
    assert state.is_completed(), state
    scores = pd.read_parquet(owned_service["out"] / "scores.parquet")
    assert len(scores) == len(pd.read_parquet(runs["tmp"] / "first" / "scores.parquet"))


@pytest.mark.slow
def test_served_score_deployment_runs_on_a_real_server(runs, tmp_path):
    """A server of the user's own (PREFECT_API_URL set): serve uses it as it is."""
    out = tmp_path / "served"
    started = time.monotonic()
    with local_server(home=tmp_path / "prefect") as url:
        env = dict(os.environ, PREFECT_API_URL=url, PREFECT_HOME=str(tmp_path / "prefect"))
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "flows.cli",
                "serve",
                "--config",
                str(runs["cfg"]),
                "--out",
                str(out),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            from prefect.settings import PREFECT_API_URL, temporary_settings

            with temporary_settings(updates={PREFECT_API_URL: url}):
                state = _run_deployment("score/score", timeout=120)
            assert state.is_completed(), state
        finally:
            _stop(server)
    scores = pd.read_parquet(out / "scores.parquet")
    assert len(scores) == len(pd.read_parquet(runs["tmp"] / "first" / "scores.parquet"))
    assert not (tmp_path / "prefect" / "serve.auth").exists()
    print(f"schedule test took {time.monotonic() - started:.1f} s")
