"""The executor: fan-out, caps, priorities, failures, timeouts, recording (issue 2)."""

from __future__ import annotations

import asyncio
import math
import time
from typing import Annotated, Any

import pytest
from pydantic import BaseModel

import flowlab as fl
from flowlab.engine.clock import run_virtual


class Ctx(BaseModel):
    n: int = 0
    status: str = "new"
    seen: list[str] = []


def sleeper(seconds: float, *, bump: int = 0):
    async def step(data, ctx: Ctx):
        await asyncio.sleep(seconds)
        ctx.n += bump
        return data

    return step


def test_fifty_branches_cap_four_virtual_makespan_is_exact() -> None:
    pipe = fl.Pipeline(
        fl.Parallel({f"b{i}": sleeper(1.0) for i in range(50)}, max_concurrency=4, name="fan")
    )
    result = fl.run(pipe, Ctx(), clock="virtual")
    summary = result.summary()
    assert summary["makespan_s"] == 13.0
    assert summary["peak_concurrency"] == 4
    assert len(result.branches) == 50
    assert sorted(result.branches["completion_rank"].tolist()) == list(range(1, 51))
    assert result.steps.loc[result.steps["kind"] == "parallel", "peak_concurrency"].tolist() == [4]
    assert (result.branches["status"] == "ok").all()


def test_same_pipeline_same_timings_every_time() -> None:
    pipe = fl.Parallel(
        {f"b{i}": sleeper(0.1 * (i % 7) + 0.05) for i in range(20)}, max_concurrency=3, name="fan"
    )
    frames = [fl.run(pipe, Ctx(), clock="virtual").branches for _ in range(3)]
    cols = ["branch", "queued_s", "started_s", "finished_s", "completion_rank"]
    for other in frames[1:]:
        assert other[cols].equals(frames[0][cols])


def test_virtual_time_takes_no_wall_time() -> None:
    pipe = fl.Parallel({f"b{i}": sleeper(3600.0) for i in range(100)}, max_concurrency=10)
    t0 = time.perf_counter()
    result = fl.run(pipe, Ctx(), clock="virtual")
    assert result.makespan_s == 36000.0
    assert time.perf_counter() - t0 < 5.0  # an hour-long sleep per branch never really sleeps


def test_ceil_n_over_k_times_d_for_many_caps() -> None:
    for n, k, d in [(7, 2, 0.5), (10, 3, 2.0), (5, 10, 1.0), (12, 1, 0.25)]:
        pipe = fl.Parallel({f"b{i}": sleeper(d) for i in range(n)}, max_concurrency=k)
        assert fl.run(pipe, Ctx(), clock="virtual").makespan_s == math.ceil(n / k) * d


def test_caller_context_is_never_mutated_and_output_is_declared_order() -> None:
    async def a(data, ctx: Ctx):
        await asyncio.sleep(2)
        ctx.seen.append("a")
        return "A"

    async def b(data, ctx: Ctx):
        await asyncio.sleep(1)
        ctx.seen.append("b")
        return "B"

    start = Ctx()
    result = fl.run(fl.Parallel({"a": a, "b": b}, name="fan"), start, clock="virtual")
    assert start == Ctx()
    assert list(result.output) == ["a", "b"]
    assert result.output == {"a": "A", "b": "B"}
    ranks = dict(zip(result.branches["branch"], result.branches["completion_rank"], strict=True))
    assert ranks == {"a": 2, "b": 1}


def test_priority_starts_higher_first_ties_in_declared_order() -> None:
    order: list[str] = []

    def tag(name: str):
        async def step(data, ctx):
            order.append(name)
            await asyncio.sleep(1)

        return step

    names = ["a", "b", "c", "d", "e"]
    pipe = fl.Parallel(
        {n: tag(n) for n in names}, max_concurrency=1, priority={"d": 10, "b": 5, "e": 5}
    )
    fl.run(pipe, Ctx(), clock="virtual")
    # All five queue in the same instant, so even the first slot goes by priority.
    assert order == ["d", "b", "e", "a", "c"]


def test_sync_steps_run_in_threads_and_do_not_stall_siblings() -> None:
    def blocking(data, ctx: Ctx):
        time.sleep(0.3)
        ctx.status = "blocked"
        return "sync"

    async def quick(data, ctx: Ctx):
        for _ in range(3):
            await asyncio.sleep(0.01)
        return "async"

    result = fl.run(fl.Parallel({"slow": blocking, "fast": quick}, name="fan"), Ctx())
    rows = result.branches.set_index("branch")
    assert rows.loc["fast", "finished_s"] < rows.loc["slow", "finished_s"]
    assert result.context.status == "blocked"
    assert result.output == {"slow": "sync", "fast": "async"}


