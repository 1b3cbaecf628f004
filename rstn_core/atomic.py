"""Atomic file writes: write a temporary file beside the target, fsync, then ``os.replace``.

A reader never sees a torn file and an interrupted write leaves the previous file intact. The
result gets the usual permissions for a new file (``0o666`` minus the umask), not ``mkstemp``'s 0600.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, write: Callable[[str], None], suffix: str = ".tmp") -> Path:
    """Call ``write(tmp_path)`` to fill a temporary file beside ``path``, then move it onto ``path``.

    ``suffix``: the temporary file's suffix (libraries such as nibabel choose the format from it).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        for extra in path.parent.glob(Path(tmp).name + ".*"):  # writers that add their own suffix
            extra.unlink(missing_ok=True)
        raise
    return path


def stale_temps(path: str | Path) -> list[Path]:
    """Temporary files of :func:`atomic_write` for ``path`` (``.<name>.XXXXXXXX<suffix>``) left beside it
    by a process that was killed while writing."""
    path = Path(path)
    pattern = re.compile(r"^\." + re.escape(path.name) + r"\.[a-z0-9_]{8}(\.[A-Za-z0-9.]+)?$")
    try:
        return sorted(p for p in path.parent.iterdir() if pattern.match(p.name) and p.is_file())
    except OSError:
        return []


def remove_stale_temps(path: str | Path) -> list[Path]:
    """Remove :func:`stale_temps` of ``path``; call it only while no other process writes ``path``."""
    removed = []
    for temp in stale_temps(path):
        temp.unlink(missing_ok=True)
        removed.append(temp)
    return removed


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
