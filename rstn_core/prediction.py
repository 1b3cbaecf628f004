"""Segmenting CT files with model bundles: one case in, its mask (or multi-organ label map) out on the CT's
own grid, with a summary. ``rstn predict`` calls :func:`predict_case` per case; so can a notebook.

An :class:`Organ` is one bundle's engine and the label id it writes; several organs give one label map
(a voxel claimed by several goes to the most confident, :func:`rstn_core.inference.fusion.merge_organs`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rstn_core.errors import CheckpointError, DataError
from rstn_core.io import nifti_stem

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class Organ:
    """One bundle's engine and the label it writes."""

    label_id: int
    name: str
    engine: Any  # RSTNEngine


def organ_of(bundle: Any) -> tuple[int, str]:
    """(label id written in multi-organ maps, organ name) of a bundle, from its meta and data config."""
    ids = tuple(int(t) for t in bundle.data_config.target_labels)
    meta = bundle.meta or {}
    name = meta.get("organ") or meta.get("organ_name")
    label_id = int(meta.get("label_id", ids[0]))
    return label_id, str(name) if name else "label" + "+".join(str(i) for i in ids)


def check_organ(bundle: Any, requested: list[str], path: Path) -> None:
    """Refuse a bundle trained for another organ than every ``requested`` name or id."""
    ids = tuple(int(t) for t in bundle.data_config.target_labels)
    _, name = organ_of(bundle)
    for item in requested:
        text = str(item).strip().lower()
        if text.isdigit() and int(text) in ids:
            return
        if text == name.lower():
            return
    raise CheckpointError(f"bundle {path} segments {name!r} (label ids {list(ids)}), not the requested organ "
                          f"{' / '.join(requested)}")


def prob_path(mask_path: Path) -> Path:
    return mask_path.with_name(nifti_stem(mask_path) + "_prob.nii.gz")


def labels_path(output: Path) -> Path:
    """The label table beside a multi-organ label map."""
    return output.with_name(nifti_stem(output) + ".labels.json")


def organ_prob_path(output: Path, organ: str) -> Path:
    """One organ's probability beside a multi-organ label map."""
    return output.with_name(f"{nifti_stem(output)}_{organ}_prob.nii.gz")


def predict_case(organs: list[Organ], image: Path, output: Path, label: Path | None = None,
                 save_prob: bool = False, overwrite: bool = False, progress: bool = True,
                 case_id: str | None = None) -> dict[str, Any]:
    """Segment one CT with every organ's engine and write the mask (or label map) on its own grid.

    Returns a summary dict (rounds, stop reason, voxels, volume in mL, seconds, DSC if ``label``).
    """
    import numpy as np

    from rstn_core.inference.fusion import merge_organs
    from rstn_core.io import load_case, save_mask, save_probability
    from rstn_core.resample import mask_on_input, prob_on_input

    if output.exists() and not overwrite:
        raise DataError(f"output {output} already exists; pass --overwrite to replace it")
    targets = organs[0].engine.data_config.target_labels if len(organs) == 1 else (1,)
    case = load_case(image, label if len(organs) == 1 else None, targets, case_id=case_id)
    finals, works, seconds_of = {}, {}, {}
    for organ in organs:
        finals[organ.label_id], works[organ.label_id], seconds_of[organ.label_id] = _run_organ(organ, case, progress)
    seconds = sum(seconds_of.values())
    voxel_ml = float(np.prod(case.image.spacing)) / 1000.0
    masks = {i: mask_on_input(works[i], s.mask) for i, s in finals.items()}  # (X, Y, Z) input grid
    if len(organs) == 1:
        state, mask = finals[organs[0].label_id], masks[organs[0].label_id]
        save_mask(mask, case.image, output, overwrite=overwrite)
        if save_prob:
            prob = prob_on_input(works[organs[0].label_id], state.fused_prob)
            save_probability(prob, case.image, prob_path(output), overwrite=overwrite)
        voxels = int(mask.sum())
        summary = {"case": case.case_id, "organ": organs[0].name, "rounds": state.round, "stopped": state.stopped,
                   "voxels": voxels, "volume_ml": voxels * voxel_ml, "seconds": seconds,
                   "dsc": state.dsc_vs_truth, "dsc_grid": state.dsc_grid, "output": str(output),
                   "grid": grid_note(works[organs[0].label_id]), "precision": compute_note(organs[0].engine)}
        return summary
    probs = {i: prob_on_input(works[i], s.fused_prob) for i, s in finals.items()}
    labels = merge_organs(probs, masks)
    save_mask(labels, case.image, output, overwrite=overwrite, dtype=np.uint16)
    table = {"0": "background", **{str(o.label_id): o.name for o in organs}}
    table_path = labels_path(output)
    table_path.write_text(json.dumps(table, indent=2) + "\n")
    if save_prob:
        for organ in organs:
            path = organ_prob_path(output, organ.name)
            save_probability(probs[organ.label_id], case.image, path, overwrite=overwrite)
    voxels = {o.name: int((labels == o.label_id).sum()) for o in organs}
    return {"case": case.case_id, "organ": "+".join(o.name for o in organs),
            "rounds": max(s.round for s in finals.values()),
            "stopped": ",".join(f"{o.name}:{finals[o.label_id].stopped}" for o in organs),
            "voxels": sum(voxels.values()), "volume_ml": sum(voxels.values()) * voxel_ml, "seconds": seconds,
            "dsc": None, "output": str(output), "labels": str(table_path),
            "precision": compute_note(organs[0].engine)}


