"""Read-only questions the views ask a session (the shown round and mask, saliency, the organ's slice,
where two methods differ, the stop threshold, the settings for the report): a mixin of
:class:`app.state.SessionState`, no parameters and no Panel."""

from __future__ import annotations

from typing import Any

import numpy as np

from rstn_core.errors import RstnError
from rstn_core.types import View

from . import display


class RoundViews:
    """Accessors over ``case``, ``rounds``, ``round_index``, ``view`` and ``slice_index`` of a session."""

    @property
    def current_round(self) -> Any | None:
        if not self.rounds:
            return None
        return self.rounds[min(self.round_index, len(self.rounds) - 1)]

    def current_mask(self) -> np.ndarray | None:
        state = self.current_round
        return None if state is None else state.mask

    def saliency(self, round_index: int | None = None, view: str | None = None,
                 slice_index: int | None = None) -> Any | None:
        """What the fine net saw at round ``round_index`` (>= 1): the engine's SaliencyView, cached."""
        r = self.round_index if round_index is None else round_index
        view = view or self.view
        s = self.slice_index if slice_index is None else slice_index
        if self.case is None or r < 1 or r >= len(self.rounds):
            return None
        key = (self.model, r, view, s)
        if key not in self._saliency_cache:
            engine = self.engine()
            previous = self.rounds[r - 1]
            if View.parse(view) not in getattr(previous, "view_probs", {View.parse(view): None}):
                return None
            try:
                self._saliency_cache[key] = engine.saliency_view(self.case, previous, View.parse(view), s)
            except RstnError as exc:
                self.error = f"saliency: {exc}"
                return None
            while len(self._saliency_cache) > 64:
                self._saliency_cache.popitem(last=False)
        return self._saliency_cache[key]

    def organ_slice(self, view: View | str) -> int:
        """The slice of ``view`` with the most target voxels (truth, else the latest mask, else the middle)."""
        target = self.case.label if self.case.label is not None and self.case.label.any() else self.current_mask()
        if target is None:
            return display.num_slices(self.case.image.shape, view) // 2
        return display.largest_slice(target, view)

    def difference_slice(self) -> int | None:
        """The slice of the current view where the model's and the baseline's final masks differ most."""
        if not self.rounds or not self.compare_rounds:
            return None
        main, base = self.rounds[-1].mask, self.compare_rounds[-1].mask
        if main.shape != base.shape:
            return None
        return display.worst_slice(main, base, self.view)

    def stop_dsc(self) -> float:
        """The engine's stop threshold (0.99 when no engine can be loaded)."""
        try:
            return float(getattr(getattr(self.engine(), "config", None), "stop_dsc", 0.99))
        except Exception:  # noqa: BLE001 - a missing engine is reported by the actions
            return 0.99

    def settings(self) -> dict:
        """Plain record of what produced the rounds (for the report)."""
        engine = self.engine() if self.choice() is not None else None
        out: dict[str, Any] = {"model": self.model_info}
        config = getattr(engine, "config", None)
        if config is not None and hasattr(config, "to_dict"):
            out["inference"] = config.to_dict()
        data_config = getattr(engine, "data_config", None)
        if data_config is not None and hasattr(data_config, "to_dict"):
            out["data"] = data_config.to_dict()
        out["window"] = f"{self.display.window} → clim {self.display.clim()}"
        return out
