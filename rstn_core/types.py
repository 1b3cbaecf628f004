"""The shared vocabulary of RSTN Studio: views, methods, fusions, volumes, cases and boxes.

Frames used throughout the library
----------------------------------
* **Canonical frame**: arrays indexed ``(i, j, k)`` along the patient's ``(R, A, S)`` axes
  (nibabel's closest canonical RAS+ orientation). Every volume is processed in this frame.
* **View frame**: for a view, the canonical array with the view's slicing axis moved to the
  front, ``(L, H, W)``; ``L`` is the number of slices of that view. See :mod:`rstn_core.slicing`.
* **Input frame**: the array layout of the file the user gave us. Predictions are written back
  in this frame with the original affine (:func:`rstn_core.io.save_mask`).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from typing import Self

import numpy as np


class Word(enum.StrEnum):
    """A word of the vocabulary: a ``str`` equal to its value, so JSON, CSV and bundles stay plain text.

    Strings are parsed into members once, at the edges (CLI arguments, configs, bundles); inside the
    library members are compared, never literals.
    """

    def __repr__(self) -> str:
        return repr(self.value)  # messages name the value as the user wrote it: 'rstn', not <Method.RSTN: 'rstn'>

    @classmethod
    def noun(cls) -> str:
        """What a member is called in messages: ``SaliencySource`` -> ``saliency source``."""
        return re.sub(r"(?<!^)(?=[A-Z])", " ", cls.__name__).lower()

    @classmethod
    def expected(cls, members: tuple[Word, ...] | None = None) -> str:
        """The values (of ``members``, default all) in words: ``'a' or 'b'``, ``one of 'a', 'b', 'c'``."""
        values = [repr(m.value) for m in (cls if members is None else members)]
        return " or ".join(values) if len(values) == 2 else "one of " + ", ".join(values)

    @classmethod
    def parse(cls, value: str | Word) -> Self:
        """A member from itself or its value (case-insensitive); ``ValueError`` naming the value otherwise."""
        if isinstance(value, cls):
            return value
        try:
            return cls(str(value).lower())
        except ValueError:
            names = ", ".join(v.value for v in cls)
            raise ValueError(f"unknown {cls.noun()} {value!r}; expected one of: {names}") from None

    @classmethod
    def find(cls, value: object, among: tuple[Word, ...] | None = None) -> Self | None:
        """The member ``value`` names (of ``among``, default all), or ``None``: for callers that word their
        own refusal."""
        try:
            member = cls.parse(value)  # type: ignore[arg-type]
        except ValueError:
            return None
        return member if among is None or member in among else None


class View(Word):
    """The three anatomical views; each has its own networks (SPEC §1.3)."""

    AXIAL = "axial"  # slices along S (canonical axis 2)
    CORONAL = "coronal"  # slices along A (canonical axis 1)
    SAGITTAL = "sagittal"  # slices along R (canonical axis 0)

    @property
    def axis(self) -> int:
        """Canonical (R, A, S) array axis the slices are taken along."""
        return {View.SAGITTAL: 0, View.CORONAL: 1, View.AXIAL: 2}[self]


class Method(Word):
    """What segments a case: RSTN (Yu et al. 2018), its C2F baseline (Zhou et al. 2017), or the oracle
    (RSTN's networks cropping from the ground truth, an upper bound for analysis; it has no bundle of its own)."""

    RSTN = "rstn"
    C2F = "c2f"
    ORACLE = "oracle"

    @property
    def bundle_method(self) -> Method:
        """The method of the bundle that serves this one (the oracle runs RSTN's networks)."""
        return Method.RSTN if self is Method.ORACLE else self

    @property
    def crops_from(self) -> CropReference:
        """The mask its fine rounds crop from: the ground truth for the oracle, else its own prediction."""
        return CropReference.TRUTH if self is Method.ORACLE else CropReference.PREDICTION


#: the methods a model is trained (and a bundle saved) for
TRAINED_METHODS: tuple[Method, ...] = (Method.RSTN, Method.C2F)


class Fusion(Word):
    """How the views' probabilities become one mask (``rstn_core.inference.fusion.fuse_views``)."""

    MEAN = "mean"  # threshold the mean of the views (RSTN's release)
    VOTE = "vote"  # a strict majority of the views' own masks (C2F's round 0)


class SaliencySource(Word):
    """The previous probability g() reads: the fused map (released code) or each view's own (the paper)."""

    FUSED = "fused"
    VIEW = "view"


class CropReference(Word):
    """The mask each fine round crops from: the previous round's prediction Z_{t-1} (Algorithm 1), or the
    ground truth (the oracle: the fine networks' upper bound, for analysis; needs a labelled case)."""

    PREDICTION = "prediction"
    TRUTH = "truth"


class ProbDtype(Word):
    """Storage of ``RoundState.view_probs``."""

    FLOAT16 = "float16"
    FLOAT32 = "float32"


ALL_VIEWS: tuple[View, ...] = (View.AXIAL, View.CORONAL, View.SAGITTAL)


@dataclass(frozen=True)
class Orientation:
    """The record needed to undo canonicalisation (STYLE habit 6).

    ``original_affine`` and ``original_shape`` describe the input file's own grid;
    ``ornt`` is the nibabel orientation array that maps the input to canonical RAS+
    (``nibabel.orientations.io_orientation`` of the original affine).
    """

    original_affine: np.ndarray  # (4, 4) float64, voxel -> world (RAS mm)
    original_shape: tuple[int, int, int]
    ornt: np.ndarray  # (3, 2) nibabel orientation, input -> canonical


@dataclass(frozen=True, eq=False)
class Volume:
    """A CT volume in the canonical frame.

    ``data``: (X, Y, Z) float32 Hounsfield units along (R, A, S).
    ``affine``: (4, 4) canonical voxel -> world matrix. ``spacing``: (3,) mm along (R, A, S).
    ``orientation``: the undo record back to the input file's grid.
    ``source``: where it was read from (for messages), may be empty.
    """

    data: np.ndarray
    affine: np.ndarray
    orientation: Orientation
    source: str = ""

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.data.shape)  # type: ignore[return-value]

    @property
    def spacing(self) -> np.ndarray:
        """(3,) voxel size in mm along (R, A, S)."""
        return np.sqrt((self.affine[:3, :3] ** 2).sum(axis=0))


@dataclass(frozen=True, eq=False)
class Case:
    """One CT with (optionally) its binary target mask, both in the canonical frame.

    ``image``: the CT volume. ``label``: (X, Y, Z) bool target mask or ``None`` when unknown.
    ``label_map``: the full integer label map when one was read (multi-organ), else ``None``.
    """

    case_id: str
    image: Volume
    label: np.ndarray | None = None
    label_map: np.ndarray | None = None
    meta: dict = field(default_factory=dict)


@dataclass(frozen=True)
class BBox:
    """A half-open rectangle in view-slice pixel coordinates: rows ``[y0, y1)``, cols ``[x0, x1)``."""

    y0: int
    y1: int
    x0: int
    x1: int

    def __post_init__(self) -> None:
        if self.y1 <= self.y0 or self.x1 <= self.x0:
            raise ValueError(f"empty or inverted box {self}")

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.y0, self.y1, self.x0, self.x1)

    def slices(self) -> tuple[slice, slice]:
        return slice(self.y0, self.y1), slice(self.x0, self.x1)
