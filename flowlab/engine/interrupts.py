"""Interrupts in a cell, and waiting across threads: what the entry points share.

Ctrl-C (or the kernel's interrupt button) lands wherever the main thread is: nest-asyncio2's
selector, a step's print, the wait for a helper thread. Whichever it is, the run is cancelled, its
partial result kept (``fl.last_result()``), and the cell shows one line,
``RunInterrupted: partial result in fl.last_result()``. The frames stay reachable: the original
is ``fl.last_result().error`` when it ended the run inside a step, else the new error's
``__context__``. A run still winding down after :data:`WIND_DOWN_S` is named, not waited for.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import warnings
from typing import TYPE_CHECKING

from flowlab.engine.clock import run_in_thread
from flowlab.engine.coordinator import Run
from flowlab.errors import RunInterrupted
from flowlab.results.record import RunResult

if TYPE_CHECKING:
    from flowlab.engine.protocols import Clock

WIND_DOWN_S = 30.0  # seconds an interrupted cell waits for its run to end (RunHandle)
INTERRUPTED = "partial result in fl.last_result()"
"""The message of the :class:`~flowlab.errors.RunInterrupted` an interrupted run raises."""


def running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def deliver(result: RunResult, raise_on_error: bool) -> RunResult:
    error = result.error
    if error is not None and (raise_on_error or not isinstance(error, Exception)):
        raise error  # a KeyboardInterrupt / SystemExit from a step is raised regardless
    return result


def deliver_in_cell(result: RunResult, raise_on_error: bool) -> RunResult:
    if type(result.error) is KeyboardInterrupt:
        raise interrupted(str(result.error), result) from None
    return deliver(result, raise_on_error)


def reraise_interrupt(the_run: Run) -> None:
    """Inside an ``except``: turn the interrupt being handled into :func:`_interrupted`."""
    import sys

    if type(err := sys.exc_info()[1]) is KeyboardInterrupt:
        raise interrupted(str(err), the_run.result) from None


def interrupted(detail: str, result: RunResult | None) -> RunInterrupted:
    """The error IPython shows as one line: IPython asks an exception for
    ``_render_traceback_()`` before formatting frames (as ipyparallel's remote errors do)."""
    return RunInterrupted(f"{detail}; {INTERRUPTED}" if detail else INTERRUPTED, result=result)


def cancelled_cell(the_run: Run) -> asyncio.CancelledError:
    """What an interrupted ``await`` raises: the :class:`asyncio.CancelledError` asyncio needs
    (``asyncio.timeout`` and task groups test for that exact type), caused by and shown as a
    :class:`RunInterrupted`."""
    cause = interrupted("", the_run.result)
    err = asyncio.CancelledError(str(cause))
    err.__cause__ = cause  # the caller raises `err from err.__cause__`
    setattr(err, "_render_traceback_", cause._render_traceback_)  # noqa: B010
    return err


def wind_down_blocking(
    loop: asyncio.AbstractEventLoop, task: asyncio.Task[RunResult], the_run: Run
) -> None:
    """Run the loop until the cancelled run's task has ended, through further interrupts (at
    most ``WIND_DOWN_S`` seconds of the loop's clock; then warn, naming what still runs)."""
    deadline = loop.time() + WIND_DOWN_S
    while not task.done() and loop.time() < deadline:
        try:
            loop.run_until_complete(asyncio.wait({task}, timeout=deadline - loop.time()))
        except BaseException:  # interrupted again: the clean-up goes on, still bounded
            continue
    if not task.done():
        warn_still_running(the_run)


def warn_still_running(the_run: Run) -> None:
    running = sorted({lv.record.path for lv in list(the_run.live.values())})
    shown = ", ".join(repr(p) for p in running[:10]) or "its steps' threads"
    warnings.warn(
        f"the interrupted run is still winding down after {WIND_DOWN_S:g} s; still "
        f"running: {shown}. fl.last_result() has what it recorded so far.",
        RuntimeWarning,
        stacklevel=4,
    )


def wait_thread(the_run: Run, clock: Clock) -> RunResult:
    future = run_in_thread(the_run.execute, clock)
    try:
        return future.result()
    except KeyboardInterrupt:
        cancel_threadsafe(the_run, None)
        concurrent.futures.wait([future], timeout=30)
        reraise_interrupt(the_run)
        raise


def cancel_threadsafe(the_run: Run, branch: str | None) -> None:
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
