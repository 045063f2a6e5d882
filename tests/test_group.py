"""BranchGroup: the per-step task group keeps TaskGroup's guarantees without per-task callbacks.

No real sleeps: ``asyncio.sleep(0)`` steps the loop, and the virtual clock serves the engine test.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from pydantic import BaseModel

import flowlab as fl
from flowlab.engine.group import BranchGroup


def _branch(
    group: BranchGroup, log: list[str], name: str, work: Callable[[], Coroutine[Any, Any, None]]
) -> Coroutine[Any, Any, None]:
    """A branch as the engine writes one: it says ``ended`` from its ``finally``."""

    async def run() -> None:
        try:
            await work()
            log.append(f"{name} done")
        except asyncio.CancelledError:
            log.append(f"{name} cancelled")
            raise
        finally:
            for _ in range(3):  # clean-up that takes loop turns
                await asyncio.sleep(0)
            log.append(f"{name} finally")
            group.ended(asyncio.current_task())

    return run()


async def _turns(n: int) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def _forever() -> None:
    await asyncio.Event().wait()


def test_wait_returns_after_every_task_even_those_started_while_waiting() -> None:
    log: list[str] = []

    async def main() -> None:
        group = BranchGroup(asyncio.get_running_loop())

        async def first() -> None:
            await _turns(2)
            group.start(_branch(group, log, "late", lambda: _turns(5)), name="late")

        group.start(_branch(group, log, "first", first), name="first")
        await group.wait()
        log.append("wait returned")
        assert len(group) == 0

    asyncio.run(main())
    assert log == ["first done", "first finally", "late done", "late finally", "wait returned"]


def test_cancelling_the_step_cancels_every_task_and_waits_for_their_finally() -> None:
    log: list[str] = []

    async def main() -> None:
        group = BranchGroup(asyncio.get_running_loop())
        for name in ("a", "b"):
            group.start(_branch(group, log, name, _forever), name=name)
        waiter = asyncio.ensure_future(group.wait())
        await _turns(2)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        log.append("step saw the cancel")

    asyncio.run(main())
    assert log == [
        "a cancelled",
        "b cancelled",
        "a finally",
        "b finally",
        "step saw the cancel",
    ]


def test_a_second_cancel_while_draining_still_waits_for_the_tasks() -> None:
    log: list[str] = []

    async def main() -> None:
        group = BranchGroup(asyncio.get_running_loop())
        group.start(_branch(group, log, "a", _forever), name="a")
        waiter = asyncio.ensure_future(group.wait())
        await _turns(2)
        waiter.cancel()
        await asyncio.sleep(0)  # the waiter is now draining (a's finally takes 3 turns)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        log.append("step saw the cancel")

    asyncio.run(main())
    assert log == ["a cancelled", "a finally", "step saw the cancel"]


def test_tasks_cancelled_before_their_first_line_do_not_hang_the_wait() -> None:
    ran: list[str] = []

    async def main() -> None:
        group = BranchGroup(asyncio.get_running_loop())

        async def never() -> None:
            ran.append("body")  # never reached: cancelled before its first step

        tasks = [group.start(never(), name=f"t{i}") for i in range(3)]
        group.cancel_all()
        await asyncio.wait_for(group.wait(), timeout=5)
        assert all(t.cancelled() for t in tasks)

    asyncio.run(main())
    assert ran == []


def test_abort_cancels_the_rest_and_raises_the_error_once_they_ended() -> None:
    log: list[str] = []

    async def main() -> None:
        group = BranchGroup(asyncio.get_running_loop())

        async def fatal() -> None:
            await _turns(1)
            group.abort(KeyboardInterrupt("stop"))

        group.start(_branch(group, log, "fatal", fatal), name="fatal")
        group.start(_branch(group, log, "other", _forever), name="other")
        with pytest.raises(KeyboardInterrupt, match="stop"):
            await group.wait()
        log.append("wait raised")

    asyncio.run(main())
    assert log.index("other finally") < log.index("wait raised")
    assert "other cancelled" in log


def test_start_after_closing_raises_and_closes_the_coroutine() -> None:
    async def main() -> None:
        group = BranchGroup(asyncio.get_running_loop())
        group.cancel_all()

        async def body() -> None:
            await asyncio.sleep(0)

        coro = body()
        with pytest.raises(RuntimeError, match="closing"):
            group.start(coro, name="late")
        assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED
        assert "closing" in repr(group)

    asyncio.run(main())


class Ctx(BaseModel):
    n: int = 0


def test_keyboard_interrupt_in_a_branch_stops_the_run_and_keeps_its_records() -> None:
    cleaned: list[str] = []

    async def interrupt(data: Any, ctx: Ctx) -> None:
        await asyncio.sleep(1)
        raise KeyboardInterrupt("stop here")

    async def slow(data: Any, ctx: Ctx) -> None:
        try:
            await asyncio.sleep(60)
        finally:
            cleaned.append("slow")

    pipe = fl.Pipeline(fl.Parallel({"interrupt": interrupt, "slow": slow}, name="fan"))
    with pytest.raises(KeyboardInterrupt, match="stop here"):
        fl.run(pipe, Ctx(), clock="virtual")
    assert cleaned == ["slow"]  # the sibling was cancelled and cleaned up before the raise
    result = fl.last_result()
    assert result is not None
    assert result.status == "cancelled"
    assert isinstance(result.error, KeyboardInterrupt)
    rows = result.branches.set_index("branch")
    # an interrupt, not a failure: recorded like the branches it stopped
    assert rows.loc["interrupt", "status"] == "cancelled"
    assert rows.loc["interrupt", "reason"] == "interrupted by KeyboardInterrupt: stop here"
    assert rows.loc["slow", "status"] == "cancelled"
    assert rows.loc["slow", "finished_s"] == pytest.approx(1.0)


def test_keyboard_interrupt_is_raised_even_with_raise_on_error_false() -> None:
    async def interrupt(data: Any, ctx: Ctx) -> None:
        raise KeyboardInterrupt("no swallowing")

    with pytest.raises(KeyboardInterrupt, match="no swallowing"):
        fl.run(fl.Pipeline(interrupt), Ctx(), clock="virtual", raise_on_error=False)
    result = fl.last_result()
    assert result is not None and result.status == "cancelled"
