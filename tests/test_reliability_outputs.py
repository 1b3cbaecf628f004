"""Outputs never destroy data and reruns never lie (issue 15, items 1, 2, 4, 8, 10; docs/reliability.md)."""

from __future__ import annotations

import errno
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from reliability_helpers import leftovers, one_line_error, rstn, write_ct, write_tiny_bundle  # noqa: E402

from rstn_core import folders, outputs  # noqa: E402
from rstn_core.cli import main  # noqa: E402


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return write_tiny_bundle(tmp_path_factory.mktemp("bundle") / "tiny.rstn")


def predict_args(i, o, bundle, *extra):
    return ["predict", "-i", str(i), "-o", str(o), "--model", str(bundle), "--max-rounds", "1", "--no-progress",
            "--device", "cpu", *map(str, extra)]


# ---------------------------------------------------------------- item 1: an output never replaces an input
def test_predict_output_equal_to_input_is_refused_even_with_overwrite(tmp_path, bundle, hash_tree):
    ct = write_ct(tmp_path)
    before = hash_tree(ct)
    line = one_line_error(rstn(*predict_args(ct, ct, bundle, "--overwrite")))
    assert "would replace the input" in line and str(ct) in line
    assert hash_tree(ct) == before


@pytest.mark.parametrize("overwrite", [False, True])
def test_predict_batch_into_its_own_input_folder_is_refused(tmp_path, bundle, hash_tree, overwrite):
    cases = tmp_path / "cases"
    for i in range(2):
        write_ct(cases, f"case{i}", seed=i)
    before = hash_tree(cases)
    line = one_line_error(rstn(*predict_args(cases, cases, bundle, *(["--overwrite"] if overwrite else []))))
    assert "would replace the input" in line and "already predicted" not in line
    assert hash_tree(cases) == before


def test_predict_output_inside_a_dicom_input_folder_is_refused(tmp_path, bundle, hash_tree):
    import numpy as np

    from rstn_core.dicom_write import write_dicom_series

    write_dicom_series(np.zeros((9, 10, 6), np.float32), np.diag([0.8, 0.8, 2.0, 1.0]), tmp_path / "series")
    before = hash_tree(tmp_path / "series")
    line = one_line_error(rstn(*predict_args(tmp_path / "series", tmp_path / "series", bundle)))
    assert "inside the input folder" in line
    assert hash_tree(tmp_path / "series") == before


def test_check_not_inputs_sees_links():
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        real = Path(d) / "ct.nii.gz"
        real.write_bytes(b"x")
        (Path(d) / "link.nii.gz").symlink_to(real)
        with pytest.raises(Exception, match="would replace the input"):
            outputs.check_not_inputs([Path(d) / "link.nii.gz"], [real])
        outputs.check_not_inputs([Path(d) / "other.nii.gz"], [real])


# ---------------------------------------------------------------- item 2: one overwrite policy
def test_train_into_an_existing_run_folder_is_refused(tmp_path, hash_tree):
    run = tmp_path / "run"
    (run / "axial").mkdir(parents=True)
    for name in ("model.rstn", "axial/last.ckpt", "axial/metrics.jsonl"):
        (run / name).write_text("earlier run")
    before = hash_tree(run)
    line = one_line_error(rstn("train", "--data", tmp_path / "nodata", "--out", run, "--recipe", "tiny"))
    assert "already holds a training run" in line and "--resume" in line and "--overwrite" in line
    assert hash_tree(run) == before
    line = one_line_error(rstn("train", "--data", tmp_path, "--out", run, "--resume", "--overwrite"))
    assert "contradict" in line


def test_train_overwrite_removes_the_earlier_run_files(tmp_path):
    run = tmp_path / "run"
    (run / "axial").mkdir(parents=True)
    (run / "axial" / "metrics.jsonl").write_text('{"old": 1}\n')
    (run / "notes.txt").write_text("mine")
    folders.prepare_run_folder(run, overwrite=True, resume=False)
    assert not (run / "axial" / "metrics.jsonl").exists() and (run / "notes.txt").exists()


