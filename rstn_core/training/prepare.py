"""The data of a training run: the dataset's training cases of one fold, on the training grid, and each
view's training windows (:class:`~rstn_core.data.sampler.TrainingWindows`, randomised when asked)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rstn_core.config import DataConfig
from rstn_core.data.augment import AugmentConfig, RandomisedWindows
from rstn_core.data.folds import fold_cases, kfold_split, load_split
from rstn_core.data.layouts import Dataset, discover_dataset
from rstn_core.data.sampler import TrainingWindows
from rstn_core.io import load_case
from rstn_core.resample import resample_case
from rstn_core.types import Case, View

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingData:
    """The training side of one fold: ``cases`` on the training grid (``data_config.spacing``)."""

    dataset: Dataset
    data_config: DataConfig
    fold: int
    train_ids: list[str]
    test_ids: list[str]
    cases: list[Case]


def prepare_training_data(data: str | Path, spacing: tuple[float, float, float] | None, *, fold: int = 0,
                          folds: int = 4, split: str | Path | None = None,
                          labels: Sequence[int] | None = None) -> TrainingData:
    """The training cases of ``fold`` of the dataset at ``data`` (``folds`` folds of the sorted case ids, or the
    JSON ``split``), targets ``labels`` (default: the dataset's), resampled to ``spacing`` (None: native)."""
    dataset = discover_dataset(data)
    targets = tuple(int(t) for t in labels) if labels else tuple(dataset.default_target_labels)
    data_config = DataConfig(target_labels=targets, spacing=spacing)
    split_folds = load_split(split, dataset.case_ids) if split else kfold_split(dataset.case_ids, folds)
    train_ids, test_ids = fold_cases(dataset.case_ids, split_folds, fold)
    log.info("%s (%s): %d training cases, %d held out (fold %d)", dataset.name, dataset.layout, len(train_ids),
             len(test_ids), fold)
    cases = [resample_case(load_case(dataset.get(c).image, dataset.get(c).label, targets, case_id=c), spacing)
             for c in train_ids]
    return TrainingData(dataset, data_config, fold, list(train_ids), list(test_ids), cases)


def view_windows(data: TrainingData, view: View, augment: AugmentConfig | None, seed: int):
    """The training windows of ``view`` (each ``(image (3, H, W), label (3, H, W))``), randomised by
    ``augment`` from their own stream (``seed``) when it is given."""
    windows = TrainingWindows(data.cases, view, data.data_config, keep_label_maps=augment is not None)
    return windows if augment is None else RandomisedWindows(windows, augment, seed=seed)
