"""The exported report is one self-contained HTML file: images inline, no scripts, no links out."""

from __future__ import annotations

import re

import pytest
from stub_engine import make_engine

from app import report
from app.engines import EngineHandle, ModelChoice
from app.state import SessionState


@pytest.fixture
def finished_state() -> SessionState:
    engines = {"rstn": make_engine("rstn"), "c2f": make_engine("c2f")}
    choices = [ModelChoice(k, f"stub {k}", k, False, (lambda e=e: e)) for k, e in engines.items()]
    s = SessionState(choices=choices, engine_provider=lambda c: EngineHandle(c, c.loader(), c.label))
    s.param.trigger("load_demo")
    s.param.trigger("compare")
    return s


def test_report_is_self_contained(finished_state, tmp_path):
    text = report.report_for_session(finished_state)
    path = tmp_path / "report.html"
    path.write_text(text, encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert "<script" not in text.lower()
    # every src/href is inline data, nothing fetched from anywhere
    for ref in re.findall(r"(?:src|href)=['\"]([^'\"]+)", text):
        assert ref.startswith("data:image/png;base64,"), ref
    for test_id in ("report-title", "report-summary", "report-curves", "report-rounds-figure", "report-saliency-1",
                    "report-saliency-2", "report-baseline-summary", "report-baseline", "report-settings"):
        assert f"data-testid='{test_id}'" in text, test_id
    rounds = finished_state.rounds
    assert text.count("<tr><td>") == len(rounds) + len(finished_state.compare_rounds)
    assert "stop_dsc" in text and "phantom-0" in text
    assert "white-space:pre-wrap" in text  # the settings' long model line wraps instead of running off the page


def test_report_without_rounds(finished_state):
    finished_state.param.trigger("reset")
    text = report.report_for_session(finished_state)
    assert "No rounds were run" in text and "report-rounds-figure" in text


def test_report_summarises_the_baseline_and_keeps_settings_readable(finished_state):
    text = report.report_for_session(finished_state)
    summary = re.search(r"data-testid='report-baseline-summary'>(.*?)</p>", text).group(1)
    assert "C2F" in summary and "stopped (converged)" in summary
    assert "\\u" not in text and "→ clim" in text  # json.dumps(ensure_ascii=False): no \u escapes


def test_report_saliency_is_at_the_organs_slice_not_the_screens(finished_state):
    finished_state.slice_index = 0  # an empty slice on screen
    text = report.report_for_session(finished_state)
    organ = finished_state.organ_slice("axial")
    assert organ != 0 and f"window centred on slice {organ}" in text


def test_no_report_during_a_run(finished_state):
    finished_state.busy = True
    with pytest.raises(ValueError, match="run is going on"):
        report.report_for_session(finished_state)


def test_the_curves_legend_sits_beside_the_axes_and_inside_the_picture(finished_state):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = report.curves_plot({"RSTN": finished_state.rounds, "C2F": finished_state.compare_rounds}, 0.99)
    renderer = FigureCanvasAgg(fig).get_renderer()
    ax = fig.axes[0]
    legend = ax.get_legend().get_window_extent(renderer)
    frame = ax.get_window_extent(renderer)
    assert legend.x0 >= frame.x1  # never drawn over a curve
    assert legend.x1 <= fig.bbox.x1 and legend.y0 >= fig.bbox.y0  # and not cut off
    assert len(ax.get_legend().get_texts()) == 5  # stop threshold + two series per method
