"""The Lab's model: Run (``repeat`` times), Sweep (:func:`flowlab.compare`), Stop and re-merge,
with the history of every run — and no widget.

:class:`LabModel` takes the options to run with from a
:class:`~flowlab.ui.lab.protocols.LabSettings` and tells a :class:`~flowlab.ui.lab.protocols.LabView`
what happened (began, ticked, ended, a result, an error, ...). The ipywidgets
:class:`~flowlab.ui.lab.lab.Lab` composes one with its controls and its panel; a script or a test
can drive it with any settings object and any view. Where a run goes:

* **No event loop running** (a script): :meth:`LabModel.run` blocks, returns the last
  :class:`~flowlab.results.record.RunResult`.
* **A loop running** (a notebook cell, a button's click callback): :meth:`LabModel.run` schedules
  the run as a task on that loop (:func:`flowlab.start`) and returns the task at once; the view
  hears of it when the run is done, and :meth:`LabModel.stop` cancels it meanwhile.
  ``await model.arun()`` runs and waits.

A sweep runs :func:`flowlab.compare` in a worker thread, so the loop (and the Stop button) stays
responsive; Stop reaches its runs through the :class:`~flowlab.ui.lab.watch.RunWatch` instrument.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from flowlab.core.map import Map
from flowlab.core.pipeline import ON_FAILURE, ORDERS, Pipeline
from flowlab.errors import ConfigError, check_one_of
from flowlab.results.record import RunResult
from flowlab.ui.lab.history import History, same_value, with_swept
from flowlab.ui.lab.watch import RunWatch

if TYPE_CHECKING:
    from flowlab.engine.handle import RunHandle
    from flowlab.study.comparison import Comparison
    from flowlab.ui.lab.protocols import LabSettings, LabView

__all__ = ["RUN_OPTIONS", "LabModel"]

RUN_OPTIONS: tuple[str, ...] = (
    "input", "usage", "max_concurrency", "timeout", "instruments", "record", "backend",
)  # fmt: skip
"""Keywords :class:`LabModel` passes to every run (the clock comes from the settings)."""

_BUSY = "A run is already going: wait for it, or press Stop."


@dataclass(frozen=True)
class _Plan:
    """What one Run or Sweep runs, read from the settings once when it starts."""

    pipe: Pipeline
    params: dict[str, Any]
    repeat: int
    clock: str


class LabModel:
    """Running, sweeping, stopping and re-merging, and the history of every run.

    Parameters
    ----------
    ctx : pydantic.BaseModel
        The starting context (copied by every run; never mutated).
    settings : LabSettings
        Where the options of each run come from (the panel's controls, or any object with
        ``pipeline()``, ``parameters()``, ``caps()``, ``repeat`` and ``clock``).
    view : LabView
        Whom the model tells what happened; it never touches anything else.
    **run_options
        Passed to every run: ``input``, ``usage``, ``max_concurrency`` (run-wide), ``timeout``,
        ``instruments``, ``record``, ``backend``.

    Attributes
    ----------
    history : History
        Every run's result and row; :meth:`History.frame` is the table.
    last_comparison : Comparison or None
        The latest sweep's outcome.
    task : asyncio.Task or None
        The latest run or sweep scheduled on a running loop.
    handle : RunHandle or None
        The run in progress (during a Run; a sweep's runs belong to :func:`flowlab.compare`).
    """

    def __init__(
        self, ctx: BaseModel, settings: LabSettings, view: LabView, **run_options: Any
    ) -> None:
        if not isinstance(ctx, BaseModel):
            raise ConfigError(f"ctx={ctx!r} is not valid; give a pydantic BaseModel instance.")
        for name in run_options:
            check_one_of("Lab run option", name, RUN_OPTIONS)
        self.ctx = ctx
        self.settings = settings
        self.view = view
        self.run_options = dict(run_options)
        self.history = History()
        self.last_comparison: Comparison | None = None
        self.task: asyncio.Task[Any] | None = None
        self.handle: RunHandle | None = None
        self._watch: RunWatch | None = None
        self._busy = self._stop = self._sweep = False
        self._done: int = 0
        self._total: int | None = 0

    # ---- state --------------------------------------------------------------------------------
    @property
    def results(self) -> list[RunResult]:
        """Every run's result, in history order."""
        return self.history.results

    @property
    def result(self) -> RunResult | None:
        """The latest run's result."""
        return self.results[-1] if self.results else None

    @property
    def running(self) -> bool:
        """Whether a run or a sweep is going (or scheduled and about to start)."""
        return self._busy or self._scheduled()

    @property
    def sweeping(self) -> bool:
        """Whether a sweep is going."""
        return self._busy and self._sweep

    @property
    def stopping(self) -> bool:
        """Whether Stop was asked for the run or sweep still going."""
        return self._busy and self._stop

    @property
    def progress(self) -> tuple[int, int | None]:
        """Branches finished and expected in the latest run or sweep (``None``: a Map's, unknown)."""
        return self._done, self._total

    def _scheduled(self) -> bool:
        """A run task is scheduled, not done, and it is not the task asking."""
        task = self.task
        if task is None or task.done():
            return False
        try:
            return task is not asyncio.current_task()
        except RuntimeError:  # no loop running here
            return True

    def sweep_keys(self) -> list[str]:
        """The options Sweep can vary: ``"<step>.merge"``, ``.max_concurrency``, ``.order``, ..."""
        options = ("merge", "max_concurrency", "order", "on_failure")
        return [f"{name}.{o}" for name in self.settings.caps() for o in options]

    def sweep_values(self, key: str) -> list[Any]:
        """Every value Sweep tries for ``key``: all strategies, caps 1..the step's cap and none, ..."""
        from flowlab.core.merge import STRATEGIES

        check_one_of("key", key, self.sweep_keys())
        step, option = key.rsplit(".", 1)
        if option == "merge":
            return list(STRATEGIES)
        if option == "max_concurrency":
            return [*range(1, self.settings.caps()[step] + 1), None]
        return list(ORDERS if option == "order" else ON_FAILURE)

    # ---- running ------------------------------------------------------------------------------
    def run(self) -> Any:
        """Run with the current settings (``repeat`` times).

        Returns
        -------
        RunResult, asyncio.Task or None
            With no event loop running: blocks and returns the last result (``None`` if nothing
            ran). Inside a running loop: returns the scheduled task at once (``await`` it for the
            result); the view hears when it is done.
        """
        return self._dispatch(self.arun)

    async def arun(self) -> RunResult | None:
        """Run with the current settings; return the last result (``None`` if none ran).

        Never raises for a failed run: the error goes to the view and stays in the history.
        """
        from flowlab.engine.entry import start

        plan = self._prepare()
        if plan is None:
            return None
        options = dict(self.run_options)
        watch = self._begin(_count(plan.pipe, plan.repeat), sweep=False)
        instruments = [*options.pop("instruments", ()), watch]

        async def body() -> None:
            for i in range(plan.repeat):
                if self._stop:
                    break
                t0 = time.perf_counter()
                seen = [*instruments, *self.view.observers()]  # a live view is per run
                self.handle = handle = start(
                    plan.pipe, self.ctx, clock=plan.clock, instruments=seen, **options
                )
                try:
                    result = await handle.wait()
                except asyncio.CancelledError:
                    handle.cancel()
                    raise
                self.history.add(result, plan.params, repeat=i, wall_s=time.perf_counter() - t0)

        return await self._finish(len(self.results), body())

    def remerge(self) -> RunResult | None:
        """Merge the latest run again under the merge strategies the settings show now, without
        running any branch (:meth:`flowlab.RunResult.remerge`): a new history row, marked
        ``remerged``.

        Only the ``<step>.merge`` parameters may differ from the latest row (anything else needs
        a real run). Returns the new result, or ``None`` when there is nothing to re-merge, or
        (with a note to the view saying why) when a re-merge cannot be exact.
        """
        last = self.result
        if last is None or self.running or not self.history.rows:
            return None
        params = self.settings.parameters()
        before = self.history.rows[-1]
        changed = [k for k, v in params.items() if not same_value(before.get(k), v)]
        merges = [k for k in changed if k.endswith(".merge")]
        if not merges or len(merges) != len(changed):
            return None  # nothing to re-merge, or other options changed: a real run is needed
        t0 = time.perf_counter()
        result = last
        try:
            steps: dict[str, Any] = {}
            for p in self.settings.pipeline().parallels():
                steps.setdefault(p.name, p)
            for key in merges:
                step = key.removesuffix(".merge")
                result = result.remerge(steps[step].merge_arg, step=step, raise_on_error=False)
        except ConfigError as err:
            self.view.note(f"Press Run to see this merge: {err}")
            return None
        self.history.add(result, params, repeat=0, wall_s=time.perf_counter() - t0)
        self.history.rows[-1]["remerged"] = True
        self._show(result)
        return result

    def sweep(self, key: str) -> Any:
        """Run :func:`flowlab.compare` over every value of option ``key`` (``repeat`` times each).

        ``key`` is one of :meth:`sweep_keys`; the other options keep the values the settings show.
        Every run becomes a history row. Returns like :meth:`run` (a :class:`flowlab.Comparison`).
        """
        return self._dispatch(functools.partial(self.asweep, key))

    async def asweep(self, key: str) -> Comparison | None:
        """Async :meth:`sweep`; returns the :class:`flowlab.Comparison` (``None`` if none ran).

        A key that is not one of :meth:`sweep_keys` is shown as an error ("Nothing to sweep").
        """
        from flowlab.study.experiment import compare

        try:
            values = self.sweep_values(key)
        except ConfigError as err:
            self.view.show_error(err, title="Nothing to sweep")
            return None
        plan = self._prepare()
        if plan is None:
            return None
        options = dict(self.run_options)
        watch = self._begin(_count(plan.pipe, plan.repeat * len(values)), sweep=True)
        options["instruments"] = [*options.get("instruments", ()), watch]
        job = functools.partial(
            compare, plan.pipe, self.ctx, {key: values}, repeat=plan.repeat, clock=plan.clock,
            progress=False, **options,
        )  # fmt: skip
        n_before = len(self.results)

        async def body() -> None:
            t0 = time.perf_counter()
            cmp = await asyncio.get_running_loop().run_in_executor(None, job)
            wall = (time.perf_counter() - t0) / max(1, len(cmp.results))
            for i, result in enumerate(cmp.results):
                params = with_swept(plan.params, key, values[i // plan.repeat])
                self.history.add(result, params, repeat=i % plan.repeat, wall_s=wall)
                if self._stop and result.status == "cancelled":
                    break  # the runs after Stop were cancelled at once: one row says it
            self.last_comparison = cmp

        await self._finish(n_before, body())
        if len(self.results) == n_before or self.last_comparison is None:
            return None
        self._tell("Could not plot the sweep", self.view.show_sweep, key, self.last_comparison)
        return self.last_comparison

    def stop(self) -> None:
        """Cancel the run in progress (and the repeats or sweep runs still to come)."""
        if not self._busy:
            if self._scheduled() and self.task is not None:
                self.task.cancel()  # scheduled but not started: it never will
            return
        self._stop = True
        self.view.stopping()
        if self.handle is not None:  # a Run: the handle cancels it, even before it starts
            self.handle.cancel()
        elif self._watch is not None:  # a sweep: fl.compare runs it; cancel through the engine
            self._watch.stop()

    # ---- helpers ------------------------------------------------------------------------------
    def _dispatch(self, job: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(job())
        if self.running:
            self.view.note(_BUSY)
            return self.task
        self.task = loop.create_task(job())
        return self.task

    def _prepare(self) -> _Plan | None:
        if self.running:
            self.view.note(_BUSY)
            return None
        try:
            pipe = self.settings.pipeline()
        except Exception as err:
            self.view.show_error(err, title="These options are not valid")
            return None
        s = self.settings
        return _Plan(pipe, s.parameters(), int(s.repeat), str(s.clock))

    async def _finish(self, n_before: int, body: Coroutine[Any, Any, None]) -> RunResult | None:
        problem: BaseException | None = None
        try:
            await body
        except Exception as err:  # shown by the view, never lost
            problem = err
        finally:
            last = self.result if len(self.results) > n_before else None
            self._end(last)
        self._show(last)
        if problem is not None:
            title = "The Lab could not run the pipeline"
            self.view.show_error(problem, title=title, clear=last is None)
        return last

    def _show(self, last: RunResult | None) -> None:
        """Tell the view of the latest result and the history; an error doing so is shown too."""
        if last is not None:
            n = len(self.results)
            self._tell(f"Could not show run #{n}", self.view.show_result, n, last)
        self._tell("Could not show the history", self.view.show_history)

    def _tell(self, title: str, show: Callable[..., None], *args: Any) -> None:
        try:
            show(*args)
        except Exception as err:  # a view that fails is shown failing, the model goes on
            self.view.show_error(err, title=title, clear=False)

    def _begin(self, total: int | None, *, sweep: bool) -> RunWatch:
        self._busy, self._stop, self._sweep = True, False, sweep
        self._done, self._total = 0, total
        loop = asyncio.get_running_loop()
        self._watch = RunWatch(
            loop, on_branch=self._branch_finished, stopping=lambda: self.stopping
        )
        self.view.began(total)
        return self._watch

    def _end(self, last: RunResult | None) -> None:
        self._busy = False
        self.handle = self._watch = None
        ok = last is not None and last.status == "ok"
        state = "stopped" if self._stop else (last.status if last is not None else "not run")
        self.view.ended(state, ok)

    def _branch_finished(self, watch: RunWatch) -> None:
        if watch is not self._watch:
            return  # a late count from a run or sweep that is over
        self._done = self._done + 1 if self._total is None else min(self._total, self._done + 1)
        self.view.ticked(self._done, self._total)

    def __repr__(self) -> str:
        state = "sweeping" if self.sweeping else "running" if self.running else "idle"
        return f"<LabModel runs={len(self.results)} {state}>"


def _count(pipe: Pipeline, runs: int) -> int | None:
    """Declared branches over ``runs`` runs, nested ones included (what the engine reports as
    ``total_branches``); ``None`` when a Map names its branches as it runs (the count then goes
    up with no total)."""
    parallels = list(pipe.parallels())
    if any(isinstance(p, Map) for p in parallels):
        return None
    return sum(len(p.branches) for p in parallels) * runs