def test_step_arities_and_data_flow() -> None:
    def no_args():
        return 1

    def one_arg(x):
        return x + 1

    async def two_args(x, ctx: Ctx):
        ctx.n = x
        return x * 10

    result = fl.run(fl.Pipeline(no_args, one_arg, two_args), Ctx(), clock="virtual")
    assert result.output == 20
    assert result.context.n == 2


def test_nested_parallels_and_pipelines_as_branches() -> None:
    inner = fl.Parallel(
        {"x": sleeper(1, bump=1), "y": sleeper(2, bump=1)}, merge="accumulate", name="inner"
    )
    pipe = fl.Pipeline(
        fl.Parallel(
            {"a": fl.Pipeline(sleeper(1), inner), "b": sleeper(1, bump=5)},
            merge="accumulate",
            name="outer",
        )
    )
    result = fl.run(pipe, Ctx(), clock="virtual")
    assert result.context.n == 7
    assert result.makespan_s == 3.0
    nested = result.branches[result.branches["step"] == "inner"]
    assert set(nested["branch"]) == {"x", "y"}
    assert set(nested["parent"]) == {"outer:a"}


def boom(data, ctx):
    raise ValueError("bad input row 7")


def test_propagate_lets_siblings_finish_then_raises_with_partial_result() -> None:
    pipe = fl.Parallel({"ok": sleeper(2, bump=1), "bad": boom}, name="fan")
    start = Ctx()
    with pytest.raises(fl.BranchFailed, match="bad input row 7") as info:
        fl.run(pipe, start, clock="virtual")
    result = info.value.result
    assert result is not None
    assert result.status == "failed"
    statuses = dict(zip(result.branches["branch"], result.branches["status"], strict=True))
    assert statuses == {"ok": "ok", "bad": "failed"}
    assert isinstance(info.value.__cause__, ValueError)
    assert result.context.n == 0  # nothing merged when the step fails
    assert start == Ctx()


def test_many_failed_branches_are_summed_up_not_listed() -> None:
    pipe = fl.Parallel({f"b{i}": boom for i in range(40)}, name="fan")
    with pytest.raises(fl.BranchFailed) as info:
        fl.run(pipe, Ctx(), clock="virtual")
    message = str(info.value)
    assert "branch 'b0', 'b1', 'b2', 'b3', 'b4' and 35 more (40 in all; see .errors)" in message
    assert "'b5'" not in message and len(info.value.errors) == 40


def test_fail_fast_cancels_siblings_at_once() -> None:
    async def late_boom(data, ctx):
        await asyncio.sleep(1)
        raise RuntimeError("late")

    pipe = fl.Parallel({"slow": sleeper(100), "bad": late_boom}, on_failure="fail_fast", name="fan")
    result = fl.run(pipe, Ctx(), clock="virtual", raise_on_error=False)
    rows = result.branches.set_index("branch")
    assert rows.loc["slow", "status"] == "cancelled"
    assert rows.loc["slow", "finished_s"] == 1.0
    assert "fail_fast" in rows.loc["slow", "reason"]
    assert result.makespan_s == 1.0


def test_ignore_merges_the_successful_branches() -> None:
    pipe = fl.Parallel(
        {"ok": sleeper(1, bump=3), "bad": boom}, on_failure="ignore", merge="accumulate"
    )
    result = fl.run(pipe, Ctx(), clock="virtual")
    assert result.status == "ok"
    assert result.context.n == 3
    assert result.output == {"ok": None}


def test_branch_timeout_marks_timeout_and_no_hidden_timeout_by_default() -> None:
    pipe = fl.Parallel(
        {"quick": sleeper(1, bump=1), "stuck": sleeper(10_000, bump=100)},
        branch_timeout=5,
        on_failure="ignore",
        merge="accumulate",
    )
    result = fl.run(pipe, Ctx(), clock="virtual")
    rows = result.branches.set_index("branch")
    assert rows.loc["stuck", "status"] == "timeout"
    assert rows.loc["stuck", "finished_s"] == 5.0
    assert result.context.n == 1
    # With no timeout at all, a very long branch simply runs to completion.
    long = fl.run(fl.Parallel({"long": sleeper(100_000)}), Ctx(), clock="virtual")
    assert long.makespan_s == 100_000.0


