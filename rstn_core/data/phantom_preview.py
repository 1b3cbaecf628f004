"""PNG previews of phantoms (and of real CT for comparison): axial at the pancreas, coronal.

Images are shown in radiological convention: patient's right on the image's left, anterior up
(axial) and superior up (coronal), HU window W400/L40, pancreas outlined in red.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def pancreas_slices(labels: np.ndarray, target: int = 7) -> tuple[int, int]:
    """(axial k, coronal j) indices with the largest pancreas area in a (X, Y, Z) label map."""
    m = labels == target
    return int(np.argmax(m.sum(axis=(0, 1)))), int(np.argmax(m.sum(axis=(0, 2))))


def agg_figure(**kwargs):
    """A matplotlib ``Figure`` on its own Agg canvas: no pyplot state, no global backend switch."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def draw_case(ax_axial, ax_coronal, hu: np.ndarray, labels: np.ndarray, spacing, title: str, target: int = 7):
    """Draw one case's axial and coronal views on two matplotlib axes. ``hu``/``labels``: (X, Y, Z) RAS."""
    k, j = pancreas_slices(labels, target)
    sx, sy, sz = (float(s) for s in spacing)
    win = dict(cmap="gray", vmin=-160, vmax=240, origin="lower", interpolation="nearest")
    m = labels == target
    ax_axial.imshow(hu[::-1, :, k].T, aspect=sy / sx, **win)
    ax_axial.contour(m[::-1, :, k].T, [0.5], colors="r", linewidths=0.7)
    ax_axial.set_title(f"{title}\naxial k={k}", fontsize=8)
    ax_coronal.imshow(hu[::-1, j, :].T, aspect=sz / sx, **win)
    ax_coronal.contour(m[::-1, j, :].T, [0.5], colors="r", linewidths=0.7)
    ax_coronal.set_title(f"coronal j={j}", fontsize=8)
    for a in (ax_axial, ax_coronal):
        a.set_xticks([])
        a.set_yticks([])


def write_previews(out: Path, rows: list[dict]) -> list[Path]:
    """Write ``out/preview/<case_id>.png`` for NIfTI cases of a phantom dataset; returns the paths."""
    import nibabel as nib

    paths = []
    (out / "preview").mkdir(exist_ok=True)
    for row in rows:
        lab_img = nib.load(out / row["label"])
        labels = np.asarray(lab_img.dataobj)
        image = out / row["image"]
        hu = np.asarray(nib.load(image).dataobj) if image.is_file() else np.zeros(labels.shape)
        fig = agg_figure(figsize=(6, 3))
        axes = fig.subplots(1, 2)
        draw_case(axes[0], axes[1], hu, labels, lab_img.header.get_zooms(), row["case_id"])
        fig.tight_layout()
        path = out / "preview" / f"{row['case_id']}.png"
        fig.savefig(path, dpi=80)
        paths.append(path)
    return paths


def compare_with_real(out_png: str | Path, real_dir: str | Path, seeds=(0, 3, 5)) -> Path:
    """Figure: the real example (``real_dir/ct.nii.gz`` + ``labels.nii.gz``, RAS) next to phantoms.

    Top row axial at the largest pancreas slice, bottom row coronal through the pancreas; one column
    per case (real first, then ``generate_phantom(seed)`` for each seed). Returns the PNG path.
    """
    import nibabel as nib

    from rstn_core.data.phantom import generate_phantom

    real_dir = Path(real_dir)
    ct, lab = nib.load(real_dir / "ct.nii.gz"), nib.load(real_dir / "labels.nii.gz")
    cases = [(np.asarray(ct.dataobj), np.asarray(lab.dataobj), ct.header.get_zooms()[:3],
              "real CT (TotalSegmentator example)")]
    for s in seeds:
        ph = generate_phantom(s)
        cases.append((ph.hu, ph.labels, np.diag(ph.affine)[:3], f"phantom seed {s}"))
    fig = agg_figure(figsize=(2.6 * len(cases), 5.4))
    axes = fig.subplots(2, len(cases))
    for col, (hu, labels, spacing, title) in enumerate(cases):
        draw_case(axes[0, col], axes[1, col], hu, labels, spacing, title)
    fig.tight_layout()
    out_png = Path(out_png)
    fig.savefig(out_png, dpi=90)
    return out_png


def phantom_stats(seeds) -> dict:
    """Pancreas statistics over ``seeds`` at the default grid: voxels, max axial fraction, median HU, time (s)."""
    import time

    from rstn_core.data.phantom import generate_phantom

    vox, frac, med, secs = [], [], [], []
    for s in seeds:
        t0 = time.perf_counter()
        ph = generate_phantom(s)
        secs.append(time.perf_counter() - t0)
        m = ph.labels == 7
        vox.append(int(m.sum()))
        frac.append(float((m.sum(axis=(0, 1)) / (m.shape[0] * m.shape[1])).max()))
        med.append(float(np.median(ph.hu[m])))
    return {"voxels": vox, "max_axial_fraction": frac, "median_hu": med, "seconds": secs}
