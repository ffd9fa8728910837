"""Atomic publication of an output folder: all files or none.

Files are written into a staging folder beside the destination; publishing renames the old
folder aside, renames the staging folder into place and removes the old one. A process killed
between the two renames leaves the previous publication whole under ``<out>.previous``, and
:func:`recover` (called before every publication and read) puts it back.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


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
    out.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{out.name}.staging-", dir=out.parent))


def publish(staging: Path, out: Path) -> Path:
    """Move the staging folder into place as ``out``, replacing the previous publication."""
    staging, out = Path(staging), Path(out)
    recover(out)
    prev = _previous(out)
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

    A killed earlier publication is recovered first. The block writes into the folder and
    calls :func:`publish` when everything is in it; on any error nothing of it is left.
    """
    recover(out)
    staging = staging_dir(out)
    try:
        yield staging
    except BaseException:
        discard(staging)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    """Write a single file atomically (temp file then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


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
