"""Running one leaf step: its record, the run-wide cap, its timeout, its thread, the backend.

A leaf is a :class:`~flowlab.core.pipeline.Step`. :func:`run_step` is how the engine runs one, at the
top level or inside a branch; :mod:`flowlab.engine.branch` also runs the commonest branch, one async
step with no timeout, without it (one coroutine less per branch), calling it as every step is
called (:func:`settled`), counting it with :func:`entered` and :func:`left`, and logging it as
the record :func:`run_step` would make (see :mod:`flowlab.engine.branch`). A leaf with a retry policy (its own, or its Parallel's or Map's) is run attempt by attempt
by :mod:`flowlab.engine.attempts`, which calls :func:`call` and :func:`timed` from here. Everything here
runs on the run's event-loop thread, like the rest of the coordinator.
"""

from __future__ import annotations

import asyncio
import inspect
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import flowlab.core.context.isolation as ctx_mod
from flowlab.core.update import Update, settle
from flowlab.engine import limiting
from flowlab.engine.thread_call import ThreadCall
from flowlab.errors import ConfigError, StepTimeout
from flowlab.results.records import StepRecord

if TYPE_CHECKING:
    from pydantic import BaseModel

    from flowlab.core.pipeline import Step
    from flowlab.engine.coordinator import Run

__all__ = [
    "call",
    "entered",
    "failed",
    "finished",
    "left",
    "outcome",
    "returned_coroutine",
    "run_step",
    "settled",
    "started",
    "timed",
]


async def run_step(run: Run, step: Step, data: Any, ctx: BaseModel, parent: str) -> Any:
    """Run ``step`` once on ``ctx`` (inside a branch when ``parent`` is set) and record it.

    A step with a retry policy is run by :func:`flowlab.engine.attempts.run_leaf` instead.
    """
    path = f"{parent}/{step.name}" if parent else step.name
    rec = StepRecord(step.name, path, "step", parent, run.now())
    limiter, gate = run.run_limiter, run.rate_gate
    if limiter is not None or gate is not None:
        rec.queued = rec.started
        # Slots go by the branch's place in the tree: priority, then declared order, at every
        # level (a branch's next step included); then first come, first served.
        order = run.ranks.get(parent, ())
        while True:
            await _take_slot(run, order)
            # the first leaf of a branch of a rated step: that rate too, now that it can start
            if not (parent and run.step_rates and run.unstarted):
                break
            hold = limiting.step_rates_hold(run, parent)
            if not hold:
                break
            if limiter is not None:  # no slot held while the rate holds it back
                limiter.release(0.0, True, adapt=False)
            await asyncio.sleep(hold)
        rec.started = run.now()
    if parent and run.account.breached is not None:
        await _settle_breach(run)
    if (limiter is not None or gate is not None) and run.unstarted:
        run.began(parent, rec.started)  # the first leaf of its branch: the branch starts
    started(run, rec)
    ok = False
    # a sync step's call in its thread: after a cancellation it holds its slot until the
    # thread returns (see flowlab.engine.thread_call)
    sync = not step.is_async and not (run.backend and parent)
    thread = ThreadCall(run.loop) if sync and run.loop is not None else None
    # A top-level step works on a copy that is committed only if it succeeds: a step that fails
    # half way (or a sync step still running in its thread after a timeout) can never leave
    # half-done changes in the run's context. Inside a branch the branch's own copy already
    # plays that part.
    work = ctx_mod.isolate(ctx) if not parent else ctx
    try:
        if step.timeout is None:
            if step.is_async and (run.backend is None or not parent):
                out = settled(step, await step.fn(*(data, work)[step.wants]), work)
            else:
                out = settled(step, await call(run, step, data, work, parent, thread), work)
        else:
            out = await timed(run, step, data, work, parent, path, thread)
            out = settled(step, out, work)
        if work is not ctx:
            ctx_mod.apply_inplace(ctx, work)
        ok = True
        return out
    except BaseException as err:
        failed(rec, err)
        if not parent:
            run.failed_step = (path, err)  # named by the run's error (see Run.execute)
        raise
    finally:
        if ok or thread is None or not thread.hold(lambda: _returned(run, rec)):
            finished(run, rec, ok)
            if limiter is not None:
                limiter.release(rec.finished - rec.started, ok)
        else:  # cancelled while its thread runs on: in flight, in its slot, until it returns
            rec.error += "; its call runs on in its thread"
            run.held.add(rec)


async def _take_slot(run: Run, order: tuple[Any, ...]) -> None:
    """A run-wide slot, then the run's rate (after the slot, so the start is the token's)."""
    limiter, gate = run.run_limiter, run.rate_gate
    if limiter is not None:
        if run.cap_since is None and limiter.in_flight + limiter.waiting >= limiter.limit:
            limiting.cap_spell_begins(run, run.now(), limiter)  # the run-wide cap holds leaves back
        await limiter.acquire(0.0, run.now(), order=order)
        if run.cap_since is not None and not limiter.waiting:
            limiting.cap_spell_ends(run, limiter)
    if gate is not None:
        try:
            await gate.acquire(order)
        except BaseException:
            if limiter is not None:
                limiter.release(0.0, True, adapt=False)
            raise