def test_step_timeout_and_run_timeout_raise_steptimeout() -> None:
    pipe = fl.Parallel({"a": sleeper(10), "b": sleeper(1, bump=1)}, timeout=3, name="fan")
    with pytest.raises(fl.StepTimeout) as info:
        fl.run(pipe, Ctx(), clock="virtual")
    res = info.value.result
    assert res is not None and res.status == "timeout"
    assert dict(zip(res.branches["branch"], res.branches["status"], strict=True)) == {
        "a": "timeout",
        "b": "ok",
    }
    with pytest.raises(fl.StepTimeout, match="timeout=2s"):
        fl.run(fl.Pipeline(sleeper(5)), Ctx(), clock="virtual", timeout=2)
    leaf = fl.Step(sleeper(5), name="leaf", timeout=1)
    with pytest.raises(fl.StepTimeout, match="leaf"):
        fl.run(leaf, Ctx(), clock="virtual")


def test_no_task_outlives_the_run() -> None:
    async def main() -> set[asyncio.Task[object]]:
        before = asyncio.all_tasks()
        pipe = fl.Parallel(
            {"ok": sleeper(1), "bad": boom, "slow": sleeper(50)}, on_failure="fail_fast"
        )
        await fl.arun(pipe, Ctx(), raise_on_error=False)
        return asyncio.all_tasks() - before

    assert run_virtual(main()) == set()


def test_include_keys_copies_and_merges_only_those_fields() -> None:
    async def touch(data, ctx: Ctx):
        ctx.n = 42
        ctx.status = "changed"

    with pytest.warns(fl.FlowlabWarning, match="status"):  # a write left out is said so
        result = fl.run(fl.Parallel({"a": touch}, include_keys=["n"]), Ctx(), clock="virtual")
    assert result.context.n == 42
    assert result.context.status == "new"


def test_frames_have_documented_columns_and_dtypes() -> None:
    result = fl.run(
        fl.Parallel({"a": sleeper(1, bump=1), "b": boom}, on_failure="ignore"),
        Ctx(),
        clock="virtual",
    )
    b = result.branches
    for col in ["step", "branch", "priority", "queued_s", "started_s", "finished_s", "wait_s",
                "duration_s", "status", "error", "completion_rank", "cost", "tokens"]:  # fmt: skip
        assert col in b.columns
    assert b["status"].dtype == "category"
    assert b["duration_s"].dtype == "float64"
    assert "merge_s" in result.steps.columns
    assert {"step", "branch", "path", "op", "before", "after"} <= set(result.diffs.columns)
    assert {"step", "path", "rule", "writers", "winner", "before", "after", "conflict"} <= set(
        result.merges.columns
    )
    kinds = set(result.events["kind"])
    assert {"branch_queued", "branch_started", "branch_finished", "merge_applied"} <= kinds
    assert "RunResult" in result._repr_html_()


def test_failing_instrument_is_disabled_logged_and_recorded_and_the_run_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken(fl.Instrument):
        calls = 0

        def branch_started(self, record):
            Broken.calls += 1
            raise RuntimeError("observer bug")

    # no warning (filterwarnings=error would make one fatal): a log record and an events row
    with caplog.at_level("WARNING", logger="flowlab"):
        result = fl.run(
            fl.Parallel({"a": sleeper(1), "b": sleeper(1)}),
            Ctx(),
            clock="virtual",
            instruments=[Broken()],
        )
    assert result.status == "ok"
    assert Broken.calls == 1
    assert any("observer bug" in rec.getMessage() for rec in caplog.records)
    disabled = result.events[result.events["kind"] == "instrument_disabled"]
    assert len(disabled) == 1
    assert "RuntimeError: observer bug in branch_started()" in disabled["detail"].iloc[0]


def test_an_instrument_hears_only_the_hooks_it_overrides() -> None:
    heard: list[str] = []

    class Finishes(fl.Instrument):
        def branch_finished(self, record):
            heard.append(record.branch)

    class Duck:  # no Instrument: every hook it has is called
        def step_started(self, record):
            heard.append(f"step {record.name}")

    from flowlab.engine.instruments import Hooks

    hooks = Hooks([Finishes(), Duck()])
    assert "branch_finished" in hooks and "step_started" in hooks
    assert "branch_started" not in hooks and "merge_applied" not in hooks
    fl.run(fl.Parallel({"a": sleeper(1), "b": sleeper(2)}), Ctx(), clock="virtual",
           instruments=[Finishes()])  # fmt: skip
    assert heard == ["a", "b"]


