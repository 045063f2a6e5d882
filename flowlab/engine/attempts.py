"""Running a leaf step under a retry policy: its attempts, their backoff, their rows.

:func:`flowlab.engine.leaf.run_step` hands a leaf here when it has a :class:`~flowlab.core.retry.Retry`
(its own, or its Parallel's or Map's). The leaf keeps one record in ``result.steps`` (from its
first attempt's start to its last attempt's end); each attempt is one more row of
``result.attempts``.

* Each attempt starts from a fresh isolated copy of the context it was given (and of its input):
  only a successful attempt's changes are kept, a failed attempt's writes are discarded. How:
  at the top level, each attempt works on a copy, applied if it succeeds; in a branch that is
  this one step, each attempt works on the branch's copy, and a failed one is undone by a new copy
  of the base (see ``fresh`` in :func:`run_attempts`); elsewhere in a branch, each attempt but the
  last works on a copy (the last has nothing left to be discarded for: if it fails, so does its
  branch, which is never merged — its writes show in ``result.diffs`` as any failed branch's).
* Each attempt's charges count against the run's budget like any other (they are on its row).
* The step's ``timeout`` limits each attempt; a branch's ``branch_timeout`` covers every attempt
  and the waits between them (it cancels the branch, and a cancellation is never retried).
* Between attempts the leaf waits ``policy.delay(n, path)`` seconds on the run's clock — exact on
  virtual time — holding no run-wide slot: it gives its slot back after an attempt and queues for
  one again before the next (a branch waiting out its backoff keeps its Parallel's slot, as a
  branch that sleeps does).
* An error is retried only if the policy says so (:meth:`~flowlab.core.retry.Retry.retries`), attempts
  are left, and the leaf's task is not being cancelled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import flowlab.core.context.isolation as ctx_mod
from flowlab.engine import leaf, limiting
from flowlab.engine.current import _current
from flowlab.engine.thread_call import ThreadCall
from flowlab.results.records import AttemptRecord, StepRecord

if TYPE_CHECKING:
    from pydantic import BaseModel

    from flowlab.core.pipeline import Step
    from flowlab.core.retry import Retry
    from flowlab.engine.coordinator import Run
    from flowlab.results.records import BranchRecord

__all__ = ["run_attempts", "run_leaf"]

_RUNS_ON = (
    "; its call runs on in its thread, not counted in flight or against the cap "
    "(HINT: an async step, or no retry policy, keeps the counts exact)"
)


class _Attempts:
    """One leaf's attempts: the state they share, and what opens and closes each one."""

    __slots__ = (
        "brec", "data", "limiter", "logged", "parent", "path", "ran_on", "rec", "run", "step",
        "usage0",
    )  # fmt: skip

    def __init__(self, run: Run, step: Step, data: Any, parent: str) -> None:
        self.run, self.step, self.parent = run, step, parent
        self.path = f"{parent}/{step.name}" if parent else step.name
        self.rec = StepRecord(step.name, self.path, "step", parent, run.now())
        self.limiter = run.run_limiter
        cur = _current.get(None)
        self.brec: BranchRecord | None = cur[1] if cur is not None else None
        self.data = ctx_mod.data_copier(data)  # each attempt its own input (shared if immutable)
        self.usage0 = (0.0, 0)
        self.logged = False  # its step record is in the log (the first attempt started)
        self.ran_on = False  # an attempt's call went on in its thread (see close)

    def usage(self) -> tuple[float, int]:
        """What the leaf's branch (or, at the top level, the run) has charged so far."""
        owner: Any = self.brec if self.brec is not None else self.run.account
        return owner.cost, owner.tokens

    async def queue(self, n: int) -> None:
        """Wait for a run-wide slot, then for the run's rate (only called under a run-wide cap
        or rate): every attempt is a start, as a real API counts a retried request."""
        run = self.run
        if n == 1:
            self.rec.queued = self.rec.started
        # as run_step: by the branch's place in the tree, then first come, first served
        order = run.ranks.get(self.parent, ())
        while True:
            if self.limiter is not None:
                await self.limiter.acquire(0.0, run.now(), order=order)
            if run.rate_gate is not None:  # after the slot, so the start is the token's
                try:
                    await run.rate_gate.acquire(order)
                except BaseException:
                    if self.limiter is not None:
                        self.limiter.release(0.0, True, adapt=False)
                    raise
            # its step's rate too, now that it can start (as run_step): for the first attempt
            # of a branch's first leaf, and for every retry (a new request)
            if not (self.parent and run.step_rates and (run.unstarted or n > 1)):
                return
            retry_of = self.brec if n > 1 else None
            hold = limiting.step_rates_hold(run, self.parent, retry_of)
            if not hold:
                return
            if self.limiter is not None:
                self.limiter.release(0.0, True, adapt=False)
            await asyncio.sleep(hold)

    async def step_rate(self) -> None:
        """A retry is a new request: under its Parallel's or Map's own ``rate=``, it waits for
        a token as a branch start does (the first attempt's was its branch's start), and each
        held start is a ``wait`` row of ``result.limits``."""
        brec = self.brec
        if brec is None:
            return
        owner = self.run.step_rates.get(brec.path[: len(brec.path) - len(brec.branch) - 1])
        if owner is None:
            return
        state = owner.rate
        t = self.run.now()
        wait = state.delay(t)
        if wait > 0.0:
            state.note_wait(wait)
            owner.on_rate_wait(t, wait, owner.in_flight)
            while wait > 0.0:  # (a branch start may take the token first: ask again)
                await asyncio.sleep(wait)
                t = self.run.now()
                wait = state.delay(t)
        state.take(t)

    def open(self, n: int, delay: float) -> AttemptRecord:
        """Start attempt ``n`` (after :meth:`queue`, under a run-wide cap)."""
        run, rec = self.run, self.rec
        t = run.now()
        if n == 1:
            rec.started = t
            if run.unstarted:
                run.began(self.parent, t)  # the first leaf of its branch: the branch starts
            leaf.started(run, rec)
            self.logged = True
        else:
            leaf.entered(run)
        att = AttemptRecord(self.step.name, self.path, self.parent, n, delay, t)
        run.recorder.attempts.append(att)
        self.usage0 = self.usage()
        return att

    def thread(self) -> ThreadCall | None:
        """The thread call of a sync attempt run here (a backend's calls are its own)."""
        sync = not self.step.is_async and not (self.run.backend and self.parent)
        return ThreadCall(self.run.loop) if sync and self.run.loop is not None else None

    def close(
        self, att: AttemptRecord, err: BaseException | None, thread: ThreadCall | None = None
    ) -> None:
        """End an attempt: its row, the leaf count, the run-wide slot."""
        att.finished = t = self.run.now()
        if err is None:
            att.status = "ok"
        else:
            att.status, att.error = leaf.outcome(err)
            if thread is not None and thread.hold(lambda: None):
                # A timed-out or cancelled sync attempt goes on in its thread, which no count
                # follows here (unlike a step without a policy, leaf.run_step): say so.
                att.error += _RUNS_ON
                self.ran_on = True
        cost, tokens = self.usage()
        att.cost, att.tokens = cost - self.usage0[0], tokens - self.usage0[1]
        leaf.left(self.run, att.started, t)
        if self.limiter is not None:
            self.limiter.release(t - att.started, err is None)

    def end(self, ok: bool) -> None:
        """Close the leaf's step record (busy time was counted per attempt)."""
        rec = self.rec
        if not self.logged:  # cancelled while queued for its first slot: it never ran
            return
        rec.finished = self.run.now()
        if ok:
            rec.status = "ok"
        if self.run.instruments:
            self.run.emit("step_finished", rec)


