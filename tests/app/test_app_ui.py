"""Browser tests: one `panel serve app/ tests/app/stub_app/` in a subprocess, headless Chromium via Playwright.

Run on their own: ``pytest -m ui``. ``/app`` is the app as a user starts it (built-in demo bundles);
``/stub_app`` is the same ``App`` with fast stub engines (``?engines=demo`` for the demo bundles,
``?case=real`` for the real example CT). The tests read what is drawn from the page's Bokeh models
(axis ranges and labels, crop-box glyphs) and its text. The server's readiness is checked on its log
line and a static file: a probe never opens a session. Screenshots land in test-artifacts/
(docs/figures/ with RSTN_UPDATE_SCREENSHOTS=1, to refresh the docs).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.ui

ROOT = Path(__file__).resolve().parents[2]
FIGURES = ROOT / ("docs/figures" if os.environ.get("RSTN_UPDATE_SCREENSHOTS") == "1" else "test-artifacts")
FIGURES.mkdir(parents=True, exist_ok=True)
REAL = ROOT.parent / "shared" / "data" / "totalseg_example"
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
STEP_TIMEOUT_MS = 240_000
LOG_PROBLEMS = re.compile(r"Traceback|ERROR|Exception|Error running application")
IGNORED_CONSOLE = ("GL Driver Message", "WebGL", "favicon")

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

# Every slice figure on the page: ranges, axis labels and the rows of its box (Quad) glyphs.
FIGURES_JS = """
() => {
  const out = [];
  for (const doc of window.Bokeh.documents) {
    const models = doc.all_models ? [...doc.all_models] : [...doc._all_models.values()];
    for (const m of models) {
      if (!(m.x_range && m.below && m.below.length && m.left && m.left.length)) continue;
      const label = m.below[0].axis_label;
      if (typeof label !== 'string' || !label.includes('←')) continue;
      const quads = m.renderers.filter(r => r.data_source && r.data_source.data
                                        && 'left' in r.data_source.data && 'top' in r.data_source.data)
                               .map(r => r.data_source.data.left.length);
      out.push({x: [m.x_range.start, m.x_range.end], y: [m.y_range.start, m.y_range.end],
                xlabel: label, ylabel: m.left[0].axis_label, quads: quads, title: m.title ? m.title.text : ''});
    }
  }
  return out;
}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_serving(port: int, log_path: Path, proc: subprocess.Popen, timeout: float = 180) -> None:
    """Wait for the server's 'Bokeh app running' log line, then for a static file: no session is made."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"panel serve exited with {proc.returncode}:\n{log_path.read_text()}")
        if "Bokeh app running at" in log_path.read_text():
            try:
                with urllib.request.urlopen(f"http://localhost:{port}/static/js/bokeh.min.js", timeout=10) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
        time.sleep(0.5)
    raise TimeoutError(f"panel serve did not start within {timeout:.0f} s:\n{log_path.read_text()}")


def wait_until_warm(log_path: Path, proc: subprocess.Popen, processes: int = 1, timeout: float = 900) -> None:
    """Wait for the server's start-up warm-up (``app/app_hooks.py``) to log that the demo is ready, once per
    server process; reads the log only (no session is made)."""
    from app.app_hooks import READY

    deadline = time.time() + timeout
    while log_path.read_text().count(READY) < processes:
        if proc.poll() is not None or time.time() > deadline:
            raise RuntimeError(f"the server's demo warm-up did not finish:\n{log_path.read_text()}")
        time.sleep(0.5)


def start_server(log_path: Path, port: int, options: tuple[str, ...] = ("--num-procs", "1")) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
    panel = Path(sys.executable).with_name("panel")
    cmd = [str(panel), "serve", "app/", "tests/app/stub_app/", "--port", str(port), *options,
           "--allow-websocket-origin", f"localhost:{port}"]
    with open(log_path, "w") as log:
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """Yields (base url, log path); the log must stay free of errors."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not found: install Debian's chromium package (make browser)")
    port = _free_port()
    log_path = tmp_path_factory.mktemp("server") / "panel.log"
    proc = start_server(log_path, port)
    try:
        wait_until_serving(port, log_path, proc)
    except (RuntimeError, TimeoutError) as exc:
        proc.terminate()
        pytest.fail(str(exc))
    yield f"http://localhost:{port}", log_path, proc
    os.kill(proc.pid, signal.SIGCONT)  # in case a test stopped it
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="module")
def browser_context(browser):
    context = browser.new_context(viewport={"width": 1500, "height": 1100}, accept_downloads=True)
    yield context
    context.close()


@pytest.fixture(scope="module")
def console_problems():
    return []


