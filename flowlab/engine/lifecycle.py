"""A run's life: :func:`execute` opens it, runs its pipeline and always closes it with a result.

:func:`execute` is what :meth:`Run.execute <flowlab.engine.coordinator.Run.execute>` runs, in
three parts:

1. :func:`open_run` — the loop, the clock (``t0``), the run-wide cap and rate, the run's timeout
   and the real-clock wake-up timer; cancels asked for before the run began are applied now,
   before anything starts;
2. :func:`run_body` — the backend opened (connecting is set-up, not the run: the clock restarts),
   then the pipeline, watched for deadlocks when asked;
3. the outcome — every way a run ends is one status: ``ok``, ``cancelled`` (from outside, by a
   handle, interrupted), ``timeout``, ``usage_limit_exceeded`` or ``failed``
   (:func:`stopped_by`, :func:`failed_by`); then :func:`release` gives back what the run holds and
   :func:`finish` closes every record still open and builds the :class:`RunResult`.

A ``KeyboardInterrupt``/``SystemExit`` or another ``BaseException`` a step raised is recorded
first, then re-raised as is by ``fl.run`` / ``fl.arun`` (see :mod:`flowlab.engine.interrupts`).
"""

from __future__ import annotations

import asyncio
import functools
import math
import time
import warnings
from typing import TYPE_CHECKING, Any

from flowlab.core.rate_gate import RateGate
from flowlab.core.usage import tidy_cost
from flowlab.engine import leaf, limiting, plugins
from flowlab.engine.clock import VirtualTimeLoop
from flowlab.engine.current import _current, _last
from flowlab.errors import (
    BranchFailed,
    CancelNotMatchedWarning,
    FlowlabError,
    RunCancelled,
    StepFailed,
    StepTimeout,
    UsageLimitExceeded,
)
from flowlab.results.record import RunResult

if TYPE_CHECKING:
    from flowlab.engine.coordinator import Run

__all__ = ["execute", "failed_by", "finish", "open_run", "release", "run_body", "stopped_by"]

WAKE_S = 0.1  # how often a real-clock run wakes its loop (see wake_up)


async def execute(run: Run) -> RunResult:
    """Run the pipeline; always returns a :class:`RunResult` (never raises for run errors)."""
    early = open_run(run)
    output: Any = None
    error: BaseException | None = None
    try:
        if None in early:  # the whole run was cancelled before it began: nothing runs
            run.run_reason = run.run_reason or "cancelled"
            raise asyncio.CancelledError  # (not main_task.cancel(): nothing else to await)
        output = await run_body(run)
        status = "ok"
    except asyncio.CancelledError:
        if not run.run_reason or run.main_task is None:
            finish(run, "cancelled", RunCancelled("the run was cancelled from outside"), None)
            raise
        run.main_task.uncancel()
        status, error = stopped_by(run)
    except GeneratorExit:  # this coroutine is being closed
        raise
    except BaseException as err:
        status, error = failed_by(run, err)
    finally:
        await release(run)
    return finish(run, status, error, output)


def open_run(run: Run) -> list[str | None]:
    """Bind the run to this loop and its clock; the cancels asked for before it began."""
    with run.control_lock:  # a cancel asked for from now on finds the loop
        loop = run.loop = asyncio.get_running_loop()
        early, run.pending_cancels[:] = list(run.pending_cancels), []
    run.main_task = asyncio.current_task()
    # A plain loop's time() is time.monotonic(): call that directly (now() runs ~5x/branch).
    plain = type(loop).time is asyncio.BaseEventLoop.time
    run.time = time.monotonic if plain else loop.time
    run.t0 = run.time()
    run.run_limiter = limiting.new_limiter(run, run.run_limiter_cfg, "run")
    if run.rate_cfg is not None:
        state = limiting.new_rate(run, run.rate_cfg, "")
        run.rate_gate = RateGate(
            state,
            run.now,
            run.t0,
            limiting.rate_listener(run, "run", state),
            lambda: run.leaves_in_flight,
        )
    _current.set((run, None))
    run.emit("run_started", run.total_branches)
    for name in early:  # asked for before the run began: applied before anything starts
        if name is not None:
            run.cancel(name)
    if run.timeout is not None:
        run.timeout_handle = loop.call_later(run.timeout, functools.partial(expire, run))
    if run.clock == "real" and not isinstance(loop, VirtualTimeLoop):
        run.wake = loop.call_later(WAKE_S, functools.partial(wake_up, run))
    return early


async def run_body(run: Run) -> Any:
    """Open the backend, then run the pipeline (watched for deadlocks when asked)."""
    assert run.loop is not None
    if run.backend is not None and hasattr(run.backend, "open"):
        opened_at = run.loop.time()
        await run.backend.open(run)
        # Connecting (or starting a cluster) is set-up, not the run: restart the clock.
        # (Before any step runs: a Parallel reads t0 once, see ParallelRun.)
        run.t0 += run.loop.time() - opened_at
        run.recorder.limits[:] = [(0.0, *row[1:]) for row in run.recorder.limits]
    body = run.node(run.pipeline, run.input, run.context, "")
    if run.detect_deadlocks:
        watch = plugins.load("deadlock_watch")
        # proven deadlocks only: a run is never cancelled on the idle heuristic
        [output] = await watch(body, names=[run.pipeline.name], idle_s=None)
        return output
    return await body


