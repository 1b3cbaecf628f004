"""The one place where the app meets the library: model choices, shared engines, the demo case, loading.

* Engines are built once per model choice and shared by every browser session (module-level cache
  guarded by a lock); an engine holds only immutable things, so sessions can step it concurrently.
* The demo case is built once and shared (arrays are never written to by the app).
* Everything the user can get wrong raises :class:`rstn_core.errors.RstnError` with a clear message.

No Panel here and no torch: only ``rstn_core``'s public functions and numpy arrays.
"""

from __future__ import annotations

import gzip
import logging
import os
import tempfile
import threading
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rstn_core.config import DataConfig
from rstn_core.errors import CheckpointError, DataError, RstnError
from rstn_core.types import Case, Volume

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_DIR = REPO_ROOT / "rstn_core" / "demo"
PANCREAS_LABEL = 7  # TotalSegmentator id, used by the phantom and the real example
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


# --- model choices and shared engines -----------------------------------------------------------


@dataclass(frozen=True)
class ModelChoice:
    """One entry of the model menu. ``loader()`` -> engine; ``method``: 'rstn' or 'c2f'."""

    key: str
    label: str
    method: str
    trained: bool
    loader: Callable[[], Any] = field(compare=False, repr=False)
    source: str = ""


@dataclass(frozen=True)
class EngineHandle:
    """A shared engine and what the page says about it (``trained_on``: from the bundle's meta)."""

    choice: ModelChoice
    engine: Any
    description: str
    trained_on: str | None = None


def _configured(engine: Any) -> Any:
    """Apply $RSTN_MAX_ROUNDS (a lower round cap for slow machines) through the engine's public API."""
    cap = os.environ.get("RSTN_MAX_ROUNDS")
    if cap and hasattr(engine, "with_config"):
        return engine.with_config(max_rounds=int(cap))
    return engine


def bundle_trained_on(bundle: Any, demo: bool = False) -> str | None:
    """What the bundle's meta (for the built-in demo bundles also demo.json) says about its training data."""
    from rstn_core.inference.summary import trained_on

    meta = dict(getattr(bundle, "meta", {}) or {})
    found = trained_on(meta)
    if found is None and demo:
        found = trained_on(_demo_record().get(str(bundle.method).lower()))
    return found


def _demo_record() -> dict:
    import json

    path = DEMO_DIR / "demo.json"
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        return {}


def bundle_details(bundle: Any, demo: bool = False) -> str:
    """Plain words from a loaded bundle's own fields: method, what it learned from, size, organ."""
    meta = dict(getattr(bundle, "meta", {}) or {})
    method = str(bundle.method).upper()
    full = {"RSTN": "RSTN (recurrent saliency transformation)", "C2F": "C2F (coarse-to-fine baseline)"}
    parts = [full.get(method, method)]
    if meta.get("trained", True) is False:
        parts.append("UNTRAINED (random weights): its masks mean nothing")
    else:
        parts.append(f"trained on {bundle_trained_on(bundle, demo) or 'unrecorded data'}")
    width = float(bundle.model_config.width)
    size = "the paper's full-size network" if width >= 1 else f"a small network ({width:g} of the paper's width)"
    parts.append(f"{size}, preset {bundle.model_config.preset}")
    parts.append("looks along " + "/".join(v.value for v in bundle.models))
    parts.append(f"finds label {'/'.join(str(t) for t in bundle.data_config.target_labels)}")
    return " · ".join(parts)


def _bundle_loader(path: Path, device: str) -> Callable[[], Any]:
    def load() -> tuple[Any, str, str | None]:
        from rstn_core.inference.engine import RSTNEngine
        from rstn_core.models.bundle import load_bundle

        bundle = load_bundle(path, device)
        engine = RSTNEngine.from_bundle(bundle, None, device)  # C2F fuses by vote, RSTN by mean
        demo = path.parent == DEMO_DIR
        return _configured(engine), bundle_details(bundle, demo), bundle_trained_on(bundle, demo)

    return load


def _bundle_method(path: Path) -> tuple[str, bool]:
    """(method, trained) guessed from a bundle's file name; the loaded bundle's own fields are shown later."""
    method = "c2f" if "c2f" in path.stem.lower() else "rstn"
    return method, True


