"""The change tree of one merge: a node per changed path, filing each branch's changes.

:class:`ChangeNode` holds what each branch (by index) did at one path: wrote it whole (``direct``),
edited it as a list (``items``), or changed something below (``children``); ``writers`` lists
every branch that did any of these. :func:`branch_value` reads a branch's whole value at a path
back out of the tree, so the merge (:mod:`flowlab.core.merge.tree`) never needs a branch's context,
and the engine frees each branch's copy as soon as the branch ends.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Hashable, Iterator, Sequence
from types import MappingProxyType
from typing import Any

from pydantic import BaseModel

from flowlab.core.context.changes import MISSING, Change, Item, same
from flowlab.core.context.equality import plain_type
from flowlab.core.merge import lists

__all__ = ["ChangeNode", "Dropped", "branch_value", "branch_values", "same_entries", "writes"]


# A node's children, direct writes and list items, until the first one is filed: one shared,
# read-only empty mapping. Most nodes are leaves that use one of the three, and a merge of N
# branches makes at least N nodes, so the other two dicts would be 2N objects for the collector.
_NONE: Any = MappingProxyType({})


class ChangeNode:
    """The changes under one path, per branch index: written whole, as list items, or deeper."""

    __slots__ = ("children", "direct", "items", "replaced", "writers")

    def __init__(self) -> None:
        self.children: dict[Hashable, ChangeNode] = _NONE
        self.direct: dict[int, Any] = _NONE
        self.items: dict[int, list[Change]] = _NONE
        self.replaced: dict[int, Any] = _NONE  # whole values that expand() split into changes
        self.writers: list[int] = []  # every branch that changed this path or below, sorted

    def touch(self, i: int) -> None:
        writers = self.writers
        if not writers or writers[-1] < i:
            writers.append(i)
        elif writers[-1] != i and i not in writers:
            writers.append(i)
            writers.sort()

    def insert(self, i: int, keys: Sequence[Hashable], change: Change) -> None:
        self.touch(i)
        self.insert_below(i, keys, change)

    def file(self, i: int, changes: Sequence[Change]) -> None:
        """File branch ``i``'s changes under this (root) node, branches coming in order (so
        every node's writers stay sorted): what a merge does first, whatever its rules."""
        self.writers.append(i)
        insert = self.insert_below
        for change in changes:
            insert(i, change.keys or change.path, change)

    def insert_below(self, i: int, keys: Sequence[Hashable], change: Change) -> None:
        """:meth:`insert` for a caller that has touched this node for ``i`` already."""
        is_item = bool(keys) and type(keys[-1]) is Item
        node = self
        for key in keys[:-1] if is_item else keys:
            children = node.children
            child = children.get(key)
            if child is None:
                if children is _NONE:
                    children = node.children = {}
                child = children[key] = ChangeNode()
                child.writers.append(i)
            else:
                writers = child.writers  # touch(i), inlined: branches arrive in order
                if writers[-1] < i:
                    writers.append(i)
                elif writers[-1] != i and i not in writers:
                    writers.append(i)
                    writers.sort()
            node = child
        if is_item:
            if node.items is _NONE:
                node.items = {}
            node.items.setdefault(i, []).append(change)
        else:
            if node.direct is _NONE:
                node.direct = {}
            node.direct[i] = MISSING if change.op == "remove" else change.after


def branch_value(node: ChangeNode, i: int, before: Any) -> Any:
    """Branch ``i``'s value at ``node``'s path, rebuilt from its changes filed under ``node``
    and ``before``, the base's value there (:data:`MISSING` if absent): what it wrote there, or
    ``before`` with the changes it made below applied. The merge needs no branch's context.

    A branch's diff holds everything it changed, so this is the value its context has at that
    path (an equal one: what it did not change is the base's own, as in its copy).
    """
    return branch_values(node, (i,), before)[i]


def branch_values(node: ChangeNode, writers: Sequence[int], before: Any) -> dict[int, Any]:
    """:func:`branch_value` of each of ``writers`` (in their order), visiting each filed change
    once: asking for all of a node's writers costs what they changed, not writers x changes."""
    out: dict[int, Any] = {}
    rest: list[int] = []
    for i in writers:
        if i in node.direct:
            out[i] = node.direct[i]
        elif i in node.replaced:
            out[i] = node.replaced[i]
        else:
            rest.append(i)
    if not rest:
        return out  # in writer order: every one was written whole
    if node.items:
        base = before if isinstance(before, list) else []
        for i in rest:
            out[i] = lists.combine(node.items, (i,), base) if i in node.items else base
        return {i: out[i] for i in writers}
    model = isinstance(before, BaseModel)
    wanted = set(rest)
    below: dict[int, list[tuple[Hashable, Any]]] = {i: [] for i in rest}
    # a child's writers are some of this node's: for all of them, or one, no filtering needed
    every, one = len(rest) == len(node.writers), rest[0] if len(rest) == 1 else -1
    for key, child in node.children.items():
        if every:
            mine = child.writers
        elif one >= 0:
            mine = rest if one in child.writers else []
        else:
            mine = [i for i in child.writers if i in wanted]
        if mine:
            if model:
                old = before.__dict__.get(key, MISSING)
                if old is MISSING and before.__pydantic_extra__:  # an extra (extra="allow")
                    old = before.__pydantic_extra__.get(key, MISSING)
            else:
                old = before.get(key, MISSING) if isinstance(before, dict) else MISSING
            for i, value in branch_values(child, mine, old).items():
                below[i].append((key, value))
    for i in rest:
        out[i] = _with(before, below[i], model)
    return {i: out[i] for i in writers}


