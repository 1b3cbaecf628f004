"""The engine actions of a session (Coarse, Step, Run, Compare, Cancel, Reset): a ``param.Parameterized``
mixin of :class:`app.state.SessionState`, with no Panel import.

Each action runs the engine in a worker thread at a lower CPU priority (:func:`app.priority.in_background`),
so the page and every other session stay live while a round runs; parameters are updated back on the
event loop, a round in one batched ``param.update``. In plain Python (tests) the same watchers run to
completion synchronously. The mixin uses the session's ``case``, ``rounds``, ``engine()``, ``choice()``
and its shared cache.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import param

from rstn_core.errors import RstnError

from .priority import in_background
from .tables import status_line

log = logging.getLogger(__name__)


class RunActions(param.Parameterized):
    """Coarse / Step / Run / Compare / Cancel / Reset, one at a time per session."""

    busy = param.Boolean(default=False)
    progress = param.Integer(default=0, bounds=(0, 100))
    coarse = param.Event(doc="round 0: coarse nets on every window")
    step = param.Event(doc="one more recurrent round")
    run = param.Event(doc="step until the engine stops")
    reset = param.Event(doc="forget every round")
    cancel = param.Event(doc="stop a running 'run' between rounds")
    compare = param.Event(doc="run the model and the baseline to convergence")

    async def _job(self, name: str, work: Callable[[], Any]) -> None:
        """Run one action unless another runs; errors become messages."""
        if self.busy:
            self.status = f"busy: {name} ignored until the current action finishes"
            return
        if self.case is None:
            self.error = f"{name}: load a case first"
            return
        self.busy, self.error, self.progress, self._cancel_requested = True, "", 0, False
        t0 = time.perf_counter()
        try:
            await work()
        except RstnError as exc:
            self.error = f"{name}: {exc}"
        except Exception as exc:  # noqa: BLE001 - keep the session alive
            log.exception("%s failed", name)
            self.error = f"{name} failed unexpectedly: {type(exc).__name__}: {exc}"
        finally:
            self.busy = False
            self.progress = 100 if not self.error else 0
            log.info("%s took %.2f s", name, time.perf_counter() - t0)

    def _append(self, state: Any) -> None:
        # one batched update: every view re-renders once per round
        self.param.update(rounds=[*self.rounds, state], round_index=len(self.rounds),
                          status=status_line(state, self.rounds[-1] if self.rounds else None))

    def round0_now(self, key: str | None = None) -> Any:
        """Round 0 of the current case, computed in the calling thread; for the shared demo case computed once
        per process and model (another session, or the server's warm-up, asking meanwhile waits for it)."""
        engine, case = self.engine(key), self.case  # the engine refuses a case it cannot run (check_case)
        if self._shared_key is None:
            return engine.start(case)
        return self._shared(self._round0_key(key), lambda: engine.start(case))

    async def _round0(self, key: str | None = None) -> Any:
        return await in_background(self.round0_now, key)

    def _round0_key(self, key: str | None = None) -> str:
        return f"rstn-round0:{self.choice(key).key}:{self._shared_key}"

    def start_from_cache(self) -> bool:
        """Show round 0 of the shared case at once when a session of this server computed it already
        (no worker thread, no second update of the page); False when it still has to be computed."""
        if self._shared_key is None or self.busy or self.case is None or self.choice() is None:
            return False
        state = self._peek(self._round0_key())
        if state is None:
            return False
        self._show_round0(state, progress=100)
        return True

    async def _start(self) -> None:
        self.status = "coarse stage running…"
        self._show_round0(await self._round0())

    def _show_round0(self, state: Any, **more: Any) -> None:
        """Round 0 becomes the only round (the comparison and the saliency views are forgotten): one update."""
        self._saliency_cache.clear()
        self.param.update(rounds=[state], compare_rounds=[], round_index=0, status=status_line(state), **more)

    async def _one_step(self) -> None:
        if not self.rounds:
            await self._start()
            return
        if self.rounds[-1].stopped:
            self.status = (f"the run has stopped ({self.rounds[-1].stopped}): Step does nothing more; "
                           "press Reset to start again")
            return
        engine, case, last = self.engine(), self.case, self.rounds[-1]
        self.status = f"round {last.round + 1} running…"
        state = await in_background(engine.step, case, last)
        self._append(state)

    async def _until_stopped(self, rounds_attr: str, key: str | None, label: str) -> None:
        engine, case = self.engine(key), self.case
        if key is not None and getattr(engine, "prepare", None) is not None:
            other = await in_background(self.prepared, self.source_case, key)
            if other.image.shape != case.image.shape:
                raise RstnError(f"{label} works on a {other.image.shape} grid, the shown case is {case.image.shape}: "
                                "compare models trained at the same spacing")
        states = list(getattr(self, rounds_attr))
        cap = int(getattr(getattr(engine, "config", None), "max_rounds", 10))
        if not states:
            self.status = f"{label}: coarse stage running…"
            states = [await self._round0(key)]
            self._store(rounds_attr, states, label)
        while states[-1].stopped is None and not self._cancel_requested:
            self.status = f"{label}: round {states[-1].round + 1} running…"
            states.append(await in_background(engine.step, case, states[-1]))
            self._store(rounds_attr, states, label)
            self.progress = min(99, int(100 * states[-1].round / max(cap, 1)))
        if self._cancel_requested:
            self.status = f"{label}: cancelled after round {states[-1].round}"

    def _store(self, rounds_attr: str, states: list, label: str) -> None:
        previous = states[-2] if len(states) > 1 else None
        updates: dict[str, Any] = {rounds_attr: list(states),
                                   "status": f"{label}: {status_line(states[-1], previous)}"}
        if rounds_attr == "rounds":
            updates["round_index"] = len(states) - 1
        self.param.update(**updates)

    @param.depends("coarse", watch=True)
    async def _on_coarse(self) -> None:
        await self._job("coarse stage", self._start)

    @param.depends("step", watch=True)
    async def _on_step(self) -> None:
        await self._job("step", self._one_step)

    @param.depends("run", watch=True)
    async def _on_run(self) -> None:
        await self._job("run", lambda: self._until_stopped("rounds", None, "run"))

    @param.depends("compare", watch=True)
    async def _on_compare(self) -> None:
        async def both() -> None:
            if self.compare_model is None:
                raise RstnError("no baseline (C2F) model is available for the comparison")
            await self._until_stopped("rounds", None, self.choice_label(self.model))
            if not self._cancel_requested:
                await self._until_stopped("compare_rounds", self.compare_model,
                                          self.choice_label(self.compare_model))

        await self._job("compare", both)

    @param.depends("cancel", watch=True)
    def _on_cancel(self) -> None:
        if self.busy:
            self._cancel_requested = True
            self.status = "cancelling after the current round…"

    @param.depends("reset", watch=True)
    def _on_reset(self) -> None:
        if self.busy:
            self.status = "busy: cancel first, then reset"
            return
        self._clear_rounds()
        self.error = ""
        self.status = "reset: no rounds"
