"""Atomic publication of an output folder: all files or none.

Files are written into a staging folder beside the destination; publishing renames the old
folder aside, renames the staging folder into place and removes the old one. A process killed
between the two renames leaves the previous publication whole under ``<out>.previous``, and
:func:`recover` (called before every publication and read) puts it back.

One writer at a time: :func:`staged` holds ``<out>.lock`` (``fcntl.flock``) for the whole
publication; a second writer fails at once with :class:`LockedError`, naming the lock and the
holder's pid (it does not wait: a run takes minutes, and a queued one would publish stale
work). The staging folder is named ``.<out>.staging-<pid>-<random>``: the next publication
removes those whose process is gone (killed runs). A failed write names its path
(:class:`WriteError`), a full disk included.

:func:`write_csv` writes every published CSV file the same way: UTF-8, booleans as
``true``/``false``, and no text cell that a spreadsheet would run as a formula.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flows.errors import LockedError, MilestonesError, WriteError

if TYPE_CHECKING:
    import pandas as pd

#: a text cell starting with one of these is run as a formula by a spreadsheet (OWASP CSV
#: injection); the cell is published with a single quote before it
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
#: a plain decimal number ("-3.5", "+1e-3") is read as a number, never as a formula
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


@contextlib.contextmanager
def naming_path(path: Path, what: str = "write") -> Iterator[None]:
    """Turn an OSError of the block into a :class:`WriteError` naming ``path`` (or the file
    the error names) and the system's message."""
    try:
        yield
    except MilestonesError:
        raise
    except OSError as exc:
        where = exc.filename or path
        reason = exc.strerror or str(exc)
        code = f"[Errno {exc.errno}] " if exc.errno else ""
        raise WriteError(f"cannot {what} {where}: {code}{reason}") from exc


def lock_path(target: Path) -> Path:
    """The lock file of an output folder or a history file: ``<target>.lock`` beside it."""
    target = Path(target)
    return target.with_name(target.name + ".lock")


