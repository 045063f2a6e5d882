"""Barrier, CountdownEvent, RLock, try_acquire and acquire(timeout=): behavior and detection.

Each primitive is checked against its asyncio / threading counterpart where one exists, and the
detector is held to two promises: a waiter that can never be woken is reported, and nothing that
could still be woken (a party still to come, a timed wait) is.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import flowlab.deadlock as dl
from flowlab.engine.clock import run_virtual


def now() -> float:
    return asyncio.get_running_loop().time()


# ------------------------------------------------------------------ Barrier
async def _meet(barrier: Any, rounds: int = 2) -> list[list[tuple[int, float]]]:
    async def runner(i: int) -> list[tuple[int, float]]:
        seen = []
        for r in range(rounds):
            await asyncio.sleep(0.1 * (i + 1) + r)
            index = await barrier.wait()
            seen.append((index, now()))
        return seen

    return await asyncio.gather(*(runner(i) for i in range(3)))


def test_barrier_matches_asyncio_barrier_round_after_round() -> None:
    ours = run_virtual(_meet(dl.Barrier(3, name="b")))
    theirs = run_virtual(_meet(asyncio.Barrier(3)))
    assert ours == theirs
    assert [[round(t, 9) for _, t in lane] for lane in ours] == [[0.3, 1.6]] * 3
    assert sorted(idx for lane in ours for idx, _ in lane[:1]) == [0, 1, 2]


def test_barrier_abort_breaks_waiters_and_later_calls_and_reset_restores() -> None:
    async def main() -> tuple[list[Any], bool]:
        barrier = dl.Barrier(3, name="b")

        async def waiter() -> int:
            return await barrier.wait()

        async def breaker() -> None:
            await asyncio.sleep(0.1)
            barrier.abort()

        got = await dl.watch(waiter(), breaker(), on_deadlock="report")
        return got, barrier.broken

    with pytest.raises(asyncio.BrokenBarrierError):
        run_virtual(main())
    barrier = dl.Barrier(1, name="solo")
    assert run_virtual(barrier.wait()) == 0 and repr(barrier) == "<Barrier 'solo' waiting=0/1>"


def test_barrier_with_a_missing_party_is_stuck_once_no_live_task_can_arrive() -> None:
    async def main() -> dl.DeadlockReport:
        barrier = dl.Barrier(3, name="start")

        async def runner(delay: float) -> None:
            await asyncio.sleep(delay)
            await barrier.wait()

        async def bystander() -> None:
            await asyncio.sleep(5)  # alive, so it could still arrive: no alarm before t=5

        _, report = await dl.supervise(runner(0.1), runner(0.2), bystander())
        return report

    report = run_virtual(main())
    assert report.deadlocked and report.detected_at == 5.0
    assert report.stuck == ["runner", "runner-2"] and report.kind == "no_waker"  # no cycle
    text = report.explain()
    assert "waits for Barrier 'start'" in text and "left to arrive at" in text


def test_barrier_never_alarms_while_the_last_party_is_still_coming() -> None:
    async def main() -> list[Any]:
        barrier = dl.Barrier(3, name="start")

        async def runner(delay: float) -> int:
            await asyncio.sleep(delay)
            return await barrier.wait()

        async def late() -> int:
            await asyncio.sleep(3)
            async with dl.Lock(name="busy"):  # blocks on traced things on its way, too
                await asyncio.sleep(1)
            return await barrier.wait()

        return await dl.watch(runner(0.1), runner(0.2), late())

    assert sorted(run_virtual(main())) == [0, 1, 2]


def test_a_plain_asyncio_barrier_hangs_where_the_traced_one_is_reported() -> None:
    async def plain() -> str:
        barrier = asyncio.Barrier(2)
        try:
            await asyncio.wait_for(barrier.wait(), 100)
        except TimeoutError:
            return "hang"
        return "ok"

    async def traced() -> bool:
        barrier = dl.Barrier(2, name="b")
        _, report = await dl.supervise(barrier.wait())
        return report.deadlocked

    assert run_virtual(plain()) == "hang" and run_virtual(traced()) is True


# ------------------------------------------------------------ CountdownEvent
def test_countdown_event_opens_after_count_signals() -> None:
    async def main() -> tuple[float, int, bool]:
        done = dl.CountdownEvent(3, name="done", signalers=["w0", "w1", "w2"])

        async def worker(i: int) -> None:
            await asyncio.sleep(0.1 * (i + 1))
            done.signal()

        async def waiter() -> float:
            await done.wait()
            return now()

        got = await dl.watch(waiter(), *(worker(i) for i in range(3)),
                             names=["waiter", "w0", "w1", "w2"])  # fmt: skip
        return got[0], done.count, done.is_set()

    assert run_virtual(main()) == (pytest.approx(0.3), 0, True)


def test_countdown_missing_signal_is_found_while_unrelated_tasks_run() -> None:
    async def main() -> dl.DeadlockReport:
        done = dl.CountdownEvent(2, name="done", signalers=["w0", "w1"])

        async def w0() -> None:
            done.signal()

        async def w1() -> None:
            await asyncio.sleep(0.1)  # forgets to signal

        async def waiter() -> None:
            await done.wait()

        async def unrelated() -> None:
            await asyncio.sleep(10)

        _, report = await dl.supervise(
            waiter(), w0(), w1(), unrelated(), on_deadlock="cancel_stuck"
        )
        return report

    report = run_virtual(main())
    assert report.deadlocked and report.detected_at == pytest.approx(0.1)
    assert report.stuck == ["waiter"] and "unrelated" in report.healthy
    assert "which only tasks w0 and w1 signal" in report.explain()


def test_countdown_rules() -> None:
    async def main() -> tuple[bool, float]:
        latch = dl.CountdownEvent(1, name="l")
        with pytest.raises(ValueError, match="signal\\(n=2\\) is not valid"):
            latch.signal(2)
        assert latch.signal(1) is True
        with pytest.raises(RuntimeError, match="already set"):
            latch.add()
        latch.reset()
        assert latch.count == 1 and not latch.is_set()
        ok = await latch.wait(timeout=0.5)
        return ok, now()

    assert run_virtual(main()) == (False, 0.5)


# --------------------------------------------------------------------- RLock
def test_rlock_is_reentrant_and_only_its_holder_releases_it() -> None:
    async def main() -> list[str]:
        lock = dl.RLock(name="r")
        log: list[str] = []

        async def owner() -> None:
            async with lock:
                async with lock:  # a Lock would deadlock here
                    await asyncio.sleep(0.1)
                    log.append("inner")
                assert lock.locked()
            log.append("outer")

        async def other() -> None:
            await asyncio.sleep(0.05)
            with pytest.raises(RuntimeError, match="only be released by the task holding it"):
                lock.release()
            async with lock:
                log.append("other")

        await dl.watch(owner(), other())
        return log

    assert run_virtual(main()) == ["inner", "outer", "other"]


def test_self_deadlock_scenario_with_an_rlock_passes_and_with_a_lock_is_caught() -> None:
    async def save(lock: dl.Lock) -> bool:
        async def log() -> None:
            async with lock:
                pass

        async def body() -> None:
            async with lock:
                await log()

        _, report = await dl.supervise(body())
        return report.deadlocked

    assert run_virtual(save(dl.RLock(name="db"))) is False
    assert run_virtual(save(dl.Lock(name="db"))) is True


def test_rlock_cycle_between_two_tasks_is_a_deadlock() -> None:
    async def main() -> list[str]:
        a, b = dl.RLock(name="A"), dl.RLock(name="B")

        async def one() -> None:
            async with a, a:
                await asyncio.sleep(0.1)
                async with b:
                    pass

        async def two() -> None:
            async with b:
                await asyncio.sleep(0.1)
                async with a:
                    pass

        try:
            await dl.watch(one(), two())
        except dl.DeadlockDetected as err:
            return err.report.cycle
        return []

    assert run_virtual(main()) == ["one", "RLock 'B'", "two", "RLock 'A'", "one"]


# ------------------------------------------------- try_acquire / acquire(timeout)
@pytest.mark.parametrize("make", [lambda: dl.Lock(name="m"), lambda: dl.Semaphore(1, name="m"),
                                  lambda: dl.RLock(name="m")])  # fmt: skip
def test_try_acquire_takes_a_free_resource_and_never_waits(make: Any) -> None:
    async def main() -> list[bool]:
        res = make()
        got = [res.try_acquire()]

        async def other() -> bool:
            return bool(res.try_acquire())

        got.append(await asyncio.create_task(other()))
        res.release()
        got.append(await asyncio.create_task(other()))
        return got

    assert run_virtual(main()) == [True, False, True]


async def _tryenter_transfer(timed: bool) -> list[str]:
    """The Deadlock Empire's TryEnter: lock-order inversion, broken by giving up and retrying."""
    a, b = dl.Lock(name="A"), dl.Lock(name="B")

    async def move(first: dl.Lock, second: dl.Lock, name: str) -> str:
        while True:
            async with first:
                await asyncio.sleep(0.1)
                ok = await second.acquire(timeout=0.05) if timed else second.try_acquire()
                if ok:
                    second.release()
                    return name
            await asyncio.sleep(0.1 if name == "one" else 0.17)  # back off, unevenly

    return await dl.watch(move(a, b, "one"), move(b, a, "two"))


