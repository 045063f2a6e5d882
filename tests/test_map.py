"""fl.Map: one branch per item at run time, with every Parallel option (issue 21)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import pytest
from pydantic import BaseModel

import flowlab as fl


class Doc(BaseModel):
    id: str
    words: int
    urgent: bool = False


class Ctx(BaseModel):
    docs: list[Doc] = [Doc(id="d1", words=3), Doc(id="d2", words=1), Doc(id="d3", words=2)]
    total: Annotated[int, fl.merge.Sum()] = 0
    seen: Annotated[list[str], fl.merge.Union()] = []
    count: int = 7


async def read(doc: Doc, ctx: Ctx) -> int:
    """Takes ``doc.words`` seconds; adds its words and its id to the context."""
    await asyncio.sleep(doc.words)
    ctx.total += doc.words
    ctx.seen.append(doc.id)
    return doc.words * 10


def by_id(doc: Doc) -> str:
    return doc.id


# ---- items, names, outputs -------------------------------------------------------------------------


def test_map_over_a_field_named_by_key_outputs_in_item_order() -> None:
    result = fl.run(fl.Map(read, over="docs", key=by_id, name="read"), Ctx(), clock="virtual")
    assert result.output == [30, 10, 20]  # item order, not completion order
    assert result.context.total == 6
    assert result.context.seen == ["d1", "d2", "d3"]
    frame = result.branches
    assert list(frame["branch"]) == ["d1", "d2", "d3"]
    assert list(frame["path"]) == ["read:d1", "read:d2", "read:d3"]
    assert list(frame["finished_s"]) == [3.0, 1.0, 2.0]
    assert list(frame["completion_rank"]) == [3, 1, 2]
    assert list(result.steps["path"]) == ["read", "read:d1/read", "read:d2/read", "read:d3/read"]


def test_map_over_the_input_names_branches_by_index() -> None:
    def numbers() -> list[int]:
        return [5, 6, 7]

    def square(n: int) -> int:  # the one-parameter form: step(item)
        return n * n

    result = fl.run(fl.Pipeline(numbers, fl.Map(square)), Ctx(), clock="virtual")
    assert result.output == [25, 36, 49]
    assert list(result.branches["branch"]) == ["0", "1", "2"]
    assert list(result.branches["step"]) == ["map"] * 3


def test_map_over_a_function_of_input_and_context() -> None:
    def pick(data: int, ctx: Ctx) -> list[Doc]:
        return [d for d in ctx.docs if d.words >= data]

    pipe = fl.Pipeline(lambda: 2, fl.Map(read, over=pick, key=by_id, name="long"))
    result = fl.run(pipe, Ctx(), clock="virtual")
    assert result.output == [30, 20]
    assert list(result.branches["branch"]) == ["d1", "d3"]


def test_no_items_is_an_empty_list_and_an_unchanged_context() -> None:
    result = fl.run(fl.Map(read, over="docs"), Ctx(docs=[]), clock="virtual")
    assert result.output == []
    assert len(result.branches) == 0
    assert result.context == Ctx(docs=[])


def test_items_are_isolated_like_the_context() -> None:
    class Rows(BaseModel):
        rows: list[dict[str, int]] = [{"v": 1}, {"v": 2}]

    def scribble(row: dict[str, int], ctx: Rows) -> int:
        row["v"] = 100  # its own copy: neither the context nor a sibling sees it
        return len(ctx.rows)

    result = fl.run(fl.Map(scribble, over="rows", merge="no_merge"), Rows(), clock="virtual")
    assert result.context.rows == [{"v": 1}, {"v": 2}]
    assert result.output == [2, 2]


def test_the_step_may_be_a_pipeline_and_maps_nest() -> None:
    def words(doc: Doc) -> int:
        return doc.words

    def double(n: int) -> int:
        return 2 * n

    inner = fl.Map(lambda n: n + 1, over=lambda data, ctx: range(data), name="inner")
    pipe = fl.Map(fl.Pipeline(words, double, inner), over="docs", key=by_id, name="outer")
    result = fl.run(pipe, Ctx(), clock="virtual")
    assert result.output == [[1, 2, 3, 4, 5, 6], [1, 2], [1, 2, 3, 4]]
    paths = set(result.branches["path"])
    assert {"outer:d2", "outer:d2/inner:0", "outer:d2/inner:1"} <= paths


# ---- every Parallel option -------------------------------------------------------------------------


def test_cap_priority_and_ties_in_item_order() -> None:
    docs = [Doc(id=f"d{i}", words=1, urgent=i in (2, 4)) for i in range(5)]
    pipe = fl.Map(
        read,
        over="docs",
        key=by_id,
        max_concurrency=1,
        priority=lambda doc: 10 if doc.urgent else 0,
        name="read",
    )
    result = fl.run(pipe, Ctx(docs=docs), clock="virtual")
    frame = result.branches.sort_values("started_s")
    assert list(frame["branch"]) == ["d2", "d4", "d0", "d1", "d3"]
    assert list(frame["started_s"]) == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert list(result.branches["priority"]) == [0.0, 0.0, 10.0, 0.0, 10.0]
    assert result.output == [10, 10, 10, 10, 10]


def test_failures_ignored_leave_none_in_their_place() -> None:
    def fragile(doc: Doc) -> str:
        if doc.id == "d2":
            raise ValueError("unreadable")
        return doc.id.upper()

    pipe = fl.Map(fragile, over="docs", key=by_id, on_failure="ignore", name="read")
    result = fl.run(pipe, Ctx(), clock="virtual")
    assert result.output == ["D1", None, "D3"]
    assert list(result.branches["status"]) == ["ok", "failed", "ok"]
    assert "unreadable" in result.branches.loc[1, "error"]


def test_failures_propagate_naming_the_item_branch() -> None:
    def fragile(doc: Doc) -> None:
        if doc.id == "d3":
            raise ValueError("unreadable")

    with pytest.raises(fl.BranchFailed, match=r"step 'read': branch 'd3' failed"):
        fl.run(fl.Map(fragile, over="docs", key=by_id, name="read"), Ctx(), clock="virtual")


def test_branch_timeout_and_step_timeout() -> None:
    pipe = fl.Map(read, over="docs", key=by_id, branch_timeout=2.5, on_failure="ignore")
    result = fl.run(pipe, Ctx(), clock="virtual")
    assert list(result.branches["status"]) == ["timeout", "ok", "ok"]
    assert result.output == [None, 10, 20]
    assert result.context.total == 3

    with pytest.raises(fl.StepTimeout, match=r"timeout=1\.5s"):
        fl.run(fl.Map(read, over="docs", timeout=1.5), Ctx(), clock="virtual")


def test_fail_fast_cancels_the_other_items() -> None:
    async def slow_or_broken(doc: Doc) -> None:
        await asyncio.sleep(doc.words)
        if doc.id == "d2":
            raise ValueError("broken")

    pipe = fl.Map(slow_or_broken, over="docs", key=by_id, on_failure="fail_fast", name="m")
    result = fl.run(pipe, Ctx(), clock="virtual", raise_on_error=False)
    assert list(result.branches["status"]) == ["cancelled", "failed", "cancelled"]
    assert list(result.branches["finished_s"]) == [1.0, 1.0, 1.0]


def test_merge_order_and_include_keys() -> None:
    async def stamp(doc: Doc, ctx: Ctx) -> None:
        await asyncio.sleep(doc.words)
        ctx.count = doc.words

    declared = fl.run(fl.Map(stamp, over="docs"), Ctx(), clock="virtual")
    assert declared.context.count == 2  # the last item wins in declared order
    completion = fl.run(fl.Map(stamp, over="docs", order="completion"), Ctx(), clock="virtual")
    assert completion.context.count == 3  # d1 (3 s) finished last

    with pytest.warns(fl.FlowlabWarning, match=r"'0': count; '1': count; '2': count"):
        kept = fl.run(fl.Map(stamp, over="docs", include_keys=["total"]), Ctx(), clock="virtual")
    assert kept.context.count == 7  # not a key the branches may merge back (and said so)


def test_map_is_a_parallel_for_replace_compare_and_the_lab() -> None:
    pipe = fl.Pipeline(fl.Map(read, over="docs", key=by_id, name="read"))
    [step] = list(pipe.parallels())
    assert isinstance(step, fl.Map)
    deep = pipe.replace({"read": {"max_concurrency": 1}})
    [changed] = list(deep.parallels())
    assert isinstance(changed, fl.Map) and changed.key is by_id and changed.over == "docs"
    assert fl.run(deep, Ctx(), clock="virtual").makespan_s == 6.0

    cmp = fl.compare(pipe, Ctx(), grid={"read.max_concurrency": [1, 3]}, clock="virtual")
    assert list(cmp.frame["makespan_s"]) == [6.0, 3.0]

    lab = fl.Lab(pipe, Ctx())
    lab.show_plots = False
    assert list(lab.controls) == ["read"]
    lab.controls["read"].max_concurrency.value = 2
    lab.controls["read"].cap.value = "fixed"
    lab.run()
    # d1 (0-3 s) beside d2 (0-1 s), then d3 in d2's slot (1-3 s)
    assert lab.history["makespan_s"].iloc[-1] == 3.0
    assert lab.history["read.max_concurrency"].iloc[-1] == 2
    # the progress bar counts a Map's branches as they finish (their number is not declared)
    assert (lab.progress.value, lab.progress_label.value) == (3, "3 / ?")


def test_remerge_replays_a_map_under_another_strategy() -> None:
    async def stamp(doc: Doc, ctx: Ctx) -> None:
        ctx.count += doc.words

    result = fl.run(fl.Map(stamp, over="docs", key=by_id, name="m"), Ctx(), clock="virtual")
    assert result.context.count == 9  # overwrite: the last item's 7 + 2
    assert result.remerge(merge="accumulate").context.count == 7 + 3 + 1 + 2


def test_plots_trace_and_deadlock_watch_see_map_branches() -> None:
    pipe = fl.Map(read, over="docs", key=by_id, name="read")
    result = fl.run(pipe, Ctx(), clock="virtual", detect_deadlocks=True)
    assert result.output == [30, 10, 20]
    ax = fl.plot.timeline(result)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert any("d1" in label for label in labels)
    trace = result.to_chrome_trace()
    assert any(
        "read:d2" in str(e.get("args", {})) or "d2" in e.get("name", "")
        for e in trace["traceEvents"]
    )


def test_a_handle_cancels_one_item_by_name() -> None:
    async def main() -> fl.RunResult:
        handle = fl.start(fl.Map(read, over="docs", key=by_id, name="read"), Ctx())
        asyncio.get_running_loop().call_later(0.5, handle.cancel, "d1")
        return await handle

    from flowlab.engine.clock import run_virtual

    result = run_virtual(main())
    assert list(result.branches["status"]) == ["cancelled", "ok", "ok"]
    assert result.output == [None, 10, 20]
    assert result.branches.loc[0, "reason"] == "cancelled by handle"


@pytest.mark.slow
def test_queued_items_are_records_not_tasks() -> None:
    peak_tasks = 0

    async def instant(n: int) -> int:
        nonlocal peak_tasks
        peak_tasks = max(peak_tasks, len(asyncio.all_tasks()))
        await asyncio.sleep(0)
        return n

    pipe = fl.Map(instant, over=lambda data, ctx: range(10_000), max_concurrency=4)
    result = fl.run(pipe, Ctx(), clock="virtual")
    assert result.output == list(range(10_000))
    assert len(result.branches) == 10_000
    assert peak_tasks <= 4 + 2  # the run's own task(s) and at most 4 branches


# ---- bad input -------------------------------------------------------------------------------------


def test_duplicate_keys_are_a_config_error_naming_them() -> None:
    docs = [Doc(id="a", words=1), Doc(id="b", words=1), Doc(id="a", words=2)]
    with pytest.raises(fl.ConfigError) as info:
        fl.run(fl.Map(read, over="docs", key=by_id, name="read"), Ctx(docs=docs), clock="virtual")
    message = str(info.value)
    assert "step 'read'" in message and "'a' (items [0, 2])" in message
    assert "'b'" not in message


@pytest.mark.parametrize(
    ("ctx", "words"),
    [
        (Ctx(count=5), ["step 'm'", "over='count'", "gave 5 (int)", "not iterable"]),
        (Ctx(seen=[]), []),  # a list is fine (control)
    ],
)
def test_a_non_iterable_over_is_an_error_naming_the_step_and_value(
    ctx: Ctx, words: list[str]
) -> None:
    over = "count" if words else "seen"
    if not words:
        assert fl.run(fl.Map(print, over=over, name="m"), ctx, clock="virtual").output == []
        return
    with pytest.raises(fl.FlowlabError) as info:
        fl.run(fl.Map(print, over=over, name="m"), ctx, clock="virtual")
    for word in words:
        assert word in str(info.value)


def test_a_string_is_not_taken_as_items() -> None:
    pipe = fl.Pipeline(lambda: "abc", fl.Map(print, name="m"))
    with pytest.raises(fl.ConfigError, match=r"gave 'abc' \(str\), which is a string.*\[item\]"):
        fl.run(pipe, Ctx(), clock="virtual")


def test_an_unknown_field_fails_before_anything_runs() -> None:
    ran: list[int] = []
    pipe = fl.Pipeline(lambda: ran.append(1), fl.Map(print, over="documents", name="m"))
    with pytest.raises(fl.ConfigError, match=r"over='documents'.*choose one of 'docs'"):
        fl.run(pipe, Ctx(), clock="virtual")
    assert ran == []


@pytest.mark.parametrize(
    ("make", "pattern"),
    [
        (lambda: fl.Map(5), r"step=5 is not valid"),
        (lambda: fl.Map(print, over=5), r"over=5 is not valid"),
        (lambda: fl.Map(print, over=""), r"over='' is not valid"),
        (
            lambda: fl.Map(print, over=lambda data: [data]),
            r"over=.* cannot be called with 2 arguments",
        ),
        (lambda: fl.Map(print, key="id"), r"key='id' is not valid; give a function"),
        (lambda: fl.Map(print, priority={"a": 1}), r"priority=\{'a': 1\} is not valid"),
        (lambda: fl.Map(print, merge="sideways"), r"merge="),
        (lambda: fl.Map(print, max_concurrency=0), r"max_concurrency=0"),
        (lambda: fl.Map(print, on_failure="retry"), r"on_failure='retry'"),
        (lambda: fl.Map(print).replace(colour="red"), r"'colour' is not a Map option"),
    ],
)
def test_bad_arguments_at_construction(make: Any, pattern: str) -> None:
    with pytest.raises(fl.ConfigError, match=pattern):
        make()


def test_a_key_that_raises_fails_the_step_naming_it() -> None:
    def broken_key(doc: Doc) -> str:
        return doc.title  # type: ignore[attr-defined]

    with pytest.raises(fl.StepFailed) as info:
        fl.run(fl.Map(read, over="docs", key=broken_key, name="read"), Ctx(), clock="virtual")
    message = str(info.value)
    assert message.startswith("step 'read': key raised AttributeError")
    assert "over='docs'" in message and "no branch started" in message
    assert isinstance(info.value.__cause__, AttributeError)
    assert info.value.errors == {"read": info.value.__cause__}


@pytest.mark.parametrize(
    ("step", "pattern"),
    [
        (fl.Map(print, over="docs", key=lambda d: ""), r"key\(.*\) gave an empty name \(item 0\)"),
        (
            fl.Map(print, over="docs", priority=lambda d: float("nan")),
            r"priority\(.*\) gave nan for branch '0'",
        ),
    ],
)
def test_bad_values_from_key_and_priority(step: fl.Map, pattern: str) -> None:
    with pytest.raises(fl.ConfigError, match=pattern):
        fl.run(step, Ctx(), clock="virtual")
