"""Traced primitives behave like asyncio's and record holders, waiters, wakers and events."""

from __future__ import annotations

import asyncio

import pytest

import flowlab.deadlock as dl
from flowlab.engine.clock import run_virtual
from flowlab.study.deadlock.trace import learned, registry_for


def _line(marker: str) -> int:
    with open(__file__) as fh:
        for no, text in enumerate(fh, 1):
            if marker in text and "_line(" not in text:
                return no
    raise AssertionError(marker)


def test_lock_mutual_exclusion_fifo_handoff_and_holders() -> None:
    lock = dl.Lock(name="A")
    order: list[str] = []

    async def worker(name: str) -> None:
        async with lock:  # acquire-here
            order.append(name)
            await asyncio.sleep(1)

    async def main() -> None:
        tasks = [asyncio.create_task(worker(n), name=n) for n in "abc"]
        await asyncio.sleep(0.5)
        assert lock.locked()
        assert [h.name for h in lock.holders()] == ["a"]
        assert lock.holders()[0].where == f"test_primitives.py:{_line('# acquire-here')}"
        assert lock.waiters() == ["b", "c"]
        assert "held by a" in repr(lock) and "waiters=2" in repr(lock)
        await asyncio.gather(*tasks)
        assert not lock.locked()

    run_virtual(main())
    assert order == ["a", "b", "c"]


def test_lock_events_are_recorded_with_virtual_time() -> None:
    lock = dl.Lock(name="A")

    async def hold(name: str) -> None:
        async with lock:
            await asyncio.sleep(2)

    async def main() -> list[tuple[float, str, str]]:
        await asyncio.gather(
            asyncio.create_task(hold("x"), name="x"), asyncio.create_task(hold("y"), name="y")
        )
        reg = registry_for(asyncio.get_running_loop())
        return [(e.time, e.task, e.op) for e in reg.events]

    assert run_virtual(main()) == [
        (0.0, "x", "acquire"),
        (0.0, "y", "wait"),
        (2.0, "x", "release"),
        (2.0, "y", "acquire"),
        (4.0, "y", "release"),
    ]


def test_release_unlocked_raises_and_lock_is_not_reentrant_free() -> None:
    async def main() -> None:
        lock = dl.Lock()
        with pytest.raises(RuntimeError, match="not acquired"):
            lock.release()
        assert lock.name.startswith("lock-")

    run_virtual(main())


def test_cancelled_waiter_leaves_queue_and_granted_then_cancelled_passes_on() -> None:
    lock = dl.Lock(name="L")

    async def main() -> list[str]:
        got: list[str] = []

        async def take(name: str) -> None:
            async with lock:
                got.append(name)

        await lock.acquire()
        b = asyncio.create_task(take("b"), name="b")
        c = asyncio.create_task(take("c"), name="c")
        await asyncio.sleep(0)
        b.cancel()  # b is waiting: it must leave the queue
        await asyncio.sleep(0)
        assert lock.waiters() == ["c"]
        d = asyncio.create_task(take("d"), name="d")
        await asyncio.sleep(0)
        lock.release()  # hands the lock to c ...
        c.cancel()  # ... which is cancelled before it runs: the grant must pass to d
        await asyncio.gather(b, c, d, return_exceptions=True)
        assert not lock.locked()
        return got

    assert run_virtual(main()) == ["d"]


def test_semaphore_holders_value_and_bounded() -> None:
    async def main() -> None:
        sem = dl.Semaphore(2, name="slots")
        await sem.acquire()
        await sem.acquire()
        assert sem.locked() and sem.statistics()["value"] == 0
        assert len(sem.holders()) == 2
        sem.release()
        assert sem.statistics()["value"] == 1
        bounded = dl.BoundedSemaphore(1, name="b")
        with pytest.raises(ValueError, match="too many"):
            bounded.release()
        with pytest.raises(ValueError, match=">= 0"):
            dl.Semaphore(-1)

    run_virtual(main())


