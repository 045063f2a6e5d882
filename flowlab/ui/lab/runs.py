"""How the Lab runs things: Run (``repeat`` times), Sweep (:func:`flowlab.compare`), Stop.

:class:`LabRuns` is the running half of :class:`flowlab.ui.lab.lab.Lab` (the panel half builds the
widgets and shows results). Where a run goes:

* **No event loop running** (a script): :meth:`LabRuns.run` blocks, returns the last
  :class:`~flowlab.results.record.RunResult`.
* **A loop running** (a notebook cell, a button's click callback): :meth:`LabRuns.run` schedules
  the run as a task on that loop (:func:`flowlab.start`) and returns the task at once; the panel
  updates when the run is done, and Stop cancels it meanwhile. ``await lab.arun()`` runs and waits.

A sweep runs :func:`flowlab.compare` in a worker thread, so the loop (and the Stop button) stays
responsive; Stop reaches its runs through the :class:`RunWatch` instrument.
"""

from __future__ import annotations

import asyncio
import functools
import html
import threading
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from flowlab.core.pipeline import ON_FAILURE, ORDERS, Pipeline
from flowlab.errors import ConfigError, check_one_of
from flowlab.results.record import BranchRecord, Instrument, RunResult
from flowlab.ui.lab.history import History

if TYPE_CHECKING:
    from flowlab.engine.coordinator import Run
    from flowlab.study.experiment import Comparison
    from flowlab.ui.lab.compare import CompareView
    from flowlab.ui.lab.controls import RunControls, StepControls

__all__ = ["LabRuns", "RunWatch"]

_BUSY = "A run is already going: wait for it, or press Stop."


class RunWatch(Instrument):
    """Feeds the Lab's progress bar, and lets Stop reach a run it did not start itself.

    Hooks run on the run's loop thread, which is a helper thread for virtual-clock runs inside a
    notebook: widget updates are handed to the Lab's own loop there.
    """

    def __init__(self, lab: LabRuns, loop: asyncio.AbstractEventLoop) -> None:
        self._lab = lab
        self._loop = loop
        self._thread = threading.get_ident()
        self.current: Run | None = None

    def run_started(self, total_branches: int | None) -> None:
        from flowlab.engine.coordinator import current_run

        self.current = current_run()
        if self._lab._stop and self.current is not None:
            self.current.cancel()  # Stop was pressed between the runs of a sweep

    def branch_finished(self, record: BranchRecord) -> None:
        self._call(self._lab._tick)

    def stop(self) -> None:
        """Cancel the current run from any thread."""
        run = self.current
        if run is None or run.loop is None or run.loop.is_closed():
            return
        try:
            run.loop.call_soon_threadsafe(run.cancel)
        except RuntimeError:  # the run's loop closed in between: nothing left to stop
            pass

    def _call(self, fn: Callable[[], None]) -> None:
        if threading.get_ident() == self._thread:
            fn()
            return
        try:
            self._loop.call_soon_threadsafe(fn)
        except RuntimeError:  # the Lab's loop is gone; nobody is watching the bar any more
            pass


