"""Per-round slices of evaluated cases, for the interactive part of ``notebooks/evaluate.ipynb``.

:func:`round_slices` re-runs each case's fold bundles (the same bundles and split as
:func:`rstn_core.evaluation.crossval.cross_validate`) and keeps, per method and round, the mask on
one slice only: the slice of the view where the ground truth is largest, cropped to the region
around the organ. Arrays are small (uint8 / bool), so a notebook can embed every (case, method,
round) frame in an offline HTML. :func:`overlay_rgb` draws one frame. No plotting library here.

Display frame: ``to_display(to_view(volume, view)[index])`` (radiological; see
:mod:`rstn_core.evaluation.plots`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from rstn_core.slicing import to_display, to_view
from rstn_core.types import TRAINED_METHODS, Method, View

log = logging.getLogger(__name__)

HU_WINDOW = (-135.0, 215.0)  # abdomen W350 L40, as in the plots
PRED_RGB = np.array([227, 26, 28], np.float32)
TRUTH_RGB = np.array([255, 215, 0], np.uint8)


@dataclass
class CaseSlices:
    """One case on one slice: ``hu`` (h, w) uint8 (abdomen window), ``truth`` (h, w) bool or None,
    ``masks[method][t]`` (h, w) bool of round t, ``dsc[method][t]`` (vs truth, None without truth).
    ``pixel_mm``: (row, column) pixel size of the display frame in mm."""

    case_id: str
    fold: int
    view: View
    index: int
    pixel_mm: tuple[float, float]
    hu: np.ndarray
    truth: np.ndarray | None
    masks: dict[str, list[np.ndarray]] = field(default_factory=dict)
    dsc: dict[str, list[float | None]] = field(default_factory=dict)


def _crop(shape: tuple[int, int], masks: Sequence[np.ndarray], margin: int) -> tuple[slice, slice]:
    """Rows/columns around everything in ``masks`` (h, w) plus ``margin`` pixels; the whole slice if empty."""
    union = np.zeros(shape, bool)
    for m in masks:
        union |= m
    if not union.any():
        return slice(0, shape[0]), slice(0, shape[1])
    rows, cols = np.nonzero(union)
    return (slice(max(rows.min() - margin, 0), min(rows.max() + margin + 1, shape[0])),
            slice(max(cols.min() - margin, 0), min(cols.max() + margin + 1, shape[1])))


def slice_record(case, runs: dict[str, Sequence], fold: int, view: View | str = View.AXIAL,
                 margin: int = 12) -> CaseSlices:
    """``runs``: method -> the RoundStates of one run on ``case`` -> the :class:`CaseSlices` of its largest slice."""
    from rstn_core.evaluation.plots import largest_area_slice

    view = View.parse(view)
    last = next(iter(runs.values()))[-1].mask
    index = largest_area_slice(case.label if case.label is not None else last, view)

    def cut(volume: np.ndarray) -> np.ndarray:
        return to_display(to_view(volume, view)[index])

    truth = None if case.label is None else cut(np.asarray(case.label, bool))
    masks = {m: [cut(np.asarray(s.mask, bool)) for s in states] for m, states in runs.items()}
    hu = cut(np.asarray(case.image.data, np.float32))
    rows, cols = _crop(hu.shape, ([truth] if truth is not None else []) + [m for ms in masks.values() for m in ms],
                       margin)
    scaled = np.clip((hu - HU_WINDOW[0]) / (HU_WINDOW[1] - HU_WINDOW[0]), 0, 1)
    rest = [float(s) for i, s in enumerate(case.image.spacing) if i != view.axis]
    return CaseSlices(
        case.case_id, fold, view, index, (rest[1], rest[0]), (255 * scaled[rows, cols]).astype(np.uint8),
        None if truth is None else truth[rows, cols], {m: [x[rows, cols] for x in ms] for m, ms in masks.items()},
        {m: [s.dsc_vs_truth for s in states] for m, states in runs.items()})


def round_slices(data: str | Path, models: str | Path, case_ids: Sequence[str] | None = None,
                 methods: Sequence[Method | str] = TRAINED_METHODS, max_rounds: int = 10, view: View | str = View.AXIAL,
                 device: str = "cpu") -> dict[str, CaseSlices]:
    """Run ``methods`` (RSTN, C2F, the oracle) of each case's fold on the cases ``case_ids`` (None: all) of the dataset
    at ``data`` with the fold bundles at ``models`` -> case id -> :class:`CaseSlices`."""
    from rstn_core.data.folds import kfold_split
    from rstn_core.data.layouts import discover_dataset
    from rstn_core.errors import CheckpointError
    from rstn_core.evaluation.crossval import find_fold_bundles
    from rstn_core.inference.engine import RSTNEngine
    from rstn_core.io import load_case
    from rstn_core.models.bundle import load_bundle

    bundles, split = find_fold_bundles(models)
    methods = [Method.parse(m) for m in methods]  # the notebook's names, parsed here once
    missing = [m.value for m in methods if m.bundle_method not in bundles]
    if missing:
        raise CheckpointError(f"models {models}: no {missing} fold bundles; found "
                              f"{sorted(b.value for b in bundles) or 'none'}")
    dataset = discover_dataset(data)
    split = split or kfold_split(dataset.case_ids, len(bundles[methods[0].bundle_method]))
    wanted = set(dataset.case_ids if case_ids is None else case_ids)
    out: dict[str, CaseSlices] = {}
    for fold, test_ids in enumerate(split):
        ids = [c for c in test_ids if c in wanted]
        if not ids:
            continue
        engines = {m: RSTNEngine.from_bundle(load_bundle(bundles[m.bundle_method][fold], device), device=device)
                   .with_config(max_rounds=max_rounds, crops_from=m.crops_from)
                   for m in methods}
        targets = next(iter(engines.values())).data_config.target_labels
        for case_id in ids:
            ref = dataset.get(case_id)
            case = load_case(ref.image, ref.label, targets, case_id=case_id)
            out[case_id] = slice_record(case, {m: list(e.iterate(case)) for m, e in engines.items()}, fold, view)
            log.info("slices of %s (fold %d): %s slice %d", case_id, fold, View.parse(view).value,
                     out[case_id].index)
    return out


def overlay_rgb(hu: np.ndarray, mask: np.ndarray | None, truth: np.ndarray | None,
                alpha: float = 0.45) -> np.ndarray:
    """(h, w) uint8 CT, prediction and truth -> (h, w, 3) uint8: prediction red (blended), truth outline yellow."""
    rgb = np.repeat(hu[..., None].astype(np.float32), 3, axis=-1)
    if mask is not None and mask.any():
        rgb[mask] = (1 - alpha) * rgb[mask] + alpha * PRED_RGB
    rgb = rgb.round().astype(np.uint8)
    if truth is not None and truth.any():
        rgb[truth & ~ndimage.binary_erosion(truth)] = TRUTH_RGB
    return rgb
