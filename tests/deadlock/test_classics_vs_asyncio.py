"""Classic programs explored with flowlab's primitives reach what asyncio's own primitives reach.

Little Book of Semaphores and Deadlock Empire programs, each written once against a small
namespace of primitives: flowlab's traced ones or asyncio's. The independent model
(:mod:`asyncio_model`) runs the asyncio version under every interleaving; ``explore`` runs the
traced version (``watch`` inside) under ``"exhaustive"`` and ``"dpor"`` search without bounds.
Both must reach the same end states -- each finished log, a hang, an exception type -- and the
detector must prove every hang the explorer reaches.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import asyncio_model
import pytest

import flowlab.deadlock as dl

PLAIN = SimpleNamespace(
    Lock=lambda name: asyncio.Lock(),
    Semaphore=lambda value, name: asyncio.Semaphore(value),
    Event=lambda name: asyncio.Event(),
    Condition=lambda name: asyncio.Condition(),
    Barrier=lambda parties, name: asyncio.Barrier(parties),
)
TRACED = SimpleNamespace(
    Lock=lambda name: dl.Lock(name=name),
    Semaphore=lambda value, name: dl.Semaphore(value, name=name),
    Event=lambda name: dl.Event(name=name),
    Condition=lambda name: dl.Condition(name=name),
    Barrier=lambda parties, name: dl.Barrier(parties, name=name),
)
Build = Callable[[SimpleNamespace], tuple[list[Any], list[Any]]]


def philosophers(lib: SimpleNamespace) -> tuple[list[Any], list[Any]]:
    """Three philosophers, each takes the left fork, then the right: a cycle under some orders."""
    forks = [lib.Lock(f"fork{i}") for i in range(3)]
    log: list[Any] = []

    async def philosopher(i: int) -> None:
        async with forks[i]:
            await asyncio.sleep(0)
            async with forks[(i + 1) % 3]:
                log.append(i)

    return [philosopher(i) for i in range(3)], log


def reusable_barrier(lib: SimpleNamespace) -> tuple[list[Any], list[Any]]:
    """The Little Book's two-phase reusable barrier (3.7), two threads, two rounds: correct."""
    mutex, first, second = lib.Semaphore(1, "mutex"), lib.Semaphore(0, "t1"), lib.Semaphore(0, "t2")
    count = [0]
    log: list[Any] = []

    async def worker(i: int) -> None:
        for rnd in range(2):
            await mutex.acquire()
            count[0] += 1
            if count[0] == 2:
                for _ in range(2):
                    first.release()
            mutex.release()
            await first.acquire()
            log.append((rnd, i))
            await mutex.acquire()
            count[0] -= 1
            if count[0] == 0:
                for _ in range(2):
                    second.release()
            mutex.release()
            await second.acquire()

    return [worker(0), worker(1)], log


def smokers(lib: SimpleNamespace) -> tuple[list[Any], list[Any]]:
    """Cigarette smokers, naive: the agent puts out tobacco and paper; two smokers grab."""
    agent = lib.Semaphore(1, "agent")
    tobacco, paper, match = (lib.Semaphore(0, n) for n in ("tobacco", "paper", "match"))
    log: list[Any] = []

    async def put() -> None:
        await agent.acquire()
        tobacco.release()
        paper.release()

    async def has_match() -> None:
        await tobacco.acquire()
        await paper.acquire()
        log.append("smokes")
        agent.release()

    async def has_paper() -> None:
        await tobacco.acquire()
        await match.acquire()  # never comes: it may hold the tobacco the other one needs
        log.append("smokes too")

    return [put(), has_match(), has_paper()], log


def condition_with_if(lib: SimpleNamespace) -> tuple[list[Any], list[Any]]:
    """Deadlock Empire's "Condition variables": ``if`` instead of ``while`` before ``wait``."""
    cond = lib.Condition("c")
    items: list[int] = []
    log: list[Any] = []

    async def consumer() -> None:
        async with cond:
            if not items:
                await cond.wait()
            log.append(items.pop())  # IndexError when the other consumer took it first

    async def producer() -> None:
        for x in range(2):
            async with cond:
                items.append(x)
                cond.notify()
            await asyncio.sleep(0)

    return [consumer(), consumer(), producer()], log


def lost_wakeup(lib: SimpleNamespace) -> tuple[list[Any], list[Any]]:
    """A bare ``wait`` misses a ``notify_all`` that came first (SCTBench's lost wake-up)."""
    cond = lib.Condition("c")
    log: list[Any] = []

    async def waiter() -> None:
        await asyncio.sleep(0)
        async with cond:
            await cond.wait()
            log.append("woke")

    async def notifier() -> None:
        async with cond:
            cond.notify_all()

    return [waiter(), notifier()], log


def pulse_and_clear(lib: SimpleNamespace) -> tuple[list[Any], list[Any]]:
    """``set`` then ``clear`` at once, a waiter that clears after it wakes, and a late waiter."""
    event = lib.Event("e")
    log: list[Any] = []

    async def pulser() -> None:
        event.set()
        event.clear()
        await asyncio.sleep(0)
        event.set()

    async def waiter() -> None:
        await event.wait()
        log.append("woke")
        await asyncio.sleep(0)
        event.clear()

    async def late() -> None:
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        await event.wait()
        log.append("late")

    return [pulser(), waiter(), late()], log


