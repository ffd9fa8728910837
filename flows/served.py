"""What a flow run of a served deployment may do: run the served configuration, write into the
served output folder, nothing else.

``milestones serve`` (:mod:`flows.serve`) records both in its own environment
(:data:`SERVED_CONFIG`, :data:`SERVED_OUT`), which its flow-run processes inherit; a flow
run's parameters come from the API and cannot change them. The retrain and score flows call
:func:`check_served_run` first. Kept apart from :mod:`flows.serve`, which imports the flows.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from flows.errors import MilestonesError

#: the configuration file the service was started with (absolute)
SERVED_CONFIG = "MILESTONES_SERVED_CONFIG"
#: the output folder the service was started for (absolute)
SERVED_OUT = "MILESTONES_SERVED_OUT"


def _path(value: Any, what: str) -> Path:
    if not isinstance(value, str | os.PathLike):
        raise MilestonesError(
            f"refused: a served run's {what} must be a path, not {type(value).__name__}"
        )
    return Path(value).expanduser().resolve()


def check_served_run(config: Any, out: Any) -> None:
    """Refuse a served flow run whose parameters leave what the service was started with.

    Outside ``milestones serve`` (:data:`SERVED_CONFIG` unset) this does nothing. Inside it,
    ``config`` must resolve to the served configuration file and ``out`` (empty: the
    configuration's output folder) inside the served output folder, symbolic links followed;
    otherwise it raises :class:`~flows.errors.MilestonesError` before anything is read or
    written.
    """
    served_config = os.environ.get(SERVED_CONFIG)
    if not served_config:
        return
    served_out = os.environ.get(SERVED_OUT)
    if not served_out:
        raise MilestonesError(f"refused: {SERVED_OUT} is not set beside {SERVED_CONFIG}")
    if _path(config, "config") != Path(served_config):
        raise MilestonesError(
            f"refused: this service runs only its configuration {served_config}, "
            f"not config={config!r}"
        )
    if out:
        target = _path(out, "out")
    else:
        from flows.config import load_config

        target = load_config(served_config).out_dir.resolve()
    allowed = Path(served_out)
    if not target.is_relative_to(allowed):
        raise MilestonesError(
            f"refused: this service writes only inside {allowed}, not out={str(target)!r}"
        )