def test_last_result_is_kept_for_failed_runs() -> None:
    with pytest.raises(fl.BranchFailed):
        fl.run(fl.Parallel({"bad": boom}), Ctx(), clock="virtual")
    last = fl.last_result()
    assert last is not None and last.status == "failed"
    assert last.branches["status"].tolist() == ["failed"]


class Point(BaseModel):
    x: int = 0


def test_recorded_values_stay_as_the_merge_wrote_them() -> None:
    # Values pydantic passes through unvalidated (Any, model instances) are the very objects the
    # merged context holds: a later in-place change must not rewrite the recorded frames.
    class Notes(BaseModel):
        log: Any = None
        point: Point = Point()

    async def write(data, ctx: Notes) -> None:
        ctx.log = ["merged"]
        ctx.point = Point(x=1)

    async def scribble(data, ctx: Notes) -> None:
        ctx.log.append("later")
        ctx.point.x = 99

    inner = fl.Parallel({"a": write}, name="inner")
    pipe = fl.Parallel({"outer": fl.Pipeline(inner, scribble)}, name="fan")
    result = fl.run(pipe, Notes(), clock="virtual")
    assert result.context.log == ["merged", "later"] and result.context.point.x == 99
    result.context.log.append("by the user")  # after the run, before the frames are built
    merges = result.merges.set_index(["step", "path"])
    assert merges.loc[("inner", "log"), "after"] == ["merged"]
    assert merges.loc[("inner", "point.x"), "after"] == 1
    assert merges.loc[("fan", "log"), "after"] == ["merged", "later"]
    diffs = result.diffs.set_index(["step", "branch", "path"])
    assert diffs.loc[("inner", "a", "log"), "after"] == ["merged"]
    assert diffs.loc[("inner", "a", "point.x"), "after"] == 1


class _Witness(fl.Instrument):
    """Writes down each Parallel and branch event as the engine reports it, as the event log
    spells it: (time_s, kind, step, branch, detail)."""

    def __init__(self) -> None:
        self.seen: list[tuple[float, str, str, str, str]] = []

    def step_started(self, record: Any) -> None:
        if record.kind == "parallel":
            self.seen.append((record.started, "step_started", record.path, "", ""))

    def step_finished(self, record: Any) -> None:
        if record.kind == "parallel":
            self.seen.append((record.finished, "step_finished", record.path, "", record.status))

    def _branch(self, kind: str, t: float, record: Any, detail: str = "") -> None:
        step = record.path[: -len(record.branch) - 1]
        self.seen.append((t, kind, step, record.path, detail))

    def branch_queued(self, record: Any) -> None:
        self._branch("branch_queued", record.queued, record)

    def branch_started(self, record: Any) -> None:
        self._branch("branch_started", record.started, record)

    def branch_finished(self, record: Any) -> None:
        self._branch("branch_finished", record.finished, record, record.status)


def test_event_log_lists_every_branch_event_in_the_order_it_happened() -> None:
    # The engine logs a branch's events as its record (no tuple per event); the log, spelled
    # out, must read as an instrument saw them: order, times, kinds and final statuses. Nested
    # steps, branch names with ':', a cap, a failure that cancels running and queued branches.
    async def slow(data: Any, ctx: Ctx) -> None:
        await asyncio.sleep(5)

    inner = fl.Parallel({"x:1": sleeper(1), "y": sleeper(2)}, max_concurrency=1, name="in:ner")
    pipe = fl.Pipeline(
        fl.Parallel(
            {"a": sleeper(1), "nest": inner, "bad": boom, "slow": slow, "q1": slow, "q2": slow},
            max_concurrency=4,
            on_failure="fail_fast",
            name="fan",
        )
    )
    witness = _Witness()
    with pytest.raises(fl.BranchFailed):
        fl.run(pipe, Ctx(), clock="virtual", instruments=[witness])
    result = fl.last_result()
    assert result is not None
    log = [
        tuple(row)
        for row in result.events.itertuples(index=False)
        if row.kind.startswith("branch_") or row.kind in ("step_started", "step_finished")
    ]
    assert log == witness.seen
    statuses = dict(zip(result.branches["branch"], result.branches["status"], strict=True))
    assert statuses["q1"] == "cancelled" and statuses["bad"] == "failed"
    never_started = [e for e in log if e[3] == "fan:q2"]
    assert [e[1] for e in never_started] == ["branch_queued", "branch_finished"]
    assert any(e[3] == "fan:nest/in:ner:x:1" for e in log)


