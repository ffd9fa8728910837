"""Schedules: two Prefect deployments, retrain (the whole pipeline) and score, on crons.

Schedules only fire on a real Prefect server (not the temporary one a single flow run starts):
:func:`local_server` starts ``prefect server start`` on 127.0.0.1 when ``PREFECT_API_URL`` is
not set, and stops it when serving ends.

Only the owner steers the service. The server it starts requires basic auth with a random
credential made per ``serve`` (``PREFECT_SERVER_API_AUTH_STRING``), written to
``<PREFECT_HOME>/serve.auth`` (mode 0600) and removed when serving ends. A flow run may not
point the flows elsewhere: :func:`flows.served.check_served_run` refuses a ``config`` other
than the served file and an ``out`` outside the served output folder.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from flows.served import SERVED_CONFIG, SERVED_OUT

log = logging.getLogger("milestones")

#: the file beside ``PREFECT_HOME`` that holds the local server's ``user:password``
AUTH_FILE = "serve.auth"
AUTH_USER = "milestones"


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


def write_auth_file(path: Path, auth: str) -> None:
    """Write ``auth`` to ``path``, readable and writable by its owner only (mode 0600).

    The file is created 0600 under a temporary name (never through a symbolic link) and then
    renamed into place, so it is never readable by others, not even for a moment.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(tmp, flags, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(auth + "\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _remove_auth_file(path: Path, auth: str) -> None:
    """Remove the credential file, unless another ``serve`` has replaced it since."""
    try:
        if path.read_text(encoding="utf-8").strip() == auth:
            path.unlink()
    except OSError:
        pass


@contextlib.contextmanager
def local_server(
    port: int | None = None, home: Path | None = None, auth: str | None = None
) -> Iterator[str]:
    """Start ``prefect server start`` on 127.0.0.1 and yield its API URL; stop it afterwards.

    With ``auth`` (``"user:password"``) the server refuses every API request but its health
    check without that basic-auth credential (``PREFECT_SERVER_API_AUTH_STRING``). The
    credential travels in the server's environment, never on its command line.
    """
    port = port or _free_port()
    env = dict(os.environ)
    if home is not None:
        env["PREFECT_HOME"] = str(home)
    env.pop("PREFECT_API_URL", None)
    if auth is not None:
        env["PREFECT_SERVER_API_AUTH_STRING"] = auth
        env["PREFECT_API_AUTH_STRING"] = auth
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


def _prefect_home() -> Path:
    if os.environ.get("PREFECT_HOME"):
        return Path(os.environ["PREFECT_HOME"]).expanduser()
    from prefect.settings import get_current_settings

    return Path(get_current_settings().home)


def serve(config_path: str | Path, out: str | Path | None = None) -> None:
    """Serve both deployments until interrupted (Ctrl-C).

    A flow run may only run ``config_path`` and write inside ``out`` (default: the
    configuration's output folder); see :func:`flows.served.check_served_run`. Without
    ``PREFECT_API_URL``, the Prefect server started here requires the credential written to
    ``<PREFECT_HOME>/serve.auth``; a server of the user's own is left as it is configured.
    """
    from prefect import serve as prefect_serve

    from flows.config import load_config

    config_file = Path(config_path).resolve()
    allowed = Path(out).resolve() if out else load_config(config_file).out_dir.resolve()
    # inherited by every flow-run process; a run's parameters cannot change them
    os.environ[SERVED_CONFIG] = str(config_file)
    os.environ[SERVED_OUT] = str(allowed)
    log.info("flow runs may only run %s and write inside %s", config_file, allowed)

    def run() -> None:
        deps = deployments(config_file, out)
        for d in deps:
            log.info("serving %s/%s on cron %r", d.flow_name, d.name, d.schedules[0].schedule.cron)
        prefect_serve(*deps, print_starting_message=False)

    if os.environ.get("PREFECT_API_URL"):
        log.info(
            "using the Prefect server at %s; its credential is yours to set "
            "(PREFECT_SERVER_API_AUTH_STRING on it, PREFECT_API_AUTH_STRING here)",
            os.environ["PREFECT_API_URL"],
        )
        run()
        return
    auth = f"{AUTH_USER}:{secrets.token_urlsafe(32)}"
    auth_file = _prefect_home() / AUTH_FILE
    write_auth_file(auth_file, auth)
    try:
        with local_server(auth=auth) as url:
            log.info("started a Prefect server at %s (UI: %s)", url, url.removesuffix("/api"))
            log.info("it requires the user:password credential in %s (mode 0600)", auth_file)
            os.environ["PREFECT_API_URL"] = url
            os.environ["PREFECT_API_AUTH_STRING"] = auth
            from prefect.settings import (
                PREFECT_API_AUTH_STRING,
                PREFECT_API_URL,
                temporary_settings,
            )

            with temporary_settings(updates={PREFECT_API_URL: url, PREFECT_API_AUTH_STRING: auth}):
                run()
    finally:
        _remove_auth_file(auth_file, auth)
