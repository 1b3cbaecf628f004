"""App speed on the CPU: time to first view, time to show a new slice, time per engine round.

    .venv/bin/python benchmarks/app_speed.py [--slices 10] [--steps 2] [--json out.json]

* engine: ``start`` (round 0) and ``step`` on the built-in demo case with the app's default model
  (the demo bundle, or the untrained fallback when it is missing), through the engine's public API;
* server: the work behind a slice change (the four overlay layers of the slice viewer for one slice);
* browser (needs /usr/bin/chromium): ``panel serve app/`` in a subprocess, page load until the slice
  plot is drawn, until round 0 is on screen, and a key press (next slice) until the slice plot's
  pixels change.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def engine_times(steps: int) -> dict:
    from app import backend

    choice = next(c for c in backend.model_choices() if c.method == "rstn")
    t0 = time.perf_counter()
    handle = backend.get_engine(choice)
    load = time.perf_counter() - t0
    case = backend.demo_case()
    t0 = time.perf_counter()
    state = handle.engine.start(case)
    start = time.perf_counter() - t0
    step_times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        state = handle.engine.step(case, state)
        step_times.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    handle.engine.saliency_view(case, state, "axial", case.image.shape[2] // 2)
    saliency = time.perf_counter() - t0
    return {"model": handle.description, "case": f"{case.case_id} {case.image.shape}", "load_s": load,
            "round0_s": start, "step_s": step_times, "saliency_view_s": saliency}


def slice_render_times(n: int) -> dict:
    """Server-side cost of one slice change: the slice viewer's four layer callbacks."""
    import holoviews as hv

    from app.state import SessionState
    from app.views import SliceViewer

    hv.extension("bokeh")
    state = SessionState(name="bench")
    state.param.trigger("load_demo")
    state.param.trigger("coarse")
    viewer = SliceViewer(state=state)
    renderer = hv.renderer("bokeh")
    plot = renderer.get_plot(viewer._overlay)  # subscribes to the streams: a slice change re-renders it
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        state.slice_index = (state.slice_index + 1) % state.num_slices  # -> stream event -> plot.refresh
        times.append(time.perf_counter() - t0)
    assert plot.state is not None
    return {"slice_update_s": times}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def browser_times(n: int) -> dict:
    from playwright.sync_api import sync_playwright

    port = _free_port()
    url = f"http://localhost:{port}/app"
    panel = Path(sys.executable).with_name("panel")
    log = open(tempfile.mktemp(suffix=".log"), "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([str(panel), "serve", "app/", "--port", str(port), "--num-procs", "1"], cwd=ROOT,
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(url, timeout=5):
                    break
            except OSError:
                time.sleep(0.5)
        with sync_playwright() as p:
            ctx = p.chromium.launch_persistent_context(tempfile.mkdtemp(), executable_path=CHROMIUM, args=FLAGS,
                                                       headless=True, viewport={"width": 1480, "height": 1000})
            # warm-up session: the server builds the shared engine and demo case once
            warm = ctx.new_page()
            warm.goto(url)
            warm.get_by_test_id("status").filter(has_text="round 0").wait_for(timeout=300_000)
            warm.close()
            page = ctx.new_page()
            t0 = time.perf_counter()
            page.goto(url)
            page.locator(".slice-viewer canvas").first.wait_for(timeout=120_000)
            first_view = time.perf_counter() - t0
            page.get_by_test_id("status").filter(has_text="round 0").wait_for(timeout=300_000)
            round0 = time.perf_counter() - t0
            canvas = page.locator(".slice-viewer canvas").first
            time.sleep(1.0)
            page.locator("body").click(position={"x": 5, "y": 990})
            times = []
            for _ in range(n):
                before = canvas.screenshot()
                t0 = time.perf_counter()
                page.keyboard.press("ArrowUp")
                while canvas.screenshot() == before and time.perf_counter() - t0 < 20:
                    pass
                times.append(time.perf_counter() - t0)
                time.sleep(0.3)
            ctx.close()
    finally:
        proc.terminate()
        proc.wait(20)
        log.close()
    return {"first_view_s": first_view, "round0_on_screen_s": round0, "new_slice_s": times}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slices", type=int, default=10, help="slice changes to time")
    parser.add_argument("--steps", type=int, default=2, help="engine rounds after round 0 to time")
    parser.add_argument("--no-browser", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    import torch  # only to report the thread count the engine ran with

    out = {"cpu_threads": torch.get_num_threads(), "os_cpus": os.cpu_count()}
    out["engine"] = engine_times(args.steps)
    out["server"] = slice_render_times(args.slices)
    if not args.no_browser and Path(CHROMIUM).exists():
        out["browser"] = browser_times(args.slices)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    med = statistics.median
    lines = [f"model: {out['engine']['model']}", f"case: {out['engine']['case']}",
             f"torch threads {out['cpu_threads']} / {out['os_cpus']} CPUs",
             f"engine load {out['engine']['load_s']:.2f} s, round 0 {out['engine']['round0_s']:.2f} s, "
             f"steps {', '.join(f'{s:.2f}' for s in out['engine']['step_s'])} s, "
             f"saliency view {out['engine']['saliency_view_s'] * 1000:.1f} ms",
             f"server slice update median {med(out['server']['slice_update_s']) * 1000:.1f} ms"]
    if "browser" in out:
        b = out["browser"]
        new_slice = b["new_slice_s"]
        lines.append(f"browser: first view {b['first_view_s']:.2f} s, "
                     f"round 0 on screen {b['round0_on_screen_s']:.2f} s, "
                     f"new slice median {med(new_slice) * 1000:.0f} ms (max {max(new_slice) * 1000:.0f})")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
