"""Training windows of one view (SPEC §1.4).

Only windows whose *centre* slice contains the target are sampled, and of those the slices with
the smallest target area are dropped: the ``drop_smallest_fraction`` (0.02) of target-containing
slices with the smallest areas, counted over the *training* cases given here only (the released
code leaked the test fold into this threshold).

Each case keeps one normalised float32 copy of its volume; windows are cut on demand. Cases may
have different slice sizes (H, W), so a batch of several windows must come from one case (or be
padded/cropped by the trainer); with the paper's batch size of 1 this never matters.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from rstn_core.config import DataConfig
from rstn_core.errors import DataError
from rstn_core.intensity import normalize_hu
from rstn_core.slicing import make_windows, to_view
from rstn_core.types import Case, View

logger = logging.getLogger(__name__)


def keep_largest(areas: np.ndarray, drop_fraction: float) -> np.ndarray:
    """(n,) bool: keep all but the ``floor(n * drop_fraction)`` smallest areas.

    Ranks, not a value threshold, so ties at the smallest areas (many 1-pixel slices) still drop
    exactly that many; equal areas are ordered by position (stable sort).
    """
    a = np.asarray(areas, dtype=np.int64)
    keep = np.ones(a.size, dtype=bool)
    keep[np.argsort(a, kind="stable")[: int(np.floor(a.size * drop_fraction))]] = False
    return keep


class TrainingWindows:
    """The (case, centre) windows of ``view`` used for training.

    ``cases``: training cases with a bool ``label``; ``keep_label_maps``: also keep each case's integer
    ``label_map`` (for domain randomisation, :mod:`rstn_core.data.augment`).
    ``self[i]`` -> ``(image (3, H, W) float32 in [0, 1], label (3, H, W) float32 in {0, 1})`` for the
    window centred on ``centers[i]``.
    ``threshold``: the smallest kept target area (pixels). ``centers``: (N, 2) int64 rows of
    (case index, centre slice). ``case_ids``: ids in case-index order.
    """

    def __init__(self, cases: Sequence[Case], view: View | str, data_config: DataConfig | None = None,
                 drop_smallest_fraction: float | None = None, keep_label_maps: bool = False) -> None:
        cfg = data_config or DataConfig()
        fraction = cfg.drop_smallest_fraction if drop_smallest_fraction is None else float(drop_smallest_fraction)
        if not 0.0 <= fraction < 1.0:
            raise DataError(f"drop_smallest_fraction must be in [0, 1), got {fraction}")
        if not cases:
            raise DataError("TrainingWindows needs at least one training case")
        self.view = View.parse(view)
        self.case_ids = [c.case_id for c in cases]
        self._images: list[np.ndarray] = []  # (L, H, W) float32 view stacks of normalised copies
        self._labels: list[np.ndarray] = []  # (L, H, W) bool view stacks (no copy)
        self._label_maps: list[np.ndarray] = []  # (L, H, W) int view stacks, only with keep_label_maps
        rows, areas = [], []
        for index, case in enumerate(cases):
            if case.label is None:
                raise DataError(f"case {case.case_id}: a training case needs a label")
            if case.label.shape != case.image.shape:
                raise DataError(f"case {case.case_id}: label shape {case.label.shape} != image {case.image.shape}")
            self._images.append(to_view(normalize_hu(case.image.data, cfg), self.view))
            label_stack = to_view(np.asarray(case.label, dtype=bool), self.view)
            self._labels.append(label_stack)
            if keep_label_maps:
                label_map = case.label_map if case.label_map is not None else case.label
                self._label_maps.append(to_view(np.asarray(label_map), self.view))
            slice_areas = label_stack.reshape(label_stack.shape[0], -1).sum(axis=1)
            for j in np.flatnonzero(slice_areas):
                rows.append((index, int(j)))
                areas.append(int(slice_areas[j]))
        if not rows:
            raise DataError(f"no {self.view.value} slice of cases {self.case_ids} contains the target")
        all_areas = np.asarray(areas, dtype=np.int64)
        keep = keep_largest(all_areas, fraction)
        self.threshold = int(all_areas[keep].min())
        self.centers = np.asarray(rows, dtype=np.int64)[keep]  # (N, 2) (case index, centre)
        self.areas = all_areas[keep]
        logger.info("%s windows: %d of %d target slices kept (area >= %d px) from %d cases", self.view.value,
                    len(self.centers), len(rows), self.threshold, len(cases))

    def __len__(self) -> int:
        return int(self.centers.shape[0])

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"window {i} out of range for {len(self)} windows")
        case_index, center = (int(v) for v in self.centers[i])
        image = make_windows(self._images[case_index], [center])[0]  # (3, H, W) float32
        label = make_windows(self._labels[case_index], [center])[0].astype(np.float32)  # (3, H, W)
        return np.ascontiguousarray(image, dtype=np.float32), label

    @property
    def has_label_maps(self) -> bool:
        return bool(self._label_maps)

    def label_map_window(self, i: int) -> np.ndarray:
        """(3, H, W) integer label map of window ``i`` (needs ``keep_label_maps=True``)."""
        if not self._label_maps:
            raise DataError("these training windows were built without keep_label_maps=True")
        case_index, center = (int(v) for v in self.centers[i])
        return make_windows(self._label_maps[case_index], [center])[0]

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """One window drawn uniformly at random."""
        return self[int(rng.integers(len(self)))]
