"""How the branches' edits of one list combine into the merged list: a merge over the base by
position.

A branch's diff describes its list edit as one slice of the base replaced (removals first, then
additions in order). :func:`hunks` aligns that slice item by item (a longest common subsequence,
compared with :func:`~flowlab.core.context.changes.same`), so the edit becomes *hunks* ``(start, end, added)``:
``base[start:end]`` removed and ``added`` inserted at that place. Removing ``"t0"`` from
``["t0", "t1"]`` and appending ``"n"`` is two hunks, ``(0, 1, [])`` and ``(2, 2, ["n"])`` — not
"``["t0", "t1"]`` became ``["t1", "n"]``", which would put ``"t1"`` back over a sibling's removal.

:func:`combine` applies every writer's hunks to the base at once:

* every base item some writer removed is removed (once);
* every item some writer inserted is kept, at its place in the base, writers in merge order at
  one place;
* two writers making the *same* removal or replacement apply it once;
* edits that truly collide are flagged (``conflict``): two writers replacing overlapping base
  items differently, or one writer replacing the whole list while another edited it. The value
  still keeps every inserted item and drops every removed one; the rule decides whether a
  collision raises (``error_on_conflict``) or is a ``conflict=True`` report row.

:func:`dedupe` then drops repeated *inserted* items for the rules that ask for it (``Union``,
``accumulate``); base items are never touched by it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from itertools import compress
from operator import not_
from typing import Any, NamedTuple

from flowlab.core.context.changes import Change, Item, same
from flowlab.core.context.equality import repeat_key

__all__ = ["Combined", "Hunk", "align", "appended", "combine", "combine_edits", "dedupe", "hunks"]

_LCS_LIMIT = 250_000  # cells of the alignment table; beyond, a slice stays one hunk


class Hunk(NamedTuple):
    """``base[start:end]`` removed and ``added`` inserted at that place (``start == end``: a
    pure insertion before ``base[start]``)."""

    start: int
    end: int
    added: list[Any]


class Combined(NamedTuple):
    """The merged list, which of its items were inserted by a branch, and whether edits
    collided."""

    items: list[Any]
    inserted: list[bool]
    conflict: bool


def appended(items: Mapping[int, list[Change]], writers: Sequence[int], n: int) -> list[Any] | None:
    """The items every writer appended to a base list of ``n`` items, in merge order; None
    unless every writer only appended (a diff lists removals first, then additions in order, so
    a first change that adds at ``n`` means a pure append)."""
    out: list[Any] = []
    append = out.append
    for changes in map(items.get, writers):
        if not changes:
            continue
        first = changes[0]
        at = (first.keys or first.path)[-1]
        if first.op != "add" or type(at) is not Item or at.index != n:
            return None
        if len(changes) == 1:  # the common case: one item appended
            append(first.after)
        else:
            out.extend([c.after for c in changes])
    return out


def hunks(changes: Sequence[Change], base: Sequence[Any]) -> list[Hunk]:
    """One writer's list edit (its changes at the list's positions) as aligned hunks.

    Examples
    --------
    >>> from flowlab.core.context.changes import diff_value
    >>> out = []
    >>> diff_value(["t0", "t1"], ["t1", "n"], ("tags",), out)
    >>> hunks(out, ["t0", "t1"])
    [Hunk(start=0, end=1, added=[]), Hunk(start=2, end=2, added=['n'])]
    """
    if not changes:
        return []
    start = min(c.key_path[-1].index for c in changes)  # type: ignore[attr-defined]
    removed = sum(1 for c in changes if c.op == "remove")
    added = [c.after for c in changes if c.op == "add"]
    return align(base, start, start + removed, added)


def align(base: Sequence[Any], start: int, end: int, new: list[Any]) -> list[Hunk]:
    """``base[start:end]`` became ``new``: the hunks of a longest common subsequence (ties:
    removals before insertions, the earliest match first)."""
    old = base[start:end]
    n, m = len(old), len(new)
    if not n or not m or n * m > _LCS_LIMIT:
        return [Hunk(start, end, list(new))]
    # table[i][j]: the LCS length of old[i:] and new[j:]
    table = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        row, below = table[i], table[i + 1]
        for j in range(m - 1, -1, -1):
            if same(old[i], new[j]):
                row[j] = below[j + 1] + 1
            else:
                row[j] = max(below[j], row[j + 1])
    out: list[Hunk] = []
    i = j = 0
    open_at, pending = (
        -1,
        list[Any](),
    )  # the hunk being built: its first base index, its inserted items
    while i < n or j < m:
        if i < n and j < m and same(old[i], new[j]) and table[i][j] == table[i + 1][j + 1] + 1:
            if open_at >= 0:
                out.append(Hunk(start + open_at, start + i, pending))
                open_at, pending = -1, []
            i += 1
            j += 1
            continue
        if open_at < 0:
            open_at = i
        if i < n and (j >= m or table[i + 1][j] >= table[i][j + 1]):
            i += 1  # old[i] removed
        else:
            pending.append(new[j])
            j += 1
    if open_at >= 0:
        out.append(Hunk(start + open_at, start + i, pending))
    return out


def combine(
    items: Mapping[int, list[Change]], writers: Sequence[int], base: list[Any]
) -> list[Any]:
    """The merged list: :func:`combine_edits` without the report (see the module docstring).

    Examples
    --------
    One writer drops ``"t0"`` and appends ``"new"``, the other only drops ``"t0"``:

    >>> from flowlab.core.context.changes import diff_value
    >>> base = ["t0"]
    >>> items = {0: [], 1: []}
    >>> diff_value(base, ["new"], ("tags",), items[0])
    >>> diff_value(base, [], ("tags",), items[1])
    >>> combine(items, [0, 1], base)
    ['new']
    """
    return combine_edits(items, writers, base).items


def combine_edits(
    items: Mapping[int, list[Change]], writers: Sequence[int], base: list[Any]
) -> Combined:
    """Apply every writer's list edit to ``base`` at once, writers in merge order."""
    added_only = appended(items, writers, len(base))
    if added_only is not None:  # every writer only appended: the base, then each one's items
        return Combined([*base, *added_only], [False] * len(base) + [True] * len(added_only), False)
    n = len(base)
    removed = [False] * n
    inserts: list[list[Any]] = [[] for _ in range(n + 1)]
    seen: list[Hunk] = []  # removals / replacements applied so far (an identical one is skipped)
    replaced: list[tuple[int, int, int]] = []  # (start, end, writer order) of replacements
    whole: list[int] = []  # writer orders that replaced the whole (non-empty) list
    adders: list[int] = []  # writer orders that inserted items
    conflict = False
    for order, i in enumerate(writers):
        changes = items.get(i)
        if not changes:
            continue
        edits = hunks(changes, base)
        if any(h.added for h in edits):
            adders.append(order)
        if n and len(edits) == 1 and edits[0][:2] == (0, n) and edits[0].added:
            whole.append(order)
        for hunk in edits:
            start, end, added = hunk
            if start < end:
                if any(
                    h.start == start and h.end == end and _same_items(h.added, added) for h in seen
                ):
                    continue
                seen.append(hunk)
                if added:
                    for s, e, other in replaced:
                        if other != order and s < end and start < e:
                            conflict = True
                    replaced.append((start, end, order))
                for k in range(start, end):
                    removed[k] = True
            inserts[start].extend(added)
    if whole and any(order not in whole for order in adders):
        conflict = True  # a new list against a sibling's insertions (removals it subsumes)

    out: list[Any] = []
    inserted: list[bool] = []
    for gap in range(n + 1):
        if inserts[gap]:
            out.extend(inserts[gap])
            inserted.extend([True] * len(inserts[gap]))
        if gap < n and not removed[gap]:
            out.append(base[gap])
            inserted.append(False)
    return Combined(out, inserted, conflict)


