"""How slices are drawn: a ``param.Parameterized`` with no Panel import and no effect on the engine."""

from __future__ import annotations

import param

from . import display


class DisplaySettings(param.Parameterized):
    """How slices are drawn (no effect on the engine)."""

    window = param.Selector(default="abdomen (W350 L40)", objects=[*display.WINDOW_PRESETS, "custom"])
    level = param.Number(default=40.0, bounds=(-1500, 3000), doc="custom window centre (HU)")
    width = param.Number(default=350.0, bounds=(1, 5000), doc="custom window width (HU)")
    opacity = param.Number(default=0.6, bounds=(0.0, 1.0))
    outline = param.Boolean(default=False, doc="contours instead of filled masks")
    errors = param.Boolean(default=True, doc="colour prediction as TP / FP / FN against the truth")
    show_truth = param.Boolean(default=True)
    show_prediction = param.Boolean(default=True)
    show_boxes = param.Boolean(default=True)
    saliency_span = param.Number(default=0.1, bounds=(0.005, 2.0),
                                 doc="fixed colour scale of g(P): 1 ± span (the same in every view and slice)")
    saliency_mode = param.Selector(default="difference X⊙g(P) − X", objects=["difference X⊙g(P) − X",
                                                                             "transformed X⊙g(P)"])
    difference_span = param.Number(default=0.05, bounds=(0.001, 1.0),
                                   doc="fixed colour scale of the difference X⊙g(P) − X: ± span")

    @param.depends("window", "level", "width")
    def clim(self) -> tuple[float, float]:
        return display.preset_clim(self.window, (self.level, self.width))
