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


# ------------------------------------------------------------------ who holds what, after a hand-over


def _handed_over(sem: Callable[[], Any], lock: Callable[[], Any]) -> list[Any]:
    """``first`` takes the only permit and finishes; ``last`` gives it back (a lightswitch).

    Then ``d`` takes the permit and waits for ``M``, which ``c`` holds while it waits for the
    permit: a real cycle between c and d. ``first`` holds nothing by then, and ``last`` never
    held anything.
    """
    room, m = sem(), lock()

    async def first() -> None:
        await room.acquire()

    async def last() -> None:
        await asyncio.sleep(1)
        room.release()

    async def c() -> None:
        await asyncio.sleep(2)
        async with m:
            await asyncio.sleep(1)
            await room.acquire()

    async def d() -> None:
        await asyncio.sleep(2.5)
        await room.acquire()
        async with m:
            pass

    return [first(), last(), c(), d()]


def test_a_permit_given_back_by_another_task_is_held_by_nobody_in_the_report() -> None:
    async def plain() -> None:
        await asyncio.gather(*_handed_over(lambda: asyncio.Semaphore(1), asyncio.Lock))

    assert asyncio_model.outcome(plain) == "hang"

    async def traced() -> dl.DeadlockReport:
        coros = _handed_over(lambda: dl.Semaphore(1, name="room"), lambda: dl.Lock(name="M"))
        _, report = await dl.supervise(*coros, names=["first", "last", "c", "d"])
        return report

    report = run_virtual(traced())
    assert report.deadlocked and report.cycle == ["c", "Semaphore 'room'", "d", "Lock 'M'", "c"]
    lines = report.explain().splitlines()
    assert lines[0] == "task first: holds nothing; finished before the deadlock", lines[0]
    assert lines[1] == "task last: holds nothing; finished before the deadlock", lines[1]
    sentence = lines[-1].split("task c waits", 1)[1].split("; task d waits", 1)[0]
    assert "held by task d (acquired at test_truth_audit.py:" in sentence, sentence
    assert "first" not in sentence and "without releasing" not in sentence, sentence
    assert "released before by task last" in sentence, sentence
    kinds = {(e.source, e.target): e.kind for e in report.edges}
    assert kinds[("Semaphore 'room'", "d")] == "held by"
    assert kinds[("Semaphore 'room'", "last")] == "released by"
    assert ("Semaphore 'room'", "first") not in kinds
    holds = report.timeline.query("state == 'hold' and task == 'first'")
    assert list(holds["end_s"]) == [1.0]  # its hold ended when last gave the permit back


def test_a_lock_released_by_another_task_is_not_held_by_its_acquirer_in_the_report() -> None:
    async def traced() -> dl.DeadlockReport:
        gate, m = dl.Lock(name="gate"), dl.Lock(name="M")

        async def opener() -> None:
            await gate.acquire()

        async def closer() -> None:
            await asyncio.sleep(1)
            gate.release()

        async def c() -> None:
            await asyncio.sleep(2)
            async with m:
                await asyncio.sleep(1)
                await gate.acquire()

        async def d() -> None:
            await asyncio.sleep(2.5)
            async with gate, m:
                pass

        _, report = await dl.supervise(opener(), closer(), c(), d(), names=["o", "x", "c", "d"])
        return report

    report = run_virtual(traced())
    assert report.deadlocked and report.cycle == ["c", "Lock 'gate'", "d", "Lock 'M'", "c"]
    assert report.explain().splitlines()[0] == "task o: holds nothing; finished before the deadlock"


# ------------------------------------------------------------------ a hang partly on untraced things


async def _waits_behind_a_bare_future() -> None:
    """``x`` awaits a future nobody completes; ``w`` waits for the traced event only x sets."""
    go = dl.Event(name="go", setters=["x"])
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def x() -> None:
        await never
        go.set()

    async def w() -> None:
        await go.wait()  # WAITS-FOR-GO

    await asyncio.gather(asyncio.create_task(x(), name="x"), asyncio.create_task(w(), name="w"))


def test_a_hang_on_a_bare_future_names_only_the_untraced_waits_as_untraced() -> None:
    async def plain() -> None:
        never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await asyncio.gather(never, asyncio.Event().wait())

    assert asyncio_model.outcome(plain) == "hang"
    out = dl.replay(_waits_behind_a_bare_future, "")
    assert out.status == "deadlock" and out.report is not None
    report = out.report
    assert report.kind == "untraced" and report.untraced == ["x"]
    lines = report.explain().splitlines()
    assert lines[1] == "task x: holds nothing; blocked on something flowlab does not trace; stuck"
    assert lines[2].startswith(
        "task w: holds nothing; waits for Event 'go' at test_truth_audit.py:"
    )
    assert "does not trace" not in lines[2] and "does not trace" not in lines[0], lines
    assert "task x awaits something flowlab does not trace" in lines[-1], lines[-1]
    assert "every task is blocked (main, x, w)" in lines[-1]


