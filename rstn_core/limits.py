"""Size limits checked before anything large is allocated (``docs/reliability.md``).

A hostile or damaged file can declare any grid size in a few bytes; these checks refuse it
from the header, before the voxel data are read.

* :data:`MAX_VOXELS`: largest CT grid read (NIfTI or DICOM), 2**29 voxels (2 GiB as float32; a
  512 x 512 x 2048 scan). Override with the environment variable ``RSTN_MAX_VOXELS``.
* :data:`MAX_PHANTOM_VOXELS`: largest synthetic phantom grid, 2**25 voxels (the default field of
  view at about 1 mm; the generator holds several float arrays of that size).
* :data:`GZIP_MAX_RATIO`: deflate cannot shrink data more than ~1032:1, so a ``.nii.gz`` whose
  declared voxel data exceed its compressed size times this ratio is truncated or forged.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

from rstn_core.errors import DataError

MAX_VOXELS = 2**29
MAX_PHANTOM_VOXELS = 2**25
GZIP_MAX_RATIO = 1100


def max_voxels() -> int:
    """:data:`MAX_VOXELS`, or ``RSTN_MAX_VOXELS`` when set to a positive integer."""
    text = os.environ.get("RSTN_MAX_VOXELS", "").strip()
    try:
        value = int(text) if text else MAX_VOXELS
    except ValueError:
        raise DataError(f"RSTN_MAX_VOXELS must be a positive integer, got {text!r}") from None
    if value < 1:
        raise DataError(f"RSTN_MAX_VOXELS must be a positive integer, got {text!r}")
    return value


def check_voxels(shape: Sequence[int], what: str, limit: int | None = None, hint: str = "") -> int:
    """Number of voxels of ``shape``; :class:`DataError` when above ``limit`` (default :func:`max_voxels`)."""
    limit = max_voxels() if limit is None else limit
    dims = [int(s) for s in shape]
    if any(d < 0 for d in dims):
        raise DataError(f"{what}: negative size in shape {tuple(dims)}")
    n = math.prod(dims)
    if n > limit:
        raise DataError(f"{what}: grid {' x '.join(map(str, dims))} = {n:,} voxels exceeds the limit of "
                        f"{limit:,} voxels ({4 * n / 2**30:.1f} GiB as float32){hint}")
    return n
