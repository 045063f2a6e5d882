"""Running one :class:`~flowlab.pipeline.Parallel` step: fan out, wait, merge back.

Every branch is first a record in a priority queue (highest priority first, ties in declared
order). A branch gets a task — inside the step's :class:`~flowlab.group.BranchGroup`, on an
isolated copy of the context — only when the step's limiter has a free slot: 10,000 queued
branches are 10,000 small records, not 10,000 parked tasks. Each branch ends with exactly one status — ``ok``, ``failed``,
``cancelled`` or ``timeout`` — and a diff of what it changed; a branch cancelled while queued simply
leaves the queue. A branch's close runs in a ``finally`` that nothing in its bookkeeping can skip: a
diff or record that cannot be made (a value that holds itself, or is nested too deep) fails the
branch with :class:`~flowlab.errors.BookkeepingError`. A branch that catches its cancellation and
returns anyway ends as that cancellation (reason: ignored), never ``ok``. Only after every branch
has ended is the merge built (aside, validated) and applied to the parent context in one go.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import heapq
import inspect
import math
from typing import TYPE_CHECKING, Any

from flowlab import context as ctx_mod
from flowlab import leaf
from flowlab import merge as merge_mod
from flowlab.cow import copy_on_write_pays, cow_isolator
from flowlab.cow_diff import cow_diff_into, detach_context, detach_output
from flowlab.errors import (
    BookkeepingError,
    BranchFailed,
    FlowlabError,
    MergeConflict,
    MergeValidationError,
    StepTimeout,
)
from flowlab.group import BranchGroup
from flowlab.isolator import isolator
from flowlab.pipeline import Step
from flowlab.record import BranchRecord, StepRecord, snapshot, unwalkable

if TYPE_CHECKING:
    from pydantic import BaseModel

    from flowlab.engine import Run
    from flowlab.pipeline import Parallel

__all__ = ["run_parallel"]


async def run_parallel(
    run: Run, par: Parallel, data: Any, ctx: BaseModel, parent: str
) -> dict[str, Any]:
    """Run ``par``'s branches against ``ctx`` and merge their changes into it."""
    from flowlab.current import _current
    from flowlab.engine import wall

    path = f"{parent}/{par.name}" if parent else par.name
    srec = StepRecord(par.name, path, "parallel", parent, run.now())
    srec.limit = repr(par.max_concurrency) if par.max_concurrency is not None else "none"
    run.recorder.step_log.append(srec)
    run._emit("step_started", srec)
    run._event("step_started", path, "")
    limiter = run.new_limiter(par.max_concurrency, path)
    group = run.new_group()
    order = list(par.branches)
    outputs: dict[str, Any] = {}
    contexts: dict[str, BaseModel] = {}
    changes: dict[str, list[ctx_mod.Change]] = {}
    errors: dict[str, BaseException] = {}
    ranks: dict[str, int] = {}
    in_flight = peak = rank = 0  # branches running now, the most at once, branches ended
    expired = False  # the step's own timeout fired
    loop = asyncio.get_running_loop()
    # A one-step branch is run inline when nothing but the recorder watches: no run-wide cap,
    # no remote calls, no instruments (which are handed each leaf's StepRecord as it starts).
    fast = run.run_limiter is None and run.backend is None and not run.instruments
    capped = run.run_limiter is not None  # a branch starts when its first leaf gets a slot
    recorder = run.recorder
    log_leaf = recorder.step_log.append
    clock, t0 = run._time, run.t0  # run.now(), inlined on the branch's path
    live_pop, instruments = run.live.pop, run.instruments
    log = recorder.events.append if run.record else None  # a branch logs its record: event_log()
    custom = par.merge.fn is not None  # a merge function sees every branch's context

    # The queue: (-priority, declared index, name), a heap; names in declared order, a deque,
    # when no branch has a priority (the common case: no heap to keep).
    heap = bool(par.priority)
    pending: Any = [] if heap else collections.deque()
    pop = functools.partial(heapq.heappop, pending) if heap else pending.popleft
    queued: dict[str, Any] = {}  # name -> its live entry (run.live), while it waits for a slot
    tasks = BranchGroup(loop)
    # Each branch's copy of ctx (which does not change until the merge), planned once.
    # Copy on write (flowlab.cow) for a top-level Parallel whose context has enough nested data
    # to save; a nested Parallel copies eagerly (its base is a branch's copy-on-write context).
    cow = par.isolation == "cow" and not parent and copy_on_write_pays(ctx)
    copy_ctx: Any = (
        cow_isolator(ctx, par.include_keys) if cow else isolator(ctx, par.include_keys, track=True)
    )
    diff_into = cow_diff_into if cow else ctx_mod.diff_into
    own_data = ctx_mod.data_copier(data)  # each branch its own input (shared if immutable)

    def finish(name: str, key: int, brec: BranchRecord) -> None:
        """Close a branch's record (every branch passes here exactly once)."""
        nonlocal rank
        brec.finished = clock() - t0
        if capped:
            run.unstarted.pop(brec.path, None)  # it never got a slot: it never started
            run.ranks.pop(brec.path, None)
        rank += 1
        brec.rank = ranks[name] = rank
        if brec.status == "timeout" and not brec.error:
            brec.error = f"TimeoutError: {brec.reason}"
        live_pop(key, None)
        if log is not None:
            log(brec)  # see Recorder.event_log
        if instruments:
            run._emit("branch_finished", brec)

    def drop_queued(live: Any) -> None:
        """Cancel a branch that never got a slot: it has no task, it just leaves the queue."""
        brec: BranchRecord = queued.pop(live.record.branch).record
        name = brec.branch
        brec.status, brec.reason = live.status, live.reason
        if live.status == "timeout":
            errors[name] = StepTimeout(
                f"branch {brec.path!r}: {live.reason}", step=path, timeout=par.branch_timeout
            )
        if limiter is not None:
            limiter.queued = len(queued)
        finish(name, live.key, brec)

    def dispatch() -> None:
        """Start queued branches, best priority first, while the limiter has free slots."""
        nonlocal in_flight, peak
        if not pending:
            return
        if run.account.breached is not None:
            run.settle_breach()  # a crossing charge from a thread: no sibling starts after it
        t = clock() - t0  # the branches given a slot in one pass all start at this time
        while pending:
            name = pending[0][2] if heap else pending[0]
            if name not in queued:  # cancelled while queued
                pop()
                continue
            if limiter is not None and not limiter.try_acquire(t):
                return
            pop()
            live = queued.pop(name)
            brec = live.record
            if limiter is not None:
                limiter.queued = len(queued)
            # The branch starts now, in dispatch (priority) order, even if its task is
            # cancelled before running its first line; under a run-wide cap, when its first
            # leaf gets a slot (Run.began).
            if capped:
                run.unstarted[brec.path] = brec
            else:
                brec.started = t
            brec.status = "running"
            in_flight += 1
            if in_flight > peak:
                peak = in_flight
            if not capped:  # capped: it starts, and is logged, in Run.began
                if log is not None:
                    log(brec)
                if run.instruments:
                    run._emit("branch_started", brec)
            try:
                live.task = tasks.start(branch(name, live, brec, t), name=f"flowlab:{brec.path}")
            except RuntimeError:  # the group is shutting down: this branch never runs
                in_flight -= 1
                if limiter is not None:
                    limiter.release(0.0, True, adapt=False)
                brec.status, brec.reason = "cancelled", "parent cancelled"
                finish(name, live.key, brec)

    def cancel_siblings(name: str, live: Any) -> None:
        for lv in list(run.live.values()):
            if lv.group == group and lv is not live:
                run._cancel_live(lv, "cancelled", f"fail_fast: sibling {name!r} failed")

    def never_ran(live: Any) -> None:
        """A task cancelled before its first line never runs its ``finally``: close it here."""
        nonlocal in_flight
        brec: BranchRecord = live.record
        name, key = brec.branch, live.key
        if key not in run.live:
            # Already closed: the step itself was cancelled too, and its clean-up ran before
            # this done callback did (the tasks were done before the step looked at them).
            return
        in_flight -= 1
        brec.status = live.status or "cancelled"
        brec.reason = live.reason or "parent cancelled"
        if live.status == "timeout":
            errors[name] = StepTimeout(
                f"branch {brec.path!r}: {live.reason}", step=path, timeout=par.branch_timeout
            )
        finish(name, key, brec)
        tasks.ended(live.task)
        if limiter is not None:
            limiter.release(0.0, True, adapt=False)
            dispatch()

    def unrecorded(
        name: str, live: Any, bctx: Any, found: list[ctx_mod.Change] | None, err: Exception
    ) -> None:
        """What a branch changed could not be diffed or recorded: it fails, and is not merged.

        A branch that had already failed, timed out or been cancelled keeps that status (its
        changes were never going to be merged); the error is added to its row.
        """
        brec: BranchRecord = live.record
        diffed = changes.pop(name, None) is not None
        contexts.pop(name, None)
        outputs.pop(name, None)
        try:
            problem = _bookkeeping_error(
                brec.path, ctx, bctx, found if diffed else None, fields, err
            )
        except Exception:  # describing it failed too (an error whose str() raises ...)
            problem = BookkeepingError(
                f"branch {brec.path!r}: what it changed could not be diffed or recorded "
                f"({type(err).__name__}). Its changes are not merged.",
                branch=brec.path,
            )
        text = f"{type(problem).__name__}: {problem}"
        if brec.status != "ok":
            brec.error = f"{brec.error}; {text}" if brec.error else text
            return
        brec.status, brec.error = "failed", text
        errors[name] = problem
        if par.on_failure == "fail_fast":
            cancel_siblings(name, live)

    # what every branch reads, looked up once
    branch_timeout, nodes, fields, record = (
        par.branch_timeout,
        par.branches,
        par.include_keys,
        run.record,
    )

    async def branch(name: str, live: Any, brec: BranchRecord, since: float) -> None:
        nonlocal in_flight
        timer: asyncio.TimerHandle | None = None
        bctx: BaseModel | None = None
        ignored = False  # it caught its cancellation and returned
        live.entered = True
        try:
            if branch_timeout is not None:
                timer = loop.call_later(
                    branch_timeout,
                    run._cancel_live,
                    live,
                    "timeout",
                    f"branch_timeout={branch_timeout:g}s exceeded",
                )
            bctx = copy_ctx()
            bdata = own_data()
            _current.set((run, brec))
            node = nodes[name]
            if fast and type(node) is Step and node.is_async and node.timeout is None:
                # One async step, awaited right here (no leaf.run_step coroutine around it) and
                # logged as a compact entry that Recorder.steps spells out as its StepRecord.
                t_leaf = clock() - t0
                entry = [node.name, brec, t_leaf, math.nan, "running", ""]
                log_leaf(entry)
                leaf.entered(run)
                try:
                    fn = node.fn
                    out = await (
                        fn(bdata, bctx) if node.arity == 2 else fn(*(bdata, bctx)[: node.arity])
                    )
                    if out is not None and inspect.iscoroutine(out):
                        leaf.returned_coroutine(node, out)
                    entry[4] = "ok"
                except BaseException as err:
                    entry[4], entry[5] = leaf.outcome(err)
                    raise
                finally:
                    entry[3] = t_end = clock() - t0
                    leaf.left(run, t_leaf, t_end)
                outputs[name] = out
            elif type(node) is Step:
                outputs[name] = await leaf.run_step(run, node, bdata, bctx, brec.path)
            else:
                outputs[name] = await run._node(node, bdata, bctx, brec.path)
            if live.task.cancelling():
                # Asked to stop, it caught the CancelledError and returned anyway: it ends as
                # the cancellation it ignored (its output and changes are not merged).
                ignored = True
                del outputs[name]
                raise asyncio.CancelledError
            brec.status = "ok"
        except asyncio.CancelledError:
            task = asyncio.current_task()
            assert task is not None
            why = "; the branch caught the cancellation and returned (ignored)" if ignored else ""
            if not live.reason or task.uncancel() > 0:
                brec.status = "cancelled"
                brec.reason = (brec.reason or "parent cancelled") + why
                raise
            brec.status, brec.reason = live.status, live.reason + why
            if live.status == "timeout":
                errors[name] = StepTimeout(
                    f"branch {brec.path!r}: {live.reason}", step=path, timeout=par.branch_timeout
                )
                if par.on_failure == "fail_fast":
                    cancel_siblings(name, live)
        except Exception as err:
            brec.status = "timeout" if isinstance(err, StepTimeout) else "failed"
            brec.error = f"{type(err).__name__}: {err}"
            errors[name] = err
            if par.on_failure == "fail_fast":
                cancel_siblings(name, live)
        except BaseException as err:  # neither an Exception nor a cancellation: the run stops
            if isinstance(err, KeyboardInterrupt | SystemExit):
                # An interrupt, not a failure of the branch: Ctrl-C / a kernel interrupt raises
                # it in whatever frame is running, often a branch's. Recorded as the interrupted
                # run's other branches are: cancelled, with the reason.
                shown = f": {err}" if str(err) else ""
                brec.status = "cancelled"
                brec.reason = f"interrupted by {type(err).__name__}{shown}"
            else:  # raised by the step itself (pytest's Failed, gevent's Timeout, ...)
                brec.status, brec.error = "failed", f"{type(err).__name__}: {err}"
            tasks.abort(err)
        finally:
            if timer is not None:
                timer.cancel()
            in_flight -= 1
            # The branch's bookkeeping, then its close. Nothing the bookkeeping raises (a value
            # that holds itself, or is nested too deep to walk) may skip the close: the step
            # waits for every branch to say it ended.
            found: list[ctx_mod.Change] | None = None
            try:
                if bctx is not None and (record or brec.status == "ok"):
                    found = []
                    diff_into(ctx, bctx, found, fields)
                    changes[name] = found
                    # The merge reads what a branch changed from its diff (see
                    # flowlab.merge.nodes.branch_value), so its copy is freed now; a custom
                    # merge function is handed every branch's context.
                    if custom:
                        contexts[name] = detach_context(bctx) if cow else bctx
                    if found and record:
                        recorder.add_diff(par.name, brec, found)
                if cow and bctx is not None and name in outputs:
                    # an output holding the branch's copy-on-write objects shares nothing
                    # with the context once the branch has ended (flowlab.cow_diff)
                    outputs[name] = detach_output(outputs[name], bctx)
            except Exception as err:
                unrecorded(name, live, bctx, found, err)
            finally:
                finish(name, live.key, brec)
                tasks.ended(live.task)
                if limiter is not None:
                    limiter.release(brec.finished - since, brec.status == "ok")
                    dispatch()

    step_timer: asyncio.TimerHandle | None = None
    if par.timeout is not None:

        def expire() -> None:
            nonlocal expired
            expired = True
            for lv in list(run.live.values()):
                if lv.group == group:
                    run._cancel_live(lv, "timeout", f"step timeout={par.timeout:g}s exceeded")

        step_timer = loop.call_later(par.timeout, expire)
    try:
        try:
            now = run.now()
            outer = run.ranks.get(parent, ())  # the enclosing branch's place in the tree
            for index, name in enumerate(order):
                prio = par.priority.get(name, 0.0)
                brec = BranchRecord(par.name, name, f"{path}:{name}", parent, prio, now)
                if capped:
                    run.ranks[brec.path] = (*outer, (-prio, index))
                run.recorder.branches.append(brec)
                live = run.new_live(brec, group, drop_queued, never_ran)
                queued[name] = live
                if log is not None:
                    log(brec)
                if run.instruments:
                    run._emit("branch_queued", brec)
                if run._precancel and run.precancelled(name, brec.path):
                    run._cancel_live(live, "cancelled", "cancelled by handle")
                    continue
                pending.append((-prio, index, name) if heap else name)
            if heap:
                heapq.heapify(pending)
            if limiter is not None:
                limiter.queued = len(queued)
            dispatch()
        except BaseException:
            tasks.cancel_all()  # as a TaskGroup does when its body fails
            await tasks.wait()
            raise
        await tasks.wait()
    except BaseException:
        for name in list(queued):  # never started: the step itself is being cancelled
            live = queued.pop(name)
            live.record.status, live.record.reason = "cancelled", "parent cancelled"
            finish(name, live.key, live.record)
        for lv in [lv for lv in run.live.values() if lv.group == group and not lv.entered]:
            # dispatched, but the group was cancelled before their tasks ran a line
            in_flight -= 1
            lv.record.status = lv.status or "cancelled"
            lv.record.reason = lv.reason or "parent cancelled"
            finish(lv.record.branch, lv.key, lv.record)
        srec.status = "cancelled"
        srec.finished = run.now()
        run._event("step_finished", path, "", srec.status, srec.finished)
        run._emit("step_finished", srec)
        raise
    finally:
        if step_timer is not None:
            step_timer.cancel()
        srec.peak = limiter.peak if limiter is not None else peak

    try:
        if expired:
            raise StepTimeout(
                f"step {path!r} exceeded timeout={par.timeout:g}s", step=path, timeout=par.timeout
            )
        breach = run.account.breached
        if breach is not None:
            run.settle_breach()
            crossing = getattr(breach, "branch", None) or ""
            task = asyncio.current_task()
            if (
                crossing
                and not crossing.startswith(f"{path}:")
                and task is not None
                and task.cancelling()
            ):
                # a breach elsewhere cancelled this step's branch: it ends cancelled (its reason
                # names the crossing branch), not failed with an error that is not its own
                raise asyncio.CancelledError(f"usage limit exceeded by branch {crossing!r}")
            raise breach
        if errors and par.on_failure != "ignore":
            first = next(n for n in order if n in errors)
            err = errors[first]
            if isinstance(err, StepTimeout):
                raise StepTimeout(
                    f"branch {first!r} of step {path!r} timed out: {err}", step=path
                ) from err
            failed = [n for n in order if n in errors]
            names = ", ".join(repr(n) for n in failed[:5])
            if len(failed) > 5:
                names += f" and {len(failed) - 5:,} more ({len(failed):,} in all; see .errors)"
            raise BranchFailed(
                f"step {path!r}: branch {names} failed; first: {type(err).__name__}: {err}",
                step=path,
                errors={n: errors[n] for n in order if n in errors},
            ) from err
        ok = order if len(outputs) == len(order) else [n for n in order if n in outputs]
        if par.order == "completion":
            ok = sorted(ok, key=ranks.__getitem__)
        if not parent and not custom and run.record:  # result.remerge() can replay this merge
            recorder.add_merge_input(path, ctx, ok, par.merge, par.include_keys)
        t_merge = wall()
        try:
            outcome = _merge(
                ctx,
                [(n, contexts.get(n, ctx)) for n in ok],  # unchanged: the base itself
                par.merge,
                diffs=changes,  # the merge reads the diffs of the branches it merges
                fields=par.include_keys,
                step=path,
                reuse_base=True,  # ctx is replaced by the merged context: no copy of its dicts
            )
        finally:
            srec.merge_s = wall() - t_merge
        try:  # recorded before it is applied: a report that cannot be made leaves ctx as it was
            run.recorder.add_merge(par.name, outcome.rows)
        except Exception as err:
            outcome.undo()  # the merge wrote into ctx's dicts (reuse_base): put them back
            raise _unrecorded_merge(path, outcome.rows, err) from err
        ctx_mod.apply_inplace(ctx, outcome.context)
        run._event("merge_applied", path, "", f"{len(outcome.rows)} paths")
        run._emit("merge_applied", path, outcome.rows, srec.merge_s)
        srec.status = "ok"
    except asyncio.CancelledError:
        srec.status = "cancelled"  # (a breach elsewhere: see above)
        raise
    except FlowlabError as err:
        srec.status = "timeout" if isinstance(err, StepTimeout) else "failed"
        srec.error = f"{type(err).__name__}: {err}"
        if isinstance(err, MergeConflict) or hasattr(err, "report"):
            run.recorder.add_merge(par.name, list(getattr(err, "report", [])))
        raise
    finally:
        srec.finished = run.now()
        run._event("step_finished", path, "", srec.status)
        run._emit("step_finished", srec)
    return {n: outputs[n] for n in order if n in outputs}


