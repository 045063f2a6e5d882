"""Copy on write: a write through one place of an object the context holds in two places.

A context may hold one object in two places: ``ctx.current_tags = ctx.docs[0]["tags"]`` (a
handle on a nested list), ``ctx.index["t"] = ctx.docs[1]["tags"]``, a model field pointing into a
list of models. In a branch, as in an eager deep copy, a write through one place shows through the
other. A copy-on-write branch shares the base's items until it reads them; the write went to the
branch's copy of the object, while the *other* place — inside an item the branch never read —
still held the base's object, so the diff, the branch's output and a custom merge's view missed
the write (``docs[0]["tags"]`` stayed ``[]``). The reference is plain Python on a deep copy.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import BaseModel

import flowlab as fl


class Sub(BaseModel):
    n: int = 0
    tags: list[str] = []


class Doc(BaseModel):
    id: int = 0
    sub: Sub = Sub()


class Ctx(BaseModel):
    docs: list[dict[str, Any]] = [{"id": i, "tags": []} for i in range(70)]
    models: list[Doc] = [Doc(id=i) for i in range(3)]
    current_tags: list[str] = []
    current: Sub | None = None
    index: dict[str, Any] = {}
    pair: tuple[list[str], ...] = ()


def handles(data: Any, ctx: Ctx) -> None:
    """A step before the Parallel: one object, two places."""
    ctx.current_tags = ctx.docs[0]["tags"]
    ctx.index["t"] = ctx.docs[1]["tags"]
    ctx.current = ctx.models[2].sub
    ctx.pair = (ctx.docs[2]["tags"],)


def through_a_field(ctx: Ctx) -> None:
    ctx.current_tags.append("seen")


def through_a_dict(ctx: Ctx) -> None:
    ctx.index["t"].append("seen")


def through_a_model(ctx: Ctx) -> None:
    assert ctx.current is not None
    ctx.current.n = 5  # a scalar: a model copy notes no write


def through_a_tuple(ctx: Ctx) -> None:
    ctx.pair[0].append("seen")  # a tuple holding a list: deep-copied whole


WRITES = [through_a_field, through_a_dict, through_a_model, through_a_tuple]


def expected(write: Callable[[Ctx], None]) -> Ctx:
    ctx = Ctx()
    handles(None, ctx)
    ctx = copy.deepcopy(ctx)
    write(ctx)
    return ctx


@pytest.mark.parametrize("isolation", ["eager", "cow"])
@pytest.mark.parametrize("write", WRITES)
def test_a_write_through_one_place_is_merged_in_both(
    isolation: str, write: Callable[[Ctx], None]
) -> None:
    seen: list[str] = []

    def branch(data: Any, ctx: Ctx) -> Any:
        seen.append(type(ctx.docs).__name__)
        write(ctx)
        return ctx.docs, ctx.models  # the lists themselves: their items are not read here

    par = fl.Parallel({"a": branch, "idle": lambda data, ctx: None}, isolation=isolation)
    result = fl.run(fl.Pipeline(handles, par), Ctx(), clock="virtual")
    assert seen[0] == ("CowList" if isolation == "cow" else "list")
    want = expected(write)
    assert result.context.model_dump() == want.model_dump()
    docs, models = result.outputs["parallel:a"]
    assert docs == want.docs  # the branch's output shows the write too
    assert models == want.models


def test_a_custom_merge_is_handed_the_write_in_both_places() -> None:
    def merge(base: Ctx, branches: dict[str, Ctx]) -> Ctx:
        return branches["a"]

    def branch(data: Any, ctx: Ctx) -> None:
        through_a_field(ctx)

    par = fl.Parallel({"a": branch}, isolation="cow", merge=merge)
    result = fl.run(fl.Pipeline(handles, par), Ctx(), clock="virtual")
    assert result.context.docs[0]["tags"] == ["seen"]


@pytest.mark.parametrize("isolation", ["eager", "cow"])
def test_a_retried_branch_that_writes_through_a_handle_only_on_its_last_attempt(
    isolation: str,
) -> None:
    # A failed attempt is undone by a fresh copy's values, made by a copy-on-write branch of
    # their own: its notes count too.
    attempts: list[int] = []

    def flaky(data: Any, ctx: Ctx) -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise ValueError("first attempt")
        through_a_field(ctx)

    step = fl.Step(flaky, retry=fl.Retry(attempts=2, backoff=0.0))
    par = fl.Parallel({"a": step}, isolation=isolation)
    result = fl.run(fl.Pipeline(handles, par), Ctx(), clock="virtual")
    assert result.context.model_dump() == expected(through_a_field).model_dump()
