"""Reading DICOM CT series (SPEC §1.1); writing them is :mod:`rstn_core.dicom_write`.

Reading: every slice of one series under a folder (searched recursively, as TCIA nests
``PANCREAS_0001/<study>/<series>/*.dcm``), ordered by ImagePositionPatient projected on the slice
normal (never by InstanceNumber), with RescaleSlope/RescaleIntercept applied explicitly.

Array frame of a series (the "input frame" for DICOM): ``(i, j, k)`` = (column, row, slice), i.e.
``data[i, j, k] = pixel_array_of_slice_k[j, i]``. The affine maps ``(i, j, k)`` to RAS mm
(DICOM patient coordinates are LPS; the first two world axes are negated).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rstn_core.errors import DataError

logger = logging.getLogger(__name__)

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"

# Positions closer than this (mm) along the normal are duplicates; spacings must agree within this
# fraction of the median step.
_DUPLICATE_MM = 1e-3
_SPACING_RTOL = 0.01
# Slices without a SeriesInstanceUID are grouped by geometry and these attributes (never interleaved).
_SPLIT_BY = ("StudyInstanceUID", "FrameOfReferenceUID", "SeriesNumber", "SeriesDescription", "ImageType",
             "ConvolutionKernel", "SliceThickness", "RescaleIntercept", "RescaleSlope", "KVP")
# A slice stack whose positions leave the slice normal by more than this angle (degrees) is tilted.
_TILT_DEG = 0.5


@dataclass(frozen=True)
class _SliceHeader:
    path: Path
    series_uid: str
    rows: int
    columns: int
    orientation: np.ndarray  # (6,) ImageOrientationPatient
    position: np.ndarray  # (3,) ImagePositionPatient, LPS mm
    pixel_spacing: np.ndarray  # (2,) (between rows, between columns) mm
    acquisition: tuple = ()  # attributes that tell apart series without a SeriesInstanceUID

    @property
    def series_key(self) -> tuple:
        """The series this slice belongs to: its UID, or (no UID) its geometry and acquisition attributes."""
        if self.series_uid:
            return (self.series_uid,)
        geometry = (self.rows, self.columns, tuple(np.round(self.orientation, 4)),
                    tuple(np.round(self.pixel_spacing, 4)))
        return ("", geometry, self.acquisition)

    @property
    def series_name(self) -> str:
        if self.series_uid:
            return self.series_uid
        number = dict(self.acquisition).get("SeriesNumber", "")
        return (f"(no SeriesInstanceUID; SeriesNumber {number or '?'}, {self.rows}x{self.columns}, "
                f"first file {self.path.name})")


def _short(paths: list[Path], limit: int = 6) -> str:
    names = [p.name for p in paths[:limit]]
    more = f" (+{len(paths) - limit} more)" if len(paths) > limit else ""
    return ", ".join(names) + more


def _read_header(path: Path) -> _SliceHeader | None:
    """Header of one CT image slice, or None when ``path`` is not a usable DICOM image."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except (InvalidDicomError, OSError, EOFError, ValueError, TypeError, KeyError):
        return None
    needed = ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "Rows", "Columns")
    if not all(name in ds for name in needed):
        return None
    modality = str(ds.get("Modality", "CT"))
    if modality != "CT":
        logger.debug("skipping %s: modality %s", path, modality)
        return None
    acquisition = tuple((name, str(ds.get(name, ""))) for name in _SPLIT_BY)
    return _SliceHeader(
        acquisition=acquisition,
        path=path,
        series_uid=str(ds.get("SeriesInstanceUID", "")),
        rows=int(ds.Rows),
        columns=int(ds.Columns),
        orientation=np.asarray([float(v) for v in ds.ImageOrientationPatient], dtype=np.float64),
        position=np.asarray([float(v) for v in ds.ImagePositionPatient], dtype=np.float64),
        pixel_spacing=np.asarray([float(v) for v in ds.PixelSpacing], dtype=np.float64),
    )


def list_series(folder: str | Path) -> dict[str, list[Path]]:
    """Series name (its SeriesInstanceUID, or a description when it has none) -> files of the CT image
    slices found under ``folder`` (recursively)."""
    folder = Path(folder)
    series: dict[str, list[Path]] = defaultdict(list)
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        header = _read_header(path)
        if header is not None:
            series[header.series_name if header.series_uid else str(header.series_key)].append(path)
    return dict(series)


