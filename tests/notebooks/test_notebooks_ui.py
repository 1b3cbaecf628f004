"""Browser tests of the notebooks: JupyterLab from the project's environment driven by headless Chromium,
and an exported notebook HTML opened offline.

Run on their own: ``pytest -m ui``. JupyterLab serves a temporary copy of ``notebooks/`` (the repository
is not modified) on 127.0.0.1 with a token and fresh Jupyter config/runtime/data folders; readiness is
polled on the cheap ``/api/status``. Screenshots land in test-artifacts/ (docs/figures/ with
RSTN_UPDATE_SCREENSHOTS=1).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.ui

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
FIGURES = ROOT / ("docs/figures" if os.environ.get("RSTN_UPDATE_SCREENSHOTS") == "1" else "test-artifacts")
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SLOW_MS = 300_000  # the machine is shared and loaded: kernels start and rounds run slowly

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _venv_jupyter() -> Path:
    venv = ROOT / ".venv" / "bin" / "jupyter"
    return venv if venv.exists() else Path(sys.executable).with_name("jupyter")


def _inject_parameters(notebook: Path, values: dict) -> None:
    """Like papermill: a cell after the ``parameters`` cell overriding some of them."""
    nb = json.loads(notebook.read_text())
    at = next(i for i, c in enumerate(nb["cells"]) if "parameters" in c["metadata"].get("tags", []))
    source = "".join(f"{k} = {v!r}\n" for k, v in values.items())
    nb["cells"].insert(at + 1, {"cell_type": "code", "execution_count": None, "id": "injected-parameters",
                                "metadata": {"tags": ["injected-parameters"]}, "outputs": [], "source": source})
    notebook.write_text(json.dumps(nb, indent=1))


def _api(url: str, timeout: float = 5) -> dict | list:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def browser_context(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not found: install Debian's chromium package (make browser)")
    with playwright_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=CHROMIUM, args=FLAGS, headless=True,
            viewport={"width": 1500, "height": 1100})
        yield context
        context.close()


@pytest.fixture(scope="module")
def lab(tmp_path_factory, browser_context):
    """JupyterLab on a copy of notebooks/ -> (base url, token, log path)."""
    base = tmp_path_factory.mktemp("lab")
    copy = base / "notebooks"
    shutil.copytree(NOTEBOOKS, copy, ignore=shutil.ignore_patterns("runs", ".ipynb_checkpoints", "__pycache__"))
    # a short run for a loaded machine: the demo RSTN bundle, at most 2 rounds, no C2F run
    _inject_parameters(copy / "inspect.ipynb", {"max_rounds": 2, "c2f_bundle_path": None})
    # long enough to watch and stop: tiny phantoms and model, 400 iterations per stage
    _inject_parameters(copy / "train.ipynb", {
        "phantoms_n": 2, "phantoms_seed": 3, "phantoms_shape": [48, 44, 32], "phantoms_spacing": [8.0, 8.0, 7.5],
        "recipe": "tiny", "iterations": 400, "folds": 2, "out_dir": str(base / "train-run")})
    notification = base / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notification.parent.mkdir(parents=True)
    notification.write_text(json.dumps({"fetchNews": "false"}))  # no "get notified about news?" toast
    # every cell stays in the DOM: windowed rendering drops the outputs scrolled out of view (the stepper's table)
    tracker = base / "settings" / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True)
    tracker.write_text(json.dumps({"windowingMode": "none"}))
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=str(ROOT),
               OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"),
               JUPYTER_CONFIG_DIR=str(base / "config"), JUPYTER_RUNTIME_DIR=str(base / "runtime"),
               JUPYTER_DATA_DIR=str(base / "data"), IPYTHONDIR=str(base / "ipython"))
    cmd = [str(_venv_jupyter()), "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={copy}",
           f"--LabApp.user_settings_dir={base / 'settings'}", f"--LabApp.workspaces_dir={base / 'workspaces'}",
           "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
           "--LabApp.extension_manager=readonly"] + (["--allow-root"] if os.geteuid() == 0 else [])
    log_path = base / "lab.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=copy, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 400  # a loaded machine: JupyterLab took > 3 min to answer once
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"jupyter lab exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            _api(f"{url}/api/status?token={token}")
            break
        except OSError:
            time.sleep(1)
    else:
        proc.terminate()
        pytest.fail(f"jupyter lab did not answer on {url}/api/status:\n{log_path.read_text()[-3000:]}")
    yield url, token, log_path, base
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
    assert not (NOTEBOOKS / "runs").exists()


def _wait_idle(url: str, token: str, timeout_s: float) -> None:
    """Until every kernel of the server is idle twice in a row (cells run one after another)."""
    deadline, idle = time.time() + timeout_s, 0
    while time.time() < deadline:
        kernels = _api(f"{url}/api/kernels?token={token}")
        idle = idle + 1 if kernels and all(k["execution_state"] == "idle" for k in kernels) else 0
        if idle >= 2:
            return
        time.sleep(2)
    raise AssertionError(f"kernels still busy after {timeout_s} s: {kernels}")


def _run_all_in_lab(lab, browser_context, notebook: str):
    """Open ``notebook`` in JupyterLab, wait for its kernel, Run All Cells -> (page, page errors seen)."""
    url, token, _, _ = lab
    page = browser_context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    # ?reset: a fresh workspace, so no notebook of an earlier test is restored in a hidden tab
    page.goto(f"{url}/lab/tree/{notebook}?reset&token={token}", timeout=SLOW_MS)
    page.locator(".jp-Notebook:visible").first.wait_for(timeout=SLOW_MS)
    _wait_idle(url, token, SLOW_MS / 1000)  # the kernel has started
    page.locator(".jp-Notebook:visible").first.click()
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name=re.compile(r"^Run All Cells")).click()
    return page, problems


@pytest.mark.timeout(1800)
def test_inspect_notebook_runs_in_jupyterlab_and_its_stepper_steps(lab, browser_context):
    url, token, log_path, _ = lab
    page, problems = _run_all_in_lab(lab, browser_context, "inspect.ipynb")
    expect(page.locator(".jp-Notebook-ExecutionIndicator, #jp-main-statusbar")).not_to_have_count(0)
    status = page.get_by_test_id("status").first
    table = page.locator("[data-testid=rounds-table] tbody tr")
    FIGURES.mkdir(parents=True, exist_ok=True)
    try:
        status.wait_for(timeout=SLOW_MS)  # the stepper is on the page
        expect(page.locator(".jp-InputArea-prompt").filter(has_text="[*]")).to_have_count(0, timeout=3 * SLOW_MS)
        _wait_idle(url, token, SLOW_MS / 1000)  # every cell has run
        errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").filter(
            has_text=re.compile("Traceback|Error"))
        assert errors.count() == 0, errors.all_inner_texts()[:2]
        # round 0 is computed in a worker thread when the stepper opens (a minute on a loaded machine)
        expect(status).to_contain_text("round 0", timeout=SLOW_MS)
        step = page.get_by_role("button", name="Step", exact=True)
        expect(step).to_be_enabled(timeout=SLOW_MS)
        expect(table).to_have_count(1, timeout=SLOW_MS)  # round 0
        step.scroll_into_view_if_needed()
        step.click()
        expect(table).to_have_count(2, timeout=SLOW_MS)  # the kernel ran round 1 and pushed it
        expect(status).to_contain_text("round 1", timeout=SLOW_MS)
    except BaseException:
        page.screenshot(path=str(FIGURES / "notebook_inspect_lab_failure.png"))
        raise
    page.locator(".slice-viewer").first.scroll_into_view_if_needed()
    FIGURES.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(FIGURES / "notebook_inspect_lab.png"))
    assert not problems, problems
    assert "Traceback" not in log_path.read_text()


# number of data points in the glyphs of the Bokeh plot titled ``title`` (null: no such plot on the page)
GLYPH_POINTS_JS = """(title) => {
  const seen = new Set();
  let points = null;
  function walk(view) {
    if (!view || seen.has(view)) return;
    seen.add(view);
    const model = view.model;
    if (model && model.title && model.title.text === title && model.renderers) {
      points = (points || 0) + model.renderers.filter(r => r.data_source)
        .reduce((n, r) => n + (r.data_source.get_length() || 0), 0);
    }
    for (const child of (view.child_views || [])) walk(child);
  }
  for (const root of Object.values(window.Bokeh ? Bokeh.index : {})) walk(root);
  return points;
}"""


def _poll(read, accept, timeout_s: float, what: str):
    """``read()`` until ``accept(value)``; -> that value (AssertionError naming ``what`` and the last value)."""
    deadline, value = time.time() + timeout_s, None
    while time.time() < deadline:
        value = read()
        if accept(value):
            return value
        time.sleep(1)
    raise AssertionError(f"{what}: still {value!r} after {timeout_s} s")


def _bar_counts(page) -> dict[str, tuple[int, int]]:
    """tqdm's notebook bars on the page: description -> (n, total), from their ipywidgets HBoxes."""
    counts = {}
    for text in page.locator(".jp-OutputArea-output .widget-hbox").all_inner_texts():
        found = re.search(r"^(.*?):.*?(\d+)/(\d+)", " ".join(text.split()))
        if found:
            counts[found.group(1).strip()] = (int(found.group(2)), int(found.group(3)))
    return counts


