"""Entry points that work the same in a script, in async code and in a Jupyter cell.

* :func:`arun` — ``await fl.arun(pipe, ctx)`` in async code and notebook cells.
* :func:`run` — blocking. With no loop running it makes one. Inside a running loop (a Jupyter cell) it
  re-enters that loop through nest-asyncio2, the maintained fork of nest-asyncio (the archived
  nest-asyncio 1.6.0 drops queued cells under ipykernel 7 on "Run All").
* :func:`start` — a background run; the :class:`RunHandle` cancels branches, reports progress, and
  is awaitable.

Virtual time needs a loop of its own (:class:`~flowlab.engine.clock.VirtualTimeLoop`); when another loop is
already running, the run is executed on a virtual loop in a helper thread and awaited from the caller.

Interrupting (Ctrl-C, or the kernel's interrupt button) cancels every branch; the partial result is
kept — ``fl.last_result()`` or the raised error's ``.result`` — and the loop stays usable. An
interrupted :func:`run` raises :class:`~flowlab.errors.RunInterrupted` (a ``KeyboardInterrupt``); an
interrupted ``await fl.arun(...)`` / ``await handle`` raises the ``asyncio.CancelledError`` asyncio
needs, caused by a ``RunInterrupted``. A Jupyter cell shows either as the one line
``RunInterrupted: partial result in fl.last_result()`` instead of the frames of nest-asyncio2,
asyncio, selectors and flowlab it passed through.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import warnings
from collections.abc import AsyncIterator, Generator, Sequence
from typing import Any, Unpack

from pydantic import BaseModel

from flowlab.engine import plugins
from flowlab.engine.clock import VirtualTimeLoop, new_loop, run_in_thread
from flowlab.engine.coordinator import _WAKE_S, Run
from flowlab.engine.options import RunKwargs, RunOptions
from flowlab.engine.streaming import BranchCallback, Outcome, OutcomeStream
from flowlab.errors import ConfigError, RunInterrupted, RunNotFinished
from flowlab.results.record import Instrument, RunResult

__all__ = ["RunHandle", "arun", "run", "start"]

_START_GRACE_S = 0.25  # wall seconds a background run waits for its caller (see start())
_WIND_DOWN_S = 30.0  # seconds an interrupted cell waits for its run to end (RunHandle)
INTERRUPTED = "partial result in fl.last_result()"
"""The message of the :class:`~flowlab.errors.RunInterrupted` an interrupted run raises."""


def _make_run(
    pipeline: Any, ctx: BaseModel, options: RunOptions, stream: OutcomeStream | None = None
) -> Run:
    """The one place run/arun/start turn their options into a :class:`Run`: the instruments
    the options ask for (on_branch, live, progress, the handle's stream) join the user's."""
    extra: list[Instrument] = list(options.instruments)
    if options.live:
        extra.append(plugins.load("live_view")())
    if options.on_branch is not None:
        extra.append(BranchCallback(options.on_branch))
    if stream is not None:
        extra.append(stream)
    return Run(pipeline, ctx, options, instruments=_with_progress(extra, options.progress and not options.live))


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _deliver(result: RunResult, raise_on_error: bool) -> RunResult:
    error = result.error
    if error is not None and (raise_on_error or not isinstance(error, Exception)):
        raise error  # a KeyboardInterrupt / SystemExit from a step is raised regardless
    return result


def _needs_thread(clock: str, loop: asyncio.AbstractEventLoop) -> bool:
    return clock == "virtual" and not isinstance(loop, VirtualTimeLoop)


def run(
    pipeline: Any,
    ctx: BaseModel,
    *,
    raise_on_error: bool = True,
    **options: Unpack[RunKwargs],
) -> RunResult:
    """Run ``pipeline`` on a copy of ``ctx`` and wait for the result.

    Parameters
    ----------
    pipeline : Pipeline, Parallel, Step or callable
    ctx : pydantic.BaseModel
        The starting context. It is copied; the caller's object is never mutated.
    raise_on_error : bool, default True
        Raise the run's error (carrying ``.result``); ``False`` returns the result with its status.
    **options
        The run options, checked once by :class:`~flowlab.engine.options.RunOptions` (which
        documents each): ``input``, ``usage``, ``clock`` (``"real"`` or ``"virtual"``),
        ``max_concurrency``, ``rate``, ``timeout``, ``instruments``, ``progress``, ``record``,
        ``backend``, ``detect_deadlocks``, ``on_branch``, ``live``. An unknown keyword is a
        :class:`~flowlab.errors.ConfigError` naming the closest valid one.

    Returns
    -------
    RunResult

    Examples
    --------
    >>> import asyncio
    >>> import flowlab as fl
    >>> from pydantic import BaseModel
    >>> class Ctx(BaseModel):
    ...     n: int = 0
    >>> async def work(data, ctx):
    ...     await asyncio.sleep(1)
    ...     ctx.n += 1
    >>> pipe = fl.Pipeline(fl.Parallel({"a": work, "b": work}, merge="accumulate", max_concurrency=1))
    >>> r = fl.run(pipe, Ctx(), clock="virtual")
    >>> r.context.n, r.summary()["makespan_s"]
    (2, 2.0)
    """
    the_run = _make_run(pipeline, ctx, RunOptions.of(options, where="fl.run"))
    clock = the_run.clock
    loop = _running_loop()
    if loop is None:
        with asyncio.Runner(loop_factory=lambda: new_loop(clock)) as runner:
            result = runner.run(the_run.execute())
        return _deliver(result, raise_on_error)
    if _needs_thread(clock, loop):
        return _deliver_in_cell(_wait_thread(the_run, clock), raise_on_error)
    import nest_asyncio2

    nest_asyncio2.apply(loop)
    task = loop.create_task(the_run.execute())
    try:
        result = loop.run_until_complete(task)
    except BaseException:
        # Interrupted (KeyboardInterrupt in a notebook cell): cancel every branch, keep the
        # partial result, leave the loop usable, then re-raise.
        if not task.done():
            the_run._run_reason = "interrupted"
            task.cancel()
            _wind_down_blocking(loop, task, the_run)
        if the_run.result is None:
            the_run._finish("cancelled", None, None)
        _reraise_interrupt(the_run)
        raise
    return _deliver_in_cell(result, raise_on_error)


# ---- interrupts in a cell: one line ----------------------------------------------------------
# Ctrl-C lands wherever the main thread is (nest-asyncio2's selector, a step's print, the wait for
# a helper thread); the cell shows one line either way. The frames stay reachable: the original is
# fl.last_result().error when it ended the run inside a step, else the new error's __context__.


def _deliver_in_cell(result: RunResult, raise_on_error: bool) -> RunResult:
    if type(result.error) is KeyboardInterrupt:
        raise _interrupted(str(result.error), result) from None
    return _deliver(result, raise_on_error)


def _reraise_interrupt(the_run: Run) -> None:
    """Inside an ``except``: turn the interrupt being handled into :func:`_interrupted`."""
    import sys

    if type(err := sys.exc_info()[1]) is KeyboardInterrupt:
        raise _interrupted(str(err), the_run.result) from None


def _interrupted(detail: str, result: RunResult | None) -> RunInterrupted:
    """The error IPython shows as one line: IPython asks an exception for
    ``_render_traceback_()`` before formatting frames (as ipyparallel's remote errors do)."""
    return RunInterrupted(f"{detail}; {INTERRUPTED}" if detail else INTERRUPTED, result=result)


def _cancelled_cell(the_run: Run) -> asyncio.CancelledError:
    """What an interrupted ``await`` raises: the :class:`asyncio.CancelledError` asyncio needs
    (``asyncio.timeout`` and task groups test for that exact type), caused by and shown as a
    :class:`RunInterrupted`."""
    cause = _interrupted("", the_run.result)
    err = asyncio.CancelledError(str(cause))
    err.__cause__ = cause  # the caller raises `err from err.__cause__`
    setattr(err, "_render_traceback_", cause._render_traceback_)  # noqa: B010
    return err


def _wind_down_blocking(
    loop: asyncio.AbstractEventLoop, task: asyncio.Task[RunResult], the_run: Run
) -> None:
    """Run the loop until the cancelled run's task has ended, through further interrupts (at
    most ``_WIND_DOWN_S`` seconds of the loop's clock; then warn, naming what still runs)."""
    deadline = loop.time() + _WIND_DOWN_S
    while not task.done() and loop.time() < deadline:
        try:
            loop.run_until_complete(asyncio.wait({task}, timeout=deadline - loop.time()))
        except BaseException:  # interrupted again: the clean-up goes on, still bounded
            continue
    if not task.done():
        _warn_still_running(the_run)


def _warn_still_running(the_run: Run) -> None:
    running = sorted({lv.record.path for lv in list(the_run.live.values())})
    shown = ", ".join(repr(p) for p in running[:10]) or "its steps' threads"
    warnings.warn(
        f"the interrupted run is still winding down after {_WIND_DOWN_S:g} s; still "
        f"running: {shown}. fl.last_result() has what it recorded so far.",
        RuntimeWarning,
        stacklevel=4,
    )


def _wait_thread(the_run: Run, clock: str) -> RunResult:
    future = run_in_thread(the_run.execute, clock)
    try:
        return future.result()
    except KeyboardInterrupt:
        _cancel_threadsafe(the_run, None)
        concurrent.futures.wait([future], timeout=30)
        _reraise_interrupt(the_run)
        raise


def _cancel_threadsafe(the_run: Run, branch: str | None) -> None:
    with the_run.control_lock:
        loop = the_run.loop
        if loop is None:
            the_run.pending_cancels.append(branch)  # applied before anything starts
            return
    if loop.is_closed():
        return
    if threading.current_thread() is getattr(loop, "_thread_owner", None):
        the_run.cancel(branch)
        return
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        the_run.cancel(branch)
    else:
        loop.call_soon_threadsafe(the_run.cancel, branch)


async def arun(
    pipeline: Any,
    ctx: BaseModel,
    *,
    raise_on_error: bool = True,
    **options: Unpack[RunKwargs],
) -> RunResult:
    """Async :func:`run`: ``result = await fl.arun(pipe, ctx)``. Same parameters."""
    the_run = _make_run(pipeline, ctx, RunOptions.of(options, where="fl.arun"))
    clock = the_run.clock
    handle = _launch(the_run, clock)  # (no outcome stream: nobody can read it)
    try:
        result = await handle.wait()
    except asyncio.CancelledError:  # an interrupted cell: the run ends before the cell returns
        await handle._wind_down()
        err = _cancelled_cell(handle.run)
        raise err from err.__cause__
    return _deliver_in_cell(result, raise_on_error)


def start(
    pipeline: Any,
    ctx: BaseModel,
    **options: Unpack[RunKwargs],
) -> RunHandle:
    """Start a run in the background and return its :class:`RunHandle` at once.

    Inside a running loop the run is a task on it (virtual time: a helper thread); with no loop
    running (a plain script) it runs on its own loop in a helper thread. The handle keeps every
    branch's outcome (its output included) for :meth:`RunHandle.as_completed`, as long as the
    handle lives.
    """
    the_run = _make_run(pipeline, ctx, RunOptions.of(options, where="fl.start"), OutcomeStream())
    return _launch(the_run, the_run.clock)


def _launch(the_run: Run, clock: str) -> RunHandle:
    """Start ``the_run`` in the background (see :func:`start`)."""
    loop = _running_loop()
    if loop is not None and not _needs_thread(clock, loop):
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
        _cancel_threadsafe(self.run, branch)

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
            await asyncio.wait({waiter}, timeout=_WAKE_S)
        return waiter.result()

    async def _wind_down(self) -> None:
        """Cancel the run and wait, through further interrupts, until it has ended (at most
        ``_WIND_DOWN_S`` seconds of the loop's clock; then warn, naming what still runs)."""
        self.cancel()
        waiter = asyncio.ensure_future(self.wait())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _WIND_DOWN_S
        while not waiter.done() and loop.time() < deadline:
            try:
                await asyncio.wait({waiter}, timeout=deadline - loop.time())
            except asyncio.CancelledError:
                continue  # interrupted again: the clean-up goes on, still bounded
        if not waiter.done():
            waiter.cancel()
            _warn_still_running(self.run)

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
                await self._wind_down()
                err = _cancelled_cell(self.run)
                raise err from err.__cause__
            return _deliver_in_cell(result, True)

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


def _with_progress(instruments: Sequence[Instrument], progress: bool) -> list[Instrument]:
    out = list(instruments)
    if progress:
        out.append(plugins.load("progress_bar")())
    return out
