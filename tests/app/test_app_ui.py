"""Browser tests: `panel serve app/` in a subprocess, driven by headless Chromium through Playwright.

Run on their own: ``pytest -m ui``. The app runs as a user would start it (built-in demo model, or the
untrained fallback when the demo bundle is missing); ``RSTN_UI_STUB=1`` swaps in the stub engine.
Screenshots land in test-artifacts/ (docs/figures/ with RSTN_UPDATE_SCREENSHOTS=1, to refresh the docs).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.ui

ROOT = Path(__file__).resolve().parents[2]
FIGURES = ROOT / ("docs/figures" if os.environ.get("RSTN_UPDATE_SCREENSHOTS") == "1" else "test-artifacts")
FIGURES.mkdir(parents=True, exist_ok=True)
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
STEP_TIMEOUT_MS = 180_000
LOG_PROBLEMS = re.compile(r"Traceback|ERROR|Exception|Error running application")
IGNORED_CONSOLE = ("GL Driver Message", "WebGL", "favicon")

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The app on a free port; yields (url, log path); the log must stay free of errors."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not found: install Debian's chromium package (make browser)")
    port = _free_port()
    log_path = tmp_path_factory.mktemp("server") / "panel.log"
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
    if os.environ.get("RSTN_UI_STUB"):
        env["RSTN_APP_ENGINE"] = "tests/app/stub_engine.py:make_engine"
    panel = Path(sys.executable).with_name("panel")
    cmd = [str(panel), "serve", "app/", "--port", str(port), "--num-procs", "1",
           "--allow-websocket-origin", f"localhost:{port}"]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://localhost:{port}/app"
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    break
        except OSError:
            time.sleep(0.5)
    else:
        proc.terminate()
        pytest.fail(f"panel serve did not answer on {url}:\n{log_path.read_text()}")
    yield url, log_path
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def browser_context(tmp_path_factory):
    with playwright_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=CHROMIUM, args=FLAGS, headless=True,
            viewport={"width": 1480, "height": 1000}, accept_downloads=True)
        yield context
        context.close()


@pytest.fixture(scope="module")
def console_problems():
    return []


def _open(context, url, problems):
    page = context.new_page()
    page.on("console", lambda m: m.type == "error" and not any(s in m.text for s in IGNORED_CONSOLE)
            and problems.append(m.text))
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url} {r.failure}"))
    page.goto(url)
    page.locator(".slice-viewer canvas").first.wait_for(timeout=90_000)
    return page


def _server_problems(log_path: Path) -> list[str]:
    """Log records (a timestamped line and what follows it) with an error; a browser tab closing
    while the server writes to it (tornado's WebSocketClosedError) is not an app error."""
    records = re.split(r"\n(?=\d{4}-\d{2}-\d{2} )", log_path.read_text())
    return [r for r in records if LOG_PROBLEMS.search(r) and "WebSocketClosedError" not in r]


@pytest.fixture(scope="module")
def app_page(server, browser_context, console_problems):
    url, _ = server
    t0 = time.perf_counter()
    page = _open(browser_context, url, console_problems)
    page.first_view_seconds = time.perf_counter() - t0  # type: ignore[attr-defined]
    # the demo opens with the coarse round (round 0) computed
    expect(page.get_by_test_id("status")).to_contain_text("round 0", timeout=STEP_TIMEOUT_MS)
    return page


def test_page_loads_with_demo_case_and_model(app_page, server, console_problems):
    page = app_page
    expect(page.get_by_test_id("case-info")).to_contain_text("phantom")
    expect(page.get_by_test_id("model-info")).to_contain_text("RSTN")
    expect(page.locator(".error-alert")).to_be_hidden()
    page.screenshot(path=str(FIGURES / "app_overview_round0.png"), full_page=True)
    assert console_problems == []
    assert _server_problems(server[1]) == [], server[1].read_text()[-4000:]


def test_demo_steps_twice_and_the_chart_gains_two_points(app_page):
    page = app_page
    points = page.get_by_test_id("dsc-points")
    expect(points).to_have_text("0")
    for expected in ("1", "2"):
        page.get_by_role("button", name="Step", exact=True).click()
        expect(points).to_have_text(expected, timeout=STEP_TIMEOUT_MS)
    expect(page.locator("[data-testid=rounds-table] tbody tr")).to_have_count(3)
    expect(page.locator(".dsc-chart canvas").first).to_be_visible()
    expect(page.get_by_test_id("status")).to_contain_text("round 2 ·", timeout=60_000)
    expect(page.get_by_test_id("nav-info")).to_contain_text("round 2", timeout=60_000)
    time.sleep(1.5)  # let the last plot updates reach the browser before the screenshot
    page.screenshot(path=str(FIGURES / "app_overview.png"), full_page=True)


def test_saliency_channels_are_shown(app_page):
    page = app_page
    page.locator(".bk-tab", has_text="Saliency").click()
    expect(page.get_by_test_id("saliency-caption")).to_contain_text("weights from the round", timeout=60_000)
    expect(page.locator(".saliency-plot canvas").first).to_be_visible()
    page.screenshot(path=str(FIGURES / "app_saliency.png"), full_page=True)


def test_keyboard_and_jump_navigation(app_page):
    page = app_page
    label = page.get_by_test_id("nav-info")
    before = int(re.search(r"slice (\d+)", label.inner_text()).group(1))
    page.locator("body").click(position={"x": 5, "y": 990})
    page.keyboard.press("ArrowUp")
    expect(label).to_contain_text(f"slice {before + 1}/", timeout=20_000)
    page.get_by_role("button", name="Jump to the worst slice").click()
    expect(page.get_by_test_id("status")).to_contain_text(re.compile("slice|no error"), timeout=20_000)


def test_report_downloads_and_opens_offline(app_page, browser_context, tmp_path):
    page = app_page
    with page.expect_download(timeout=120_000) as info:
        page.get_by_role("button", name=re.compile("Export HTML report")).click()
    path = tmp_path / "report.html"
    info.value.save_as(path)
    assert path.stat().st_size > 10_000
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
    expect(offline.locator("[data-testid=report-rounds] tr")).to_have_count(4)  # header + rounds 0..2
    loaded = offline.evaluate("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
    assert loaded and offline.locator("img").count() >= 3
    offline.screenshot(path=str(FIGURES / "app_report.png"))
    offline.close()
    assert outside == []


def test_bad_input_is_an_alert_and_the_page_survives(app_page):
    page = app_page
    page.locator(".card-header", has_text="Load another CT").click()
    page.get_by_role("button", name="Load server files").click()
    alert = page.locator(".error-alert")
    expect(alert).to_be_visible(timeout=20_000)
    expect(alert).to_contain_text("choose an image")
    page.screenshot(path=str(FIGURES / "app_load_error.png"), full_page=True)
    page.locator(".card-header", has_text="Load another CT").click()  # fold it again
    expect(page.get_by_test_id("dsc-points")).to_have_text("2")


def test_second_session_is_unaffected(app_page, server, browser_context, console_problems):
    page = app_page
    other = _open(browser_context, server[0], console_problems)
    expect(other.get_by_test_id("status")).to_contain_text("round 0", timeout=STEP_TIMEOUT_MS)
    expect(other.get_by_test_id("dsc-points")).to_have_text("0")
    expect(other.locator(".error-alert")).to_be_hidden()
    other.get_by_role("button", name="sagittal").click()
    expect(other.get_by_test_id("nav-info")).to_contain_text("sagittal")
    expect(page.get_by_test_id("dsc-points")).to_have_text("2")
    expect(page.get_by_test_id("nav-info")).to_contain_text("axial")
    expect(page.get_by_role("button", name="axial")).to_have_class(re.compile("active"))
    other.close()


def test_compare_with_baseline(app_page, server, console_problems):
    page = app_page
    page.get_by_role("button", name="Compare with baseline").click()
    page.locator(".bk-tab", has_text="Compare RSTN vs C2F").click()
    expect(page.get_by_test_id("compare-baseline")).to_be_visible(timeout=2 * STEP_TIMEOUT_MS)
    finished = re.compile(r"c2f.*stopped", re.IGNORECASE)
    expect(page.get_by_test_id("status")).to_contain_text(finished, timeout=2 * STEP_TIMEOUT_MS)
    expect(page.get_by_role("button", name="Compare with baseline")).to_be_enabled(timeout=60_000)
    time.sleep(2)
    page.screenshot(path=str(FIGURES / "app_compare.png"), full_page=True)
    assert console_problems == []
    assert _server_problems(server[1]) == [], server[1].read_text()[-4000:]


def test_truncated_upload_is_an_alert(app_page, tmp_path, server):
    page = app_page
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"\x1f\x8b\x08\x00" + b"truncated" * 50)
    page.locator(".card-header", has_text="Load another CT").click()
    page.locator(".image-drop input[type=file]").set_input_files(str(bad))
    time.sleep(3)  # FilePond uploads in chunks before the button sees the file
    page.get_by_role("button", name="Load uploaded files").click()
    alert = page.locator(".error-alert")
    expect(alert).to_contain_text("broken.nii.gz", timeout=30_000)
    expect(alert).to_contain_text("gzip")
    expect(page.get_by_test_id("case-info")).to_contain_text("phantom")
    assert _server_problems(server[1]) == [], server[1].read_text()[-4000:]
