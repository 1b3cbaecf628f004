"""The organs of the phantom, painted into the trunk (:mod:`~rstn_core.data.phantom_trunk`): liver, spleen,
kidneys, gallbladder, stomach, colon, duodenum, small bowel, pancreas and the vessels; and
:func:`paint_abdomen`, which paints a whole phantom in order (later paints override earlier ones).

Organs are implicit shapes at the grid's warped coordinates. Painting order and random draws are those of
the original single painter: the phantoms of a seed do not change.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from rstn_core.data.phantom_anatomy import TISSUE_IDS, Canvas, ellipsoid, smooth_noise, spline_path
from rstn_core.data.phantom_params import Anatomy
from rstn_core.data.phantom_trunk import (
    Trunk,
    paint_back_muscles,
    paint_body,
    paint_iliac_crests,
    paint_lungs,
    paint_ribs,
    paint_spine,
)


def paint_abdomen(cv: Canvas, a: Anatomy, rng: np.random.Generator) -> dict:
    """Paint a whole abdomen from the sampled anatomy ``a`` (mm, body frame), in order: trunk, skeleton,
    muscles, ribs, pelvis (version 2) or iliac crests (version 1), lungs, solid organs, hollow organs, small
    bowel, pancreas, vessels. Returns ``{"cavity": (X, Y, Z) bool}``.
    """
    t = paint_body(cv, a, rng)
    paint_spine(cv, a, t)
    paint_back_muscles(cv, a, t)
    paint_ribs(cv, a, t)
    if a.has_pelvis:
        from rstn_core.data.phantom_pelvis import paint_hips, paint_pelvic_bones, paint_pelvic_organs

        paint_pelvic_bones(cv, a, t.body & (t.depth > t.fat_t))
        paint_hips(cv, a)
        paint_pelvic_organs(cv, a)
    else:
        paint_iliac_crests(cv, a, t)
    paint_lungs(cv, a, t)
    paint_liver(cv, a, t, rng)
    paint_spleen(cv, a, t)
    paint_kidneys(cv, a, t)
    paint_gallbladder(cv, a)
    paint_stomach(cv, a, t)
    paint_colon(cv, a, t)
    cv.tube(a.duodenum_path, a.duodenum_r, "fluid", 19, into=("fat_vis",),  # the C-loop around the head
            wall=("bowel_wall", 3.0), noise=t.n_organ, noise_amp=0.06)
    paint_small_bowel(cv, a, t, rng)
    paint_pancreas(cv, a, t, rng)
    paint_vessels(cv, a)
    return {"cavity": t.cavity}


def paint_liver(cv: Canvas, a: Anatomy, t: Trunk, rng: np.random.Generator) -> None:
    """A two-lobe union under the diaphragm with a network of enhancing vessels."""
    g = cv.grid
    wx, wy, wz = g.wx, g.wy, g.wz
    shape, full, vb_y, dome = g.shape, tuple(slice(0, n) for n in g.shape), a.vb_y, a.z_dome
    below_dia, n_organ, n_fine = t.below_dia, t.n_organ, t.n_fine
    lc = a.liver_c
    sl_r, q_r = ellipsoid(g, lc, a.liver_semi, rot_z_deg=15)
    sl_l, q_l = ellipsoid(g, (lc[0] - 80, lc[1] + 35, lc[2] + 15), a.liver_left_semi, rot_z_deg=-10)
    q = np.full(shape, 9.0, dtype=np.float32)
    q[sl_r] = np.minimum(q[sl_r], q_r)
    q[sl_l] = np.minimum(q[sl_l], q_l)
    liver = (q < 1.0 + 0.12 * n_organ) & below_dia & (wz < dome)
    liver &= ~((wy - vb_y) ** 2 / 30**2 + wx**2 / 45**2 < 1)  # spine and crura stay free
    liver &= ~((wx < 28) & (wz < a.z_L1 + 28) & (wy < vb_y + 70))  # no liver around the pancreas
    cv.paint(full, liver, "liver", 5, into=("fat_vis",))
    nv1 = smooth_noise(rng, shape, g.spacing, 22.0)
    vessels = liver & (np.abs(nv1) < 0.12) & (np.abs(n_fine) < 0.5)
    cv.paint(full, vessels, "hepatic_vessel", 5)


def paint_spleen(cv: Canvas, a: Anatomy, t: Trunk) -> None:
    """A crescent, posterolateral left."""
    g = cv.grid
    shape, below_dia, n_organ = g.shape, t.below_dia, t.n_organ
    sc = a.spleen_c
    sl, qs = ellipsoid(g, sc, a.spleen_semi, rot_z_deg=-35)
    sl2, qh = ellipsoid(g, (sc[0] + 25, sc[1] + 15, sc[2]), np.asarray(a.spleen_semi) * 0.8, rot_z_deg=-35)
    if sl is not None:
        spleen = (qs < 1.0 + 0.1 * n_organ[sl]) & below_dia[sl]
        if sl2 is not None:
            hole = np.zeros(shape, bool)
            hole[sl2] = qh < 1.0
            spleen &= ~hole[sl]
        cv.paint(sl, spleen, "spleen", 1, into=("fat_vis", "muscle"))


def paint_kidneys(cv: Canvas, a: Anatomy, t: Trunk) -> None:
    """Perirenal fat, cortex, medulla, sinus fat and pelvis."""
    g = cv.grid
    cavity, n_organ = t.cavity, t.n_organ
    for side, lab in ((1, 2), (-1, 3)):
        kc = np.array(a.kidney_c_r if side > 0 else a.kidney_c_l)
        ks = np.array(a.kidney_semi)
        sl, qk = ellipsoid(g, kc, ks * 1.25, rot_z_deg=side * 30)
        if sl is None:
            continue
        kx, ky, _ = g.coords(sl)
        cv.paint(sl, (qk < 1.0) & cavity[sl], "fat_vis", 0)
        sl, qk = ellipsoid(g, kc, ks, rot_z_deg=side * 30)
        kx, ky, _ = g.coords(sl)
        kid = (qk < 1.0 + 0.05 * n_organ[sl]) & cavity[sl]
        medial = -side * (kx - kc[0]) * 0.8 + (ky - kc[1]) * 0.6  # towards the hilum
        cv.paint(sl, kid, "kidney_cortex", lab)
        cv.paint(sl, kid & (qk < 0.72), "kidney_medulla", lab)
        sinus = kid & (qk < 0.6) & (medial > -3)
        cv.paint(sl, sinus, "fat_vis", 0)
        cv.paint(sl, sinus & (qk < 0.35), "urine", 0)


def paint_gallbladder(cv: Canvas, a: Anatomy) -> None:
    """Bile in an ellipsoid under the liver (80 % of cases)."""
    g = cv.grid
    if a.gallbladder:
        sl, qg = ellipsoid(g, a.gb_c, a.gb_semi, rot_z_deg=20, rot_x_deg=-35)
        if sl is not None:
            cv.paint(sl, qg < 1.0, "bile", 4, into=("liver", "fat_vis", "hepatic_vessel"))


def hollow_organ(cv: Canvas, path, radii, content: str, label: int, wall_mm: float, noise: np.ndarray | None = None,
                 noise_amp: float = 0.0):
    """A tube with a bowel wall around ``content`` (into visceral fat); returns its box and lumen mask (or Nones)."""
    sl, _ = cv.tube(path, radii, content, label, into=("fat_vis",), wall=("bowel_wall", wall_mm), noise=noise,
                    noise_amp=noise_amp)
    if sl is None:
        return None, None
    return sl, (cv.tissue[sl] == TISSUE_IDS[content]) & (cv.labels[sl] == label)


def paint_stomach(cv: Canvas, a: Anatomy, t: Trunk) -> None:
    """A J-shaped tube with a wall, water or positive oral contrast, and an air-fluid level."""
    sl, lumen = hollow_organ(cv, a.stomach_path, a.stomach_r, "fluid", 6, 4.5, t.n_organ, 0.08)
    if sl is not None:
        if a.oral_contrast:
            cv.paint(sl, lumen, "contrast", 6)
        _, sy, _ = cv.grid.coords(sl)
        cv.paint(sl, lumen & (sy > a.stomach_air_level), "air", 6)


def paint_colon(cv: Canvas, a: Anatomy, t: Trunk) -> None:
    """Ascending, transverse, descending; mottled stool with gas."""
    sl, lumen = hollow_organ(cv, a.colon_path, a.colon_r, "stool", 20, 3.0, t.n_organ, 0.12)
    if sl is not None:
        bubbles = (t.n_fine[sl] > 0.9) | (t.n_organ[sl] > 1.1)
        cv.paint(sl, lumen & bubbles, "air", 20)


def paint_small_bowel(cv: Canvas, a: Anatomy, t: Trunk, rng: np.random.Generator) -> None:
    """Continuous tubular loops (self-avoiding random walks) in the free visceral fat below the mesocolon."""
    g = cv.grid
    wx, wy, wz = g.wx, g.wy, g.wz
    shape, full, vb_y = g.shape, tuple(slice(0, n) for n in g.shape), a.vb_y
    cavity, n_fine = t.cavity, t.n_fine
    meso = wz < (a.z_mesocolon + 35 * (wx < -20) * np.clip((-wx - 20) / 60, 0, 1))
    free = cavity & meso & (cv.tissue == TISSUE_IDS["fat_vis"]) & (cv.labels == 0)
    free &= (wy > vb_y - 5) | (np.abs(wx) > 90)
    dist = bowel_loops(free, g.spacing, a, rng)  # mm from the nearest loop centre line
    r_b = a.bowel_r * (1.0 + 0.12 * n_fine)
    loops = free & (dist <= r_b)
    cv.paint(full, loops, "bowel_wall", 18)
    lumen = loops & (dist <= r_b - a.bowel_wall_mm)
    content = smooth_noise(rng, shape, g.spacing, 45.0)
    cv.paint(full, lumen, "fluid", 18)
    if a.oral_contrast:
        cv.paint(full, lumen & (content > 0.3), "contrast", 18)
    cv.paint(full, lumen & (content < -1.1) & (dist <= r_b * 0.5), "air", 18)


def paint_pancreas(cv: Canvas, a: Anatomy, t: Trunk, rng: np.random.Generator) -> None:
    """A lobulated tube along the drawn course, capped at 1.45 % of a slice, with fat clefts."""
    g = cv.grid
    shape, n_fine = g.shape, t.n_fine
    n_lob = smooth_noise(rng, shape, g.spacing, 7.0)
    radii = np.asarray(a.pancreas_r, dtype=np.float64)
    nx, ny = shape[0], shape[1]
    for _ in range(10):
        pa_sl, pa = _pancreas_mask(cv, a.pancreas_path, radii, n_lob, a.pancreas_lobulation)
        per_slice = pa.sum(axis=(0, 1)) / float(nx * ny) if pa_sl is not None else np.zeros(1)
        if per_slice.max() < a.pancreas_max_fraction:
            break
        radii = radii * 0.92
    if a.pancreas_atrophy != 1.0:  # version 2: an atrophic gland is smaller than the capped normal one
        pa_sl, pa = _pancreas_mask(cv, a.pancreas_path, radii * a.pancreas_atrophy, n_lob,
                                   a.pancreas_lobulation)
    if pa_sl is not None:
        pa &= np.isin(cv.labels[pa_sl], (0, 5, 18, 20)) & np.isin(
            cv.tissue[pa_sl], [TISSUE_IDS[t] for t in ("fat_vis", "liver", "hepatic_vessel", "bowel_wall", "fluid",
                                                         "contrast", "air", "stool")])
        cv.paint(pa_sl, pa, "pancreas", 7)
        clefts = pa & (n_lob[pa_sl] > a.pancreas_cleft) & (n_fine[pa_sl] > 0)
        cv.paint(pa_sl, clefts, "pancreas_fat", 7)


def paint_vessels(cv: Canvas, a: Anatomy) -> None:
    """Painted last, they pass through everything: aorta and iliacs, IVC, SMA, portal, splenic, SMV, left renal."""
    vess = ("fat_vis", "pancreas", "pancreas_fat", "bowel_wall", "fluid", "contrast", "stool", "liver",
            "hepatic_vessel", "muscle", "air", "kidney_cortex")
    cv.tube(a.aorta_path, a.aorta_r, "aorta", 52, into=vess)
    for s in (-1, 1):
        cv.tube(_iliac(a, s), [a.aorta_r[-1] * 0.7] * 3, "artery", 0, into=vess)
    cv.tube(a.ivc_path, a.ivc_r, "ivc", 63, into=vess)
    cv.tube(a.sma_path, [4.0] * len(a.sma_path), "artery", 0, into=vess)
    cv.tube(a.portal_path, a.portal_r, "portal", 64, into=vess)
    cv.tube(a.splenic_path, a.splenic_r, "portal", 64, into=vess)
    cv.tube(a.smv_path, [5.0] * len(a.smv_path), "portal", 64, into=vess)
    cv.tube(a.lrv_path, [4.5] * len(a.lrv_path), "ivc", 0, into=vess)


def bowel_loops(free: np.ndarray, spacing, a: Anatomy, rng: np.random.Generator) -> np.ndarray:
    """Centre lines of small-bowel loops as self-avoiding persistent random walks inside ``free``.

    ``free``: (X, Y, Z) bool space the loops may occupy; ``spacing``: (3,) mm. Walks of ~3 mm steps
    turn smoothly, stay inside ``free`` and keep ``2 * bowel_r + 2.5`` mm from earlier loop segments
    (mesenteric fat in between). Returns (X, Y, Z) float32: distance in mm (voxel grid, unwarped) to
    the nearest centre-line voxel (large where there is none).
    """
    shape = np.asarray(free.shape)
    sp = np.asarray(spacing, dtype=np.float64)
    centre = np.zeros(free.shape, dtype=bool)
    # occupancy on the same grid: voxels too close to an earlier centre line
    taken = np.zeros(free.shape, dtype=bool)
    excl = (2.0 * a.bowel_r + 2.5) / sp
    ker = np.ceil(excl).astype(int)
    kz = np.mgrid[-ker[0]:ker[0] + 1, -ker[1]:ker[1] + 1, -ker[2]:ker[2] + 1]
    ball = ((kz[0] / excl[0]) ** 2 + (kz[1] / excl[1]) ** 2 + (kz[2] / excl[2]) ** 2) <= 1.0
    cand = np.argwhere(free)
    if cand.size == 0:
        return np.full(free.shape, 1e4, dtype=np.float32)
    step = 3.0 / sp  # voxels per 3 mm step along each axis
    lag = int(np.ceil((2.0 * a.bowel_r + 2.5) / 3.0)) + 2  # steps of a walk's own exempt tail

    def mark(v):
        lo = v - ker
        start = np.maximum(lo, 0)
        stop = np.minimum(v + ker + 1, shape)
        ka = start - lo
        kb = ka + (stop - start)
        sub = ball[ka[0]:kb[0], ka[1]:kb[1], ka[2]:kb[2]]
        taken[start[0]:stop[0], start[1]:stop[1], start[2]:stop[2]] |= sub

    for _ in range(int(a.bowel_walks)):
        ok = cand[~taken[cand[:, 0], cand[:, 1], cand[:, 2]]]
        if ok.size == 0:
            break
        pos = ok[rng.integers(len(ok))].astype(np.float64)
        d = rng.standard_normal(3)
        d[2] *= 0.5
        d /= np.linalg.norm(d)
        trail: list[np.ndarray] = []
        for _ in range(int(a.bowel_steps)):
            moved = False
            for attempt in range(10):
                nd = d + rng.standard_normal(3) * (0.35 + 0.25 * attempt)
                nd[2] *= 0.7  # loops lie mostly in axial planes
                nd /= np.linalg.norm(nd)
                q = pos + nd * step
                v = np.rint(q).astype(int)
                if (v < 0).any() or (v >= shape).any() or not free[tuple(v)] or taken[tuple(v)]:
                    continue
                pos, d, moved = q, nd, True
                break
            if not moved:
                break
            vi = np.rint(pos).astype(int)
            centre[tuple(vi)] = True
            trail.append(vi)
            if len(trail) > lag:  # the walk may not come back onto itself, only its recent tail is exempt
                mark(trail[-lag - 1])
        for vi in trail[-lag:]:
            mark(vi)
    if not centre.any():
        return np.full(free.shape, 1e4, dtype=np.float32)
    # 3 mm steps are at most ~1 voxel apart at 3 mm: the tube around them is continuous
    dist = np.full(free.shape, 1e4, dtype=np.float32)
    pad = np.ceil((a.bowel_r * 1.5 + 2.0) / sp).astype(int)
    idx = np.argwhere(centre)
    lo, hi = np.maximum(idx.min(0) - pad, 0), np.minimum(idx.max(0) + pad + 1, shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    dist[box] = ndimage.distance_transform_edt(~centre[box], sampling=sp)
    return dist


def _iliac(a: Anatomy, s: int) -> list:
    end = np.asarray(a.aorta_path[-1], dtype=float)
    return [end, end + (s * 15, 3, -35), end + (s * 35, 8, -80)]


def _pancreas_mask(cv: Canvas, path, radii, n_lob, lobulation):
    samples, rad = spline_path(np.asarray(path), radii)
    rmax = float(rad.max()) * (1 + lobulation * 3)
    g = cv.grid
    sl = g.box(tuple(samples.min(0) - rmax), tuple(samples.max(0) + rmax))
    if sl is None:
        return None, np.zeros((0, 0, 0), bool)
    wx, wy, wz = g.coords(sl)
    pts = np.stack([wx.ravel(), wy.ravel(), wz.ravel()], axis=1)
    # flatten the gland antero-posteriorly: scale y distances up
    scale = np.array([1.0, 1.35, 1.0])
    dist, idx = cKDTree(samples * scale).query(pts * scale, distance_upper_bound=rmax * 1.4 + 2.0)
    dist = dist.reshape(wx.shape)
    r = np.where(np.isfinite(dist), rad[np.minimum(idx, len(rad) - 1)].reshape(wx.shape), 0.0)
    mask = dist <= r * (1.0 + lobulation * n_lob[sl])
    mask = ndimage.binary_opening(mask, iterations=1) | (dist <= r * 0.6)
    return sl, mask