CASES = [philosophers, reusable_barrier, smokers, condition_with_if, lost_wakeup, pulse_and_clear]


@pytest.mark.parametrize("build", CASES, ids=lambda b: b.__name__)
def test_explore_reaches_exactly_what_asyncio_reaches(build: Build) -> None:
    async def plain() -> tuple[Any, ...]:
        coros, log = build(PLAIN)
        await asyncio.gather(*coros)
        return tuple(log)

    model, _ = asyncio_model.all_outcomes(plain, limit=5_000)
    assert model is not None
    ends: list[Any] = []

    async def traced() -> None:
        coros, log = build(TRACED)
        try:
            await dl.watch(*coros)
        except dl.DeadlockDetected:
            ends.append("hang")
            raise
        except Exception as err:
            ends.append(f"failed:{type(err).__name__}")
            raise
        ends.append(("ok", tuple(log)))

    for strategy in ("exhaustive", "dpor"):
        ends.clear()
        found = dl.explore(traced, strategy=strategy, preemption_bound=None)
        assert found.exhausted, found.summary()
        assert set(ends) == model, (strategy, sorted(map(str, set(ends) ^ model)))
        assert found.deadlocks == ends.count("hang")  # every hang proven by the detector


def semaphore_fifo(lib: SimpleNamespace) -> tuple[list[Any], list[Any]]:
    """A permit released while a woken waiter has not run yet: asyncio queues a new acquirer.

    ``b`` wakes ``a`` and leaves one more permit, then acquires: asyncio's semaphore makes it
    wait behind ``a`` (woken, not yet run), so ``a`` always logs first.
    """
    sem = lib.Semaphore(0, "s")
    log: list[Any] = []

    async def a() -> None:
        await sem.acquire()
        log.append("a")

    async def b() -> None:
        await asyncio.sleep(0)
        sem.release()
        sem.release()
        await sem.acquire()
        log.append("b")

    return [a(), b()], log


CASES.append(semaphore_fifo)


def lock_handoff_window(lib: SimpleNamespace) -> tuple[list[Any], list[Any]]:
    """``locked()`` after a release, before the woken waiter runs: asyncio says False.

    ``b`` queues behind ``a``; when ``a`` releases, asyncio marks the lock free until ``b``
    runs, so ``c`` may see ``False`` between "b queues" and "b in".
    """
    lock = lib.Lock("L")
    log: list[Any] = []

    async def a() -> None:
        async with lock:
            log.append("a in")
            await asyncio.sleep(0)

    async def b() -> None:
        await asyncio.sleep(0)
        log.append("b queues")
        async with lock:
            log.append("b in")

    async def c() -> None:
        for _ in range(2):
            log.append(lock.locked())
            await asyncio.sleep(0)

    return [a(), b(), c()], log


CASES.append(lock_handoff_window)


def barrier_rounds(lib: SimpleNamespace) -> tuple[list[Any], list[Any]]:
    """A 2-party barrier used for two rounds by two tasks: asyncio drains a round before the
    next one fills, so the task that leaves first cannot start round 2 while the other is still
    in round 1 (its arrival index and log position follow from that)."""
    barrier = lib.Barrier(2, "B")
    log: list[Any] = []

    async def worker(name: str) -> None:
        for rnd in range(2):
            index = await barrier.wait()
            log.append((rnd, name, index))

    return [worker("a"), worker("b")], log


def barrier_four_tasks(lib: SimpleNamespace) -> tuple[list[Any], list[Any]]:
    """Four tasks through one 2-party barrier: which pairs meet, in which order."""
    barrier = lib.Barrier(2, "B")
    log: list[Any] = []

    async def worker(name: str) -> None:
        index = await barrier.wait()
        log.append((name, index))

    return [worker(n) for n in "abcd"], log


CASES.extend([barrier_rounds, barrier_four_tasks])


def barrier_three_rounds(lib: SimpleNamespace) -> tuple[list[Any], list[Any]]:
    """Three tasks, a 3-party barrier, two rounds: who leads each round."""
    barrier = lib.Barrier(3, "B")
    log: list[Any] = []

    async def worker(name: str) -> None:
        for rnd in range(2):
            index = await barrier.wait()
            log.append((rnd, name, index))

    return [worker(n) for n in "abc"], log


def barrier_aborted(lib: SimpleNamespace) -> tuple[list[Any], list[Any]]:
    """One task aborts a 3-party barrier that two others wait at: they raise, whenever it runs."""
    barrier = lib.Barrier(3, "B")
    log: list[Any] = []

    async def waiter(name: str) -> None:
        try:
            await barrier.wait()
            log.append((name, "through"))
        except asyncio.BrokenBarrierError:
            log.append((name, "broken"))

    async def aborter() -> None:
        await asyncio.sleep(0)
        if asyncio.iscoroutinefunction(barrier.abort):  # asyncio's abort is a coroutine
            await barrier.abort()
        else:
            barrier.abort()
        log.append("aborted")

    return [waiter("a"), waiter("b"), aborter()], log


CASES.extend([barrier_three_rounds, barrier_aborted])
