"""The trunk of the phantom: body outline and wall, spine, back muscles, ribs, iliac crests, lungs.

Each painter takes the :class:`~rstn_core.data.phantom_anatomy.Canvas`, the sampled
:class:`~rstn_core.data.phantom_params.Anatomy` and the :class:`Trunk` frame (coordinates, masks and noise
fields shared by later painters). Painting order and random draws are those of the original single
painter: the phantoms of a seed do not change.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rstn_core.data.phantom_anatomy import Canvas, _paint_sided, smooth_noise
from rstn_core.data.phantom_params import Anatomy


@dataclass
class Trunk:
    """Shared by the painters, all (X, Y, Z) arrays except ``yc`` and ``canal_y`` (mm).

    ``ux, uy, uz``: unwarped body-frame coordinates (the skeleton and body outline stay upright);
    ``body``: inside the skin; ``depth``: mm below the skin; ``fat_t``: subcutaneous fat thickness;
    ``cavity``: inside the abdominal wall; ``n_organ``, ``n_fine``: noise fields (40 and 9 mm);
    ``bone``, ``canal``: the spine (set by :func:`paint_spine`); ``below_dia``: cavity under the diaphragm
    (set by :func:`paint_lungs`).
    """

    ux: np.ndarray
    uy: np.ndarray
    uz: np.ndarray
    body: np.ndarray
    depth: np.ndarray
    fat_t: np.ndarray
    cavity: np.ndarray
    yc: float
    n_organ: np.ndarray
    n_fine: np.ndarray
    canal_y: float = 0.0
    bone: np.ndarray | None = None
    canal: np.ndarray | None = None
    below_dia: np.ndarray | None = None


def _full(cv: Canvas) -> tuple[slice, ...]:
    return tuple(slice(0, n) for n in cv.grid.shape)


def paint_body(cv: Canvas, a: Anatomy, rng: np.random.Generator) -> Trunk:
    """Skin outline (a superellipse, flat back, wider at chest and hips), subcutaneous fat, wall muscle,
    visceral fat and the table; draws the trunk's noise fields. Returns the :class:`Trunk` frame."""
    g = cv.grid
    shape = g.shape
    full = _full(cv)
    ux = np.broadcast_to(g.x[:, None, None], shape)
    uy = np.broadcast_to(g.y[None, :, None], shape)
    uz = np.broadcast_to(g.z[None, None, :], shape)
    n_outline = smooth_noise(rng, shape, g.spacing, 70.0)
    n_organ = smooth_noise(rng, shape, g.spacing, 40.0)
    n_fine = smooth_noise(rng, shape, g.spacing, 9.0)
    zr = (uz - a.z_waist) / 120.0
    half_w = a.body_a * (1.0 + 0.06 * zr**2) * (1 + 0.012 * n_outline)
    b_ant = a.body_b * (1.0 + 0.03 * zr**2) * (1 + 0.02 * n_outline)
    b_post = a.body_b * 0.72
    yc = a.body_yc
    yn = np.where(uy >= yc, (uy - yc) / b_ant, (uy - yc) / b_post)
    ex_y = np.where(uy >= yc, 2.3, 3.6)  # the back is flatter than the belly
    rho = (np.abs(ux / half_w) ** 2.6 + np.abs(yn) ** ex_y) ** (1 / 2.6)  # (X, Y, Z) ~1 on the skin
    body = rho < 1.0
    scale = np.minimum(half_w, b_ant)
    depth = (1.0 - rho) * scale  # approx. depth below the skin, mm
    fat_t = a.fat_sub_mm * (1.0 + 0.35 * np.clip(yn, 0, 1)) * (1 + 0.15 * n_organ)
    cv.paint(full, body, "fat_sub")
    wall = body & (depth > fat_t)
    cv.paint(full, wall, "muscle")
    muscle_t = a.wall_mm * (1.0 + 0.6 * np.clip(yn, 0, 1) * (np.abs(ux) < 45))
    cavity = wall & (depth > fat_t + muscle_t)
    cv.paint(full, cavity, "fat_vis")
    # table: a curved slab under the back
    y_back = yc - b_post.min() if np.ndim(b_post) else yc - b_post
    table = (np.abs(uy - (y_back - 12.0 + 0.0012 * ux**2)) < 3.0) & ~body
    cv.paint(full, table, "table")
    return Trunk(ux, uy, uz, body, depth, fat_t, cavity, yc, n_organ, n_fine)


