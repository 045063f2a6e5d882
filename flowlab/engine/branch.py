"""A branch's life, from its slot to its close: :func:`run_branch`.

A branch of a :class:`~flowlab.engine.parallel.ParallelRun` is one task. It gets its own copy of
the context and of its input, runs its node, and ends with exactly one status:

* ``ok`` — it returned (and was not asked to stop: a branch that catches its cancellation and
  returns anyway ends as that cancellation, reason *ignored*, and is never merged);
* ``failed`` / ``timeout`` — it raised (a :class:`~flowlab.errors.StepTimeout` is a timeout);
  under ``on_failure="fail_fast"`` its siblings are cancelled;
* ``cancelled`` — by its ``branch_timeout`` (then ``timeout``), a handle, a sibling, a budget
  breach or its parent; a ``KeyboardInterrupt`` raised in it is recorded as the interrupted
  run's other branches are (cancelled, with the reason) and stops the run, as does any other
  ``BaseException``.

Its close runs in a ``finally`` that nothing in its bookkeeping can skip: the diff of what it
changed is taken (and recorded), and if that raises — a value that holds itself, or is nested too
deep — the branch fails with :class:`~flowlab.errors.BookkeepingError` instead of hanging its step.

The commonest branch, one async step with no timeout and no retry policy while nothing but the
recorder watches leaves, is awaited right here (see :func:`~flowlab.engine.leaf.settled`, one
coroutine less per branch). Its leaf is logged as a :data:`~flowlab.results.recorder.LeafRow`
tuple, which ``Recorder.steps`` spells out as the :class:`~flowlab.results.records.StepRecord`
that :func:`~flowlab.engine.leaf.run_step` would have made (a record object per branch is a large
part of a branch's cost; ``tests/test_engine.py`` checks that both paths give the same steps).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import flowlab.core.context.isolation as ctx_mod
from flowlab.core.context.cow_diff import detach_context, detach_output
from flowlab.core.pipeline import Step
from flowlab.engine import bookkeeping, excluded, leaf
from flowlab.engine.attempts import run_attempts
from flowlab.engine.current import _current
from flowlab.errors import StepTimeout
from flowlab.results.records import StepRecord

if TYPE_CHECKING:
    from pydantic import BaseModel

    from flowlab.core.retry import Retry
    from flowlab.engine.coordinator import Run
    from flowlab.engine.parallel import ParallelRun
    from flowlab.results.records import BranchRecord

__all__ = ["inline_allowed", "own_item", "run_branch"]

_IGNORED = "; the branch caught the cancellation and returned (ignored)"


async def run_branch(
    pr: ParallelRun, name: str, live: Any, brec: BranchRecord, since: float
) -> None:
    """Run branch ``name`` of ``pr`` (it got its slot at ``since``) and close it."""
    run = pr.run
    bctx: BaseModel | None = None
    found: list[ctx_mod.Change] | None = None  # what it changed, once diffed
    ignored = False  # it caught its cancellation and returned
    live.entered = True
    timer: _Deadline | None = None
    try:
        if pr.branch_timeout is not None:
            timer = _Deadline(pr, live, brec)
        bctx = pr.copy_ctx()
        got = excluded.handed(bctx, pr.excluded) if pr.excluded else None  # checked at its end
        bdata = pr.own_data() if pr.own_data is not None else own_item(pr, name)
        _current.set((run, brec))
        node = pr.nodes[name]
        if (
            pr.fast
            and type(node) is Step
            and node.is_async
            and node.timeout is None
            and not node.retry
        ):
            # the commonest branch, awaited right here: no coroutine around the step's own
            clock, t0 = pr.clock, pr.t0  # recorded as leaf.run_step records a leaf
            rec = StepRecord(node.name, f"{brec.path}/{node.name}", "step", brec.path, clock() - t0)
            pr.log_leaf(rec)
            leaf.entered(run)
            try:
                fn = node.fn  # called as every step is (see leaf.settled)
                out = await (fn(bdata, bctx) if node.arity == 2 else fn(*(bdata, bctx)[node.wants]))
                if out is not None:
                    out = leaf.settled(node, out, bctx)
                rec.status = "ok"
            except BaseException as err:
                rec.status, rec.error = leaf.outcome(err)
                raise
            finally:
                rec.finished = clock() - t0
                leaf.left(run, rec.started, rec.finished)
        else:
            out = await _run_node(pr, node, bdata, bctx, brec)
        if live.task.cancelling():
            # Asked to stop, it caught the CancelledError and returned anyway: it ends as the
            # cancellation it ignored (its output and changes are not merged).
            ignored = True
            raise asyncio.CancelledError
        pr.outputs[name] = out
        brec.status = "ok"
    except BaseException as err:
        if _ended_by(pr, name, live, brec, err, ignored):
            raise
    finally:
        if timer is not None:
            timer.cancel()
        pr.in_flight -= 1
        # Its bookkeeping (inline: it runs for every branch), then its close. Nothing the
        # bookkeeping raises (a value that holds itself, or is nested too deep to walk) may
        # skip the close: the step waits for every branch to say it ended.
        try:
            if bctx is not None and (pr.record or brec.status == "ok"):
                found = []
                pr.diff_into(pr.ctx, bctx, found, pr.fields)
                # The merge reads what a branch changed from its diff (see
                # flowlab.core.merge.nodes.branch_value): its copy is freed now.
                pr.changes[name] = found
                if pr.custom:  # a merge function is handed every branch's context
                    pr.contexts[name] = detach_context(bctx) if pr.cow else bctx
                if found and pr.record:
                    pr.recorder.add_diff(pr.par.name, brec, found)
                if got is not None and brec.status == "ok":
                    excluded.check(pr, name, brec, bctx, got)
            if pr.cow and bctx is not None and name in pr.outputs:
                _detach(pr, name, bctx)
        except Exception as err:
            bookkeeping.unrecorded(pr, name, live, bctx, found, err)
        pr.finish(name, live.key, brec)
        if not (run.held.records and _held(pr, name, live, brec, since)):
            pr.tasks.ended(live.task)
            if pr.limiter is not None:
                pr.queue.release(name, brec.finished - since, brec.status == "ok")
                pr.dispatch()


class _Deadline:
    """The branch's ``branch_timeout``, which cancels it as ``timeout``: counted from when it
    starts, as ``started_s`` says — at once, or, under a run-wide cap or rate, from when its
    first leaf gets a run-wide slot (:meth:`~flowlab.engine.coordinator.Run.began`), so that the
    wait for that slot is not taken for the branch's own time."""

    __slots__ = ("handle", "live", "path", "pr")

    def __init__(self, pr: ParallelRun, live: Any, brec: BranchRecord) -> None:
        self.pr, self.live, self.path = pr, live, brec.path
        self.handle: asyncio.TimerHandle | None = None
        if pr.capped and brec.path in pr.run.unstarted:
            pr.run.on_start[brec.path] = self.arm
        else:
            self.arm()

    def arm(self) -> None:
        seconds = self.pr.branch_timeout
        assert seconds is not None
        reason = f"branch_timeout={seconds:g}s exceeded"
        self.handle = self.pr.loop.call_later(
            seconds, self.pr.run.cancel_live, self.live, "timeout", reason
        )

    def cancel(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
        else:
            self.pr.run.on_start.pop(self.path, None)


def _held(pr: ParallelRun, name: str, live: Any, brec: BranchRecord, since: float) -> bool:
    """Whether the ended branch keeps its slot: a cancelled sync step in it runs on in its
    thread, so the branch keeps its slot (and the step waits for it) until that thread returns,
    and a queued sibling starts only then (see :mod:`flowlab.engine.thread_call`)."""
    run = pr.run
    if not (pr.queue.queued and pr.limiter):
        return False
    held = run.held.under(brec.path, lambda: {b.path: b.parent for b in run.recorder.branches})
    if not held:
        return False
    run.held.after(held, lambda: pr.release_held(live.task, name, brec.finished - since))
    return True


def _ended_by(
    pr: ParallelRun, name: str, live: Any, brec: BranchRecord, err: BaseException, ignored: bool
) -> bool:
    """Record how ``err`` ended the branch; ``True``: re-raise it (a cancellation from outside)."""
    if isinstance(err, asyncio.CancelledError):
        task = asyncio.current_task()
        assert task is not None
        why = _IGNORED if ignored else ""
        if not live.reason or task.uncancel() > 0:
            brec.status = "cancelled"
            brec.reason = (brec.reason or "parent cancelled") + why
            return True
        brec.status, brec.reason = live.status, live.reason + why
        if live.status == "timeout":
            pr.errors[name] = pr.branch_timed_out(brec, live)
            if pr.par.on_failure == "fail_fast":
                pr.cancel_siblings(name, live)
    elif isinstance(err, Exception):
        brec.status = "timeout" if isinstance(err, StepTimeout) else "failed"
        brec.error = f"{type(err).__name__}: {err}"
        pr.errors[name] = err
        if pr.par.on_failure == "fail_fast":
            pr.cancel_siblings(name, live)
    else:  # neither an Exception nor a cancellation: the run stops
        _stopped_by(brec, err)
        if brec.status == "failed":  # the step's own error: result.errors and the stream show it
            pr.errors[name] = err
        pr.tasks.abort(err)
    return False


async def _run_node(
    pr: ParallelRun, node: Any, bdata: Any, bctx: BaseModel, brec: BranchRecord
) -> Any:
    """The branch's node, as a leaf (with its retry policy, if any) or as a sub-pipeline."""
    if type(node) is Step:
        policy = node.retry if node.retry is not None else pr.retry
        if policy is None:
            return await leaf.run_step(pr.run, node, bdata, bctx, brec.path)
        # a one-step branch: a failed attempt is undone by a new copy of the base
        return await run_attempts(pr.run, node, bdata, bctx, brec.path, policy, fresh=pr.copy_ctx)
    return await pr.run.node(node, bdata, bctx, brec.path, pr.retry)


def _stopped_by(brec: BranchRecord, err: BaseException) -> None:
    """Record a branch stopped by a ``BaseException`` that is neither an Exception nor a
    cancellation (it stops the whole run)."""
    if isinstance(err, KeyboardInterrupt | SystemExit):
        # An interrupt, not a failure of the branch: Ctrl-C / a kernel interrupt raises it in
        # whatever frame is running, often a branch's. Recorded as the interrupted run's other
        # branches are: cancelled, with the reason.
        shown = f": {err}" if str(err) else ""
        brec.status = "cancelled"
        brec.reason = f"interrupted by {type(err).__name__}{shown}"
    else:  # raised by the step itself (pytest's Failed, gevent's Timeout, ...)
        brec.status, brec.error = "failed", f"{type(err).__name__}: {err}"


def _detach(pr: ParallelRun, name: str, bctx: Any) -> None:
    """A copy-on-write branch's output, made to share nothing with the context once the branch
    has ended (see :mod:`flowlab.core.context.cow_diff`)."""
    pr.outputs[name] = detach_output(pr.outputs[name], bctx)


def own_item(pr: ParallelRun, name: str) -> Any:
    """A Map branch's own copy of its item (the item itself when immutable), as a Parallel's
    branches get their own copy of the step's input: the item may be an object of the context."""
    assert pr.plan.inputs is not None
    item = pr.plan.inputs[name]
    if type(item) in ctx_mod._IMMUTABLE:  # the common case (ids, numbers, strings): shared
        return item
    return ctx_mod.data_copier(item)()


def inline_allowed(run: Run, retry: Retry | None) -> bool:
    """Whether a one-step branch may run inline (see :mod:`flowlab.engine.branch`): nothing but
    the recorder watches its leaf — no run-wide cap or rate, no remote calls, no retry policy,
    no instrument listening to step_started / step_finished (handed each leaf's StepRecord)."""
    hooks = run.hooks
    return (
        run.run_limiter is None
        and run.rate_gate is None
        and run.backend is None
        and "step_started" not in hooks
        and "step_finished" not in hooks
        and retry is None
    )
