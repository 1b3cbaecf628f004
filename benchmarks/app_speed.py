"""App speed on the CPU, measured in a real browser against `panel serve app/`.

    .venv/bin/python benchmarks/app_speed.py [--slices 10] [--sessions 20] [--json out.json]

* engine: load, round 0, steps and one saliency view of the demo model on the demo case (public API);
* server: the work behind a slice change (the slice viewer's layers for one slice, no browser);
* browser (needs /usr/bin/chromium): after one warm-up session, a new session's time from the request
  to the first CT on screen (round 0 included, served from the cross-session cache); key press to
  changed pixels; quick key bursts (lost presses); a view switch until the new frame's axis label
  is drawn; navigation while a Step runs in another session; then ``--sessions`` sessions opened at
  once (a classroom): time until each shows its CT and round 0, and the server's memory.

Readiness is checked on the server log and a static file (no session is opened by the probe).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "app")]

CHROMIUM = "/usr/bin/chromium"


def engine_times(steps: int) -> dict:
    from app import cases, engines

    choice = next(c for c in engines.model_choices() if c.method == "rstn")
    t0 = time.perf_counter()
    handle = engines.get_engine(choice)
    load = time.perf_counter() - t0
    case = cases.demo_case()
    t0 = time.perf_counter()
    state = handle.engine.start(case)
    start = time.perf_counter() - t0
    step_times = []
    for _ in range(steps):
        if state.stopped:
            break
        t0 = time.perf_counter()
        state = handle.engine.step(case, state)
        step_times.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    handle.engine.saliency_view(case, state, "axial", case.image.shape[2] // 2)
    saliency = time.perf_counter() - t0
    return {"model": handle.description, "case": f"{case.case_id} {case.image.shape}", "load_s": load,
            "round0_s": start, "step_s": step_times, "saliency_view_s": saliency}


def session_build_times(n: int) -> dict:
    """Server CPU to build one session's page (Bokeh models) once the shared caches are warm."""
    from bokeh.document import Document

    from app.page import App

    App().__panel__().get_root(Document())  # warm: engines, demo case, round 0 in the cross-session cache
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        App().__panel__().get_root(Document())
        times.append(time.perf_counter() - t0)
    return {"session_build_s": times}


def slice_render_times(n: int) -> dict:
    """Server-side cost of one slice change: the slice viewer's layer callbacks and the Bokeh update."""
    import holoviews as hv

    from app.page import App
    from app.viewer import SliceViewer

    app = App()
    app.__panel__()
    state = app.state
    plot = hv.renderer("bokeh").get_plot(SliceViewer(state=state)._plot().object)
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        state.slice_index = (state.slice_index + 1) % state.num_slices  # -> stream event -> plot.refresh
        times.append(time.perf_counter() - t0)
    assert plot.state is not None
    return {"slice_update_s": times}


def _slice_of(page) -> int:
    import re

    return int(re.search(r"slice (\d+)", page.get_by_test_id("nav-info").inner_text()).group(1))


def _shot(page) -> bytes:
    """The slice plot's pixels (retried while a replaced plot is being swapped in the page)."""
    for _ in range(50):
        try:
            return page.locator(".slice-viewer canvas").first.screenshot(timeout=10_000)
        except Exception:  # noqa: BLE001 - detached during a swap: take it again
            time.sleep(0.1)
    raise RuntimeError("the slice plot never settled")


def _key_to_pixels(page, key: str = "ArrowUp", limit: float = 20) -> float:
    before = _shot(page)
    t0 = time.perf_counter()
    page.keyboard.press(key)
    while _shot(page) == before and time.perf_counter() - t0 < limit:
        pass
    return time.perf_counter() - t0


def _open_ready(context, url: str, timeout_ms: int = 300_000):
    page = context.new_page()
    t0 = time.perf_counter()
    page.goto(url, timeout=timeout_ms)
    page.locator(".slice-viewer canvas").first.wait_for(timeout=timeout_ms)
    canvas_s = time.perf_counter() - t0
    page.get_by_test_id("status").filter(has_text="round 0").wait_for(timeout=timeout_ms)
    return page, canvas_s, time.perf_counter() - t0


def _view_switch(page, view: str) -> float:
    """Click a view button until the page holds one slice figure with that view's axis labels."""
    from test_app_ui import FIGURES_JS

    from app.display import axis_labels

    labels = list(axis_labels(view))
    t0 = time.perf_counter()
    page.get_by_role("button", name=view).click()
    while time.perf_counter() - t0 < 60:
        figures = page.evaluate(FIGURES_JS)
        if len(figures) == 1 and [figures[0]["xlabel"], figures[0]["ylabel"]] == labels:
            return time.perf_counter() - t0
        time.sleep(0.01)
    raise TimeoutError(f"the {view} frame was not drawn within 60 s: {figures}")


def log(text: str) -> None:
    sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] {text}\n")
    sys.stderr.flush()