def _choose_series(folder: Path, headers: list[_SliceHeader], series_uid: str | None) -> list[_SliceHeader]:
    groups: dict[tuple, list[_SliceHeader]] = defaultdict(list)
    for h in headers:
        groups[h.series_key].append(h)
    if series_uid is not None:
        chosen = [h for h in headers if h.series_uid == series_uid]
        if not chosen:
            raise DataError(f"{folder}: no CT series with SeriesInstanceUID {series_uid}; found "
                            f"{sorted({g[0].series_name for g in groups.values()})}")
        return chosen
    unnamed = [g for key, g in groups.items() if not key[0]]
    if unnamed and len(groups) > 1:
        logger.warning("%s: %d slice(s) have no SeriesInstanceUID; told %d series apart by geometry and "
                       "acquisition attributes", folder, sum(len(g) for g in unnamed), len(groups))
    if len(groups) == 1:
        return next(iter(groups.values()))
    sizes = sorted(((len(v), v[0].series_name, k) for k, v in groups.items()), key=lambda t: t[0], reverse=True)
    if sizes[0][0] == sizes[1][0]:
        listing = ", ".join(f"{name} ({n} slices)" for n, name, _ in sizes)
        raise DataError(f"{folder}: several CT series of the same size, cannot choose; pass series_uid. "
                        f"Found: {listing}")
    logger.warning("%s holds %d CT series; using the largest, %s (%d slices)", folder, len(groups),
                   sizes[0][1], sizes[0][0])
    return groups[sizes[0][2]]


def _check_tilt(folder: Path, ordered: list[_SliceHeader], normal: np.ndarray) -> None:
    """Refuse a stack whose slice positions do not follow the slice normal (gantry tilt: a sheared grid)."""
    travel = ordered[-1].position - ordered[0].position
    length = float(np.linalg.norm(travel))
    if length == 0:
        return
    angle = float(np.degrees(np.arccos(min(1.0, abs(float(travel @ normal)) / length))))
    if angle > _TILT_DEG:
        raise DataError(f"{folder}: the slices are stacked at {angle:.1f} degrees from their normal (gantry tilt): "
                        "the volume is sheared and cannot be read as a regular grid; resample the series to "
                        "an untilted grid first (e.g. 3D Slicer's DICOM import with 'Acquisition geometry "
                        "regularization')")


def _order_and_check(folder: Path, headers: list[_SliceHeader]) -> tuple[list[_SliceHeader], float, np.ndarray]:
    """Sort slices along the normal; refuse mixed sizes, duplicates, gaps, uneven spacing.

    Returns (ordered headers, step along the normal in mm, unit normal (3,) LPS).
    """
    sizes = defaultdict(list)
    for h in headers:
        sizes[(h.rows, h.columns)].append(h.path)
    if len(sizes) > 1:
        detail = "; ".join(f"{r}x{c}: {_short(p)}" for (r, c), p in sorted(sizes.items()))
        raise DataError(f"{folder}: the series mixes slice sizes (rows x columns): {detail}")
    first = headers[0]
    for h in headers[1:]:
        if not np.allclose(h.orientation, first.orientation, atol=1e-4):
            raise DataError(f"{folder}: slices {first.path.name} and {h.path.name} have different "
                            f"ImageOrientationPatient {first.orientation.tolist()} vs {h.orientation.tolist()}")
        if not np.allclose(h.pixel_spacing, first.pixel_spacing, atol=1e-4):
            raise DataError(f"{folder}: slices {first.path.name} and {h.path.name} have different PixelSpacing "
                            f"{first.pixel_spacing.tolist()} vs {h.pixel_spacing.tolist()}")
    if len(headers) < 2:
        raise DataError(f"{folder}: the CT series has a single slice ({first.path.name}); a 3D volume is needed")
    row_cos, col_cos = first.orientation[:3], first.orientation[3:]
    normal = np.cross(row_cos, col_cos)
    normal /= np.linalg.norm(normal)
    distances = np.asarray([float(h.position @ normal) for h in headers])
    order = np.argsort(distances, kind="stable")
    ordered = [headers[i] for i in order]
    d = distances[order]
    steps = np.diff(d)
    dup = np.flatnonzero(steps < _DUPLICATE_MM)
    if dup.size:
        pairs = "; ".join(f"{ordered[i].path.name} and {ordered[i + 1].path.name} at {d[i]:.3f} mm" for i in dup[:5])
        raise DataError(f"{folder}: duplicated slice positions along the normal: {pairs}")
    step = float(np.median(steps))
    bad = np.flatnonzero(np.abs(steps - step) > _SPACING_RTOL * step)
    if bad.size:
        details = []
        for i in bad[:5]:
            ratio = steps[i] / step
            kind = f"gap of {ratio:.1f} slices (missing slice?)" if ratio > 1.5 else "uneven spacing"
            details.append(f"{kind} between {ordered[i].path.name} ({d[i]:.3f} mm) and "
                           f"{ordered[i + 1].path.name} ({d[i + 1]:.3f} mm), step {steps[i]:.3f} mm")
        raise DataError(f"{folder}: slices are not evenly spaced (usual step {step:.3f} mm): " + "; ".join(details))
    _check_tilt(folder, ordered, normal)
    return ordered, step, normal


