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
from scipy.spatial import cKDTree

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
