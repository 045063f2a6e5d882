"""How one Parallel step hands its branches their contexts: eager copies or copy on write.

:func:`plan_isolation` decides once per step run. A top-level Parallel with ``isolation="cow"``
whose context holds nested data worth sharing (:func:`~flowlab.core.context.cow.copy_on_write_pays`)
copies on write (:mod:`flowlab.core.context.cow`), diffs its branches through the same containers
(:mod:`flowlab.core.context.cow_diff`) and keeps a :class:`~flowlab.core.context.cow_guard.Guard`
to check, when the branches end, that none wrote into what they share
(:func:`flowlab.engine.merging.check_shared`). Every other step copies eagerly: a nested
Parallel too, since its base is a branch's copy-on-write context. The step's row in
``result.steps`` says which (``isolation``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import flowlab.core.context.isolation as ctx_mod
from flowlab.core.context.cow import copy_on_write_pays, cow_isolator
from flowlab.core.context.cow_diff import cow_diff_into
from flowlab.core.context.cow_guard import Guard
from flowlab.core.context.isolator import isolator

if TYPE_CHECKING:
    from pydantic import BaseModel

    from flowlab.engine.parallel import ParallelRun

__all__ = ["plan_isolation"]


def plan_isolation(pr: ParallelRun, ctx: BaseModel, nested: bool) -> None:
    """Set ``pr``'s copier, differ and guard for a step whose base context is ``ctx``."""
    include_keys = pr.par.include_keys
    cow = pr.par.isolation == "cow" and not nested and copy_on_write_pays(ctx)
    pr.cow = cow
    pr.srec.isolation = "cow" if cow else "eager"
    pr.copy_ctx = (
        cow_isolator(ctx, include_keys) if cow else isolator(ctx, include_keys, track=True)
    )
    pr.diff_into = cow_diff_into if cow else ctx_mod.diff_into
    pr.guard = Guard(ctx, include_keys) if cow else None
    pr.kept_base = None  # a copy of ctx the merge record can keep (set by the guard's check)
