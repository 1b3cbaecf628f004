"""The model menu and the engines shared by every browser session (no Panel, no torch import at module load).

* Engines are built once per model choice and shared by every session (module-level cache guarded by a
  lock); an engine holds only immutable things, so sessions can step it concurrently.
* A bundle is described in plain words from its own fields (method, training data, size, organ).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rstn_core.config import DataConfig
from rstn_core.errors import CheckpointError, RstnError

from .cases import REPO_ROOT, data_root

DEMO_DIR = REPO_ROOT / "rstn_core" / "demo"


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
        from rstn_core.data.phantom import PANCREAS_ID  # the demo phantom's organ: what the fallback looks for
        from rstn_core.inference.engine import RSTNEngine
        from rstn_core.models.bundle import ModelBundle
        from rstn_core.models.rstn import build_model
        from rstn_core.types import ALL_VIEWS

        config = ModelConfig.from_preset("tiny")
        models = {view: build_model(method, config).eval() for view in ALL_VIEWS}
        bundle = ModelBundle(method, config, DataConfig(target_labels=(PANCREAS_ID,)), models,
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
    if choice.trained and getattr(engine, "trained_on", None):
        trained = f"trained on {engine.trained_on}"
    parts = [choice.label, choice.method.upper(), trained]
    data_config = getattr(engine, "data_config", None)
    if data_config is not None:
        parts.append(f"target label(s) {list(data_config.target_labels)}")
    return " · ".join(parts)
