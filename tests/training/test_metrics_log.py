import json

from rstn_core.training.metrics_log import plot_curves, read_metrics


def test_curves_png_from_a_metrics_log(tmp_path):
    log = tmp_path / "metrics.jsonl"
    rows = [{"step": s, "stage": "S" if s <= 30 else "J", "iteration": s, "loss": 1 - s / 100, "loss_0": 1 - s / 120,
             "loss_1": 1 - s / 90} for s in range(1, 61)]
    log.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert [r["step"] for r in read_metrics(log)] == list(range(1, 61))
    png = plot_curves(log, tmp_path / "curves.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_no_records_no_plot(tmp_path):
    (tmp_path / "metrics.jsonl").write_text("")
    assert plot_curves(tmp_path / "metrics.jsonl", tmp_path / "c.png") is None
