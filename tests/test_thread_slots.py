"""A cancelled sync step stays in flight until its thread returns (issue 18, flowlab.engine.thread_call).

Python cannot stop a thread: a sync step cancelled while in its call goes on in its worker
thread. It keeps its slot (the run-wide cap, and its branch's slot of a Parallel's cap), counts
among the live leaves, and its step row ends when the thread returns. And a crossing charge made
in a thread is settled before any step of a branch it cancels starts.

Each scenario blocks the sync step on a ``threading.Event`` and cancels it; the step that
competes for its slot notes whether the blocked thread had returned when it started. (Virtual
time stands still while a thread works, cancelled or not: everything here happens at t=0.)
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

from pydantic import BaseModel

import flowlab as fl
from flowlab.engine.clock import run_virtual
from flowlab.engine.thread_call import ThreadCall

WATCHDOG_S = 20.0  # real seconds; a passing test takes milliseconds


class Ctx(BaseModel):
    n: int = 0


class Blocker:
    """A sync step that blocks in its thread until :meth:`release`."""

    def __init__(self) -> None:
        self.entered, self.go, self.done = threading.Event(), threading.Event(), threading.Event()
        self.seen: list[bool] = []  # for each competing step: had the thread returned?

    def step(self, data: Any, ctx: Ctx) -> None:
        self.entered.set()
        self.go.wait(WATCHDOG_S)
        self.done.set()

    async def competitor(self, data: Any, ctx: Ctx) -> None:
        self.seen.append(self.done.is_set())
        await asyncio.sleep(1)
        ctx.n += 1

    def pipeline(self, **kw: Any) -> fl.Parallel:
        a, b = fl.Step(self.step, name="blocker"), fl.Step(self.competitor, name="competitor")
        return fl.Parallel({"a": a, "b": b}, name="fan", **kw)

    async def cancel_a(self, handle: Any) -> None:
        await asyncio.wait_for(asyncio.to_thread(self.entered.wait, WATCHDOG_S), WATCHDOG_S)
        handle.cancel("a")
        for _ in range(50):  # loop turns (not time): the slot is handed on within a few
            await asyncio.sleep(0)

    async def release(self) -> None:
        self.go.set()
        await asyncio.to_thread(self.done.wait, WATCHDOG_S)


async def one_second(data: Any, ctx: Ctx) -> None:
    await asyncio.sleep(1)
    ctx.n += 1


def leaf_peak(result: fl.RunResult) -> int:
    """Most leaf rows of the steps frame running at once (an independent sweep)."""
    steps = result.steps[result.steps["kind"] == "step"]
    points = sorted(
        [(s, 1) for s in steps["started_s"] if not math.isnan(s)]
        + [(f, -1) for f in steps["finished_s"] if not math.isnan(f)]
    )
    level = peak = 0
    for _, d in points:
        level += d
        peak = max(peak, level)
    return peak


def test_a_cancelled_sync_step_keeps_its_run_wide_slot_until_its_thread_returns() -> None:
    blocker = Blocker()

    async def main() -> fl.RunResult:
        handle = fl.start(blocker.pipeline(), Ctx(), clock="virtual", max_concurrency=1)
        await blocker.cancel_a(handle)
        await blocker.release()
        return await asyncio.wait_for(handle.wait(), WATCHDOG_S)

    result = run_virtual(main())
    assert blocker.seen == [True]  # the competitor started only once the thread had returned
    branches = result.branches.set_index("branch")
    steps = result.steps.set_index("step")
    assert branches.loc["a", "status"] == "cancelled"
    assert steps.loc["blocker", "status"] == "cancelled"
    assert "ran on in its thread until it returned" in steps.loc["blocker", "error"]
    assert branches.loc["b", "status"] == "ok" and result.status == "ok"
    assert result.summary()["peak_concurrency"] == 1 == leaf_peak(result)


def test_a_cancelled_sync_step_keeps_its_branchs_slot_of_a_parallel_cap() -> None:
    blocker = Blocker()

    async def main() -> fl.RunResult:
        handle = fl.start(blocker.pipeline(max_concurrency=1), Ctx(), clock="virtual")
        await blocker.cancel_a(handle)
        await blocker.release()
        return await asyncio.wait_for(handle.wait(), WATCHDOG_S)

    result = run_virtual(main())
    assert blocker.seen == [True]
    assert result.branches.set_index("branch")["status"].to_dict() == {"a": "cancelled", "b": "ok"}
    assert result.steps.set_index("step").loc["fan", "peak_concurrency"] == 1
    assert result.summary()["peak_concurrency"] == 1 == leaf_peak(result)


def test_a_thread_that_outlives_the_run_is_closed_at_the_runs_end() -> None:
    blocker = Blocker()

    async def main() -> fl.RunResult:
        handle = fl.start(blocker.pipeline(), Ctx(), clock="virtual", max_concurrency=1)
        await blocker.cancel_a(handle)
        handle.cancel()  # the whole run, while a's thread still blocks
        result = await asyncio.wait_for(handle.wait(), WATCHDOG_S)
        await blocker.release()  # after the run: changes nothing in its result
        return result

    result = run_virtual(main())
    assert result.status == "cancelled"
    assert blocker.seen == []  # the slot was never free
    branches = result.branches.set_index("branch")
    assert math.isnan(branches.loc["b", "started_s"])
    assert branches.loc["b", "status"] == "cancelled"
    row = result.steps.set_index("step").loc["blocker"]
    assert row["finished_s"] == result.makespan_s
    assert "still running in its thread when the run ended" in row["error"]
    assert "competitor" not in result.steps["step"].tolist()
    # the timeline draws the thread's run-on after a's bar, up to the step row's end (on virtual
    # time a thread takes no time: a zero-width bar here)
    ax = fl.plot.timeline(result)
    [tail] = [p for p in ax.patches if p.get_gid() == "thread:fan:a/blocker"]
    assert tail.get_x() == branches.loc["a", "finished_s"]
    assert tail.get_width() == row["finished_s"] - branches.loc["a", "finished_s"]


def test_a_sync_step_that_returns_is_not_held() -> None:
    def quick(data: Any, ctx: Ctx) -> None:
        ctx.n += 10

    result = fl.run(
        fl.Parallel({"a": quick, "b": one_second}, merge="accumulate"),
        Ctx(),
        clock="virtual",
        max_concurrency=1,
    )
    assert result.context.n == 11
    assert result.steps.set_index("step").loc["quick", "error"] == ""
    assert result.branches.set_index("branch").loc["b", "started_s"] == 0.0


def test_no_step_of_a_branch_starts_after_a_crossing_charge_from_a_thread() -> None:
    # The crossing charge is made in a worker thread; its consequences (cancel the siblings)
    # reach the loop through call_soon_threadsafe. The sibling's first step blocks the loop
    # until the charge is made, so its next step would start before they arrive.
    crossed, later = threading.Event(), []

    def spend(data: Any, ctx: Ctx) -> None:
        try:
            fl.charge(tokens=10)  # raises UsageLimitExceeded in this thread, after charging
        finally:
            crossed.set()

    async def wait_for_the_charge(data: Any, ctx: Ctx) -> None:
        assert crossed.wait(WATCHDOG_S)  # blocks the loop on purpose

    async def next_step(data: Any, ctx: Ctx) -> None:
        later.append("started")

    pipe = fl.Parallel(
        {"spender": spend, "sibling": fl.Pipeline(wait_for_the_charge, next_step)},
        name="fan",
    )
    result = fl.run(
        pipe, Ctx(), clock="virtual", usage=fl.UsageLimits(tokens=5), raise_on_error=False
    )
    assert result.status == "usage_limit_exceeded"
    assert later == []
    rows = result.branches.set_index("branch")
    assert rows.loc["sibling", "status"] == "cancelled"
    assert "usage limit exceeded" in rows.loc["sibling", "reason"]
    assert "next_step" not in result.steps["step"].tolist()


class HeldBack(Executor):
    """An executor that runs its jobs only when told, even ones cancelled meanwhile (as a worker
    thread that had already picked a job up when its future was cancelled)."""

    def __init__(self) -> None:
        self.jobs: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.jobs.append((fn, args))
        return Future()

    def run_all(self) -> None:
        for fn, args in self.jobs:
            fn(*args)


def test_a_call_cancelled_before_its_thread_began_never_runs_and_holds_nothing() -> None:
    ran: list[str] = []

    async def main() -> bool:
        call, executor = ThreadCall(asyncio.get_running_loop()), HeldBack()
        task = asyncio.ensure_future(call.run(executor, ran.append, "ran"))
        await asyncio.sleep(0)  # submitted, not begun
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        held = call.hold(lambda: ran.append("callback"))
        executor.run_all()  # its thread gets to it after all
        return held

    assert asyncio.run(main()) is False
    assert ran == []


def test_a_cancelled_sync_attempt_that_runs_on_says_so_in_its_rows() -> None:
    # under a retry policy a sync step's thread is not followed by the counts (as run_step's
    # is): its attempt row and its step row say so, rather than let the frames look exact
    blocker = Blocker()

    async def main() -> fl.RunResult:
        pipe = fl.Parallel(
            {"a": fl.Step(blocker.step, name="blocker", retry=fl.Retry(attempts=2, backoff=0))},
            name="fan",
        )
        handle = fl.start(pipe, Ctx(), clock="virtual")
        await blocker.cancel_a(handle)
        result = await asyncio.wait_for(handle.wait(), WATCHDOG_S)
        await blocker.release()
        return result

    result = run_virtual(main())
    (attempt,) = result.attempts.itertuples()
    assert attempt.status == "cancelled"
    assert "runs on in its thread, not counted in flight" in attempt.error
    step = result.steps.set_index("step").loc["blocker"]
    assert "runs on in its thread, not counted in flight" in step["error"]
