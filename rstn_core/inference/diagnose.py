"""Plain-words reasons why a run found nothing (used by ``rstn predict``, the app and the notebooks).

A model that returns an empty mask is not an error, but the user must learn it, and why it likely
happened: the coarse stage saw nothing, the CT's values do not look like Hounsfield units, or the scan's
voxel size is far from the one the model was trained at.
"""

from __future__ import annotations

import numpy as np

from rstn_core.inference.convergence import StopReason
from rstn_core.types import Case

#: a ratio of voxel sizes beyond which a model is unlikely to transfer (even after resampling)
FAR_SPACING_RATIO = 2.0


def hu_problem(hu: np.ndarray) -> str | None:
    """A sentence when the intensities do not look like CT in HU, else None. ``hu``: any-shape array."""
    sample = np.asarray(hu).ravel()[:: max(1, np.asarray(hu).size // 200_000)].astype(np.float32)
    lo, median, hi = (float(v) for v in np.percentile(sample, [1, 50, 99]))
    if hi - lo < 50:
        return f"its values hardly vary ({lo:.0f}..{hi:.0f}), so it is not a CT in Hounsfield units"
    if lo > -500 and median > 500:
        return (f"its values ({lo:.0f}..{hi:.0f}, median {median:.0f}) look like stored scanner values without "
                "the rescale to Hounsfield units (air should be about -1000)")
    if lo > -500:
        return (f"it holds no air or fat below -500 HU (1st percentile {lo:.0f}); an abdominal CT in Hounsfield "
                "units always does, so the intensities are probably on another scale")
    if hi < 100:
        return f"its brightest tissue is {hi:.0f} HU (99th percentile); CT bone and contrast are far brighter"
    return None


def spacing_problem(case: Case, model_spacing) -> str | None:
    """A sentence when the input voxel size is far from the model's (or the model records none)."""
    spacing = np.asarray(case.image.spacing, dtype=np.float64)
    text = " x ".join(f"{s:.2g}" for s in spacing)
    if model_spacing is None:
        return None
    model = np.asarray(model_spacing, dtype=np.float64)
    ratio = np.maximum(spacing / model, model / spacing)
    if float(ratio.max()) > FAR_SPACING_RATIO:
        return (f"its voxels ({text} mm) are far from the {' x '.join(f'{s:.2g}' for s in model)} mm the model was "
                "trained at; it was resampled, but detail or context may be lost")
    return None


def explain_empty(case: Case, state, engine) -> list[str]:
    """Sentences for a run whose final mask is empty (none otherwise). ``case``: the input case (its own grid);
    ``state``: the last RoundState; ``engine``: the engine that ran (its threshold and spacing)."""
    if state is None or bool(np.any(state.mask)):
        return []
    peak = float(np.max(state.fused_prob)) if state.fused_prob.size else 0.0
    if state.stopped == StopReason.EMPTY_COARSE:
        out = [f"the model found nothing: the coarse stage is empty in every view (highest probability {peak:.2f}, "
               f"threshold {engine.config.threshold})"]
    else:
        out = [f"the model found nothing: round {state.round} is empty (highest probability {peak:.2f})"]
    for problem in (hu_problem(case.image.data), spacing_problem(case, getattr(engine, "spacing", None))):
        if problem:
            out.append(f"likely cause: {problem}")
    if len(out) == 1:
        out.append("likely cause: the scan differs from what the model was trained on (its contrast phase, "
                   "field of view or anatomy); the built-in demo model was trained on synthetic phantoms only")
    return out