def stopped_by(run: Run) -> tuple[str, BaseException]:
    """The status and error of a run its own timeout, a handle or an interrupt cancelled."""
    if run.run_reason == "timeout":
        error = StepTimeout(
            f"the run exceeded timeout={run.timeout:g}s",
            step=run.pipeline.name,
            timeout=run.timeout,
        )
        return "timeout", error
    why = "interrupted" if run.run_reason == "interrupted" else "cancelled (handle.cancel())"
    return "cancelled", RunCancelled(f"the run was {why}")


def failed_by(run: Run, err: BaseException) -> tuple[str, BaseException]:
    """The status and error of a run that ``err`` ended."""
    if isinstance(err, KeyboardInterrupt | SystemExit):
        # Raised by a step: the run stops and is recorded; fl.run / fl.arun re-raise it once
        # the event loop is done, never through it.
        return "cancelled", err
    if isinstance(err, UsageLimitExceeded):
        return "usage_limit_exceeded", err
    if isinstance(err, StepTimeout):
        return "timeout", err
    if isinstance(err, FlowlabError):
        return "failed", err
    if not isinstance(err, Exception):
        # Raised by a step (pytest's Failed, gevent's Timeout, trio's Cancelled): recorded like
        # an interrupt, then re-raised as is by fl.run / fl.arun.
        return "failed", err
    step, raised = run.failed_step
    if raised is err:  # a step outside any branch raised it
        wrapped: BranchFailed = StepFailed(
            f"step {step!r} failed: {type(err).__name__}: {err}", step=step, errors={step: err}
        )
    else:
        wrapped = BranchFailed(f"step failed: {type(err).__name__}: {err}", errors={"<top>": err})
    wrapped.__cause__ = err
    return "failed", wrapped


async def release(run: Run) -> None:
    """Give back what the run holds: its timers, its rate gate, the backend, the thread pool."""
    for timer in (run.timeout_handle, run.wake):
        if timer is not None:
            timer.cancel()
    if run.rate_gate is not None:
        run.rate_gate.close()
    if run.backend is not None and hasattr(run.backend, "close"):
        await run.backend.close(run)
    if run.executor is not None:
        run.executor.shutdown(wait=False, cancel_futures=True)


def finish(run: Run, status: str, error: BaseException | None, output: Any) -> RunResult:
    """Close every record still open and build the run's :class:`RunResult`."""
    now = run.now() if run.loop is not None else 0.0
    for rec in run.held.close():  # cancelled sync steps whose thread never returned
        rec.error = rec.error.replace(
            "runs on in its thread", "was still running in its thread when the run ended"
        )
        leaf.finished(run, rec, False)
    for b in run.recorder.branches:
        if b.status in ("queued", "running"):
            b.status = "cancelled"
            b.reason = b.reason or "run ended"
            if math.isnan(b.finished):
                b.finished = now
    run.status = status
    run_limiter = run.run_limiter
    if run.cap_since is not None and run_limiter is not None:
        limiting.cap_spell_ends(run, run_limiter)  # leaves still held back when the run ended
    cost, tokens = run.account.close()  # no charge lands after the totals are read
    result = RunResult(
        output=output,
        context=run.context,
        status=status,
        error=error,
        makespan_s=now,
        clock=run.clock,
        recorder=run.recorder,
        cost=tidy_cost(cost),
        tokens=tokens,
        pipeline_name=run.pipeline.name,
    )
    if isinstance(error, FlowlabError):
        error.result = result
    run.result = result
    run.main_task = None  # break the run <-> task <-> context cycle: free promptly
    _last[:] = [result]
    run.emit("run_finished", status)
    if run.precancel:
        _unmatched_cancels(run, status)
    return result


def _unmatched_cancels(run: Run, status: str) -> None:
    """``handle.cancel(name)`` asked for branches that were never queued: an event each, and,
    when the run ended ok (so every step ran), a warning: the ask must not vanish unseen. (A
    name asked for after its branch had ended was queued: its row says it ran to its end.)"""
    ran = {key for b in run.recorder.branches for key in (b.branch, b.path)}
    names = sorted(n for n in run.precancel if n not in ran)
    if not names:
        return
    for name in names:
        run.event("cancel_unmatched", "", name, "no branch of that name or path was queued")
    if status != "ok":
        return
    listed = ", ".join(repr(n) for n in names)
    try:
        warnings.warn(
            CancelNotMatchedWarning(
                f"handle.cancel() named {listed}, but no branch of that name or path was queued "
                "in this run: nothing was cancelled. HINT: result.branches['path'] lists the "
                "branches (a Map's are named by its key=, or by index)."
            ),
            stacklevel=2,
        )
    except Warning:  # made an error: the run is over and whole; its events still say it
        pass


def wake_up(run: Run) -> None:
    """Wake the loop now and then during a real-clock run.

    A signal handler that schedules a callback with ``call_soon`` (ipykernel's "interrupt" for
    an ``await`` cell does) does not wake a loop asleep in ``select``: without this, an interrupt
    could wait for the branches' next timer, seconds away.
    """
    assert run.loop is not None
    run.wake = run.loop.call_later(WAKE_S, functools.partial(wake_up, run))


def expire(run: Run) -> None:
    """The run's own timeout: the run ends as ``timeout``."""
    run.run_reason = "timeout"
    if run.main_task is not None:
        run.main_task.cancel()
