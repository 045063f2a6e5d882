"""Partial deadlocks: ``on_deadlock`` decides whether healthy tasks keep running (issue 19)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import flowlab.deadlock as dl
from flowlab.engine.clock import run_virtual
from flowlab.errors import ConfigError


def _two_stuck_three_healthy(ticks: list[tuple[str, float]]) -> list[Any]:
    """one and two deadlock at t=1; three workers tick until t=3, 4 and 5 and return a value."""
    a, b = dl.Lock(name="A"), dl.Lock(name="B")

    async def crossed(first: dl.Lock, second: dl.Lock) -> str:
        async with first:
            await asyncio.sleep(1)
            async with second:
                return "never"

    async def worker(name: str, n: int) -> str:
        for _ in range(n):
            await asyncio.sleep(1)
            ticks.append((name, asyncio.get_running_loop().time()))
        return f"{name} done"

    return [crossed(a, b), crossed(b, a), worker("w3", 3), worker("w4", 4), worker("w5", 5)]


NAMES = ["one", "two", "w3", "w4", "w5"]


def test_cancel_stuck_cancels_only_the_stuck_and_lets_the_healthy_finish() -> None:
    ticks: list[tuple[str, float]] = []

    async def main() -> tuple[dl.DeadlockReport, float]:
        coros = _two_stuck_three_healthy(ticks)
        with pytest.raises(dl.DeadlockDetected) as info:
            await dl.watch(*coros, names=NAMES, on_deadlock="cancel_stuck")
        return info.value.report, asyncio.get_running_loop().time()

    report, ended = run_virtual(main())
    assert report.detected_at == 1.0 and ended == 5.0
    assert report.stuck == ["one", "two"]
    assert report.healthy == ["w3", "w4", "w5"]
    assert report.cancelled == ["one", "two"]
    assert report.results == {"w3": "w3 done", "w4": "w4 done", "w5": "w5 done"}
    assert [t for name, t in ticks if name == "w5"] == [1.0, 2.0, 3.0, 4.0, 5.0]
    text = report.explain()
    assert "flowlab cancelled 2 task(s): one, two" in text
    assert "Not stuck: w3, w4, w5" in text


def test_report_cancels_nothing_until_only_the_stuck_are_left() -> None:
    ticks: list[tuple[str, float]] = []
    states: list[tuple[float, bool]] = []

    async def main() -> tuple[list[Any], dl.DeadlockReport]:
        coros = _two_stuck_three_healthy(ticks)
        tasks = [asyncio.create_task(c, name=n) for c, n in zip(coros, NAMES, strict=True)]

        async def probe() -> None:  # outside the group: is 'one' still alive at t=2.5?
            await asyncio.sleep(2.5)
            states.append((asyncio.get_running_loop().time(), tasks[0].done()))

        spy = asyncio.create_task(probe())
        out = await dl.supervise(*tasks, on_deadlock="report")
        await spy
        return out

    results, report = run_virtual(main())
    assert states == [(2.5, False)]  # not cancelled at detection (t=1)
    assert report.deadlocked and report.detected_at == 1.0
    assert report.stuck == ["one", "two"] and report.cancelled == ["one", "two"]
    assert results[2:] == ["w3 done", "w4 done", "w5 done"]
    assert all(isinstance(r, dl.DeadlockDetected) for r in results[:2])
    assert len(ticks) == 12


def test_report_mode_watch_returns_like_gather_with_return_exceptions() -> None:
    async def main() -> list[Any]:
        return await dl.watch(*_two_stuck_three_healthy([]), names=NAMES, on_deadlock="report")

    results = run_virtual(main())
    assert [type(r).__name__ for r in results[:2]] == ["DeadlockDetected"] * 2
    assert results[2:] == ["w3 done", "w4 done", "w5 done"]
    assert results[0].report.stuck == ["one", "two"]


def test_a_healthy_task_that_later_joins_the_deadlock_is_reported_too() -> None:
    async def main() -> dl.DeadlockReport:
        a, b = dl.Lock(name="A"), dl.Lock(name="B")

        async def crossed(first: dl.Lock, second: dl.Lock) -> None:
            async with first:
                await asyncio.sleep(1)
                async with second:
                    pass

        async def late() -> None:
            await asyncio.sleep(3)
            async with a:  # held by a stuck task: late is stuck from t=3 on
                pass

        _, report = await dl.supervise(
            crossed(a, b), crossed(b, a), late(), names=["one", "two", "late"], on_deadlock="report"
        )
        return report

    report = run_virtual(main())
    assert report.detected_at == 1.0
    assert report.stuck == ["one", "two", "late"]
    assert report.healthy == []


def test_default_raise_still_cancels_the_whole_group_at_once() -> None:
    async def main() -> tuple[dl.DeadlockReport, float]:
        with pytest.raises(dl.DeadlockDetected) as info:
            await dl.watch(*_two_stuck_three_healthy([]), names=NAMES)
        return info.value.report, asyncio.get_running_loop().time()

    report, ended = run_virtual(main())
    assert ended == 1.0 and report.cancelled == NAMES
    assert report.healthy == ["w3", "w4", "w5"]


def test_on_deadlock_is_validated() -> None:
    async def ok() -> None:
        pass

    for call in (dl.watch, dl.supervise):
        coro = ok()
        with pytest.raises(ConfigError) as info:
            run_virtual(call(coro, on_deadlock="ignore"))
        coro.close()
        assert str(info.value) == (
            "on_deadlock='ignore' is not valid; choose one of 'raise', 'cancel_stuck', 'report'."
        )


def test_an_undeclared_event_cycle_says_why_it_was_found_late() -> None:
    async def main() -> dl.DeadlockReport:
        ev = dl.Event(name="never")

        async def waiter() -> None:
            await ev.wait()

        async def bystander() -> None:
            await asyncio.sleep(1)

        _, report = await dl.supervise(waiter(), bystander())
        return report

    report = run_virtual(main())
    assert report.detected_at == 1.0  # when the bystander finished, not before
    assert "HINT: any task could have woken Event 'never'" in report.explain()
    assert "setters=" in report.explain()


def test_two_failing_tasks_leave_no_never_retrieved_noise() -> None:
    import gc

    seen: list[str] = []

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(
            lambda loop, context: seen.append(context["message"])
        )

        async def boom(name: str) -> None:
            await asyncio.sleep(0)
            raise ValueError(name)

        with pytest.raises(ValueError, match="a"):
            await dl.watch(boom("a"), boom("b"))
        gc.collect()

    run_virtual(main())
    gc.collect()
    assert seen == []


def test_no_live_task_is_said_only_when_true() -> None:
    async def main() -> dl.DeadlockReport:
        ev = dl.Event(name="never")
        a, b = dl.Lock(name="A"), dl.Lock(name="B")

        async def waiter() -> None:
            await ev.wait()

        async def crossed(first: dl.Lock, second: dl.Lock) -> None:
            async with first:
                await asyncio.sleep(1)
                async with second:
                    ev.set()

        _, report = await dl.supervise(
            waiter(), crossed(a, b), crossed(b, a), names=["waiter", "one", "two"]
        )
        return report

    text = run_virtual(main()).explain()
    assert "no live task" not in text  # one and two are alive, only blocked
    assert (
        "task waiter waits for Event 'never', which no task of the group that can still run is "
        "left to set (one, two blocked, the rest finished)"
    ) in text
