"""The three-way, transactional merge: :func:`merge_branches` and its :class:`MergeOutcome`.

Only what each branch changed relative to the base takes part. The merged context is built aside
and validated by the model; on a conflict or a validation error nothing is applied and the error
carries the merge report. A custom function given as the step's ``merge`` replaces the walk.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel

from flowlab.core.context.isolation import (
    Change,
    check_context,
    check_include_keys,
    diff,
    isolate,
    same,
)
from flowlab.core.merge.checks import check_model, check_rules
from flowlab.core.merge.nodes import ChangeNode
from flowlab.core.merge.rules import Rule
from flowlab.core.merge.strategies import MergeSpec
from flowlab.core.merge.tree import _Merger, _short
from flowlab.core.merge.validate import validate
from flowlab.errors import MergeConflict, MergeValidationError

__all__ = ["MergeOutcome", "merge_branches"]

M = TypeVar("M", bound=BaseModel)


def _nothing() -> None:
    """Nothing to undo."""


@dataclass
class MergeOutcome:
    """What a merge produced.

    Attributes
    ----------
    context : BaseModel
        A new, validated context; the base is never mutated.
    rows : sequence of dict
        One per merged path: ``path`` (dotted), ``rule``, ``writers`` (branches in merge order),
        ``winner`` (the branch whose value was taken, ``None`` when values were combined),
        ``before``, ``after`` (``None`` for a missing path), ``conflict`` and ``dropped``. A
        :class:`~flowlab.core.merge.report.MergeReport` (each row made a dict when read; its
        ``snapshot()`` copies the values as they are now), or a list for a merge function.
    undo : callable
        With ``reuse_base=True`` the merge wrote into the base's dicts; ``undo()`` puts every
        written key back (for a caller that fails after the merge, before applying it).
    """

    context: BaseModel
    rows: Sequence[dict[str, Any]]
    undo: Callable[[], None] = _nothing


def _branch_changes(
    base: BaseModel,
    name: str,
    ctx: BaseModel,
    diffs: Mapping[str, list[Change]] | None,
    fields: Collection[str] | None,
) -> list[Change]:
    if diffs is not None and name in diffs:
        return diffs[name]
    return diff(base, ctx, fields=fields)


def merge_branches(
    base: M,
    branches: Sequence[tuple[str, M]],
    spec: MergeSpec,
    *,
    diffs: Mapping[str, list[Change]] | None = None,
    fields: Collection[str] | None = None,
    step: str = "",
    reuse_base: bool = False,
    rules: Mapping[str, Rule] | None = None,
) -> MergeOutcome:
    """Merge the successful branches' contexts into a new context (three-way, transactional).

    Parameters
    ----------
    base : BaseModel
        The context before the step; never mutated.
    branches : sequence of (name, context)
        The successful branches, in merge order (last writer wins for ``overwrite``).
    spec : MergeSpec
        From :func:`~flowlab.core.merge.resolve`.
    diffs : mapping, optional
        ``{name: diff(base, context)}`` already computed; missing ones are computed.
    fields : collection of str, optional
        Merge only these top-level fields (``include_keys``); the others keep the base value.
    step : str, optional
        The step's name, to start error messages with (``step 'fan': merge conflict at ...``).
    reuse_base : bool, default False
        Let the merged context take over the base's dicts and write the merged keys into them,
        instead of copying each changed dict first; on a conflict or any error every write is
        undone before the error is raised, so the base is as it was. The engine does this (it
        replaces the parent context by the merged one anyway): a merge then costs what changed,
        not the size of the dicts it touched.
    rules : mapping, optional
        ``{field: rule}`` for top-level fields, overriding the model's own field rules.

    Returns
    -------
    MergeOutcome
        The merged, validated context and one report row per merged path.

    Raises
    ------
    MergeConflict
        Two branches wrote one path to different values under ``error_on_conflict``.
    MergeValidationError
        The merged context (or a custom function's result) is not a valid instance of the model.
    """
    try:
        return _merge(base, branches, spec, diffs, fields, reuse_base, rules)
    except (MergeConflict, MergeValidationError) as err:
        if step and err.args:
            err.args = (f"step {step!r}: {err.args[0]}", *err.args[1:])
        raise


def _merge(
    base: BaseModel,
    branches: Sequence[tuple[str, BaseModel]],
    spec: MergeSpec,
    diffs: Mapping[str, list[Change]] | None,
    fields: Collection[str] | None,
    reuse_base: bool = False,
    rules: Mapping[str, Rule] | None = None,
) -> MergeOutcome:
    check_context(base, param="base")
    cls = type(base)
    names = [name for name, _ in branches]
    ctxs = [ctx for _, ctx in branches]
    for name, ctx in branches:
        if type(ctx) is not cls:
            raise MergeValidationError(
                f"branch {name!r} ended with a {type(ctx).__name__} context, not a "
                f"{cls.__name__}; a merge needs contexts of one model."
            )
    if fields is not None:
        check_include_keys(cls, list(fields))
        fields = frozenset(fields)
    if spec.fn is not None:
        return _merge_custom(base, names, ctxs, spec, diffs, fields)
    root = ChangeNode()
    for i, (name, ctx) in enumerate(branches):
        changes = diffs.get(name) if diffs is not None else None
        if changes is None:
            changes = _branch_changes(base, name, ctx, diffs, fields)
        if fields is not None:
            changes = [c for c in changes if c.key_path[0] in fields]
        if changes:
            root.file(i, changes)
    merger = _Merger(names, reuse_base=reuse_base)
    merger.strict = spec.rule is not None and spec.rule.strict  # the step refuses collisions
    if rules:
        check_rules(cls, rules)
        merger.overrides = dict(rules)
    if spec.rule is None:  # no_merge: report what was dropped
        for name in cls.model_fields:
            if name in root.children:
                value = base.__dict__[name]
                merger.row((name,), spec.name, root.children[name], None, value, value)
        return MergeOutcome(copy.copy(base), merger.rows)
    check_model(cls, merge=spec)
    if not root.children:
        return MergeOutcome(copy.copy(base), [])
    try:
        context = merger.model(root, base, (), spec.rule, spec.name, True)
        if merger.conflicts:
            raise _conflict(merger)
    except BaseException:
        merger.undo_writes()
        raise
    return MergeOutcome(context, merger.rows, merger.undo_writes)


def _conflict(merger: _Merger) -> MergeConflict:
    """The error for the merge's conflicts (the first one, naming the others)."""
    path, values = merger.conflicts[0]
    shown = ", ".join(f"{b}={_short(v)}" for b, v in values.items())
    written = list(values.values())
    how = (
        "all wrote it, and its rule (fl.merge.Single) takes one writer"
        if all(same(written[0], v) for v in written[1:])
        else "made edits that collide"
        if any(isinstance(v, list) for v in written)
        else "wrote different values"
    )
    message = (
        f"merge conflict at {path!r}: branches {', '.join(map(repr, values))} {how} "
        f"({shown}); nothing was merged."
    )
    if len(merger.conflicts) > 1:
        more = ", ".join(repr(p) for p, _ in merger.conflicts[1:])
        message += f" Also conflicting: {more}."
    message += (
        " HINT: give the field a rule that combines values (e.g. "
        "Annotated[int, fl.merge.Sum()]) or choose another merge strategy."
    )
    return MergeConflict(message, path=path, values=values, report=merger.rows)


def _merge_custom(
    base: BaseModel,
    names: list[str],
    ctxs: Sequence[BaseModel],
    spec: MergeSpec,
    diffs: Mapping[str, list[Change]] | None,
    fields: Collection[str] | None,
) -> MergeOutcome:
    assert spec.fn is not None
    cls = type(base)
    result = spec.fn(isolate(base), dict(zip(names, ctxs, strict=True)))
    if not isinstance(result, cls):
        raise MergeValidationError(
            f"merge function {spec.name.removeprefix('custom:')} returned "
            f"{type(result).__name__} {_short(result)}, not a {cls.__name__}. HINT: return the "
            f"base context after changing it, or a new {cls.__name__}(...)."
        )
    changed = [
        name
        for name in cls.model_fields
        if (fields is None or name in fields)
        and not same(base.__dict__[name], result.__dict__[name])
    ]
    touched = [
        {c.key_path[0] for c in _branch_changes(base, n, ctx, diffs, fields)}
        for n, ctx in zip(names, ctxs, strict=True)
    ]
    rows = [
        {
            "path": name,
            "rule": spec.name,
            "writers": tuple(n for n, t in zip(names, touched, strict=True) if name in t),
            "winner": None,
            "before": base.__dict__[name],
            "after": result.__dict__[name],
            "conflict": False,
        }
        for name in changed
    ]
    if not changed:
        return MergeOutcome(copy.copy(base), rows)
    data = dict(base.__dict__)
    data.update({name: result.__dict__[name] for name in changed})
    return MergeOutcome(validate(cls, data, base, changed, "", rows), rows)
