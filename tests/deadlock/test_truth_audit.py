"""Verdicts the truth audit found wrong, each checked against plain asyncio (the independent model).

Every program here is also run with ``asyncio``'s own primitives on virtual time: what it does
there is what the traced run must report.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import asyncio_model
import pytest

import flowlab.deadlock as dl
from flowlab.engine.clock import run_virtual

# ------------------------------------------------------------------ wait_for is a deadline


def _guarded_transfer(lock: Callable[[str], Any]) -> list[Any]:
    """Lock-order inversion where one side is guarded by ``asyncio.wait_for``.

    On Python 3.11 ``wait_for`` runs its coroutine in a task of its own and cancels that task
    when the timer fires: the cycle is real for a second, then ``a`` gives up, releases ``L1``
    and ``b`` finishes.
    """
    l1, l2 = lock("L1"), lock("L2")

    async def move() -> str:
        async with l1:
            await asyncio.sleep(0.1)
            async with l2:
                return "moved"

    async def a() -> str:
        try:
            return await asyncio.wait_for(move(), 1)
        except TimeoutError:
            return "a gave up"

    async def b() -> str:
        async with l2:
            await asyncio.sleep(0.1)
            async with l1:
                return "b done"

    return [a(), b()]


def test_a_cycle_inside_wait_for_is_a_near_miss_not_a_deadlock() -> None:
    async def plain() -> list[Any]:
        return await asyncio.gather(*_guarded_transfer(lambda _: asyncio.Lock()))

    async def traced() -> tuple[list[Any], dl.DeadlockReport]:
        return await dl.supervise(
            *_guarded_transfer(lambda name: dl.Lock(name=name)), names=["a", "b"]
        )

    assert run_virtual(plain()) == ["a gave up", "b done"]
    results, report = run_virtual(traced())
    assert not report.deadlocked, report.explain()
    assert results == ["a gave up", "b done"]
    assert report.near_misses and "would deadlock without its timeout" in report.near_misses[0]


def test_the_same_cycle_without_wait_for_is_still_a_deadlock() -> None:
    async def traced() -> tuple[list[Any], dl.DeadlockReport]:
        l1, l2 = dl.Lock(name="L1"), dl.Lock(name="L2")

        async def move() -> None:
            async with l1:
                await asyncio.sleep(0.1)
                async with l2:
                    pass

        async def a() -> None:
            await asyncio.create_task(move())  # a child task, but no deadline this time

        async def b() -> None:
            async with l2:
                await asyncio.sleep(0.1)
                async with l1:
                    pass

        return await dl.supervise(a(), b(), names=["a", "b"])

    _, report = run_virtual(traced())
    assert report.deadlocked and report.kind == "cycle"
    assert report.detected_at == 0.1


def test_a_deadline_on_the_awaiting_task_reaches_the_task_it_awaits() -> None:
    """``asyncio.timeout`` around ``await task``: the timeout cancels the task awaited too."""

    def program(lock: Callable[[str], Any]) -> list[Any]:
        l1, l2 = lock("L1"), lock("L2")

        async def move() -> None:
            async with l1:
                await asyncio.sleep(0.1)
                async with l2:
                    pass

        async def a() -> str:
            try:
                async with asyncio.timeout(1):
                    await asyncio.gather(asyncio.create_task(move()))
            except TimeoutError:
                return "a gave up"
            return "a moved"

        async def b() -> str:
            async with l2:
                await asyncio.sleep(0.1)
                async with l1:
                    return "b done"

        return [a(), b()]

    async def plain() -> list[Any]:
        return await asyncio.gather(*program(lambda _: asyncio.Lock()))

    async def traced() -> tuple[list[Any], dl.DeadlockReport]:
        return await dl.supervise(*program(lambda name: dl.Lock(name=name)), names=["a", "b"])

    assert run_virtual(plain()) == ["a gave up", "b done"]
    results, report = run_virtual(traced())
    assert not report.deadlocked, report.explain()
    assert results == ["a gave up", "b done"] and report.near_misses


# ------------------------------------------------------------------ TaskGroup, nested gather


async def _in_task_group(event: Callable[[], Any]) -> None:
    go = event()

    async def child() -> None:
        await go.wait()

    async with asyncio.TaskGroup() as tg:
        tg.create_task(child(), name="c1")
        tg.create_task(child(), name="c2")


async def _in_nested_gather(event: Callable[[], Any]) -> None:
    go = event()

    async def child() -> None:
        await go.wait()

    async def helper() -> None:
        await asyncio.gather(child(), child())

    await asyncio.gather(helper(), asyncio.gather(child(), child()))


@pytest.mark.parametrize("shape", [_in_task_group, _in_nested_gather])
def test_an_event_nobody_sets_under_a_task_group_or_nested_gather_is_a_proven_deadlock(
    shape: Callable[[Callable[[], Any]], Any],
) -> None:
    assert asyncio_model.outcome(lambda: shape(asyncio.Event)) == "hang"

    async def traced() -> None:
        await dl.watch(shape(lambda: dl.Event(name="go")), names=["main"])

    with pytest.raises(dl.DeadlockDetected) as caught:
        run_virtual(traced())
    report = caught.value.report
    assert report.detected_at == 0.0  # at once, not after the watchdog's 5 idle seconds
    assert report.stuck == report.tasks and "main" in report.stuck
    assert "Event 'go'" in report.cycle
    assert "does not trace" not in report.explain()
    explored = dl.replay(lambda: shape(lambda: dl.Event(name="go")), "")
    assert explored.status == "deadlock" and explored.report is not None
    assert explored.report.kind != "untraced", explored.report.explain()
    assert "does not trace" not in explored.report.explain()


# ------------------------------------------------------------------ a search cut short says so


def _late_inversion(lock: Callable[[str], Any]) -> Callable[[], Any]:
    """A lock-order inversion after a few steps each: FIFO passes, the space is not tiny."""

    async def program() -> str:
        a, b = lock("A"), lock("B")

        async def one(first: Any, second: Any) -> None:
            for _ in range(3):
                await asyncio.sleep(0)
            async with first:
                await asyncio.sleep(0)
                async with second:
                    pass

        await asyncio.gather(one(a, b), one(b, a))
        return "done"

    return program


def test_a_search_cut_short_says_what_it_did_not_cover() -> None:
    ends, _ = asyncio_model.all_outcomes(_late_inversion(lambda _: asyncio.Lock()))
    assert ends == {("ok", "done"), "hang"}  # the model: some schedules hang
    program = _late_inversion(lambda name: dl.Lock(name=name))
    for cut, kwargs in [
        ("max_schedules=1", {"max_schedules": 1}),
        ("time_budget_s=0.0", {"time_budget_s": 0.0}),
        ("max_schedules=1", {"strategy": "exhaustive", "max_schedules": 1}),
    ]:
        found = dl.explore(program, **kwargs)
        assert found.deadlocks == 0 and not found.exhausted
        assert found.stopped == cut
        text = found.summary()
        assert f"stopped by {cut} before the search finished" in text, text
        assert "schedules not run may still fail" in text
    whole = dl.explore(program, strategy="exhaustive", preemption_bound=None)
    assert whole.exhausted and whole.deadlocks > 0 and whole.stopped == ""


def test_random_schedules_are_called_a_sample() -> None:
    found = dl.explore(
        _late_inversion(lambda name: dl.Lock(name=name)),
        strategy="random",
        max_schedules=3,
        seed=0,
    )
    assert found.deadlocks == 0  # the three drawn schedules all pass
    assert "a sample of 3 random schedules, not every interleaving" in found.summary()
