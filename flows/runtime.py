"""Process-wide settings made by the entry points (never at import time).

Prefect and MLflow read their settings from the environment; this module sets quiet, robust
defaults for a 2-core machine and points both at folders of the project, unless the user has
set them already.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

log = logging.getLogger("milestones")


def project_root() -> Path:
    """The repository when running from a checkout, else the working directory."""
    here = Path(__file__).resolve().parents[1]
    return here if (here / "pyproject.toml").is_file() else Path.cwd()


def default_tracking_uri() -> str:
    store = project_root() / "mlruns"
    return f"sqlite:///{store / 'mlflow.db'}"


def default_artifact_root() -> str:
    return str(project_root() / "mlruns" / "artifacts")


def configure_environment(quiet_runs: bool = True) -> None:
    """Set Prefect's and MLflow's environment defaults (only those the user left unset).

    With ``quiet_runs`` (one-shot commands), Prefect's flow- and task-run loggers are silenced:
    a failed step would otherwise print its exception, traceback and arguments twice before
    the command line prints the one message the user needs. ``serve`` keeps them, for the UI.
    """
    root = project_root()
    defaults = {
        "PREFECT_HOME": str(root / ".prefect"),
        "DO_NOT_TRACK": "true",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
        "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
        "PREFECT_LOGGING_TO_API_ENABLED": "false",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        "GIT_PYTHON_REFRESH": "quiet",
        "OMP_WAIT_POLICY": "passive",
        "TQDM_DISABLE": "1",
    }
    if quiet_runs:
        defaults["PREFECT_LOGGING_LOGGERS_PREFECT_FLOW_RUNS_LEVEL"] = "CRITICAL"
        defaults["PREFECT_LOGGING_LOGGERS_PREFECT_TASK_RUNS_LEVEL"] = "CRITICAL"
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    Path(os.environ["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)
    start_watchdog()


#: the watchdog's program (``python -I -S -c``, standard library only): it records every
#: descendant of the process it watches and, once that process is gone (ended normally or
#: killed with ``kill -9``), stops those still alive: SIGTERM, then SIGKILL after 3 s. A pid is
#: signalled only while its start time is the one recorded (never a reused pid).
_WATCHDOG = r"""
import os, signal, sys, time
parent, me, seen = int(sys.argv[1]), os.getpid(), {}
signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the command; we clean up after it
def started(pid):
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None
def children(pid):
    found = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                found += [int(c) for c in fh.read().split()]
    except OSError:
        pass
    return found
def scan():
    stack = [parent]
    while stack:
        for child in children(stack.pop()):
            if child != me:
                if child not in seen:
                    seen[child] = started(child)
                stack.append(child)
def alive():
    return [p for p, t in seen.items() if t is not None and started(p) == t]
while os.getppid() == parent:
    scan()
    time.sleep(0.2)
for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 1.0)):
    for pid in alive():
        try:
            os.kill(pid, sig)
        except OSError:
            pass
    end = time.monotonic() + wait
    while alive() and time.monotonic() < end:
        time.sleep(0.05)
"""
_watchdog: dict[int, object] = {}


def start_watchdog() -> None:
    """Start, once per process, a small watchdog that stops this process's descendants when
    it ends, however it ends.

    Prefect's temporary API server (started by the first flow call when ``PREFECT_API_URL`` is
    unset) and ``serve``'s own ``prefect server start`` are children of the command: a
    ``kill -9`` of the command would leave them running (about 200 MB each). A watchdog
    process sees every descendant, not only the servers, and needs no change to how Prefect
    starts them. Linux only (it reads ``/proc``); elsewhere nothing is started.
    """
    import subprocess

    if os.getpid() in _watchdog or not Path("/proc/self/task").is_dir():
        return
    _watchdog[os.getpid()] = subprocess.Popen(
        [sys.executable, "-I", "-S", "-c", _WATCHDOG, str(os.getpid())],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        close_fds=True,
    )


def setup_logging(verbose: bool = False, quiet_runs: bool = True) -> None:
    level = logging.DEBUG if verbose else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False
    for noisy in ("mlflow", "alembic", "great_expectations", "py4j", "prefect", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # the CLI reports a failed run itself, in one line, with the right exit status (Prefect
    # may be imported already, as in tests; else the environment of configure_environment
    # reaches its logging set-up)
    if quiet_runs:
        for chatty in ("prefect.flow_runs", "prefect.task_runs"):
            logging.getLogger(chatty).setLevel(logging.CRITICAL)


class Stage:
    """A progress line per pipeline stage: ``[3/6] train ... done in 4.2 s``."""

    def __init__(self, index: int, total: int, name: str):
        self.index, self.total, self.name = index, total, name

    def __enter__(self) -> Stage:
        self.start = time.perf_counter()
        log.info("[%d/%d] %s ...", self.index, self.total, self.name)
        return self

    def note(self, message: str, *args) -> None:
        log.info("      " + message, *args)

    def __exit__(self, exc_type, exc, tb) -> None:
        took = time.perf_counter() - self.start
        if exc_type is None:
            log.info("[%d/%d] %s done in %.1f s", self.index, self.total, self.name, took)
        else:
            log.info("[%d/%d] %s failed after %.1f s", self.index, self.total, self.name, took)


def log_dir() -> Path:
    """Where unexpected errors leave their traceback: ``MILESTONES_LOG_DIR``, else ``logs/``
    of the project."""
    return Path(os.environ.get("MILESTONES_LOG_DIR") or project_root() / "logs")


def write_crash_log(exc: BaseException, command: str) -> Path | None:
    """Write the traceback of an unexpected error to a new file; return its path.

    Returns None when no file can be written (the traceback then goes to stderr, as the last
    resort).
    """
    import traceback

    text = "".join(traceback.format_exception(exc))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    try:
        folder = log_dir()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"milestones-{stamp}-{os.getpid()}.log"
        path.write_text(f"milestones {command}: unexpected error\n{' '.join(sys.argv)}\n\n{text}")
        return path
    except OSError:
        sys.stderr.write(text)
        return None


def stop_prefect_servers() -> None:
    """Stop any temporary Prefect server this process started (normally an atexit hook)."""
    if "prefect.server.api.server" not in sys.modules:
        return
    try:
        from prefect.server.api.server import SubprocessASGIServer

        for server in list(SubprocessASGIServer._instances.values()):
            server.stop()
    except Exception as exc:  # noqa: BLE001 - best effort at exit
        log.debug("could not stop Prefect's temporary server: %s", exc)


def hard_exit(code: int) -> None:
    """End the process now, with ``code``, after stopping Prefect's temporary server.

    DuckDB 2.0's nanobind bindings print dozens of spurious "leaked instance" lines at
    interpreter teardown once Ibis, Great Expectations and Prefect held the same connection;
    every output is written and closed by the time this is called, so teardown is skipped.
    """
    stop_prefect_servers()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
