"""Training metrics as JSON lines (one object per logged iteration) and a PNG of the curves.

Each line: ``{"step", "stage", "iteration", "loss", "loss_0", "loss_1", ..., "lr", "time"}``;
``loss_0`` is the coarse term, ``loss_t`` the fine term of iteration t. A notebook reads it with
``pandas.read_json(path, lines=True)`` or :func:`read_metrics`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


class MetricsLog:
    """Append-only JSON-lines writer; ``truncate_after(step)`` drops lines beyond a resumed checkpoint."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, record: dict[str, Any]) -> None:
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")

    def truncate_after(self, step: int) -> None:
        if not self.path.exists():
            return
        kept = [r for r in read_metrics(self.path) if int(r.get("step", 0)) <= step]
        self.path.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """All records of a metrics file (a torn last line after a crash is skipped)."""
    records = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            log.warning("skipping a damaged line in %s", path)
    return records


def plot_curves(metrics_path: str | Path, png_path: str | Path) -> Path | None:
    """Loss terms against the global step, stages shaded; returns the PNG path (None without records)."""
    records = read_metrics(metrics_path)
    if not records:
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    keys = sorted({k for r in records for k in r if k.startswith("loss")})
    fig = Figure(figsize=(8, 4.5))  # its own Agg canvas: no pyplot state, no global backend switch
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    steps = [r["step"] for r in records]
    names = {"loss": "total", "loss_0": "coarse (t=0)"}
    for index, key in enumerate(keys):
        pts = [(r["step"], r[key]) for r in records if key in r]
        x, y = np.array([p[0] for p in pts]), np.array([p[1] for p in pts])
        colour = f"C{index}"
        ax.plot(x, y, color=colour, lw=0.6, alpha=0.25)  # every logged step (noisy: one batch each)
        window = max(1, min(25, len(y) // 5))
        smooth = np.convolve(y, np.ones(window) / window, mode="valid")  # running mean
        ax.plot(x[window - 1:], smooth, color=colour, lw=1.6,
                label=f"{names.get(key, f'fine (t={key[5:]})')}, mean of {window} logs")
    start = 0
    for i in range(1, len(records) + 1):
        if i == len(records) or records[i]["stage"] != records[start]["stage"]:
            ax.axvspan(steps[start], steps[i - 1], alpha=0.08 * (1 + len({r["stage"] for r in records[:start]}) % 2))
            ax.text(steps[start], 1.02, records[start]["stage"], transform=ax.get_xaxis_transform(), fontsize=8)
            start = i
    ax.set_xlabel("iteration")
    ax.set_ylabel("soft-DSC loss")
    ax.set_ylim(0, 1)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    from rstn_core.atomic import atomic_write

    return atomic_write(Path(png_path), lambda tmp: fig.savefig(tmp, format="png", dpi=100), suffix=".png")