@pytest.mark.parametrize("timed", [True, False])
def test_giving_up_breaks_the_cycle_and_is_never_called_a_deadlock(timed: bool) -> None:
    assert run_virtual(_tryenter_transfer(timed)) == ["one", "two"]
    found = dl.explore(lambda: _tryenter_transfer(timed), max_schedules=300)
    assert found.deadlocks == 0 and found.failures == 0


def test_a_timed_acquire_is_a_near_miss_not_a_deadlock() -> None:
    async def main() -> tuple[list[Any], dl.DeadlockReport, float]:
        sem = dl.Semaphore(1, name="slots")

        async def holder() -> None:
            async with sem:
                await asyncio.sleep(10)

        async def hurried() -> bool:
            await asyncio.sleep(0.1)
            return await sem.acquire(timeout=0.25)

        start = now()
        results, report = await dl.supervise(hurried(), holder())
        return results, report, now() - start

    results, report, took = run_virtual(main())
    assert results == [False, None] and not report.deadlocked and took == 10.0


def test_timed_cycle_is_reported_as_a_near_miss() -> None:
    async def main() -> dl.DeadlockReport:
        a, b = dl.Lock(name="A"), dl.Lock(name="B")

        async def one() -> bool:
            async with a:
                await asyncio.sleep(0.1)
                return await b.acquire(timeout=1)

        async def two() -> bool:
            async with b:
                await asyncio.sleep(0.1)
                return await a.acquire(timeout=2)

        _, report = await dl.supervise(one(), two())
        return report

    report = run_virtual(main())
    assert not report.deadlocked
    assert any("would deadlock without its timeout" in n for n in report.near_misses)