@pytest.mark.timeout(1800)
def test_train_notebook_run_all_shows_live_loss_and_progress_and_stop_leaves_a_checkpoint(lab, browser_context):
    """Run All on train.ipynb: while the cell after the chart waits for the run ([*]), the live chart's Bokeh
    glyphs gain points and the tqdm widget bars advance; Stop then ends the run with last.ckpt written and
    the rest of the notebook runs."""
    from rstn_core.training.checkpoint import load_checkpoint

    url, token, log_path, base = lab
    page, problems = _run_all_in_lab(lab, browser_context, "train.ipynb")
    status = page.locator(".training-status").first
    waiting = page.locator(".jp-Cell").filter(has_text="await run.wait_async()").first.locator(".jp-InputPrompt")
    FIGURES.mkdir(parents=True, exist_ok=True)
    try:
        expect(status).to_contain_text(re.compile(r"running · step \d+"), timeout=SLOW_MS)
        points = lambda: page.evaluate(GLYPH_POINTS_JS, "rstn training loss (live)")  # noqa: E731
        first = _poll(points, lambda n: bool(n), SLOW_MS / 1000, "points in the live loss chart")
        expect(waiting).to_contain_text("[*]")  # the updates arrive while the next cell waits for the run
        more = _poll(points, lambda n: n > first, SLOW_MS / 1000, f"points in the live chart after {first}")
        bars = _poll(lambda: _bar_counts(page), lambda c: c.get("axial S", (0, 0))[0] > 0, SLOW_MS / 1000,
                     "the 'axial S' progress bar")
        assert set(bars) == {"axial S", "axial I", "axial J"} and bars["axial S"][1] == 400, bars
        done = sum(n for n, _ in bars.values())
        _poll(lambda: sum(n for n, _ in _bar_counts(page).values()), lambda n: n > done, SLOW_MS / 1000,
              f"progress beyond {done} iterations")
        outputs = page.locator(".jp-Cell").filter(has_text="live = pn.state.add_periodic_callback").first
        outputs.locator(".jp-OutputArea").first.evaluate("e => e.scrollIntoView({block: 'start'})")
        page.screenshot(path=str(FIGURES / "notebook_train_live.png"))  # mid-run: status, bars, chart
        live_points = points()
        page.get_by_role("button", name=re.compile("^Stop")).click()
        expect(status).to_contain_text("stopped (resumable)", timeout=SLOW_MS)
        expect(page.locator(".jp-InputPrompt").filter(has_text="[*]")).to_have_count(0, timeout=SLOW_MS)
        _wait_idle(url, token, SLOW_MS / 1000)
        errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").filter(
            has_text=re.compile("Traceback|Error|Attempted to send"))
        assert errors.count() == 0, errors.all_inner_texts()[:2]
        final = page.evaluate(GLYPH_POINTS_JS, "rstn training loss (soft-DSC)")  # the chart after the run
        assert final and final >= points() >= live_points >= more > first > 0, (first, more, live_points, final)
    except BaseException:
        page.screenshot(path=str(FIGURES / "notebook_train_lab_failure.png"))
        raise
    outputs.locator(".jp-OutputArea").first.evaluate("e => e.scrollIntoView({block: 'start'})")
    page.screenshot(path=str(FIGURES / "notebook_train_end.png"))  # stopped: red bar, the whole curve
    ckpt = load_checkpoint(base / "train-run" / "axial" / "last.ckpt")
    assert ckpt["train_state"].global_step >= done
    assert not (base / "train-run" / "model.rstn").exists()  # stopped: no bundle until resumed
    assert not problems, problems
    assert "Traceback" not in log_path.read_text()


