"""Plot helpers on tiny odd-sized inputs: axes and image counts, the display frame, slice choices."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rstn_core.evaluation.crossval import CaseResult
from rstn_core.evaluation.plots import (
    box_to_display,
    comparison_panels,
    convergence_curves,
    dsc_boxplot,
    largest_area_slice,
    largest_difference_slice,
    mean_curves,
    paired_scatter,
    per_slice_dsc,
    round_panels,
    saliency_figure,
    to_display,
    training_curves,
    write_figures,
)
from rstn_core.inference.state import RoundState, SaliencyView
from rstn_core.types import BBox, View

SHAPE = (13, 11, 9)


def n_images(fig) -> int:
    return sum(len(ax.images) for ax in fig.axes)


@pytest.fixture
def case():
    hu = np.random.default_rng(0).uniform(-200, 300, SHAPE).astype(np.float32)
    truth = np.zeros(SHAPE, bool)
    truth[4:9, 3:7, 2:6] = True
    return hu, truth


def make_states(truth):
    z0 = np.zeros(SHAPE, bool)
    z0[3:9, 3:8, 2:6] = True
    z1 = truth.copy()
    box = BBox(2, 10, 1, 9)
    return [RoundState(0, z0.astype(np.float32), {}, z0, {View.AXIAL: {}}, None, 0.8),
            RoundState(1, z1.astype(np.float32), {}, z1, {View.AXIAL: {4: box}}, 0.9, 1.0, stopped="converged")]


def test_display_is_radiological_and_boxes_follow():
    view_slice = np.arange(12).reshape(3, 4)  # (H, W): H along R, W along A for axial
    shown = to_display(view_slice)
    assert shown.shape == (4, 3)
    assert shown[0, 0] == view_slice[2, 3]  # top-left of the screen: the patient's rightmost, most anterior pixel
    mask = np.zeros((3, 4), bool)
    box = BBox(1, 3, 0, 2)
    mask[box.slices()] = True
    left, top, width, height = box_to_display(box, (3, 4))
    rows, cols = np.nonzero(to_display(mask))
    assert (left, top) == (cols.min() - 0.5, rows.min() - 0.5) and (width, height) == (2, 2)


def test_slice_choices(case):
    _, truth = case
    pred_a = np.zeros(SHAPE, bool)
    pred_b = truth.copy()
    pred_a[:, :, :5] = truth[:, :, :5]  # a misses slice 5 entirely
    assert largest_area_slice(truth, "axial") in range(2, 6)
    assert largest_difference_slice(truth, pred_a, pred_b, "axial") == 5
    full = np.ones(SHAPE, bool)  # no slice where b wins: the largest target slice, never an empty one
    assert truth[:, :, largest_difference_slice(truth, full, full, "axial")].any()
    dsc = per_slice_dsc(truth, pred_b, "axial")
    assert np.isnan(dsc[0]) and dsc[3] == 1.0


def test_training_curves_from_a_metrics_file(tmp_path):
    records = [{"step": i + 1, "stage": s, "iteration": i % 2 + 1, "loss": 0.9 - 0.05 * i, "loss_0": 0.95,
                "loss_1": 0.8} for i, s in enumerate("SSIIJ")]
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    fig = training_curves(path)
    assert len(fig.axes) == 1 and len(fig.axes[0].lines) == 3 + 3  # loss terms + stage markers


def test_round_panels_one_image_per_round_with_box(case):
    hu, truth = case
    fig = round_panels(hu, truth, make_states(truth), "axial", 4, spacing=(1.0, 1.0, 2.0))
    assert len(fig.axes) == 2 and n_images(fig) == 2
    assert len(fig.axes[1].patches) == 1 and len(fig.axes[0].patches) == 0


def test_saliency_figure_is_three_by_three(case):
    _, truth = case
    image = np.random.default_rng(1).random((3, 13, 11)).astype(np.float32)
    weights = np.full_like(image, 2.0)
    sv = SaliencyView(View.AXIAL, 4, image, weights, image * weights, BBox(2, 9, 1, 8))
    fig = saliency_figure(sv, np.moveaxis(truth, 2, 0)[3:6])
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 9 and n_images(fig) == 9 and len(fig.axes) == 9 + 3  # + 3 colour bars


def test_comparison_and_convergence(case):
    hu, truth = case
    states = make_states(truth)
    fig = comparison_panels(hu, truth, {"C2F": states[0].mask, "RSTN": states[1].mask}, "axial", 4)
    assert len(fig.axes) == 3 and n_images(fig) == 3
    fig = convergence_curves({"rstn": states, "c2f": {"dsc": [0.5, 0.6, 0.6], "inter": [0.9, 1.0]}})
    assert len(fig.axes) == 2 and len(fig.axes[0].lines) == 2 and len(fig.axes[1].lines) == 2 + 2


def results():
    out = []
    for method in ("rstn", "c2f", "oracle"):
        for k in range(3):
            out.append(CaseResult(method, 0, f"c{k}", 0.6, [0.6, 0.7, 0.72], [0.9, 0.99], 0.72, 2, True,
                                  "converged", {"0.95": 2, "0.99": 2}, 1.0))
    return out


def test_dsc_boxplot_and_mean_curves():
    fig = dsc_boxplot(results())
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert len(fig.axes) == 1
    assert labels == ["rstn\ncoarse", "rstn\nfinal", "c2f\ncoarse", "c2f\nfinal", "oracle\nfinal"]
    curves = mean_curves([r.to_dict() for r in results()])
    assert curves["rstn"]["dsc"] == pytest.approx([0.6, 0.7, 0.72])
    assert curves["c2f"]["inter"] == pytest.approx([0.9, 0.99])


def test_paired_scatter_counts_wins_and_figures_are_written(tmp_path):
    rows = [r.to_dict() for r in results()]
    fig = paired_scatter(rows, "rstn", "c2f")
    ((xs, ys),) = [line.get_data() for line in fig.axes[0].lines if line.get_marker() == "o"]
    by = {(r["method"], r["case_id"]): 100 * r["final_dsc"] for r in rows}
    cases = sorted({r["case_id"] for r in rows})
    assert list(xs) == pytest.approx([by["c2f", c] for c in cases])
    assert list(ys) == pytest.approx([by["rstn", c] for c in cases])
    wins = sum(by["rstn", c] > by["c2f", c] for c in cases)
    assert fig.axes[0].get_title().startswith(f"rstn vs c2f: {wins} win")
    paths = write_figures(results(), tmp_path / "figs")
    assert sorted(paths) == ["convergence", "dsc_boxplot", "rstn_vs_c2f", "rstn_vs_c2f_coarse"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in paths.values())
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == sorted(f"{n}.png" for n in paths)  # no temp files
