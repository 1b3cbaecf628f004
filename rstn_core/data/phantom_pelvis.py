"""The pelvis of the phantom (anatomy version 2): sacrum, iliac wings, pubis, femoral heads, bladder,
sigmoid and rectum, gluteal muscles.

Abdominal CT is often acquired from the diaphragm to the pubic symphysis ("abdomen-pelvis"); a model
that has only seen the upper abdomen meets a bladder, a sacrum and hip bones it has never seen. Version 1
stopped at the iliac crest. Sizes are rounded adult values from anatomy texts (sacrum ~10-11 cm long,
curving back; the iliac wing a thin plate that thickens towards the acetabulum; femoral head ~45-50 mm
across; a bladder from nearly empty to ~500 ml).

Coordinates are mm in the body frame of :mod:`rstn_core.data.phantom_anatomy` (x Right, y Anterior,
z Superior). Bones use unwarped coordinates (the skeleton stays symmetric), soft organs warped ones.
"""

from __future__ import annotations

import numpy as np

from rstn_core.data.phantom_anatomy import TISSUE_IDS, Canvas, ellipsoid
from rstn_core.data.phantom_params import Anatomy

SACRUM_ID, BLADDER_ID, COLON_ID = 25, 21, 20
HIP_IDS, FEMUR_IDS = (77, 78), (75, 76)  # (left, right), TotalSegmentator "total"


def sample_pelvis(p: dict, rng: np.random.Generator) -> None:
    """Add the pelvis parameters to the anatomy dict ``p`` (in place), from the version-2 stream (see
    ``draw_anatomy``)."""
    u = lambda lo, hi: float(rng.uniform(lo, hi))  # noqa: E731
    pitch = p["vert_pitch"]
    p["z_sacrum"] = p["z_L1"] - 4.5 * pitch  # top of S1, below the L5-S1 disc
    p["sacrum_len"] = u(95, 115)
    p["z_acetabulum"] = p["z_crest"] - u(100, 118)
    p["pelvis_scale"] = u(0.9, 1.1)
    p["femoral_head_r"] = u(21, 26)
    fill = u(0.35, 1.25)  # bladder filling
    p["bladder_semi"] = [22 + 28 * fill, 18 + 22 * fill, 16 + 26 * fill]
    p["bladder_dz"] = u(5, 30)
    p["rectum_r"] = u(13, 18)


