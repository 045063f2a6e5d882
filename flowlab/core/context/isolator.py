"""One step's copy plan: what copying a context decides once, not once per branch.

Every branch of a Parallel starts from a copy of the same context, and that context does not
change while the branches run. Looking at every field of it for each copy — which fields are
immutable scalars (shared), which are dicts or lists of them (copied shallowly, or handed out
tracked), which need a deep copy, which the step leaves out (``include_keys``: they take their
defaults) — would be, for a dict of 10,000 scalars, a pass over 10,000 values per branch.
:func:`isolator` looks once and returns a function that only copies: the scalar fields come from
one ``dict.copy()`` of a template, each container field is one copy, and only the fields that
need it are deep-copied (by the one copy policy, :mod:`flowlab.core.context.copying`).

:func:`~flowlab.core.context.isolation.isolate` is this plan applied once: there is one way to
copy a context. The copies are independent of each other and of the context, as long as the
context is not changed between the plan and the copies; the engine guarantees that for a step's
branches.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from flowlab.core.context.changes import _DICTS, _LISTS
from flowlab.core.context.copying import copy_value
from flowlab.core.context.tracking import TrackedDict, TrackedList
from flowlab.core.context.tracking import track as _tracked
from flowlab.errors import ConfigError

__all__ = ["IMMUTABLE", "check_include_keys", "copy_flat", "isolator"]

M = TypeVar("M", bound=BaseModel)

_setattr = object.__setattr__

IMMUTABLE: frozenset[type] = frozenset({int, float, str, bool, type(None), bytes, complex})
"""Scalars a copy shares; a dict or list holding only these is *flat* (copied shallowly)."""


def check_include_keys(model_cls: type[BaseModel], include_keys: Sequence[str]) -> None:
    """Raise :class:`ConfigError` unless every name in ``include_keys`` is a model field."""
    if isinstance(include_keys, str) or not isinstance(include_keys, Collection):
        raise ConfigError(
            f"include_keys={include_keys!r} must be a list of field names or None. "
            f"HINT: include_keys=[{include_keys!r}]"
        )
    valid = list(model_cls.model_fields)
    unknown = [k for k in include_keys if k not in model_cls.model_fields]
    if unknown:
        listed = ", ".join(repr(v) for v in valid)
        raise ConfigError(
            f"include_keys names {', '.join(repr(u) for u in unknown)}, not fields of "
            f"{model_cls.__name__}; valid field names: {listed}."
        )


def deepcopy_field(ctx: BaseModel, name: str, value: Any, memo: dict[int, Any]) -> Any:
    """A deep copy of one field's value; a value that cannot be copied is a :class:`ConfigError`
    naming the field."""
    try:
        return copy_value(value, memo)
    except Exception as err:
        raise ConfigError(
            f"cannot isolate field {type(ctx).__name__}.{name}: its value "
            f"({type(value).__name__}) cannot be deep-copied ({err}). HINT: leave it out of the "
            "branches with include_keys=[...], or keep a picklable handle (a name, a factory) in "
            "the context instead of the live object."
        ) from err


def copy_flat(
    values: dict[str, Any],
    flat: Sequence[tuple[str, Any]],
    memo: dict[int, Any],
    track: bool,
) -> None:
    """Copy each ``(name, dict or list of scalars)`` in ``flat`` into ``values`` (tracked if
    ``track``), after every deep copy of the context is made with ``memo``.

    An object that a deep copy already copied (a field's list that another field's value also
    holds) takes that copy, so the two stay one object (untracked, as the deep copy made it);
    fields that share one object share one copy.
    """
    for name, value in flat:
        copied = memo.get(id(value))
        if copied is None:
            copied = memo[id(value)] = _tracked(value) if track else value.copy()
        values[name] = copied


def isolator(
    ctx: M, include_keys: Sequence[str] | None = None, *, track: bool = False
) -> Callable[[], M]:
    """A function returning a fresh copy of ``ctx`` per call (see the module docstring).

    Parameters
    ----------
    ctx : BaseModel
        The context to copy; it must not change while the function is in use.
    include_keys : sequence of str, optional
        Copy only these fields; the others take their defaults, made per copy (a field without
        a default is still copied). Unknown names raise :class:`ConfigError` listing the valid
        ones.
    track : bool, default False
        Hand out a :class:`~flowlab.core.context.tracking.TrackedDict` /
        :class:`~flowlab.core.context.tracking.TrackedList` for every dict or list field of
        immutable scalars, so that a diff against ``ctx`` reads only what the copy wrote.

    Returns
    -------
    callable
        ``copy()`` -> a new, independent copy of ``ctx`` (same class, no re-validation).

    Raises
    ------
    ConfigError
        When ``include_keys`` names no field, or (on a copy) a value cannot be deep-copied.

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
    >>> isolator(base, ["tags"])().n  # left out: its default
    0
    """
    return _Plan(ctx, include_keys, track)


class _Plan:
    """The copy plan of one context (see the module docstring)."""

    __slots__ = (
        "careful",
        "cls",
        "ctx",
        "deep",
        "defaults",
        "dicts",
        "extra",
        "fields_set",
        "flat",
        "lists",
        "private",
        "template",
        "track",
    )

    def __init__(self, ctx: BaseModel, include_keys: Sequence[str] | None, track: bool) -> None:
        self.ctx = ctx
        self.cls = cls = type(ctx)
        self.track = track
        self.template = dict(ctx.__dict__)  # scalars are shared; the other fields are replaced
        self.dicts: list[tuple[str, dict[Any, Any]]] = []
        self.lists: list[tuple[str, list[Any]]] = []
        self.deep: list[tuple[str, Any]] = []
        self.defaults: list[tuple[str, FieldInfo]] = []  # left out by include_keys
        self.fields_set = ctx.__pydantic_fields_set__
        wanted: set[str] | None = None
        if include_keys is not None:
            check_include_keys(cls, include_keys)
            wanted = set(include_keys)
            self.fields_set = self.fields_set & wanted
        fields = cls.model_fields
        for name, value in ctx.__dict__.items():
            if wanted is not None and name not in wanted and not fields[name].is_required():
                self.defaults.append((name, fields[name]))
                continue
            kind = type(value)
            if kind in IMMUTABLE:
                continue
            if kind in _DICTS and IMMUTABLE.issuperset(map(type, value.values())):
                self.dicts.append((name, value))
            elif kind in _LISTS and IMMUTABLE.issuperset(map(type, value)):
                self.lists.append((name, value))
            else:
                self.deep.append((name, value))
        self.extra = ctx.__pydantic_extra__
        self.private = ctx.__pydantic_private__
        # Deep copies to make, or container fields sharing one object: each copy then goes
        # through one memo, so shared objects stay shared.
        self.flat: list[tuple[str, Any]] = [*self.dicts, *self.lists]
        shared = len({id(value) for _, value in self.flat}) < len(self.flat)
        self.careful = bool(
            self.deep or shared or self.extra is not None or self.private is not None
        )

    def __call__(self) -> Any:
        values = self.template.copy()
        extra, private = self.extra, self.private
        if self.careful:
            ctx = self.ctx
            memo: dict[int, Any] = {}  # one memo per copy keeps aliasing between fields
            for name, value in self.deep:
                values[name] = deepcopy_field(ctx, name, value, memo)
            if extra is not None:
                extra = deepcopy_field(ctx, "<extra>", extra, memo)
            if private is not None:
                private = deepcopy_field(ctx, "<private>", private, memo)
            copy_flat(values, self.flat, memo, self.track)  # last: no deep copy may pick one up
        elif self.track:
            self._tracked(values)
        else:
            for name, mapping in self.dicts:
                values[name] = mapping.copy()
            for name, items in self.lists:
                values[name] = items.copy()
        for name, info in self.defaults:  # made per copy: a default factory's list is its own
            values[name] = info.get_default(call_default_factory=True, validated_data=values)
        cls = self.cls
        new = cls.__new__(cls)
        _setattr(new, "__dict__", values)
        _setattr(new, "__pydantic_extra__", extra)
        _setattr(new, "__pydantic_private__", private)
        _setattr(new, "__pydantic_fields_set__", set(self.fields_set))
        return new

    def _tracked(self, values: dict[str, Any]) -> None:
        tracked_dict: TrackedDict
        tracked_list: TrackedList
        for name, mapping in self.dicts:
            tracked_dict = values[name] = TrackedDict(mapping)
            tracked_dict.written = {}
            tracked_dict.origin = mapping
        for name, items in self.lists:
            tracked_list = values[name] = TrackedList(items)
            tracked_list.low = len(items)
            tracked_list.origin = items