@contextlib.contextmanager
def locked(target: Path, what: str) -> Iterator[Path]:
    """Hold ``<target>.lock`` (an exclusive ``flock``) for the block; the lock file holds the
    holder's pid. The lock ends with the process, however it ends.

    Raises
    ------
    LockedError
        At once, when another process holds it: naming the lock file and that process's pid.
    """
    import fcntl

    path = lock_path(target)
    with naming_path(path, "create the lock"):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            raise LockedError(
                f"{what} {target} is being written by another process (pid {holder}; lock "
                f"{path}); try again when it has finished"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield path
    finally:
        os.close(fd)  # releases the lock; the file stays (removing it would race)


def _staging_prefix(out: Path) -> str:
    return f".{out.name}.staging-"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def remove_stale_staging(out: Path) -> list[Path]:
    """Remove the staging folders of ``out`` whose process is gone; returns them.

    Called under ``<out>.lock``; a folder without a pid in its name (an older version's)
    counts as stale.
    """
    out = Path(out)
    removed = []
    if not out.parent.is_dir():
        return removed
    for folder in out.parent.glob(_staging_prefix(out) + "*"):
        owner = folder.name[len(_staging_prefix(out)) :].split("-", 1)[0]
        if owner.isdigit() and (int(owner) == os.getpid() or _pid_alive(int(owner))):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


def _previous(out: Path) -> Path:
    return out.with_name(out.name + ".previous")


def recover(out: Path) -> None:
    """Restore a publication that a killed process left renamed aside."""
    out = Path(out)
    prev = _previous(out)
    if prev.is_dir() and not out.exists():
        os.rename(prev, out)
    elif prev.is_dir() and out.is_dir():
        shutil.rmtree(prev, ignore_errors=True)


def staging_dir(out: Path) -> Path:
    """A fresh, empty staging folder on the same file system as ``out``."""
    out = Path(out)
    with naming_path(out.parent, "create a staging folder in"):
        out.parent.mkdir(parents=True, exist_ok=True)
        return Path(
            tempfile.mkdtemp(prefix=f"{_staging_prefix(out)}{os.getpid()}-", dir=out.parent)
        )


def publish(staging: Path, out: Path) -> Path:
    """Move the staging folder into place as ``out``, replacing the previous publication."""
    staging, out = Path(staging), Path(out)
    recover(out)
    prev = _previous(out)
    with naming_path(out, "publish"):
        os.chmod(staging, 0o755)  # mkdtemp made it private; a publication is for readers
        if out.exists():
            os.rename(out, prev)
        os.rename(staging, out)
    if prev.exists():
        shutil.rmtree(prev, ignore_errors=True)
    _fsync_dir(out.parent)
    return out


def discard(staging: Path) -> None:
    shutil.rmtree(staging, ignore_errors=True)


@contextlib.contextmanager
def staged(out: Path) -> Iterator[Path]:
    """A staging folder for a publication to ``out``, removed when the block fails.

    Holds ``<out>.lock`` for the block (:func:`locked`). A killed earlier publication is
    recovered first and the staging folders of dead processes are removed. The block writes
    into the folder and calls :func:`publish` when everything is in it; on any error nothing
    of it is left.
    """
    out = Path(out)
    with locked(out, "the output folder"):
        recover(out)
        remove_stale_staging(out)
        staging = staging_dir(out)
        try:
            yield staging
        except BaseException:
            discard(staging)
            raise


def write_text_atomic(path: Path, text: str) -> None:
    """Write a single file atomically (temp file then rename)."""
    path = Path(path)
    with naming_path(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


def neutralise(text: str) -> str:
    """``text`` as a spreadsheet shows it without running it: a single quote before a cell
    that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return, unless the whole
    cell is a plain decimal number."""
    if text.startswith(FORMULA_START) and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


def _csv_cell(value: Any) -> Any:
    import numpy as np

    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, str):
        return neutralise(value)
    return value


def write_csv(
    frame: pd.DataFrame, path: Path, float_format: Mapping[str, str] | None = None
) -> None:
    """Write ``frame`` as a published CSV file (no index), the same way for every file.

    UTF-8 (no byte-order mark); RFC 4180 rows (``\\r\\n`` line ends, a cell quoted when it
    holds a comma, a quote or a line break); booleans as ``true``/``false``; missing values as
    empty cells; every text cell and header passed through :func:`neutralise`. Numbers are
    written as numbers (a negative one is not text), at full precision unless ``float_format``
    gives a column a printf format such as ``"%.6g"``. The frame itself is left as it is
    (Parquet keeps the raw values).
    """
    import pandas as pd
    from pandas.api import types

    formats = dict(float_format or {})
    out = frame.copy(deep=False)
    for i, column in enumerate(out.columns):
        values = out.iloc[:, i]
        kind = values.dtype
        cells = None
        if types.is_bool_dtype(kind) or not (
            types.is_numeric_dtype(kind) or types.is_datetime64_any_dtype(kind)
        ):  # booleans, text, categories, mixed objects
            cells = [_csv_cell(v) for v in values.astype(object)]
        elif types.is_float_dtype(kind) and column in formats:
            fmt = formats[column]
            cells = [None if pd.isna(v) else fmt % v for v in values]
        if cells is not None:
            out.isetitem(i, pd.Series(cells, index=values.index, dtype=object))
    out.columns = [neutralise(c) if isinstance(c, str) else c for c in out.columns]
    out.to_csv(path, index=False, encoding="utf-8", lineterminator="\r\n")


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


IMPORTANCE_FILES = ("importance.parquet", "importance.csv")


def read_importance(folder: Path) -> pd.DataFrame | None:
    """A run's feature importance as written: ``importance.parquet`` (the raw names), else
    ``importance.csv`` (runs from before the Parquet copy, whose CSV was not neutralised);
    None when the folder holds neither."""
    import pandas as pd

    folder = Path(folder)
    if (folder / IMPORTANCE_FILES[0]).is_file():
        return pd.read_parquet(folder / IMPORTANCE_FILES[0])
    if (folder / IMPORTANCE_FILES[1]).is_file():
        return pd.read_csv(folder / IMPORTANCE_FILES[1])
    return None
