"""The detector never cancels a correct program (issue 19: lightswitch, deadlines, declarations).

Each program is also run on plain asyncio primitives as an independent model: the traced run must
finish with the same log at the same virtual times.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import flowlab.deadlock as dl
from flowlab.engine.clock import run_virtual

# ------------------------------------------------------------------ readers-writers


def _readers_writers(sem: Callable[..., Any], lock: Callable[..., Any]) -> tuple[list[Any], list]:
    """The Little Book's no-starve readers-writers (4.2.6) with a lightswitch.

    The first reader in takes ``roomEmpty``; the *last* reader out releases it, so a permit is
    released by a task that did not acquire it. reader1 leaves while reader2 still reads, then
    comes back and queues on the turnstile the writer holds: the writer waits for ``roomEmpty``
    "held" by reader1, reader1 waits for the writer -- but reader2, still reading, will release
    ``roomEmpty`` and everything finishes.
    """
    room_empty = sem(1, name="roomEmpty")
    turnstile = sem(1, name="turnstile")
    mutex = lock(name="readSwitch.mutex")
    readers = [0]
    log: list[tuple[float, str]] = []

    def note(what: str) -> None:
        log.append((asyncio.get_running_loop().time(), what))

    async def switch_on() -> None:
        async with mutex:
            readers[0] += 1
            if readers[0] == 1:
                await room_empty.acquire()  # first in locks the room

    async def switch_off() -> None:
        async with mutex:
            readers[0] -= 1
            if readers[0] == 0:
                room_empty.release()  # last out unlocks it

    async def reader(name: str, start: float, reads: list[float]) -> str:
        await asyncio.sleep(start)
        for duration in reads:
            await turnstile.acquire()
            turnstile.release()
            await switch_on()
            note(f"{name} reads")
            await asyncio.sleep(duration)
            await switch_off()
            note(f"{name} done")
        return name

    async def writer() -> str:
        await asyncio.sleep(0.2)
        await turnstile.acquire()
        await room_empty.acquire()
        note("writer writes")
        await asyncio.sleep(0.1)
        turnstile.release()
        room_empty.release()
        return "writer"

    coros = [reader("reader1", 0.0, [1.0, 0.5]), reader("reader2", 0.1, [2.0]), writer()]
    return coros, log


def test_lightswitch_released_by_another_reader_is_not_a_deadlock() -> None:
    async def traced() -> tuple[list[Any], list, dl.DeadlockReport]:
        coros, log = _readers_writers(dl.Semaphore, dl.Lock)
        results, report = await dl.supervise(*coros, names=["reader1", "reader2", "writer"])
        return results, log, report

    async def plain() -> tuple[list[Any], list]:
        coros, log = _readers_writers(
            lambda v, name: asyncio.Semaphore(v), lambda name: asyncio.Lock()
        )
        return await asyncio.gather(*coros), log

    results, log, report = run_virtual(traced())
    model_results, model_log = run_virtual(plain())
    assert not report.deadlocked, report.explain()
    assert report.cancelled == []
    assert results == model_results == ["reader1", "reader2", "writer"]
    assert log == model_log
    assert (2.1, "writer writes") in log  # reader2 (not reader1) let the writer in


def test_a_semaphore_taken_by_async_with_and_never_given_back_is_still_a_partial_deadlock() -> None:
    """Owner discipline is kept where it is certain: ``async with`` releases in the same task."""

    async def main() -> dl.DeadlockReport:
        a, b = dl.Semaphore(1, name="a"), dl.Semaphore(1, name="b")

        async def one() -> None:
            async with a:
                await asyncio.sleep(1)
                async with b:
                    pass

        async def two() -> None:
            async with b:
                await asyncio.sleep(1)
                async with a:
                    pass

        async def bystander() -> None:
            await asyncio.sleep(5)

        _, report = await dl.supervise(one(), two(), bystander())
        return report

    report = run_virtual(main())
    assert report.deadlocked and report.detected_at == 1.0
    assert report.stuck == ["one", "two"]


def test_a_leaked_bare_permit_is_reported_once_every_other_task_is_done() -> None:
    async def main() -> dl.DeadlockReport:
        sem = dl.Semaphore(1, name="s")

        async def leaker() -> None:
            await sem.acquire()  # never released

        async def waiter() -> None:
            await asyncio.sleep(1)
            await sem.acquire()

        _, report = await dl.supervise(leaker(), waiter())
        return report

    report = run_virtual(main())
    assert report.deadlocked and report.stuck == ["waiter"]
    text = report.explain()
    assert "held by task leaker" in text and "leaker finished without releasing it" in text


# ------------------------------------------------------------------ deadlines


def _backoff(lock: Callable[..., Any], timed: bool) -> tuple[list[Any], list]:
    """Opposite lock order, the second acquire under a deadline; on timeout back off and retry."""
    a, b = lock(name="A"), lock(name="B")
    log: list[tuple[float, str]] = []

    async def worker(name: str, first: Any, second: Any, pause: float) -> str:
        while True:
            async with first:
                await asyncio.sleep(0.01)
                try:
                    if timed:
                        async with asyncio.timeout(0.05):
                            await second.acquire()
                    else:
                        await asyncio.wait_for(second.acquire(), 0.05)
                except TimeoutError:
                    log.append((asyncio.get_running_loop().time(), f"{name} backs off"))
                else:
                    second.release()
                    return name
            await asyncio.sleep(pause)

    return [worker("one", a, b, 0.01), worker("two", b, a, 0.2)], log


def test_a_wait_under_asyncio_timeout_is_not_stuck() -> None:
    async def traced(timed: bool) -> tuple[list[Any], list, dl.DeadlockReport]:
        coros, log = _backoff(dl.Lock, timed)
        results, report = await dl.supervise(*coros, names=["one", "two"])
        return results, log, report

    async def plain() -> tuple[list[Any], list]:
        coros, log = _backoff(lambda name: asyncio.Lock(), True)
        return await asyncio.gather(*coros), log

    model_results, model_log = run_virtual(plain())
    for timed in (True, False):
        results, log, report = run_virtual(traced(timed))
        assert not report.deadlocked, report.explain()
        assert results == model_results == ["one", "two"]
        assert log == model_log and len(log) >= 2
    _, _, report = run_virtual(traced(True))
    assert "would deadlock without its timeout" in report.explain()
    assert report.near_misses and report.near_misses[0].startswith("t=0.010 s")


def test_the_same_program_without_deadlines_is_still_reported() -> None:
    async def main() -> dl.DeadlockReport:
        a, b = dl.Lock(name="A"), dl.Lock(name="B")

        async def worker(first: dl.Lock, second: dl.Lock) -> None:
            async with first:
                await asyncio.sleep(0.01)
                async with second:
                    pass

        _, report = await dl.supervise(worker(a, b), worker(b, a), names=["one", "two"])
        return report

    report = run_virtual(main())
    assert report.deadlocked and report.detected_at == 0.01


# ------------------------------------------------------------------ declarations


def _request_reply(queue: Callable[..., Any]) -> list[Any]:
    """``requests`` declares ``producers=["client"]``, but client delegates to ``client.send``."""
    requests = queue(name="requests", producers=["client"])
    replies = queue(name="replies", producers=["server"])

    async def server() -> str:
        request = await requests.get()
        await replies.put(f"re: {request}")
        return "served"

    async def send() -> None:
        await asyncio.sleep(0.01)
        await requests.put("hello")

    async def client() -> str:
        sender = asyncio.create_task(send(), name="client.send")
        reply: str = await replies.get()
        await sender
        return reply

    return [server(), client()]


def test_a_declared_producer_that_delegates_to_its_child_task_is_not_a_cycle() -> None:
    async def main() -> tuple[list[Any], dl.DeadlockReport]:
        return await dl.supervise(*_request_reply(dl.Queue), names=["server", "client"])

    async def plain() -> list[Any]:
        return await asyncio.gather(*_request_reply(lambda **_: asyncio.Queue()))

    results, report = run_virtual(main())
    assert not report.deadlocked, report.explain()
    assert results == run_virtual(plain()) == ["served", "re: hello"]


def test_an_undeclared_setter_seen_in_action_is_a_waker_and_a_warning() -> None:
    """``setters=["a"]`` but ``b`` is the one who sets it: trust what was seen, warn, don't cancel."""

    async def main() -> tuple[list[Any], dl.DeadlockReport]:
        go = dl.Event(name="go", setters=["a"])

        async def a() -> str:
            await asyncio.sleep(0)
            return "a"  # the declared setter finishes without ever setting it

        async def b() -> str:
            for _ in range(3):
                go.set()
                go.clear()
                await asyncio.sleep(0.1)
            go.set()
            return "b"

        async def c() -> str:
            await asyncio.sleep(0.05)
            await go.wait()  # a has finished; only b (undeclared, seen setting it) can
            return "c"

        return await dl.supervise(a(), b(), c())

    results, report = run_virtual(main())
    assert not report.deadlocked, report.explain()
    assert results == ["a", "b", "c"]
    assert report.warnings == [
        "Event 'go' was declared set by a, but task b did it too; the declaration is "
        "incomplete, so any live task counts as a possible waker"
    ]
    assert "Warning: Event 'go' was declared" in report.explain()