def _untrained_loader(method: str, device: str) -> Callable[[], Any]:
    def load() -> tuple[Any, str, str | None]:
        from rstn_core.config import ModelConfig
        from rstn_core.inference.engine import RSTNEngine
        from rstn_core.models.bundle import ModelBundle
        from rstn_core.models.rstn import build_model
        from rstn_core.types import ALL_VIEWS

        config = ModelConfig.from_preset("tiny")
        models = {view: build_model(method, config).eval() for view in ALL_VIEWS}
        bundle = ModelBundle(method, config, DataConfig(target_labels=(PANCREAS_LABEL,)), models,
                             {"trained": False, "note": "no demo bundle found"})
        engine = _configured(RSTNEngine.from_bundle(bundle, None, device))
        return engine, bundle_details(bundle), bundle_trained_on(bundle)

    return load


def model_choices(root: Path | None = None, device: str = "cpu") -> list[ModelChoice]:
    """The model menu, best first: the built-in demo bundles, bundles under the data folder, then
    untrained tiny models when no trained RSTN bundle exists."""
    choices: list[ModelChoice] = []
    bundles = sorted(DEMO_DIR.glob("*.rstn")) if DEMO_DIR.is_dir() else []
    root = Path(root) if root is not None else data_root()
    if root.is_dir():
        bundles += sorted(p for p in root.glob("**/*.rstn") if len(p.relative_to(root).parts) <= 3)
    for path in bundles:
        method, trained = _bundle_method(path)
        where = "built-in demo" if path.parent == DEMO_DIR else str(path.parent)
        choices.append(ModelChoice(f"bundle:{path}:{device}", f"{path.stem} ({where})", method, trained,
                                   _bundle_loader(path, device), str(path)))
    if not any(c.method == "rstn" and c.trained for c in choices):
        for method in ("rstn", "c2f"):
            choices.append(ModelChoice(f"untrained-{method}:{device}", f"{method.upper()} tiny, untrained", method,
                                       False, _untrained_loader(method, device), "random weights"))
    return choices


def choices_from_engines(engines: Mapping[str, Any]) -> list[ModelChoice]:
    """Model choices for engines given by the caller: ``{"rstn": engine_or_factory, "c2f": ...}``.

    A value that has ``start`` is an engine; otherwise it is called with no argument to build one.
    The keys are methods ("rstn", "c2f"; any other key counts as RSTN)."""
    choices = []
    for method, value in engines.items():
        loader = (lambda v=value: v) if hasattr(value, "start") else value
        label = f"{method.upper()} ({'factory' if loader is value else type(value).__name__})"
        choices.append(ModelChoice(f"given:{method}:{id(value)}", label, "c2f" if method == "c2f" else "rstn",
                                   True, loader, "given to App"))
    return choices


_ENGINE_LOCK = threading.Lock()
_ENGINES: dict[str, EngineHandle] = {}


def get_engine(choice: ModelChoice) -> EngineHandle:
    """The shared engine of ``choice``, built on first use (thread-safe; built once per process)."""
    with _ENGINE_LOCK:
        handle = _ENGINES.get(choice.key)
        if handle is None:
            try:
                loaded = choice.loader()
            except RstnError:
                raise
            except (OSError, KeyError, ValueError, RuntimeError) as exc:
                raise CheckpointError(f"model {choice.label}: cannot be loaded: {exc}") from exc
            engine, details, trained = loaded if isinstance(loaded, tuple) else (loaded, "", None)
            handle = EngineHandle(choice, engine, f"{choice.label} · {details}" if details
                                  else describe_engine(choice, engine), trained)
            _ENGINES[choice.key] = handle
        return handle


def describe_engine(choice: ModelChoice, engine: Any) -> str:
    """'name — method, trained/untrained, views, preset' for the page header."""
    trained = "trained" if choice.trained else "UNTRAINED"
    parts = [choice.label, choice.method.upper(), trained]
    data_config = getattr(engine, "data_config", None)
    if data_config is not None:
        parts.append(f"target label(s) {list(data_config.target_labels)}")
    return " · ".join(parts)


# --- cases --------------------------------------------------------------------------------------