def _sacrum_front(a: Anatomy, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centre y, half-width and half-thickness (mm) of the sacrum at heights ``z`` (s: 0 top .. 1 tip)."""
    s = np.clip((a.z_sacrum - z) / a.sacrum_len, 0.0, 1.0)
    yc = a.vb_y - 4.0 - 42.0 * s**2
    return yc, 48.0 * a.pelvis_scale * (1.0 - 0.7 * s), 15.0 * (1.0 - 0.45 * s)


def _wing_curve(a: Anatomy, z: float, side: int) -> tuple[np.ndarray, float]:
    """(30, 2) points of the iliac wing's mid-surface in the axial plane at height ``z``, and its thickness."""
    s = float(np.clip((a.z_crest - z) / (a.z_crest - a.z_acetabulum), 0.0, 1.0))
    k, vb_y = a.pelvis_scale, a.vb_y
    p1 = np.array([side * (50.0 + 6.0 * s) * k, vb_y - 22.0 + 24.0 * s])  # sacro-iliac joint
    p2 = np.array([side * (118.0 - 38.0 * s) * k, vb_y + 48.0 + 14.0 * s])  # anterior iliac spine
    mid = (p1 + p2) / 2 + np.array([side * 14.0, -12.0]) * (1.0 - 0.6 * s)  # the iliac fossa is concave
    t = np.linspace(0.0, 1.0, 30)[:, None]
    curve = (1 - t) ** 2 * p1 + 2 * (1 - t) * t * mid + t**2 * p2
    return curve, 5.0 + 19.0 * s**2


def _paint_bone(cv: Canvas, k: int, dist: np.ndarray, half: float, label: int) -> None:
    """Cortex within ``half`` mm of a mid-surface and cancellous bone inside, on axial slice ``k``."""
    sl = (slice(None), slice(None), slice(k, k + 1))
    cortex = (dist <= half)[..., None]
    cv.paint(sl, cortex, "bone_cortex", label)
    if half > 3.0:
        cv.paint(sl, (dist <= half - 2.5)[..., None], "bone_cancellous", label)


def paint_pelvic_bones(cv: Canvas, a: Anatomy, inner: np.ndarray) -> None:
    """Sacrum, iliac wings with the gluteal muscles lateral to them, on every axial slice below the crest.

    ``inner``: (X, Y, Z) bool, inside the subcutaneous fat (where muscle may be painted).
    """
    g = cv.grid
    xx, yy = np.meshgrid(g.x, g.y, indexing="ij")  # (X, Y) unwarped
    for k, z in enumerate(g.z):
        z = float(z)
        if z > a.z_crest + 5 or z < a.z_acetabulum - 10:
            continue
        for side, label in ((-1, HIP_IDS[0]), (1, HIP_IDS[1])):
            curve, thick = _wing_curve(a, z, side)
            crest_drop = 0.002 * (np.abs(xx) - 90.0) ** 2  # the crest is highest laterally
            d = np.full(xx.shape, 1e4, dtype=np.float32)
            for c in curve:
                np.minimum(d, np.hypot(xx - c[0], yy - c[1]), out=d)
            d[z > a.z_crest - crest_drop] = 1e4
            p1, p2 = curve[0], curve[-1]
            cross = (p2[0] - p1[0]) * (yy - p1[1]) - (p2[1] - p1[1]) * (xx - p1[0])
            lateral = (side * cross < 0) & (yy < p2[1] + 5) & (side * xx > 0) & (d < 1e4)
            lateral |= (yy < p1[1] - 6) & (side * xx > 20) & (d < 1e4)  # gluteus maximus behind the joint
            sl = (slice(None), slice(None), slice(k, k + 1))
            cv.paint(sl, (lateral & inner[:, :, k])[..., None], "muscle", 0, into=("fat_vis",))
            _paint_bone(cv, k, d, thick / 2.0, label)
        if z <= a.z_sacrum and z >= a.z_sacrum - a.sacrum_len:
            yc, hw, ht = _sacrum_front(a, np.float64(z))
            q = np.abs(xx / hw) ** 2.5 + np.abs((yy - yc) / ht) ** 2.5
            sl = (slice(None), slice(None), slice(k, k + 1))
            cv.paint(sl, (q < 1.0)[..., None], "bone_cortex", SACRUM_ID)
            inner_q = np.abs(xx / max(hw - 3, 1)) ** 2.5 + np.abs((yy - yc) / max(ht - 3, 1)) ** 2.5
            cv.paint(sl, (inner_q < 1.0)[..., None], "bone_cancellous", SACRUM_ID)


def _symphysis_y(a: Anatomy) -> float:
    """Front-back position (mm) of the pubic symphysis: just inside the front of the body wall."""
    return a.body_yc + 0.72 * a.body_b - a.fat_sub_mm


def paint_hips(cv: Canvas, a: Anatomy) -> None:
    """Femoral heads and necks, acetabular rims, pubic rami and the symphysis (tubes and spheres)."""
    za, k, vb_y = a.z_acetabulum, a.pelvis_scale, a.vb_y
    r = a.femoral_head_r
    y_sym = _symphysis_y(a)
    for side, (hip, femur) in ((-1, (HIP_IDS[0], FEMUR_IDS[0])), (1, (HIP_IDS[1], FEMUR_IDS[1]))):
        head = np.array([side * 86.0 * k, vb_y + 52.0, za - r + 2.0])
        rim = [head + (0, 0, r + 3), head + (-side * 4, 0, r - 4), head + (-side * 10, 10, -r + 4)]
        cv.tube(rim, [9.0, 10.0, 9.0], "bone_cortex", hip, into=("fat_vis", "muscle"))
        cv.tube([head + (-side * 8, 14, -r + 2), (side * 6.0, y_sym, za - 42.0)], [8.0, 7.0], "bone_cortex", hip,
                into=("fat_vis", "muscle"))  # superior pubic ramus to the symphysis
        cv.tube([head + (0, -14, -r), (side * 55.0 * k, vb_y + 18.0, za - 80.0)], [10.0, 9.0], "bone_cortex", hip,
                into=("fat_vis", "muscle"))  # ischium
        sl, q = ellipsoid(cv.grid, head, (r, r, r))
        if sl is not None:
            cv.paint(sl, q < 1.0, "bone_cortex", femur)
            cv.paint(sl, q < 1.0 - 3.0 / r, "bone_cancellous", femur)
        troch = head + (side * 48.0, -6.0, -38.0)
        cv.tube([head, troch, troch + (-side * 10, 0, -160)], [15.0, 17.0, 14.0], "bone_cortex", femur,
                into=("fat_vis", "muscle", "fat_sub"))


def paint_pelvic_organs(cv: Canvas, a: Anatomy) -> None:
    """Bladder (wall and urine) behind the symphysis, sigmoid colon and rectum in front of the sacrum."""
    za = a.z_acetabulum
    y_sym = _symphysis_y(a)
    semi = np.asarray(a.bladder_semi)
    centre = (0.0, y_sym - 8.0 - semi[1], za - 30.0 + semi[2] * 0.6 + a.bladder_dz * 0.3)
    sl, q = ellipsoid(cv.grid, centre, semi)
    if sl is not None:
        cv.paint(sl, q < 1.0, "muscle", BLADDER_ID, into=("fat_vis",))
        cv.paint(sl, q < 1.0 - 4.0 / semi.min(), "urine", BLADDER_ID, into=("muscle",))
    yc, _, ht = _sacrum_front(a, np.asarray([a.z_sacrum - 40.0, a.z_sacrum - a.sacrum_len]))
    rr = a.rectum_r
    start = a.colon_path[-1]  # the descending colon's lower end, left iliac fossa
    path = [[start[0], start[1], a.z_crest - 30.0], [-45.0, a.vb_y + 55.0, za + 20.0],
            [-8.0, float(yc[0] + ht[0]) + rr + 12.0, a.z_sacrum - 45.0],
            [0.0, float(yc[1] + ht[1]) + rr + 4.0, za - 45.0]]
    sl, tube = cv.tube(path, [rr * 0.9, rr, rr * 1.1, rr * 1.25], "stool", COLON_ID, into=("fat_vis",),
                       wall=("bowel_wall", 3.0))
    if sl is not None:
        lumen = (cv.tissue[sl] == TISSUE_IDS["stool"]) & tube
        _, wy, _ = cv.grid.coords(sl)
        cv.paint(sl, lumen & (wy > np.quantile(wy[lumen], 0.8) if lumen.any() else lumen), "air", COLON_ID)
