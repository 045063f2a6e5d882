"""The containers of copy-on-write branch contexts: :class:`CowList` and :class:`CowDict`.

A real ``list`` / ``dict`` subclass holding a shallow copy of a base container: its items stay
the base's objects until Python code reads one, which is then adopted (replaced by the branch's
own object for it, see :meth:`flowlab.core.context.cow.Branch.adopt`); every write is tracked. Why this is
sound, and what it does not cover, is argued in :mod:`flowlab.core.context.cow`.
"""

from __future__ import annotations

from collections.abc import ItemsView, Iterable, Iterator, ValuesView
from typing import TYPE_CHECKING, Any, SupportsIndex

from flowlab.core.context.tracking import lowest_touched

if TYPE_CHECKING:
    from flowlab.core.context.cow import Branch

__all__ = ["IMMUTABLE", "CowDict", "CowList"]

IMMUTABLE: frozenset[type] = frozenset({int, float, str, bool, type(None), bytes, complex})
"""Values shared as they are (a deep copy shares them too)."""
_MISS: Any = object()


class CowList(list[Any]):
    """A branch's ``list``: shares the base list's items until they are read, tracks writes.

    Attributes
    ----------
    origin : list
        The base list this one started as.
    low : int
        Every position below ``low`` still holds the base's item (or the branch's unchanged
        object for it), as :attr:`flowlab.core.context.tracking.TrackedList.low`.
    dirty : bool
        Whether anything in it, at any depth, may have been written.

    Examples
    --------
    >>> from flowlab.core.context.cow import Branch
    >>> base = [{"n": 1}, {"n": 2}]
    >>> items = Branch().adopt(base, None, None)
    >>> items[1]["n"] = 3
    >>> base, items, items.low
    ([{'n': 1}, {'n': 2}], [{'n': 1}, {'n': 3}], 1)
    """

    __slots__ = ("branch", "dirty", "low", "origin", "parents")

    branch: Branch
    dirty: bool
    low: int
    origin: list[Any]
    parents: list[tuple[Any, Any]] | None

    def start(self, branch: Branch, origin: list[Any]) -> None:
        self.branch, self.origin, self.low, self.parents, self.dirty = (
            branch,
            origin,
            len(origin),
            None,
            False,
        )

    # -- tracking -------------------------------------------------------------------------
    def touch(self) -> None:
        """Note that something in this list changed (and tell the containers holding it)."""
        if not self.dirty:
            self.dirty = True
            if self.parents:
                for parent, key in self.parents:
                    parent.mark(key)

    def mark(self, index: int) -> None:
        """Something below position ``index`` may have changed."""
        if index < self.low:
            self.low = index
        self.touch()

    def _at(self, index: SupportsIndex | slice) -> None:
        first = lowest_touched(index, len(self))
        if first < self.low:
            self.low = first
        self.touch()

    # -- reads: hand out the branch's own objects -------------------------------------------
    def _get(self, index: int) -> Any:
        raw = list.__getitem__(self, index)
        if type(raw) in IMMUTABLE:
            return raw
        got = self.branch.adopt(raw, self, index)
        if got is not raw:
            list.__setitem__(self, index, got)
        return got

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self._get(i) for i in range(*index.indices(len(self)))]
        raw = list.__getitem__(self, index)
        if type(raw) in IMMUTABLE:
            return raw
        i = index.__index__()
        return self._get(i + len(self) if i < 0 else i)

    def __iter__(self) -> Iterator[Any]:
        i = 0
        get = list.__getitem__
        while i < len(self):  # by position, re-reading the length: as list's own iterator
            raw = get(self, i)
            yield raw if type(raw) in IMMUTABLE else self._get(i)
            i += 1

    def __reversed__(self) -> Iterator[Any]:
        i = len(self) - 1
        while 0 <= i < len(self):
            yield self._get(i)
            i -= 1

    def copy(self) -> list[Any]:
        return list(self)

    def __add__(self, other: Any) -> Any:
        if not isinstance(other, list):
            return NotImplemented
        return list(self) + list(other)

    def __radd__(self, other: Any) -> Any:
        if not isinstance(other, list):
            return NotImplemented
        return list(other) + list(self)

    def __mul__(self, times: SupportsIndex) -> list[Any]:
        return list(self) * times

    __rmul__ = __mul__

    def __reduce__(self) -> tuple[type[list[Any]], tuple[list[Any]]]:
        return list, (list(self),)

    # -- writes ---------------------------------------------------------------------------
    def __setitem__(self, index: Any, value: Any) -> None:
        own = self.branch.own
        if isinstance(index, slice):
            value = list(value)
            for item in value:
                own(item)
        else:
            own(value)
        self._at(index)
        list.__setitem__(self, index, value)

    def __delitem__(self, index: Any) -> None:
        list.__getitem__(self, index)  # an IndexError before any mark
        self._at(index)
        list.__delitem__(self, index)

    def append(self, value: Any) -> None:
        self.branch.own(value)
        list.append(self, value)
        if not self.dirty:
            self.touch()

    def extend(self, values: Iterable[Any]) -> None:
        items = list(values)
        own = self.branch.own
        for item in items:
            own(item)
        list.extend(self, items)
        if not self.dirty:
            self.touch()

    def __iadd__(self, values: Iterable[Any]) -> CowList:  # type: ignore[misc]
        self.extend(values)
        return self

    def __imul__(self, times: SupportsIndex) -> CowList:
        self._at(len(self) if times.__index__() >= 1 else 0)
        for i in range(len(self)):  # no raw item may be stored twice (module docstring, 1.)
            self._get(i)
        list.__imul__(self, times)
        return self

    def insert(self, index: SupportsIndex, value: Any) -> None:
        self.branch.own(value)
        self._at(index)
        list.insert(self, index, value)

    def pop(self, index: SupportsIndex = -1) -> Any:
        if not self:
            return list.pop(self, index)  # the list's own error
        value = self[index]
        self._at(index)
        list.pop(self, index)
        return value

    def remove(self, value: Any) -> None:
        self._at(list.index(self, value))
        list.remove(self, value)

    def clear(self) -> None:
        self.low = 0
        list.clear(self)
        self.touch()

    def sort(self, *, key: Any = None, reverse: bool = False) -> None:
        for i in range(len(self)):  # the key and the items' comparisons see the branch's objects
            self._get(i)
        self.low = 0
        list.sort(self, key=key, reverse=reverse)
        self.touch()

    def reverse(self) -> None:
        self.low = 0
        list.reverse(self)
        self.touch()


