"""A run always ends and its frames tell the truth (issue 18).

* bookkeeping that raises (a diff or a record of a cyclic or over-deep value) fails its branch
  with a :class:`~flowlab.errors.BookkeepingError`; it never skips the branch's close (the run
  used to wait forever);
* a branch that swallows its cancellation is recorded ``cancelled`` (reason: ignored), never merged;
* a ``BaseException`` raised by a step is recorded, then re-raised as is;
* under a run-wide cap a branch starts when its first leaf gets a slot, and a branch that never got
  one never counts as running;
* the run-wide cap grants slots by priority, ties in declared order;
* a cancel asked for before the run starts is applied before any branch starts; an unknown name is
  a ``ConfigError``;
* charges after a branch ended are refused; totals are exact sums of the branch rows.

Every run that used to hang runs under a watchdog (a real-time ``asyncio.wait_for``).
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest
from pydantic import BaseModel

import flowlab as fl
from flowlab.engine.current import current_run
from flowlab.errors import BookkeepingError

WATCHDOG_S = 20.0  # real seconds; a passing run takes milliseconds


class Ctx(BaseModel):
    n: int = 0
    items: list[Any] = []
    d: dict[str, Any] = {}


def watched(pipe: Any, ctx: BaseModel, **kw: Any) -> fl.RunResult:
    """``fl.arun`` on virtual time, failing the test (not hanging it) if the run never returns."""

    async def main() -> fl.RunResult:
        return await asyncio.wait_for(
            fl.arun(pipe, ctx, clock="virtual", raise_on_error=False, **kw), WATCHDOG_S
        )

    return asyncio.run(main())


async def idle(data: Any, ctx: Ctx) -> str:
    await asyncio.sleep(1)
    ctx.n += 1
    return "b"


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"k": value}
    return value


async def append_itself(data: Any, ctx: Ctx) -> None:
    ctx.items.append(ctx.items)


async def hold_itself(data: Any, ctx: Ctx) -> None:
    ctx.d["self"] = ctx.d


async def add_deep(data: Any, ctx: Ctx) -> None:
    ctx.d["deep"] = nested(600)


def finished_once(result: fl.RunResult) -> None:
    events = result.events
    ends = events.loc[events["kind"] == "branch_finished", "branch"].tolist()
    assert sorted(ends) == sorted(result.branches["path"].tolist())  # one final status each


# ---- 1. bookkeeping that raises ----------------------------------------------------------------
@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("step", "path", "why"),
    [
        (append_itself, "items[1]", "contains itself"),
        (hold_itself, "d.self", "contains itself"),
        (add_deep, "d.deep", "nested"),
    ],
    ids=["list-appended-to-itself", "dict-holding-itself", "dict-600-deep"],
)
def test_an_unrecordable_value_fails_its_branch_and_the_run_returns(
    step: Any, path: str, why: str
) -> None:
    pipe = fl.Parallel({"a": step, "b": idle}, name="fan")
    result = watched(pipe, Ctx(items=[1]))
    assert result.status == "failed"
    rows = result.branches.set_index("branch")
    assert rows.loc["a", "status"] == "failed"
    assert rows.loc["b", "status"] == "ok"
    error = rows.loc["a", "error"]
    assert error.startswith("BookkeepingError")
    assert repr(path) in error and why in error and "'fan:a'" in error
    assert isinstance(result.error, fl.BranchFailed)
    assert isinstance(result.error.errors["a"], BookkeepingError)
    assert result.error.errors["a"].path == path
    assert result.error.errors["a"].__cause__ is not None  # the RecursionError, chained
    finished_once(result)
    assert result.context.items == [1] and result.context.d == {}  # nothing merged


@pytest.mark.timeout(60)
def test_an_unrecordable_branch_is_not_merged_and_its_siblings_are() -> None:
    pipe = fl.Parallel({"a": append_itself, "b": idle}, on_failure="ignore", name="fan")
    result = watched(pipe, Ctx(items=[1]))
    assert result.status == "ok"
    assert result.branches["status"].tolist() == ["failed", "ok"]
    assert result.context.items == [1] and result.context.n == 1
    assert result.output == {"b": "b"}


@pytest.mark.timeout(60)
def test_a_diff_that_raises_fails_its_branch_naming_the_field() -> None:
    base: dict[str, Any] = {"n": 0}
    base["self"] = base  # a cyclic base value is fine: isolation copies it

    async def replace_with_cycle(data: Any, ctx: Ctx) -> None:
        new: dict[str, Any] = {"n": 1}
        new["self"] = new
        ctx.d = new  # diffing two different cycles recurses forever

    pipe = fl.Parallel({"a": replace_with_cycle, "b": idle}, name="fan")
    result = watched(pipe, Ctx(d=base), record=False)
    assert result.status == "failed"
    rows = result.branches.set_index("branch")
    assert rows.loc["a", "status"] == "failed"
    err = result.error.errors["a"]  # type: ignore[union-attr]
    assert isinstance(err, BookkeepingError) and err.path == "d" and err.stage == "diff"
    assert "could not be diffed" in str(err) and "RecursionError" in str(err)
    assert result.context.n == 0


@pytest.mark.timeout(60)
def test_a_failed_or_cancelled_branch_whose_record_fails_keeps_its_own_status() -> None:
    async def breaks_after(data: Any, ctx: Ctx) -> None:
        ctx.items.append(ctx.items)
        raise ValueError("own error")

    async def cancelled_after(data: Any, ctx: Ctx) -> None:
        ctx.d["self"] = ctx.d
        await asyncio.sleep(5)

    async def canceller(data: Any, ctx: Ctx) -> None:
        await asyncio.sleep(1)
        run = current_run()
        assert run is not None
        run.cancel("c")

    pipe = fl.Parallel(
        {"a": breaks_after, "b": canceller, "c": cancelled_after}, on_failure="ignore"
    )
    result = watched(pipe, Ctx(items=[1]))
    rows = result.branches.set_index("branch")
    assert rows.loc["a", "status"] == "failed"
    assert rows.loc["a", "error"].startswith("ValueError: own error")
    assert "BookkeepingError" in rows.loc["a", "error"]  # noted, not hidden
    assert rows.loc["c", "status"] == "cancelled"
    assert "BookkeepingError" in rows.loc["c", "error"]
    finished_once(result)


@pytest.mark.timeout(60)
def test_a_merge_record_that_cannot_be_made_fails_the_step_and_leaves_the_context() -> None:
    # record=False: no diff is recorded, but the merge report still is.
    pipe = fl.Parallel({"a": append_itself, "b": idle}, merge="deep", name="fan")
    result = watched(pipe, Ctx(items=[1]), record=False)
    assert result.status == "failed"
    assert isinstance(result.error, fl.FlowlabError)
    assert "contains itself" in str(result.error)
    assert result.context.items == [1] and result.context.n == 0  # nothing half-applied


# ---- 2. a branch that swallows its cancellation ------------------------------------------------
async def stubborn(data: Any, ctx: Ctx) -> str:
    try:
        await asyncio.sleep(10)
    except asyncio.CancelledError:
        pass  # swallowed
    ctx.n += 100
    return "late"


async def cancel_a(data: Any, ctx: Ctx) -> str:
    await asyncio.sleep(1)
    run = current_run()
    assert run is not None
    run.cancel("a")
    return "b"


def test_a_branch_that_swallows_a_handle_cancel_is_cancelled_and_not_merged() -> None:
    pipe = fl.Parallel({"a": stubborn, "b": cancel_a}, merge="accumulate")
    result = watched(pipe, Ctx())
    assert result.status == "ok"
    rows = result.branches.set_index("branch")
    assert rows.loc["a", "status"] == "cancelled"
    assert "cancelled by handle" in rows.loc["a", "reason"]
    assert "ignored" in rows.loc["a", "reason"]
    assert result.context.n == 0
    assert result.output == {"b": "b"}


def test_a_branch_that_swallows_the_run_timeout_is_not_ok() -> None:
    pipe = fl.Parallel({"a": stubborn, "b": idle})
    result = watched(pipe, Ctx(), timeout=0.5)
    assert result.status == "timeout"
    rows = result.branches.set_index("branch")
    assert rows.loc["a", "status"] == "cancelled"
    assert "ignored" in rows.loc["a", "reason"]
    assert "ok" not in result.branches["status"].tolist()


def test_a_branch_that_swallows_its_branch_timeout_times_out() -> None:
    pipe = fl.Parallel({"a": stubborn, "b": idle}, branch_timeout=1.5, on_failure="ignore")
    result = watched(pipe, Ctx())
    rows = result.branches.set_index("branch")
    assert rows.loc["a", "status"] == "timeout"
    assert "ignored" in rows.loc["a", "reason"]
    assert result.context.n == 1  # b merged, a not


def test_a_step_that_swallows_its_cancellation_stops_its_branchs_next_steps() -> None:
    # found by the stress suite: the swallowing step returned and the branch's next step ran on
    # (3 s past a 1.5 s branch timeout, siblings of a fail_fast step running after the failure)
    started: list[str] = []

    async def then(data: Any, ctx: Ctx) -> None:
        started.append("then")
        ctx.n += 1000
        await asyncio.sleep(3)

    pipe = fl.Parallel(
        {"a": fl.Pipeline(stubborn, then), "b": idle}, branch_timeout=1.5, on_failure="ignore"
    )
    result = watched(pipe, Ctx())
    rows = result.branches.set_index("branch")
    assert started == []
    assert rows.loc["a", "status"] == "timeout"
    assert rows.loc["a", "finished_s"] == 1.5
    assert result.context.n == 1  # b merged, a not


def test_a_step_that_swallows_its_own_timeout_is_a_timeout_not_ok() -> None:
    # found by the stress suite: asyncio.timeout uncancels a swallowed cancellation, so the step
    # looked ok although it overran its timeout
    pipe = fl.Parallel(
        {"a": fl.Step(stubborn, timeout=2.0), "b": idle}, merge="accumulate", on_failure="ignore"
    )
    result = watched(pipe, Ctx())
    rows = result.branches.set_index("branch")
    assert rows.loc["a", "status"] == "timeout"
    assert "caught the cancellation" in rows.loc["a", "error"]
    assert result.context.n == 1  # a's late write is not merged


# ---- 3. a BaseException from a step -----------------------------------------------------------
class Boom(BaseException):
    pass


async def boom(data: Any, ctx: Ctx) -> None:
    await asyncio.sleep(0.5)
    raise Boom("bang")


@pytest.mark.parametrize("where", ["branch", "top"])
def test_a_base_exception_is_recorded_then_raised_as_is(where: str) -> None:
    before = fl.run(fl.Parallel({"b": idle}), Ctx(), clock="virtual")
    pipe = fl.Parallel({"a": boom, "b": idle}, name="fan") if where == "branch" else boom
    with pytest.raises(Boom, match="bang"):
        fl.run(pipe, Ctx(), clock="virtual", raise_on_error=False)
    result = fl.last_result()
    assert result is not None and result is not before
    assert result.status == "failed"
    assert isinstance(result.error, Boom)
    if where == "branch":
        rows = result.branches.set_index("branch")
        assert rows.loc["a", "status"] == "failed"
        assert rows.loc["a", "error"] == "Boom: bang"
        assert rows.loc["b", "status"] == "cancelled"
    else:
        assert result.steps["status"].tolist() == ["failed"]


def test_a_base_exception_reaches_await_handle_after_the_run_is_recorded() -> None:
    async def main() -> None:
        handle = fl.start(fl.Parallel({"a": boom, "b": idle}), Ctx(), clock="virtual")
        with pytest.raises(Boom):
            await asyncio.wait_for(handle, WATCHDOG_S)
        result = await handle.wait()
        assert result.status == "failed" and isinstance(result.error, Boom)

    asyncio.run(main())


# ---- 4. frames under a run-wide cap -----------------------------------------------------------
async def one(data: Any, ctx: Ctx) -> None:
    await asyncio.sleep(1)


def test_a_multi_step_branch_starts_with_its_first_step() -> None:
    pipe = fl.Parallel(
        {f"b{i}": fl.Pipeline(one, fl.Step(one, name="two")) for i in range(3)}, name="fan"
    )
    result = watched(pipe, Ctx(), max_concurrency=1)
    frame = result.branches.set_index("branch")
    # equal priorities: slots in declared order, a branch's next step included (b0/two goes
    # before b1/one, which has waited longer)
    assert frame["started_s"].tolist() == [0.0, 2.0, 4.0]
    assert frame["wait_s"].tolist() == [0.0, 2.0, 4.0]
    assert frame["finished_s"].tolist() == [2.0, 4.0, 6.0]
    assert frame["duration_s"].tolist() == [2.0, 2.0, 2.0]
    starts = result.events.loc[result.events["kind"] == "branch_started", "time_s"].tolist()
    assert sorted(starts) == [0.0, 2.0, 4.0]
    steps = result.steps.set_index("path")
    assert steps.loc["fan:b1/one", ["queued_s", "started_s"]].tolist() == [0.0, 2.0]


def test_a_branch_cancelled_before_its_first_slot_never_started() -> None:
    pipe = fl.Parallel({f"b{i}": one for i in range(5)}, name="fan")
    result = watched(pipe, Ctx(), max_concurrency=2, timeout=1.5)
    frame = result.branches.set_index("branch")
    assert frame.loc[["b0", "b1", "b2", "b3"], "started_s"].tolist() == [0.0, 0.0, 1.0, 1.0]
    assert math.isnan(frame.loc["b4", "started_s"])
    assert math.isnan(frame.loc["b4", "duration_s"])
    assert frame.loc["b4", "wait_s"] == 1.5
    # never counted as running: at no time are more than 2 branches between start and finish
    spans = [(s, f) for s, f in zip(frame["started_s"], frame["finished_s"], strict=True) if s == s]
    for t in [0.0, 0.5, 1.0, 1.25]:
        assert sum(s <= t < f for s, f in spans) <= 2
    started = result.events.loc[result.events["kind"] == "branch_started", "branch"].tolist()
    assert "fan:b4" not in started
    finished_once(result)


def test_a_branch_starts_when_its_first_leaf_gets_a_slot() -> None:
    inner = fl.Parallel({"x": one, "y": one}, name="inner")
    two = fl.Step(one, name="two")
    pipe = fl.Parallel(
        {"a": one, "b": inner, "c": fl.Pipeline(one, inner), "d": fl.Pipeline(inner, two)},
        name="outer",
    )
    result = watched(pipe, Ctx(), max_concurrency=1)
    frame = result.branches.set_index("path")
    # slots in tree order: a, b/x, b/y, c/one, c/x, c/y, d/x, d/y, d/two -- c's next step (a
    # Parallel, its leaves a few task hops away) still goes before d, which waited since 0
    starts = result.steps.loc[result.steps["kind"] == "step"].sort_values("started_s")
    assert starts["path"].tolist() == [
        "outer:a/one",
        "outer:b/inner:x/one",
        "outer:b/inner:y/one",
        "outer:c/one",
        "outer:c/inner:x/one",
        "outer:c/inner:y/one",
        "outer:d/inner:x/one",
        "outer:d/inner:y/one",
        "outer:d/two",
    ]
    assert starts["started_s"].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]
    started = frame["started_s"].to_dict()
    assert [started[f"outer:{b}"] for b in "abcd"] == [0.0, 1.0, 3.0, 6.0]
    assert frame.loc["outer:d", "wait_s"] == 6.0


# ---- 5. the run-wide cap grants slots by priority ----------------------------------------------
def test_the_run_cap_grants_a_branchs_next_step_by_priority() -> None:
    two = fl.Step(one, name="two")
    pipe = fl.Parallel(
        {"lo": fl.Pipeline(one, two), "hi": fl.Pipeline(one, two)}, priority={"hi": 10}
    )
    result = watched(pipe, Ctx(), max_concurrency=1)
    frame = result.branches.set_index("branch")
    assert frame.loc["hi", ["started_s", "finished_s"]].tolist() == [0.0, 2.0]
    assert frame.loc["lo", ["started_s", "finished_s"]].tolist() == [2.0, 4.0]


def test_the_run_cap_orders_nested_branches_by_their_place_in_the_tree() -> None:
    two = fl.Step(one, name="two")
    inner = fl.Parallel({"x": fl.Pipeline(one, two), "y": one}, priority={"y": 1}, name="in")
    pipe = fl.Parallel({"a": fl.Pipeline(one, two), "b": inner}, priority={"b": 5}, name="out")
    result = watched(pipe, Ctx(), max_concurrency=1)
    starts = result.steps.loc[result.steps["kind"] == "step"].sort_values("started_s")
    assert starts["path"].tolist() == [
        "out:b/in:y/one",  # b outranks a; inside b, y outranks x
        "out:b/in:x/one",
        "out:b/in:x/two",  # x's next step before a, which has waited since 0
        "out:a/one",
        "out:a/two",
    ]


# ---- 6. cancels asked for before the run starts; unknown names -------------------------------
def test_a_cancel_right_after_a_background_start_is_applied_before_any_branch_starts() -> None:
    pipe = fl.Parallel({"a": one, "b": one, "c": one}, name="fan")
    for _ in range(30):  # it used to be lost 12-46 % of the time: the run finished first
        handle = fl.start(pipe, Ctx(), clock="virtual")  # no loop here: a helper thread
        handle.cancel("b")
        result = handle.result()
        row = result.branches.set_index("branch").loc["b"]
        assert row["status"] == "cancelled" and row["reason"] == "cancelled by handle"
        assert math.isnan(row["started_s"])
        assert result.branches["status"].tolist() == ["ok", "cancelled", "ok"]


def test_a_cancel_right_after_start_in_a_running_loop_is_applied_before_dispatch() -> None:
    from flowlab.engine.clock import new_loop

    async def main() -> fl.RunResult:
        handle = fl.start(fl.Parallel({"a": one, "b": one}), Ctx(), clock="virtual")
        handle.cancel("b")  # the run is a task that has not run a line yet
        return await handle.wait()

    with asyncio.Runner(loop_factory=lambda: new_loop("virtual")) as runner:
        result = runner.run(main())
    row = result.branches.set_index("branch").loc["b"]
    assert row["status"] == "cancelled"
    assert math.isnan(row["started_s"])  # it never started: cancelled while queued


def test_cancelling_a_branch_no_step_declares_is_a_config_error() -> None:
    inner = fl.Parallel({"alpha": one, "beta": one}, name="inner")
    pipe = fl.Parallel({"x": inner, "y": one}, name="fan")
    handle = fl.start(pipe, Ctx(), clock="virtual")
    with pytest.raises(fl.ConfigError, match=r"branch='alpah'.*did you mean 'alpha'"):
        handle.cancel("alpah")
    handle.cancel("fan:x/inner:beta")  # full paths are names too
    handle.cancel("y")
    result = handle.result()
    assert result.branches.set_index("branch")["status"].to_dict() == {
        "x": "ok",
        "y": "cancelled",
        "alpha": "ok",
        "beta": "cancelled",
    }


# ---- 7. charges: exact totals, none after a branch ended --------------------------------------
def test_a_thousand_tiny_charges_add_up() -> None:
    async def tiny(data: Any, ctx: Ctx) -> None:
        for _ in range(1000):
            fl.charge(cost=1e-13, tokens=1)

    result = watched(fl.Parallel({"a": tiny, "b": tiny}), Ctx())
    assert result.branches["cost"].tolist() == pytest.approx([1e-10, 1e-10], rel=1e-9)
    assert result.cost == pytest.approx(2e-10, rel=1e-9)
    assert result.cost == pytest.approx(result.branches["cost"].sum(), rel=1e-12)
    assert result.tokens == 2000 == result.branches["tokens"].sum()


def test_a_tiny_budget_is_breached_by_tiny_charges() -> None:
    async def tiny(data: Any, ctx: Ctx) -> None:
        for _ in range(1000):
            fl.charge(cost=1e-13)
            await asyncio.sleep(0)

    result = watched(fl.Parallel({"a": tiny}), Ctx(), usage=fl.UsageLimits(cost=5e-11))
    assert result.status == "usage_limit_exceeded"
    assert result.cost == pytest.approx(5.1e-11, rel=1e-6)  # the crossing charge counts


def test_a_charge_from_a_task_that_outlives_its_branch_is_refused() -> None:
    refused: list[BaseException] = []
    forgotten: list[asyncio.Task[None]] = []

    async def spawner(data: Any, ctx: Ctx) -> None:
        fl.charge(cost=0.25)

        async def later() -> None:  # runs in the branch's context, after the branch ended
            await asyncio.sleep(1)
            try:
                fl.charge(cost=0.25)
            except fl.FlowlabError as err:
                refused.append(err)

        forgotten.append(asyncio.ensure_future(later()))

    async def slow(data: Any, ctx: Ctx) -> None:
        await asyncio.sleep(3)

    result = watched(fl.Parallel({"a": spawner, "b": slow}, name="fan"), Ctx())
    assert len(refused) == 1
    assert "'fan:a'" in str(refused[0]) and "ended" in str(refused[0])
    assert result.cost == 0.25 == result.branches["cost"].sum()


def test_a_cancelled_sync_step_that_charges_from_its_thread_is_refused() -> None:
    import threading

    release, charged = threading.Event(), threading.Event()
    refused: list[BaseException] = []

    def blocking(data: Any, ctx: Ctx) -> None:  # a sync step: runs in a worker thread
        release.wait(WATCHDOG_S)
        try:
            fl.charge(cost=0.25)
        except fl.FlowlabError as err:
            refused.append(err)
        finally:
            charged.set()

    async def cancel_then_release(data: Any, ctx: Ctx) -> None:
        # (virtual time stands still while a thread works: no sleeps here)
        for _ in range(3):
            await asyncio.sleep(0)  # a is in its thread by now
        run = current_run()
        assert run is not None
        run.cancel("a")
        await asyncio.sleep(0)
        release.set()
        await asyncio.to_thread(charged.wait, WATCHDOG_S)  # the thread's charge is over
        fl.charge(cost=0.5)

    result = watched(fl.Parallel({"a": blocking, "b": cancel_then_release}), Ctx())
    rows = result.branches.set_index("branch")
    assert rows.loc["a", "status"] == "cancelled"
    assert len(refused) == 1
    assert rows["cost"].tolist() == [0.0, 0.5]
    assert result.cost == 0.5 == rows["cost"].sum()


# ---- 8. a failing plain step is named, and not called a branch --------------------------------
def test_a_failing_plain_step_is_named_in_the_error() -> None:
    from flowlab.errors import StepFailed

    async def load(data: Any, ctx: Ctx) -> None:
        raise ValueError("bad input file")

    with pytest.raises(StepFailed, match=r"^step 'load' failed: ValueError: bad input file$") as e:
        fl.run(fl.Pipeline(idle, load), Ctx(), clock="virtual")
    assert isinstance(e.value, fl.BranchFailed)  # still caught by `except BranchFailed`
    assert "branch" not in str(e.value)
    assert e.value.step == "load" and isinstance(e.value.errors["load"], ValueError)
    assert e.value.__cause__ is e.value.errors["load"]


# ---- frames that lie: the Chrome trace ---------------------------------------------------------
def test_the_trace_keeps_queued_cancelled_branches_limit_moves_and_the_breach() -> None:
    async def spend(data: Any, ctx: Ctx) -> None:
        await asyncio.sleep(1)
        fl.charge(cost=1.0)

    limiter = fl.limits.AIMD(1, 4, latency_target_s=2.0)
    pipe = fl.Parallel({f"b{i}": spend for i in range(6)}, max_concurrency=limiter, name="fan")
    result = watched(pipe, Ctx(), usage=fl.UsageLimits(cost=2.5))
    assert result.status == "usage_limit_exceeded"
    events = result.to_chrome_trace()["traceEvents"]
    tracks = {e["args"]["name"]: e["tid"] for e in events if e["name"] == "thread_name"}
    never = result.branches.loc[result.branches["started_s"].isna()]
    assert len(never) > 0
    for row in never.itertuples():
        (bar,) = [e for e in events if e["ph"] == "X" and e["tid"] == tracks[row.path]]
        assert bar["cat"] == "queue" and bar["args"]["status"] == "cancelled"
        assert bar["dur"] == pytest.approx(row.wait_s * 1e6)
    moves = [e for e in events if e["ph"] == "i" and e["cat"] == "limit"]
    assert len(moves) == len(result.limits) - 1 > 0  # every move; the first row is the start
    (breach,) = [e for e in events if e["ph"] == "i" and e["cat"] == "usage"]
    assert breach["ts"] == pytest.approx(2.0 * 1e6)


def test_a_whole_run_cancelled_right_after_a_background_start_runs_nothing() -> None:
    ran: list[str] = []

    async def note(data: Any, ctx: Ctx) -> None:
        ran.append("ran")

    for _ in range(20):
        handle = fl.start(fl.Parallel({"a": note, "b": note}), Ctx(), clock="virtual")
        handle.cancel()
        result = handle.result()
        assert result.status == "cancelled" and isinstance(result.error, fl.RunCancelled)
        assert result.branches["started_s"].isna().all()
    assert ran == []


def test_cancelling_await_handle_cancels_the_run_it_awaits() -> None:
    import threading

    release = threading.Event()

    def blocking(data: Any, ctx: Ctx) -> None:  # a thread: virtual time stands still meanwhile
        release.wait(WATCHDOG_S)

    async def main() -> fl.RunResult:
        handle = fl.start(fl.Parallel({"a": blocking, "b": one}), Ctx(), clock="virtual")

        async def cell() -> fl.RunResult:
            return await handle  # `r = await h` in a notebook cell

        waiter = asyncio.ensure_future(cell())
        await asyncio.sleep(0)
        waiter.cancel()  # the cell is interrupted
        with pytest.raises(asyncio.CancelledError):
            await waiter
        release.set()
        return await asyncio.wait_for(handle.wait(), WATCHDOG_S)

    result = asyncio.run(main())
    assert result.status == "cancelled"
    assert "ok" not in result.branches["status"].tolist()


def test_default_named_parallels_at_one_level_get_unique_paths() -> None:
    fan = fl.Parallel({"a": one})
    pipe = fl.Pipeline(fan, fl.Parallel({"a": one}), fl.Pipeline(fl.Parallel({"a": one})))
    assert [p.name for p in pipe.parallels()] == ["parallel", "parallel_2", "parallel_3"]
    assert fan.name == "parallel"  # the specs themselves are not changed
    result = watched(pipe, Ctx())
    assert result.branches["path"].tolist() == ["parallel:a", "parallel_2:a", "parallel_3:a"]
    named = fl.Pipeline(fl.Parallel({"a": one}, name="fan"), fl.Parallel({"a": one}, name="fan"))
    assert [p.name for p in named.parallels()] == ["fan", "fan"]  # names given are kept


# ---- kernel interrupts: the cell returns only after the run it interrupted has ended -----------
@pytest.mark.parametrize("how", ["arun", "await-handle"])
def test_an_interrupted_cell_returns_after_the_run_wound_down(how: str) -> None:
    from flowlab.engine.clock import new_loop

    cleaned: list[float] = []

    async def slow_to_clean_up(data: Any, ctx: Ctx) -> None:
        try:
            await asyncio.sleep(100)
        finally:
            await asyncio.sleep(5)  # seconds of clean-up after the interrupt
            cleaned.append(asyncio.get_running_loop().time())

    pipe = fl.Parallel({"a": slow_to_clean_up, "b": slow_to_clean_up})

    async def cell() -> fl.RunResult:
        if how == "arun":
            return await fl.arun(pipe, Ctx(), clock="virtual")
        return await fl.start(pipe, Ctx(), clock="virtual")

    async def main() -> None:
        task = asyncio.ensure_future(cell())
        await asyncio.sleep(1)
        task.cancel()  # the kernel interrupts the cell
        with pytest.raises(asyncio.CancelledError):
            await task
        assert len(cleaned) == 2  # both branches had cleaned up before the cell returned
        result = fl.last_result()
        assert result is not None and result.status == "cancelled"

    with asyncio.Runner(loop_factory=lambda: new_loop("virtual")) as runner:
        runner.run(main())


@pytest.mark.parametrize("how", ["arun", "await-handle"])
def test_an_interrupted_await_is_asyncios_cancel_caused_by_run_interrupted(how: str) -> None:
    from flowlab.engine.clock import new_loop

    async def long(data: Any, ctx: Ctx) -> None:
        await asyncio.sleep(100)

    pipe = fl.Parallel({"a": long, "b": long})

    async def call() -> fl.RunResult:
        if how == "arun":
            return await fl.arun(pipe, Ctx(), clock="virtual")
        return await fl.start(pipe, Ctx(), clock="virtual")

    async def cell() -> BaseException:
        try:
            await call()
        except asyncio.CancelledError as err:
            return err
        raise AssertionError("not cancelled")

    async def main() -> None:
        task = asyncio.ensure_future(cell())
        await asyncio.sleep(1)
        task.cancel()  # the kernel interrupts the cell
        err = await task
        assert type(err) is asyncio.CancelledError  # exactly: asyncio.timeout tests the type
        assert isinstance(err.__cause__, fl.RunInterrupted)
        assert isinstance(err.__cause__, KeyboardInterrupt)
        assert err.__cause__.result is fl.last_result()
        assert err.__cause__.result is not None and err.__cause__.result.status == "cancelled"
        line = ["RunInterrupted: partial result in fl.last_result()"]
        assert err._render_traceback_() == line  # type: ignore[attr-defined]
        with pytest.raises(TimeoutError):  # a timeout around the run is still a timeout
            async with asyncio.timeout(2):
                await call()
        assert fl.last_result().status == "cancelled"  # type: ignore[union-attr]

    with asyncio.Runner(loop_factory=lambda: new_loop("virtual")) as runner:
        runner.run(main())


def test_a_cell_interrupted_twice_returns_after_the_run_wound_down() -> None:
    from flowlab.engine.clock import new_loop

    cleaned: list[float] = []

    async def slow_to_clean_up(data: Any, ctx: Ctx) -> None:
        try:
            await asyncio.sleep(100)
        finally:
            await asyncio.sleep(5)
            cleaned.append(asyncio.get_running_loop().time())

    def interrupt() -> None:  # what the kernel's SIGINT handler does to the running loop
        raise KeyboardInterrupt

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.call_later(1, interrupt)
        loop.call_later(3, interrupt)  # again, while the branches clean up
        with pytest.raises(KeyboardInterrupt):
            fl.run(fl.Parallel({"a": slow_to_clean_up, "b": slow_to_clean_up}), Ctx(),
                   clock="virtual")  # fmt: skip
        assert len(cleaned) == 2
        result = fl.last_result()
        assert result is not None and result.status == "cancelled"

    with asyncio.Runner(loop_factory=lambda: new_loop("virtual")) as runner:
        runner.run(main())


def test_a_run_that_will_not_wind_down_is_named_after_a_bounded_wait() -> None:
    from flowlab.engine.clock import new_loop

    async def never_done(data: Any, ctx: Ctx) -> None:
        try:
            await asyncio.sleep(100)
        finally:
            await asyncio.sleep(10_000)  # a clean-up longer than any wait

    async def main() -> None:
        task = asyncio.ensure_future(
            fl.arun(fl.Parallel({"stuck": never_done}, name="fan"), Ctx(), clock="virtual")
        )
        await asyncio.sleep(1)
        start = asyncio.get_running_loop().time()
        task.cancel()
        warned = pytest.warns(RuntimeWarning, match=r"still winding down after 30 s.*'fan:stuck'")
        with warned, pytest.raises(asyncio.CancelledError):
            await task
        assert asyncio.get_running_loop().time() - start == pytest.approx(30.0)

    with asyncio.Runner(loop_factory=lambda: new_loop("virtual")) as runner:
        runner.run(main())


def test_a_breach_charged_from_a_thread_cancels_siblings_not_fails_them() -> None:
    # found by the stress suite: a sync step's crossing charge arrives from its thread; a sibling
    # whose nested Parallel ended before the loop cancelled it failed with the breach, an error
    # that was not its own. It ends cancelled, its reason naming the crossing branch.
    def spend(data: Any, ctx: Ctx) -> None:
        fl.charge(tokens=10)

    async def instant(data: Any, ctx: Ctx) -> None:
        ctx.n += 1

    inner = fl.Parallel({f"i{k}": instant for k in range(20)}, name="inner")
    pipe = fl.Parallel(
        {"sibling": fl.Pipeline(instant, inner), "spender": fl.Parallel({"s": spend})},
        name="outer",
    )
    for _ in range(5):  # the thread's timing varies: never a sibling failed by it
        result = fl.run(pipe, Ctx(), clock="virtual", usage=fl.UsageLimits(tokens=5),
                        raise_on_error=False)  # fmt: skip
        assert result.status == "usage_limit_exceeded"
        rows = result.branches.set_index("path")
        assert rows.loc["outer:sibling", "status"] in ("cancelled", "ok")
        assert "UsageLimitExceeded" not in str(rows.loc["outer:sibling", "error"])
        assert rows.loc["outer:spender", "status"] == "failed"


def test_a_merge_report_that_cannot_be_recorded_leaves_the_parents_dicts_as_they_were() -> None:
    # found by the stress suite: the merge writes into the parent's dicts in place; when its report
    # then could not be recorded the step failed "with the parent unchanged", but the dicts kept
    # the merged keys
    class Both(BaseModel):
        counts: dict[str, int] = {"k0": 1}
        junk: Any = None

    def write(data: Any, ctx: Both) -> None:
        ctx.counts["k0"] += 5
        ctx.counts["new"] = 1
        loop: list[Any] = []
        loop.append(loop)
        ctx.junk = loop

    result = fl.run(fl.Parallel({"a": write}, merge="deep", name="fan"), Both(), clock="virtual",
                    record=False, raise_on_error=False)  # fmt: skip
    assert result.status == "failed"
    assert "could not be recorded" in str(result.error)
    assert result.context.counts == {"k0": 1}
    assert result.context.junk is None