def _open(context, url, problems, ready: str = "round 0"):
    page = context.new_page()
    page.on("console", lambda m: m.type == "error" and not any(s in m.text for s in IGNORED_CONSOLE)
            and problems.append(m.text))
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(url, timeout=120_000)
    page.locator(".slice-viewer canvas").first.wait_for(timeout=STEP_TIMEOUT_MS)
    if ready:
        expect(page.get_by_test_id("status")).to_contain_text(ready, timeout=STEP_TIMEOUT_MS)
    return page


# What the browser drew last (app/slice_render.js): slice value, view, record version, draw count.
DRAWN_JS = "() => window.__rstn_drawn || {value: -1, view: '', version: 0, count: 0}"


def _drawn(page) -> dict:
    return page.evaluate(DRAWN_JS)


def _wait_drawn(page, condition: str, timeout_ms: int = 60_000) -> dict:
    """Wait (polling in the page) until ``condition`` holds for ``d`` = what was drawn last."""
    page.wait_for_function(f"(() => {{ const d = window.__rstn_drawn; return !!d && ({condition}); }})",
                           timeout=timeout_ms, polling=50)
    return _drawn(page)


def _figures(page) -> list[dict]:
    return page.evaluate(FIGURES_JS)


def _server_problems(log_path: Path) -> list[str]:
    """Log records with an error; a tab closing while the server writes to it is not an app error."""
    records = re.split(r"\n(?=\d{4}-\d{2}-\d{2} )", log_path.read_text())
    return [r for r in records if LOG_PROBLEMS.search(r) and "WebSocketClosedError" not in r]


def _settled_count(locator, quiet: float = 3.0, timeout: float = 60.0) -> int:
    """The locator's count once it has not changed for ``quiet`` seconds."""
    count, since, start = locator.count(), time.monotonic(), time.monotonic()
    while time.monotonic() - since < quiet and time.monotonic() - start < timeout:
        time.sleep(0.25)
        now = locator.count()
        if now != count:
            count, since = now, time.monotonic()
    return count


def _settle(page, seconds: float = 1.5) -> None:
    time.sleep(seconds)  # let the last plot updates reach the browser before a screenshot


@pytest.fixture(scope="module")
def app_page(server, browser_context, console_problems):
    return _open(browser_context, f"{server[0]}/app", console_problems)


def test_page_loads_with_demo_case_model_and_guide(app_page, server, console_problems):
    page = app_page
    expect(page.get_by_test_id("case-info")).to_contain_text("phantom")
    expect(page.get_by_test_id("model-info")).to_contain_text("RSTN")
    expect(page.get_by_test_id("model-info")).to_contain_text("trained on")
    expect(page.locator(".guide")).to_contain_text("Step")
    expect(page.locator(".error-alert")).to_be_hidden()
    assert console_problems == []
    assert _server_problems(server[1]) == [], server[1].read_text()[-4000:]


def test_frame_and_labels_follow_the_view(app_page):
    """A view switch is drawn by the browser (frame, labels) at once; the server follows it."""
    page = app_page
    axial = _figures(page)
    assert len(axial) == 1 and axial[0]["xlabel"].startswith("patient's right")
    assert axial[0]["ylabel"].startswith("posterior")
    page.get_by_role("button", name="sagittal").click()
    _wait_drawn(page, "d.view === 'sagittal'", timeout_ms=10_000)
    sagittal = _figures(page)
    assert len(sagittal) == 1, sagittal
    assert sagittal[0]["xlabel"].startswith("anterior ← → posterior")
    assert sagittal[0]["ylabel"].startswith("inferior")
    assert sagittal[0]["x"] != axial[0]["x"] or sagittal[0]["y"] != axial[0]["y"]
    expect(page.get_by_test_id("nav-info")).to_contain_text("sagittal", timeout=60_000)
    page.get_by_role("button", name="axial").click()
    _wait_drawn(page, "d.view === 'axial'", timeout_ms=10_000)
    expect(page.get_by_test_id("nav-info")).to_contain_text("axial", timeout=60_000)


def test_a_step_draws_the_crop_box_and_a_chart_point(app_page):
    page = app_page
    points = page.get_by_test_id("dsc-points")
    expect(points).to_have_text("0")
    page.get_by_role("button", name="Step", exact=True).click()
    expect(points).to_have_text("1", timeout=STEP_TIMEOUT_MS)
    expect(page.get_by_test_id("nav-info")).to_contain_text("round 1", timeout=60_000)
    deadline = time.time() + 60
    while time.time() < deadline and not any(sum(f["quads"]) for f in _figures(page)):
        time.sleep(0.5)
    assert any(sum(f["quads"]) >= 1 for f in _figures(page)), _figures(page)
    _settle(page)
    page.screenshot(path=str(FIGURES / "app_overview.png"), full_page=True)