def test_one_step_branches_record_the_same_steps_with_or_without_instruments() -> None:
    # Without instruments a one-step branch logs its leaf compactly and the StepRecord is built
    # after the run; with one, the leaf runs through leaf.run_step and is recorded as it goes.
    # Both must give the same steps frame and summary: ok, failed, cancelled by a sibling, a
    # branch timeout, a step that returns a coroutine, and nested steps.
    async def late(data: Any, ctx: Ctx) -> None:
        await asyncio.sleep(3)

    async def forgot_await(data: Any, ctx: Ctx) -> Any:
        return asyncio.sleep(0)

    def pipeline() -> fl.Pipeline:
        inner = fl.Parallel({"x": sleeper(1), "y": sleeper(2)}, max_concurrency=1, name="in")
        timed = fl.Parallel({"t": late, "u": sleeper(1)}, branch_timeout=2, on_failure="ignore")
        return fl.Pipeline(
            fl.Parallel({"a": sleeper(1, bump=1), "nest": inner, "slow": timed}, name="first"),
            fl.Parallel({"ok": sleeper(1), "bad": forgot_await}, on_failure="ignore", name="odd"),
            fl.Parallel(
                {"b": sleeper(2), "boom": boom, "c": late}, on_failure="fail_fast", name="last"
            ),
        )

    frames = []
    for instruments in ([], [fl.Instrument()]):
        with pytest.raises(fl.BranchFailed):
            fl.run(pipeline(), Ctx(), clock="virtual", instruments=instruments)
        result = fl.last_result()
        assert result is not None
        frames.append((result.steps, result.summary()))
    (fast, fast_summary), (slow, slow_summary) = frames
    assert fast_summary == slow_summary
    assert fast.drop(columns="merge_s").equals(slow.drop(columns="merge_s"))  # merge_s: real time
    assert len(fast) == 15  # 5 Parallels, 10 leaves
    statuses = dict(zip(fast["path"], fast["status"], strict=True))
    assert statuses["first:a/step"] == "ok"
    assert statuses["last:c/late"] == "cancelled"
    assert statuses["first:slow/parallel:t/late"] == "cancelled"
    assert statuses["odd:bad/forgot_await"] == "failed"


def test_steps_read_while_leaves_run_show_them_running_and_lose_nothing() -> None:
    from flowlab.engine.current import current_run

    seen: list[list[tuple[str, str]]] = []

    async def peek(data: Any, ctx: Ctx) -> None:
        await asyncio.sleep(1)
        run = current_run()
        assert run is not None
        seen.append([(s.path, s.status) for s in run.recorder.steps])

    result = fl.run(
        fl.Parallel({"long": sleeper(3), "peek": peek}, name="fan"), Ctx(), clock="virtual"
    )
    assert ("fan:long/step", "running") in seen[0]
    steps = result.steps.set_index("path")
    assert steps.loc["fan:long/step", "status"] == "ok"
    assert steps.loc["fan:long/step", "finished_s"] == 3.0
    assert steps.loc["fan:peek/peek", "finished_s"] == 1.0


class Aliased(BaseModel):
    items: list[int] = []
    same_items: list[int] = []
    by_name: dict[str, list[int]] = {}


def test_a_branch_sees_fields_that_share_one_list_as_one_list_and_the_merge_keeps_both() -> None:
    # ctx.same_items = ctx.items (assignment does not validate: one list in two fields). In a
    # branch, as in plain sequential code, appending to one shows in the other.
    base = Aliased(items=[1])
    base.same_items = base.items
    base.by_name = {"x": base.items}
    seen: list[list[int]] = []

    async def add(data: Any, ctx: Aliased) -> None:
        ctx.items.append(2)
        seen.append(list(ctx.same_items))

    for merge in ("overwrite", "accumulate"):
        seen.clear()
        result = fl.run(fl.Parallel({"a": add}, merge=merge), base, clock="virtual")
        assert seen == [[1, 2]]
        merged = result.context
        assert isinstance(merged, Aliased)
        assert merged.items == merged.same_items == merged.by_name["x"] == [1, 2], merge
    assert base.items == [1] and base.same_items is base.items  # the caller's is untouched