def test_evaluate_refuses_to_replace_earlier_results(tmp_path, hash_tree):
    out = tmp_path / "results"
    out.mkdir()
    (out / "results.md").write_text("earlier")
    line = one_line_error(rstn("evaluate", "--data", tmp_path, "--models", tmp_path, "--out", out))
    assert "results.md already exists" in line and "--overwrite" in line
    assert (out / "results.md").read_text() == "earlier"


# ---------------------------------------------------------------- item 4: a case is finished only when all outputs are
def test_a_killed_case_is_redone_and_its_temp_files_removed(tmp_path, bundle, capsys):
    cases, out = tmp_path / "cases", tmp_path / "out"
    for i in range(2):
        write_ct(cases, f"case{i}", seed=i)
    assert main(predict_args(cases, out, bundle, "--save-prob")) == 0
    # the state `kill -9` leaves between the mask and its probability map of case1
    mask = out / "case1.nii.gz"
    (out / "case1_prob.nii.gz").unlink()
    outputs.record_path(mask).unlink()
    outputs.lock_path(mask).write_text("12345\n")
    (out / ".case1_prob.nii.gz.abcd1234.nii.gz").write_bytes(b"")
    capsys.readouterr()
    assert main(predict_args(cases, out, bundle, "--save-prob")) == 0
    printed = capsys.readouterr().out
    assert "case1" in printed and "case0" not in printed  # case0 was finished, case1 was not
    assert nib.load(out / "case1_prob.nii.gz").shape == nib.load(mask).shape
    assert outputs.is_finished(mask) and leftovers(out) == []


def test_disk_full_while_writing_the_probability_map(tmp_path, bundle, monkeypatch, capsys):
    import rstn_core.io as io

    ct = write_ct(tmp_path)
    out = tmp_path / "out" / "mask.nii.gz"
    real_save = io.nib.save

    def full_disk(img, filename):
        if "_prob" in str(filename):
            Path(filename).write_bytes(b"\0" * 100)
            raise OSError(errno.ENOSPC, "No space left on device", str(filename))
        real_save(img, filename)

    monkeypatch.setattr(io.nib, "save", full_disk)
    assert main(predict_args(ct, out, bundle, "--save-prob")) == 2
    err = capsys.readouterr().err
    assert "no space left" in err and "Traceback" not in err
    assert sorted(p.name for p in out.parent.iterdir()) == []  # neither the mask nor a temp file stays
    monkeypatch.setattr(io.nib, "save", real_save)
    assert main(predict_args(ct, out, bundle, "--save-prob")) == 0  # the rerun is not refused
    assert out.exists() and out.with_name("mask_prob.nii.gz").exists()


# ---------------------------------------------------------------- item 8: OS errors are one line, exit 2
def test_read_only_output_folder_is_one_line(tmp_path, bundle, monkeypatch, capsys):
    import rstn_core.atomic as atomic

    def read_only(*args, dir=None, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(dir))

    ct = write_ct(tmp_path)
    monkeypatch.setattr(atomic.tempfile, "mkstemp", read_only)
    assert main(predict_args(ct, tmp_path / "ro" / "mask.nii.gz", bundle)) == 2
    err = capsys.readouterr().err
    assert "read-only file system" in err and "Traceback" not in err


@pytest.mark.parametrize("command", ["predict", "train", "phantoms"])
def test_output_below_a_file_is_one_line(tmp_path, bundle, command):
    ct = write_ct(tmp_path)
    (tmp_path / "afile").write_text("x")
    target = tmp_path / "afile" / "out"
    argv = {"predict": predict_args(ct, target / "mask.nii.gz", bundle),
            "train": ["train", "--data", tmp_path, "--out", target],
            "phantoms": ["phantoms", "--out", target, "--n", "1"]}[command]
    line = one_line_error(rstn(*argv))
    assert "afile" in line and not (tmp_path / "afile").is_dir()


@pytest.mark.parametrize("command", ["predict", "train", "evaluate"])
def test_bogus_device_is_one_line(tmp_path, bundle, command):
    ct = write_ct(tmp_path)
    argv = {"predict": predict_args(ct, tmp_path / "m.nii.gz", bundle)[:-2],
            "train": ["train", "--data", tmp_path, "--out", tmp_path / "run"],
            "evaluate": ["evaluate", "--data", tmp_path, "--models", tmp_path, "--out", tmp_path / "res"]}[command]
    line = one_line_error(rstn(*argv, "--device", "bogus"))
    assert "--device 'bogus': not a torch device" in line