def test_signal_semaphore_names_releasers_and_learns() -> None:
    items = dl.Semaphore(0, name="items", releasers=["producer"])

    async def producer() -> None:
        await asyncio.sleep(1)
        items.release()

    async def consumer() -> float:
        await items.acquire()
        return asyncio.get_running_loop().time()

    async def main() -> float:
        p = asyncio.create_task(producer(), name="producer")
        t = await asyncio.create_task(consumer(), name="consumer")
        await p
        return t

    assert run_virtual(main()) == 1.0
    assert items.holders() == []  # a signal semaphore has no owners
    assert items.wakers("acquire").declared == ["producer"]
    assert learned(items) == ["producer"]


def test_event_set_clear_wait_and_declared_setters() -> None:
    ev = dl.Event(name="go", setters=["starter"])

    async def main() -> list[float]:
        times: list[float] = []

        async def waiter() -> None:
            await ev.wait()
            times.append(asyncio.get_running_loop().time())

        async def starter() -> None:
            await asyncio.sleep(3)
            ev.set()

        await asyncio.gather(
            asyncio.create_task(waiter(), name="w1"),
            asyncio.create_task(waiter(), name="w2"),
            asyncio.create_task(starter(), name="starter"),
        )
        assert ev.is_set()
        ev.clear()
        assert not ev.is_set() and "unset" in repr(ev)
        return times

    assert run_virtual(main()) == [3.0, 3.0]
    assert ev.wakers("wait").declared == ["starter"]
    assert learned(ev) == ["starter"]


def test_condition_wait_notify_and_wait_for() -> None:
    cond = dl.Condition(name="c", notifiers=["maker"])
    box: list[int] = []

    async def taker() -> int:
        async with cond:
            await cond.wait_for(lambda: box)
            return box.pop()

    async def maker() -> None:
        await asyncio.sleep(1)
        async with cond:
            box.append(7)
            cond.notify_all()

    async def main() -> list[int]:
        with pytest.raises(RuntimeError, match="un-acquired"):
            cond.notify()
        t = asyncio.create_task(taker(), name="taker")
        await asyncio.create_task(maker(), name="maker")
        return [await t]

    assert run_virtual(main()) == [7]
    assert cond.lock.label == "Lock 'c.lock'"


def test_queue_blocks_both_ways_and_join() -> None:
    q: dl.Queue[int] = dl.Queue(1, name="q")

    async def main() -> list[tuple[str, float]]:
        log: list[tuple[str, float]] = []
        now = asyncio.get_running_loop().time

        async def producer() -> None:
            for i in range(3):
                await q.put(i)
                log.append((f"put{i}", now()))

        async def consumer() -> None:
            for _ in range(3):
                await asyncio.sleep(1)
                await q.get()
                q.task_done()

        with pytest.raises(asyncio.QueueEmpty):
            q.get_nowait()
        await asyncio.gather(
            asyncio.create_task(producer(), name="p"), asyncio.create_task(consumer(), name="c")
        )
        await q.join()
        return log

    assert run_virtual(main()) == [("put0", 0.0), ("put1", 1.0), ("put2", 2.0)]
    with pytest.raises(ValueError, match="too many"):
        q.task_done()


def test_registry_lists_the_blocked_task_with_resource_and_line() -> None:
    lock = dl.Lock(name="R")

    async def main() -> None:
        await lock.acquire()

        async def blocked() -> None:
            await lock.acquire()  # wait-here

        t = asyncio.create_task(blocked(), name="blocked")
        await asyncio.sleep(0)
        wait = registry_for(asyncio.get_running_loop()).wait_of(t)
        assert wait is not None
        assert (wait.resource, wait.op) == (lock, "acquire")
        assert wait.where == f"test_primitives.py:{_line('# wait-here')}"
        lock.release()
        await t
        assert registry_for(asyncio.get_running_loop()).wait_of(t) is None
        lock.release()

    run_virtual(main())


def test_primitive_bound_to_another_loop_raises() -> None:
    lock = dl.Lock(name="once")

    async def use() -> None:
        async with lock:
            pass

    run_virtual(use())
    with pytest.raises(RuntimeError, match="different event loop"):
        run_virtual(use())
