"""Writing a CT volume as a DICOM series (tests, the phantom writer); reading is :mod:`rstn_core.dicom`."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from rstn_core.dicom import CT_IMAGE_STORAGE, LPS_TO_RAS
from rstn_core.errors import DataError

logger = logging.getLogger(__name__)


def write_dicom_series(
    hu: np.ndarray,
    affine: np.ndarray,
    folder: str | Path,
    intercept: float = -1024.0,
    slope: float = 1.0,
    series_uid: str | None = None,
    patient_id: str = "ANONYMOUS",
    rng: np.random.Generator | None = None,
) -> list[Path]:
    """Write a (X, Y, Z) HU volume with its voxel -> RAS ``affine`` as a CT series, one file per k slice.

    Stored values are ``round((hu - intercept) / slope)`` as uint16 (or int16 when negative);
    Explicit VR Little Endian, SOP class CT Image Storage. ``rng`` shuffles the file names and
    InstanceNumbers (to test that readers order by position). Returns the written paths in k order.
    The volume's third axis must be along the slice normal of the first two (no shear).
    """
    from pydicom.uid import generate_uid

    hu = np.asarray(hu)
    if hu.ndim != 3:
        raise DataError(f"write_dicom_series needs a 3D (X, Y, Z) volume, got shape {hu.shape}")
    if slope == 0:
        raise DataError("write_dicom_series: slope must be non-zero")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    a = LPS_TO_RAS @ np.asarray(affine, dtype=np.float64)
    sx, sy = np.linalg.norm(a[:3, 0]), np.linalg.norm(a[:3, 1])
    row_cos, col_cos = a[:3, 0] / sx, a[:3, 1] / sy
    normal = np.cross(row_cos, col_cos)
    if abs(abs(float(normal @ a[:3, 2])) - np.linalg.norm(a[:3, 2])) > 1e-4 * np.linalg.norm(a[:3, 2]) or \
            float(normal @ a[:3, 2]) <= 0:
        raise DataError(f"write_dicom_series: the third axis of the affine must follow the slice normal "
                        f"{normal.tolist()}, got {a[:3, 2].tolist()} (LPS)")
    stored = np.rint((hu.astype(np.float64) - intercept) / slope)
    signed = stored.min() < 0
    dtype = np.int16 if signed else np.uint16
    info = np.iinfo(dtype)
    if stored.min() < info.min or stored.max() > info.max:
        raise DataError(f"write_dicom_series: stored values {stored.min()}..{stored.max()} do not fit {dtype.__name__}"
                        f" with intercept {intercept} and slope {slope}")
    stored = stored.astype(dtype)
    nz = hu.shape[2]
    uids = {"series": series_uid or generate_uid(), "study": generate_uid(), "frame": generate_uid()}
    numbers = rng.permutation(nz) if rng is not None else np.arange(nz)
    paths = []
    for k in range(nz):
        ds = _slice_dataset(stored[:, :, k], a, k, int(numbers[k]) + 1, uids, patient_id, intercept, slope)
        path = folder / f"slice_{int(numbers[k]):05d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    logger.info("wrote DICOM series %s: %d slices to %s", uids["series"], nz, folder)
    return paths


def _slice_dataset(stored: np.ndarray, a: np.ndarray, k: int, number: int, uids: dict[str, str], patient_id: str,
                   intercept: float, slope: float):
    """The pydicom dataset of slice ``k``: ``stored`` (X, Y) int16/uint16 values, ``a`` the voxel -> LPS affine."""
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    sx, sy = np.linalg.norm(a[:3, 0]), np.linalg.norm(a[:3, 1])
    row_cos, col_cos = a[:3, 0] / sx, a[:3, 1] / sy
    normal = np.cross(row_cos, col_cos)
    sop_uid = generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CT_IMAGE_STORAGE
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CT_IMAGE_STORAGE
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = uids["study"]
    ds.SeriesInstanceUID = uids["series"]
    ds.FrameOfReferenceUID = uids["frame"]
    ds.Modality = "CT"
    ds.PatientID = patient_id
    ds.PatientName = patient_id
    ds.SeriesNumber = 1
    ds.InstanceNumber = number
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    position = a[:3, 3] + k * a[:3, 2]
    ds.ImagePositionPatient = [f"{v:.6f}" for v in position]
    ds.ImageOrientationPatient = [f"{v:.8f}" for v in np.concatenate([row_cos, col_cos])]
    ds.PixelSpacing = [f"{sy:.6f}", f"{sx:.6f}"]  # (between rows, between columns)
    ds.SliceThickness = f"{np.linalg.norm(a[:3, 2]):.6f}"
    ds.SliceLocation = f"{float(position @ normal):.6f}"
    ds.RescaleIntercept = f"{intercept:g}"
    ds.RescaleSlope = f"{slope:g}"
    ds.RescaleType = "HU"
    ds.Rows, ds.Columns = stored.shape[1], stored.shape[0]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1 if stored.dtype == np.int16 else 0
    ds.PixelData = np.ascontiguousarray(stored.T).tobytes()  # (rows=Y, columns=X)
    return ds
