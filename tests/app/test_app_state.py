"""The session state without a browser: a stub engine, plain pytest, ``obj.param.trigger(...)``."""

from __future__ import annotations

import gzip
import threading

import nibabel as nib
import numpy as np
import pytest
from stub_engine import StubEngine, make_engine, small_case

from app import cases
from app import engines as app_engines
from app.state import SessionState
from rstn_core.errors import DataError
from rstn_core.types import View


def _choices(engines: dict) -> list[app_engines.ModelChoice]:
    return [app_engines.ModelChoice(k, f"stub {k}", k, False, (lambda e=e: e)) for k, e in engines.items()]


def _provider(choice):
    engine = choice.loader()
    return app_engines.EngineHandle(choice, engine, app_engines.describe_engine(choice, engine))


@pytest.fixture
def engines():
    return {"rstn": make_engine("rstn"), "c2f": make_engine("c2f")}


@pytest.fixture
def state(engines) -> SessionState:
    s = SessionState(choices=_choices(engines), engine_provider=_provider, case_provider=cases.demo_case)
    s.param.trigger("load_demo")
    return s


def test_demo_loads_and_centres_on_the_target(state):
    assert state.case is not None and state.error == ""
    assert state.model == "rstn" and state.compare_model == "c2f"
    assert state.num_slices == state.case.image.shape[2]
    counts = state.case.label.sum(axis=(0, 1))
    assert state.slice_index == int(np.argmax(counts))
    assert "stub rstn" in state.model_info and "UNTRAINED" in state.model_info


def test_coarse_step_run_reset(state, engines):
    state.param.trigger("coarse")
    assert [r.round for r in state.rounds] == [0] and state.round_index == 0
    state.param.trigger("step")
    state.param.trigger("step")
    assert [r.round for r in state.rounds] == [0, 1, 2]
    assert state.round_index == 2 and state.progress == 100 and not state.busy
    assert "round 2" in state.status
    state.param.trigger("reset")
    assert state.rounds == [] and state.round_index == 0
    state.param.trigger("run")
    assert state.rounds[-1].stopped == "converged"
    assert [c[0] for c in engines["rstn"].calls][:2] == ["prepare", "start"]


def test_step_without_rounds_runs_the_coarse_stage(state):
    state.param.trigger("step")
    assert len(state.rounds) == 1 and state.rounds[0].round == 0


def test_saliency_of_round_one_uses_round_zero(state):
    state.param.trigger("step")
    assert state.saliency() is None  # round 0: the coarse net saw the raw image
    state.param.trigger("step")
    sal = state.saliency()
    h, w = state.case.image.shape[0], state.case.image.shape[1]
    assert sal.weights.shape == (3, h, w) and sal.centre == state.slice_index
    assert state.saliency() is sal  # cached


def test_view_change_and_jump_to_error(state):
    state.param.trigger("coarse")
    state.view = "sagittal"
    assert state.num_slices == state.case.image.shape[0]
    state.param.trigger("jump_to_error")
    wrong = state.rounds[0].mask ^ state.case.label
    assert state.slice_index == int(np.argmax(wrong.sum(axis=(1, 2))))


def test_engine_failure_becomes_a_message(state, engines):
    state.param.trigger("coarse")
    engines["rstn"].fail_on_step = True
    state.param.trigger("step")
    assert "stub failure" in state.error and not state.busy
    assert len(state.rounds) == 1
    engines["rstn"].fail_on_step = False
    state.param.trigger("step")
    assert state.error == "" and len(state.rounds) == 2


def test_actions_need_a_case(engines):
    s = SessionState(choices=_choices(engines), engine_provider=_provider)
    s.param.trigger("step")
    assert "load a case first" in s.error


def test_busy_session_ignores_a_second_action(state):
    state.busy = True
    state.param.trigger("step")
    assert state.rounds == [] and "busy" in state.status


def test_cancel_stops_between_rounds(engines):
    class Cancelling(StubEngine):
        def step(self, case, previous):
            out = super().step(case, previous)
            holder["state"].param.trigger("cancel")
            return out

    engine = Cancelling()
    holder = {}
    s = SessionState(choices=_choices({"rstn": engine}), engine_provider=_provider)
    holder["state"] = s
    s.param.trigger("load_demo")
    s.param.trigger("run")
    assert len(s.rounds) == 2 and "cancelled after round 1" in s.status and s.rounds[-1].stopped is None


def test_compare_runs_both_methods(state):
    state.param.trigger("compare")
    assert state.rounds[-1].stopped and state.compare_rounds[-1].stopped
    assert state.error == ""


def test_model_switch_forgets_rounds(state):
    state.param.trigger("coarse")
    state.model = "c2f"
    assert state.rounds == [] and "c2f" in state.model_info