def _bookkeeping_error(
    branch: str,
    base: BaseModel,
    bctx: BaseModel,
    found: list[ctx_mod.Change] | None,
    fields: Any,
    err: Exception,
) -> BookkeepingError:
    """The error for a branch whose changes could not be diffed (``found`` is ``None``) or
    recorded, naming the field path and why. Runs only after such a failure."""
    stage, path, value = "diff", "", None
    if found is None:  # find the field whose diff raises, one field at a time
        for field in fields if fields is not None else list(base.__dict__):
            try:
                ctx_mod.diff_into(base, bctx, [], [field])
            except Exception:
                path, value = field, getattr(bctx, field, None)
                break
    else:  # find the change whose values cannot be copied for the frames
        stage = "record"
        for change in found:
            try:
                snapshot(change.before)
            except Exception:
                path, value = change.dotted, change.before
                break
            try:
                snapshot(change.after)
            except Exception:
                path, value = change.dotted, change.after
                break
    shape = unwalkable(value) if path else ""
    where = f" at {path!r}" if path else ""
    what = f": the value{where} {shape}" if shape else where
    problem = BookkeepingError(
        f"branch {branch!r}: what it changed could not be "
        f"{'diffed' if stage == 'diff' else 'recorded'}{what} ({type(err).__name__}: {err}). "
        "Its changes are not merged. HINT: keep values that hold themselves, or are nested "
        "hundreds of levels deep, out of the context (or out of the branches, with include_keys).",
        branch=branch,
        path=path,
        stage=stage,
    )
    problem.__cause__ = err
    return problem