class CowDict(dict[Any, Any]):
    """A branch's ``dict``: shares the base dict's values until they are read, tracks writes.

    Attributes
    ----------
    origin : dict
        The base dict this one started as.
    written : dict or None
        The keys set, deleted or written below, in the order they last entered the dict (as
        :attr:`flowlab.core.context.tracking.TrackedDict.written`); ``None`` after ``clear()``.
    dirty : bool
        Whether anything in it, at any depth, may have been written.

    Examples
    --------
    >>> from flowlab.core.context.cow import Branch
    >>> base = {"a": [1], "b": [2]}
    >>> d = Branch().adopt(base, None, None)
    >>> d["b"].append(3)
    >>> base, d, list(d.written)
    ({'a': [1], 'b': [2]}, {'a': [1], 'b': [2, 3]}, ['b'])
    """

    __slots__ = ("branch", "dirty", "origin", "parents", "written")

    branch: Branch
    dirty: bool
    origin: dict[Any, Any]
    parents: list[tuple[Any, Any]] | None
    written: dict[Any, None] | None

    def start(self, branch: Branch, origin: dict[Any, Any]) -> None:
        self.branch, self.origin, self.written, self.parents, self.dirty = (
            branch,
            origin,
            {},
            None,
            False,
        )

    # -- tracking -------------------------------------------------------------------------
    def touch(self) -> None:
        """Note that something in this dict changed (and tell the containers holding it)."""
        if not self.dirty:
            self.dirty = True
            if self.parents:
                for parent, key in self.parents:
                    parent.mark(key)

    def mark(self, key: Any) -> None:
        """Something below ``key`` may have changed."""
        written = self.written
        if written is not None and key not in written:
            written[key] = None
        self.touch()

    def _write(self, key: Any) -> None:
        written = self.written
        if written is not None:
            if not dict.__contains__(self, key):  # a (re)insertion goes to the end
                written.pop(key, None)
            written[key] = None
        self.touch()

    # -- reads ----------------------------------------------------------------------------
    def _get(self, key: Any, raw: Any) -> Any:
        if type(raw) in IMMUTABLE:
            return raw
        got = self.branch.adopt(raw, self, key)
        if got is not raw:
            dict.__setitem__(self, key, got)
        return got

    def __getitem__(self, key: Any) -> Any:
        return self._get(key, dict.__getitem__(self, key))

    def get(self, key: Any, default: Any = None) -> Any:
        raw = dict.get(self, key, _MISS)
        return default if raw is _MISS else self._get(key, raw)

    def __iter__(self) -> Iterator[Any]:
        # Overridden, so that dict(d), {**d}, d2.update(d) and f(**d) read values through
        # __getitem__ instead of the storage.
        return dict.__iter__(self)

    def values(self) -> ValuesView[Any]:  # type: ignore[override]
        return ValuesView(self)

    def items(self) -> ItemsView[Any, Any]:  # type: ignore[override]
        return ItemsView(self)

    def copy(self) -> dict[Any, Any]:
        return dict(self)

    def __or__(self, other: Any) -> Any:
        if not isinstance(other, dict):
            return NotImplemented
        new = dict(self)
        new.update(other)
        return new

    def __ror__(self, other: Any) -> Any:
        if not isinstance(other, dict):
            return NotImplemented
        new = dict(other)
        new.update(self)
        return new

    def __reduce__(self) -> tuple[type[dict[Any, Any]], tuple[dict[Any, Any]]]:
        return dict, (dict(self),)

    @classmethod
    def fromkeys(cls, iterable: Iterable[Any], value: Any = None) -> dict[Any, Any]:
        return dict.fromkeys(iterable, value)

    # -- writes ---------------------------------------------------------------------------
    def __setitem__(self, key: Any, value: Any) -> None:
        self.branch.own(value)
        self._write(key)
        dict.__setitem__(self, key, value)

    def __delitem__(self, key: Any) -> None:
        dict.__delitem__(self, key)
        self._write(key)

    def pop(self, key: Any, *default: Any) -> Any:
        if not dict.__contains__(self, key):
            return dict.pop(self, key, *default)
        value = self[key]
        dict.pop(self, key)
        self._write(key)
        return value

    def popitem(self) -> tuple[Any, Any]:
        if not self:
            return dict.popitem(self)  # the dict's own error
        key = next(reversed(dict.keys(self)))
        return key, self.pop(key)

    def setdefault(self, key: Any, default: Any = None) -> Any:
        if dict.__contains__(self, key):
            return self[key]
        self[key] = default
        return default

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def __ior__(self, other: Any) -> CowDict:
        self.update(other)
        return self

    def clear(self) -> None:
        self.written = None
        dict.clear(self)
        self.touch()
