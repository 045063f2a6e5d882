"""One step's copy plan: what :func:`~flowlab.core.context.isolation.isolate` decides once, not once per branch.

Every branch of a Parallel starts from a copy of the same context, and that context does not
change while the branches run. :func:`~flowlab.core.context.isolation.isolate` looks at every field of it each
time it is called — which fields are immutable scalars (shared), which are dicts or lists of them
(copied shallowly, or handed out tracked), which need a deep copy — and for a dict of 10,000
scalars that look is a pass over 10,000 values, per branch. :func:`isolator` looks once and
returns a function that only copies: the scalar fields come from one ``dict.copy()`` of a
template, each container field is one copy, and only the fields that need it are deep-copied.

The copies are the same as :func:`~flowlab.core.context.isolation.isolate`'s (same class, values, tracking,
fields set, extras and private attributes), as long as the context is not changed between the
plan and the copies; the engine guarantees that for a step's branches.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel

from flowlab.core.context.changes import _DICTS, _LISTS
from flowlab.core.context.isolation import _IMMUTABLE, _deepcopy_field, copy_flat, isolate
from flowlab.core.context.tracking import TrackedDict, TrackedList

__all__ = ["isolator"]

M = TypeVar("M", bound=BaseModel)

_setattr = object.__setattr__


def isolator(
    ctx: M, include_keys: Sequence[str] | None = None, *, track: bool = False
) -> Callable[[], M]:
    """A function returning a fresh ``isolate(ctx, include_keys, track=track)`` per call.

    Parameters
    ----------
    ctx : BaseModel
        The context to copy; it must not change while the function is in use.
    include_keys : sequence of str, optional
        As for :func:`~flowlab.core.context.isolation.isolate` (then each call simply is one ``isolate``).
    track : bool, default False
        As for :func:`~flowlab.core.context.isolation.isolate`.

    Returns
    -------
    callable
        ``copy()`` -> a new, independent copy of ``ctx``.

    Examples
    --------
    >>> from pydantic import BaseModel
    >>> class Ctx(BaseModel):
    ...     n: int = 0
    ...     tags: list[str] = []
    >>> base = Ctx(n=1, tags=["a"])
    >>> copy = isolator(base, track=True)
    >>> one, two = copy(), copy()
    >>> one.tags.append("b")
    >>> base.tags, one.tags, two.tags, type(two.tags).__name__
    (['a'], ['a', 'b'], ['a'], 'TrackedList')
    """
    if include_keys is not None:  # defaults of the left-out fields are made per copy, in order
        return lambda: isolate(ctx, include_keys, track=track)
    return _Plan(ctx, track)


class _Plan:
    """The copy plan of one context (see the module docstring)."""

    __slots__ = (
        "careful",
        "cls",
        "ctx",
        "deep",
        "dicts",
        "extra",
        "fields_set",
        "flat",
        "lists",
        "private",
        "template",
        "track",
    )

    def __init__(self, ctx: BaseModel, track: bool) -> None:
        self.ctx = ctx
        self.cls = type(ctx)
        self.track = track
        self.template = dict(ctx.__dict__)  # scalars are shared; the other fields are replaced
        self.dicts: list[tuple[str, dict[Any, Any]]] = []
        self.lists: list[tuple[str, list[Any]]] = []
        self.deep: list[tuple[str, Any]] = []
        for name, value in ctx.__dict__.items():
            kind = type(value)
            if kind in _IMMUTABLE:
                continue
            if kind in _DICTS and _IMMUTABLE.issuperset(map(type, value.values())):
                self.dicts.append((name, value))
            elif kind in _LISTS and _IMMUTABLE.issuperset(map(type, value)):
                self.lists.append((name, value))
            else:
                self.deep.append((name, value))
        self.extra = ctx.__pydantic_extra__
        self.private = ctx.__pydantic_private__
        self.fields_set = ctx.__pydantic_fields_set__
        # Deep copies to make, or container fields sharing one object: each copy then goes
        # through one memo, as isolate() does, so shared objects stay shared.
        self.flat: list[tuple[str, Any]] = [*self.dicts, *self.lists]
        shared = len({id(value) for _, value in self.flat}) < len(self.flat)
        self.careful = bool(
            self.deep or shared or self.extra is not None or self.private is not None
        )

    def __call__(self) -> Any:
        values = self.template.copy()
        extra, private = self.extra, self.private
        tracked_dict: TrackedDict
        tracked_list: TrackedList
        if self.careful:
            ctx = self.ctx
            memo: dict[int, Any] = {}  # one memo per copy keeps aliasing between fields
            for name, value in self.deep:
                values[name] = _deepcopy_field(ctx, name, value, memo)
            if extra is not None:
                extra = _deepcopy_field(ctx, "<extra>", extra, memo)
            if private is not None:
                private = _deepcopy_field(ctx, "<private>", private, memo)
            copy_flat(values, self.flat, memo, self.track)  # last: no deep copy may pick one up
        elif self.track:
            for name, mapping in self.dicts:
                tracked_dict = values[name] = TrackedDict(mapping)
                tracked_dict.written = {}
                tracked_dict.origin = mapping
            for name, items in self.lists:
                tracked_list = values[name] = TrackedList(items)
                tracked_list.low = len(items)
                tracked_list.origin = items
        else:
            for name, mapping in self.dicts:
                values[name] = mapping.copy()
            for name, items in self.lists:
                values[name] = items.copy()
        cls = self.cls
        new = cls.__new__(cls)
        _setattr(new, "__dict__", values)
        _setattr(new, "__pydantic_extra__", extra)
        _setattr(new, "__pydantic_private__", private)
        _setattr(new, "__pydantic_fields_set__", set(self.fields_set))
        return new