def _with(before: Any, values: list[tuple[Hashable, Any]], model: bool) -> Any:
    """``before`` (a model, a dict, or nothing yet) with ``values`` set at their keys."""
    data: dict[Any, Any] = dict(
        before.__dict__ if model else before if isinstance(before, dict) else {}
    )
    for key, value in values:
        if value is MISSING:
            data.pop(key, None)
        else:
            data[key] = value
    if not model:
        return data
    new = copy.copy(before)
    object.__setattr__(new, "__dict__", data)
    return new


_PLAIN: frozenset[type] = frozenset({int, float, str, bool, type(None), bytes})


def writes(node: ChangeNode) -> dict[int, list[tuple[Any, ...]]]:
    """Every writer's changes under ``node``, as ``(where, kind, type, value)`` entries (list
    items also carry their position) in one walk of the subtree, each filed change visited
    once. Two writers with the same entries changed the path identically, so their values there
    are equal: a diff against one base is a function of the branch's value. No value is rebuilt.
    """
    out: dict[int, list[tuple[Any, ...]]] = {i: [] for i in node.writers}
    stack: list[tuple[tuple[Hashable, ...], ChangeNode]] = [((), node)]
    while stack:
        where, at = stack.pop()
        # (a branch's tracked list is the list it is: plain_type)
        for i, value in at.direct.items():
            out[i].append((where, "set", plain_type(value), value))
        for i, value in at.replaced.items():
            out[i].append((where, "set", plain_type(value), value))
        for i, changes in at.items.items():
            out[i].extend(
                (where, c.op, c.key_path[-1], plain_type(c.after), c.after) for c in changes
            )
        for key, child in at.children.items():
            stack.append(((*where, key), child))
    return out


def same_entries(a: list[tuple[Any, ...]], b: list[tuple[Any, ...]]) -> bool:
    """Whether two writers' :func:`writes` are the same changes (values by
    :func:`~flowlab.core.context.changes.same`; plain scalars, the common case, by one ``==``)."""
    if len(a) != len(b):
        return False
    plain = _PLAIN.issuperset([x[-2] for x in a]) and _PLAIN.issuperset([y[-2] for y in b])
    if plain:  # types are in the entries: == is type-aware here, and exact
        return a == b
    for x, y in zip(a, b, strict=True):
        if x[:-1] != y[:-1]:
            return False
        if x[-1] is not y[-1] and not same(x[-1], y[-1]):
            return False
    return True


class Dropped:
    """The writers whose write lost at a path (a report row's ``dropped``), worked out when
    first read: a tuple-like of branch names.

    Deciding who lost compares every writer's value (or filed changes) with the winner's; a
    merge of N branches writing one field would pay that for every decided path up front, so the
    merge stores this and the frame (or whoever reads the row) pays once.
    """

    __slots__ = ("_args", "_how", "_value")

    def __init__(self, how: Callable[..., tuple[str, ...]], *args: Any) -> None:
        # what works it out and from what (no closure made per decided path)
        self._how: Callable[..., tuple[str, ...]] | None = how
        self._args: tuple[Any, ...] = args
        self._value: tuple[str, ...] | None = None

    @classmethod
    def by_changes(cls, node: ChangeNode, winner: int, names: Sequence[str]) -> Dropped:
        """The writers of ``node`` whose filed changes differ from ``winner``'s."""
        return cls(_lost_by_changes, node, winner, names)

    @classmethod
    def by_values(
        cls, values: Sequence[Any], writers: Sequence[int], winner: int, names: Sequence[str]
    ) -> Dropped:
        """The ``writers`` whose value (``values``, in writer order) differs from ``winner``'s."""
        return cls(_lost_by_values, values, writers, winner, names)

    def _resolve(self) -> tuple[str, ...]:
        if self._value is None:
            assert self._how is not None
            self._value = self._how(*self._args)
            self._how, self._args = None, ()  # the change tree can go
        return self._value

    def __iter__(self) -> Iterator[str]:
        return iter(self._resolve())

    def __len__(self) -> int:
        return len(self._resolve())

    def __eq__(self, other: object) -> bool:
        return self._resolve() == (tuple(other) if isinstance(other, Dropped) else other)

    def __hash__(self) -> int:
        return hash(self._resolve())

    def __repr__(self) -> str:
        return repr(self._resolve())

    def __copy__(self) -> tuple[str, ...]:
        return self._resolve()

    def __deepcopy__(self, memo: dict[int, Any]) -> tuple[str, ...]:
        return self._resolve()


def _lost_by_changes(node: ChangeNode, winner: int, names: Sequence[str]) -> tuple[str, ...]:
    entries = writes(node)
    mine = entries[winner]
    return tuple(
        names[j] for j in node.writers if j != winner and not same_entries(entries[j], mine)
    )


def _lost_by_values(
    values: Sequence[Any], writers: Sequence[int], winner: int, names: Sequence[str]
) -> tuple[str, ...]:
    after = values[writers.index(winner)]
    return tuple(
        names[j] for j, v in zip(writers, values, strict=True) if j != winner and not same(v, after)
    )
