"""watch(): event-driven detection of full and partial deadlocks, clean cancellation."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import flowlab.deadlock as dl
from flowlab.engine.clock import run_virtual
from flowlab.errors import ConfigError


def _crossed(a: dl.Lock, b: dl.Lock, delay: float = 1.0) -> tuple[Any, Any]:
    async def one() -> None:
        async with a:
            await asyncio.sleep(delay)
            async with b:
                pass

    async def two() -> None:
        async with b:
            await asyncio.sleep(delay)
            async with a:
                pass

    return one(), two()


def test_lock_order_cycle_detected_at_the_same_virtual_instant() -> None:
    async def main() -> tuple[dl.DeadlockReport, float, int]:
        with pytest.raises(dl.DeadlockDetected) as info:
            await dl.watch(*_crossed(dl.Lock(name="A"), dl.Lock(name="B")))
        loop = asyncio.get_running_loop()
        return info.value.report, loop.time(), len(asyncio.all_tasks())

    report, now, live = run_virtual(main())
    assert report.deadlocked and report.kind == "cycle"
    assert report.cycle == ["one", "Lock 'B'", "two", "Lock 'A'", "one"]
    assert report.detected_at == 1.0 and now == 1.0
    assert report.cancelled == ["one", "two"] and report.leaked == []
    assert live == 1  # only main: no leaked tasks


def test_partial_deadlock_is_caught_while_a_bystander_keeps_running() -> None:
    ticks: list[float] = []

    async def bystander() -> None:
        for _ in range(10):
            await asyncio.sleep(1)
            ticks.append(asyncio.get_running_loop().time())

    async def main() -> dl.DeadlockReport:
        one, two = _crossed(dl.Lock(name="A"), dl.Lock(name="B"), delay=2.0)
        with pytest.raises(dl.DeadlockDetected) as info:
            await dl.watch(one, two, bystander())
        return info.value.report

    report = run_virtual(main())
    assert report.detected_at == 2.0
    assert report.stuck == ["one", "two"]
    assert "bystander" in report.cancelled
    assert ticks == [1.0, 2.0]  # the bystander ran up to the detection instant, then stopped


def test_event_whose_declared_setter_finished_is_a_no_waker_deadlock() -> None:
    ready = dl.Event(name="ready", setters=["producer"])

    async def producer() -> None:
        await asyncio.sleep(1)
        ready.set()
        ready.clear()  # a pulse: nobody was waiting yet

    async def consumer() -> None:
        await asyncio.sleep(2)
        await ready.wait()

    async def busy() -> None:
        await asyncio.sleep(100)

    async def main() -> dl.DeadlockReport:
        with pytest.raises(dl.DeadlockDetected) as info:
            await dl.watch(producer(), consumer(), busy())
        return info.value.report

    report = run_virtual(main())
    assert report.detected_at == 2.0  # not 100: the busy task does not hide it
    assert report.kind == "no_waker"
    assert report.cycle == ["consumer", "Event 'ready'"]
    text = report.explain()
    assert "which only task producer sets (producer already finished)" in text
    assert "set by producer at t=1.000 s" in text and "cleared by producer at t=1.000 s" in text


def test_event_without_setters_waits_for_everyone_to_block() -> None:
    ev = dl.Event(name="never")

    async def waiter() -> None:
        await ev.wait()

    async def worker() -> None:
        await asyncio.sleep(5)

    async def main() -> dl.DeadlockReport:
        with pytest.raises(dl.DeadlockDetected) as info:
            await dl.watch(waiter(), worker())
        return info.value.report

    report = run_virtual(main())
    assert report.detected_at == 5.0  # only once worker finished and nobody could set it
    assert "no live task of the group is left to set" in report.explain()


def test_await_cycle_between_tasks() -> None:
    async def main() -> dl.DeadlockReport:
        handles: dict[str, asyncio.Task[Any]] = {}

        async def a() -> Any:
            await asyncio.sleep(1)
            return await handles["b"]

        async def b() -> Any:
            await asyncio.sleep(1)
            return await handles["a"]

        async def root() -> Any:
            handles["a"] = asyncio.create_task(a(), name="a")
            handles["b"] = asyncio.create_task(b(), name="b")
            return await asyncio.gather(handles["a"], handles["b"])

        with pytest.raises(dl.DeadlockDetected) as info:
            await dl.watch(root())
        return info.value.report

    report = run_virtual(main())
    assert report.cycle == ["a", "Task 'b'", "b", "Task 'a'", "a"]
    assert set(report.stuck) == {"root", "a", "b"}
    assert report.detected_at == 1.0


def test_children_of_watched_tasks_join_the_group() -> None:
    sem = dl.Semaphore(1, name="slot")

    async def child() -> None:
        async with sem:
            pass

    async def parent() -> None:
        async with sem:
            await asyncio.create_task(child(), name="child")

    async def main() -> dl.DeadlockReport:
        with pytest.raises(dl.DeadlockDetected) as info:
            await dl.watch(parent())
        return info.value.report

    report = run_virtual(main())
    assert report.tasks == ["parent", "child"]
    assert report.cycle == ["parent", "Task 'child'", "child", "Semaphore 'slot'", "parent"]


def test_no_deadlock_returns_results_in_order_and_restores_the_task_factory() -> None:
    lock = dl.Lock(name="shared")

    async def work(n: int) -> int:
        async with lock:
            await asyncio.sleep(n)
        return n * 10

    async def main() -> tuple[list[Any], Any]:
        loop = asyncio.get_running_loop()
        before = loop.get_task_factory()
        results = await dl.watch(work(2), work(1), names=["two", "one"])
        return results, (before, loop.get_task_factory())

    results, (before, after) = run_virtual(main())
    assert results == [20, 10]
    assert before is after is None


def test_supervise_returns_a_clean_report_when_nothing_hangs() -> None:
    async def quick() -> str:
        await asyncio.sleep(1)
        return "ok"

    results, report = run_virtual(dl.supervise(quick(), quick()))
    assert results == ["ok", "ok"]
    assert not report.deadlocked and report.tasks == ["quick", "quick-2"]
    assert report.explain().startswith("No deadlock: all 2 tasks finished by t=1.000 s")


def test_a_failing_task_cancels_the_rest_and_raises() -> None:
    cancelled: list[str] = []

    async def boom() -> None:
        await asyncio.sleep(1)
        raise KeyError("x")

    async def slow() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append("slow")
            raise

    with pytest.raises(KeyError):
        run_virtual(dl.watch(boom(), slow()))
    assert cancelled == ["slow"]


def test_names_must_match_the_awaitables() -> None:
    async def nop() -> None:
        pass

    coro = nop()
    with pytest.raises(ConfigError, match="names has 1 entries for 2"):
        run_virtual(dl.watch(coro, nop(), names=["x"]))
    coro.close()


def test_self_deadlock_on_a_non_reentrant_lock() -> None:
    lock = dl.Lock(name="R")

    async def twice() -> None:
        async with lock, lock:
            pass

    with pytest.raises(dl.DeadlockDetected) as info:
        run_virtual(dl.watch(twice()))
    assert info.value.report.cycle == ["twice", "Lock 'R'", "twice"]


def test_loop_is_usable_after_a_detection_and_cancelling_watch_cancels_the_group() -> None:
    async def main() -> tuple[int, list[str]]:
        with pytest.raises(dl.DeadlockDetected):
            await dl.watch(*_crossed(dl.Lock(name="A"), dl.Lock(name="B")))
        after = await dl.watch(asyncio.sleep(1, result=3))
        seen: list[str] = []

        async def sleeper() -> None:
            try:
                await asyncio.sleep(50)
            except asyncio.CancelledError:
                seen.append("cancelled")
                raise

        outer = asyncio.create_task(dl.watch(sleeper()))
        await asyncio.sleep(1)
        outer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await outer
        return after[0], seen

    assert run_virtual(main()) == (3, ["cancelled"])


def test_detection_on_the_real_clock() -> None:
    async def main() -> dl.DeadlockReport:
        a, b = dl.Lock(name="A"), dl.Lock(name="B")

        async def one() -> None:
            async with a:
                await asyncio.sleep(0.001)
                async with b:
                    pass

        async def two() -> None:
            async with b:
                await asyncio.sleep(0.001)
                async with a:
                    pass

        with pytest.raises(dl.DeadlockDetected) as info:
            await asyncio.wait_for(dl.watch(one(), two()), timeout=5)
        return info.value.report

    report = asyncio.run(main())
    assert report.clock == "real" and report.deadlocked
    assert report.detected_at is not None
    assert report.detected_at - report.started_at < 1.0  # generous: event-driven, not polled
