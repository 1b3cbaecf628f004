"""Cross-validation folds by sorted case id (SPEC §1.4).

``kfold_split`` cuts the sorted ids into ``n_folds`` contiguous blocks whose sizes differ by at
most one, smaller folds first (82 cases, 4 folds -> 20/20/21/21, as the released code).
A split file (JSON ``{"folds": [[ids...], ...]}``) may override it.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from rstn_core.atomic import atomic_write_text
from rstn_core.errors import DataError

logger = logging.getLogger(__name__)


def _check_unique(ids: Sequence[str], source: str) -> None:
    dup = sorted(k for k, n in Counter(ids).items() if n > 1)
    if dup:
        raise DataError(f"{source}: duplicated case ids {dup}")


def kfold_split(case_ids: Iterable[str], n_folds: int = 4) -> list[list[str]]:
    """Test ids of each fold: sorted ids in contiguous blocks, sizes differ by at most one, smaller first."""
    ids = sorted(str(c) for c in case_ids)
    _check_unique(ids, "kfold_split")
    if n_folds < 1:
        raise DataError(f"kfold_split: n_folds must be at least 1, got {n_folds}")
    if len(ids) < n_folds:
        raise DataError(f"kfold_split: {len(ids)} case(s) cannot make {n_folds} folds")
    base, extra = divmod(len(ids), n_folds)
    sizes = [base] * (n_folds - extra) + [base + 1] * extra
    folds, start = [], 0
    for size in sizes:
        folds.append(ids[start : start + size])
        start += size
    return folds


def fold_cases(case_ids: Iterable[str], folds: Sequence[Sequence[str]], fold: int) -> tuple[list[str], list[str]]:
    """(train ids, test ids) of ``fold``: test = ``folds[fold]``, train = every other known id (sorted)."""
    if not 0 <= fold < len(folds):
        raise DataError(f"fold {fold} out of range: the split has {len(folds)} folds")
    test = sorted(folds[fold])
    test_set = set(test)
    train = sorted(c for c in case_ids if c not in test_set)
    return train, test


def validate_split(folds: Sequence[Sequence[str]], case_ids: Iterable[str] | None = None,
                   source: str = "split") -> list[list[str]]:
    """Check a split: no duplicates across folds, no unknown ids (when ``case_ids`` is given)."""
    if not folds or not all(isinstance(f, list | tuple) for f in folds):
        raise DataError(f"{source}: 'folds' must be a non-empty list of lists of case ids")
    flat = [str(c) for f in folds for c in f]
    _check_unique(flat, source)
    if case_ids is not None:
        known = set(case_ids)
        unknown = sorted(set(flat) - known)
        if unknown:
            raise DataError(f"{source}: unknown case ids {unknown[:20]}")
        unused = sorted(known - set(flat))
        if unused:
            logger.warning("%s: %d case(s) are in no test fold: %s", source, len(unused), unused[:10])
    return [[str(c) for c in f] for f in folds]


def load_split(path: str | Path, case_ids: Iterable[str] | None = None) -> list[list[str]]:
    """Folds from a JSON file ``{"folds": [[ids...], ...]}``, validated (see :func:`validate_split`)."""
    path = Path(path)
    try:
        content = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"split file {path}: cannot read it ({type(exc).__name__}: {exc})") from exc
    if not isinstance(content, dict) or "folds" not in content:
        raise DataError(f"split file {path}: expected an object with a 'folds' list")
    return validate_split(content["folds"], case_ids, source=f"split file {path}")


def save_split(folds: Sequence[Sequence[str]], path: str | Path) -> Path:
    """Write ``{"folds": [...]}`` atomically."""
    path = Path(path)
    folds = validate_split(folds, source=f"split for {path}")
    return atomic_write_text(path, json.dumps({"folds": folds}, indent=1))
