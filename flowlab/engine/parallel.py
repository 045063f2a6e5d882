"""Running one :class:`~flowlab.core.pipeline.Parallel` (or Map) step: fan out, wait, merge back.

:class:`ParallelRun` is one run of one such step, in named stages:

1. **queueing** (:meth:`~ParallelRun.enqueue`) — every branch is first a record in the step's
   :class:`~flowlab.engine.dispatch.BranchQueue` (highest priority first, ties in declared order);
   10,000 queued branches are 10,000 small records, not 10,000 parked tasks;
2. **dispatch** (:meth:`~ParallelRun.dispatch`) — a branch gets a task, inside the step's
   :class:`~flowlab.engine.group.BranchGroup`, only when the queue says it may start (a free slot
   of the cap, its key's slot, the rate); every branch that ends dispatches again;
3. **a branch's life** (:func:`flowlab.engine.branch.run_branch`) — its copy of the context, its
   node, exactly one status, and its diff; a branch cancelled while queued simply leaves the queue
   (:meth:`~ParallelRun.drop_queued`), one cancelled before its first line is closed by
   :meth:`~ParallelRun.never_ran`; every branch passes :meth:`~ParallelRun.finish` exactly once;
4. **settling** (:func:`flowlab.engine.merging.raise_for_errors`) — the step's timeout, a budget breach, the
   branches' errors under ``on_failure``;
5. **merging** (:func:`flowlab.engine.merging.merge`) — only after every branch has ended is the merge built
   (aside, validated) and applied to the parent context in one go; a report that cannot be
   recorded leaves the context as it was.

Everything runs on the run's event-loop thread: the coordinator (:class:`~flowlab.engine.coordinator.
Run`) owns the run-wide state, and a ParallelRun the state of its step.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import flowlab.core.context.isolation as ctx_mod
from flowlab.core.map import BranchPlan
from flowlab.engine import limiting, merging
from flowlab.engine.branch import inline_allowed, run_branch
from flowlab.engine.dispatch import BranchQueue, branch_keys, enqueue
from flowlab.engine.excluded import excluded_fields
from flowlab.engine.group import BranchGroup
from flowlab.engine.isolating import plan_isolation
from flowlab.errors import (
    FlowlabError,
    MergeConflict,
    StepTimeout,
)
from flowlab.results.records import BranchRecord, StepRecord

if TYPE_CHECKING:
    from collections.abc import Callable

    from pydantic import BaseModel

    from flowlab.core.context.cow_guard import Guard
    from flowlab.core.pipeline import Parallel
    from flowlab.core.retry import Retry
    from flowlab.engine.coordinator import Run

__all__ = ["ParallelRun", "run_parallel"]


async def run_parallel(
    run: Run,
    par: Parallel,
    data: Any,
    ctx: BaseModel,
    parent: str,
    *,
    retry: Retry | None = None,
    plan: BranchPlan | None = None,
) -> Any:
    """Run ``par``'s branches against ``ctx`` and merge their changes into it.

    ``plan`` is the branches to run (a Map's, made from its items; default: ``par``'s declared
    ones); ``retry`` is the enclosing step's retry policy, for leaves that have none (``par``'s
    own beats it).
    """
    return await ParallelRun(run, par, data, ctx, parent, retry, plan).execute()


class ParallelRun:
    """One run of one Parallel step: its records, queue, branches, errors and merge."""

    __slots__ = ("branch_timeout", "capped", "changes", "clock", "contexts", "copy_ctx", "cow", "ctx", "custom", "diff_into", "errors", "excluded", "expired", "fast", "fields", "group", "guard", "in_flight", "kept_base", "limiter", "log", "log_leaf", "loop", "nodes", "on_rate_wait", "outputs", "own_data", "par", "parent", "path", "peak", "plan", "queue", "rank", "ranks", "rate", "record", "recorder", "retry", "run", "srec", "t0", "tasks", "unmerged")  # fmt: skip

    # how its branches get their contexts (set by flowlab.engine.isolating.plan_isolation)
    cow: bool
    copy_ctx: Callable[[], BaseModel]
    diff_into: Callable[..., None]
    guard: Guard | None
    kept_base: BaseModel | None

    def __init__(
        self,
        run: Run,
        par: Parallel,
        data: Any,
        ctx: BaseModel,
        parent: str,
        retry: Retry | None,
        plan: BranchPlan | None,
    ) -> None:
        self.run, self.par, self.ctx, self.parent = run, par, ctx, parent
        self.path = path = f"{parent}/{par.name}" if parent else par.name
        self.srec = _step_started(run, par, path, parent)
        self.limiter = limiting.new_limiter(run, par.max_concurrency, path)
        self.group = run.new_group()
        self.plan = plan = BranchPlan.of(par) if plan is None else plan
        self.retry = par.retry if par.retry is not None else retry  # the innermost policy wins
        self.outputs: dict[str, Any] = {}
        self.contexts: dict[str, BaseModel] = {}  # a custom merge function's inputs
        self.changes: dict[str, list[ctx_mod.Change]] = {}
        self.errors: dict[str, BaseException] = {}
        self.ranks: dict[str, int] = {}  # completion rank of each branch
        self.in_flight = self.peak = self.rank = 0  # running now, the most at once, ended
        self.expired = False  # the step's own timeout fired
        self.loop = asyncio.get_running_loop()
        self.fast = inline_allowed(run, self.retry)
        # a branch starts when its first leaf gets a run-wide slot (and passes the run's rate)
        self.capped = run.run_limiter is not None or run.rate_gate is not None
        self.recorder = recorder = run.recorder
        recorder.branch_results.append((path, self.outputs, self.errors))  # result.outputs
        self.log_leaf = recorder.step_log.append
        self.clock, self.t0 = run.time, run.t0  # run.now(), inlined on a branch's path
        self.log: Callable[[Any], None] | None = recorder.events.append if run.record else None
        self.custom = par.merge.fn is not None  # a merge function sees every branch's context
        self.record = run.record
        self.nodes, self.fields, self.branch_timeout = (
            plan.nodes,
            par.include_keys,
            par.branch_timeout,
        )
        self.queue = self._new_queue()
        self.tasks = BranchGroup(self.loop)
        # each branch's copy of ctx (which does not change until the merge), planned once; and
        # each branch its own input (shared if immutable): the step's, or its item's for a Map
        plan_isolation(self, ctx, nested=bool(parent))
        self.excluded = excluded_fields(ctx, par.include_keys)  # written there: not merged
        self.unmerged: dict[str, list[str]] = {}
        self.own_data = ctx_mod.data_copier(data) if plan.inputs is None else None

    def _new_queue(self) -> BranchQueue:
        """The step's queue, with its cap and its rate (whose tokens its retries take too)."""
        run, par, path = self.run, self.par, self.path
        self.rate = rate = limiting.new_rate(run, par.rate, path) if par.rate is not None else None
        self.on_rate_wait = limiting.rate_listener(run, path, rate) if rate is not None else None
        if rate is not None:
            run.step_rates[path] = self  # a retried leaf of its branches takes its tokens too
        queue = BranchQueue(
            path,
            self.limiter,
            # Under a run-wide cap or rate a branch starts when its first leaf gets a run-wide
            # slot, maybe long after its dispatch: its leaf takes the rate's token then
            # (limiting.step_rates_hold), so the rate spaces real starts, not dispatches.
            None if self.capped else rate,
            self.on_rate_wait,
            self.recorder.limits.append,
            by_priority=bool(self.plan.priority),
            loop=self.loop,
            t0=self.t0,
        )
        queue.on_due(self.dispatch)
        return queue

    # ---- the whole life -------------------------------------------------------------------------
    async def execute(self) -> Any:
        """Queue, run and wait for every branch, then settle and merge; the step's output."""
        keys = branch_keys(self) if self.queue.keyed else []
        par, run = self.par, self.run
        step_timer = None if par.timeout is None else self.loop.call_later(par.timeout, self.expire)
        try:
            try:
                enqueue(self, keys)
                self.dispatch()
            except BaseException:
                self.tasks.cancel_all()  # as a TaskGroup does when its body fails
                await self.tasks.wait()
                raise
            await self.wait_for_branches()
        except BaseException:
            self.abandon()
            merging.check_shared(self, failing=True)
            raise
        finally:
            if step_timer is not None:
                step_timer.cancel()
            self.queue.close(run.now(), self.in_flight)
            run.step_rates.pop(self.path, None)
            self.srec.peak = self.limiter.peak if self.limiter is not None else self.peak
        srec = self.srec
        try:
            merging.check_shared(self)
            merging.raise_for_errors(self)
            merging.merge(self)
            srec.status = "ok"
        except asyncio.CancelledError:
            srec.status = "cancelled"  # (a breach elsewhere: see raise_for_errors)
            raise
        except FlowlabError as err:
            srec.status = "timeout" if isinstance(err, StepTimeout) else "failed"
            srec.error = f"{type(err).__name__}: {err}"
            if isinstance(err, MergeConflict) or hasattr(err, "report"):
                self.recorder.add_merge(par.name, list(getattr(err, "report", [])), self.parent)
            raise
        except Exception as err:  # anything else that stops it (a warning made an error)
            srec.status, srec.error = "failed", f"{type(err).__name__}: {err}"
            raise
        finally:
            srec.finished = run.now()
            run.event("step_finished", self.path, "", srec.status)
            run.emit("step_finished", srec)
        return self.plan.output(self.outputs)

    # ---- queueing -------------------------------------------------------------------------------
    # ---- dispatch -------------------------------------------------------------------------------
    def dispatch(self) -> None:
        """Start queued branches, best first, while the queue lets them (slots, keys, rate)."""
        queue = self.queue
        if not queue.entries:
            return
        if self.run.account.breached is not None:
            self.run.settle_breach()  # a crossing charge from a thread: no sibling starts after it
        t = self.clock() - self.t0  # the branches given a slot in one pass all start at this time
        if queue.simple:  # declared order under at most a plain cap: the hot path, inline
            entries, queued, limiter = queue.entries, queue.queued, self.limiter
            while entries:
                name = entries[0]
                if name not in queued:  # cancelled while queued
                    entries.popleft()
                elif limiter is None or limiter.try_acquire(t):
                    entries.popleft()
                    self.start(name, t)
                else:
                    if queue.cap_since is None:
                        queue.spell_begins(t, limiter, self.in_flight)
                    return
            return
        while (name := queue.next_ready(t, self.in_flight)) is not None:
            self.start(name, t)

    def start(self, name: str, t: float) -> None:
        """Give branch ``name`` (its slot taken) a task; it starts at ``t``."""
        run, queue, limiter = self.run, self.queue, self.limiter
        queued = queue.queued
        live = queued.pop(name)
        if queue.cap_since is not None and not queued:
            queue.spell_ends(t, self.in_flight)
        if limiter is not None:
            limiter.queued = len(queued)
        brec = live.record
        brec.status = "running"
        n = self.in_flight = self.in_flight + 1
        if n > self.peak:
            self.peak = n
        # The branch starts now, in dispatch (priority) order, even if its task is cancelled
        # before running its first line; under a run-wide cap, when its first leaf gets a slot
        # (Run.began), where it is also logged.
        if self.capped:
            run.unstarted[brec.path] = brec
        else:
            brec.started = t
            if self.log is not None:
                self.log(brec)
            if run.instruments:
                run.emit("branch_started", brec)
        try:
            live.task = self.tasks.start(
                run_branch(self, name, live, brec, t), name=f"flowlab:{brec.path}"
            )
        except RuntimeError:  # the group is shutting down: this branch never runs
            self.in_flight -= 1
            if self.limiter is not None:
                queue.release(name, 0.0, True, adapt=False)
            brec.status, brec.reason = "cancelled", "parent cancelled"
            self.finish(name, live.key, brec)

    async def wait_for_branches(self) -> None:
        """Every branch ended: the tasks are done and the rate holds no queued branch back."""
        queue = self.queue
        await self.tasks.wait()
        while queue.rate_timer is not None:  # queued branches wait for the rate, none runs
            queue.rate_wake = self.loop.create_future()
            try:
                await queue.rate_wake
            except asyncio.CancelledError:
                # The rate may have let a branch through in the very instant the step was
                # cancelled: it has a task now, which must end with its step (as in
                # tasks.wait()), not run on orphaned and be closed twice.
                self.tasks.cancel_all()
                await self.tasks.wait()
                raise
            await self.tasks.wait()

    # ---- ends -----------------------------------------------------------------------------------
    def finish(self, name: str, key: int, brec: BranchRecord) -> None:
        """Close a branch's record (every branch passes here exactly once)."""
        run, log = self.run, self.log
        brec.finished = self.clock() - self.t0
        if self.capped:
            run.unstarted.pop(brec.path, None)  # it never got a slot: it never started
            run.ranks.pop(brec.path, None)
        brec.rank = self.ranks[name] = self.rank = self.rank + 1
        if brec.status == "timeout" and not brec.error:
            brec.error = f"TimeoutError: {brec.reason}"
        run.live.pop(key, None)
        if log is not None:
            log(brec)  # see Recorder.event_log
        if run.instruments:
            run.emit("branch_finished", brec)
            ok = brec.status == "ok"
            out = self.outputs.get(name) if ok else None
            run.emit("branch_result", brec, out, self.errors.get(name))

    def release_held(self, task: asyncio.Task[Any], name: str, latency_s: float) -> None:
        """Give back the slot of a branch that ended while a step in it ran on in its thread."""
        self.tasks.ended(task)
        self.queue.release(name, latency_s, False)
        self.dispatch()

    def branch_timed_out(self, brec: BranchRecord, live: Any) -> StepTimeout:
        """The error of a branch its ``branch_timeout`` (or the step's timeout) cancelled."""
        return StepTimeout(
            f"branch {brec.path!r}: {live.reason}", step=self.path, timeout=self.par.branch_timeout
        )

    def drop_queued(self, live: Any) -> None:
        """Cancel a branch that never got a slot: it has no task, it just leaves the queue."""
        queue = self.queue
        brec: BranchRecord = queue.queued.pop(live.record.branch).record
        name = brec.branch
        brec.status, brec.reason = live.status, live.reason
        if live.status == "timeout":
            self.errors[name] = self.branch_timed_out(brec, live)
        if self.limiter is not None:
            self.limiter.queued = len(queue.queued)
        self.finish(name, live.key, brec)
        if queue.rate_timer is not None and not queue.queued:
            queue.rate_done()  # the rate held only branches that are gone now
        if queue.cap_since is not None and not queue.queued:
            queue.spell_ends(brec.finished, self.in_flight)

    def never_ran(self, live: Any) -> None:
        """A task cancelled before its first line never runs its ``finally``: close it here."""
        brec: BranchRecord = live.record
        name, key = brec.branch, live.key
        if key not in self.run.live:
            # Already closed: the step itself was cancelled too, and its clean-up ran before
            # this done callback did (the tasks were done before the step looked at them).
            return
        self.in_flight -= 1
        brec.status = live.status or "cancelled"
        brec.reason = live.reason or "parent cancelled"
        if live.status == "timeout":
            self.errors[name] = self.branch_timed_out(brec, live)
        self.finish(name, key, brec)
        self.tasks.ended(live.task)
        if self.limiter is not None:
            self.queue.release(name, 0.0, True, adapt=False)
            self.dispatch()

    def cancel_siblings(self, name: str, live: Any) -> None:
        """``fail_fast``: cancel every other branch of this step (queued ones included)."""
        run = self.run
        for lv in list(run.live.values()):
            if lv.group == self.group and lv is not live:
                run.cancel_live(lv, "cancelled", f"fail_fast: sibling {name!r} failed")

    def expire(self) -> None:
        """The step's own timeout: every branch of it is cancelled as ``timeout``."""
        self.expired = True
        run = self.run
        for lv in list(run.live.values()):
            if lv.group == self.group:
                run.cancel_live(lv, "timeout", f"step timeout={self.par.timeout:g}s exceeded")

    def abandon(self) -> None:
        """The step itself is being cancelled: close every branch that never started."""
        run, srec = self.run, self.srec
        queued = self.queue.queued
        for name in list(queued):  # never got a slot
            live = queued.pop(name)
            live.record.status, live.record.reason = "cancelled", "parent cancelled"
            self.finish(name, live.key, live.record)
        for lv in [lv for lv in run.live.values() if lv.group == self.group and not lv.entered]:
            # dispatched, but the group was cancelled before their tasks ran a line
            self.in_flight -= 1
            lv.record.status = lv.status or "cancelled"
            lv.record.reason = lv.reason or "parent cancelled"
            self.finish(lv.record.branch, lv.key, lv.record)
        srec.status = "cancelled"
        srec.finished = run.now()
        run.event("step_finished", self.path, "", srec.status, srec.finished)
        run.emit("step_finished", srec)


def _step_started(run: Run, par: Parallel, path: str, parent: str) -> StepRecord:
    """The step's record, logged and reported as started."""
    srec = StepRecord(par.name, path, "parallel", parent, run.now())
    srec.limit = repr(par.max_concurrency) if par.max_concurrency is not None else "none"
    run.recorder.step_log.append(srec)
    run.emit("step_started", srec)
    run.event("step_started", path, "")
    return srec
