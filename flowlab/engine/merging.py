"""The end of a Parallel step: settle what its branches did, then merge their changes back.

:func:`raise_for_errors` turns the step's outcome into its error, if it has one: its own timeout,
a budget breach (a breach elsewhere that cancelled this step's branch ends it *cancelled*, naming
the crossing branch), or its branches' errors unless ``on_failure="ignore"`` (the first, in
declared order, is the cause; all of them are in ``BranchFailed.errors``). :func:`merge` merges
the ``ok`` branches' changes into the parent context in one go: built aside, validated, recorded,
and only then applied; a report that cannot be recorded leaves the context as it was.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import flowlab.core.context.isolation as ctx_mod
from flowlab.engine import bookkeeping, excluded
from flowlab.engine.clock import wall
from flowlab.errors import BranchFailed, IsolationBreach, StepTimeout

if TYPE_CHECKING:
    from flowlab.engine.parallel import ParallelRun

__all__ = ["check_shared", "merge", "raise_for_errors"]


def check_shared(pr: ParallelRun, *, failing: bool = False) -> None:
    """Whether a copy-on-write step's shared context is as its branches found it
    (:mod:`flowlab.core.context.cow_guard`). A changed one was written around copy on write: its
    changed fields are put back, an ``isolation_breach`` event names them, and the step fails
    with :class:`~flowlab.errors.IsolationBreach` (``failing``: it fails with another error)."""
    guard, pr.guard = pr.guard, None
    if guard is None:
        return
    changed = guard.changed(pr.ctx)
    if not changed:
        pr.kept_base = guard.copy  # the context as it still is: the merge record's copy
        return
    guard.restore(pr.ctx, changed)
    names = ", ".join(map(repr, changed))
    pr.run.event("isolation_breach", pr.path, "", names)
    if failing:
        return
    raise IsolationBreach(
        f"step {pr.path!r} (isolation='cow'): a branch wrote into the context its siblings "
        f"share (field {names}), through code that reads a list's storage directly and hands "
        "out a shared item (heapq.heappop, numpy.array(list_of_dicts), pydantic validating a "
        "list[Any] or models already built). Siblings may have read the changed data: nothing "
        "was merged and the context was put back as it was before the step. Run the step "
        "with isolation='eager' (every branch its own full copy).",
        step=pr.path,
        fields=changed,
    )


def raise_for_errors(pr: ParallelRun) -> None:
    """The step's timeout, a budget breach, or its branches' errors (unless ignored)."""
    par, path, run = pr.par, pr.path, pr.run
    if pr.expired:
        raise StepTimeout(
            f"step {path!r} exceeded timeout={par.timeout:g}s", step=path, timeout=par.timeout
        )
    breach = run.account.breached
    if breach is not None:
        run.settle_breach()
        crossing = getattr(breach, "branch", None) or ""
        task = asyncio.current_task()
        if crossing and not crossing.startswith(f"{path}:") and task and task.cancelling():
            # a breach elsewhere cancelled this step's branch: it ends cancelled (its reason
            # names the crossing branch), not failed with an error that is not its own
            raise asyncio.CancelledError(f"usage limit exceeded by branch {crossing!r}")
        raise breach
    errors, order = pr.errors, pr.plan.names
    if not errors or par.on_failure == "ignore":
        return
    failed = [n for n in order if n in errors]
    first, err = failed[0], errors[failed[0]]
    if isinstance(err, StepTimeout):
        raise StepTimeout(f"branch {first!r} of step {path!r} timed out: {err}", step=path) from err
    names = ", ".join(repr(n) for n in failed[:5])
    if len(failed) > 5:
        names += f" and {len(failed) - 5:,} more ({len(failed):,} in all; see .errors)"
    raise BranchFailed(
        f"step {path!r}: branch {names} failed; first: {type(err).__name__}: {err}",
        step=path,
        errors={n: errors[n] for n in failed},
    ) from err


def merge(pr: ParallelRun) -> None:
    """Merge the ok branches' changes into the parent context, in one go."""
    par, path, ctx, outputs = pr.par, pr.path, pr.ctx, pr.outputs
    order = pr.plan.names
    ok = order if len(outputs) == len(order) else [n for n in order if n in outputs]
    if par.order == "completion":
        ok = sorted(ok, key=pr.ranks.__getitem__)
    if not pr.parent and not pr.custom and pr.record:  # result.remerge() replays it
        pr.recorder.add_merge_input(path, ctx, ok, par.merge, par.include_keys, pr.kept_base)
    t_merge = wall()
    try:
        outcome = bookkeeping.merge(
            ctx,
            [(n, pr.contexts.get(n, ctx)) for n in ok],  # unchanged: the base itself
            par.merge,
            diffs=pr.changes,  # the merge reads the diffs of the branches it merges
            fields=par.include_keys,
            step=path,
            reuse_base=True,  # ctx is replaced by the merged context: no copy of its dicts
        )
    finally:
        pr.srec.merge_s = wall() - t_merge
    try:  # recorded before it is applied: a report that cannot be made leaves ctx as it was
        pr.recorder.add_merge(par.name, outcome.rows, pr.parent)
    except Exception as err:
        outcome.undo()  # the merge wrote into ctx's dicts (reuse_base): put them back
        raise bookkeeping.unrecorded_merge(path, outcome.rows, err) from err
    if pr.unmerged:
        try:
            excluded.warn(pr)
        except Warning:  # warnings made errors: the run fails with ctx as it was
            outcome.undo()
            raise
    ctx_mod.apply_inplace(ctx, outcome.context)
    pr.run.event("merge_applied", path, "", f"{len(outcome.rows)} paths")
    pr.run.emit("merge_applied", path, outcome.rows, pr.srec.merge_s)
