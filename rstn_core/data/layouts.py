"""Dataset layouts discovered from a folder (SPEC §1.1).

Recognised, in this order:

* ``manifest``: ``manifest.csv`` (columns ``case_id,image,label``; label may be empty) or
  ``manifest.json`` (a list of ``{"case_id", "image", "label"}`` objects, or an object with a
  ``"cases"`` list and optional ``"name"``/``"target_labels"``). Paths are relative to the manifest.
  An optional ``dataset.json`` beside ``manifest.csv`` may give ``"name"`` and ``"target_labels"``
  (the phantom writer uses this to declare pancreas = 7). Default target ``(1,)``.
* ``msd``: Medical Segmentation Decathlon Task07 (``imagesTr/``, ``labelsTr/``; ``dataset.json``
  optional). Target = label > 0, i.e. ``(1, 2)`` (pancreas + tumour).
* ``nih``: NIH Pancreas-CT: DICOM folders ``PANCREAS_0001`` anywhere below the root (TCIA nests them
  several levels deep) + ``label0001.nii.gz`` files anywhere below the root. Target ``(1,)``.
  The number of cases is whatever is present (TCIA ships 80 of the original 82).
* ``generic``: ``images/<id>.nii[.gz]`` + ``labels/<id>.nii[.gz]`` without a manifest.

Cases are sorted by case id. Nothing here reads voxel data.
"""

from __future__ import annotations

import csv
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from rstn_core.errors import DataError
from rstn_core.io import nifti_stem

logger = logging.getLogger(__name__)

_NIH_CASE = re.compile(r"^PANCREAS_(\d+)$", re.IGNORECASE)
_NIH_LABEL = re.compile(r"^label(\d+)\.nii(\.gz)?$", re.IGNORECASE)


@dataclass(frozen=True)
class CaseRef:
    """Where one case lives: ``image`` is a NIfTI file or DICOM folder; ``label`` a NIfTI file or None."""

    case_id: str
    image: Path
    label: Path | None = None


@dataclass(frozen=True)
class Dataset:
    """A discovered dataset: ``layout`` in {"manifest", "msd", "nih", "generic"}; cases sorted by id."""

    name: str
    layout: str
    cases: tuple[CaseRef, ...]
    default_target_labels: tuple[int, ...]

    @property
    def case_ids(self) -> list[str]:
        return [c.case_id for c in self.cases]

    def get(self, case_id: str) -> CaseRef:
        for c in self.cases:
            if c.case_id == case_id:
                return c
        raise DataError(f"dataset {self.name!r} has no case {case_id!r}")


def _nifti_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.name.lower().endswith((".nii", ".nii.gz")))


def _finish(name: str, layout: str, cases: list[CaseRef], targets: tuple[int, ...], root: Path) -> Dataset:
    if not cases:
        raise DataError(f"{root}: no CT cases found in the {layout} layout")
    seen: dict[str, CaseRef] = {}
    duplicated = []
    for c in cases:
        if c.case_id in seen:
            duplicated.append(c.case_id)
        seen[c.case_id] = c
    if duplicated:
        raise DataError(f"{root}: duplicated case ids {sorted(set(duplicated))}")
    unlabeled = [c.case_id for c in cases if c.label is None]
    if unlabeled:
        logger.warning("%s: %d case(s) without a label: %s", root, len(unlabeled), unlabeled[:10])
    ordered = tuple(sorted(cases, key=lambda c: c.case_id))
    logger.info("discovered %s dataset %r with %d cases under %s", layout, name, len(ordered), root)
    return Dataset(name=name, layout=layout, cases=ordered, default_target_labels=targets)


def _parse_targets(value, source: Path) -> tuple[int, ...]:
    try:
        targets = tuple(int(v) for v in (value if isinstance(value, list | tuple) else [value]))
    except (TypeError, ValueError):
        raise DataError(f"{source}: target_labels must be a list of label ids, got {value!r}") from None
    if not targets or any(t <= 0 for t in targets):
        raise DataError(f"{source}: target_labels must be positive label ids, got {value!r}")
    return targets


def _manifest_rows(path: Path) -> tuple[list[dict], dict]:
    """Rows (dicts with case_id, image, label) and dataset-level info of a manifest file."""
    info: dict = {}
    try:
        if path.suffix.lower() == ".csv":
            with path.open(newline="") as fh:
                reader = csv.DictReader(fh)
                missing = {"case_id", "image"} - set(reader.fieldnames or [])
                if missing:
                    raise DataError(f"{path}: missing column(s) {sorted(missing)}; found {reader.fieldnames}")
                rows = [dict(r) for r in reader]
            sidecar = path.parent / "dataset.json"
            if sidecar.is_file():
                info = json.loads(sidecar.read_text())
                if not isinstance(info, dict):
                    raise DataError(f"{sidecar}: expected a JSON object, got {type(info).__name__}")
        else:
            content = json.loads(path.read_text())
            if isinstance(content, dict):
                info = content
                content = content.get("cases")
            if not isinstance(content, list):
                raise DataError(f"{path}: expected a list of cases (or an object with a 'cases' list)")
            rows = content
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read the manifest ({type(exc).__name__}: {exc})") from exc
    return rows, info


