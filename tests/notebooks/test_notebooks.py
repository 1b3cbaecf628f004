"""The notebooks run top to bottom with papermill on tiny settings and export to offline HTML reports.

Tiny setting: 2 phantoms of 48 x 44 x 32 voxels (8 mm, so the pancreas fits), the ``tiny`` recipe with
2 iterations per stage, untrained ``tiny`` fold bundles for inspection and evaluation, 2-3 rounds.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("papermill")
pytest.importorskip("nbconvert")

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
TEMPLATE = NOTEBOOKS / "offline.html.j2"
SHAPE = [48, 44, 32]
SPACING = [8.0, 8.0, 7.5]
BOKEH_FIGURE = '"name":"Figure"'  # a Bokeh plot in Panel's embedded document JSON
EXTERNAL = re.compile(r"<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)\s*=\s*[\"']?(?:https?:)?//", re.I)

pytestmark = pytest.mark.slow


def run_notebook(name: str, out_dir: Path, parameters: dict) -> Path:
    """Execute notebooks/<name>.ipynb with ``parameters``; -> the executed notebook's path."""
    import papermill as pm

    out = out_dir / f"{name}.ipynb"
    pm.execute_notebook(str(NOTEBOOKS / f"{name}.ipynb"), str(out), parameters=parameters, cwd=str(ROOT),
                        kernel_name="python3", progress_bar=False)
    return out


def outputs(notebook: Path) -> list[dict]:
    return [o for c in json.loads(notebook.read_text())["cells"] if c["cell_type"] == "code" for o in c["outputs"]]


def assert_no_warnings(notebook: Path) -> None:
    """No warning of any kind (Python warnings, logging WARNING, tqdm's 'IProgress not found') in any output."""
    texts = ["".join(o["text"]) if o["output_type"] == "stream" else json.dumps(o.get("data", {}).get("text/plain", ""))
             for o in outputs(notebook) if o["output_type"] in ("stream", "display_data", "execute_result", "error")]
    bad = [t for t in texts if re.search(r"warn|IProgress|Traceback", t, re.I)]
    assert not bad, f"{notebook.name}: warnings in the outputs: {bad[:3]}"


def export_html(notebook: Path) -> str:
    """``jupyter nbconvert --to html`` with the offline template; -> the HTML text."""
    subprocess.run([sys.executable, "-m", "nbconvert", "--to", "html", "--template-file", str(TEMPLATE),
                    str(notebook)], check=True, capture_output=True, cwd=ROOT)
    return notebook.with_suffix(".html").read_text(encoding="utf-8")


def check_report(html: str, headings: list[str], min_images: int) -> None:
    for heading in headings:
        assert re.search(rf"<h[12][^>]*>{re.escape(heading)}", html), f"heading {heading!r} missing"
    images = len(re.findall(r"<img\b[^>]*src=\"data:image/png;base64,", html))  # figures, not CSS icons
    assert images >= min_images, f"{images} embedded PNGs, expected >= {min_images}"
    assert not EXTERNAL.findall(html), f"network references: {EXTERNAL.findall(html)[:3]}"
    assert "Traceback (most recent call last)" not in html


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """Phantoms (2 cases) and untrained tiny fold bundles fold{0,1}.rstn, c2f_fold{0,1}.rstn."""
    from rstn_core.config import DataConfig, ModelConfig
    from rstn_core.data.phantom import write_phantom_dataset
    from rstn_core.models.bundle import ModelBundle, save_bundle
    from rstn_core.models.rstn import build_model
    from rstn_core.types import View

    root = tmp_path_factory.mktemp("notebooks")
    write_phantom_dataset(root / "phantoms", 2, 11, shape=tuple(SHAPE), spacing=tuple(SPACING))
    config = ModelConfig.from_preset("tiny", dropout=0.0)
    (root / "models").mkdir()
    for method, prefix in (("rstn", ""), ("c2f", "c2f_")):
        for fold in range(2):
            bundle = ModelBundle(method, config, DataConfig(target_labels=(7,)),
                                 {View.AXIAL: build_model(method, config)}, {"organ": "pancreas", "fold": fold})
            save_bundle(bundle, root / "models" / f"{prefix}fold{fold}.rstn")
    return root