def _same_items(a: list[Any], b: list[Any]) -> bool:
    return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))


def dedupe(
    items: list[Any],
    key: Callable[[Any], Any] | None = None,
    inserted: Sequence[bool] | None = None,
) -> list[Any]:
    """``items`` without repeats, first occurrence kept, compared by ``key(item)`` (the item
    itself when ``key`` is None); unhashable keys are compared by value.

    With ``inserted`` (one flag per item), only inserted items are dropped: the base's own items
    stay as they were, repeats included, and an inserted item equal to any kept item goes.

    Examples
    --------
    >>> dedupe(["a", "b", "a", "c", "b"])
    ['a', 'b', 'c']
    >>> dedupe([{"id": 1, "v": "x"}, {"id": 1, "v": "y"}], key=lambda d: d["id"])
    [{'id': 1, 'v': 'x'}]
    >>> dedupe([[1], [2], [1]])
    [[1], [2]]
    >>> dedupe([1, 1, 2, 2, 3], inserted=[False, False, False, True, True])
    [1, 1, 2, 3]
    """
    if key is None:
        try:
            return _dedupe_hashable(items, inserted)
        except TypeError:  # an unhashable item: compared by value below
            pass
    seen: set[Any] = set()
    seen_unhashable: list[Any] = []
    if inserted is not None:  # the base's own items are known first, wherever they stand
        for item, flag in zip(items, inserted, strict=True):
            if not flag:
                k = repeat_key(item) if key is None else key(item)
                try:
                    seen.add(k)
                except TypeError:
                    seen_unhashable.append(k)
    out = []
    flags = inserted if inserted is not None else [True] * len(items)
    for item, flag in zip(items, flags, strict=True):
        if flag:
            k = repeat_key(item) if key is None else key(item)
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


def _dedupe_hashable(items: list[Any], inserted: Sequence[bool] | None) -> list[Any]:
    """:func:`dedupe` by the items themselves, every one hashable (else ``TypeError``): the
    same answer, with the sets built in C. The general loop is its reference (see the tests).
    Items are compared by :func:`~flowlab.core.context.equality.repeat_key` (``True`` is not a
    repeat of ``1``), as everywhere else the merge compares values."""
    keys = list(map(repeat_key, items))
    if inserted is None:
        first = dict(zip(reversed(keys), reversed(items), strict=True))  # first item wins
        return [first[k] for k in dict.fromkeys(keys)]  # first occurrences, in order
    start = inserted.index(True) if True in inserted else len(items)
    if False not in inserted[start:]:  # the base's items, then only inserted ones (appends)
        kept = items[:start]
        known = set(keys[:start])
        fresh: dict[Any, Any] = {}
        for k, item in zip(keys[start:], items[start:], strict=True):
            if k not in known and k not in fresh:
                fresh[k] = item
        return kept + list(fresh.values())
    seen = set(compress(keys, map(not_, inserted)))  # the base's own items
    out: list[Any] = []
    append, add = out.append, seen.add
    for k, item, flag in zip(keys, items, inserted, strict=True):
        if flag:
            if k in seen:
                continue
            add(k)
        append(item)
    return out