def read_dicom_series(folder: str | Path, series_uid: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Read one CT series under ``folder`` (recursively).

    Returns ``(hu (I, J, K) float32, affine (4, 4) float64 voxel -> RAS mm)`` in the series' own
    array frame (see module docstring); canonicalisation happens in :mod:`rstn_core.io`.
    When several series are present, ``series_uid`` picks one; otherwise the largest is used
    (a tie is refused).
    """
    import pydicom

    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"DICOM folder {folder} does not exist")
    headers = [h for p in sorted(q for q in folder.rglob("*") if q.is_file()) if (h := _read_header(p))]
    if not headers:
        raise DataError(f"{folder}: no CT image slices found (no readable DICOM files with modality CT and "
                        "image position/orientation)")
    headers = _choose_series(folder, headers, series_uid)
    ordered, step, normal = _order_and_check(folder, headers)
    first = ordered[0]
    from rstn_core.limits import check_voxels

    check_voxels((first.columns, first.rows, len(ordered)), str(folder),
                 hint="; set RSTN_MAX_VOXELS to allow larger images")
    volume = np.empty((first.columns, first.rows, len(ordered)), dtype=np.float32)
    for k, h in enumerate(ordered):
        try:
            ds = pydicom.dcmread(h.path)
            stored = ds.pixel_array
        except Exception as exc:  # pydicom raises many types for damaged/compressed pixel data
            raise DataError(f"{h.path}: cannot decode the pixel data ({type(exc).__name__}: {exc})") from exc
        if stored.shape != (h.rows, h.columns):
            raise DataError(f"{h.path}: pixel data of shape {stored.shape}, expected {(h.rows, h.columns)}")
        slope = float(ds.get("RescaleSlope", 1.0) or 1.0)
        intercept = float(ds.get("RescaleIntercept", 0.0) or 0.0)
        volume[:, :, k] = (stored.astype(np.float32) * np.float32(slope) + np.float32(intercept)).T
    row_cos, col_cos = first.orientation[:3], first.orientation[3:]
    spacing_between_rows, spacing_between_cols = first.pixel_spacing
    affine_lps = np.eye(4)
    affine_lps[:3, 0] = row_cos * spacing_between_cols  # i: along a row (column index)
    affine_lps[:3, 1] = col_cos * spacing_between_rows  # j: down a column (row index)
    if len(ordered) > 1:
        affine_lps[:3, 2] = (ordered[-1].position - first.position) / (len(ordered) - 1)
    else:
        affine_lps[:3, 2] = normal * step
    affine_lps[:3, 3] = first.position
    logger.info("read DICOM series %s: %d slices of %dx%d from %s", first.series_name, len(ordered),
                first.rows, first.columns, folder)
    return volume, LPS_TO_RAS @ affine_lps


def __getattr__(name: str):
    """``write_dicom_series`` lives in :mod:`rstn_core.dicom_write`; the old import path still finds it."""
    if name == "write_dicom_series":
        from rstn_core.dicom_write import write_dicom_series

        return write_dicom_series
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