async def _settle_breach(run: Run) -> None:
    """Before a step of a branch starts: a crossing charge made in a worker thread reaches the
    loop through ``call_soon_threadsafe``, maybe not yet. Settle it now, so that no step of a
    branch it cancels starts after it (then the step does not start: its slot goes back)."""
    run.settle_breach()
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        try:
            await asyncio.sleep(0)  # the cancellation it made is delivered here
        except asyncio.CancelledError:
            if run.run_limiter is not None:
                run.run_limiter.release(0.0, True, adapt=False)
            raise


def _returned(run: Run, rec: StepRecord) -> None:
    """The thread of a cancelled sync step returned: it leaves the run's leaves in flight and
    frees its slot now (nothing, if the run has already ended and closed its record)."""
    due = run.held.returned(rec)
    if due is None:
        return
    rec.error = rec.error.replace("runs on in its thread", "ran on in its thread until it returned")
    finished(run, rec, False)
    if run.run_limiter is not None:
        run.run_limiter.release(rec.finished - rec.started, False)
    for callback in due:  # branches that ended while it ran: their Parallel's slots go back
        callback()


async def timed(
    run: Run,
    step: Step,
    data: Any,
    ctx: BaseModel,
    parent: str,
    path: str,
    thread: ThreadCall | None = None,
) -> Any:
    """:func:`call` under the step's ``timeout`` (:class:`StepTimeout` when it runs out)."""
    assert step.timeout is not None
    try:
        async with asyncio.timeout(step.timeout) as cm:
            out = await call(run, step, data, ctx, parent, thread)
        if cm.expired():  # it caught the timeout's cancellation and returned anyway
            raise StepTimeout(
                f"step {path!r} exceeded timeout={step.timeout:g}s (it caught the "
                "cancellation and returned; its result is not used)",
                step=path,
                timeout=step.timeout,
            )
    except TimeoutError as err:
        if isinstance(err, StepTimeout) or not cm.expired():
            raise
        raise StepTimeout(
            f"step {path!r} exceeded timeout={step.timeout:g}s",
            step=path,
            timeout=step.timeout,
        ) from err
    return out


async def call(
    run: Run,
    step: Step,
    data: Any,
    ctx: BaseModel,
    parent: str,
    thread: ThreadCall | None = None,
) -> Any:
    """Call the step's function: awaited, in the run's thread pool (sync, through ``thread``
    when given), or on the backend."""
    pair: tuple[Any, ...] = (data, ctx)
    args = pair[step.wants]
    if run.backend is not None and parent:
        return await run.backend.call(run, step, args, ctx)
    if step.is_async:
        out = await step.fn(*args)
    else:
        assert run.loop is not None
        if run.executor is None:
            run.executor = ThreadPoolExecutor(max_workers=64, thread_name_prefix="flowlab-step")
        if thread is None:
            thread = ThreadCall(run.loop)
        out = await thread.run(run.executor, step.fn, *args)
    return out


def settled(step: Step, out: Any, ctx: BaseModel) -> Any:
    """What a step returned, made final: an :class:`~flowlab.core.update.Update` (or a context
    step's dict of fields) is written to ``ctx``; a coroutine it forgot to await is an error.

    Every call of a step goes ``settled(step, await step.fn(*(data, ctx)[step.wants]), ctx)``
    (awaited in place: a leaf, an attempt, a one-step branch) or through :func:`call` (threads,
    the backend) and then here: one way to call a step, one way to read what it returned.
    """
    if out is None:
        return out
    if type(out) is Update or (step.takes_ctx and type(out) is dict):
        return settle(step, out, ctx)
    if inspect.iscoroutine(out):
        returned_coroutine(step, out)
    return out


def started(run: Run, rec: StepRecord) -> None:
    """Record a leaf that starts now."""
    run.recorder.step_log.append(rec)
    if run.instruments:
        run.emit("step_started", rec)
    entered(run)


def finished(run: Run, rec: StepRecord, ok: bool) -> None:
    """Close a leaf's record (``ok``: it returned)."""
    rec.finished = run.now()
    if ok:
        rec.status = "ok"
    left(run, rec.started, rec.finished)
    if run.instruments:
        run.emit("step_finished", rec)


def entered(run: Run) -> None:
    """Count a leaf that starts running (for the run's peak concurrency)."""
    n = run.leaves_in_flight = run.leaves_in_flight + 1
    if n > run.recorder.peak_leaves:
        run.recorder.peak_leaves = n


def left(run: Run, started: float, finished: float) -> None:
    """Count a leaf that stopped running (for the run's utilization)."""
    run.leaves_in_flight -= 1
    run.recorder.leaf_busy_s += finished - started


def failed(rec: StepRecord, err: BaseException) -> None:
    """Note on a leaf's record why it did not return."""
    rec.status, rec.error = outcome(err)


def outcome(err: BaseException) -> tuple[str, str]:
    """A leaf's ``(status, error)`` when it raised ``err``."""
    if isinstance(err, asyncio.CancelledError):
        return "cancelled", "cancelled"
    if isinstance(err, KeyboardInterrupt | SystemExit):  # an interrupt, as its branch records it
        return "cancelled", f"interrupted by {type(err).__name__}" + (
            f": {err}" if str(err) else ""
        )
    return "timeout" if isinstance(err, StepTimeout) else "failed", f"{type(err).__name__}: {err}"


def returned_coroutine(step: Step, out: Any) -> None:
    """Raise the error for a step that returned a coroutine instead of awaiting it."""
    out.close()
    raise ConfigError(
        f"step {step.name!r} returned a coroutine object instead of a value. "
        "HINT: `await` the coroutine inside the step (return await other(data)), "
        "or make the step `async def`."
    )