def test_sessions_are_independent(engines):
    a = SessionState(choices=_choices(engines), engine_provider=_provider)
    b = SessionState(choices=_choices(engines), engine_provider=_provider)
    a.param.trigger("load_demo")
    b.param.trigger("load_demo")
    a.param.trigger("step")
    a.param.trigger("step")
    assert len(a.rounds) == 2 and b.rounds == []
    b.view = "coronal"
    assert a.view == "axial"


def test_concurrent_sessions_on_one_engine(engines):
    """Two sessions stepping at the same time from two threads get their own, correct rounds."""
    results = {}

    def work(name):
        s = SessionState(choices=_choices(engines), engine_provider=_provider)
        s.param.trigger("load_demo")
        for _ in range(3):
            s.param.trigger("step")
        results[name] = [r.round for r in s.rounds]

    threads = [threading.Thread(target=work, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == {"a": [0, 1, 2], "b": [0, 1, 2]}


# --- loading files ------------------------------------------------------------------------------


def _nifti_bytes(array, affine=None, gz=False) -> bytes:
    img = nib.Nifti1Image(np.asarray(array), np.eye(4) if affine is None else affine)
    data = img.to_bytes()
    return gzip.compress(data) if gz else data


def _ct(shape=(21, 19, 9)):
    hu = np.full(shape, -1000, dtype=np.int16)
    hu[3:-3, 3:-3, :] = 40
    hu[4:8, 4:8, :] = 700  # a bone: a CT in HU (rstn_core.inference.diagnose.hu_problem) has some
    label = np.zeros(shape, dtype=np.uint8)
    label[8:12, 8:11, 3:6] = 7
    return hu, label


def test_upload_nii_gz_with_label(state):
    hu, label = _ct()
    ok = state.load_upload("ct.nii.gz", _nifti_bytes(hu, gz=True), "seg.nii.gz", _nifti_bytes(label, gz=True))
    assert ok and state.error == ""
    assert state.case.case_id == "ct" and state.case.image.shape == (21, 19, 9)
    assert int(state.case.label.sum()) == 4 * 3 * 3


@pytest.mark.parametrize("name, payload, label, message", [
    ("ct.nii.gz", b"\x1f\x8b\x08\x00broken", None, "corrupt"),  # the library's own message (rstn_core.io)
    ("ct.nii.gz", b"\x1f\x8b\x08\x00" + b"truncated" * 50, None, "corrupt"),
    ("ct.nii", b"not a nifti at all", None, "ct.nii"),
    ("notes.txt", b"hello", None, "NIfTI"),
])
def test_bad_uploads_are_messages(state, name, payload, label, message):
    before = state.case
    assert not state.load_upload(name, payload)
    assert message in state.error and state.case is before


def test_truncated_upload_is_a_message(state):
    hu, _ = _ct()
    data = _nifti_bytes(hu)
    assert not state.load_upload("ct.nii", data[: len(data) // 2])
    assert "ct.nii" in state.error


def test_label_on_another_grid_is_a_message(state):
    hu, label = _ct()
    assert not state.load_upload("ct.nii", _nifti_bytes(hu), "seg.nii", _nifti_bytes(label[:-1]))
    assert "does not match" in state.error


def test_absent_organ_id_is_a_message(state):
    hu, label = _ct()
    state.organ = "3"
    assert not state.load_upload("ct.nii", _nifti_bytes(hu), "seg.nii", _nifti_bytes(label))
    assert "[3]" in state.error and "present" in state.error


def test_not_a_ct_is_a_message(state):
    """The library's HU test (rstn_core.inference.diagnose.hu_problem) warns; the volume is still shown."""
    assert state.load_upload("ct.nii", _nifti_bytes(np.ones((9, 9, 9), dtype=np.float32)))
    assert "Hounsfield" in state.error and "find nothing" in state.error


def test_bad_organ_text_is_a_message(state):
    state.organ = "pancreas"
    hu, label = _ct()
    assert not state.load_upload("ct.nii", _nifti_bytes(hu), "seg.nii", _nifti_bytes(label))
    assert "integers" in state.error


def test_upload_size_limit(monkeypatch, state):
    monkeypatch.setattr(cases, "MAX_UPLOAD_MB", 0)
    hu, _ = _ct()
    assert not state.load_upload("ct.nii", _nifti_bytes(hu))
    assert "upload limit" in state.error


def test_server_files_stay_inside_the_data_root(tmp_path, monkeypatch, state):
    root = tmp_path / "data"
    root.mkdir()
    hu, label = _ct()
    nib.save(nib.Nifti1Image(hu, np.eye(4)), root / "ct.nii.gz")
    nib.save(nib.Nifti1Image(label, np.eye(4)), root / "seg.nii.gz")
    nib.save(nib.Nifti1Image(hu, np.eye(4)), tmp_path / "outside.nii.gz")
    sibling = tmp_path / "datax"  # shares the root's name as a prefix, but is not inside it
    sibling.mkdir()
    nib.save(nib.Nifti1Image(hu, np.eye(4)), sibling / "ct.nii.gz")
    state.data_root = root
    state.image_path, state.label_path = str(root / "ct.nii.gz"), str(root / "seg.nii.gz")
    state.param.trigger("load_files")
    assert state.error == "" and state.case.case_id == "ct"
    state.image_path, state.label_path = str(root / ".." / "outside.nii.gz"), ""
    state.param.trigger("load_files")
    assert "outside the data folder" in state.error and state.case.case_id == "ct"
    state.image_path = str(sibling / "ct.nii.gz")
    state.param.trigger("load_files")
    assert "outside the data folder" in state.error


def test_containment_is_not_a_path_prefix(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "datax").mkdir()
    with pytest.raises(DataError, match="outside the data folder"):
        cases.inside_root(tmp_path / "datax", tmp_path / "data")
    assert cases.inside_root(tmp_path / "data" / "a" / ".." / "b", tmp_path / "data") == tmp_path / "data" / "b"


def test_data_root_default_and_env(monkeypatch, tmp_path):
    monkeypatch.delenv("RSTN_DATA_ROOT", raising=False)
    assert cases.data_root().name == "data"
    monkeypatch.setenv("RSTN_DATA_ROOT", str(tmp_path))
    assert cases.data_root() == tmp_path.resolve()


def test_real_example_loads(real_example, state, monkeypatch):
    state.data_root = real_example.parent
    state.image_path = str(real_example / "ct.nii.gz")
    state.label_path = str(real_example / "labels.nii.gz")
    state.organ = "7"
    state.param.trigger("load_files")
    assert state.error == "" and int(state.case.label.sum()) == 695
    state.param.trigger("step")
    assert len(state.rounds) == 1


def test_engines_are_built_once_and_shared():
    built = []
    choice = app_engines.ModelChoice("shared-test", "shared", "rstn", False, lambda: built.append(1) or StubEngine())
    results = []
    threads = [threading.Thread(target=lambda: results.append(app_engines.get_engine(choice).engine)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(built) == 1 and all(r is results[0] for r in results)


def test_a_model_that_cannot_load_is_a_message(engines):
    from rstn_core.errors import CheckpointError

    def broken():
        raise CheckpointError("model.rstn: weights of view 'axial' do not fit the stored model configuration")

    choices = [app_engines.ModelChoice("bad", "bad bundle", "rstn", True, broken), *_choices(engines)]
    s = SessionState(choices=choices, engine_provider=app_engines.get_engine)
    assert "do not fit" in s.error and "failed to load" in s.model_info
    s.param.trigger("load_demo")
    s.model = "rstn"
    s.param.trigger("step")
    assert len(s.rounds) == 1 and s.error == ""


def test_bundles_under_the_data_root_are_offered_and_run(tmp_path, monkeypatch):
    """The real path: a .rstn bundle is listed, loaded through load_bundle + RSTNEngine, and described."""
    from rstn_core.config import DataConfig, ModelConfig
    from rstn_core.models.bundle import ModelBundle, save_bundle
    from rstn_core.models.rstn import build_model

    config = ModelConfig.from_preset("tiny")
    models = {View.AXIAL: build_model("rstn", config)}
    save_bundle(ModelBundle("rstn", config, DataConfig(target_labels=(7,)), models, {"trained": True}),
                tmp_path / "mine.rstn")
    monkeypatch.setenv("RSTN_DATA_ROOT", str(tmp_path))
    choices = [c for c in app_engines.model_choices(tmp_path) if c.source == str(tmp_path / "mine.rstn")]
    assert len(choices) == 1 and choices[0].method == "rstn"
    s = SessionState(choices=choices)
    assert "looks along axial" in s.model_info and "trained on unrecorded data" in s.model_info and s.error == ""
    small = small_case()
    s.set_case(small)
    s.param.trigger("coarse")
    assert s.error == "" and len(s.rounds) == 1
    assert set(s.rounds[0].view_probs) == {View.AXIAL}


def test_an_engine_given_to_the_app_is_described_with_its_training_data():
    """A notebook passes engines, not bundles: the header still says what the model learned from."""
    engine = make_engine("rstn")
    engine.trained_on = "24 synthetic phantoms (seed 0, anatomy version 2)"
    choice = app_engines.choices_from_engines({"rstn": engine})[0]
    text = app_engines.describe_engine(choice, engine)
    assert "trained on 24 synthetic phantoms (seed 0, anatomy version 2)" in text
    del engine.trained_on
    assert " · trained" in app_engines.describe_engine(choice, engine)