def test_train_notebook_trains_a_bundle_and_reports_offline(tmp_path):
    out = tmp_path / "run"
    executed = run_notebook("train", tmp_path, {
        "out_dir": str(out), "phantoms_n": 2, "phantoms_seed": 3, "phantoms_shape": SHAPE,
        "phantoms_spacing": SPACING, "recipe": "tiny", "iterations": 2, "folds": 2})
    assert (out / "model.rstn").is_file() and (out / "axial" / "metrics.jsonl").is_file()
    assert_no_warnings(executed)
    nb = json.loads(executed.read_text())
    # tqdm.auto drew ipywidgets bars (not text bars): their final state is saved with the notebook
    state = nb["metadata"]["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    bars = [m["state"]["value"] for m in state.values() if m["model_name"] == "HTMLModel"]
    assert any(re.match(r"axial\W+S:\W+100%", b) for b in bars), bars
    assert any(m["model_name"] == "FloatProgressModel" for m in state.values())
    html = export_html(executed)
    check_report(html, ["RSTN training", "Data", "Plan", "Training", "Loss curves"], min_images=1)
    assert "application/vnd.jupyter.widget-state+json" in html and "offline renderer" in html
    assert html.count(BOKEH_FIGURE) >= 2  # the live chart (as displayed) and the final interactive one
    assert "finished after" in html


def test_inspect_notebook_shows_rounds_saliency_and_comparison(tmp_path, workspace):
    executed = run_notebook("inspect", tmp_path, {
        "bundle_path": str(workspace / "models" / "fold0.rstn"),
        "c2f_bundle_path": str(workspace / "models" / "c2f_fold0.rstn"),
        "phantom_seed": 5, "phantom_shape": SHAPE, "phantom_spacing": SPACING, "max_rounds": 2})
    assert_no_warnings(executed)
    stepper = [o for o in outputs(executed) if "App(" in str(o.get("data", {}).get("text/plain", ""))]
    assert stepper and "application/vnd.holoviews_exec.v0+json" in stepper[0]["data"], "the app's stepper is not shown"
    html = export_html(executed)
    check_report(html, ["RSTN inspection", "Bundle and case", "Stepper", "Rounds", "Saliency (Figure 5)",
                        "Convergence", "Stage-wise C2F vs RSTN (Figure 2)"], min_images=4)
    assert "rounds-table" in html  # the stepper's round table (snapshot)
    assert html.count(BOKEH_FIGURE) >= 1
    last = [c for c in json.loads(executed.read_text())["cells"] if c["cell_type"] == "code"][-1]
    assert any("image/png" in o.get("data", {}) for o in last["outputs"]), "no C2F vs RSTN figure"


def test_evaluate_notebook_runs_crossval_and_reloads_results(tmp_path, workspace):
    results = tmp_path / "results"
    executed = run_notebook("evaluate", tmp_path, {
        "data_dir": str(workspace / "phantoms"), "models_dir": str(workspace / "models"), "max_rounds": 2,
        "out_dir": str(results)})
    saved = json.loads((results / "results.json").read_text())
    assert {c["method"] for c in saved["cases"]} == {"rstn", "c2f", "oracle"} and len(saved["cases"]) == 6
    assert_no_warnings(executed)
    html = export_html(executed)
    check_report(html, ["RSTN evaluation", "Results", "Tables", "Plots", "RSTN vs C2F, case by case",
                        "One case: per-round curves and slices"], min_images=2)
    assert "<table" in html  # the Markdown tables rendered
    assert '"name":"HoverTool"' in html and "phantom_001" in html
    # the case / method / round frames are embedded (widgets work without a kernel): 2 x 2 x 3 states
    assert html.count(BOKEH_FIGURE) >= 4 and '"name":"panel.models.state.State"' in html

    reload_dir = tmp_path / "reload"
    reload_dir.mkdir()
    reloaded = run_notebook("evaluate", reload_dir, {"results_json": str(results / "results.json")})
    assert_no_warnings(reloaded)
    check_report(export_html(reloaded), ["Tables", "Plots", "One case: per-round curves and slices"], min_images=2)


@pytest.mark.parametrize("name", ["train", "inspect", "evaluate"])
def test_committed_notebooks_are_clean_with_parameters_and_kernelspec(name):
    nb = json.loads((NOTEBOOKS / f"{name}.ipynb").read_text())
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert "parameters" in code[0]["metadata"].get("tags", [])
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), "outputs not cleared"
    source = "".join("".join(c["source"]) for c in code)
    assert "IProgress" not in source and "filterwarnings" not in source  # nothing silenced
    assert 'pn.extension(' in source and "inline=True" in source and 'hv.extension("bokeh", inline=True)' in source