# page position of data point (x, y) in the Bokeh plot titled ``title``: from the plot view's own scales
POINT_JS = """([title, x, y]) => {
  const seen = new Set(), found = [];
  function walk(view) {
    if (!view || seen.has(view)) return;
    seen.add(view);
    if (view.frame && view.frame.x_scale && view.model.title && view.model.title.text === title) {
      const r = view.canvas_view.el.getBoundingClientRect();
      found.push([r.x + view.frame.x_scale.compute(x), r.y + view.frame.y_scale.compute(y)]);
    }
    for (const child of (view.child_views || [])) walk(child);
  }
  for (const root of Object.values(Bokeh.index)) walk(root);
  return found[0] || null;
}"""


def test_exported_notebook_html_opens_offline_with_a_rendered_bokeh_plot(tmp_path, browser_context):
    """evaluate.ipynb on a saved results.json, exported with the offline template, opened from file://
    with every other request refused: the Bokeh plots draw and the hover names the case."""
    import papermill as pm

    from rstn_core.evaluation.crossval import CaseResult

    cases = [CaseResult(method, fold, f"case_{i}", 0.5 + 0.04 * i, [0.5 + 0.04 * i, dsc, dsc], [0.9, 0.99], dsc, 2,
                        True, "converged", {"0.95": 2, "0.99": 2}, 1.0).to_dict()
             for i, fold in ((0, 0), (1, 0), (2, 1), (3, 1))
             for method, dsc in (("rstn", 0.7 + 0.05 * i), ("c2f", 0.65 + 0.02 * i))]
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"cases": cases}))
    executed = tmp_path / "evaluate.ipynb"
    pm.execute_notebook(str(NOTEBOOKS / "evaluate.ipynb"), str(executed), parameters={"results_json": str(results)},
                        cwd=str(ROOT), kernel_name="python3", progress_bar=False)
    subprocess.run([sys.executable, "-m", "nbconvert", "--to", "html", "--template-file",
                    str(NOTEBOOKS / "offline.html.j2"), str(executed)], check=True, capture_output=True, cwd=ROOT)
    html = executed.with_suffix(".html")

    refused: list[str] = []

    def only_files(route):
        if route.request.url.startswith(("file://", "data:", "blob:")):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    page = browser_context.new_page()
    page.route("**/*", only_files)
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(html.as_uri(), timeout=SLOW_MS)
    scatter = page.locator(".paired-scatter canvas, .paired-scatter .bk-Canvas").first
    scatter.wait_for(timeout=SLOW_MS)
    box = page.locator(".paired-scatter .bk-Canvas").first.bounding_box()
    assert box and box["width"] > 200 and box["height"] > 200
    assert page.locator(".bk-Canvas").count() >= 3  # the scatter and the two curves of the case explorer
    # case_3: C2F 71 %, RSTN 85 %: hovering on it shows its id in Bokeh's tooltip
    page.locator(".paired-scatter .bk-Canvas").first.scroll_into_view_if_needed()
    page.wait_for_timeout(1000)
    point = page.evaluate(POINT_JS, ["RSTN wins 4 of 4 cases", 71, 85])
    assert point, "the scatter's Bokeh view was not found"
    page.mouse.move(point[0] + 1, point[1] + 1)
    page.mouse.move(*point)
    expect(page.locator(".bk-Tooltip").get_by_text("case_3")).to_have_count(1, timeout=30_000)
    FIGURES.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(FIGURES / "notebook_evaluate_offline.png"))  # the scatter with its tooltip
    assert not refused, f"the offline HTML asked the network for {refused[:3]}"
    assert not problems, problems