def _from_manifest(root: Path, path: Path) -> Dataset:
    rows, info = _manifest_rows(path)
    cases, missing = [], []
    for n, row in enumerate(rows, start=1):
        if not isinstance(row, dict) or not row.get("case_id") or not row.get("image"):
            raise DataError(f"{path}: entry {n} needs a case_id and an image, got {row!r}")
        image = path.parent / str(row["image"]).strip()
        label_text = str(row.get("label") or "").strip()
        label = path.parent / label_text if label_text else None
        for p in (image, label):
            if p is not None and not p.exists():
                missing.append(f"{row['case_id']}: {p}")
        cases.append(CaseRef(str(row["case_id"]).strip(), image, label))
    if missing:
        raise DataError(f"{path}: {len(missing)} missing file(s): " + "; ".join(missing[:10]))
    targets = _parse_targets(info["target_labels"], path) if "target_labels" in info else (1,)
    return _finish(str(info.get("name") or root.name), "manifest", cases, targets, root)


def _from_msd(root: Path) -> Dataset:
    images, labels = root / "imagesTr", root / "labelsTr"
    name = root.name
    meta = root / "dataset.json"
    if meta.is_file():
        try:
            name = str(json.loads(meta.read_text()).get("name") or name)
        except (OSError, json.JSONDecodeError, AttributeError) as exc:
            logger.warning("%s: ignoring unreadable dataset.json (%s)", root, exc)
    cases = []
    for image in _nifti_files(images):
        label = labels / image.name
        cases.append(CaseRef(nifti_stem(image.name), image, label if label.is_file() else None))
    return _finish(name, "msd", cases, (1, 2), root)


def _from_nih(root: Path, case_dirs: list[Path]) -> Dataset:
    labels: dict[int, Path] = {}
    for p in root.rglob("label*.nii*"):
        m = _NIH_LABEL.match(p.name)
        if m and p.is_file():
            labels[int(m.group(1))] = p
    cases = []
    for d in case_dirs:
        number = int(_NIH_CASE.match(d.name).group(1))  # type: ignore[union-attr]
        cases.append(CaseRef(f"PANCREAS_{number:04d}", d, labels.get(number)))
    return _finish("NIH Pancreas-CT", "nih", cases, (1,), root)


def _from_generic(root: Path) -> Dataset:
    labels = root / "labels"
    cases = []
    for image in _nifti_files(root / "images"):
        cid = nifti_stem(image.name)
        label = next((labels / f"{cid}{s}" for s in (".nii.gz", ".nii") if (labels / f"{cid}{s}").is_file()), None)
        cases.append(CaseRef(cid, image, label))
    return _finish(root.name, "generic", cases, (1,), root)


def discover_dataset(root: str | Path) -> Dataset:
    """Recognise the layout of ``root`` and list its cases (see module docstring)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"dataset folder {root} does not exist")
    for manifest in ("manifest.csv", "manifest.json"):
        if (root / manifest).is_file():
            return _from_manifest(root, root / manifest)
    if (root / "imagesTr").is_dir():
        return _from_msd(root)
    case_dirs = sorted(p for p in root.rglob("PANCREAS_*") if p.is_dir() and _NIH_CASE.match(p.name))
    if case_dirs:
        return _from_nih(root, case_dirs)
    if (root / "images").is_dir():
        return _from_generic(root)
    raise DataError(f"{root}: no CT dataset found; expected manifest.csv/manifest.json, MSD imagesTr/labelsTr, "
                    "NIH PANCREAS_xxxx DICOM folders with labelxxxx.nii.gz, or images/ + labels/")


def _leaf_folders(root: Path) -> set[Path]:
    return {p.parent for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")}


def find_cases(root: str | Path) -> tuple[list[tuple[str, Path]], bool]:
    """What ``rstn predict -i root`` segments: ``([(case_id, image path)], is_batch)``.

    * a NIfTI file, or a folder holding DICOM files directly, is one case;
    * a dataset folder (manifest, MSD, NIH root, generic ``images/``; e.g. one written by
      ``rstn phantoms``) is a batch of its images;
    * a folder of NIfTI files is a batch of them;
    * a folder whose files all sit in one folder two or more levels down (TCIA's
      ``PANCREAS_0001/<study>/<series>/``) is one case named after ``root``;
    * otherwise every sub-folder is a case.
    """
    root = Path(root)
    if not root.exists():
        raise DataError(f"input {root} does not exist")
    if root.is_file():
        return [(nifti_stem(root.name), root)], False
    entries = sorted(p for p in root.iterdir() if not p.name.startswith("."))
    if any((root / m).is_file() for m in ("manifest.csv", "manifest.json")) or (root / "imagesTr").is_dir():
        dataset = discover_dataset(root)
        return [(c.case_id, Path(c.image)) for c in dataset.cases], True
    niftis = [p for p in entries if p.is_file() and p.name.lower().endswith((".nii", ".nii.gz"))]
    if niftis:
        return [(nifti_stem(p.name), p) for p in niftis], True
    if any(p.is_file() for p in entries):
        return [(root.name, root)], False  # a DICOM series
    try:
        dataset = discover_dataset(root)
        return [(c.case_id, Path(c.image)) for c in dataset.cases], True
    except DataError:
        pass
    subdirs = [p for p in entries if p.is_dir()]
    if not subdirs:
        raise DataError(f"input folder {root} holds no NIfTI file, DICOM series or case folder")
    leaves = _leaf_folders(root)
    if len(leaves) == 1 and len(next(iter(leaves)).relative_to(root).parts) >= 2:
        return [(root.name, root)], False  # one series nested as <study>/<series>/
    return [(p.name, p) for p in subdirs], True