def _unrecorded_merge(step: str, rows: list[dict[str, Any]], err: Exception) -> BookkeepingError:
    """The error for a merge report whose values cannot be copied for the frames."""
    for row in rows:
        for value in (row.get("before"), row.get("after")):
            try:
                snapshot(value)
            except Exception:
                at = str(row.get("path", ""))
                return BookkeepingError(
                    f"step {step!r}: the merge could not be recorded: the value at {at!r} "
                    f"{unwalkable(value) or 'cannot be copied'} ({type(err).__name__}: {err}); "
                    "the parent context is unchanged.",
                    path=at,
                    stage="record",
                )
    return BookkeepingError(
        f"step {step!r}: the merge could not be recorded ({type(err).__name__}: {err}); "
        "the parent context is unchanged.",
        stage="record",
    )


def _merge(base: BaseModel, branches: list[tuple[str, BaseModel]], spec: Any, **kw: Any) -> Any:
    """``merge_branches``, with any non-flowlab error (a custom merge that raised) wrapped."""
    try:
        return merge_mod.merge_branches(base, branches, spec, **kw)
    except FlowlabError:
        raise
    except Exception as err:
        raise MergeValidationError(
            f"step {kw.get('step', '')!r}: the merge {spec.name!r} raised "
            f"{type(err).__name__}: {err}; the parent context is unchanged."
        ) from err
