"""Cases for the app: the data folder the picker may browse, the shared demo case, server files and
uploads (no Panel, no torch). Everything a user can get wrong raises :class:`rstn_core.errors.DataError`
with a clear message. The checks are the library's: ``rstn_core.io`` (files, grids, labels), the
engine's ``check_case`` (a grid too small for its windows) and ``rstn_core.inference.diagnose.hu_problem``
(values that are not Hounsfield units; the session warns, see :meth:`app.state.SessionState.set_case`).
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rstn_core.errors import DataError
from rstn_core.types import Case, Volume

REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_SEED = 0
MAX_UPLOAD_MB = int(os.environ.get("RSTN_MAX_UPLOAD_MB", "300"))


# --- where data lives ---------------------------------------------------------------------------


def data_root() -> Path:
    """The server-side folder the file picker may browse: $RSTN_DATA_ROOT, else ../shared/data, else ./data."""
    env = os.environ.get("RSTN_DATA_ROOT")
    if env:
        return Path(env).expanduser().resolve()
    shared = REPO_ROOT.parent / "shared" / "data"
    if shared.is_dir():
        return shared.resolve()
    return (REPO_ROOT / "data").resolve()


def inside_root(path: str | Path, root: str | Path | None = None) -> Path:
    """Resolve ``path`` and refuse anything outside ``root`` (symlinks and ``..`` included)."""
    base = Path(root or data_root()).resolve()
    resolved = Path(path).expanduser().resolve()
    if not resolved.is_relative_to(base):  # a containment check: /x/datax is not inside /x/data
        raise DataError(f"{path} is outside the data folder {base}")
    return resolved


# --- the demo case ------------------------------------------------------------------------------


def _phantom_case(seed: int) -> Case:
    from rstn_core.data.phantom import DEMO_ANATOMY, PANCREAS_ID, generate_phantom
    from rstn_core.io import canonicalise

    phantom = generate_phantom(seed, anatomy=DEMO_ANATOMY)  # the anatomy the built-in bundles were trained on
    data, affine, record = canonicalise(np.asarray(phantom.hu, dtype=np.float32), np.asarray(phantom.affine))
    labels, _, _ = canonicalise(np.asarray(phantom.labels), np.asarray(phantom.affine))
    volume = Volume(np.ascontiguousarray(data, dtype=np.float32), affine, record, f"phantom seed {seed}")
    labels = np.ascontiguousarray(labels)
    return Case(f"phantom-{seed}", volume, labels == PANCREAS_ID, labels,
                {"source": f"rstn_core.data.phantom.generate_phantom({seed}, anatomy={DEMO_ANATOMY})",
                 "target_labels": (PANCREAS_ID,)})


_DEMO_LOCK = threading.Lock()
_DEMO: dict[str, Case] = {}


def demo_case() -> Case:
    """The built-in demo case (the synthetic phantom and its pancreas), built once and shared."""
    with _DEMO_LOCK:
        if "case" not in _DEMO:
            _DEMO["case"] = _phantom_case(DEMO_SEED)
        return _DEMO["case"]


def cached_demo_case() -> Case | None:
    """The demo case when it was already built in this process, else None (nothing is built)."""
    return _DEMO.get("case")


# --- files and uploads --------------------------------------------------------------------------


def parse_labels(text: str) -> tuple[int, ...]:
    """'7' or '1, 2' -> (7,) / (1, 2); refuses anything else with a clear message."""
    try:
        labels = tuple(int(t) for t in str(text).replace(",", " ").split())
    except ValueError:
        raise DataError(f"organ id(s) must be integers separated by commas, got {text!r}") from None
    if not labels or any(t <= 0 for t in labels):
        raise DataError(f"organ id(s) must be positive integers, got {text!r}")
    return labels


def load_case_from_paths(image: str | Path, label: str | Path | None, target_labels: Sequence[int],
                         root: str | Path | None = None) -> Case:
    """A case from files/DICOM folders under the data folder (paths outside it are refused)."""
    from rstn_core.io import load_case

    image_path = inside_root(image, root)
    label_path = inside_root(label, root) if label else None
    return load_case(image_path, label_path, tuple(target_labels))


def _write_upload(folder: Path, stem: str, name: str, data: bytes) -> Path:
    """The uploaded bytes as ``folder/stem`` + the upload's own NIfTI suffix (nibabel reads .nii.gz itself)."""
    from rstn_core.io import is_nifti, nifti_stem

    if not is_nifti(name):
        raise DataError(f"{name}: uploads must be NIfTI files (.nii or .nii.gz); use the server folder for DICOM")
    if len(data) > MAX_UPLOAD_MB * 2**20:
        raise DataError(f"{name}: {len(data) / 2**20:.0f} MB is over the upload limit of {MAX_UPLOAD_MB} MB")
    path = folder / f"{stem}{name[len(nifti_stem(name)):].lower()}"
    path.write_bytes(data)
    return path


def load_case_from_upload(image_name: str, image_bytes: bytes, label_name: str | None,
                          label_bytes: bytes | None, target_labels: Sequence[int]) -> Case:
    """A case from uploaded NIfTI bytes; the temporary files are removed and never named in messages."""
    from rstn_core.io import load_case, nifti_stem

    with tempfile.TemporaryDirectory(prefix="rstn-upload-") as tmp:
        folder = Path(tmp)
        image_path = _write_upload(folder, "image", image_name, image_bytes)
        label_path = _write_upload(folder, "label", label_name, label_bytes) if label_bytes else None
        try:
            case = load_case(image_path, label_path, tuple(target_labels), case_id=nifti_stem(image_name))
        except DataError as exc:
            raise DataError(str(exc).replace(str(image_path), image_name).replace(
                str(label_path), label_name or "label")) from None
        except (OSError, ValueError, EOFError) as exc:
            raise DataError(f"{image_name}: cannot be read as a NIfTI image ({exc})") from None
    return case