def paint_spine(cv: Canvas, a: Anatomy, t: Trunk) -> None:
    """Vertebral bodies (cortex + cancellous), discs, canal with cord, posterior elements, in unwarped
    coordinates; in version 2 the lumbar column ends on the sacrum. Sets ``t.bone``, ``t.canal``, ``t.canal_y``."""
    full = _full(cv)
    uz = t.uz
    vb_y, vb_rx, vb_ry = a.vb_y, a.vb_rx, a.vb_ry
    pitch, z_l1 = a.vert_pitch, a.z_L1
    level = np.round((uz - z_l1) / pitch)  # 0 = L1, -1 = L2, +1 = T12 ...
    zin = np.abs(uz - (z_l1 + level * pitch))
    in_body = zin < (pitch - a.disc_mm) / 2
    wx, wy, wz = t.ux, t.uy, t.uz  # spine and back muscles: unwarped
    vb_q = np.sqrt((wx / vb_rx) ** 2 + ((wy - vb_y) / vb_ry) ** 2)
    canal_y = vb_y - vb_ry - 11.0
    vert_ids = {-4: 27, -3: 28, -2: 29, -1: 30, 0: 31, 1: 32, 2: 33}  # L5 .. T11
    lut = np.array([vert_ids.get(v, 0) for v in range(-10, 11)], dtype=np.uint8)
    vert_label = lut[np.clip(level, -10, 10).astype(np.int64) + 10]
    pelvis = a.has_pelvis  # anatomy version 2: the lumbar column ends on the sacrum
    above_sacrum = uz > a.z_sacrum if pelvis else True
    core = (vb_q < 1.0) & above_sacrum
    cv.paint(full, core & ~in_body, "disc")
    ring = ((wx / 14) ** 2 + ((wy - canal_y) / 13) ** 2) < 1.0
    post = (((np.abs(wx) < 3.0) & (wy < canal_y) & (wy > canal_y - 34))  # spinous
            | ((np.abs(wx) < 27) & (np.abs(wy - canal_y) < 2.5) & (zin < pitch * 0.12))  # transverse
            | (ring & ~(((wx / 11) ** 2 + ((wy - canal_y) / 10) ** 2) < 1.0)))  # pedicles/lamina ring
    post &= above_sacrum
    bone = (core | post) & in_body | post & (zin < pitch * 0.42)
    cv.paint(full, bone, "bone_cortex")
    labels_bone = bone.copy()
    cv.paint(full, core & in_body & (vb_q < 1.0 - 1.8 / vb_rx) & (zin < (pitch - a.disc_mm) / 2 - 1.5),
             "bone_cancellous", None)
    canal = (((wx / 9.5) ** 2 + ((wy - canal_y) / 8.0) ** 2) < 1.0) & (uz > a.z_sacrum - 30 if pelvis else True)
    cv.paint(full, canal, "csf", 0)
    cv.paint(full, canal & (((wx / 5) ** 2 + ((wy - canal_y) / 4.5) ** 2) < 1) & (wz > z_l1 - pitch * 0.6),
             "cord", 79)
    cv.labels[labels_bone & ~canal] = vert_label[labels_bone & ~canal]
    t.bone, t.canal, t.canal_y = bone, canal, canal_y


