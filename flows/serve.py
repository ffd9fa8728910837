"""Schedules: two Prefect deployments, retrain (the whole pipeline) and score, on crons.

Schedules only fire on a real Prefect server (not the temporary one a single flow run starts):
:func:`local_server` starts ``prefect server start`` on 127.0.0.1 when ``PREFECT_API_URL`` is
not set, and stops it when serving ends.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger("milestones")


def deployments(config_path: str | Path, out: str | Path | None = None) -> list:
    """The retrain and score deployments of one configuration, with its crons."""
    from flows.config import load_config
    from flows.retrain import retrain_flow
    from flows.score import score_flow

    cfg = load_config(config_path)
    params = {"config": str(Path(config_path).resolve())}
    if out is not None:
        params["out"] = str(Path(out).resolve())
    return [
        retrain_flow.to_deployment(
            name="retrain",
            cron=cfg.schedule.retrain,
            parameters=params,
            description="Validate, build features, train, derive thresholds, score and publish.",
            tags=["milestones"],
        ),
        score_flow.to_deployment(
            name="score",
            cron=cfg.schedule.score,
            parameters=params,
            description="Score live accounts with the champion model and thresholds.",
            tags=["milestones"],
        ),
    ]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, timeout: float = 120.0) -> None:
    """Wait until the Prefect API at ``url`` answers its health check."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"the Prefect server at {url} did not answer within {timeout:.0f} s")


@contextlib.contextmanager
def local_server(port: int | None = None, home: Path | None = None) -> Iterator[str]:
    """Start ``prefect server start`` on 127.0.0.1 and yield its API URL; stop it afterwards."""
    port = port or _free_port()
    env = dict(os.environ)
    if home is not None:
        env["PREFECT_HOME"] = str(home)
    env.pop("PREFECT_API_URL", None)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "prefect",
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/api"
    try:
        wait_healthy(url)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def serve(config_path: str | Path, out: str | Path | None = None) -> None:
    """Serve both deployments until interrupted (Ctrl-C)."""
    from prefect import serve as prefect_serve

    def run() -> None:
        deps = deployments(config_path, out)
        for d in deps:
            log.info("serving %s/%s on cron %r", d.flow_name, d.name, d.schedules[0].schedule.cron)
        prefect_serve(*deps, print_starting_message=False)

    if os.environ.get("PREFECT_API_URL"):
        run()
        return
    with local_server() as url:
        log.info("started a Prefect server at %s (UI: %s)", url, url.removesuffix("/api"))
        os.environ["PREFECT_API_URL"] = url
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings(updates={PREFECT_API_URL: url}):
            run()
