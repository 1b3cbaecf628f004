"""App speed on the CPU, measured in a real browser against `panel serve app/`.

    .venv/bin/python benchmarks/app_speed.py [--slices 10] [--sessions 20] [--json out.json]

* engine: load, round 0, steps and one saliency view of the demo model on the demo case (public API);
* server: CPU to build one session's page, and the server's work when the browser reports a new slice
  (the slice itself is drawn in the browser, app/slice_render.js);
* browser (needs /usr/bin/chromium): after one warm-up session, a new session's time from the request
  to the first CT drawn and to round 0 on screen; key press to drawn pixels (measured in the page: the
  key event, the draw, two animation frames); quick key bursts (lost presses); a view switch until the
  new view is drawn; slice keys while a Step runs in another session; then ``--sessions`` sessions
  opened at once (a classroom): time until each draws its CT and shows round 0, and the server's memory.

Readiness is checked on the server log and a static file (no session is opened by the probe).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
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


def _app_package(ref: str | None):
    """``app`` of this tree, or (``ref``) the app of a git revision loaded beside it as ``app_ref`` (its
    relative imports stay inside it; both share Panel's cache, so the demo's round 0 is computed once)."""
    import importlib
    import importlib.util

    if ref is None:
        return importlib.import_module("app.page")
    out = Path(tempfile.mkdtemp(prefix="app-ref-"))
    archive = subprocess.run(["git", "archive", ref, "app"], cwd=ROOT, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
    spec = importlib.util.spec_from_file_location("app_ref", out / "app" / "__init__.py",
                                                  submodule_search_locations=[str(out / "app")])
    module = importlib.util.module_from_spec(spec)
    sys.modules["app_ref"] = module
    spec.loader.exec_module(module)
    return importlib.import_module("app_ref.page")


def session_build_times(n: int, ref: str | None = None) -> dict:
    """Server work to build one session's first page once the shared caches are warm: the page's Bokeh
    models and their serialisation for the browser (``doc.to_json``), in CPU seconds of this process
    (robust to other work on the machine) and wall seconds; with ``ref``, the app of that git revision
    measured alternately in the same process (the ratio is what counts on a noisy machine)."""
    import panel as pn
    from bokeh.document import Document

    pn.extension("filedropper")
    pages = {"now": _app_package(None)}
    if ref:
        pages[ref] = _app_package(ref)

    def build(page) -> tuple[float, float, int]:
        cpu, wall = time.process_time(), time.perf_counter()
        doc = Document()
        doc.add_root(page.App().__panel__().get_root(doc))
        doc.to_json()
        return time.process_time() - cpu, time.perf_counter() - wall, len(doc.models)

    for page in pages.values():
        build(page)  # warm: engines, demo case, round 0 in the cross-session cache
    out: dict = {}
    for _ in range(n):
        for name, page in pages.items():
            cpu, wall, models = build(page)
            rec = out.setdefault(name, {"cpu_s": [], "wall_s": [], "models": models})
            rec["cpu_s"].append(cpu)
            rec["wall_s"].append(wall)
    return {"session_build": out}


def slice_server_times(n: int) -> dict:
    """Server work after the browser drew a slice: the synced slider value reaching the session state and
    every view that follows it (the Saliency tab is open, as on a new page), at round 0 and after one Step
    (the Saliency tab then shows images)."""
    from app.page import App

    app = App()
    app.__panel__()
    viewer = app.viewer

    def times() -> list[float]:
        out = []
        for _ in range(n):
            old = app.state.slice_index
            t0 = time.perf_counter()
            viewer._on_slider("value", old, (old + 1) % app.state.num_slices)
            out.append(time.perf_counter() - t0)
        return out

    round0 = times()
    app.state.param.trigger("step")
    return {"slice_update_s": round0, "slice_update_round1_s": times()}


# In the page: a key press until the slice is drawn and two animation frames have passed (pixels on screen).
KEY_JS = """async (key) => {
  const before = (window.__rstn_drawn || {}).count || 0;
  const t0 = performance.now();
  document.dispatchEvent(new KeyboardEvent('keydown', {key: key, bubbles: true}));
  while (((window.__rstn_drawn || {}).count || 0) === before) await new Promise(r => setTimeout(r, 1));
  await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  return (performance.now() - t0) / 1000;
}"""
# In the page: switch the view buttons (as a click does) until the new view is drawn, two frames later.
VIEW_JS = """async (view) => {
  let buttons = null;
  for (const doc of window.Bokeh.documents)
    for (const m of doc.all_models) if (m.name && m.name.startsWith('rstn-view-')) buttons = m;
  const t0 = performance.now();
  buttons.active = buttons.labels.indexOf(view);
  while (!window.__rstn_drawn || window.__rstn_drawn.view !== view) await new Promise(r => setTimeout(r, 1));
  await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  return (performance.now() - t0) / 1000;
}"""
DRAWN = "() => window.__rstn_drawn || {value: -1, view: '', count: 0}"


def _key_to_pixels(page, key: str = "ArrowUp") -> float:
    return float(page.evaluate(KEY_JS, key))


def _open_ready(context, url: str, timeout_ms: int = 300_000):
    """(page, seconds to the first CT drawn, seconds to round 0 on screen) from the request."""
    page = context.new_page()
    t0 = time.perf_counter()
    page.goto(url, timeout=timeout_ms)
    page.wait_for_function("window.__rstn_drawn && window.__rstn_drawn.count > 0", timeout=timeout_ms, polling=20)
    ct_s = time.perf_counter() - t0
    page.get_by_test_id("status").filter(has_text="round 0").wait_for(timeout=timeout_ms)
    return page, ct_s, time.perf_counter() - t0


def _view_switch(page, view: str) -> float:
    return float(page.evaluate(VIEW_JS, view))


def log(text: str) -> None:
    sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] {text}\n")
    sys.stderr.flush()


def single_session(browser, url: str, n: int) -> dict:
    context = browser.new_context(viewport={"width": 1480, "height": 1000})
    warm, _, warm_s = _open_ready(context, url)  # the first visitor (the server built the demo at start)
    page, ct_s, ready_s = _open_ready(context, url)
    log(f"first session {warm_s:.2f} s; new session: CT drawn {ct_s:.2f} s, round 0 {ready_s:.2f} s")
    page.locator("body").click(position={"x": 5, "y": 990})
    slice_times = []
    for _ in range(n):
        slice_times.append(_key_to_pixels(page))
        time.sleep(0.2)
    before = page.evaluate(DRAWN)["value"]
    for _ in range(5):
        page.keyboard.press("ArrowDown")
    time.sleep(1)
    burst_lost = abs(before - 5 - page.evaluate(DRAWN)["value"])
    log(f"slice key->pixels {slice_times}, burst lost {burst_lost}")
    views = [_view_switch(page, v) for v in ("coronal", "sagittal", "axial")]
    log(f"view switches {views}")
    time.sleep(2)
    # a Step in another session must not block navigation here
    warm.get_by_role("button", name="Step", exact=True).click()
    time.sleep(0.3)
    page.locator("body").click(position={"x": 5, "y": 990})
    during_step = [_key_to_pixels(page) for _ in range(3)]
    step_running = "running" in warm.get_by_test_id("status").inner_text()
    log(f"slice key->pixels while another session steps {during_step} (step still running: {step_running})")
    warm.get_by_test_id("status").filter(has_text="round 1").wait_for(timeout=300_000)
    context.close()
    return {"warmup_first_session_s": warm_s, "first_ct_drawn_s": ct_s, "first_ct_round0_s": ready_s,
            "new_slice_s": slice_times, "burst_of_5_lost": burst_lost, "view_switch_s": views,
            "new_slice_during_other_step_s": during_step, "other_step_still_running": step_running}


def classroom(browser, url: str, sessions: int, server_pid: int) -> dict:
    import psutil

    proc = psutil.Process(server_pid)
    rss_before = proc.memory_info().rss
    cpu_before, machine_before = sum(proc.cpu_times()[:2]), psutil.cpu_times()
    contexts = [browser.new_context(viewport={"width": 1400, "height": 1000}) for _ in range(sessions)]
    pages = []
    t0 = time.perf_counter()
    for context in contexts:
        page = context.new_page()
        page.goto(url, wait_until="commit", timeout=300_000)
        pages.append(page)
    drawn, ready = [], []
    for page in pages:  # each page's first CT drawn, then its round 0 on screen (times from the first request)
        page.wait_for_function("window.__rstn_drawn && window.__rstn_drawn.count > 0", timeout=600_000, polling=50)
        drawn.append(time.perf_counter() - t0)
    for page in pages:
        page.get_by_test_id("status").filter(has_text="round 0").wait_for(timeout=600_000)
        ready.append(time.perf_counter() - t0)
    log(f"classroom: {sessions} sessions drew the CT after {[round(r, 1) for r in drawn]} s, "
        f"round 0 after {[round(r, 1) for r in ready]} s")
    cpu_server = sum(proc.cpu_times()[:2]) - cpu_before  # what the server process spent on the classroom
    machine = psutil.cpu_times()
    busy = sum(getattr(machine, k) - getattr(machine_before, k) for k in ("user", "system", "nice"))
    case_ids = {page.get_by_test_id("case-info").inner_text().split(" ")[0] for page in pages}
    rss_peak = proc.memory_info().rss
    for context in contexts:
        context.close()
    time.sleep(5)
    return {"sessions": sessions, "ct_drawn_s": drawn, "ready_s": ready, "case_ids": sorted(case_ids),
            "server_cpu_s": cpu_server, "machine_busy_cpu_s": busy,
            "server_rss_mb_before": rss_before / 2**20, "server_rss_mb_all_open": rss_peak / 2**20,
            "server_rss_mb_after_close": proc.memory_info().rss / 2**20}


@contextlib.contextmanager
def served_app(warm: bool = True, options: tuple[str, ...] = ("--num-procs", "1")
               ) -> Iterator[tuple[int, subprocess.Popen]]:
    """``panel serve app/`` on a free port as the browser tests start it: yields (port, process) once it serves
    (readiness read from its log, no session opened) and, with ``warm``, once its start-up warm-up has built
    the demo's round 0; stops it afterwards."""
    from test_app_ui import _free_port, start_server, wait_until_serving, wait_until_warm

    port = _free_port()
    log_path = Path(tempfile.mkdtemp()) / "panel.log"
    proc = start_server(log_path, port, options)
    procs = int(options[options.index("--num-procs") + 1]) if "--num-procs" in options else 1
    try:
        wait_until_serving(port, log_path, proc)
        if warm:
            wait_until_warm(log_path, proc, processes=procs)  # each server process warms its own
        yield port, proc
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def browser_times(n: int, sessions: int) -> dict:
    from playwright.sync_api import sync_playwright
    from test_app_ui import FLAGS

    with served_app() as (port, proc), sync_playwright() as p:
        url = f"http://localhost:{port}/app"
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        out = single_session(browser, url, n)
        if sessions:
            out["classroom"] = classroom(browser, url, sessions, proc.pid)
        browser.close()
    return out


