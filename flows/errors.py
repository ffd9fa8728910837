"""The errors a user is expected to meet, each with its exit status.

The command line prints an expected error's message alone (no traceback) and exits with its
``exit_code``: 2 for invalid input data or configuration, 1 for the rest. Any other exception
is unexpected: its traceback goes to a log file (see :func:`flows.runtime.write_crash_log`).
"""

from __future__ import annotations


class MilestonesError(Exception):
    """An expected failure: its message is for the user, its traceback is not."""

    exit_code = 1


class ConfigError(MilestonesError, ValueError):
    """The configuration file is missing, unreadable or breaks a rule (exit status 2)."""

    exit_code = 2


class InvalidInputError(MilestonesError, ValueError):
    """The input data break the data contract, or cannot be read (exit status 2).

    ``details`` holds the machine-readable validation result, when there is one; it is
    written to ``<out>.validation.json`` and never printed.
    """

    exit_code = 2

    def __init__(self, message: str, details: dict | None = None):
        super().__init__(message)
        self.details = details if details is not None else {"ok": False, "error": message}

    def __str__(self) -> str:
        return str(self.args[0])


class NotFoundError(MilestonesError, LookupError):
    """A thing the command names does not exist: a run, or a file of it (exit status 2)."""

    exit_code = 2


class NoChampionError(MilestonesError, RuntimeError):
    """There is no champion model to score with (none yet, or one this version cannot read)."""

    exit_code = 1


class LockedError(MilestonesError):
    """Another process is writing the same output folder or history (exit status 1)."""


class WriteError(MilestonesError, OSError):
    """A file of a publication cannot be written (full disk, permissions); names the path."""
