"""Value equality for "did this branch change it?": :func:`same`.

Python's ``==`` is not enough to tell whether a branch changed a value: it raises or returns an
array for numpy arrays and pandas objects, compares by identity for objects without ``__eq__``
(so a branch's deep copy always looks changed), and calls ``True`` and ``1`` equal. :func:`same`
answers for all of these, never raises, and costs one C-level ``==`` for plain data.
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime, time
from decimal import Decimal
from itertools import compress, repeat
from math import copysign
from operator import is_
from typing import Any

from pydantic import BaseModel

from flowlab.core.context.cow_containers import CowDict, CowList
from flowlab.core.context.tracking import TrackedDict, TrackedList

__all__ = ["plain_type", "repeat_key", "same", "signs_agree"]

_SCALARS: frozenset[type] = frozenset({int, float, str, bool, bytes, complex, type(None)})
# tracked and copy-on-write containers are still a dict / list: one kind with the plain ones.
# Containers are read through the base classes' methods (their storage), so that comparing a
# copy-on-write container never adopts its items (flowlab.core.context.cow).
_KIND: dict[type, type] = {TrackedDict: dict, TrackedList: list, CowDict: dict, CowList: list}
_items = dict.items
_get = dict.__getitem__
_MAX_DEPTH = 200


def plain_type(value: Any) -> type:
    """``value``'s type, a branch's tracked or copy-on-write container as the ``dict`` / ``list``
    it is (a branch may store one anywhere: ``ctx.d["k"] = ctx.tags``).

    Examples
    --------
    >>> from flowlab.core.context.tracking import track
    >>> plain_type(track([1])), plain_type(track({})), plain_type(1)
    (<class 'list'>, <class 'dict'>, <class 'int'>)
    """
    kind = type(value)
    return _KIND.get(kind, kind)


def same(a: Any, b: Any) -> bool:
    """Whether ``a`` and ``b`` hold the same value: the question "did this branch change it?".

    Type-aware (``True`` and ``1``, ``1`` and ``1.0`` differ), never raises, and answers for
    values whose ``==`` does not give a plain bool:

    * a ``Decimal`` by its digits and exponent (``5`` and ``5.00`` differ), a ``datetime`` /
      ``time`` by its value *and* its time zone (one instant shown in two zones differs), a
      dict subclass by its keys and values too (a ``Counter`` holding a zero count differs
      from one without the key), an ``OrderedDict`` by its key order too: ``==`` calls these
      equal (or, the ``OrderedDict``, only its own ``==`` tells), yet a branch that wrote one
      changed what the context prints (a plain dict's key order is not part of its value);

    * numpy arrays by ``numpy.array_equal`` (and dtype), pandas objects by ``.equals`` — only
      when those modules are already imported (they never are by flowlab);
    * dicts, lists and tuples by ``==`` when it says equal (C speed for plain data), else item
      by item with these same rules (so a dict holding arrays compares its arrays as arrays);
      inside a container that ``==`` calls equal, ``True`` and ``1`` are not told apart;
    * an object whose ``==`` raises, or is the default identity test, by its attributes
      (``__dict__`` / ``__slots__``), as a deep copy of it should be equal to it;
    * NaN equals NaN (an untouched float field is not a change), while ``0.0`` and ``-0.0``
      differ (``==`` calls them equal, yet they print, divide and round differently), also
      inside containers and in a complex number's parts.

    Values that hold themselves compare as graphs (a pair met again further down is taken as
    equal, so a deep copy of a cyclic value equals it). Anything still undecidable, or nested
    deeper than 200 levels, counts as changed.

    Examples
    --------
    >>> same({"a": [1, 2]}, {"a": [1, 2]}), same(True, 1), same(float("nan"), float("nan"))
    (True, False, True)
    """
    if a is b:
        return True
    ta, tb = type(a), type(b)
    if ta is tb and ta in _SCALARS:
        if a == b:
            return ta not in _SIGNED or _same_sign(a, b)
        return ta is float and a != a and b != b
    return _same(a, b, 0, set())


def _same(a: Any, b: Any, depth: int, seen: set[tuple[int, int]]) -> bool:
    if a is b:
        return True
    ta, tb = type(a), type(b)
    if _KIND.get(ta, ta) is not _KIND.get(tb, tb):
        return False
    if ta in _SCALARS:
        if a == b:
            return ta not in _SIGNED or _same_sign(a, b)
        return ta is float and a != a and b != b
    if depth > _MAX_DEPTH:
        return False
    pair = (id(a), id(b))
    if pair in seen:  # compared further up: a value that holds itself (equal unless shown not)
        return True
    seen.add(pair)
    exact = _EXACT.get(ta)
    if exact is not None:  # == calls other values equal (5 == 5.00; one instant in two zones)
        return exact(a, b)
    if isinstance(a, (dict, list, tuple)):
        try:  # plain data (the common case): one C-level comparison, then the items' types
            # (a subclass's == may be looser than its items: Counter ignores zero counts)
            if a == b and (ta in _PLAIN or _base_equal(a, b)):
                return _same_types(a, b, depth, seen)
        except Exception:  # an item's == raised: compared item by item below
            pass
    if isinstance(a, dict):
        if len(a) != len(b) or (isinstance(a, OrderedDict) and list(a) != list(b)):
            return False  # (an OrderedDict's key order is part of its value, as its == says)
        try:
            return all(k in b and _same(v, _get(b, k), depth + 1, seen) for k, v in _items(a))
        except Exception:
            return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(
            _same(x, y, depth + 1, seen) for x, y in zip(_seq(a), _seq(b), strict=True)
        )
    if isinstance(a, BaseModel):  # field by field: pydantic's == calls 1 and True equal
        return (
            _same(a.__dict__, b.__dict__, depth + 1, seen)
            and _same(a.__pydantic_extra__, b.__pydantic_extra__, depth + 1, seen)
            and _same(a.__pydantic_private__, b.__pydantic_private__, depth + 1, seen)
        )
    special = _special_equal(a, b)
    if special is not None:
        return special
    try:
        result = a == b
    except Exception:
        result = NotImplemented
    if type(result) is bool and (result or not _identity_eq(ta)):
        return result
    if type(result) is not bool:
        try:
            return bool(result)
        except Exception:
            pass
    return _same_attributes(a, b, depth, seen)


def _same_decimal(a: Decimal, b: Decimal) -> bool:
    """Equal digits, exponent and sign: ``Decimal("5")`` and ``Decimal("5.00")`` differ."""
    return a.as_tuple() == b.as_tuple()


def _same_clock(a: datetime | time, b: datetime | time) -> bool:
    """The same instant (or time of day) in the same time zone, with the same fold."""
    return a == b and a.tzinfo == b.tzinfo and a.fold == b.fold


def repeat_key(value: Any) -> Any:
    """A hashable stand-in for a hashable ``value``: two values have equal keys when
    :func:`same` calls them the same (``True`` and ``1``, ``1`` and ``1.0``, ``Decimal("1")``
    and ``Decimal("1.00")`` do not), so a set of keys finds repeats as the merge sees them.

    Examples
    --------
    >>> len({repeat_key(v) for v in (1, True, 1.0, "1")}), repeat_key((1,)) == repeat_key((1,))
    (4, True)
    """
    kind = type(value)
    if kind is tuple or kind is frozenset:
        return kind, kind(map(repeat_key, value))
    if kind is float:  # 0.0 and -0.0 differ, NaN is NaN (as same() sees them)
        return (kind, value, copysign(1.0, value)) if value == value else (kind, "nan")
    if kind is complex:
        return kind, repeat_key(value.real), repeat_key(value.imag)
    if kind is Decimal:
        return kind, value.as_tuple()
    if kind is datetime or kind is time:
        return kind, value, value.tzinfo, value.fold
    return kind, value


# Types whose == calls values equal that are not the same value (they print, serialise and
# compute differently): compared exactly.
_EXACT: dict[type, Callable[[Any, Any], bool]] = {
    Decimal: _same_decimal,
    datetime: _same_clock,
    time: _same_clock,
}


_PLAIN: frozenset[type] = frozenset({dict, list, tuple, *_KIND})


def _base_equal(a: Any, b: Any) -> bool:
    """A container subclass's items compared as its base class compares them."""
    base = dict if isinstance(a, dict) else list if isinstance(a, list) else tuple
    return base.__eq__(a, b) is True


def _same_types(a: Any, b: Any, depth: int, seen: set[tuple[int, int]]) -> bool:
    """For containers ``==`` calls equal: whether their items also have the same types
    (``[True] == [1]``), checked per level at C speed, recursing only into non-scalar items."""
    if isinstance(a, dict):
        left, right = list(dict.values(a)), [_get(b, k) for k in dict.keys(a)]
    else:
        left, right = list(_seq(a)), list(_seq(b))
    kinds = list(map(type, left))
    if kinds != list(map(type, right)):
        return all(_same(x, y, depth + 1, seen) for x, y in zip(left, right, strict=True))
    if not signs_agree(left, right, kinds):
        return False
    scalars = _SCALARS
    return all(
        _same(x, y, depth + 1, seen)
        for x, y, kind in zip(left, right, kinds, strict=True)
        if kind not in scalars
    )


def signs_agree(left: list[Any], right: list[Any], kinds: list[type]) -> bool:
    """For items that ``==`` calls equal, one by one, and of equal ``kinds``: whether their
    floats (and complex numbers' parts) also have the same signs (``0.0 == -0.0``), at C speed.

    Examples
    --------
    >>> signs_agree([1, 0.0], [1, -0.0], [int, float]), signs_agree([0.0], [0.0], [float])
    (False, True)
    """
    if float in kinds:
        pick = list(map(is_, kinds, repeat(float)))
        ones = repeat(1.0)
        if list(map(copysign, ones, compress(left, pick))) != list(
            map(copysign, ones, compress(right, pick))
        ):
            return False
    if complex in kinds:
        pick = list(map(is_, kinds, repeat(complex)))
        return all(map(_same_sign, compress(left, pick), compress(right, pick)))
    return True


def _same_sign(a: float | complex, b: float | complex) -> bool:
    """Two equal floats (or complex numbers) with the same sign bits, NaN aside."""
    if isinstance(a, complex) or isinstance(b, complex):
        a, b = complex(a), complex(b)
        return _same_sign(a.real, b.real) and _same_sign(a.imag, b.imag)
    return a != a or copysign(1.0, a) == copysign(1.0, b)


_SIGNED: frozenset[type] = frozenset({float, complex})


def _seq(value: Any) -> Any:
    """A list's items from its storage (a tuple as it is)."""
    return list.__iter__(value) if isinstance(value, list) else value


def _identity_eq(kind: type) -> bool:
    """Whether ``kind`` compares by identity only (the default ``object.__eq__``)."""
    return kind.__eq__ is object.__eq__  # type: ignore[comparison-overlap]


def _special_equal(a: Any, b: Any) -> bool | None:
    """numpy arrays and pandas objects, by their own value equality; None for other values."""
    np = sys.modules.get("numpy")
    if np is not None and isinstance(a, np.ndarray):
        try:
            return bool(a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
        except Exception:
            return bool(np.array_equal(a, b))
    pd = sys.modules.get("pandas")
    if pd is not None and isinstance(a, (pd.DataFrame, pd.Series, pd.Index)):
        try:
            return bool(a.equals(b))
        except Exception:
            return False
    return None


def _same_attributes(a: Any, b: Any, depth: int, seen: set[tuple[int, int]]) -> bool:
    """Objects without value equality: the same attributes (a deep copy equals its original)."""
    state_a, state_b = _state(a), _state(b)
    if state_a is None or state_b is None:
        return False
    return _same(state_a, state_b, depth + 1, seen)


def _state(value: Any) -> dict[str, Any] | None:
    state: dict[str, Any] = {}
    found = False
    if hasattr(value, "__dict__"):
        state.update(vars(value))
        found = True
    for cls in type(value).__mro__:
        for name in getattr(cls, "__slots__", ()):
            if name not in ("__dict__", "__weakref__") and hasattr(value, name):
                state[name] = getattr(value, name)
                found = True
    return state if found else None
