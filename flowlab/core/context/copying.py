"""The one copy policy: how flowlab copies the data a context holds.

Every copy flowlab makes of context data goes through :func:`copy_value`: a branch's eager
context (:func:`~flowlab.core.context.isolation.isolate` and its per-step plan,
:func:`~flowlab.core.context.isolator.isolator`), a run's working copy of the caller's context,
the base a recorded merge keeps for :meth:`~flowlab.results.record.RunResult.remerge`, and the
values the frames show (:func:`snapshot`).

What contexts hold is mostly *plain data*: numbers and strings, and dicts, lists, tuples, sets
and pydantic models of them. :func:`copy_value` walks plain data itself, one container at a time
(a list of flat dicts costs one ``dict.copy()`` per item, ~9x cheaper than ``copy.deepcopy``),
and hands anything else to an ``other`` function: ``copy.deepcopy`` for a deep copy (so an
object's own ``__deepcopy__`` / ``__reduce__`` runs, exactly as in a deep copy), or "keep it as
it is" for a snapshot (recording a run must not execute code its values carry).

The result is that of ``copy.deepcopy``: the same types (a ``dict`` subclass, a model with its
own ``__deepcopy__``, any other object goes to ``other``), the same values, and one memo
(``id(original) -> copy``, ``copy.deepcopy``'s own) for the whole walk, so an object met twice
(two fields holding one list, a list holding itself) is copied once and stays shared in the
copy. Immutable values (numbers, strings, ``None``, dates, tuples and frozensets of them) are
the originals' very objects, as a deep copy shares them. One difference from a deep copy:
dict keys are shared, never copied (they are hashable, so their hashed state is immutable; a
copy of a key would be equal and hash the same), as flowlab's copies have always done.
"""

from __future__ import annotations

import copy
import datetime
import decimal
import sys
import types
import uuid
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

__all__ = ["ATOMIC", "Other", "copy_value", "deep_copy", "keep", "snapshot"]

Other = Callable[[Any, dict[int, Any]], Any]
"""What :func:`copy_value` does with a value that is not plain data: ``(value, memo) -> copy``."""

ATOMIC: frozenset[type] = frozenset(
    {
        int,
        float,
        str,
        bool,
        type(None),
        bytes,
        complex,
        range,
        type,
        types.FunctionType,
        types.BuiltinFunctionType,
        type(Ellipsis),
        datetime.date,
        datetime.datetime,
        datetime.time,
        datetime.timedelta,
        decimal.Decimal,
        uuid.UUID,
    }
)
"""Types whose values are immutable: a copy shares them (``copy.deepcopy`` does, or makes an
equal object that no one can tell apart)."""

_MISS: Any = object()
_OPEN: Any = object()  # a snapshot's memo entry for a container whose copy is being made
_getrefcount = sys.getrefcount


def _held_once() -> int:
    """``sys.getrefcount`` of a list's item that the list alone holds, read in ``_list``'s loop."""
    probe: list[dict[str, int]] = [{}]
    for item in probe:
        return _getrefcount(item)
    raise AssertionError  # pragma: no cover


_HELD_ONCE = _held_once()
"""An item with this count is referenced by its list only: no other place can meet it, so its
copy needs no memo entry (the count is measured, not assumed, for this interpreter)."""
_setattr = object.__setattr__
_MODEL_DEEPCOPY = BaseModel.__deepcopy__


def deep_copy(value: Any, memo: dict[int, Any]) -> Any:
    """``copy.deepcopy``: the ``other`` of a deep copy."""
    return copy.deepcopy(value, memo)


def keep(value: Any, memo: dict[int, Any]) -> Any:
    """The ``other`` of a snapshot: a dict or list subclass becomes a plain one (its items
    snapshotted), a model is copied field by field, anything else is kept as it is."""
    if isinstance(value, dict):
        return _dict(value, memo, keep)
    if isinstance(value, list):
        return _list(value, memo, keep)
    if isinstance(value, BaseModel):
        return _model(value, memo, keep)
    return value


