"""How the branches' edits of one list combine into the merged list.

A diff describes a list edit as one slice of the base replaced (removals first, then additions in
order). :func:`combine` applies every writer's slice to the base, in merge order;
:func:`dedupe` then drops repeated items for the rules that ask for it (``Union``,
``accumulate``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from flowlab.changes import Change, Item, same

__all__ = ["appended", "combine", "dedupe"]

_Edit = tuple[int, int, list[Any], int]  # (start, end, items added, merge order)


def appended(items: Mapping[int, list[Change]], writers: Sequence[int], n: int) -> list[Any] | None:
    """The items every writer appended to a base list of ``n`` items, in merge order; None
    unless every writer only appended (a diff lists removals first, then additions in order, so
    a first change that adds at ``n`` means a pure append)."""
    out: list[Any] = []
    for i in writers:
        changes = items.get(i)
        if not changes:
            continue
        first = changes[0]
        at = (first.keys or first.path)[-1]
        if first.op != "add" or type(at) is not Item or at.index != n:
            return None
        if len(changes) == 1:  # the common case: one item appended
            out.append(first.after)
        else:
            out.extend([c.after for c in changes])
    return out


def combine(
    items: Mapping[int, list[Change]], writers: Sequence[int], base: list[Any]
) -> list[Any]:
    """Apply each writer's list edit (``items[i]``: its changes to the list's positions) to
    ``base``, writers in merge order.

    Insertions at one point all go in, in merge order; an edit overlapping an earlier one
    replaces it (later writer wins); an identical removal/replacement is applied once.

    Examples
    --------
    Two writers, one drops ``"a"``, the other appends ``"z"``:

    >>> from flowlab.changes import diff_value
    >>> base = ["a", "b"]
    >>> items = {0: [], 1: []}
    >>> diff_value(base, ["b"], ("tags",), items[0])
    >>> diff_value(base, ["a", "b", "z"], ("tags",), items[1])
    >>> combine(items, [0, 1], base)
    ['b', 'z']
    """
    added_only = appended(items, writers, len(base))
    if added_only is not None:  # every writer only appended: the base, then each one's items
        return [*base, *added_only]
    # Pure insertions never overlap each other, so they are kept apart from range edits
    # (removals / replacements): a new insertion is only checked against the ranges. This
    # keeps N branches that each append linear, not quadratic.
    inserts: list[_Edit] = []
    ranges: list[_Edit] = []
    for order, i in enumerate(writers):
        changes = items.get(i)
        if not changes:
            continue
        start = min(c.key_path[-1].index for c in changes)  # type: ignore[attr-defined]
        removed = sum(1 for c in changes if c.op == "remove")
        added = [c.after for c in changes if c.op == "add"]
        edit = (start, start + removed, added, order)
        if removed and any(e[:2] == edit[:2] and same(e[2], added) for e in ranges):
            continue
        if ranges:
            ranges = [e for e in ranges if not _overlap(e[:2], edit[:2])]
        if removed:
            if inserts:
                inserts = [e for e in inserts if not _overlap(e[:2], edit[:2])]
            ranges.append(edit)
        else:
            inserts.append(edit)
    edits = inserts + ranges
    edits.sort(key=lambda e: (e[0], e[0] != e[1], e[3]))
    out: list[Any] = []
    cursor = 0
    for start, end, added, _ in edits:
        out.extend(base[cursor:start])
        out.extend(added)
        cursor = max(cursor, end)
    out.extend(base[cursor:])
    return out


def dedupe(items: list[Any], key: Callable[[Any], Any] | None = None) -> list[Any]:
    """``items`` without repeats, first occurrence kept, compared by ``key(item)`` (the item
    itself when ``key`` is None); unhashable keys are compared by value.

    Examples
    --------
    >>> dedupe(["a", "b", "a", "c", "b"])
    ['a', 'b', 'c']
    >>> dedupe([{"id": 1, "v": "x"}, {"id": 1, "v": "y"}], key=lambda d: d["id"])
    [{'id': 1, 'v': 'x'}]
    >>> dedupe([[1], [2], [1]])
    [[1], [2]]
    """
    seen: set[Any] = set()
    seen_unhashable: list[Any] = []
    out = []
    for item in items:
        k = item if key is None else key(item)
        try:
            if k in seen:
                continue
            seen.add(k)
        except TypeError:
            if any(same(k, s) for s in seen_unhashable):
                continue
            seen_unhashable.append(k)
        out.append(item)
    return out


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> bool:
    (s1, e1), (s2, e2) = a, b
    if s1 == e1 and s2 == e2:  # two insertions never overlap: both go in, in merge order
        return False
    if s1 == e1:
        return s2 < s1 < e2
    if s2 == e2:
        return s1 < s2 < e1
    return s1 < e2 and s2 < e1
