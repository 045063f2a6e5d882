"""Branch contexts: isolate a pydantic context per branch, and diff a branch against its base.

A parallel step gives every branch its own deep copy of the context (:func:`isolate`), lets the
branches mutate their copies freely, and afterwards asks *what did each branch change?*
(:func:`diff`): a list of :class:`~flowlab.core.context.changes.Change` objects at field paths, found by the
diff in :mod:`flowlab.core.context.changes` (whose names this module re-exports).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Collection, Hashable, Iterator, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel

from flowlab.core.context.changes import (
    _DICTS,
    _LISTS,
    MISSING,
    Change,
    Item,
    _diff_model,
    diff_into,
    diff_value,
    list_slice,
    same,
)
from flowlab.core.context.copying import copy_value
from flowlab.core.context.isolator import IMMUTABLE, check_include_keys, isolator
from flowlab.errors import ConfigError

__all__ = [
    "MISSING",
    "Change",
    "Item",
    "apply_inplace",
    "check_context",
    "check_include_keys",
    "data_copier",
    "diff",
    "diff_into",
    "diff_value",
    "get_path",
    "isolate",
    "list_slice",
    "same",
]

M = TypeVar("M", bound=BaseModel)


def check_context(ctx: object, *, param: str = "ctx") -> BaseModel:
    """Return ``ctx`` if it is a pydantic model instance, else raise :class:`ConfigError`.

    Examples
    --------
    >>> check_context({"n": 1})
    Traceback (most recent call last):
    ...
    flowlab.errors.ConfigError: ctx must be a pydantic BaseModel instance, got dict {'n': 1}...
    """
    if isinstance(ctx, BaseModel):
        return ctx
    if isinstance(ctx, type) and issubclass(ctx, BaseModel):
        hint = f"pass an instance, e.g. {param}={ctx.__name__}(), not the class itself."
    elif isinstance(ctx, dict):
        hint = "define a model (class Ctx(BaseModel): ...) and pass Ctx(**your_dict)."
    else:
        hint = "define the context as a pydantic model: class Ctx(BaseModel): ..."
    shown = repr(ctx)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    raise ConfigError(
        f"{param} must be a pydantic BaseModel instance, got {type(ctx).__name__} {shown}. "
        f"HINT: {hint}"
    )


_IMMUTABLE = IMMUTABLE
_FLAT: frozenset[type] = _DICTS | _LISTS
"""Containers copied shallowly when their items are immutable (tracked ones are still a dict/list)."""


def _items(value: Any) -> Any:
    return value.values() if type(value) in _DICTS else value


def _copy_value(value: Any, memo: dict[int, Any]) -> Any:
    """A deep copy, made by the one copy policy (:mod:`flowlab.core.context.copying`)."""
    return copy_value(value, memo)


def data_copier(data: Any) -> Callable[[], Any]:
    """What each branch of a step gets as its ``data``: the step's input itself when it is
    immutable (a str, a number, a tuple of them, ...), else its own copy, made as a context's
    are (flat containers shallowly, anything else deeply). A previous step's output is often an
    object of the context (``return ctx.tags``): shared, one branch's ``data.append(...)`` would
    change the parent and its siblings mid-step. A value that cannot be copied is shared.
    """
    if type(data) in _IMMUTABLE or (
        type(data) in (tuple, frozenset) and _IMMUTABLE.issuperset(map(type, data))
    ):
        return lambda: data

    def copied() -> Any:
        try:
            return _copy_value(data, {})
        except Exception:  # a live object (a client, a lock): shared, as the caller passed it
            return data

    return copied


def isolate(ctx: M, include_keys: Sequence[str] | None = None, *, track: bool = False) -> M:
    """Return an independent deep copy of ``ctx`` for one branch.

    Parameters
    ----------
    ctx : BaseModel
        The context before the step.
    include_keys : sequence of str, optional
        Copy only these fields; the others take their defaults (a field without a default is
        still deep-copied). Unknown names raise :class:`ConfigError` listing the valid ones.
    track : bool, default False
        Hand out a :class:`~flowlab.core.context.tracking.TrackedDict` / :class:`~flowlab.core.context.tracking.TrackedList`
        for every dict or list field of immutable scalars, so that :func:`diff` against ``ctx``
        reads only what the branch wrote (the engine does this; ``ctx`` must not change meanwhile).

    Returns
    -------
    BaseModel
        Same class as ``ctx``; mutating it (deeply) never touches ``ctx``. No re-validation.

    Raises
    ------
    ConfigError
        When a value cannot be deep-copied; the message names the field.

    Examples
    --------
    >>> from pydantic import BaseModel
    >>> class Ctx(BaseModel):
    ...     scores: dict[str, int] = {}
    >>> base = Ctx(scores={"a": 1})
    >>> branch = isolate(base, track=True)
    >>> branch.scores["b"] = 2
    >>> base.scores, [c.dotted for c in diff(base, branch)]
    ({'a': 1}, ['scores.b'])
    """
    return isolator(ctx, include_keys, track=track)()


def working_copy(base: M, branch_keys: Sequence[Sequence[str] | None]) -> M:
    """A run's own copy of the caller's context (the caller's object is never mutated).

    ``branch_keys`` holds every Parallel's ``include_keys``. A field that cannot be deep-copied
    (a lock, a client) is shared by reference when no Parallel can touch it: every Parallel names
    its ``include_keys`` and none includes that field.
    """
    try:
        return isolate(base)
    except ConfigError:
        if not branch_keys or any(keys is None for keys in branch_keys):
            raise
        wanted = set().union(*(keys or () for keys in branch_keys))
        new = copy.copy(base)
        memo: dict[int, Any] = {}  # one memo: objects shared between fields stay shared
        values = {k: copy_value(v, memo) if k in wanted else v for k, v in base.__dict__.items()}
        object.__setattr__(new, "__dict__", values)
        return new


def diff(
    base: BaseModel, branch: BaseModel, *, fields: Collection[str] | None = None
) -> list[Change]:
    """List what ``branch`` changed relative to ``base`` (see the module docstring for paths).

    Parameters
    ----------
    base, branch : BaseModel
        The context before the step and one branch's context after it (same model class).
    fields : collection of str, optional
        Compare only these top-level fields (a step's ``include_keys``).

    Returns
    -------
    list of Change
        In field order; inside a dict: changed keys, then removed, then added keys.

    Examples
    --------
    >>> from pydantic import BaseModel
    >>> class Ctx(BaseModel):
    ...     scores: dict[str, int] = {}
    ...     tags: list[str] = []
    >>> changes = diff(Ctx(tags=["w"]), Ctx(scores={"a": 1}, tags=["w", "x"]))
    >>> [(c.dotted, c.op, c.after) for c in changes]
    [('scores.a', 'add', 1), ('tags[1]', 'add', 'x')]
    """
    if type(branch) is not type(base):
        raise ConfigError(
            f"diff needs two contexts of one model, got {type(base).__name__} and "
            f"{type(branch).__name__}."
        )
    if fields is not None:
        check_include_keys(type(base), list(fields))
    out: list[Change] = []
    _diff_model(base, branch, (), out, fields)
    return out


def get_path(value: Any, keys: Sequence[Hashable]) -> Any:
    """The value at ``keys`` inside ``value`` (fields, dict keys, list items), or ``MISSING``."""
    for key in keys:
        if isinstance(value, BaseModel):
            value = value.__dict__.get(key, MISSING)  # type: ignore[call-overload]
        elif isinstance(value, dict):
            value = value.get(key, MISSING)
        elif isinstance(value, list) and isinstance(key, Item):
            value = value[key.index] if key.index < len(value) else MISSING
        else:
            return MISSING
        if value is MISSING:
            return MISSING
    return value


def iter_fields(ctx: BaseModel) -> Iterator[tuple[str, Any]]:
    """``(name, value)`` for every declared field of ``ctx``."""
    values = ctx.__dict__
    for name in type(ctx).model_fields:
        yield name, values[name]


def apply_inplace(target: BaseModel, source: BaseModel) -> None:
    """Make ``target``'s field values those of ``source``, without re-validating.

    ``source`` must be an instance of ``target``'s class (e.g. the merged context). Everything is
    prepared first and swapped in at once, so ``target`` is never left half-updated. ``target``
    takes ``source``'s private attributes too (a sequential step's ``ctx._cache[...] = ...`` is
    kept; a merged context carries the base's own); it shares the values with ``source``
    afterwards.
    """
    if type(source) is not type(target):
        raise ConfigError(
            f"apply_inplace needs source of type {type(target).__name__}, "
            f"got {type(source).__name__}."
        )
    values = dict(source.__dict__)
    fields_set = set(source.__pydantic_fields_set__)
    extra = None if source.__pydantic_extra__ is None else dict(source.__pydantic_extra__)
    object.__setattr__(target, "__dict__", values)
    object.__setattr__(target, "__pydantic_fields_set__", fields_set)
    private = source.__pydantic_private__
    object.__setattr__(target, "__pydantic_extra__", extra)
    if private is not None:
        object.__setattr__(target, "__pydantic_private__", dict(private))
