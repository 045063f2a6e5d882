"""DPOR is checked against exhaustive search: without bounds both reach the same outcomes.

Partial-order reduction may skip schedules only when they are equivalent (they reorder steps that
commute), so every distinct end state that exhaustive search reaches -- a final value, an
exception type, a deadlock -- must be reached by ``"dpor"`` too, in no more schedules.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

import flowlab.deadlock as dl
from flowlab.study.deadlock.examples import transfers
from flowlab.study.deadlock.explorer import Exploration, explore, replay


async def three_counters() -> int:
    count = 0

    async def add(late: int) -> None:
        nonlocal count
        for _ in range(late):
            await asyncio.sleep(0)
        seen = count
        await asyncio.sleep(0)
        count = seen + 1

    await asyncio.gather(add(0), add(1), add(0))
    return count


async def shared_mix() -> tuple[int, int]:
    x, y = dl.Shared(0, name="x"), dl.Shared(0, name="y")

    async def move(src: dl.Shared[int], dst: dl.Shared[int]) -> None:
        seen = src.get()
        await asyncio.sleep(0)
        dst.set(dst.get() + seen + 1)

    await asyncio.gather(move(x, y), move(y, x), move(x, x))
    return x.get(), y.get()


async def locked_and_plain() -> list[str]:
    lock = dl.Lock(name="L")
    log: list[str] = []

    async def worker(name: str, late: int) -> None:
        for _ in range(late):
            await asyncio.sleep(0)
        async with lock:
            log.append(f"{name} in")
            await asyncio.sleep(0)
        log.append(f"{name} out")

    await asyncio.gather(worker("a", 0), worker("b", 1))
    return log


async def relay() -> list[int]:
    first = dl.Queue(1, name="first")
    second = dl.Queue(1, name="second")
    got: list[int] = []

    async def source() -> None:
        for i in range(2):
            await first.put(i)

    async def middle() -> None:
        for _ in range(2):
            await second.put(await first.get() * 10)

    async def sink() -> None:
        for _ in range(2):
            got.append(await second.get())

    await asyncio.gather(source(), middle(), sink())
    return got


async def wrong_pair() -> int:
    """Each task guards the counter with its own lock; every step touches a traced lock."""
    a, b = dl.Lock(name="a"), dl.Lock(name="b")
    done = dl.Shared(False, name="done")
    data = [0]

    async def bump(lock: dl.Lock, late: int) -> None:
        for _ in range(late):
            async with lock:
                await asyncio.sleep(0)
        async with lock:
            seen = data[0]
            await asyncio.sleep(0)  # the step after this wake-up writes untraced state
            data[0] = seen + 1

    await asyncio.gather(bump(a, 0), bump(b, 2))
    done.set(True)
    return data[0]


async def handshake() -> list[str]:
    """Events only: who sees whose flag depends on the order of set and wait."""
    ping, pong = dl.Event(name="ping"), dl.Event(name="pong")
    seen = dl.Shared("", name="seen")

    async def left() -> None:
        ping.set()
        await pong.wait()
        seen.set(seen.get() + "L")

    async def right() -> None:
        seen.set(seen.get() + ("r" if ping.is_set() else "R"))
        pong.set()

    async def third() -> None:
        await ping.wait()
        seen.set(seen.get() + "T")

    await asyncio.gather(left(), right(), third())
    return [seen.get()]


def _ends(fn: Callable[[], Coroutine[Any, Any, Any]], found: Exploration) -> set[str]:
    ends = set()
    for schedule, _, _ in found.runs:
        out = replay(fn, schedule)
        what = type(out.error).__name__ if out.error is not None else repr(out.value)
        ends.add(f"{out.status}:{what}" if out.status != "deadlock" else "deadlock")
    return ends


CASES: list[tuple[Callable[[], Coroutine[Any, Any, Any]], bool]] = [
    (three_counters, False),
    (shared_mix, True),
    (locked_and_plain, False),
    (relay, True),
    (transfers, False),
    (wrong_pair, False),
    (handshake, True),
]


@pytest.mark.parametrize(("fn", "traced"), CASES, ids=lambda c: getattr(c, "__name__", str(c)))
def test_dpor_reaches_every_end_state_that_exhaustive_search_reaches(fn: Any, traced: bool) -> None:
    full = explore(fn, strategy="exhaustive", preemption_bound=None)
    reduced = explore(fn, strategy="dpor", preemption_bound=None, assume_traced=traced)
    assert full.exhausted and reduced.exhausted
    assert reduced.schedules <= full.schedules
    assert _ends(fn, reduced) == _ends(fn, full)