def test_phantoms_on_a_full_disk_leave_nothing(tmp_path, monkeypatch, capsys):
    calls = []

    def full_disk(img, filename):
        calls.append(filename)
        if len(calls) > 2:
            Path(filename).write_bytes(b"\0" * 100)
            raise OSError(errno.ENOSPC, "No space left on device", str(filename))
        nib.Nifti1Image.to_filename(img, filename)

    monkeypatch.setattr(nib, "save", full_disk)  # phantom.py imports nibabel inside its writer
    out = tmp_path / "ph"
    assert main(["phantoms", "--out", str(out), "--n", "2", "--spacing", "12", "12", "12"]) == 2
    err = capsys.readouterr().err
    assert "no space left" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # no dataset, no staging folder, no .tmp.nii.gz


def test_evaluate_models_binary_file_is_one_line(tmp_path):
    blob = tmp_path / "models.bin"
    blob.write_bytes(bytes(range(256)) * 4)
    line = one_line_error(rstn("evaluate", "--data", tmp_path, "--models", blob, "--out", tmp_path / "res",
                               "--device", "cpu"))
    assert "not a JSON mapping" in line and not (tmp_path / "res").exists()


def test_torch_save_on_a_full_disk_is_an_os_error_and_leaves_no_temp(tmp_path, monkeypatch):
    import torch

    from rstn_core.cli import describe_os_error
    from rstn_core.models import bundle as bundle_module

    def torn(payload, filename):
        Path(filename).write_bytes(b"PK")
        raise RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 64 vs 0")

    monkeypatch.setattr(torch, "save", torn)
    with pytest.raises(OSError) as info:
        bundle_module.atomic_torch_save({"a": 1}, tmp_path / "last.ckpt")
    assert "torch.save failed" in describe_os_error(info.value) or "no space" in describe_os_error(info.value)
    assert list(tmp_path.iterdir()) == []


def test_stale_checkpoint_temp_is_removed_by_the_next_run(tmp_path):
    (tmp_path / "axial").mkdir()
    stale = tmp_path / "axial" / ".last.ckpt.k3j_x9q2.tmp"
    stale.write_bytes(b"")
    (tmp_path / "axial" / "last.ckpt").write_bytes(b"checkpoint")
    folders.prepare_run_folder(tmp_path, overwrite=False, resume=True)
    assert not stale.exists() and (tmp_path / "axial" / "last.ckpt").exists()


# ---------------------------------------------------------------- item 10: concurrent runs cooperate
def test_a_claimed_case_is_busy_for_another_run(tmp_path):
    mask = tmp_path / "case.nii.gz"
    first = outputs.Claim(mask)
    assert first.acquire()
    assert outputs.produce_case(mask, [mask], lambda: ([mask], {}), overwrite=False) == "busy"
    first.release()
    assert not outputs.lock_path(mask).exists()


def test_two_predict_runs_into_one_folder_both_succeed(tmp_path, bundle):
    cases, out = tmp_path / "cases", tmp_path / "out"
    for i in range(4):
        write_ct(cases, f"case{i}", seed=i)
    import os

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    argv = [sys.executable, "-m", "rstn_core.cli", *predict_args(cases, out, bundle, "--save-prob")]
    runs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
            for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in runs]
    for code, err in results:
        assert code == 0, err
        assert "overwrite=True" not in err
    for i in range(4):
        assert outputs.is_finished(out / f"case{i}.nii.gz")
    assert leftovers(out) == []


def test_foreign_output_in_a_batch_names_the_cli_flag(tmp_path, bundle):
    cases, out = tmp_path / "cases", tmp_path / "out"
    write_ct(cases, "case0")
    out.mkdir()
    (out / "case0.nii.gz").write_bytes(b"someone else's file")
    line = one_line_error(rstn(*predict_args(cases, out, bundle)))
    assert "no completion record" in line and "--overwrite" in line and "overwrite=True" not in line
