"""Copy-on-write isolation in whole runs: the same results as eager isolation, run for run."""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from pydantic import BaseModel

import flowlab as fl
from flowlab.errors import ConfigError


class Msg(BaseModel):
    role: str = "user"
    text: str = ""
    seen: list[str] = []


class Ctx(BaseModel):
    n: Annotated[int, fl.merge.Sum()] = 0
    history: list[dict[str, Any]] = []
    msgs: list[Msg] = []
    table: dict[str, Any] = {}
    tags: Annotated[list[str], fl.merge.Union()] = []
    docs: list[dict[str, int]] = []


def base() -> Ctx:
    return Ctx(  # enough nested data that copy on write pays (flowlab.core.context.cow.copy_on_write_pays)
        docs=[{"i": i} for i in range(80)],
        history=[{"role": "user", "text": "hi", "meta": {"k": [1]}}],
        msgs=[Msg(text="a"), Msg(text="b")],
        table={"a": {"x": [1, 2]}, "b": 2},
        tags=["t"],
    )


async def reader(data: Any, ctx: Ctx) -> Any:
    return [m["text"] for m in ctx.history], type(ctx.history).__name__


async def appender(data: Any, ctx: Ctx) -> Any:
    ctx.history.append({"role": "bot", "text": "yes"})
    ctx.history[0]["meta"]["k"].append(2)  # a nested edit of a shared message
    ctx.n += 1
    return ctx.history  # an output holding the branch's own (copy-on-write) list


async def model_editor(data: Any, ctx: Ctx) -> Any:
    ctx.msgs[1].seen.append("b")
    ctx.msgs[0].text = "A"
    ctx.table["a"]["x"].sort(reverse=True)
    ctx.tags += ["u"]
    ctx.n += 2
    return None


async def replacer(data: Any, ctx: Ctx) -> Any:
    inner = ctx.table["a"]
    ctx.table = {"new": inner}  # replace, then mutate what it holds
    inner["x"].append(3)
    return len(ctx.history)


def nested_pipe(isolation: str, merge: Any = "deep") -> fl.Pipeline:
    inner = fl.Parallel({"i1": appender, "i2": model_editor}, merge="deep", name="inner")
    return fl.Pipeline(
        fl.Parallel(
            {"r": reader, "a": appender, "m": model_editor, "x": replacer, "nest": inner},
            merge=merge,
            isolation=isolation,
            name="fan",
        )
    )


def frame(result: fl.RunResult, name: str) -> list[Any]:
    table = getattr(result, name)
    return [
        tuple(map(repr, row))
        for row in table.drop(columns=[c for c in table.columns if c.endswith("_s")]).itertuples(
            index=False
        )
    ]


@pytest.mark.parametrize("merge", ["deep", "overwrite", "accumulate", "keep_first"])
def test_a_cow_run_gives_the_eager_runs_context_outputs_diffs_and_merges(merge: str) -> None:
    caller = base()
    before = caller.model_dump()
    cow = fl.run(nested_pipe("cow", merge), caller, clock="virtual")
    eager = fl.run(nested_pipe("eager", merge), base(), clock="virtual")
    assert caller.model_dump() == before  # the caller's context is never touched
    assert cow.context.model_dump() == eager.context.model_dump()
    assert repr({k: v for k, v in cow.output.items() if k != "r"}) == repr(
        {k: v for k, v in eager.output.items() if k != "r"}
    )
    assert type(cow.output["a"]) is list  # detached: a plain list of its own
    assert cow.output["r"][1] == "CowList" and eager.output["r"][1] == "list"
    assert cow.output["r"][0] == eager.output["r"][0]
    assert frame(cow, "diffs") == frame(eager, "diffs")
    assert frame(cow, "merges") == frame(eager, "merges")


def test_a_merge_function_gets_plain_branch_contexts() -> None:
    seen: dict[str, Any] = {}

    def merge(base_ctx: Ctx, branches: dict[str, Ctx]) -> Ctx:
        for name, ctx in branches.items():
            seen[name] = (type(ctx.history), ctx.history)
        base_ctx.history = branches["a"].history
        return base_ctx

    pipe = fl.Pipeline(
        fl.Parallel({"a": appender, "r": reader}, merge=merge, isolation="cow", name="fan")
    )
    result = fl.run(pipe, base(), clock="virtual")
    assert isinstance(result.context, Ctx)
    assert seen["a"][0] is list and seen["r"][0] is list
    assert result.context.history[-1] == {"role": "bot", "text": "yes"}
    assert result.context.history[0]["meta"]["k"] == [1, 2]


def test_isolation_is_checked_and_shown() -> None:
    with pytest.raises(ConfigError, match="isolation"):
        fl.Parallel({"a": reader}, isolation="lazy")
    assert fl.Parallel({"a": reader}).options()["isolation"] == "eager"  # cow is opt-in
    assert "isolation='cow'" in repr(fl.Parallel({"a": reader}, isolation="cow"))


def test_the_default_isolation_keeps_a_heapq_writer_from_its_siblings() -> None:
    # heapq takes items out of the list without its methods: under copy on write the popped
    # item is the shared one, and a write to it reaches the sibling (the documented limit of
    # isolation="cow"). The default, eager, keeps every branch to itself.
    import asyncio
    import heapq

    class Jobs(BaseModel):
        items: list[list[Any]] = []

    async def pop_and_mark(data: Any, ctx: Jobs) -> None:
        heapq.heappop(ctx.items)[1]["done"] = True

    async def look(data: Any, ctx: Jobs) -> bool:
        await asyncio.sleep(0)
        return bool(ctx.items[0][1].get("done"))

    base_jobs = Jobs(items=[[i, {"k": i}] for i in range(100)])
    pipe = fl.Parallel({"a": pop_and_mark, "b": look}, merge="deep", name="fan")
    result = fl.run(pipe, base_jobs, clock="virtual")
    assert result.output["b"] is False  # the sibling never saw the write
    assert "done" not in base_jobs.items[0][1]  # nor did the caller
    # why cow is opt-in: the sibling did read the write (its known limit), so the step says so
    with pytest.raises(fl.IsolationBreach, match="field 'items'") as info:
        fl.run(pipe.replace(isolation="cow"), base_jobs, clock="virtual")
    leaky = info.value.result
    assert leaky is not None and leaky.outputs["fan:b"] is True
    assert leaky.context == base_jobs and leaky.status == "failed"  # nothing merged, put back


def test_the_steps_frame_says_how_each_parallel_isolated_its_branches() -> None:
    class Big(BaseModel):
        docs: list[dict[str, int]] = [{"n": i} for i in range(100)]

    class Small(BaseModel):
        n: int = 0

    def touch(data: Any, ctx: Any) -> None:
        pass

    def run(ctx: BaseModel, isolation: str) -> str:
        par = fl.Parallel({"a": touch}, isolation=isolation, name="fan")
        steps = fl.run(fl.Pipeline(par), ctx, clock="virtual").steps
        assert list(steps[steps.kind == "step"].isolation) == [""]  # a leaf isolates nothing
        return str(steps.set_index("step").loc["fan", "isolation"])

    assert run(Big(), "cow") == "cow"
    assert run(Big(), "eager") == "eager"
    assert run(Small(), "cow") == "eager"  # nothing nested worth sharing: copied eagerly