def test_slice_keys_are_drawn_in_the_browser_with_the_server_stopped(app_page, server):
    """Slice changes need no server round trip: with the server process stopped (SIGSTOP) six quick key
    presses are all drawn (slice, title, pixels); the server learns the slice once it runs again."""
    page = app_page
    label = page.get_by_test_id("nav-info")
    page.locator("body").click(position={"x": 5, "y": 1090})
    before = _drawn(page)["value"]
    assert before >= 6, _drawn(page)
    pixels = page.locator(".slice-viewer canvas").first.screenshot()
    os.kill(server[2].pid, signal.SIGSTOP)
    try:
        for _ in range(6):
            page.keyboard.press("ArrowDown")
        drawn = _wait_drawn(page, f"d.value === {before - 6}", timeout_ms=20_000)
        assert drawn["value"] == before - 6
        assert any(f"slice {before - 6}/" in f["title"] for f in _figures(page)), _figures(page)
        assert page.locator(".slice-viewer canvas").first.screenshot() != pixels
    finally:
        os.kill(server[2].pid, signal.SIGCONT)
    expect(label).to_contain_text(f"slice {before - 6}/", timeout=60_000)  # the server follows lazily
    page.get_by_role("button", name="Jump to the worst slice").click()
    status = page.get_by_test_id("status")
    expect(status).to_contain_text(re.compile("slice|no error"), timeout=120_000)
    match = re.search(r"^slice (\d+):", status.inner_text())
    if match:  # a jump chosen on the server moves the browser's slider and drawing too
        _wait_drawn(page, f"d.value === {int(match.group(1))}", timeout_ms=30_000)


def test_saliency_with_difference_view(app_page):
    page = app_page
    page.locator(".bk-tab", has_text="Saliency").click()
    expect(page.get_by_test_id("saliency-caption")).to_contain_text("weights from the round", timeout=60_000)
    expect(page.get_by_test_id("saliency-caption")).to_contain_text("fixed colour scales")
    expect(page.locator(".saliency-plot canvas").first).to_be_visible()
    _settle(page, 2.5)
    page.screenshot(path=str(FIGURES / "app_saliency.png"), full_page=True)