class _Mixed(BaseModel):
    count: int = 0
    status: str = "new"
    tags: list[str] = []
    docs: dict[str, int] | None = None


def _mixed_steps() -> dict[str, Any]:
    async def count(data: Any, ctx: _Mixed) -> None:
        ctx.count += 1

    async def status(data: Any, ctx: _Mixed) -> None:
        ctx.status = "done"

    async def tags(data: Any, ctx: _Mixed) -> None:
        ctx.tags.append("t")

    async def docs(data: Any, ctx: _Mixed) -> None:
        ctx.docs = {"d": 1}  # a whole container, where the base had None

    return {"count": count, "status": status, "tags": tags, "docs": docs}


@pytest.mark.parametrize("merge", ["overwrite", "deep", "accumulate"])
def test_no_branch_copy_outlives_its_branch_into_the_merge(merge: str) -> None:
    import gc
    import weakref

    copies: dict[str, weakref.ref[BaseModel]] = {}
    alive_at_merge: list[list[str]] = []

    def keep(name: str, step: Any) -> Any:
        async def wrapped(data: Any, ctx: _Mixed) -> None:
            copies[name] = weakref.ref(ctx)
            await step(data, ctx)

        return wrapped

    class AtMerge(fl.Instrument):
        def merge_applied(self, step: str, rows: list[dict[str, Any]], seconds: float) -> None:
            gc.collect()
            alive_at_merge.append(sorted(n for n, ref in copies.items() if ref() is not None))

    steps = {name: keep(name, step) for name, step in _mixed_steps().items()}
    res = fl.run(fl.Parallel(steps, merge=merge, name="fan"), _Mixed(), instruments=[AtMerge()])
    # the merge reads each branch's changes from its diff: every copy was freed when its
    # branch ended, whatever it changed (plain fields, a list inside, a new container)
    assert sorted(copies) == ["count", "docs", "status", "tags"]
    assert alive_at_merge == [[]]
    assert res.context == _Mixed(count=1, status="done", tags=["t"], docs={"d": 1})


class _Meta(BaseModel):
    tags: Annotated[dict[str, int], fl.merge.Overwrite()] = {}
    seen: Annotated[list[str], fl.merge.KeepFirst()] = []


class _Library(BaseModel):
    docs: dict[str, _Meta] = {}
    notes: Annotated[dict[str, int], fl.merge.Custom(lambda base, values: _union(values))] = {}


def _union(values: dict[str, dict[str, int]]) -> dict[str, int]:
    assert values == {"a": {"n": 0, "a": 1}, "bb": {"n": 0, "bb": 2}}  # each branch's whole dict
    return {key: n for value in values.values() for key, n in value.items()}


@pytest.mark.parametrize("merge", ["deep", "accumulate"])
def test_a_whole_value_rule_below_a_combining_one_gets_each_branch_value(merge: str) -> None:
    # Overwrite / KeepFirst on fields of models inside a dict that deep / accumulate merge key
    # by key: each branch changed those fields inside, so the merge rebuilds each branch's
    # whole value from its changes (its copy is gone).
    def edit(key: str) -> Any:
        async def step(data: Any, ctx: _Library) -> None:
            ctx.docs["d"].tags[key] = 1
            ctx.docs["d"].seen.append(key)
            ctx.notes[key] = len(key)

        return step

    base = _Library(docs={"d": _Meta(tags={"x": 0}, seen=["s"])}, notes={"n": 0})
    res = fl.run(fl.Parallel({"a": edit("a"), "bb": edit("bb")}, merge=merge, name="fan"), base)
    assert res.status == "ok", res.error
    meta = res.context.docs["d"]
    assert meta.tags == {"x": 0, "bb": 1}  # Overwrite: the last branch's whole dict
    assert meta.seen == ["s", "a"]  # KeepFirst: the first branch's whole list
    assert res.context.notes == {"n": 0, "a": 1, "bb": 2}  # Custom, handed each whole dict


def test_a_custom_merge_function_is_handed_every_branch_copy() -> None:
    handed: dict[str, Any] = {}

    def merge(base: _Mixed, branches: dict[str, _Mixed]) -> _Mixed:
        handed.update(branches)
        return base.model_copy(update={"count": sum(b.count for b in branches.values())})

    fl.run(fl.Parallel(_mixed_steps(), merge=merge, name="fan"), _Mixed())
    assert handed["count"].count == 1 and handed["status"].status == "done"