def compute_note(engine: Any) -> str:
    """The precision and parallelism the engine resolved at run time, e.g. ``fp32, 2 workers x 1 thread``."""
    return f"{engine.precision.resolved}, {engine.parallelism.describe()}"


def _run_organ(organ: Organ, case: Any, progress: bool) -> tuple[Any, Any, float]:
    """Every round of ``organ``'s engine on ``case`` -> (final RoundState, the case on the model grid,
    seconds of all rounds); an empty result's plain-words reasons are logged."""
    from tqdm import tqdm

    from rstn_core.inference.diagnose import explain_empty

    engine = organ.engine
    work = engine.prepare(case)  # on the grid the model was trained at (results come back on the input grid)
    bar = tqdm(total=engine.config.max_rounds + 1, desc=f"{case.case_id} {organ.name}", unit="round",
               disable=not progress, leave=False)
    state, seconds = None, 0.0
    for state in engine.iterate(work):
        seconds += state.seconds  # every round, not only the last
        bar.set_postfix_str(f"voxels={state.voxels}" + (
            "" if state.inter_round_dsc is None else f" inter-DSC={state.inter_round_dsc:.4f}"))
        bar.update(1)
    bar.close()
    for warning in explain_empty(case, state, engine):
        log.warning("%s (%s): %s", case.case_id, organ.name, warning)
    return state, work, seconds


def grid_note(work: Any) -> str:
    """Where the model ran: the case's own grid, or the resampled model grid."""
    record = work.meta.get("resampling")
    return "input grid" if record is None else record.describe()


def summary_line(s: dict[str, Any]) -> str:
    text = (f"{s['case']}: {s['organ']} {s['rounds']} round(s) ({s['stopped']}), {s['voxels']} voxels, "
            f"{s['volume_ml']:.1f} mL, {s['seconds']:.1f} s")
    if s.get("dsc") is not None:
        text += f", DSC {s['dsc']:.4f}" + (f" (on the {s['dsc_grid']} grid)" if s.get("dsc_grid") else "")
    if s.get("grid") and s["grid"] != "input grid":
        text += f", ran on the {s['grid']}"
    if s.get("precision"):
        text += f", {s['precision']}"
    return text + f" -> {s['output']}"


def planned_outputs(output: Path, organs: list[Organ] | None = None, save_prob: bool = True) -> list[Path]:
    """Every file the case writing ``output`` may write (mask first); without ``organs``: one organ."""
    paths = [output]
    if organs is None or len(organs) == 1:
        return paths + ([prob_path(output)] if save_prob else [])
    paths.append(labels_path(output))
    if save_prob:
        paths += [organ_prob_path(output, o.name) for o in organs]
    return paths


