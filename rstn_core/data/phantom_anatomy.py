"""Shape primitives and the anatomy painter of the synthetic abdominal CT phantom.

Everything is built in a *body frame* in millimetres: ``x`` towards the patient's Right, ``y``
Anterior, ``z`` Superior (RAS), origin on the body midline at the level of the pancreatic neck.
Canonical array axes ``(i, j, k)`` follow the same directions, so index ``i`` grows towards the
patient's right (as in the real TotalSegmentator example, whose liver sits at high ``i``).

Organs are painted into two arrays of the volume's shape ``(X, Y, Z)``: a *tissue* class (which
decides the HU, see :data:`TISSUE_HU`) and a *label* id (TotalSegmentator "total" ids, see
:data:`rstn_core.data.phantom.PHANTOM_LABELS`). Later paints override earlier ones.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from rstn_core.data.phantom_params import Anatomy

# tissue classes -> (mean HU, texture std HU). Portal-venous phase values.
TISSUES: dict[str, tuple[float, float]] = {
    "air": (-1000.0, 0.0),
    "table": (60.0, 0.0),
    "fat_sub": (-105.0, 6.0),
    "fat_vis": (-92.0, 8.0),
    "muscle": (52.0, 4.0),
    "liver": (108.0, 5.0),
    "hepatic_vessel": (165.0, 0.0),
    "spleen": (118.0, 4.0),
    "kidney_cortex": (180.0, 6.0),
    "kidney_medulla": (135.0, 6.0),
    "urine": (12.0, 2.0),
    "aorta": (205.0, 3.0),
    "ivc": (150.0, 5.0),
    "portal": (175.0, 4.0),
    "artery": (200.0, 3.0),
    "bone_cortex": (850.0, 60.0),
    "bone_cancellous": (230.0, 30.0),
    "rib": (550.0, 60.0),
    "cartilage": (140.0, 15.0),
    "disc": (85.0, 6.0),
    "csf": (15.0, 2.0),
    "cord": (35.0, 2.0),
    "pancreas": (112.0, 8.0),
    "pancreas_fat": (-40.0, 15.0),
    "bowel_wall": (100.0, 6.0),
    "fluid": (18.0, 4.0),
    "contrast": (300.0, 30.0),
    "stool": (-40.0, 90.0),
    "bile": (8.0, 2.0),
    "lung": (-860.0, 20.0),
}
TISSUE_IDS: dict[str, int] = {name: i for i, name in enumerate(TISSUES)}


class Grid:
    """Voxel grid of the phantom with warped body-frame coordinates.

    ``x, y, z``: 1-D voxel-centre coordinates in mm (body frame) along array axes 0, 1, 2.
    ``wx, wy, wz``: (X, Y, Z) float32 coordinates after the smooth random displacement field:
    organs are implicit shapes evaluated at these warped coordinates, so every seed bends them.
    """

    def __init__(self, shape: tuple[int, int, int], spacing: tuple[float, float, float],
                 z_top: float, rng: np.random.Generator, warp_mm: float) -> None:
        self.shape = shape
        self.spacing = np.asarray(spacing, dtype=np.float64)
        nx, ny, nz = shape
        self.x = ((np.arange(nx) - (nx - 1) / 2.0) * spacing[0]).astype(np.float32)
        self.y = ((np.arange(ny) - (ny - 1) / 2.0) * spacing[1] + 10.0).astype(np.float32)
        self.z = (z_top - (nz - 1 - np.arange(nz)) * spacing[2]).astype(np.float32)
        disp = [smooth_noise(rng, shape, spacing, 90.0) * warp_mm for _ in range(3)]
        self.wx = self.x[:, None, None] + disp[0]
        self.wy = self.y[None, :, None] + disp[1]
        self.wz = self.z[None, None, :] + disp[2]

    def box(self, lo: tuple[float, float, float], hi: tuple[float, float, float]) -> tuple[slice, ...] | None:
        """Index slices covering the mm box ``[lo, hi]`` (body frame), or ``None`` when outside."""
        out = []
        for axis, coords in enumerate((self.x, self.y, self.z)):
            a = int(np.searchsorted(coords, lo[axis] - self.spacing[axis]))
            b = int(np.searchsorted(coords, hi[axis] + self.spacing[axis]))
            if b <= a:
                return None
            out.append(slice(a, b))
        return tuple(out)

    def coords(self, sl: tuple[slice, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Warped coordinates (mm) inside a box, each of the box's shape."""
        return self.wx[sl], self.wy[sl], self.wz[sl]


def smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], spacing, scale_mm: float) -> np.ndarray:
    """Low-frequency random field of ``shape``, about unit std, correlation length ``scale_mm``.

    Built on a coarse lattice (about one node per ``scale_mm``) and interpolated with separable
    cubic B-spline weights (three small matrix products), so it costs a few ms per million voxels.
    Returns float32.
    """
    coarse_shape = [max(4, int(np.ceil(n * s / scale_mm)) + 3) for n, s in zip(shape, spacing)]
    field = rng.standard_normal(coarse_shape).astype(np.float32)
    for axis, (n, c) in enumerate(zip(shape, coarse_shape)):
        pos = 1.0 + np.arange(n) * (c - 3.0) / max(n - 1, 1)  # positions on the lattice
        d = np.abs(pos[:, None] - np.arange(c)[None, :])
        w = np.where(d < 1, 2 / 3 - d**2 + d**3 / 2, np.where(d < 2, (2 - d) ** 3 / 6, 0.0)).astype(np.float32)
        field = np.moveaxis(np.tensordot(w, np.moveaxis(field, axis, 0), axes=(1, 0)), 0, axis)
    field = field - field.mean()
    std = float(field.std()) or 1.0
    return (field / std).astype(np.float32)


def spline_path(points: np.ndarray, radii: np.ndarray, step_mm: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Densely sample a smooth curve through control ``points`` (N, 3) mm, radii interpolated.

    Catmull-Rom interpolation; returns ``(samples (M, 3), radii (M,))`` spaced about ``step_mm``.
    """
    p = np.asarray(points, dtype=np.float64)
    r = np.asarray(radii, dtype=np.float64)
    ext = np.vstack([2 * p[0] - p[1], p, 2 * p[-1] - p[-2]])
    out_p, out_r = [], []
    for i in range(len(p) - 1):
        p0, p1, p2, p3 = ext[i], ext[i + 1], ext[i + 2], ext[i + 3]
        n = max(2, int(np.linalg.norm(p2 - p1) / step_mm) + 1)
        t = np.linspace(0.0, 1.0, n, endpoint=i == len(p) - 2)[:, None]
        seg = 0.5 * ((2 * p1) + (-p0 + p2) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2
                     + (-p0 + 3 * p1 - 3 * p2 + p3) * t**3)
        out_p.append(seg)
        out_r.append(r[i] + (r[i + 1] - r[i]) * t[:, 0])
    return np.vstack(out_p), np.concatenate(out_r)


class Canvas:
    """The tissue and label arrays being painted, with the grid they live on.

    ``tissue``: (X, Y, Z) uint8 tissue ids (:data:`TISSUE_IDS`); ``labels``: (X, Y, Z) uint8 label ids.
    """

    def __init__(self, grid: Grid) -> None:
        self.grid = grid
        self.tissue = np.zeros(grid.shape, dtype=np.uint8)
        self.labels = np.zeros(grid.shape, dtype=np.uint8)

    def paint(self, sl, mask: np.ndarray, tissue: str, label: int | None = 0,
              into: tuple[str, ...] | None = None) -> None:
        """Set ``tissue`` (and ``label`` unless ``None``) where ``mask`` is true inside box ``sl``.

        ``into``: when given, only voxels whose current tissue is one of these names change.
        """
        if sl is None:
            return
        m = mask
        if into is not None:
            allowed = np.isin(self.tissue[sl], [TISSUE_IDS[t] for t in into])
            m = m & allowed
        self.tissue[sl][m] = TISSUE_IDS[tissue]
        if label is not None:
            self.labels[sl][m] = label

    def tube(self, points, radii, tissue: str, label: int | None = 0, into=None,
             wall: tuple[str, float] | None = None, noise: np.ndarray | None = None,
             noise_amp: float = 0.0) -> tuple[tuple[slice, ...] | None, np.ndarray]:
        """Paint a tube of varying radius along a spline through ``points`` (N, 3) mm.

        ``wall``: optional ``(tissue, thickness_mm)`` painted as the outer shell (same label).
        ``noise``: optional full-volume field; radius is scaled by ``1 + noise_amp * noise``.
        Returns the box and the boolean mask (inside the box) of the whole tube.
        """
        samples, rad = spline_path(np.asarray(points), np.asarray(radii))
        rmax = float(rad.max()) * (1 + abs(noise_amp) * 3)
        sl = self.grid.box(tuple(samples.min(0) - rmax), tuple(samples.max(0) + rmax))
        if sl is None:
            return None, np.zeros((0, 0, 0), bool)
        wx, wy, wz = self.grid.coords(sl)
        pts = np.stack([wx.ravel(), wy.ravel(), wz.ravel()], axis=1)
        dist, idx = cKDTree(samples).query(pts, distance_upper_bound=rmax + 2.0)
        dist = dist.reshape(wx.shape)
        r = np.where(np.isfinite(dist), rad[np.minimum(idx, len(rad) - 1)].reshape(wx.shape), 0.0)
        if noise is not None:
            r = r * (1.0 + noise_amp * noise[sl])
        mask = dist <= r
        if wall is not None:
            self.paint(sl, mask, wall[0], label, into)
            self.paint(sl, dist <= r - wall[1], tissue, label, into)
        else:
            self.paint(sl, mask, tissue, label, into)
        return sl, mask


def ellipsoid(grid: Grid, center, semi, rot_z_deg: float = 0.0, rot_x_deg: float = 0.0):
    """Box and normalised radius ``q`` (q < 1 inside) of a rotated ellipsoid, mm body frame."""
    c = np.asarray(center, dtype=np.float32)
    s = np.asarray(semi, dtype=np.float32)
    reach = float(s.max()) * 1.15
    sl = grid.box(tuple(c - reach), tuple(c + reach))
    if sl is None:
        return None, None
    wx, wy, wz = grid.coords(sl)
    dx, dy, dz = wx - c[0], wy - c[1], wz - c[2]
    a, b = np.deg2rad(rot_z_deg), np.deg2rad(rot_x_deg)
    u = dx * np.cos(a) + dy * np.sin(a)
    v = -dx * np.sin(a) + dy * np.cos(a)
    v, w = v * np.cos(b) + dz * np.sin(b), -v * np.sin(b) + dz * np.cos(b)
    q = np.sqrt((u / s[0]) ** 2 + (v / s[1]) ** 2 + (w / s[2]) ** 2)
    return sl, q


# ----------------------------------------------------------------------------------------------
# The abdomen
# ----------------------------------------------------------------------------------------------
def _side(x: np.ndarray, left: int, right: int) -> np.ndarray:
    """Label per voxel from the sign of x (x > 0 is the patient's right)."""
    return np.where(x > 0, right, left).astype(np.uint8)


def _paint_sided(cv: Canvas, sl, mask, tissue, x, left, right, into=None):
    if sl is None:
        return
    cv.paint(sl, mask & (x <= 0), tissue, left, into)
    cv.paint(sl, mask & (x > 0), tissue, right, into)


def paint_abdomen(cv: Canvas, a: Anatomy, rng: np.random.Generator) -> dict:
    """Paint a whole abdomen from the sampled anatomy ``a`` (mm, body frame).

    Returns a dict of derived landmarks (pancreas centre line, cavity mask) used by the caller.
    """
    g = cv.grid
    shape = g.shape
    full = tuple(slice(0, n) for n in shape)
    wx, wy, wz = g.wx, g.wy, g.wz
    # body outline, spine and back muscles use unwarped coordinates: the trunk stays upright and symmetric
    ux = np.broadcast_to(g.x[:, None, None], shape)
    uy = np.broadcast_to(g.y[None, :, None], shape)
    uz = np.broadcast_to(g.z[None, None, :], shape)
    n_outline = smooth_noise(rng, shape, g.spacing, 70.0)
    n_organ = smooth_noise(rng, shape, g.spacing, 40.0)
    n_fine = smooth_noise(rng, shape, g.spacing, 9.0)

    # --- body outline: rounded rectangle (superellipse), flat back, wider at chest and hips ----
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

    # --- spine: vertebral bodies (cortex + cancellous), discs, canal, posterior elements --------
    vb_y, vb_rx, vb_ry = a.vb_y, a.vb_rx, a.vb_ry
    pitch, z_l1 = a.vert_pitch, a.z_L1
    level = np.round((uz - z_l1) / pitch)  # 0 = L1, -1 = L2, +1 = T12 ...
    zin = np.abs(uz - (z_l1 + level * pitch))
    in_body = zin < (pitch - a.disc_mm) / 2
    wx, wy, wz = ux, uy, uz  # spine and back muscles: unwarped
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
    wx, wy, wz = g.wx, g.wy, g.wz

    # --- posterior and psoas muscles ---------------------------------------------------------
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

    # --- ribs 7..12 and costal cartilage ----------------------------------------------------
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

    # --- the pelvis (version 2), or only the iliac crests at the bottom (version 1) ---------------
    if pelvis:
        from rstn_core.data.phantom_pelvis import paint_hips, paint_pelvic_bones, paint_pelvic_organs

        paint_pelvic_bones(cv, a, body & (depth > fat_t))
        paint_hips(cv, a)
        paint_pelvic_organs(cv, a)
    else:
        z_crest = a.z_crest
        ilium = cavity & (wz < z_crest - 0.002 * (np.abs(wx) - 90) ** 2) & (np.abs(np.abs(wx) - 95) < 10) \
            & (wy < vb_y + 25) & (wy > vb_y - 30)
        _paint_sided(cv, full, ilium, "bone_cortex", wx, 77, 78)

    # --- lungs above the diaphragm (posterior recesses go deep) --------------------------------
    dome = a.z_dome
    r_side = ((np.abs(wx) - 60) / 90) ** 2 + ((wy - yc + 10) / 110) ** 2
    z_dia = dome - 5 * (wx < 0) - 70 * r_side - 30 * np.clip(-(wy - yc) / 90, 0, 1)
    lung = cavity & (wz > z_dia) & ~bone & (np.abs(wx) > 25)
    _paint_sided(cv, full, lung, "lung", wx, 11, 14, into=("fat_vis", "muscle"))
    below_dia = cavity & (wz < z_dia - 4)

    # --- liver with hepatic vessels ------------------------------------------------------------
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

    # --- spleen: a crescent posterolateral left --------------------------------------------
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

    # --- kidneys: perirenal fat, cortex, medulla, sinus fat and pelvis ----------------------
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

    # --- gallbladder ---------------------------------------------------------------------------
    if a.gallbladder:
        sl, qg = ellipsoid(g, a.gb_c, a.gb_semi, rot_z_deg=20, rot_x_deg=-35)
        if sl is not None:
            cv.paint(sl, qg < 1.0, "bile", 4, into=("liver", "fat_vis", "hepatic_vessel"))

    # --- stomach: wall, air-fluid level --------------------------------------------------------
    st_sl, st = cv.tube(a.stomach_path, a.stomach_r, "fluid", 6, into=("fat_vis",),
                        wall=("bowel_wall", 4.5), noise=n_organ, noise_amp=0.08)
    if st_sl is not None:
        lumen = (cv.tissue[st_sl] == TISSUE_IDS["fluid"]) & (cv.labels[st_sl] == 6)
        if a.oral_contrast:
            cv.paint(st_sl, lumen, "contrast", 6)
        air_y = a.stomach_air_level
        _, sy, _ = g.coords(st_sl)
        cv.paint(st_sl, lumen & (sy > air_y), "air", 6)

    # --- colon: ascending, transverse, descending; stool with air anteriorly -----------------
    co_sl, co = cv.tube(a.colon_path, a.colon_r, "stool", 20, into=("fat_vis",),
                        wall=("bowel_wall", 3.0), noise=n_organ, noise_amp=0.12)
    if co_sl is not None:
        lumen = (cv.tissue[co_sl] == TISSUE_IDS["stool"]) & (cv.labels[co_sl] == 20)
        bub = (n_fine[co_sl] > 0.9) | (n_organ[co_sl] > 1.1)
        cv.paint(co_sl, lumen & bub, "air", 20)

    # --- duodenum (C-loop around the pancreatic head) ------------------------------------------
    cv.tube(a.duodenum_path, a.duodenum_r, "fluid", 19, into=("fat_vis",),
            wall=("bowel_wall", 3.0), noise=n_organ, noise_amp=0.06)

    # --- small bowel: continuous tubular loops (self-avoiding random walks) in the free space ----
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

    # --- pancreas: lobulated tube, fat clefts -------------------------------------------------
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

    # --- vessels (painted last: they pass through everything) ----------------------------------
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
    return {"cavity": cavity}


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
