"""Train/test leakage: a fold's bundle must not have been trained on that fold's test cases.

Bundles written by ``rstn train`` record ``meta["training"]`` = ``{"dataset", "train_cases", ...}``;
:func:`find_leaks` compares those cases with each fold's test cases (same dataset name only).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Leak:
    fold: int
    bundle: Path
    cases: tuple[str, ...]


def _training_meta(path: Path) -> dict | None:
    from rstn_core.models.bundle import safe_torch_load

    meta = safe_torch_load(path, "model bundle").get("meta") or {}
    training = meta.get("training") if isinstance(meta, dict) else None
    return training if isinstance(training, dict) else None


def fold_plan(data: str | Path, models: str | Path) -> tuple[dict[str, list[Path]], list[list[str]], str]:
    """(bundle paths per method, test case ids per fold, dataset name), as ``cross_validate`` sees them."""
    from rstn_core.data.folds import kfold_split
    from rstn_core.data.layouts import discover_dataset
    from rstn_core.evaluation.crossval import find_fold_bundles

    bundles, split = find_fold_bundles(models)
    dataset = discover_dataset(data)
    n_folds = max((len(v) for v in bundles.values()), default=0)
    if split is None and n_folds:
        split = kfold_split(dataset.case_ids, n_folds)
    return bundles, [list(f) for f in (split or [])], dataset.name


def find_leaks(bundles: dict[str, list[Path]], split: list[list[str]], dataset_name: str) -> list[Leak]:
    """Every (fold, bundle) whose recorded training cases include a test case of that fold."""
    leaks = []
    for paths in bundles.values():
        for fold, path in enumerate(paths):
            if fold >= len(split):
                continue
            training = _training_meta(Path(path))
            if training is None or "train_cases" not in training:
                log.warning("%s records no training cases: train/test leakage cannot be checked", path)
                continue
            if training.get("dataset") not in (None, dataset_name):
                continue
            leaked = sorted(set(map(str, training["train_cases"] or [])) & set(split[fold]))
            if leaked:
                leaks.append(Leak(fold, Path(path), tuple(leaked)))
    return leaks


def describe(leaks: list[Leak]) -> str:
    return "; ".join(f"fold {x.fold}: {x.bundle} was trained on test case(s) {list(x.cases)[:8]}"
                     + (f" (+{len(x.cases) - 8} more)" if len(x.cases) > 8 else "") for x in leaks)


def without_leaks(bundles: dict[str, list[Path]], split: list[list[str]], leaks: list[Leak], folder: Path) -> Path:
    """A models JSON mapping (written into ``folder``) whose split leaves out the leaked cases."""
    drop: dict[int, set[str]] = {}
    for leak in leaks:
        drop.setdefault(leak.fold, set()).update(leak.cases)
    kept = [[c for c in cases if c not in drop.get(fold, set())] for fold, cases in enumerate(split)]
    spec = {method: [str(Path(p).resolve()) for p in paths] for method, paths in bundles.items()}
    spec["split"] = kept
    path = Path(folder) / "models.json"
    path.write_text(json.dumps(spec, indent=2))
    return path
