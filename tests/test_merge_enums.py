"""Enum members are not numbers to the merge, even when they are ints (``IntEnum``, ``IntFlag``).

``accumulate`` adds the deltas of numbers. An ``IntEnum`` member is an ``int``, so two branches
that each raised a level from ``LOW`` (1) to ``MID`` (2) once merged to 1 + 1 + 1 = ``HIGH`` (3),
a member neither branch chose, reported with no conflict and nothing dropped. A level is a
label, not a count: it merges as other leaves do (last writer, the losers in ``dropped``), and
``Sum`` on an enum field is refused when the model is checked; ``Max`` still orders levels.
"""

from __future__ import annotations

from enum import IntEnum, IntFlag
from typing import Annotated, Any

import pytest
from pydantic import BaseModel

import flowlab as fl


class Level(IntEnum):
    LOW = 1
    MID = 2
    HIGH = 3


class Perm(IntFlag):
    R = 4
    W = 2
    X = 1


class Ctx(BaseModel):
    level: Level = Level.LOW
    levels: dict[str, Level] = {"job": Level.LOW}
    perm: Perm = Perm(0)


def setting(level: Level, perm: Perm) -> Any:
    def step(data: Any, ctx: Ctx) -> None:
        ctx.level = level
        ctx.levels["job"] = level
        ctx.perm = perm

    return step


@pytest.mark.parametrize("merge", ["accumulate", "deep", "overwrite"])
def test_two_branches_choosing_one_level_merge_to_that_level(merge: str) -> None:
    branches = {"a": setting(Level.MID, Perm.R), "b": setting(Level.MID, Perm.R)}
    result = fl.run(
        fl.Pipeline(fl.Parallel(branches, merge=merge, name="fan")), Ctx(), clock="virtual"
    )
    assert result.context.level is Level.MID
    assert result.context.levels == {"job": Level.MID}
    assert result.context.perm is Perm.R
    assert not any(result.merges.dropped.map(len))


def test_different_levels_under_accumulate_take_the_last_writer_and_name_the_loser() -> None:
    branches = {"a": setting(Level.MID, Perm.R), "b": setting(Level.HIGH, Perm.W)}
    result = fl.run(
        fl.Pipeline(fl.Parallel(branches, merge="accumulate", name="fan")), Ctx(), clock="virtual"
    )
    assert (result.context.level, result.context.perm) == (Level.HIGH, Perm.W)
    rows = result.merges.set_index("path")
    assert rows.loc["level", "winner"] == "b"
    assert tuple(rows.loc["level", "dropped"]) == ("a",)


def test_sum_on_an_enum_field_is_refused_and_max_orders_levels() -> None:
    class Summed(BaseModel):
        level: Annotated[Level, fl.merge.Sum()] = Level.LOW

    def raise_to(level: Level) -> Any:
        def step(data: Any, ctx: Any) -> None:
            ctx.level = level

        return step

    with pytest.raises(fl.ConfigError, match=r"Summed\.level"):
        fl.run(fl.Pipeline(fl.Parallel({"a": raise_to(Level.MID)})), Summed(), clock="virtual")

    class Highest(BaseModel):
        level: Annotated[Level, fl.merge.Max()] = Level.LOW

    par = fl.Parallel({"a": raise_to(Level.HIGH), "b": raise_to(Level.MID)})
    assert fl.run(fl.Pipeline(par), Highest(), clock="virtual").context.level is Level.HIGH