def test_report_downloads_and_opens_offline(app_page, browser_context, tmp_path):
    page = app_page
    with page.expect_download(timeout=120_000) as info:
        page.get_by_role("button", name=re.compile("Export HTML report")).click()
    path = tmp_path / "report.html"
    info.value.save_as(path)
    text = path.read_text()
    assert path.stat().st_size > 10_000 and "\\u00b7" not in text
    offline = browser_context.new_page()
    outside = []

    def block(route):
        if route.request.url.startswith(("file:", "data:")):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    offline.route("**/*", block)
    offline.goto(path.as_uri())
    expect(offline.get_by_test_id("report-title")).to_contain_text("RSTN Studio report")
    expect(offline.locator("[data-testid=report-summary-rounds] tbody tr")).to_have_count(2)
    expect(offline.get_by_test_id("report-saliency-1")).to_be_visible()
    loaded = offline.evaluate("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
    assert loaded and offline.locator("img").count() >= 3
    offline.close()
    assert outside == []


def test_typed_path_outside_the_data_folder_is_a_message(app_page):
    page = app_page
    page.locator(".card-header", has_text="Load another CT").click()
    box = page.locator(".file-picker input[type=text]").first
    box.fill("/etc")
    box.press("Enter")
    alert = page.locator(".error-alert")
    expect(alert).to_contain_text("outside the data folder", timeout=30_000)
    page.get_by_role("button", name="Load server files").click()
    expect(alert).to_contain_text("choose an image", timeout=30_000)
    page.locator(".card-header", has_text="Load another CT").click()  # fold it again


@pytest.mark.timeout(1800)  # both demo models to convergence: > 10 min at a load average of 45
def test_compare_is_readable(app_page, server, console_problems):
    page = app_page
    page.get_by_role("button", name="Compare with baseline").click()
    export = page.get_by_role("button", name=re.compile("Export HTML report"))
    expect(export).to_be_disabled(timeout=30_000)  # no partial report mid-run
    page.locator(".bk-tab", has_text="Compare RSTN vs C2F").click()
    expect(page.get_by_test_id("compare-baseline")).to_be_visible(timeout=2 * STEP_TIMEOUT_MS)
    expect(page.get_by_test_id("status")).to_contain_text(re.compile(r"c2f.*stopped", re.IGNORECASE),
                                                          timeout=2 * STEP_TIMEOUT_MS)
    expect(page.get_by_test_id("compare-where")).to_contain_text("slice")
    expect(page.locator(".compare-panel .legend")).to_contain_text("FN")
    expect(export).to_be_enabled(timeout=60_000)
    _settle(page, 2.5)
    page.screenshot(path=str(FIGURES / "app_compare.png"), full_page=True)
    assert console_problems == []
    assert _server_problems(server[1]) == [], server[1].read_text()[-4000:]


def test_a_cold_first_session_draws_the_slice_the_server_chose(server, browser_context, console_problems):
    """The first session of fresh engines loads its case after the page (onload): the case's navigation may
    reach the browser before its record, and must still be applied (the browser drew slice 0 while the
    header said the organ's slice)."""
    page = _open(browser_context, f"{server[0]}/stub_app?step_delay=0.01", console_problems)  # new engines
    match = re.search(r"slice (\d+)/", page.get_by_test_id("nav-info").inner_text())
    assert match and int(match.group(1)) > 0
    _wait_drawn(page, f"d.value === {int(match.group(1))} && d.view === 'axial'", timeout_ms=30_000)
    page.close()


def _tiny_ct_nifti() -> bytes:
    """A small CT in HU (air, soft tissue, a bone) as .nii.gz bytes, made here."""
    import gzip

    import nibabel as nib
    import numpy as np

    hu = np.full((40, 36, 12), -1000, dtype=np.int16)
    hu[4:-4, 4:-4, :] = 40
    hu[8:14, 8:14, :] = 700
    return gzip.compress(nib.Nifti1Image(hu, np.diag([2.0, 2.0, 3.0, 1.0])).to_bytes())


def test_the_upload_widget_loads_when_the_data_panel_opens_and_uploads(server, browser_context, console_problems):
    """The upload widget's scripts are not part of the page: opening the data panel loads them, the widget
    appears, and a CT dropped into it is uploaded and loaded."""
    page = _open(browser_context, f"{server[0]}/stub_app", console_problems)
    assert page.evaluate("typeof window.FilePond") == "undefined"  # not loaded with the page
    page.locator(".card-header", has_text="Load another CT").click()
    drop = page.locator(".image-drop .filepond--root")
    expect(drop).to_be_visible(timeout=60_000)
    drop.locator("input[type=file]").set_input_files(
        {"name": "tiny_ct.nii.gz", "mimeType": "application/gzip", "buffer": _tiny_ct_nifti()})
    expect(page.locator(".image-drop .filepond--item")).to_have_attribute(
        "data-filepond-item-state", re.compile("complete"), timeout=60_000)
    page.get_by_role("button", name="Load uploaded files").click()
    expect(page.get_by_test_id("case-info")).to_contain_text("tiny_ct", timeout=60_000)
    page.screenshot(path=str(FIGURES / "app_upload.png"), full_page=True)
    page.close()


def test_step_after_a_stop_does_nothing(server, browser_context, console_problems):
    page = _open(browser_context, f"{server[0]}/stub_app", console_problems)
    page.get_by_role("button", name="Run to convergence").click()
    expect(page.get_by_test_id("status")).to_contain_text("stopped: converged", timeout=STEP_TIMEOUT_MS)
    step = page.get_by_role("button", name="Step", exact=True)
    expect(step).to_be_disabled(timeout=30_000)
    rows = page.locator("[data-testid=rounds-table] tbody tr")
    n = _settled_count(rows)  # the status can arrive before the table's last row on a loaded machine
    step.click(force=True)
    time.sleep(2)
    expect(rows).to_have_count(n)
    page.close()


def test_a_slow_step_never_blocks_navigation(server, browser, console_problems):
    """A Step runs in a worker thread: while a 90 s round runs, its own session and another one keep
    navigating (slices drawn in the browser; the server follows the slice and answers a view switch)."""
    contexts = [browser.new_context(viewport={"width": 1500, "height": 1100}) for _ in range(2)]
    try:
        busy, other = (_open(c, f"{server[0]}/stub_app?step_delay=90", console_problems) for c in contexts)
        status = busy.get_by_test_id("status")
        busy.get_by_role("button", name="Step", exact=True).click()
        expect(status).to_contain_text("running", timeout=30_000)
        busy.locator("body").click(position={"x": 5, "y": 1090})
        before = _wait_drawn(busy, "d.value >= 0", timeout_ms=60_000)["value"]  # drawn at least once
        key, target = ("ArrowDown", before - 1) if before > 0 else ("ArrowUp", before + 1)  # not past an end
        busy.keyboard.press(key)
        _wait_drawn(busy, f"d.value === {target}", timeout_ms=60_000)  # a starved browser at load 50
        expect(busy.get_by_test_id("nav-info")).to_contain_text(f"slice {target}/", timeout=30_000)
        other.get_by_role("button", name="coronal").click()
        _wait_drawn(other, "d.view === 'coronal'", timeout_ms=30_000)
        expect(other.get_by_test_id("nav-info")).to_contain_text("coronal", timeout=30_000)
        assert "running" in status.inner_text(), "the step ended before navigation was checked: machine too slow?"
        expect(status).to_contain_text("round 1", timeout=STEP_TIMEOUT_MS)
    finally:
        for context in contexts:
            context.close()


@pytest.mark.skipif(not (REAL / "ct.nii.gz").exists(), reason=f"the real example is not at {REAL}")
def test_empty_result_on_the_real_example_is_explained(server, browser_context, console_problems):
    page = _open(browser_context, f"{server[0]}/stub_app?engines=demo&case=real", console_problems, ready="")
    banner = page.locator(".empty-explanation")
    expect(banner).to_be_visible(timeout=STEP_TIMEOUT_MS)
    expect(banner).to_contain_text("trained on")
    expect(banner).to_contain_text("coarse stage found no voxel")
    expect(page.locator(".error-alert")).to_be_hidden()  # round 0 finished without a Bokeh document-lock error
    expect(page.get_by_role("button", name="Step", exact=True)).to_be_disabled()
    expect(page.get_by_test_id("dsc-points")).to_have_text("0")
    page.locator(".bk-tab", has_text="Saliency").click()
    expect(page.locator(".saliency-panel")).to_contain_text("No fine round ran")
    _settle(page, 2.5)
    page.screenshot(path=str(FIGURES / "app_empty_result.png"), full_page=True)
    page.close()


def test_client_sessions_at_once_get_the_ct_with_the_first_page_and_then_the_controls(server):
    """The classroom's short version on the server alone (``benchmarks/classroom_clients.py``): once the
    server's start-up warm-up is done, 5 sessions opened at once each receive a first page that carries the
    demo CT and round 0, then, after reporting it shown, the controls and the tabs."""
    from bokeh_clients import WARM_PAGE_BYTES, open_session

    wait_until_warm(server[1], server[2], timeout=STEP_TIMEOUT_MS / 1000)
    ws_url = server[0].replace("http://", "ws://") + "/app/ws"
    results: list = [None] * 5
    t0 = time.perf_counter()

    def one(i: int) -> None:
        results[i] = open_session(ws_url, t0, timeout=STEP_TIMEOUT_MS / 1000)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(results))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert all(r is not None for r in results), "a client session failed (see the output above)"
        assert all(r["bytes"] > WARM_PAGE_BYTES for r in results), [r["bytes"] for r in results]
        assert all(r["rest"] is not None for r in results), "the controls did not follow the first page"
        pages = ", ".join(f"{r['page']:.1f}" for r in results)
        rest = ", ".join(f"{r['rest']:.1f}" for r in results)
        sys.stderr.write(f"5 client sessions: first pages after {pages} s, the rest after {rest} s\n")
    finally:
        for r in results:
            if r is not None:
                r["close"]()


