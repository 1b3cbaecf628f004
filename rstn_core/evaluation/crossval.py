"""Cross-validated evaluation of RSTN, C2F and the oracle (SPEC §5): one bundle per fold and method.

Models are given as

* a folder holding ``fold0.rstn``, ``fold1.rstn``, ... (RSTN bundles; they also serve the oracle) and/or
  ``c2f_fold0.rstn`` ... or ``c2f/fold0.rstn`` ... (and likewise ``rstn_``/``rstn/``), with an optional
  ``split.json`` (``{"folds": [[case ids], ...]}``) naming each fold's test cases, or
* a JSON file ``{"rstn": [paths per fold], "c2f": [...], "split": "split.json" | [[ids], ...]}``
  (paths relative to the JSON file; ``"folds"`` is a synonym of ``"rstn"``).

Without a split the folds are ``kfold_split`` of the sorted case ids into as many folds as bundles.
Every case runs the full ``max_rounds`` (stop threshold 1.0) so the convergence curves of §4.4.2 are
complete; the reported final DSC is the one the stop rule (``stop_dsc``, default 0.99) would give.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from rstn_core.config import InferenceConfig
from rstn_core.errors import CheckpointError, DataError, RstnError
from rstn_core.inference.convergence import (
    CONVERGENCE_THRESHOLDS,
    StopReason,
    first_round_reaching,
    pad_curves,
    replay_stop_rule,
)
from rstn_core.types import TRAINED_METHODS, Case, CropReference, Method

log = logging.getLogger(__name__)

METHODS = tuple(Method)


@dataclass(frozen=True)
class CaseResult:
    """One case under one method. Curves are padded to ``max_rounds`` with the last value when the
    run ended early (identical masks or an empty mask).

    ``dsc_per_round[t]``: DSC vs truth of Z_t, t = 0..R. ``inter_round_dsc[t - 1]``: DSC(Z_{t-1}, Z_t).
    ``rounds``: the round the stop rule (``stop_dsc``) ends at; ``final_dsc`` its DSC; ``converged``:
    the stop rule fired before/at R by inter-round DSC. ``rounds_to``: threshold -> first round whose
    inter-round DSC reaches it (``None``: not within R).
    """

    method: Method
    fold: int
    case_id: str
    coarse_dsc: float
    dsc_per_round: list[float]
    inter_round_dsc: list[float]
    final_dsc: float
    rounds: int
    converged: bool
    stopped: StopReason
    rounds_to: dict[str, int | None]
    seconds: float

    def __post_init__(self) -> None:  # read back from results.json: the words become members here
        object.__setattr__(self, "method", Method.parse(self.method))
        object.__setattr__(self, "stopped", StopReason(self.stopped))

    def to_dict(self) -> dict:
        return asdict(self)


def evaluate_case(engine, case: Case, method: Method | str, fold: int, stop_dsc: float = 0.99) -> CaseResult:
    """Run ``engine`` for its full ``max_rounds`` on a labelled case and record the paper's numbers.

    The run is recorded at stop threshold 1.0 (complete curves); the round it ends at, its DSC and the
    reason are the engine's own stop rule at ``stop_dsc`` replayed over the recorded rounds
    (:func:`~rstn_core.inference.convergence.replay_stop_rule`), so ``engine.run`` would end there too.
    """
    if case.label is None:
        raise DataError(f"case {case.case_id!r} has no label; evaluation needs the ground truth")
    method = Method.parse(method)
    max_rounds = engine.config.max_rounds
    dscs: list[float] = []
    inter: list[float] = []
    voxels: list[int] = []
    seconds = 0.0
    last = None
    recording = engine.with_config(stop_dsc=1.0)
    for state in recording.iterate(case):
        dscs.append(float(state.dsc_vs_truth))
        voxels.append(state.voxels)
        if state.inter_round_dsc is not None:
            inter.append(float(state.inter_round_dsc))
        seconds += state.seconds
        last = state
    from_truth = engine.config.crops_from is CropReference.TRUTH and bool(case.label.any())
    rounds, stopped = replay_stop_rule(voxels, inter, stop_dsc, max_rounds, crops_from_truth=from_truth)
    final_dsc = dscs[rounds]
    dscs, inter = pad_curves(dscs, inter, last.stopped, max_rounds)
    return CaseResult(
        method=method, fold=fold, case_id=case.case_id, coarse_dsc=dscs[0], dsc_per_round=dscs, inter_round_dsc=inter,
        final_dsc=final_dsc, rounds=rounds, converged=stopped == StopReason.CONVERGED, stopped=stopped,
        rounds_to={str(t): first_round_reaching(inter, t) for t in CONVERGENCE_THRESHOLDS}, seconds=seconds,
    )


def method_config(config: InferenceConfig, method: Method | str) -> InferenceConfig:
    """``config`` for ``method``: the oracle crops from the ground truth, the others from their prediction;
    the view fusion of the method's release (``METHOD_FUSION``) when ``config`` keeps the defaults (mean,
    mean): C2F votes at round 0 and thresholds the mean of the views after."""
    from rstn_core.inference.fusion import METHOD_FUSION, method_fusion

    method = Method.parse(method)
    config = config.replace(crops_from=method.crops_from)
    if (config.fusion, config.fine_fusion) != METHOD_FUSION[Method.RSTN]:
        return config  # an explicit choice (e.g. an ablation) applies to every method
    fusion, fine_fusion = method_fusion(method)
    return config.replace(fusion=fusion, fine_fusion=fine_fusion)


# ------------------------------------------------------------------------------ models and folds
def _fold_index(path: Path) -> int | None:
    match = re.fullmatch(r"fold(\d+)\.rstn", path.name)
    return int(match.group(1)) if match else None


def _bundle_method(word: str) -> Method | None:
    """The trained method a folder or file-name prefix names (``rstn``, ``c2f``, any case), else ``None``."""
    return Method.find(word, TRAINED_METHODS)


def find_fold_bundles(models: str | Path) -> tuple[dict[Method, list[Path]], list[list[str]] | None]:
    """-> ({bundle method: [bundle path per fold]}, split or None) from a folder or JSON (module doc)."""
    models = Path(models)
    if not models.exists():
        raise CheckpointError(f"models {models} do not exist (a folder of fold bundles or a JSON mapping)")
    if models.is_file():
        try:
            spec = json.loads(models.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"models {models}: not a readable JSON mapping: {exc}") from None
        if not isinstance(spec, dict):
            raise CheckpointError(f"models {models}: expected a JSON object, got {type(spec).__name__}")
        found = {}
        for key, method in (("rstn", Method.RSTN), ("folds", Method.RSTN), ("c2f", Method.C2F)):
            if key in spec:
                found[method] = [models.parent / p for p in spec[key]]
        split = spec.get("split")
        if isinstance(split, str):
            from rstn_core.data.folds import load_split

            split = load_split(models.parent / split)
        return found, split
    found: dict[Method, dict[int, Path]] = {}
    for path in sorted(models.rglob("*.rstn")):
        rel = path.relative_to(models)
        method, name = Method.RSTN, path.name
        prefix = _bundle_method(name.split("_", 1)[0]) if "_" in name else None
        if len(rel.parts) == 2 and _bundle_method(rel.parts[0]) is not None:
            method = _bundle_method(rel.parts[0])
        elif len(rel.parts) == 1 and prefix is not None:
            method, name = prefix, name.split("_", 1)[1]
        elif len(rel.parts) != 1:
            continue
        index = _fold_index(Path(name))
        if index is not None:
            found.setdefault(method, {})[index] = path
    result = {}
    for method, by_fold in found.items():
        if sorted(by_fold) != list(range(len(by_fold))):
            raise CheckpointError(f"models {models}: {method} folds {sorted(by_fold)} are not 0..{len(by_fold) - 1}")
        result[method] = [by_fold[i] for i in range(len(by_fold))]
    split = None
    if (models / "split.json").exists():
        from rstn_core.data.folds import load_split

        split = load_split(models / "split.json")
    return result, split


def cross_validate(
    data: str | Path,
    models: str | Path,
    methods: Sequence[Method | str] = METHODS,
    config: InferenceConfig | None = None,
    device: str = "cpu",
    on_case: Callable[[CaseResult], None] | None = None,
) -> list[CaseResult]:
    """Evaluate every case of the dataset at ``data`` with its fold's bundle, for every method."""
    from rstn_core.data.folds import kfold_split
    from rstn_core.data.layouts import discover_dataset
    from rstn_core.inference.engine import RSTNEngine
    from rstn_core.io import load_case
    from rstn_core.models.bundle import load_bundle

    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        known = [m.value for m in METHODS]
        raise RstnError(f"unknown method(s) {unknown or list(methods)}; expected some of {known}")
    methods = [Method.parse(m) for m in methods]
    config = config or InferenceConfig()
    bundles, split = find_fold_bundles(models)
    needed = sorted({m.bundle_method for m in methods})
    missing = [b.value for b in needed if b not in bundles]
    if missing:
        found = sorted(b.value for b in bundles) or "none"
        raise CheckpointError(f"models {models}: no {missing} fold bundles; found {found}")
    counts = {b.value: len(bundles[b]) for b in needed}
    if len(set(counts.values())) != 1:
        raise CheckpointError(f"models {models}: different numbers of folds per method {counts}")
    n_folds = next(iter(counts.values()))
    dataset = discover_dataset(data)
    if split is None:
        split = kfold_split(dataset.case_ids, n_folds)
    if len(split) != n_folds:
        raise CheckpointError(f"split has {len(split)} folds but there are {n_folds} bundles per method")
    results: list[CaseResult] = []
    for fold, test_ids in enumerate(split):
        engines = {}
        for method in methods:
            path = bundles[method.bundle_method][fold]
            bundle = load_bundle(path, device)
            if bundle.method != method.bundle_method:
                raise CheckpointError(f"{path}: a {bundle.method} bundle where {method} needs {method.bundle_method}")
            engines[method] = RSTNEngine(bundle.models, bundle.data_config, method_config(config, method),
                                         device, spacing=bundle.data_config.spacing)
        targets = next(iter(engines.values())).data_config.target_labels
        for case_id in test_ids:
            ref = dataset.get(case_id)
            case = load_case(ref.image, ref.label, targets, case_id=case_id)
            for method, engine in engines.items():
                result = evaluate_case(engine, case, method, fold, config.stop_dsc)
                log.info("fold %d %s %s: coarse %.4f final %.4f (%d rounds, %s)", fold, method, case_id,
                         result.coarse_dsc, result.final_dsc, result.rounds, result.stopped)
                results.append(result)
                if on_case is not None:
                    on_case(result)
    return results
