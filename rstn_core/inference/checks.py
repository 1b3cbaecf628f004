"""Can the engine run on this case? One set of rules, each refusal naming the offending value."""

from __future__ import annotations

import numpy as np

from rstn_core.errors import DataError, RstnError
from rstn_core.types import Case

MIN_CT_SIZE = 3  # every axis must hold at least one full 3-slice window


def check_case(case: Case, needs_label: bool = False) -> None:
    """Refuse a CT smaller than a 3-slice window along some axis, a label of another shape, and (``needs_label``:
    the crops come from the ground truth) a case without a label."""
    shape = case.image.shape
    source = case.image.source or case.case_id
    if len(shape) != 3 or min(shape) < MIN_CT_SIZE:
        raise DataError(f"CT {source!r} of shape {shape} is smaller than a 3-slice window in some view "
                        f"(every axis needs >= {MIN_CT_SIZE} voxels)")
    if case.label is not None and tuple(case.label.shape) != shape:
        raise DataError(f"label of shape {tuple(case.label.shape)} does not match CT {source!r} of shape {shape}")
    if needs_label and case.label is None:
        raise RstnError(f"oracle mode crops from the ground truth, but case {case.case_id!r} has no label")


def check_values(case: Case) -> None:
    """Refuse a CT whose values are not finite or all equal (nothing to segment)."""
    lo, hi = float(case.image.data.min()), float(case.image.data.max())
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo == hi:
        raise DataError(f"CT {case.image.source or case.case_id!r} is empty: its values span [{lo}, {hi}] HU")
