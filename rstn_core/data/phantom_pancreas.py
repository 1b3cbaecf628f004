"""The course of the phantom's pancreas and splenic vein (anatomy version 2).

Version 1 drew every gland as the same oblique tube whose tail rose 36-61 mm above the neck, so an
axial slice cut it into small blobs. Real glands lie in several ways; dissection studies classify the
*lie* of the gland (after Kreel et al.) as transverse, oblique, sigmoid, horseshoe, L-shaped or
inverted V. This module draws the lie with the frequencies Covantev & Belic measured in 78 dissected
organ complexes (Folia Medica 64(1), 2022: oblique 11.5 %, sigmoid 30.8 %, transverse 25.6 %,
horseshoe 11.5 %, L-shaped 14.1 %, inverted V 5.1 %) and turns it into the cranio-caudal height of
the body and tail above the neck. The splenic vein follows the same course along the gland's
posterior surface. In-plane positions (head in the duodenal C-loop, neck in front of the
spleno-portal confluence, tail towards the splenic hilum) stay those of
:func:`~rstn_core.data.phantom_params.sample_anatomy`.

All lengths are mm in the phantom's body frame (x Right, y Anterior, z Superior).
The uncinate process and head keep version 1's course (24 and 10 mm below the neck).
"""

from __future__ import annotations

import numpy as np

#: lie of the gland -> frequency (%) in Covantev & Belic 2022 (Kreel's types; M-shape and short gland
#: were single cases and are left out)
LIE_FREQUENCIES: dict[str, float] = {"transverse": 25.64, "oblique": 11.54, "sigmoid": 30.77,
                                     "horseshoe": 11.54, "l-shaped": 14.10, "inverted-v": 5.13}

#: positions of the body/tail centre-line points along the gland (0 = neck, 1 = tail tip)
BODY_TAIL_T = np.array([0.3, 0.6, 0.85, 1.0])


def draw_lie(rng: np.random.Generator) -> str:
    """One lie class, drawn with :data:`LIE_FREQUENCIES`."""
    names = list(LIE_FREQUENCIES)
    w = np.array([LIE_FREQUENCIES[n] for n in names])
    return names[int(rng.choice(len(names), p=w / w.sum()))]


def lie_heights(lie: str, rng: np.random.Generator, t: np.ndarray = BODY_TAIL_T) -> np.ndarray:
    """Height (mm, cranial positive) of the gland's centre line above the neck at positions ``t``.

    ``t``: (n,) in [0, 1] (0 = neck, 1 = tail tip). Returns (n,) float64.
    """
    u = lambda lo, hi: float(rng.uniform(lo, hi))  # noqa: E731
    t = np.asarray(t, dtype=np.float64)
    if lie == "transverse":  # nearly level
        return u(-4, 10) * t
    if lie == "oblique":  # the tail rises steadily towards the hilum
        return u(20, 45) * t
    if lie == "sigmoid":  # the body dips below the neck, the tail rises
        return u(15, 35) * t**2.5 - u(8, 16) * np.sin(np.pi * t)
    if lie == "horseshoe":  # the body arches up, the tail comes down again
        return u(12, 25) * np.sin(np.pi * t) + u(-5, 8) * t
    if lie == "l-shaped":  # a level body, then the tail turns up steeply
        return u(28, 45) * np.clip((t - 0.55) / 0.45, 0.0, 1.0) ** 1.3
    if lie == "inverted-v":  # a peak in the body, both ends lower
        peak = u(0.3, 0.45)
        top = u(15, 28)
        return np.where(t <= peak, top * t / peak, top * (1.0 - 0.8 * (t - peak) / (1.0 - peak)))
    raise ValueError(f"unknown pancreas lie {lie!r}; known: {sorted(LIE_FREQUENCIES)}")


def apply_lie(p: dict, rng: np.random.Generator, cz: float) -> None:
    """Re-draw the cranio-caudal course of the body and tail in the anatomy dict ``p`` (in place).

    ``p``: from :func:`~rstn_core.data.phantom_params.sample_anatomy` (its in-plane positions are kept: head in
    the duodenal C-loop, neck in front of the spleno-portal confluence, tail towards the splenic hilum);
    ``rng``: not the organs' stream, so every other organ of a seed stays where version 1 put it;
    ``cz``: height of the confluence (the neck's level). Sets ``pancreas_lie``; the body/tail points of
    ``pancreas_path`` (indices 3-6) and the splenic vein (indices 1-4, just cranial to the gland's
    posterior surface) follow the drawn heights.
    """
    lie = draw_lie(rng)
    h = lie_heights(lie, rng)
    p["pancreas_lie"] = lie
    for k, dz in enumerate(h):
        p["pancreas_path"][3 + k][2] = cz + float(dz)
        p["splenic_path"][1 + k][2] = cz + float(dz) + 2.0 + k
