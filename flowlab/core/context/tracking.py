"""Write tracking: dicts and lists that remember where a branch wrote, so a diff can skip the rest.

A parallel step copies the context once per branch and, when the branches end, asks what each one
changed. Comparing a 10,000-key dict against its base to find the one key a branch wrote costs a
pass over all 10,000 keys, per branch. Instead, :func:`flowlab.core.context.isolation.isolate` (with
``track=True``, as the engine calls it) hands a branch a :class:`TrackedDict` or
:class:`TrackedList` for every dict or list field of immutable scalars: a real ``dict`` / ``list``
subclass whose mutating methods also note *where* they wrote. The diff then looks only there.

Python code changes a container whose items are immutable scalars through its methods, and
every mutating method of ``dict`` and ``list`` is overridden here (``d[k] = v``, ``d[k] += 1``,
``operator.setitem``, ``update``, ``|=``, ``pop``, ``append``, slices ...). What the tracking
cannot follow either marks the container as "changed anywhere" (``clear``, ``sort``,
``reverse``) or leaves a value the diff does not recognise as the branch's copy of the base (a
field replaced or swapped), and the diff then compares the whole container: the result is the
same, only slower.

C code can write to the storage without the methods: ``heapq``'s functions on a list, an
explicit base-class call (``list.append(xs, x)``, ``dict.__setitem__(d, k, v)``). So the notes
are checked before the diff trusts them (:func:`unwritten_below`, :func:`notes_explain_size`):
a list's items below its lowest noted write are compared with the base's at C speed (one
``list.__eq__``: ~4 µs per 10,000 items), and a dict's size must be what its noted writes
explain. A check that fails sends the container to the whole diff. What no check short of a
full comparison can see — a dict value *replaced* by a base-class call (``dict.__setitem__`` on
an existing key), or a list item replaced by an *equal* item of another type — is not covered.

Copies are plain again: ``copy.copy``, ``copy.deepcopy``, pickling, ``.copy()``, ``a | b`` and
slices all give a ``dict`` / ``list``, so a tracked container does not travel further than the
branch it was made for (the merge validates its result back into plain containers too).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, SupportsIndex

__all__ = [
    "TrackedDict",
    "TrackedList",
    "lowest_touched",
    "notes_explain_size",
    "track",
    "untrack",
    "unwritten_below",
]


class TrackedDict(dict[Any, Any]):
    """A ``dict`` that records the keys written since it was copied from ``origin``.

    Attributes
    ----------
    origin : dict
        The base dict this one was copied from (compared by identity in the diff).
    written : dict or None
        The keys set, deleted or re-inserted, in the order they last entered the dict (a dict used
        as an ordered set); ``None`` once something untrackable happened (``clear``).

    Examples
    --------
    >>> base = {"a": 1, "b": 2}
    >>> d = track(base)
    >>> d["b"] += 1; d["c"] = 3
    >>> list(d.written), d == {"a": 1, "b": 3, "c": 3}
    (['b', 'c'], True)
    """

    __slots__ = ("origin", "written")

    origin: dict[Any, Any]
    written: dict[Any, None] | None

    def _mark(self, key: Any) -> None:
        written = self.written
        if written is not None:
            written[key] = None

    def __setitem__(self, key: Any, value: Any) -> None:
        written = self.written
        if written is not None:
            if key not in self:  # a (re)insertion goes to the end, as in the dict itself
                written.pop(key, None)
            written[key] = None
        dict.__setitem__(self, key, value)

    def __delitem__(self, key: Any) -> None:
        dict.__delitem__(self, key)
        self._mark(key)

    def pop(self, key: Any, *default: Any) -> Any:
        if key in self:
            self._mark(key)
        return dict.pop(self, key, *default)

    def popitem(self) -> tuple[Any, Any]:
        item = dict.popitem(self)
        self._mark(item[0])
        return item

    def setdefault(self, key: Any, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return dict.__getitem__(self, key)

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def __ior__(self, other: Any) -> TrackedDict:  # type: ignore[misc]
        self.update(other)
        return self

    def clear(self) -> None:
        self.written = None
        dict.clear(self)

    @classmethod
    def fromkeys(cls, iterable: Iterable[Any], value: Any = None) -> dict[Any, Any]:
        return dict.fromkeys(iterable, value)

    def __reduce__(self) -> tuple[type[dict[Any, Any]], tuple[dict[Any, Any]]]:
        return dict, (dict(self),)


class TrackedList(list[Any]):
    """A ``list`` that records the lowest index written since it was copied from ``origin``.

    Attributes
    ----------
    origin : list
        The base list this one was copied from (compared by identity in the diff).
    low : int
        Every position below ``low`` still holds the base's item; appending keeps ``low`` at the
        old length, so a branch that only appends is diffed without reading the base.

    Examples
    --------
    >>> items = track(["w"])
    >>> items.append("x")
    >>> items.low, items
    (1, ['w', 'x'])
    """

    __slots__ = ("low", "origin")

    origin: list[Any]
    low: int

    def _at(self, index: SupportsIndex | slice) -> None:
        first = lowest_touched(index, len(self))
        if first < self.low:
            self.low = first

    def __setitem__(self, index: Any, value: Any) -> None:
        self._at(index)
        list.__setitem__(self, index, value)

    def __delitem__(self, index: Any) -> None:
        self._at(index)
        list.__delitem__(self, index)

    # append, extend and += are list's own (C speed): they write at the end, never below
    # ``low``, because every method that shrinks the list lowers ``low`` to where it cut.

    def __imul__(self, times: SupportsIndex) -> TrackedList:
        self._at(len(self) if times.__index__() >= 1 else 0)
        list.__imul__(self, times)
        return self

    def insert(self, index: SupportsIndex, value: Any) -> None:
        self._at(index)
        list.insert(self, index, value)

    def pop(self, index: SupportsIndex = -1) -> Any:
        if self:
            self._at(index)
        return list.pop(self, index)

    def remove(self, value: Any) -> None:
        self._at(list.index(self, value))
        list.remove(self, value)

    def clear(self) -> None:
        self.low = 0
        list.clear(self)

    def sort(self, *args: Any, **kwargs: Any) -> None:
        self.low = 0
        list.sort(self, *args, **kwargs)

    def reverse(self) -> None:
        self.low = 0
        list.reverse(self)

    def __reduce__(self) -> tuple[type[list[Any]], tuple[list[Any]]]:
        return list, (list(self),)


def track(value: Any) -> Any:
    """A tracked copy of a ``dict`` or ``list`` (of any items; the caller decides if it is sound).

    Examples
    --------
    >>> type(track({"a": 1})).__name__, type(track([1])).__name__
    ('TrackedDict', 'TrackedList')
    """
    new: Any
    if isinstance(value, dict):
        new = TrackedDict(value)
        new.written = {}
    else:
        new = TrackedList(value)
        new.low = len(value)
    new.origin = value
    return new


def untrack(value: Any) -> Any:
    """``value`` as a plain ``dict`` / ``list`` if it is tracked, else ``value`` itself."""
    kind = type(value)
    if kind is TrackedDict:
        return dict(value)
    if kind is TrackedList:
        return list(value)
    return value


def lowest_touched(index: SupportsIndex | slice, n: int) -> int:
    """The lowest position of a list of ``n`` items that ``xs[index]`` reads or writes (``n``
    when none: past the end).

    Examples
    --------
    >>> lowest_touched(-1, 5), lowest_touched(slice(1, None), 5), lowest_touched(slice(None, None, -1), 5)
    (4, 1, 0)
    """
    if isinstance(index, slice):
        start, stop, step = index.indices(n)
        first = start if step > 0 else max(stop + 1, 0)
    else:
        first = index.__index__()
        if first < 0:
            first += n
    return min(max(first, 0), n)


def unwritten_below(old: list[Any], new: list[Any], low: int) -> int:
    """How many leading items of ``new`` (a branch's copy of ``old``) a diff may skip.

    ``low`` is the lowest position the copy noted a write at. It is returned when the items
    below it are indeed still ``old``'s (one C-level comparison of the storage, which never
    calls the copy's methods); otherwise something wrote there without the copy's methods
    (``heapq``, ``list.__setitem__(xs, i, x)``) and the diff must read from 0.

    Examples
    --------
    >>> import heapq
    >>> base = [5, 3, 1]
    >>> items = track(base)
    >>> items.append(4)
    >>> unwritten_below(base, items, items.low)
    3
    >>> heapq.heapify(items)  # moves items below the noted write, without the list's methods
    >>> unwritten_below(base, items, items.low)
    0
    """
    k = min(low, len(old), list.__len__(new))
    if k <= 0:
        return 0
    head = new if k == list.__len__(new) else list.__getitem__(new, slice(0, k))
    try:
        return k if list.__eq__(head, old if k == len(old) else old[:k]) is True else 0
    except Exception:  # items whose == is not a bool (arrays): the whole diff decides
        return 0


def notes_explain_size(old: dict[Any, Any], new: dict[Any, Any], written: Iterable[Any]) -> bool:
    """Whether ``new``'s size is the size of ``old`` changed by the keys noted ``written``.

    A key inserted or deleted without the copy's methods (``dict.__setitem__(d, k, v)``) makes
    it false; the diff then compares the whole dict.

    Examples
    --------
    >>> base = {"a": 1}
    >>> d = track(base)
    >>> d["b"] = 2
    >>> notes_explain_size(base, d, d.written)
    True
    >>> dict.__setitem__(d, "c", 3)
    >>> notes_explain_size(base, d, d.written)
    False
    """
    size = len(old)
    has = dict.__contains__
    for key in written:
        size += has(new, key) - (key in old)
    return size == dict.__len__(new)