def paint_back_muscles(cv: Canvas, a: Anatomy, t: Trunk) -> None:
    """Paraspinal (autochthon), psoas (growing caudally; capped in version 2) and quadratus lumborum."""
    full = _full(cv)
    g = cv.grid
    wx, wy, wz = g.wx, g.wy, g.wz
    ux, uy, body, depth, fat_t, cavity = t.ux, t.uy, t.body, t.depth, t.fat_t, t.cavity
    bone, canal, canal_y = t.bone, t.canal, t.canal_y
    vb_y, vb_rx, z_l1, pelvis = a.vb_y, a.vb_rx, a.z_L1, a.has_pelvis
    para = (((np.abs(ux) - 26) / 21) ** 2 + ((uy - (canal_y - 20)) / 20) ** 2 < 1.0)
    para &= body & (depth > fat_t)
    _paint_sided(cv, full, para & ~bone & ~canal, "muscle", wx, 86, 87, into=("muscle", "fat_vis"))
    below = np.clip(z_l1 + 20 - wz, 0, None)
    ps_r = 5.0 + 0.14 * below * a.muscle_scale
    if pelvis:  # the psoas stops growing where it joins the iliacus
        ps_r = np.minimum(ps_r, 24.0 * a.muscle_scale)
    psoas = ((np.abs(wx) - (vb_rx + ps_r * 0.8)) ** 2 + ((wy - vb_y + 2) / 1.1) ** 2 < ps_r**2) & (below > 0)
    _paint_sided(cv, full, psoas & cavity, "muscle", wx, 88, 89, into=("fat_vis",))
    ql = (((np.abs(wx) - (vb_rx + 2 * ps_r + 14)) / 16) ** 2 + ((wy - (canal_y - 5)) / 9) ** 2 < 1) & (below > 0)
    if pelvis:  # quadratus lumborum ends on the iliac crest
        ql &= wz > a.z_crest - 10
    cv.paint(full, ql & cavity, "muscle", 0, into=("fat_vis",))


def paint_ribs(cv: Canvas, a: Anatomy, t: Trunk) -> None:
    """Ribs 7-12 descending anteriorly, and the costal cartilage of ribs 7-10."""
    full = _full(cv)
    g = cv.grid
    wx, wy, wz = g.wx, g.wy, g.wz
    depth, fat_t, yc = t.depth, t.fat_t, t.yc
    pitch, z_l1 = a.vert_pitch, a.z_L1
    phi = np.arctan2(wx, -(wy - yc))  # 0 at the back, +-pi at the front; sign = side
    aphi = np.abs(phi)
    rib_track = np.abs(depth - (fat_t + 4.0)) < 4.5
    for n in range(7, 13):
        z_post = z_l1 + (13 - n) * pitch + 10.0
        z_here = z_post - a.rib_drop * (aphi / np.pi) ** 1.3
        end = {7: 2.7, 8: 2.55, 9: 2.35, 10: 2.1, 11: 1.5, 12: 1.0}[n]
        seg = rib_track & (np.abs(wz - z_here) < 5.0) & (aphi > 0.35) & (aphi < end)
        _paint_sided(cv, full, seg, "rib", wx, 91 + n, 103 + n, into=("muscle", "fat_sub", "fat_vis"))
        if n <= 10:
            cart = rib_track & (np.abs(wz - z_here) < 5.0) & (aphi >= end) & (aphi < end + 0.35)
            cv.paint(full, cart, "cartilage", 117, into=("muscle", "fat_sub", "fat_vis"))


def paint_iliac_crests(cv: Canvas, a: Anatomy, t: Trunk) -> None:
    """Version 1's only pelvic bone: the iliac crests at the bottom of the field of view."""
    g = cv.grid
    wx, wy, wz = g.wx, g.wy, g.wz
    vb_y = a.vb_y
    z_crest = a.z_crest
    ilium = t.cavity & (wz < z_crest - 0.002 * (np.abs(wx) - 90) ** 2) & (np.abs(np.abs(wx) - 95) < 10) \
        & (wy < vb_y + 25) & (wy > vb_y - 30)
    _paint_sided(cv, _full(cv), ilium, "bone_cortex", wx, 77, 78)


def paint_lungs(cv: Canvas, a: Anatomy, t: Trunk) -> None:
    """Lung bases above a diaphragm surface that dips posteriorly. Sets ``t.below_dia``."""
    full = _full(cv)
    g = cv.grid
    wx, wy, wz = g.wx, g.wy, g.wz
    cavity, bone, yc = t.cavity, t.bone, t.yc
    dome = a.z_dome
    r_side = ((np.abs(wx) - 60) / 90) ** 2 + ((wy - yc + 10) / 110) ** 2
    z_dia = dome - 5 * (wx < 0) - 70 * r_side - 30 * np.clip(-(wy - yc) / 90, 0, 1)
    lung = cavity & (wz > z_dia) & ~bone & (np.abs(wx) > 25)
    _paint_sided(cv, full, lung, "lung", wx, 11, 14, into=("fat_vis", "muscle"))
    below_dia = cavity & (wz < z_dia - 4)
    t.below_dia = below_dia
