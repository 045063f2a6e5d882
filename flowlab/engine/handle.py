"""A run in the background: :func:`launch` starts one, :class:`RunHandle` is what the caller holds.

Inside a running loop the run is a task on it (virtual time: a helper thread); with no loop
running (a plain script) it runs on its own loop in a helper thread. The handle cancels the run
or one branch, reports progress, streams outcomes (:meth:`RunHandle.as_completed`), and is
awaitable; an interrupted ``await handle`` cancels the run it interrupts.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import AsyncIterator, Generator
from typing import Any

from flowlab.engine.clock import VirtualTimeLoop, run_in_thread
from flowlab.engine.coordinator import Run
from flowlab.engine.interrupts import (
    WIND_DOWN_S,
    cancel_threadsafe,
    cancelled_cell,
    deliver_in_cell,
    running_loop,
    warn_still_running,
)
from flowlab.engine.lifecycle import WAKE_S
from flowlab.engine.streaming import Outcome, OutcomeStream
from flowlab.errors import ConfigError, RunNotFinished
from flowlab.results.record import RunResult

__all__ = ["RunHandle", "launch"]

_START_GRACE_S = 0.25  # wall seconds a background run waits for its caller (see start())


def launch(the_run: Run) -> RunHandle:
    """Start ``the_run`` in the background (see :func:`start`): on the running loop if its
    clock runs on it, else on a loop of the clock's own in a helper thread."""
    clock = the_run.options.timekeeper
    loop = running_loop()
    if loop is not None and clock.runs_on(loop):
        return RunHandle(the_run, task=loop.create_task(the_run.execute()))
    # The helper thread begins the run when the caller first waits for it, or after a short
    # grace: a cancel asked for right after start() is then applied before any branch starts
    # (virtual time runs as fast as the CPU: it used to finish first).
    gate = threading.Event()
    future = run_in_thread(the_run.execute, clock, gate=gate, grace_s=_START_GRACE_S)
    return RunHandle(the_run, future=future, gate=gate)