def _phantom_case(seed: int) -> Case:
    from rstn_core.data.phantom import DEMO_ANATOMY as anatomy  # what the built-in bundles were trained on
    from rstn_core.data.phantom import generate_phantom
    from rstn_core.io import canonicalise

    phantom = generate_phantom(seed, anatomy=anatomy)
    data, affine, record = canonicalise(np.asarray(phantom.hu, dtype=np.float32), np.asarray(phantom.affine))
    labels, _, _ = canonicalise(np.asarray(phantom.labels), np.asarray(phantom.affine))
    volume = Volume(np.ascontiguousarray(data, dtype=np.float32), affine, record, f"phantom seed {seed}")
    labels = np.ascontiguousarray(labels)
    return Case(f"phantom-{seed}", volume, labels == PANCREAS_LABEL, labels,
                {"source": f"rstn_core.data.phantom.generate_phantom({seed}, anatomy={anatomy})",
                 "target_labels": (PANCREAS_LABEL,)})


_DEMO_LOCK = threading.Lock()
_DEMO: dict[str, Case] = {}


def demo_case() -> Case:
    """The built-in demo case (the synthetic phantom, pancreas = 7), built once and shared."""
    with _DEMO_LOCK:
        if "case" not in _DEMO:
            _DEMO["case"] = _phantom_case(DEMO_SEED)
        return _DEMO["case"]


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
    return _checked(load_case(image_path, label_path, tuple(target_labels)))


def _suffix(name: str) -> str:
    lower = name.lower()
    if lower.endswith(".nii.gz"):
        return ".nii.gz"
    if lower.endswith(".nii"):
        return ".nii"
    raise DataError(f"{name}: uploads must be NIfTI files (.nii or .nii.gz); use the server folder for DICOM")


def _write_upload(folder: Path, stem: str, name: str, data: bytes) -> Path:
    suffix = _suffix(name)
    if len(data) > MAX_UPLOAD_MB * 2**20:
        raise DataError(f"{name}: {len(data) / 2**20:.0f} MB is over the upload limit of {MAX_UPLOAD_MB} MB")
    if suffix == ".nii.gz":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{name}: not a valid gzip file (truncated upload?): {exc}") from None
        suffix = ".nii"
    path = folder / f"{stem}{suffix}"
    path.write_bytes(data)
    return path


def load_case_from_upload(image_name: str, image_bytes: bytes, label_name: str | None,
                          label_bytes: bytes | None, target_labels: Sequence[int]) -> Case:
    """A case from uploaded NIfTI bytes (.nii.gz is gunzipped first); temporary files are removed."""
    from rstn_core.io import load_case

    with tempfile.TemporaryDirectory(prefix="rstn-upload-") as tmp:
        folder = Path(tmp)
        image_path = _write_upload(folder, "image", image_name, image_bytes)
        label_path = _write_upload(folder, "label", label_name, label_bytes) if label_bytes else None
        try:
            case = load_case(image_path, label_path, tuple(target_labels), case_id=_case_id(image_name))
        except DataError as exc:
            raise DataError(str(exc).replace(str(image_path), image_name).replace(
                str(label_path), label_name or "label")) from None
        except (OSError, ValueError, EOFError) as exc:
            raise DataError(f"{image_name}: cannot be read as a NIfTI image ({exc})") from None
    return _checked(case)


def _case_id(name: str) -> str:
    for suffix in (".nii.gz", ".nii"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _checked(case: Case) -> Case:
    """Refuse volumes that cannot be a CT (too small, no HU range)."""
    shape = case.image.shape
    if min(shape) < 3:
        raise DataError(f"{case.case_id}: volume of shape {shape} is too small to be a CT (needs >= 3 slices per axis)")
    data = case.image.data
    lo, hi = float(data.min()), float(data.max())
    if hi - lo < 50 or lo > 0:
        raise DataError(f"{case.case_id}: intensities {lo:.0f}..{hi:.0f} do not look like CT Hounsfield units "
                        f"(expected air near -1000 and soft tissue near 0..100)")
    return case


def check_case_for_engine(case: Case, engine: Any) -> None:
    """Refuse a case the engine cannot run (fewer than 3 slices along a view the engine needs)."""
    if min(case.image.shape) < 3:
        raise DataError(f"{case.case_id}: shape {case.image.shape} is too small for 3-slice windows")