def test_a_lock_handed_over_by_a_finished_holder_is_not_a_deadlock() -> None:
    """asyncio lets any task release a Lock: the holder may finish and leave the release to another."""

    async def program(lock: Any) -> list[Any]:
        async def opener() -> str:
            await lock.acquire()  # ... and finishes: closer releases it later
            return "opener"

        async def closer() -> str:
            await asyncio.sleep(1)
            lock.release()
            return "closer"

        async def user() -> float:
            await asyncio.sleep(0.5)
            async with lock:
                return asyncio.get_running_loop().time()

        return [opener(), closer(), user()]

    async def traced() -> tuple[list[Any], dl.DeadlockReport]:
        return await dl.supervise(*await program(dl.Lock(name="gate")))

    async def plain() -> list[Any]:
        return await asyncio.gather(*await program(asyncio.Lock()))

    results, report = run_virtual(traced())
    assert not report.deadlocked, report.explain()
    assert results == run_virtual(plain()) == ["opener", "closer", 1.0]


def test_a_lock_leaked_by_a_finished_task_is_still_found_once_the_rest_is_done() -> None:
    async def main() -> dl.DeadlockReport:
        lock = dl.Lock(name="leaky")

        async def leaker() -> None:
            await lock.acquire()

        async def user() -> None:
            await asyncio.sleep(0.5)
            async with lock:
                pass

        async def bystander() -> None:
            await asyncio.sleep(2)

        _, report = await dl.supervise(leaker(), user(), bystander())
        return report

    report = run_virtual(main())
    assert report.deadlocked and report.stuck == ["user"] and report.detected_at == 2.0
    assert "leaker finished without releasing it" in report.explain()