def copy_value(value: Any, memo: dict[int, Any] | None = None, other: Other = deep_copy) -> Any:
    """A copy of ``value``: plain data walked here, anything else given to ``other``.

    Parameters
    ----------
    value : object
        What to copy.
    memo : dict, optional
        ``id(original) -> copy`` for the whole copy (pass one dict to copy several values that
        share objects); ``copy.deepcopy``'s memo, so the two can be mixed.
    other : callable, default :func:`deep_copy`
        ``(value, memo) -> copy`` for what is not plain data (see the module docstring).

    Returns
    -------
    object
        With :func:`deep_copy`, what ``copy.deepcopy(value, memo)`` returns.

    Examples
    --------
    >>> history = [{"role": "user", "content": "hi"}]
    >>> state = {"history": history, "last": history}
    >>> copied = copy_value(state)
    >>> copied == state, copied["history"] is history, copied["last"] is copied["history"]
    (True, False, True)
    """
    kind = type(value)
    if kind in ATOMIC:
        return value
    if memo is None:
        memo = {}
    found = memo.get(id(value), _MISS)
    if found is not _MISS:
        if found is _OPEN:
            raise RecursionError(f"a {kind.__name__} that contains itself cannot be snapshotted")
        return found
    if kind is dict:
        return _dict(value, memo, other)
    if kind is list:
        return _list(value, memo, other)
    if kind is tuple:
        return _tuple(value, memo, other)
    if kind is set or kind is frozenset:
        new = kind(copy_value(item, memo, other) for item in value)
        memo[id(value)] = new
        return new
    if isinstance(value, BaseModel) and kind.__deepcopy__ is _MODEL_DEEPCOPY:
        return _model(value, memo, other)
    return other(value, memo)


def snapshot(value: Any, memo: dict[int, Any] | None = None) -> Any:
    """``value`` as it is now: plain data copied (dict and list subclasses as plain ones),
    anything else kept as it is, never deep-copied (see the module docstring).

    A container that holds itself raises ``RecursionError``: a recorded value is shown as a
    tree, and a deep copy's answer (a copy that holds itself) is not one.

    Examples
    --------
    >>> lock = object()
    >>> row = {"tags": ["a"], "lock": lock}
    >>> shown = snapshot(row)
    >>> row["tags"].append("b")
    >>> shown["tags"], shown["lock"] is lock
    (['a'], True)
    """
    return copy_value(value, memo, keep)


def _dict(value: dict[Any, Any], memo: dict[int, Any], other: Other) -> dict[Any, Any]:
    if ATOMIC.issuperset(map(type, value.values())):
        new = dict(value)  # flat: one C-level copy (keys are shared, see the module docstring)
        memo[id(value)] = new
        return new
    new = {}
    memo[id(value)] = _OPEN if other is keep else new  # before the items: it may hold itself
    for key, item in value.items():
        new[key] = item if type(item) in ATOMIC else copy_value(item, memo, other)
    memo[id(value)] = new
    return new


def _list(value: list[Any], memo: dict[int, Any], other: Other) -> list[Any]:
    if ATOMIC.issuperset(map(type, value)):
        new = list(value)
        memo[id(value)] = new
        return new
    new = []
    memo[id(value)] = _OPEN if other is keep else new  # before the items: it may hold itself
    append = new.append
    atomic = ATOMIC
    for item in value:
        kind = type(item)
        if kind in atomic:
            append(item)
        elif kind is dict:  # a message, a record: flat dicts get a copy without a call
            if _getrefcount(item) == _HELD_ONCE:  # only this list holds it: no memo needed
                if atomic.issuperset(map(type, item.values())):
                    append(item.copy())
                    continue
            else:
                found = memo.get(id(item), _MISS)
                if found is not _MISS and found is not _OPEN:  # met before (a snapshot's after)
                    append(found)
                    continue
                if found is _MISS and atomic.issuperset(map(type, item.values())):
                    found = memo[id(item)] = item.copy()
                    append(found)
                    continue
            append(copy_value(item, memo, other))
        else:
            append(copy_value(item, memo, other))
    memo[id(value)] = new
    return new


def _tuple(value: tuple[Any, ...], memo: dict[int, Any], other: Other) -> tuple[Any, ...]:
    items = [copy_value(item, memo, other) for item in value]
    found = memo.get(id(value), _MISS)  # the tuple may have been reached through its items
    if found is not _MISS:
        return found  # type: ignore[no-any-return]
    same = all(new is old for new, old in zip(items, value, strict=True))
    new = value if same else tuple(items)
    memo[id(value)] = new
    return new


def _model(value: BaseModel, memo: dict[int, Any], other: Other) -> BaseModel:
    """A model as pydantic's ``__deepcopy__`` copies it: fields, extras, private attributes."""
    cls = type(value)
    new = cls.__new__(cls)
    memo[id(value)] = _OPEN if other is keep else new  # before the fields: it may hold itself
    values = value.__dict__
    _setattr(
        new,
        "__dict__",
        {k: v if type(v) in ATOMIC else copy_value(v, memo, other) for k, v in values.items()},
    )
    extra = value.__pydantic_extra__
    _setattr(new, "__pydantic_extra__", None if extra is None else _dict(extra, memo, other))
    _setattr(new, "__pydantic_fields_set__", set(value.__pydantic_fields_set__))
    private = getattr(value, "__pydantic_private__", None)
    if private is not None:  # built here, not through the memo: the filtered dict is temporary
        private = {
            k: v if type(v) in ATOMIC else copy_value(v, memo, other)
            for k, v in private.items()
            if v is not PydanticUndefined
        }
    _setattr(new, "__pydantic_private__", private)
    memo[id(value)] = new
    return new
