"""result.remerge(): a finished run's recorded diffs merged again, checked against real runs."""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from pydantic import BaseModel

import flowlab as fl
from flowlab.errors import ConfigError, MergeConflict


class C(BaseModel):
    n: int = 0
    tags: list[str] = ["w"]
    d: dict[str, int] = {}
    s: str = ""
    total: Annotated[int, fl.merge.Sum()] = 0


def branch(k: int) -> Any:
    def step(data: Any, ctx: C) -> None:
        ctx.n += k
        ctx.tags.append(f"t{k}")
        ctx.tags.append("same")
        if k % 3 == 0:
            ctx.tags.remove("w")
        ctx.d[f"k{k % 2}"] = k
        ctx.s = str(k)
        ctx.total += k

    return step


def pipe(merge: Any = "overwrite", order: str = "declared", **kw: Any) -> fl.Pipeline:
    branches = {f"b{k}": branch(k) for k in (1, 2, 3, 4)}
    return fl.Pipeline(fl.Parallel(branches, merge=merge, order=order, name="fan", **kw))


def delayed(k: int, seconds: float) -> Any:
    async def step(data: Any, ctx: C) -> None:
        import asyncio

        await asyncio.sleep(seconds)
        branch(k)(data, ctx)

    return step


@pytest.mark.parametrize("order", ["declared", "completion"])
@pytest.mark.parametrize("how", [*fl.merge.STRATEGIES, fl.merge.DeepMerge(), fl.merge.Ignore()])
def test_remerge_equals_a_real_run_with_that_strategy(how: Any, order: str) -> None:
    def make(merge: Any) -> fl.Pipeline:
        branches = {f"b{k}": delayed(k, 5 - k) for k in (1, 2, 3, 4)}  # finish in reverse
        return fl.Pipeline(fl.Parallel(branches, merge=merge, order=order, name="fan"))

    first = fl.run(make("overwrite"), C(), clock="virtual")
    real = fl.run(make(how), C(), clock="virtual", raise_on_error=False)
    again = first.remerge(merge=how, raise_on_error=False)
    assert (again.status, again.context) == (real.status, real.context)
    assert again.merges.drop(columns="step").equals(real.merges.drop(columns="step"))
    assert first.context == fl.run(make("overwrite"), C(), clock="virtual").context  # untouched


def test_remerge_with_field_rules_and_its_frames() -> None:
    first = fl.run(pipe(), C(), clock="virtual")
    union = first.remerge(rules={"tags": fl.merge.Union()})
    # b3 removed the base's only item and added two: a whole-list replacement, flagged
    assert union.context.tags == ["t3", "same", "t1", "t2", "t4"]
    row = union.merges.set_index("path").loc["tags"]
    assert (row["rule"], bool(row["conflict"])) == ("union", True)
    assert union.branches.equals(first.branches)  # nothing ran again
    assert union.extra["remerged"] == "fan"


def test_a_conflicting_run_remerged_under_another_strategy_ends_ok() -> None:
    failed = fl.run(pipe("error_on_conflict"), C(), clock="virtual", raise_on_error=False)
    assert failed.status == "failed"
    with pytest.raises(MergeConflict) as info:
        failed.remerge()  # the same strategy: the same conflict, raised like fl.run
    assert info.value.result is not None and info.value.result.status == "failed"
    fixed = failed.remerge(merge="accumulate")
    assert (fixed.status, fixed.error, fixed.context.total) == ("ok", None, 10)


def test_remerge_refuses_what_it_cannot_replay_exactly() -> None:
    def after(data: Any, ctx: C) -> None:
        ctx.s += "!"

    with pytest.raises(ConfigError, match=r"'after'.*ran after"):
        fl.run(fl.Pipeline(pipe(), after), C(), clock="virtual").remerge(step="fan")

    def fn(base: C, branches: dict[str, C]) -> C:
        return base

    with pytest.raises(ConfigError, match=r"cannot be re-merged"):
        fl.run(pipe(fn), C(), clock="virtual").remerge(step="fan")
    ok = fl.run(pipe(), C(), clock="virtual")
    with pytest.raises(ConfigError, match=r"merge function"):
        ok.remerge(merge=fn)
    with pytest.raises(ConfigError, match=r"no field 'nope'"):
        ok.remerge(rules={"nope": fl.merge.Sum()})
    with pytest.raises(ConfigError, match=r"rules\['s'\].*does not fit"):
        ok.remerge(rules={"s": fl.merge.Sum()})
    with pytest.raises(ConfigError, match=r"no such step"):
        ok.remerge(step="typo")

    inner = fl.Parallel({"x": branch(1)}, name="inner")
    nested = fl.run(fl.Pipeline(fl.Parallel({"a": inner}, name="outer")), C(), clock="virtual")
    with pytest.raises(ConfigError, match=r"inside a branch"):
        nested.remerge(step="inner")


class Nested(BaseModel):
    tags: list[str] = []
    notes: list[list[str]] = [["x"]]
    other: dict[str, list[int]] = {"a": [1]}


@pytest.mark.parametrize("include_keys", [None, ["tags"]])
def test_a_remerged_context_is_its_own(include_keys: Any) -> None:
    # A remerge's context shares nothing with the record it came from, nor with the run's
    # context: mutating one (even where the merge wrote nothing) never shows in another.
    def add(tag: str) -> Any:
        def step(data: Any, ctx: Nested) -> None:
            ctx.tags.append(tag)

        return step

    par = fl.Parallel({"a": add("a"), "b": add("b")}, include_keys=include_keys, name="p")
    result = fl.run(par, Nested(), clock="virtual")
    first = result.remerge(merge="keep_first")
    first.context.notes[0].append("mutated")
    first.context.other["a"].append(9)
    first.context.tags.append("z")
    again = result.remerge(merge="keep_first")
    assert again.context == Nested(tags=["a"])
    assert result.context == Nested(tags=["b"])
