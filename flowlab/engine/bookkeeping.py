"""The errors of bookkeeping that cannot be done: a branch's diff or record, a step's merge report.

When what a branch changed cannot be diffed or recorded (a value that holds itself, or is nested
hundreds of levels deep), the branch fails with :class:`~flowlab.errors.BookkeepingError` rather
than hang its step; when a merge's report cannot be recorded, the step fails and the parent context
is left as it was. These functions build those errors — naming the field path and why — and run
only after such a failure. :func:`merge` wraps a custom merge's own errors the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

import flowlab.core.context.isolation as ctx_mod
import flowlab.core.merge as merge_mod
from flowlab.errors import BookkeepingError, FlowlabError, MergeValidationError
from flowlab.results.records import snapshot, unwalkable

if TYPE_CHECKING:
    from flowlab.engine.parallel import ParallelRun
    from flowlab.results.records import BranchRecord

__all__ = ["bookkeeping_error", "merge", "unrecorded", "unrecorded_merge"]


def bookkeeping_error(
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


def unrecorded_merge(step: str, rows: list[dict[str, Any]], err: Exception) -> BookkeepingError:
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


def merge(base: BaseModel, branches: list[tuple[str, BaseModel]], spec: Any, **kw: Any) -> Any:
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


def unrecorded(
    pr: ParallelRun,
    name: str,
    live: Any,
    bctx: Any,
    found: list[ctx_mod.Change] | None,
    err: Exception,
) -> None:
    """What a branch changed could not be diffed or recorded: it fails, and is not merged.

    A branch that had already failed, timed out or been cancelled keeps that status (its
    changes were never going to be merged); the error is added to its row.
    """
    brec: BranchRecord = live.record
    diffed = pr.changes.pop(name, None) is not None
    pr.contexts.pop(name, None)
    pr.outputs.pop(name, None)
    try:
        problem = bookkeeping_error(
            brec.path, pr.ctx, bctx, found if diffed else None, pr.fields, err
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
    pr.errors[name] = problem
    if pr.par.on_failure == "fail_fast":
        pr.cancel_siblings(name, live)
