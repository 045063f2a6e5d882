"""Writes a Parallel does not merge: a branch's changes to fields outside its ``include_keys``.

``Parallel(..., include_keys=[...])`` copies only those fields into each branch (the others
take their defaults; one without a default is copied) and merges only those. A branch that
writes another field anyway loses that write — which a user reading the merged context could
not tell from a write that never happened. So the fields left out are noted as the branch got
them (:func:`handed`, a snapshot), compared when the branch ends (:func:`check`: an event
``write_not_merged`` in ``result.events``), and the step warns once, after its merge, naming
the branches and the fields (:func:`warn`).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from flowlab.core.context.copying import snapshot
from flowlab.core.context.equality import same
from flowlab.errors import NotMergedWarning

if TYPE_CHECKING:
    from flowlab.engine.parallel import ParallelRun
    from flowlab.results.records import BranchRecord

__all__ = ["NotMergedWarning", "check", "excluded_fields", "handed", "warn"]


def excluded_fields(ctx: BaseModel, include_keys: Sequence[str] | None) -> tuple[str, ...]:
    """The fields of ``ctx`` a step with ``include_keys`` does not merge (none without it)."""
    if include_keys is None:
        return ()
    wanted = set(include_keys)
    return tuple(name for name in type(ctx).model_fields if name not in wanted)


def handed(bctx: BaseModel, fields: tuple[str, ...]) -> dict[str, Any] | None:
    """What a branch got in the fields left out (a snapshot), or ``None`` if it cannot be
    taken (a value that holds itself): then nothing is checked for that branch."""
    values = bctx.__dict__
    try:
        return {name: snapshot(values[name]) for name in fields}
    except Exception:
        return None


def check(
    pr: ParallelRun, name: str, brec: BranchRecord, bctx: BaseModel, got: dict[str, Any]
) -> None:
    """Note the fields left out that branch ``name`` changed (an event, and for :func:`warn`)."""
    values = bctx.__dict__
    changed = [field for field, before in got.items() if not same(before, values[field])]
    if changed:
        pr.unmerged[name] = changed
        pr.run.event(
            "write_not_merged",
            pr.path,
            brec.path,
            f"{', '.join(changed)} (outside include_keys; not merged)",
        )


def warn(pr: ParallelRun) -> None:
    """One warning for the step: which branches wrote which fields it does not merge."""
    unmerged = pr.unmerged
    listed = "; ".join(
        f"{b!r}: {', '.join(unmerged[b])}" for b in pr.plan.names if b in unmerged
    )  # in declared order
    warnings.warn(
        NotMergedWarning(
            f"step {pr.path!r}: branches wrote fields outside include_keys="
            f"{list(pr.fields or ())!r}, and those writes are not merged ({listed}). HINT: add "
            "the fields to include_keys, or leave them alone in the branches."
        ),
        stacklevel=2,
    )
