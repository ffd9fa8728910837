"""Schedules: the deployments and their crons, and a served deployment on a real server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
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


@pytest.mark.slow
def test_served_score_deployment_runs_on_a_real_server(runs, tmp_path):
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
            from prefect.deployments import run_deployment
            from prefect.settings import PREFECT_API_URL, temporary_settings

            with temporary_settings(updates={PREFECT_API_URL: url}):
                deadline = time.monotonic() + 120
                flow_run = None
                while flow_run is None and time.monotonic() < deadline:
                    try:
                        flow_run = run_deployment("score/score", timeout=0)
                    except Exception:  # noqa: BLE001 - the deployment is not registered yet
                        time.sleep(1)
                assert flow_run is not None, "the score deployment never appeared"
                from prefect.client.orchestration import get_client

                with get_client(sync_client=True) as client:
                    while time.monotonic() < deadline:
                        state = client.read_flow_run(flow_run.id).state
                        if state.is_final():
                            break
                        time.sleep(1)
            assert state.is_completed(), state
        finally:
            os.killpg(server.pid, signal.SIGINT)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
    scores = pd.read_parquet(out / "scores.parquet")
    assert len(scores) == len(pd.read_parquet(runs["tmp"] / "first" / "scores.parquet"))
    print(f"schedule test took {time.monotonic() - started:.1f} s")