def test_a_few_sessions_at_once(server, browser, app_page, console_problems):
    """A short classroom: 4 sessions open the demo together; each shows its CT and round 0; no cross-talk."""
    contexts = [browser.new_context(viewport={"width": 1400, "height": 1000}) for _ in range(4)]
    try:
        pages = []
        t0 = time.perf_counter()
        for context in contexts:
            page = context.new_page()
            page.goto(f"{server[0]}/app", wait_until="commit", timeout=120_000)
            pages.append(page)
        for page in pages:
            expect(page.get_by_test_id("status")).to_contain_text("round 0", timeout=STEP_TIMEOUT_MS)
        seconds = time.perf_counter() - t0
        pages[0].get_by_role("button", name="coronal").click()
        expect(pages[0].get_by_test_id("nav-info")).to_contain_text("coronal", timeout=60_000)
        for page in pages[1:]:
            expect(page.get_by_test_id("nav-info")).to_contain_text("axial")
            expect(page.get_by_test_id("dsc-points")).to_have_text("0")
        # the time is reported, not judged: on the shared 2-core machine it ranged from < 120 s to 380 s
        # with other suites running (benchmarks/RESULTS_app.md); the per-page waits above bound it
        sys.stderr.write(f"4 sessions showed round 0 after {seconds:.1f} s\n")
    finally:
        for context in contexts:
            context.close()
