"""The page as an ``App(Viewer)`` built in plain Python with stub engines (no server, no browser)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from stub_engine import StubEngine, make_engine, small_case

from app import display
from app.controls import DataPanel, Sidebar
from app.page import App
from app.viewer import SliceViewer
from rstn_core.inference.summary import curve_points, round_rows
from rstn_core.types import View


def _app(case=None, **engine_kw) -> App:
    engines = {"rstn": StubEngine(**engine_kw), "c2f": make_engine("c2f")}
    app = App(engines=engines, case=case if case is not None else small_case())
    app.__panel__()  # outside a server: loads the case and computes round 0 now
    return app


def test_app_takes_its_engines_and_case_and_opens_with_round_0():
    app = _app()
    s = app.state
    assert s.error == "" and s.case.case_id == "synthetic-demo" and len(s.rounds) == 1
    engine = s.engine()
    assert [c[0] for c in engine.calls] == ["prepare", "start"]  # prepare once per loaded case


def test_step_after_a_stop_does_nothing():
    s = _app().state
    s.param.trigger("run")
    assert s.rounds[-1].stopped == "converged" and not s.can_step
    n = len(s.rounds)
    s.param.trigger("step")
    assert len(s.rounds) == n and "Step does nothing" in s.status
    assert [r.stopped for r in s.rounds].count("converged") == 1


def test_step_button_is_disabled_after_a_stop_and_the_slider_follows_the_case():
    app = _app()
    s = app.state
    bar, viewer = Sidebar(state=s), SliceViewer(state=s)
    assert not bar.step.disabled and viewer.slider.end == s.num_slices - 1
    s.param.trigger("run")
    assert bar.step.disabled and bar.run.disabled
    s.view = "sagittal"
    assert viewer.slider.end == s.case.image.shape[0] - 1 and viewer.slider.value == s.slice_index
    s.param.trigger("reset")
    assert not bar.step.disabled


def test_an_empty_result_is_explained_and_never_plotted_as_convergence():
    s = _app(empty=True).state
    assert s.rounds[0].stopped == "empty-coarse" and not s.can_step
    assert "coarse stage found no voxel" in s.explanation and "unlike the training data" in s.explanation
    s.param.trigger("step")
    assert len(s.rounds) == 1  # nothing more ran


def test_two_empty_masks_are_not_an_inter_round_point():
    engine = StubEngine(empty=True)
    case = small_case()
    first = engine.start(case)
    second = engine.step(case, first)
    assert second.inter_round_dsc == 1.0  # Dice of two empty masks, by convention
    rows = round_rows([first, second])
    assert rows[1].both_empty and rows[1].inter_round_dsc is None
    assert curve_points([first, second])["inter"] == []


def test_dsc_grid_is_shown_beside_the_dsc():
    s = _app().state
    assert "(input grid)" in s.status


def test_the_demo_round_0_is_computed_once_for_every_session():
    engine = StubEngine()
    engines = {"rstn": engine}
    for _ in range(3):
        App(engines=engines).__panel__()  # three sessions on the demo case
    assert [c[0] for c in engine.calls].count("start") == 1


@pytest.mark.parametrize("view", ["axial", "coronal", "sagittal"])
def test_frame_follows_the_case_and_the_view(view):
    """The record the browser draws with: frame in mm, anatomical labels, aspect, slice count."""
    app = _app()
    s = app.state
    viewer = SliceViewer(state=s)
    record = json.loads(viewer.meta.data["json"][0])["views"][view]  # every view: the browser switches itself
    geom = display.geometry(s.case.image.shape, s.case.image.spacing, view)
    assert (record["dw"], record["dh"]) == pytest.approx((geom.bounds[2], geom.bounds[3]))
    assert (record["xlabel"], record["ylabel"]) == display.axis_labels(view)
    width, height = record["frame"]
    assert width / height == pytest.approx(geom.aspect, rel=0.02)
    assert record["n"] == display.num_slices(s.case.image.shape, view)
    viewer._on_views("active", 0, viewer.views.labels.index(view))  # the browser switched: the server follows
    assert s.view == view and s.num_slices == record["n"] and s.slice_index == record["centre"]
    assert viewer.volume.data["ct"][0].size == int(np.prod(s.case.image.shape))  # the case goes to the browser once


def test_the_browser_gets_each_round_and_its_boxes_once():
    app = _app()
    s = app.state
    viewer = SliceViewer(state=s)
    ct = viewer.volume.data["ct"][0]
    s.param.trigger("step")
    record = json.loads(viewer.meta.data["json"][0])
    assert viewer.volume.data["ct"][0] is ct  # a round does not re-send the CT
    assert viewer.shown.data["pred"][0].sum() == int(s.rounds[-1].mask.sum())
    boxes = record["views"][s.view]["boxes"]
    assert record["round_label"] == " · round 1" and {row[5] for row in boxes} == {1}
    s.slice_index = 3  # navigation chosen on the server: sent to the browser (no new record)
    assert viewer.nav.data["slice"] == [3] and json.loads(viewer.meta.data["json"][0])["version"] == record["version"]
    seq = viewer.nav.data["seq"][0]
    viewer._on_slider("value_throttled", 3, 5)  # the browser moved (keys at rest): the server follows ...
    assert s.slice_index == 5 and viewer.nav.data["seq"][0] == seq  # ... and sends nothing back (no echo)


def test_a_large_ct_is_sent_on_a_coarser_display_grid():
    from app import slice_payload

    assert slice_payload.display_step((128, 112, 80)) == 1
    step = slice_payload.display_step((512, 512, 300))
    small = [-(-n // step) for n in (512, 512, 300)]
    assert step == 3 and np.prod(small) <= slice_payload.MAX_DISPLAY_VOXELS
    assert slice_payload.ct_array(np.zeros((512, 512, 300), np.float32), step).size == np.prod(small)
    assert "one voxel in 3 along each axis" in slice_payload.grid_note((512, 512, 300), step)


def test_crop_boxes_are_drawn_from_round_1():
    s = _app().state
    s.param.trigger("step")
    geom = display.geometry(s.case.image.shape, s.case.image.spacing, s.view)
    rows = display.box_rows(s.rounds, s.view, s.slice_index, geom, s.round_index)
    assert [r[4] for r in rows] == [1]


def test_picker_takes_the_file_chosen_last_and_refuses_typed_paths_outside(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    for name in ("ct.nii.gz", "seg.nii.gz"):
        (root / name).write_bytes(b"")
    s = _app().state
    panel = DataPanel(state=s, root=root)
    panel.picker.value = [str(root / "ct.nii.gz")]
    panel.pick("image_path")
    panel.picker.value = [str(root / "ct.nii.gz"), str(root / "seg.nii.gz")]
    panel.pick("label_path")
    assert (s.image_path, s.label_path) == (str(root / "ct.nii.gz"), str(root / "seg.nii.gz"))
    panel._on_typed(type("E", (), {"new": str(tmp_path / "datax")})())
    assert "outside the data folder" in s.error


def test_saliency_uses_a_fixed_scale_and_the_difference_view():
    from app.panels import SaliencyPanel

    s = _app().state
    s.param.trigger("step")
    grid = SaliencyPanel(state=s).grid
    weights, difference = grid.mappers
    assert (weights.low, weights.high) == pytest.approx((0.9, 1.1))
    assert (difference.low, difference.high) == pytest.approx((-0.05, 0.05))
    assert grid.figures[1][0].title.text.startswith("X⊙g(P) − X")
    sal = s.saliency()  # the middle channel's difference, in Bokeh's orientation (row 0 at the bottom)
    expected = np.flipud(display.to_display(sal.transformed[1] - sal.image[1]))
    np.testing.assert_allclose(grid.sources[1][1].data["image"][0], expected, atol=1e-6)
    assert [len(b.data["left"]) for b in grid.box_sources[1]] == [int(sal.box is not None)] * 3


def test_saliency_and_probability_images_are_updated_in_place():
    """A new slice, view, display mode or round changes the tab's arrays, never its Bokeh models (rebuilding
    the six images took the server ~1 s per slice change)."""
    from app.panels import ProbabilityPanel, SaliencyPanel

    s = _app().state
    s.param.trigger("step")
    saliency, probability = SaliencyPanel(state=s), ProbabilityPanel(state=s)
    models = {p: {m.id for m in p.grid.model.references()} for p in (saliency, probability)}
    before = saliency.grid.sources[0][1].data["image"][0]
    probs_before = probability.grid.sources[0][-1].data["image"][0]
    s.slice_index = min(s.slice_index + 3, s.num_slices - 1)
    assert not np.array_equal(saliency.grid.sources[0][1].data["image"][0], before)
    assert not np.array_equal(probability.grid.sources[0][-1].data["image"][0], probs_before)
    s.display.saliency_mode = "transformed X⊙g(P)"
    assert saliency.grid.figures[1][0].title.text.startswith("X⊙g(P), ")
    assert (saliency.grid.mappers[1].low, saliency.grid.mappers[1].high) == (0.0, 1.0)
    s.view = "coronal"
    left, bottom, right, top = display.geometry(s.case.image.shape, s.case.image.spacing, "coronal").bounds
    assert (saliency.grid.x_range.end, saliency.grid.y_range.end) == (right, top)
    s.param.trigger("step")
    for panel in (saliency, probability):
        assert {m.id for m in panel.grid.model.references()} == models[panel]
    s.round_index = 0  # the coarse stage: a note instead of the images
    assert saliency.note.visible and not saliency.plots.visible and "coarse stage" in saliency.note.object


def test_the_comparison_chart_keeps_its_legend_off_the_curves():
    from app import dsc_chart

    app = _app()
    svg = dsc_chart.dsc_comparison_svg({"RSTN": app.state.rounds, "C2F": app.state.rounds}, 0.99)
    legend_x = float(re.search(r"<rect class='dsc-legend' x='([-\d.]+)'", svg).group(1))
    assert legend_x >= dsc_chart.WIDTH - dsc_chart.RIGHT  # beside the frame, not on the data
    assert "RSTN: DSC vs truth" in svg and "C2F: DSC vs truth" in svg


def test_main_only_composes_the_app():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "app" / "main.py").read_text()
    assert "App().servable" in text and "environ" not in text
    assert not np.any([hasattr(__import__("app.engines").engines, n) for n in ("ENGINE_FACTORY_ENV",)])


def test_views_accept_a_view_enum():
    assert display.axis_labels(View.CORONAL)[0].startswith("patient's right")


def test_engines_may_be_a_factory_of_the_method():
    made = []

    def factory(method):
        made.append(method)
        return make_engine(method)

    app = App(engines=factory, case=small_case())
    app.__panel__()
    s = app.state
    assert s.error == "" and len(s.rounds) == 1 and made == ["rstn"]  # the baseline is built when needed
    s.param.trigger("compare")
    assert made == ["rstn", "c2f"] and s.compare_rounds[-1].stopped


# The first page of a new session: what its first screen shows, nothing more (the per-session page build
# queued a classroom of 20 sessions: 296 Bokeh models before the tabs and the data panel were built lazily).
FIRST_PAGE_MODELS = 170


def _first_page(app: App):
    from bokeh.document import Document

    doc = Document()
    doc.add_root(app.__panel__().get_root(doc))
    return doc


def test_a_new_session_builds_only_its_first_screen():
    from app.controls import DataFolderPicker

    app = _app()
    doc = _first_page(app)
    assert len(doc.models) <= FIRST_PAGE_MODELS, len(doc.models)
    assert set(app.tabs.built) == {0} and app.data_card.content is None  # only the open tab, no data panel
    names = {type(m).__name__ for m in doc.models}
    assert "FileDropper" not in names and "Tabs" in names
    app.data_card.card.collapsed = False  # opened: built now, once
    panel = app.data_card.content
    assert isinstance(panel, DataPanel)
    assert isinstance(panel.picker, DataFolderPicker)
    # the upload widget follows once the browser has loaded its scripts (UploadScripts), and only once
    upload = panel.upload
    assert panel.image_drop not in upload.objects and panel.scripts.js and panel.scripts.css
    panel.scripts.loaded = True
    assert upload.objects[-3:] == [panel.image_drop, panel.label_drop, panel.load_upload]
    panel.scripts.param.trigger("loaded")
    assert upload.objects.count(panel.image_drop) == 1
    app.data_card.card.collapsed = True
    app.data_card.card.collapsed = False
    assert len(app.data_card.card.objects) == 1  # not built twice


def test_tabs_are_built_when_opened_and_hidden_ones_stop_updating():
    from app.panels import ComparePanel, SaliencyPanel

    app = _app()
    s = app.state
    assert isinstance(app.tabs.built[0], SaliencyPanel) and not app.tabs.built[0]._controls.objects  # round 0
    app.tabs.tabs.active = 2
    compare = app.tabs.built[2]
    assert isinstance(compare, ComparePanel) and compare.shown and not app.tabs.built[0].shown
    s.param.trigger("step")  # a round with the saliency tab hidden: it does not compute a saliency
    assert s._saliency_cache == {} and 1 not in app.tabs.built
    app.tabs.tabs.active = 0  # opened again: brought up to date (and its controls built)
    assert app.tabs.built[0].shown and not compare.shown
    assert len(s._saliency_cache) == 1 and app.tabs.built[0]._controls.objects


def test_the_shared_case_and_round_0_are_sent_as_the_same_arrays():
    """Sessions on the shared demo case show its round 0 at once (no second computation, no worker
    thread) and hand the browser the same read-only arrays (encoded without a per-session copy)."""
    engine = StubEngine()
    apps = [App(engines={"rstn": engine}) for _ in range(2)]
    viewers = [SliceViewer(state=a.state) for a in apps]
    assert [c[0] for c in engine.calls].count("start") == 1
    assert all(len(a.state.rounds) == 1 and a.state.progress == 100 for a in apps)
    first, second = (v.volume.data["ct"][0] for v in viewers)
    assert first is second and not first.flags.writeable
    assert viewers[0].shown.data["pred"][0] is viewers[1].shown.data["pred"][0]


def test_the_default_engines_run_on_rstn_device(monkeypatch, tmp_path):
    """$RSTN_DEVICE (documented in the README) chooses the device of the built-in engines; cpu without it."""
    from app.page import default_device

    monkeypatch.delenv("RSTN_DEVICE", raising=False)
    assert default_device() == "cpu"
    monkeypatch.setenv("RSTN_DEVICE", "cpu:0")
    app = App(case=small_case(), data_root=tmp_path, autostart=False)
    assert app.state.choice().key.endswith(":cpu:0") and "failed" not in app.state.model_info


def test_the_comparison_is_updated_in_place_and_not_redrawn_for_a_slice_change():
    from app.panels import ComparePanel

    s = _app().state
    s.param.trigger("compare")
    panel = ComparePanel(state=s)
    grid = panel.grid
    models = {m.id for m in grid.model.references()}
    assert [f.title.text.split(":")[0] for f in grid.figures[0]] == ["RSTN", "C2F"]
    assert panel._drawn[2] == s.slice_index  # the stubs agree everywhere: the tab follows the slice on screen
    geom = display.geometry(s.case.image.shape, s.case.image.spacing, s.view)
    for i, rounds in enumerate((s.rounds, s.compare_rounds)):  # each method's own crop boxes
        expected = display.box_rows(rounds, s.view, s.slice_index, geom)
        assert len(grid.box_sources[0][i].data["left"]) == len(expected)
    s.difference_slice = lambda: 10  # methods that differ most on slice 10: the tab shows that slice
    s.slice_index = (s.slice_index + 5) % s.num_slices
    assert panel._drawn[2] == 10
    shown = grid.sources[0][0].data["image"][0]
    s.slice_index = (s.slice_index + 5) % s.num_slices  # a slice change sends nothing
    assert grid.sources[0][0].data["image"][0] is shown
    s.view = "coronal"  # a new view is drawn, into the same models
    assert grid.sources[0][0].data["image"][0] is not shown
    assert {m.id for m in grid.model.references()} == models


def test_a_rebuilt_image_grid_drops_the_update_queued_for_the_old_one():
    from types import SimpleNamespace

    from app.panels import ProbabilityPanel

    s = _app().state
    s.param.trigger("step")
    panel = ProbabilityPanel(state=s)
    queued = []
    panel._push = SimpleNamespace(mark=lambda *parts: queued.append(parts))  # served: applied on the next tick
    s.slice_index = (s.slice_index + 1) % s.num_slices
    assert queued and panel._pending is not None
    panel._grid_key = "a grid of another shape"  # e.g. a model with another number of views
    s.slice_index = (s.slice_index + 1) % s.num_slices
    assert panel._pending is None  # the new grid was filled at once
    panel._flush({"grid"})  # the old tick arrives: nothing stale is drawn into the new grid
    expected = display.display_slice(np.asarray(s.current_round.fused_prob, dtype=np.float32), s.view,
                                      s.slice_index)
    np.testing.assert_allclose(panel.grid.sources[0][-1].data["image"][0], np.flipud(expected))
