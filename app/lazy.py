"""Parts of the page built the first time the user opens them, not with every session's first page.

``LazyTabs``: tabs whose content is built when the tab is first opened; a tab that is not open stops
updating (its panel's ``shown`` is False) and catches up when it is opened again. ``LazyCard``: a collapsed
card whose content is built when it is first expanded. A new session's first page then holds only what
its first screen shows (``tests/app/test_app_page.py`` bounds its model count).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import panel as pn
import param


class ShownPanel(pn.viewable.Viewer):
    """A panel that skips its updates while it is not on screen (``shown`` False): ``_content`` methods
    call :meth:`skip_if_hidden` first and depend on ``shown``, so opening the panel brings it up to date."""

    shown = param.Boolean(default=True, doc="on screen; False: updates are skipped until it is shown again")

    def skip_if_hidden(self) -> None:
        if not self.shown:
            raise param.Skip


class LazyTabs(pn.viewable.Viewer):
    """``pn.Tabs`` (dynamic) whose tab contents are built by ``builders`` on first opening."""

    def __init__(self, entries: Sequence[tuple[str, Callable[[], Any]]], **params: Any) -> None:
        super().__init__(**params)
        self._builders = [build for _, build in entries]
        self.built: dict[int, Any] = {}
        self._holders = [pn.Column(sizing_mode="stretch_width") for _ in entries]
        self.tabs = pn.Tabs(*((title, holder) for (title, _), holder in zip(entries, self._holders, strict=True)),
                            dynamic=True, sizing_mode="stretch_width")
        self.tabs.param.watch(self._on_active, "active")
        self._open(self.tabs.active)

    def _open(self, index: int) -> None:
        for i, panel in self.built.items():
            if isinstance(panel, ShownPanel):
                panel.shown = i == index
        if index not in self.built:
            self.built[index] = panel = self._builders[index]()
            self._holders[index].objects = [panel]

    def _on_active(self, event: param.parameterized.Event) -> None:
        self._open(int(event.new))

    def __panel__(self) -> pn.Tabs:
        return self.tabs


class LazyCard(pn.viewable.Viewer):
    """A collapsed ``pn.Card`` whose content is built by ``build`` when it is first expanded."""

    def __init__(self, build: Callable[[], Any], title: str, **card: Any) -> None:
        super().__init__()
        self._build = build
        self.content: Any = None
        self.card = pn.Card(title=title, collapsed=True, **card)
        self.card.param.watch(self._on_collapsed, "collapsed")

    def _on_collapsed(self, event: param.parameterized.Event) -> None:
        if not event.new and self.content is None:
            self.content = self._build()
            self.card.objects = [self.content]

    def __panel__(self) -> pn.Card:
        return self.card