# ------------------------------------------------------------------ a timer callback is a waker


def _woken_by_a_timer(event: Callable[[], Any], how: str) -> Callable[[], Any]:
    async def program() -> list[Any]:
        go = event()
        loop = asyncio.get_running_loop()
        if how == "bound":
            loop.call_later(1, go.set)
        else:
            loop.call_later(1, lambda: go.set())

        async def waiter() -> float:
            await go.wait()
            return loop.time()

        if isinstance(go, asyncio.Event):
            return await asyncio.gather(waiter())
        return await dl.watch(waiter(), names=["waiter"])

    return program


@pytest.mark.parametrize("how", ["bound", "lambda"])
def test_an_event_a_pending_timer_will_set_is_not_a_deadlock(how: str) -> None:
    assert run_virtual(_woken_by_a_timer(asyncio.Event, how)()) == [1.0]
    assert run_virtual(_woken_by_a_timer(lambda: dl.Event(name="go"), how)()) == [1.0]
    explored = dl.explore(_woken_by_a_timer(lambda: dl.Event(name="go"), how))
    assert explored.deadlocks == 0 and explored.exhausted


def test_a_lock_a_pending_timer_will_release_is_not_a_deadlock() -> None:
    async def program(lock: Any) -> list[Any]:
        loop = asyncio.get_running_loop()

        async def opener() -> None:
            await lock.acquire()
            loop.call_later(1, lock.release)

        async def user() -> float:
            await asyncio.sleep(0.5)
            async with lock:
                return loop.time()

        return [opener(), user()]

    async def plain() -> list[Any]:
        return await asyncio.gather(*await program(asyncio.Lock()))

    async def traced() -> list[Any]:
        return await dl.watch(*await program(dl.Lock(name="gate")))

    assert run_virtual(plain()) == run_virtual(traced()) == [None, 1.0]


def test_an_unrelated_timer_does_not_hide_a_lock_cycle() -> None:
    async def traced() -> dl.DeadlockReport:
        asyncio.get_running_loop().call_later(100, lambda: None)  # opaque, but locks are owned
        a, b = dl.Lock(name="A"), dl.Lock(name="B")

        async def one(first: dl.Lock, second: dl.Lock) -> None:
            async with first:
                await asyncio.sleep(0.1)
                async with second:
                    pass

        _, report = await dl.supervise(one(a, b), one(b, a), names=["x", "y"])
        return report

    report = run_virtual(traced())
    assert report.deadlocked and report.kind == "cycle" and report.detected_at == 0.1


# ------------------------------------------------------------------ shrinking cut short says so


def test_a_shrink_cut_short_by_max_schedules_does_not_pass_for_the_fewest_preemptions() -> None:
    found = dl.explore(dl.transfers, strategy="random", seed=0, stop_on_first=True)
    assert found.first_failure is not None and found.first_failure.preemptions == 3
    cut = dl.minimize(dl.transfers, found.first_failing_schedule, max_schedules=3)
    assert cut.preemptions == 3  # bound 0 finished, bound 1 was cut short: nothing smaller seen
    assert cut.shrink_note == (
        "Shrinking stopped by max_schedules=3 at preemption bound 1: "
        "a schedule with fewer preemptions may show the same failure."
    )
    assert cut.shrink_note in cut.explain()
    assert dl.replay(dl.transfers, cut.schedule).status == "deadlock"
    whole = found.shrink()
    assert whole.preemptions == 1 and whole.shrink_note == ""


# ------------------------------------------------------------------ no cycle through "any task"


def test_a_cycle_never_runs_through_a_task_that_holds_nothing_of_the_lock() -> None:
    """A lock leaked by a finished task, and an event nobody sets: two dead ends, no cycle."""

    def program(lock: Any, event: Any) -> list[Any]:
        async def leaker() -> None:
            await lock.acquire()  # finishes holding it

        async def w1() -> None:
            await asyncio.sleep(0.1)
            await lock.acquire()

        async def w2() -> None:
            await event.wait()

        return [leaker(), w1(), w2()]

    async def plain() -> None:
        await asyncio.gather(*program(asyncio.Lock(), asyncio.Event()))

    assert asyncio_model.outcome(plain) == "hang"

    async def traced() -> dl.DeadlockReport:
        coros = program(dl.Lock(name="L0"), dl.Event(name="E"))
        _, report = await dl.supervise(*coros, names=["leaker", "w1", "w2"])
        return report

    report = run_virtual(traced())
    assert report.deadlocked and set(report.stuck) == {"w1", "w2"}
    assert report.kind == "no_waker", report.cycle  # was w1 → Lock 'L0' → w2 → Event 'E' → w1
    assert report.cycle == ["w1", "Lock 'L0'"]
    assert "Nothing alive can wake w1 → Lock 'L0'" in report.explain()