class RunHandle:
    """A run in progress: cancel it (or one branch), watch its progress, await its result.

    Examples
    --------
    ``handle = fl.start(pipe, Ctx()); handle.cancel("a"); result = await handle``
    """

    def __init__(
        self,
        run: Run,
        *,
        task: asyncio.Task[RunResult] | None = None,
        future: concurrent.futures.Future[RunResult] | None = None,
        gate: threading.Event | None = None,
    ) -> None:
        self.run = run
        self._task = task
        self._future = future
        self._gate = gate  # set: the helper thread may begin (see start())
        # handle.as_completed()'s stream (start() adds one); closed when the run is done,
        # whatever happened to it, so no reader waits for ever
        self._stream = next((i for i in run.instruments if isinstance(i, OutcomeStream)), None)
        if self._stream is not None:
            close = self._stream.close
            if task is not None:
                task.add_done_callback(lambda _: close())
            elif future is not None:
                future.add_done_callback(lambda _: close())

    def cancel(self, branch: str | None = None) -> None:
        """Cancel one branch (name or path; queued or running) or, with no name, the whole run.

        A cancelled branch is not a failure: it is recorded as ``cancelled``, its changes are not
        merged, and its siblings and the step go on. A name that matches no branch yet cancels
        the next branch of that name as soon as it is queued (so a run cancelled right after
        ``start`` never runs it).

        Raises
        ------
        ConfigError
            When no step of the pipeline declares a branch of that name or path.
        """
        if branch is not None:
            self.run.check_branch(branch)  # a ConfigError here, in the caller's thread
        if self.done():
            return
        cancel_threadsafe(self.run, branch)

    def as_completed(self) -> AsyncIterator[Outcome]:
        """Branch outcomes in the order the branches end, while the run goes on.

        ``async for outcome in handle.as_completed(): ...`` yields a
        :class:`~flowlab.engine.streaming.Outcome` (``.path .branch .status .output .error``) per
        branch, nested branches included, starting from the first branch that ended (a reader
        that comes late gets the earlier ones first); it ends when the run ends, however it
        ends (failed, cancelled, timed out). Any number of readers may read it, each from the
        start.

        Raises
        ------
        ConfigError
            For a handle made without an outcome stream (:func:`start` always makes one).

        Examples
        --------
        ``async for o in fl.start(pipe, Ctx()).as_completed(): print(o.branch, o.status)``
        """
        if self._stream is None:
            raise ConfigError(
                "handle.as_completed(): this handle's run keeps no outcome stream. HINT: "
                "make the handle with fl.start(...)."
            )
        self._begin()
        return self._stream.__aiter__()

    def done(self) -> bool:
        """Whether the run has finished."""
        if self._task is not None:
            return self._task.done()
        assert self._future is not None
        return self._future.done()

    @property
    def progress(self) -> dict[str, int | None]:
        """Counts of branches: ``done``, ``running``, ``queued`` (and ``total`` declared;
        ``None`` when a Map makes its branches as it runs)."""
        done = running = queued = 0
        for b in list(self.run.recorder.branches):
            if b.status == "running":
                running += 1
            elif b.status == "queued":
                queued += 1
            else:
                done += 1
        return {
            "done": done,
            "running": running,
            "queued": queued,
            "total": self.run.total_branches,
        }

    async def wait(self) -> RunResult:
        """Wait for the run and return its :class:`RunResult` (never raises for run errors)."""
        if self._task is not None:
            return await asyncio.shield(self._task)
        assert self._future is not None
        self._begin()
        # shielded, as the task above: a cancelled waiter must not cancel the run's future (a
        # run whose thread has not begun yet would then never run at all)
        waiter = asyncio.wrap_future(self._future)
        if isinstance(asyncio.get_running_loop(), VirtualTimeLoop):
            return await asyncio.shield(waiter)
        while not waiter.done():  # (asyncio.wait never cancels what it waits for)
            # Wake now and then: a kernel's interrupt of an ``await`` cell is a callback its
            # signal handler schedules, which does not wake a loop asleep in select (the run
            # on its thread would end first, never cancelled; see engine.Run._wake_up).
            await asyncio.wait({waiter}, timeout=WAKE_S)
        return waiter.result()

    async def wind_down(self) -> None:
        """Cancel the run and wait, through further interrupts, until it has ended (at most
        ``WIND_DOWN_S`` seconds of the loop's clock; then warn, naming what still runs)."""
        self.cancel()
        waiter = asyncio.ensure_future(self.wait())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WIND_DOWN_S
        while not waiter.done() and loop.time() < deadline:
            try:
                await asyncio.wait({waiter}, timeout=deadline - loop.time())
            except asyncio.CancelledError:
                continue  # interrupted again: the clean-up goes on, still bounded
        if not waiter.done():
            waiter.cancel()
            warn_still_running(self.run)

    def _begin(self) -> None:
        if self._gate is not None:
            self._gate.set()

    def __await__(self) -> Generator[Any, None, RunResult]:
        """``result = await handle``: the result, or the run's error raised. As with awaiting a
        task, cancelling the awaiter (an interrupted cell) cancels the run; ``await
        handle.wait()`` does not."""

        async def _get() -> RunResult:
            try:
                result = await self.wait()
            except asyncio.CancelledError:
                await self.wind_down()
                err = cancelled_cell(self.run)
                raise err from err.__cause__
            return deliver_in_cell(result, True)

        return _get().__await__()

    def result(self, timeout: float | None = None) -> RunResult:
        """The :class:`RunResult` (blocks for a background-thread run; a task must be done)."""
        if self._future is not None:
            self._begin()
            return self._future.result(timeout)
        assert self._task is not None
        if not self._task.done():
            raise RunNotFinished(
                "handle.result(): the run is still running (a task on this event loop, which "
                "cannot block to wait for it). HINT: `result = await handle` (or "
                "`await handle.wait()`) in async code and notebook cells."
            )
        return self._task.result()

    def __repr__(self) -> str:
        p = self.progress
        state = "done" if self.done() else "running"
        return (
            f"<RunHandle {state} done={p['done']} running={p['running']} queued={p['queued']} "
            f"total={p['total']}>"
        )