class LabRuns:
    """Running, sweeping and stopping for the Lab; the panel half provides the widgets and views.

    Subclasses set the attributes annotated here and implement the ``_show_*`` hooks.
    """

    ctx: BaseModel
    run_kwargs: dict[str, Any]
    controls: dict[str, StepControls]
    run_controls: RunControls
    compare_view: CompareView
    last_comparison: Comparison | None
    _history: History
    _task: asyncio.Task[Any] | None
    _watch: RunWatch | None
    _handle: Any
    _busy: bool
    _stop: bool
    _open_ended: bool  # the bar's total is unknown (a Map names its branches as it runs)
    run_button: Any
    stop_button: Any
    sweep_button: Any
    sweep_key: Any
    progress: Any
    progress_label: Any
    status: Any

    def _init_runs(self) -> None:
        self._history = History()
        self._task = None
        self._watch = None
        self._handle = None
        self._busy = self._stop = self._open_ended = False
        self.last_comparison = None

    def pipeline(self) -> Pipeline:
        """The pipeline with the options the controls show."""
        raise NotImplementedError

    def parameters(self) -> dict[str, Any]:
        """The history's parameter columns for the current control values."""
        raise NotImplementedError

    def _show_result(self, run_id: int, result: RunResult) -> None:
        raise NotImplementedError

    def _show_history(self) -> None:
        raise NotImplementedError

    def _show_error(self, err: BaseException, *, title: str, clear: bool = True) -> None:
        raise NotImplementedError

    def _note(self, text: str) -> None:
        raise NotImplementedError

    @property
    def results(self) -> list[RunResult]:
        """Every run's result, in history order."""
        return self._history.results

    @property
    def result(self) -> RunResult | None:
        """The latest run's result."""
        return self.results[-1] if self.results else None

    @property
    def running(self) -> bool:
        """Whether a run or a sweep is going (or scheduled and about to start)."""
        return self._busy or self._scheduled()

    def _scheduled(self) -> bool:
        """A run task is scheduled, not done, and it is not the task asking."""
        task = self._task
        if task is None or task.done():
            return False
        try:
            return task is not asyncio.current_task()
        except RuntimeError:  # no loop running here
            return True

    def sweep_keys(self) -> list[str]:
        """The options Sweep can vary: ``"<step>.merge"``, ``.max_concurrency``, ``.order``, ..."""
        options = ("merge", "max_concurrency", "order", "on_failure")
        return [f"{name}.{o}" for name in self.controls for o in options]

    def sweep_values(self, key: str) -> list[Any]:
        """Every value Sweep tries for ``key``: all strategies, caps 1..branches and none, ..."""
        from flowlab.core.merge import STRATEGIES

        check_one_of("key", key, self.sweep_keys())
        step, option = key.rsplit(".", 1)
        if option == "merge":
            return list(STRATEGIES)
        if option == "max_concurrency":
            return [*range(1, self.controls[step].max_concurrency.max + 1), None]
        return list(ORDERS if option == "order" else ON_FAILURE)

    # ---- running ------------------------------------------------------------------------------
    def run(self) -> Any:
        """Run with the current control values (``repeat`` times).

        Returns
        -------
        RunResult, asyncio.Task or None
            With no event loop running: blocks and returns the last result (``None`` if nothing
            ran). Inside a running loop: returns the scheduled task at once (``await`` it for the
            result); the panel updates when it is done.
        """
        return self._dispatch(self.arun)

    async def arun(self) -> RunResult | None:
        """Run with the current control values; return the last result (``None`` if none ran).

        Never raises for a failed run: the error is shown in the panel and kept in the history.
        """
        from flowlab.engine.entry import start

        pipe, params, repeat = self._prepare()
        if pipe is None:
            return None
        kwargs = dict(self.run_kwargs)
        watch = self._begin(_count(pipe, repeat))
        instruments = [*kwargs.pop("instruments", ()), watch]
        clock = params["clock"]

        async def body() -> None:
            for i in range(repeat):
                if self._stop:
                    break
                t0 = time.perf_counter()
                self._handle = start(pipe, self.ctx, clock=clock, instruments=instruments, **kwargs)
                try:
                    result = await self._handle.wait()
                except asyncio.CancelledError:
                    self._handle.cancel()
                    raise
                self._history.add(result, params, repeat=i, wall_s=time.perf_counter() - t0)

        return await self._finish(len(self.results), body())

    def remerge(self) -> RunResult | None:
        """Show the latest run merged under the merge strategies the controls show now, without
        running any branch (:meth:`flowlab.RunResult.remerge`): a new history row, marked
        ``remerged``.

        Only the ``<step>.merge`` controls may differ from the latest row (anything else needs a
        real run). Returns the new result, or ``None`` (with a note saying why) when there is
        nothing to re-merge or a re-merge cannot be exact.
        """
        last = self.result
        if last is None or self.running or not self._history.rows:
            return None
        params = self.parameters()
        before = self._history.rows[-1]
        changed = [k for k, v in params.items() if not _same_param(before.get(k), v)]
        merges = [k for k in changed if k.endswith(".merge")]
        if not merges or len(merges) != len(changed):
            return None  # nothing to re-merge, or other options changed: a real run is needed
        t0 = time.perf_counter()
        result = last
        try:
            for key in merges:
                step = key.removesuffix(".merge")
                result = result.remerge(
                    self.controls[step].merge_arg, step=step, raise_on_error=False
                )
        except ConfigError as err:
            self._note(f"Press Run to see this merge: {err}")
            return None
        self._history.add(result, params, repeat=0, wall_s=time.perf_counter() - t0)
        self._history.rows[-1]["remerged"] = True
        self._show_result(len(self.results), result)
        self._show_history()
        return result

    def sweep(self, key: str | None = None) -> Any:
        """Run :func:`flowlab.compare` over every value of one option (``repeat`` times each).

        ``key`` is one of :meth:`sweep_keys` (default: the sweep dropdown's value); the other
        options keep the values the controls show. Every run becomes a history row, and the
        Compare view plots the outcome. Returns like :meth:`run` (a :class:`flowlab.Comparison`).
        """
        if key is not None:
            check_one_of("key", key, self.sweep_keys())
            self.sweep_key.value = key
        return self._dispatch(self.asweep)

    async def asweep(self, key: str | None = None) -> Comparison | None:
        """Async :meth:`sweep`; returns the :class:`flowlab.Comparison` (``None`` if none ran)."""
        from flowlab.study.experiment import compare

        try:
            key = str(key if key is not None else self.sweep_key.value)
            values = self.sweep_values(key)
        except ConfigError as err:
            self._show_error(err, title="Nothing to sweep")
            return None
        pipe, params, repeat = self._prepare()
        if pipe is None:
            return None
        kwargs = dict(self.run_kwargs)
        watch = self._begin(_count(pipe, repeat * len(values)))
        kwargs["instruments"] = [*kwargs.get("instruments", ()), watch]
        job = functools.partial(
            compare, pipe, self.ctx, {key: values}, repeat=repeat, clock=params["clock"],
            progress=False, **kwargs,
        )  # fmt: skip
        n_before = len(self.results)

        async def body() -> None:
            t0 = time.perf_counter()
            cmp = await asyncio.get_running_loop().run_in_executor(None, job)
            wall = (time.perf_counter() - t0) / max(1, len(cmp.results))
            for i, result in enumerate(cmp.results):
                self._history.add(result, _with(params, key, values[i // repeat]),
                                  repeat=i % repeat, wall_s=wall)  # fmt: skip
                if self._stop and result.status == "cancelled":
                    break  # the runs after Stop were cancelled at once: one row says it
            self.last_comparison = cmp

        await self._finish(n_before, body())
        if len(self.results) > n_before:
            self.compare_view.plot(x=key, hue="(none)")
        return self.last_comparison if len(self.results) > n_before else None

    def stop(self) -> None:
        """Cancel the run in progress (and the repeats or sweep runs still to come)."""
        if not self._busy:
            if self._scheduled() and self._task is not None:
                self._task.cancel()  # scheduled but not started: it never will
            return
        self._stop = True
        self.status.value = "<i>stopping…</i>"
        if self._handle is not None:  # a Run: the handle cancels it, even before it starts
            self._handle.cancel()
        elif self._watch is not None:  # a sweep: fl.compare runs it; cancel through the engine
            self._watch.stop()

    def _dispatch(self, job: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(job())
        if self.running:
            self._note(_BUSY)
            return self._task
        self._task = loop.create_task(job())
        return self._task

    def _prepare(self) -> tuple[Pipeline | None, dict[str, Any], int]:
        if self.running:
            self._note(_BUSY)
            return None, {}, 0
        try:
            pipe = self.pipeline()
        except Exception as err:
            self._show_error(err, title="These options are not valid")
            return None, {}, 0
        return pipe, self.parameters(), int(self.run_controls.repeat.value)

    async def _finish(self, n_before: int, body: Coroutine[Any, Any, None]) -> RunResult | None:
        problem: BaseException | None = None
        try:
            await body
        except Exception as err:  # shown in the panel, never lost
            problem = err
        finally:
            last = self.result if len(self.results) > n_before else None
            self._end(last)
        if last is not None:
            self._show_result(len(self.results), last)
        self._show_history()
        if problem is not None:
            title = "The Lab could not run the pipeline"
            self._show_error(problem, title=title, clear=last is None)
        return last

    # ---- state --------------------------------------------------------------------------------
    def _begin(self, total: int | None) -> RunWatch:
        self._busy, self._stop = True, False
        self.run_button.disabled = self.sweep_button.disabled = True
        self.stop_button.disabled = False
        self._open_ended = total is None  # a Map names its branches as it runs (see _count)
        self.progress.max, self.progress.value, self.progress.bar_style = max(1, total or 0), 0, ""
        self.progress_label.value = f"0 / {'?' if self._open_ended else total}"
        self.status.value = "<i>running…</i>"
        self._watch = RunWatch(self, asyncio.get_running_loop())
        return self._watch

    def _end(self, last: RunResult | None) -> None:
        self._busy = False
        self._handle = self._watch = None
        self.run_button.disabled = False
        self.sweep_button.disabled = not self.controls
        self.stop_button.disabled = True
        ok = last is not None and last.status == "ok"
        self.progress.bar_style = "success" if ok else "danger"
        state = "stopped" if self._stop else (last.status if last is not None else "not run")
        self.status.value = f"<i>{html.escape(state)}</i>"

    def _tick(self) -> None:
        if self._open_ended and self.progress.value >= self.progress.max:
            self.progress.max += 1  # a Map's branches: counted as they finish
        self.progress.value = min(self.progress.max, self.progress.value + 1)
        total = "?" if self._open_ended else self.progress.max
        self.progress_label.value = f"{self.progress.value} / {total}"


def _same_param(a: Any, b: Any) -> bool:
    """Parameter values as the history holds them (NaN for "no timeout" equals NaN)."""
    return a == b or (isinstance(a, float) and isinstance(b, float) and a != a and b != b)


def _count(pipe: Pipeline, runs: int) -> int | None:
    """Declared branches over ``runs`` runs, nested ones included (what the engine reports as
    ``total_branches``); ``None`` when a Map names its branches as it runs (the bar then counts
    up, with no total)."""
    from flowlab.core.map import Map

    parallels = list(pipe.parallels())
    if any(isinstance(p, Map) for p in parallels):
        return None
    return sum(len(p.branches) for p in parallels) * runs


def _with(params: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    """``params`` with one swept option set (a swept cap also sets ``<step>.cap``)."""
    out = dict(params)
    step, option = key.rsplit(".", 1)
    if option == "max_concurrency":
        out[f"{step}.cap"] = "unlimited" if value is None else "fixed"
    out[key] = value
    return out