async def run_leaf(
    run: Run, step: Step, data: Any, ctx: BaseModel, parent: str, retry: Retry | None = None
) -> Any:
    """Run a leaf: once (:func:`flowlab.engine.leaf.run_step`), or attempt by attempt when it
    has a retry policy — its own, else ``retry``, the enclosing Parallel's or Map's."""
    policy = step.retry if step.retry is not None else retry
    if policy is None:
        return await leaf.run_step(run, step, data, ctx, parent)
    return await run_attempts(run, step, data, ctx, parent, policy)


async def run_attempts(
    run: Run,
    step: Step,
    data: Any,
    ctx: BaseModel,
    parent: str,
    policy: Retry,
    *,
    fresh: Callable[[], BaseModel] | None = None,
) -> Any:
    """Run ``step`` on ``ctx`` until an attempt succeeds or ``policy`` says stop (see above).

    ``fresh`` is given for a branch that is this one step: ``fresh()`` makes a new copy of the
    branch's starting context (the Parallel's planned isolator, see :mod:`flowlab.core.context.isolator`).
    Every attempt then works on ``ctx`` itself, and a failed attempt is undone by putting a fresh
    copy's values into ``ctx`` — cheaper than copying ``ctx`` before each attempt, and the copy
    stays tracked, so the branch's diff stays cheap.
    """
    if fresh is not None and (run.backend is not None or not (step.is_async or not step.timeout)):
        # A sync step that timed out goes on in its thread, and a remote call is the backend's:
        # their late writes must land in a copy of their own, never in the next attempt's.
        fresh = None
    state = _Attempts(run, step, data, parent)
    path = state.path
    task = asyncio.current_task()
    ok = False
    n, delay = 0, 0.0
    try:
        while True:
            n += 1
            # A retry is a new request: its step's rate spaces it too. Under a run-wide cap or
            # rate, queue() takes the slot, the run's rate and then the step's, all in the
            # instant it starts (the step's rate first let it wait for a slot after its token
            # was taken, and the run's rate took a token before it waited for the step's).
            if state.limiter is not None or run.rate_gate is not None:
                await state.queue(n)
            elif n > 1 and run.step_rates:
                await state.step_rate()
            att = state.open(n, delay)
            try:
                # The last attempt inside a branch works on the branch's copy itself: nothing is
                # left to discard its writes for (if it fails, so does its branch, which is never
                # merged). Every other attempt gets a fresh copy (or is undone, see ``fresh``).
                last = n == policy.attempts
                work = ctx if fresh is not None or (parent and last) else ctx_mod.isolate(ctx)
                thread = state.thread()
                # (an attempt's Update is written to its own copy, see leaf.settled)
                if step.timeout is not None:
                    out = await leaf.timed(run, step, state.data(), work, parent, path, thread)
                    out = leaf.settled(step, out, work)
                elif step.is_async and run.backend is None:  # call()'s common case
                    out = leaf.settled(step, await step.fn(*(state.data(), work)[step.wants]), work)
                else:
                    out = leaf.settled(
                        step, await leaf.call(run, step, state.data(), work, parent, thread), work
                    )
            except BaseException as err:
                state.close(att, err, thread)
                if (
                    n >= policy.attempts
                    or not policy.retries(err)
                    or (task is not None and task.cancelling())
                ):
                    raise
                if fresh is not None:
                    ctx_mod.apply_inplace(ctx, fresh())  # undo the failed attempt's writes
                delay = policy.delay(n, path)
                if delay > 0:
                    await asyncio.sleep(delay)
                continue
            state.close(att, None)
            if work is not ctx:
                ctx_mod.apply_inplace(ctx, work)
            ok = True
            return out
    except BaseException as err:
        leaf.failed(state.rec, err)
        if state.ran_on:
            state.rec.error += _RUNS_ON
        if not parent:
            run.failed_step = (path, err)  # named by the run's error (see Run.execute)
        raise
    finally:
        state.end(ok)
