"""A branch that stores one of its context's containers somewhere new merges as if it stored a copy.

A branch's list and dict fields are the branch's own containers (tracked ones under eager
isolation: ``list`` / ``dict`` subclasses that note where they were written). Storing such a
container under a new dict key, or into an optional field that was ``None``
(``ctx.d["k"] = ctx.tags``), is legal code whose value is a plain list: the merge must decide it
exactly as it decides ``ctx.d["k"] = list(ctx.tags)`` — dicts key by key and lists item by item
under ``deep`` / ``accumulate``, compared key by key under ``error_on_conflict``, and a winner
whose value equals a loser's drops nobody. (It once took the last writer's whole value, dropping
the other branch's items, because the merge only expanded values of the exact types ``list`` and
``dict``.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pydantic import BaseModel

import flowlab as fl


class Ctx(BaseModel):
    tags: list[str] = ["t"]
    scores: dict[str, int] = {"x": 1}
    opt: list[str] | None = None
    d: dict[str, Any] = {}
    pad: list[list[int]] = [[i] for i in range(70)]  # nested data: copy on write engages


def stores_its_own(ctx: Ctx) -> None:
    ctx.d["k"] = ctx.tags
    ctx.d["s"] = ctx.scores
    ctx.opt = ctx.tags


def stores_a_copy(ctx: Ctx) -> None:
    ctx.d["k"] = list(ctx.tags)
    ctx.d["s"] = dict(ctx.scores)
    ctx.opt = list(ctx.tags)


def other(ctx: Ctx) -> None:
    ctx.d["k"] = ["z"]
    ctx.d["s"] = {"y": 2}
    ctx.opt = ["t", "z"]


def same_values(ctx: Ctx) -> None:
    ctx.d["k"] = ["t"]
    ctx.d["s"] = {"x": 1}
    ctx.opt = ["t"]


def outcome(
    first: Callable[[Ctx], None], second: Callable[[Ctx], None], merge: str, iso: str
) -> Any:
    def a(data: Any, ctx: Ctx) -> None:
        first(ctx)

    def b(data: Any, ctx: Ctx) -> None:
        second(ctx)

    par = fl.Parallel({"a": a, "b": b}, merge=merge, isolation=iso, name="fan")
    try:
        result = fl.run(fl.Pipeline(par), Ctx(), clock="virtual")
    except fl.MergeConflict as err:
        return "conflict", sorted(err.result.merges.loc[lambda f: f.conflict, "path"])
    merges = result.merges[["path", "writers", "winner", "after", "conflict", "dropped"]]
    rows = [tuple(map(repr, row)) for row in merges.itertuples(index=False)]
    return result.context.model_dump(exclude={"pad"}), rows


STRATEGIES = [
    "overwrite",
    "keep_first",
    "deep",
    "deep_keep_first",
    "accumulate",
    "error_on_conflict",
]


@pytest.mark.parametrize("iso", ["eager", "cow"])
@pytest.mark.parametrize("merge", STRATEGIES)
@pytest.mark.parametrize("second", [other, same_values])
def test_storing_a_field_container_merges_as_storing_a_copy(
    merge: str, iso: str, second: Callable[[Ctx], None]
) -> None:
    expected = outcome(stores_a_copy, second, merge, iso)
    assert outcome(stores_its_own, second, merge, iso) == expected
    assert outcome(second, stores_its_own, merge, iso) == outcome(second, stores_a_copy, merge, iso)


def test_deep_keeps_both_branches_items_of_a_stored_container() -> None:
    def a(data: Any, ctx: Ctx) -> None:
        stores_its_own(ctx)

    def b(data: Any, ctx: Ctx) -> None:
        other(ctx)

    result = fl.run(
        fl.Pipeline(fl.Parallel({"a": a, "b": b}, merge="deep")), Ctx(), clock="virtual"
    )
    assert result.context.d == {"k": ["t", "z"], "s": {"x": 1, "y": 2}}
    assert result.context.opt == ["t", "t", "z"]  # both new lists' items, over []
    assert not any(result.merges.dropped.map(len))