def single_session(browser, url: str, n: int) -> dict:
    context = browser.new_context(viewport={"width": 1480, "height": 1000})
    warm, _, warm_s = _open_ready(context, url)  # builds the shared engine, demo case and round 0
    page, canvas_s, ready_s = _open_ready(context, url)
    log(f"first session {warm_s:.2f} s; new session canvas {canvas_s:.2f} s, round 0 {ready_s:.2f} s")
    page.locator("body").click(position={"x": 5, "y": 990})
    slice_times = []
    for _ in range(n):
        slice_times.append(_key_to_pixels(page))
        time.sleep(0.2)
    before = _slice_of(page)
    for _ in range(5):
        page.keyboard.press("ArrowDown")
    deadline = time.time() + 30
    while _slice_of(page) != before - 5 and time.time() < deadline:
        time.sleep(0.05)
    burst_lost = abs(before - 5 - _slice_of(page))
    log(f"slice key->pixels {slice_times}, burst lost {burst_lost}")
    views = [_view_switch(page, v) for v in ("coronal", "sagittal", "axial")]
    log(f"view switches {views}")
    time.sleep(2)
    # a Step in another session must not block navigation here
    warm.get_by_role("button", name="Step", exact=True).click()
    time.sleep(0.3)
    page.locator("body").click(position={"x": 5, "y": 990})
    during_step = [_key_to_pixels(page) for _ in range(3)]
    log(f"slice key->pixels while another session steps {during_step}")
    warm.get_by_test_id("status").filter(has_text="round 1").wait_for(timeout=300_000)
    context.close()
    return {"warmup_first_session_s": warm_s, "first_canvas_s": canvas_s, "first_ct_round0_s": ready_s,
            "new_slice_s": slice_times, "burst_of_5_lost": burst_lost, "view_switch_s": views,
            "new_slice_during_other_step_s": during_step}


def classroom(browser, url: str, sessions: int, server_pid: int) -> dict:
    import psutil

    proc = psutil.Process(server_pid)
    rss_before = proc.memory_info().rss
    contexts = [browser.new_context(viewport={"width": 1400, "height": 1000}) for _ in range(sessions)]
    pages = []
    t0 = time.perf_counter()
    for context in contexts:
        page = context.new_page()
        page.goto(url, wait_until="commit", timeout=300_000)
        pages.append(page)
    ready = []
    for page in pages:
        page.get_by_test_id("status").filter(has_text="round 0").wait_for(timeout=600_000)
        ready.append(time.perf_counter() - t0)
    log(f"classroom: {sessions} sessions ready after {[round(r, 1) for r in ready]} s")
    case_ids = {page.get_by_test_id("case-info").inner_text().split(" ")[0] for page in pages}
    rss_peak = proc.memory_info().rss
    for context in contexts:
        context.close()
    time.sleep(5)
    return {"sessions": sessions, "ready_s": ready, "case_ids": sorted(case_ids),
            "server_rss_mb_before": rss_before / 2**20, "server_rss_mb_all_open": rss_peak / 2**20,
            "server_rss_mb_after_close": proc.memory_info().rss / 2**20}


def browser_times(n: int, sessions: int) -> dict:
    from playwright.sync_api import sync_playwright
    from test_app_ui import FLAGS, _free_port, start_server, wait_until_serving

    port = _free_port()
    log_path = Path(tempfile.mkdtemp()) / "panel.log"
    proc = start_server(log_path, port)
    try:
        wait_until_serving(port, log_path, proc)
        url = f"http://localhost:{port}/app"
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
            out = single_session(browser, url, n)
            if sessions:
                out["classroom"] = classroom(browser, url, sessions, proc.pid)
            browser.close()
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
    return out


def _summary(out: dict) -> list[str]:
    med = statistics.median
    e = out["engine"]
    lines = [f"model: {e['model']}", f"case: {e['case']}", f"torch threads {out['cpu_threads']} / {out['os_cpus']}",
             f"engine load {e['load_s']:.2f} s, round 0 {e['round0_s']:.2f} s, steps "
             f"{', '.join(f'{s:.2f}' for s in e['step_s'])} s, saliency view {e['saliency_view_s'] * 1000:.1f} ms",
             f"server slice update median {med(out['server']['slice_update_s']) * 1000:.1f} ms"]
    b = out.get("browser")
    if b:
        s = b["new_slice_s"]
        views = ", ".join(f"{v * 1000:.0f}" for v in b["view_switch_s"])
        during = ", ".join(f"{v * 1000:.0f}" for v in b["new_slice_during_other_step_s"])
        lines += [f"browser: first session (cold cache) {b['warmup_first_session_s']:.2f} s; new session: canvas "
                  f"{b['first_canvas_s']:.2f} s, CT + round 0 {b['first_ct_round0_s']:.2f} s",
                  f"slice key->pixels median {med(s) * 1000:.0f} ms (max {max(s) * 1000:.0f}); burst of 5: "
                  f"{b['burst_of_5_lost']} lost; view switch {views} ms; "
                  f"slice during another session's Step {during} ms"]
        c = b.get("classroom")
        if c:
            lines.append(f"classroom {c['sessions']} sessions: round 0 on screen median {med(c['ready_s']):.1f} s, "
                         f"max {max(c['ready_s']):.1f} s; server RSS {c['server_rss_mb_before']:.0f} -> "
                         f"{c['server_rss_mb_all_open']:.0f} -> {c['server_rss_mb_after_close']:.0f} MB")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slices", type=int, default=10, help="slice changes to time")
    parser.add_argument("--steps", type=int, default=2, help="engine rounds after round 0 to time")
    parser.add_argument("--sessions", type=int, default=20, help="sessions opened at once (0: skip)")
    parser.add_argument("--no-browser", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    import torch  # only to report the thread count the engine ran with

    out = {"cpu_threads": torch.get_num_threads(), "os_cpus": os.cpu_count()}
    out["engine"] = engine_times(args.steps)
    log(f"engine {out['engine']}")
    out["server"] = slice_render_times(args.slices)
    out["server"].update(session_build_times(3))
    log(f"server {out['server']}")
    if not args.no_browser and Path(CHROMIUM).exists():
        out["browser"] = browser_times(args.slices, args.sessions)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    sys.stdout.write("\n".join(_summary(out)) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
