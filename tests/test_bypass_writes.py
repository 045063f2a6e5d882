"""Writes that bypass a tracked container's methods (C code, base-class calls) are not lost.

A branch's list and dict fields are tracked (eager isolation) or copy-on-write containers: real
``list`` / ``dict`` subclasses whose methods note where they wrote. ``heapq``'s functions and
explicit base-class calls (``list.append(ctx.items, x)``) write to the storage without those
methods. The reference is the same step run on a plain deep copy of the context: the merged
context of a one-branch Parallel must equal it.
"""

from __future__ import annotations

import copy
import heapq
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import BaseModel

import flowlab as fl


class Ctx(BaseModel):
    heap: list[int] = [5, 3, 8, 1, 9, 2]
    table: dict[str, int] = {"a": 1, "b": 2}
    rows: list[list[int]] = [[4, 2, 6], [1]]
    pad: list[list[int]] = [[i] for i in range(40)]  # nested data: copy on write pays


def heappush(ctx: Ctx) -> None:
    heapq.heappush(ctx.heap, 0)


def heappop(ctx: Ctx) -> None:
    heapq.heappop(ctx.heap)


def heapify(ctx: Ctx) -> None:  # same length: only the order changes
    heapq.heapify(ctx.heap)


def heapreplace(ctx: Ctx) -> None:
    heapq.heapify(ctx.heap)
    heapq.heapreplace(ctx.heap, 7)


def heappushpop(ctx: Ctx) -> None:
    heapq.heappushpop(ctx.heap, 4)


def base_append(ctx: Ctx) -> None:
    list.append(ctx.heap, 11)


def base_setitem_at_the_end(ctx: Ctx) -> None:
    list.__setitem__(ctx.heap, -1, 42)


def tracked_then_bypassed(ctx: Ctx) -> None:
    ctx.heap.append(10)  # noted: the diff starts at the end ...
    heapq.heapify(ctx.heap)  # ... but this moved items below it


def nested_heapify(ctx: Ctx) -> None:
    heapq.heapify(ctx.rows[0])


def dict_insert(ctx: Ctx) -> None:
    dict.__setitem__(ctx.table, "c", 3)


def dict_delete(ctx: Ctx) -> None:
    dict.__delitem__(ctx.table, "a")


def dict_insert_after_a_tracked_write(ctx: Ctx) -> None:
    ctx.table["b"] = 20
    dict.__setitem__(ctx.table, "z", 26)


EDITS = [
    heappush,
    heappop,
    heapify,
    heapreplace,
    heappushpop,
    base_append,
    base_setitem_at_the_end,
    tracked_then_bypassed,
    nested_heapify,
    dict_insert,
    dict_delete,
    dict_insert_after_a_tracked_write,
]


@pytest.mark.parametrize("isolation", ["eager", "cow"])
@pytest.mark.parametrize("edit", EDITS, ids=lambda f: f.__name__)
def test_a_bypassing_write_is_merged_as_the_branch_made_it(
    edit: Callable[[Ctx], None], isolation: str
) -> None:
    reference = copy.deepcopy(Ctx())
    edit(reference)

    kinds = []

    def step(data: Any, ctx: Ctx) -> None:
        kinds.append(type(ctx.heap).__name__)
        edit(ctx)

    base = Ctx()
    result = fl.run(fl.Parallel({"a": step}, name="p", isolation=isolation), base, clock="virtual")
    assert kinds == ["CowList" if isolation == "cow" else "TrackedList"]
    assert result.context == reference
    assert base == Ctx()  # the caller's context is untouched


@pytest.mark.parametrize("isolation", ["eager", "cow"])
def test_siblings_still_merge_when_one_bypasses(isolation: str) -> None:
    def push(data: Any, ctx: Ctx) -> None:
        heapq.heappush(ctx.heap, 0)

    def note(data: Any, ctx: Ctx) -> None:
        ctx.table["n"] = 1

    par = fl.Parallel({"push": push, "note": note}, merge="deep", name="p", isolation=isolation)
    result = fl.run(par, Ctx(), clock="virtual")
    expected = Ctx()
    heapq.heappush(expected.heap, 0)
    expected.table["n"] = 1
    assert result.context == expected