def _summary(out: dict) -> list[str]:
    med = statistics.median
    lines = [f"torch threads {out['cpu_threads']} / {out['os_cpus']}; load average at start "
             f"{out['load_average_start'][0]:.2f}, at end {out['load_average_end'][0]:.2f}"]
    e = out.get("engine")
    if e:
        lines += [f"model: {e['model']}", f"case: {e['case']}",
                  f"engine load {e['load_s']:.2f} s, round 0 {e['round0_s']:.2f} s, steps "
                  f"{', '.join(f'{s:.2f}' for s in e['step_s'])} s, saliency view {e['saliency_view_s'] * 1000:.1f} ms"]
    server = out["server"]
    lines.append(f"server work per browser slice change median {med(server['slice_update_s']) * 1000:.1f} ms at "
                 f"round 0, {med(server['slice_update_round1_s']) * 1000:.1f} ms at round 1 (Saliency tab open)")
    for name, rec in out["server"]["session_build"].items():
        lines.append(f"page build ({name}): {rec['models']} Bokeh models, CPU median {med(rec['cpu_s']):.3f} s "
                     f"(wall median {med(rec['wall_s']):.3f} s) over {len(rec['cpu_s'])} builds")
    b = out.get("browser")
    if b:
        s = b["new_slice_s"]
        views = ", ".join(f"{v * 1000:.0f}" for v in b["view_switch_s"])
        during = ", ".join(f"{v * 1000:.0f}" for v in b["new_slice_during_other_step_s"])
        lines += [f"browser: first session (cold cache) {b['warmup_first_session_s']:.2f} s; new session: CT drawn "
                  f"{b['first_ct_drawn_s']:.2f} s, round 0 on screen {b['first_ct_round0_s']:.2f} s",
                  f"slice key->pixels median {med(s) * 1000:.0f} ms (max {max(s) * 1000:.0f}); burst of 5: "
                  f"{b['burst_of_5_lost']} lost; view switch {views} ms; "
                  f"slice during another session's Step {during} ms"]
        c = b.get("classroom")
        if c:
            lines.append(f"classroom {c['sessions']} sessions: CT drawn median {med(c['ct_drawn_s']):.1f} s, max "
                         f"{max(c['ct_drawn_s']):.1f} s; round 0 on screen median {med(c['ready_s']):.1f} s, "
                         f"max {max(c['ready_s']):.1f} s; server RSS {c['server_rss_mb_before']:.0f} -> "
                         f"{c['server_rss_mb_all_open']:.0f} -> {c['server_rss_mb_after_close']:.0f} MB; server CPU "
                         f"{c['server_cpu_s']:.1f} s of {c['machine_busy_cpu_s']:.1f} CPU s used on the machine "
                         "meanwhile (the rest: the browsers, the benchmark, other work)")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slices", type=int, default=10, help="slice changes to time")
    parser.add_argument("--steps", type=int, default=2, help="engine rounds after round 0 to time")
    parser.add_argument("--sessions", type=int, default=20, help="sessions opened at once (0: skip)")
    parser.add_argument("--no-browser", action="store_true")
    parser.add_argument("--builds", type=int, default=5, help="page builds to time in-process")
    parser.add_argument("--compare-ref", default=None,
                        help="also time the page build of this git revision's app/ (e.g. a commit before a change)")
    parser.add_argument("--no-engine", action="store_true", help="skip the engine timings (round 0 and steps)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    import torch  # only to report the thread count the engine ran with

    out = {"cpu_threads": torch.get_num_threads(), "os_cpus": os.cpu_count()}
    out["load_average_start"] = os.getloadavg()
    if not args.no_engine:
        out["engine"] = engine_times(args.steps)
        log(f"engine {out['engine']}")
    out["server"] = slice_server_times(args.slices)
    out["server"].update(session_build_times(args.builds, args.compare_ref))
    log(f"server {out['server']}")
    if not args.no_browser and Path(CHROMIUM).exists():
        out["browser"] = browser_times(args.slices, args.sessions)
    out["load_average_end"] = os.getloadavg()
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    sys.stdout.write("\n".join(_summary(out)) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
