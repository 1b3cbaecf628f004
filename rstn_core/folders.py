"""Output folders: is a folder writable, a training run's folder, and folders built aside then swapped in.

The policy is :mod:`rstn_core.outputs`' (refuse unless ``--overwrite``; ``rstn train`` also ``--resume``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from rstn_core.atomic import remove_stale_temps
from rstn_core.errors import DataError

log = logging.getLogger(__name__)

# ------------------------------------------------------------------------------ run and result folders
RUN_FILES = ("model.rstn", "*/last.ckpt", "*/metrics.jsonl", "*/curves.png")


def check_writable(folder: Path) -> None:
    """Prove a file can be written in ``folder`` (or in its nearest existing parent, which then
    holds it) before long work starts; creates nothing that stays."""
    import tempfile

    probe = Path(folder)
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    try:
        if not probe.is_dir():
            raise NotADirectoryError(20, "not a folder", str(probe))
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as exc:
        from rstn_core.cli import describe_os_error

        raise DataError(f"output folder {folder}: {describe_os_error(exc)}") from None


def prepare_run_folder(out: Path, overwrite: bool, resume: bool) -> None:
    """``rstn train --out``: refuse a folder holding a run unless ``resume`` (continue it) or
    ``overwrite`` (its run files are removed now, so no old metrics or checkpoint survive)."""
    from rstn_core.errors import RstnError

    out = Path(out)
    if overwrite and resume:
        raise RstnError("--overwrite and --resume contradict each other: --resume continues the run in "
                        f"{out}, --overwrite replaces it")
    existing = sorted({p for pattern in RUN_FILES for p in out.glob(pattern) if p.is_file()})
    for path in [out / "model.rstn", *out.glob("*/last.ckpt")]:
        for temp in remove_stale_temps(path):
            log.info("removed a temporary file left by an interrupted run: %s", temp)
    if existing and not (overwrite or resume):
        names = ", ".join(str(p.relative_to(out)) for p in existing[:4]) + (" ..." if len(existing) > 4 else "")
        raise DataError(f"run folder {out} already holds a training run ({names}); pass --resume to continue it "
                        "or --overwrite to replace it")
    if overwrite:
        for path in existing:
            path.unlink(missing_ok=True)  # every torchrun rank runs this
        if existing:
            log.warning("--overwrite: removed %d file(s) of the earlier run in %s", len(existing), out)
    check_writable(out)


# ------------------------------------------------------------------------------ staged folders
def replace_folder_contents(staged: Path, out: Path, also_remove: Sequence[str] = ()) -> None:
    """Move every top-level entry of ``staged`` (a folder inside ``out``) into ``out``, replacing
    same-named entries whole (an old ``images/`` folder goes entirely: no stale DICOM slices survive);
    other entries of ``out`` stay, except the names in ``also_remove``. ``staged`` is removed."""
    import shutil
    import tempfile

    trash = Path(tempfile.mkdtemp(prefix=".rstn-old-", dir=out))
    try:
        for entry in sorted(staged.iterdir()):
            target = out / entry.name
            if target.exists() or target.is_symlink():
                os.replace(target, trash / entry.name)
            os.replace(entry, target)
        for name in also_remove:
            if (out / name).exists() and not (trash / name).exists():
                os.replace(out / name, trash / name)
    finally:
        shutil.rmtree(trash, ignore_errors=True)
        shutil.rmtree(staged, ignore_errors=True)


def staged_folder(out: Path, also_remove: Sequence[str] = ()):
    """Context manager: a fresh hidden folder inside ``out`` to build into, moved into ``out`` on
    success (:func:`replace_folder_contents`); on failure it is removed, and so is ``out`` when
    this call created it."""
    import contextlib
    import shutil
    import tempfile

    @contextlib.contextmanager
    def _stage():
        created = next((p for p in [out, *out.parents][::-1] if not p.exists()), None)
        out.mkdir(parents=True, exist_ok=True)
        staged = Path(tempfile.mkdtemp(prefix=".rstn-new-", dir=out))
        try:
            yield staged
        except BaseException:
            shutil.rmtree(created if created is not None else staged, ignore_errors=True)
            raise
        replace_folder_contents(staged, out, [n for n in also_remove if not (staged / n).exists()])

    return _stage()
