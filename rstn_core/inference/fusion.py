"""Fusing the views' probabilities into one mask (SPEC §4) and merging organs (paper §5).

All arrays are in the canonical (X, Y, Z) frame.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from rstn_core.types import Fusion, Method

FUSION_METHODS = tuple(Fusion)

# The fusion each method uses per round (SPEC §3, §4): (round 0, rounds >= 1). RSTN's released code
# averages the views in every round. Zhou et al.'s C2F release votes only at round 0 (coarse_fusion)
# and thresholds the mean of the view probabilities in its fine rounds (coarse2fine_testing).
METHOD_FUSION: dict[Method, tuple[Fusion, Fusion]] = {Method.RSTN: (Fusion.MEAN, Fusion.MEAN),
                                                     Method.C2F: (Fusion.VOTE, Fusion.MEAN)}


def method_fusion(method: Method) -> tuple[Fusion, Fusion]:
    """(round 0, rounds >= 1) fusion of ``method``'s release; the oracle runs RSTN's."""
    return METHOD_FUSION[Method.parse(method).bundle_method]


def round_fusion(round_index: int, fusion: Fusion, fine_fusion: Fusion) -> Fusion:
    """The fusion of round ``round_index``: ``fusion`` at round 0, ``fine_fusion`` at rounds >= 1."""
    if round_index < 0:
        raise ValueError(f"round index must be >= 0, got {round_index}")
    return fusion if round_index == 0 else fine_fusion


def fuse_views(
    view_probs: Sequence[np.ndarray], method: Fusion | str = Fusion.MEAN, threshold: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """Fuse per-view probabilities.

    ``view_probs``: one (X, Y, Z) float array in [0, 1] per view present (1 to 3).
    Returns ``(fused_prob (X, Y, Z) float32, mask (X, Y, Z) bool)``:

    * ``"mean"`` (default, RSTN released code): ``fused_prob`` = mean of the views,
      ``mask = fused_prob >= threshold``.
    * ``"vote"`` (C2F, Zhou et al.): ``mask`` = a strict majority of the views' own masks
      (``prob_v >= threshold``), i.e. at least 2 of 3; ``fused_prob`` is still the mean
      (it feeds the saliency transformation and the display).
    """
    method = Fusion.parse(method)
    if len(view_probs) == 0:
        raise ValueError("fuse_views needs at least one view probability map")
    shape = view_probs[0].shape
    fused = np.zeros(shape, dtype=np.float32)
    for prob in view_probs:
        if prob.shape != shape:
            raise ValueError(f"view probabilities of different shapes {shape} and {prob.shape}")
        fused += prob
    fused /= len(view_probs)
    if method is Fusion.MEAN:
        return fused, fused >= threshold
    votes = np.zeros(shape, dtype=np.uint8)
    for prob in view_probs:
        votes += prob >= threshold
    return fused, 2 * votes.astype(np.int16) > len(view_probs)


def merge_organs(
    probs: Mapping[int, np.ndarray], masks: Mapping[int, np.ndarray]
) -> np.ndarray:
    """One multi-label map from one binary prediction per organ (paper §5).

    ``probs``/``masks``: label id -> (X, Y, Z) fused probability / bool mask of that organ.
    A voxel claimed by several organs goes to the most confident one (highest probability;
    ties to the smaller label id). Returns (X, Y, Z) uint16 labels, 0 = background.
    """
    if set(probs) != set(masks):
        raise ValueError(f"merge_organs: probabilities for {sorted(probs)} but masks for {sorted(masks)}")
    if not probs:
        raise ValueError("merge_organs needs at least one organ")
    ids = sorted(int(i) for i in probs)
    if ids[0] <= 0:
        raise ValueError(f"organ label ids must be positive, got {ids}")
    shape = probs[ids[0]].shape
    best = np.full(shape, -1.0, dtype=np.float32)
    labels = np.zeros(shape, dtype=np.uint16)
    for organ in ids:
        claim = np.asarray(masks[organ], dtype=bool)
        conf = np.where(claim, np.asarray(probs[organ], dtype=np.float32), -1.0)
        wins = claim & (conf > best)
        labels[wins] = organ
        best[wins] = conf[wins]
    return labels
