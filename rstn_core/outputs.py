"""One output policy for every command, and per-case claims and completion records.

Policy (``docs/reliability.md``):

* an output that is, or would replace, an input is always refused (even with ``--overwrite``);
* an existing output is refused unless ``--overwrite`` (``rstn train`` also accepts ``--resume``);
* a case is finished only when its completion record exists: ``.<mask>.done.json`` beside the mask,
  written last, after every output of the case (mask, probability maps, label table);
* while a case is being written its claim ``.<mask>.lock`` exists and is ``flock``-ed, so two runs
  into the same folder share the cases; a claim left by a killed run marks its outputs as
  unfinished: the next run redoes the case without ``--overwrite``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from rstn_core.atomic import atomic_write_text, remove_stale_temps
from rstn_core.errors import DataError

try:  # POSIX advisory locks; without them (Windows) a claim is only the lock file
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

OVERWRITE_HINT = "pass --overwrite to replace it"


# ------------------------------------------------------------------------------ inputs vs outputs
def input_files(path: Path) -> list[Path]:
    """Every file an input consists of: the file itself, or every file under a folder."""
    path = Path(path)
    if path.is_dir():
        return [p for p in path.rglob("*") if p.is_file()]
    return [path]


def _identity(path: Path) -> tuple:
    try:
        st = path.stat()
        return ("inode", st.st_dev, st.st_ino)
    except OSError:
        return ("path", str(path.resolve()))


def check_not_inputs(outputs: Iterable[Path], inputs: Iterable[Path]) -> None:
    """Refuse (always, ``--overwrite`` or not) an output path that is one of the ``inputs`` files
    (same path, symlink or hard link)."""
    index: dict[tuple, Path] = {}
    for p in inputs:
        index.setdefault(_identity(Path(p)), Path(p))
        index.setdefault(("path", str(Path(p).resolve())), Path(p))
    for out in outputs:
        out = Path(out)
        hit = index.get(_identity(out)) or index.get(("path", str(out.resolve())))
        if hit is not None:
            raise DataError(f"output {out} would replace the input {hit}; refusing to destroy an input "
                            "(choose another output, --overwrite does not apply to inputs)")


def check_not_inside(outputs: Iterable[Path], folders: Iterable[Path]) -> None:
    """Refuse an output inside an input folder (a DICOM series folder would then hold the mask,
    and the next run would read the folder differently)."""
    for folder in folders:
        root = Path(folder).resolve()
        for out in outputs:
            if root in Path(out).resolve().parents:
                raise DataError(f"output {out} is inside the input folder {folder}; write it elsewhere "
                                "(inputs are never modified)")


def refuse_existing(paths: Iterable[Path], overwrite: bool, what: str = "output", hint: str = OVERWRITE_HINT) -> None:
    """The one overwrite rule: an existing output is refused unless ``overwrite``."""
    existing = [Path(p) for p in paths if Path(p).exists()]
    if existing and not overwrite:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise DataError(f"{what} {existing[0]} already exists{more}; {hint}")


# ------------------------------------------------------------------------------ completion records
def record_path(mask: Path) -> Path:
    return mask.with_name(f".{mask.name}.done.json")


def lock_path(mask: Path) -> Path:
    return mask.with_name(f".{mask.name}.lock")


def is_finished(mask: Path) -> bool:
    """The case writing ``mask`` finished: its record exists and names outputs that all exist."""
    try:
        record = json.loads(record_path(mask).read_text(encoding="utf-8"))
        names = list(record["outputs"])
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return all((mask.parent / name).is_file() for name in names)


def write_record(mask: Path, outputs: Sequence[Path], summary: dict | None = None) -> Path:
    """Write the completion record of ``mask``'s case: call only after every output is written."""
    names = [Path(p).name for p in outputs]
    text = json.dumps({"outputs": names, "summary": summary or {}}, indent=2, default=str) + "\n"
    return atomic_write_text(record_path(mask), text)


# ------------------------------------------------------------------------------ claims
class Claim:
    """An exclusive claim on the case that writes ``mask`` (``flock`` on ``.<mask>.lock``)."""

    def __init__(self, mask: Path):
        self.mask = Path(mask)
        self.path = lock_path(self.mask)
        self.stale = False  # the lock file was left by a run that died: its outputs are unfinished
        self._fd: int | None = None

    def acquire(self, wait: bool = False) -> bool:
        """Take the claim; ``False`` when another live run holds it (and ``wait`` is false)."""
        self.mask.parent.mkdir(parents=True, exist_ok=True)
        while True:
            existed = self.path.exists()
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
                except BlockingIOError:
                    os.close(fd)
                    return False
            try:  # the holder may have removed the file between our open and lock: retry on a fresh one
                if os.fstat(fd).st_ino != self.path.stat().st_ino:
                    os.close(fd)
                    continue
            except FileNotFoundError:
                os.close(fd)
                continue
            self._fd, self.stale = fd, existed
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            return True

    def holder(self) -> str:
        try:
            return self.path.read_text().strip() or "?"
        except OSError:
            return "?"

    def release(self) -> None:
        """Remove the lock file and drop the lock."""
        if self._fd is None:
            return
        self.path.unlink(missing_ok=True)
        os.close(self._fd)
        self._fd = None


def _snapshot(paths: Sequence[Path]) -> dict[Path, tuple | None]:
    out: dict[Path, tuple | None] = {}
    for p in paths:
        try:
            st = p.stat()
            out[p] = (st.st_ino, st.st_mtime_ns, st.st_size)
        except OSError:
            out[p] = None
    return out


def produce_case(mask: Path, candidates: Sequence[Path], produce: Callable[[], tuple[list[Path], dict]],
                 overwrite: bool, wait: bool = False) -> str | dict:
    """Claim ``mask``'s case, call ``produce() -> (written paths, summary)``, then write the record.

    ``candidates``: every path the case may write (mask first). Returns the summary, or
    ``"finished"`` (already finished, possibly by another run) or ``"busy"`` (another live run
    holds the claim). On failure the outputs this attempt wrote are removed and the error re-raised.
    Raises :class:`DataError` for an existing output without a completion record (not ours)
    unless ``overwrite``.
    """
    claim = Claim(mask)
    if not claim.acquire(wait):
        return "busy"
    try:
        if is_finished(mask) and not overwrite:
            return "finished"
        existing = [p for p in candidates if p.exists()]
        if existing and not claim.stale and not is_finished(mask):
            refuse_existing(existing, overwrite, hint="it was not written by a finished `rstn predict` run "
                                                      "(no completion record); " + OVERWRITE_HINT)
        if claim.stale:
            log.warning("%s: finishing a case left unfinished by an interrupted run", mask)
        record_path(mask).unlink(missing_ok=True)
        for p in candidates:
            for temp in remove_stale_temps(p):
                log.info("removed a temporary file left by an interrupted run: %s", temp)
        before = _snapshot(candidates)
        try:
            written, summary = produce()
        except BaseException:
            after = _snapshot(candidates)
            for p in candidates:
                if after[p] is not None and (after[p] != before[p] or claim.stale):
                    p.unlink(missing_ok=True)
            raise
        write_record(mask, written, summary)
        return summary
    finally:
        claim.release()


def case_state(mask: Path) -> str:
    """``finished`` (record present), ``unfinished`` (a claim file: in progress or left by a killed run),
    ``foreign`` (the mask exists without either: not written by a finished run) or ``absent``."""
    if is_finished(mask):
        return "finished"
    if lock_path(mask).exists():
        return "unfinished"
    return "foreign" if mask.exists() else "absent"
