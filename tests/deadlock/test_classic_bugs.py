"""SCTBench / CHESS-style interleaving bugs on untraced state: the default explorer finds each.

Every program passes on asyncio's own FIFO schedule (checked with ``asyncio.run``, the
independent model), so a search that runs one schedule and stops would call it correct.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

import flowlab.deadlock as dl
from flowlab.study.deadlock.explorer import explore


async def account() -> int:
    """SCTBench account: the balance check and the update are separate critical sections."""
    lock = dl.Lock(name="account")
    balance = [100]

    async def withdraw(amount: int, late: int) -> None:
        for _ in range(late):
            await asyncio.sleep(0)
        async with lock:
            ok = balance[0] >= amount
        await asyncio.sleep(0)  # the check is stale by now
        if ok:
            async with lock:
                balance[0] -= amount

    await asyncio.gather(withdraw(80, 0), withdraw(80, 2))
    assert balance[0] >= 0, f"overdrawn: {balance[0]}"
    return balance[0]


async def wronglock() -> int:
    """SCTBench wronglock: two tasks guard one counter with two different locks."""
    a, b = dl.Lock(name="a"), dl.Lock(name="b")
    data = [0]

    async def bump(lock: dl.Lock, late: int) -> None:
        for _ in range(late):
            await asyncio.sleep(0)
        async with lock:
            seen = data[0]
            await asyncio.sleep(0)
            data[0] = seen + 1

    await asyncio.gather(bump(a, 0), bump(b, 2))
    assert data[0] == 2, f"lost update under the wrong lock: {data[0]}"
    return data[0]


async def bluetooth() -> str:
    """The KISS bluetooth driver: stop() can run between dispatch's flag check and its increment."""
    state = {"pending": 1, "stopping": False, "stopped": False}
    drained = asyncio.Event()

    def decrement() -> None:
        state["pending"] -= 1
        if state["pending"] == 0:
            drained.set()

    async def dispatch() -> None:
        for _ in range(2):
            await asyncio.sleep(0)
        if state["stopping"]:
            return
        await asyncio.sleep(0)  # the window
        state["pending"] += 1
        assert not state["stopped"], "dispatch ran on a stopped device"
        decrement()

    async def stop() -> None:
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        state["stopping"] = True
        decrement()
        await drained.wait()
        state["stopped"] = True

    await asyncio.gather(dispatch(), stop())
    return "stopped"


async def countdown() -> int:
    """A hand-made countdown latch whose decrement is not atomic: the waiter never wakes."""
    left = [2]
    done = asyncio.Event()

    async def arrive(late: int) -> None:
        for _ in range(late):
            await asyncio.sleep(0)
        seen = left[0]
        await asyncio.sleep(0)
        left[0] = seen - 1
        if left[0] == 0:
            done.set()

    async def waiter() -> int:
        await asyncio.wait_for(done.wait(), timeout=1.0)
        return left[0]

    _, _, value = await asyncio.gather(arrive(0), arrive(2), waiter())
    return value


BUGS: list[Callable[[], Coroutine[Any, Any, Any]]] = [account, wronglock, bluetooth, countdown]


@pytest.mark.parametrize("fn", BUGS, ids=lambda f: f.__name__)
def test_fifo_hides_the_bug_and_the_default_explorer_finds_it(fn: Any) -> None:
    asyncio.run(fn())  # passes on asyncio's own schedule
    found = explore(fn, stop_on_first=True)
    assert found.first_failure is not None, found.summary()
    assert found.first_failure.status == "failed"
    assert found.first_failure.preemptions <= 2
    again = found.replay()
    assert again.status == "failed" and type(again.error) is type(found.first_failure.error)
