"""The change tree of one merge: a node per changed path, filing each branch's changes.

:class:`_Node` holds what each branch (by index) did at one path: wrote it whole (``direct``),
edited it as a list (``items``), or changed something below (``children``); ``writers`` lists
every branch that did any of these. :func:`branch_value` reads a branch's whole value at a path
back out of the tree, so the merge (:mod:`flowlab.merge.tree`) never needs a branch's context,
and the engine frees each branch's copy as soon as the branch ends.
"""

from __future__ import annotations

import copy
from collections.abc import Hashable, Sequence
from types import MappingProxyType
from typing import Any

from pydantic import BaseModel

from flowlab.changes import MISSING, Change, Item
from flowlab.merge import lists

__all__ = ["branch_value", "branch_values"]


# A node's children, direct writes and list items, until the first one is filed: one shared,
# read-only empty mapping. Most nodes are leaves that use one of the three, and a merge of N
# branches makes at least N nodes, so the other two dicts would be 2N objects for the collector.
_NONE: Any = MappingProxyType({})


class _Node:
    """The changes under one path, per branch index: written whole, as list items, or deeper."""

    __slots__ = ("children", "direct", "items", "replaced", "writers")

    def __init__(self) -> None:
        self.children: dict[Hashable, _Node] = _NONE
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
                child = children[key] = _Node()
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


def branch_value(node: _Node, i: int, before: Any) -> Any:
    """Branch ``i``'s value at ``node``'s path, rebuilt from its changes filed under ``node``
    and ``before``, the base's value there (:data:`MISSING` if absent): what it wrote there, or
    ``before`` with the changes it made below applied. The merge needs no branch's context.

    A branch's diff holds everything it changed, so this is the value its context has at that
    path (an equal one: what it did not change is the base's own, as in its copy).
    """
    return branch_values(node, (i,), before)[i]


def branch_values(node: _Node, writers: Sequence[int], before: Any) -> dict[int, Any]:
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
    for key, child in node.children.items():
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
