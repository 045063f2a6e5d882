"""Scenario bodies for bugs that are not deadlocks: only some interleavings fail, none hangs.

Design
------
The detector watches waits, so it cannot see these: every task finishes, with a wrong answer or an
exception. Each body passes on asyncio's own FIFO schedule (tasks that "come later" yield a few
times first, so a plain run never hits the window) and fails under a schedule the explorer finds:
the catalog marks them ``finder="explorer"`` and ``run(name)`` explores instead of watching.
Shared state is kept in :class:`~flowlab.study.deadlock.shared.Shared` or guarded by traced primitives
where the lesson allows, so the explorer's partial-order reduction can see the conflicts.
"""

from __future__ import annotations

import asyncio

from flowlab.study.deadlock.bodies import Coro
from flowlab.study.deadlock.channels import Condition, Event
from flowlab.study.deadlock.primitives import Lock
from flowlab.study.deadlock.shared import Shared

__all__ = ["condition_if_while", "lost_update", "order_violation"]

Built = tuple[list[Coro], list[str]]


async def _later(turns: int) -> None:
    for _ in range(turns):
        await asyncio.sleep(0)  # a round-trip: FIFO lets the other task run meanwhile


def lost_update(fixed: bool) -> Built:
    """Two deposits read the balance, await, and write it back (read-modify-write)."""
    balance = Shared(100, name="balance")
    lock = Lock(name="balance_lock")

    async def deposit(amount: int, turns: int) -> None:
        await _later(turns)
        if fixed:
            await lock.acquire()  # the read-modify-write is one critical section
        seen = balance.get()
        await asyncio.sleep(0)  # e.g. an audit call between read and write
        balance.set(seen + amount)
        if fixed:
            lock.release()

    async def bank() -> int:
        await asyncio.gather(deposit(10, 0), deposit(20, 3))
        assert balance.value == 130, f"lost update: balance {balance.value}, expected 130"
        return balance.value

    return [bank()], ["bank"]


def order_violation(fixed: bool) -> Built:
    """A handler uses the config that ``init`` sets, assuming init ran first."""
    config: dict[str, str] = {}
    ready = Event(name="config_ready", setters=["init"])

    async def init() -> None:
        await asyncio.sleep(0)  # read the file
        config["db"] = "postgres://db"
        ready.set()

    async def handler() -> str:
        await _later(2)  # "init has surely run by now"
        if fixed:
            await ready.wait()  # the order is enforced, not assumed
        assert "db" in config, "order violation: the handler ran before init set the config"
        return config["db"]

    return [init(), handler()], ["init", "handler"]


def condition_if_while(fixed: bool) -> Built:
    """Two consumers wait on a condition with ``if``; a late one takes the item first."""
    cond = Condition(name="items", notifiers=["producer"])
    items: list[int] = []

    async def consumer(turns: int) -> int:
        await _later(turns)
        async with cond:
            if fixed:
                while not items:  # re-check after every wake-up
                    await cond.wait()
            elif not items:  # checked once: after the wake-up it may be empty again
                await cond.wait()
            assert items, "woken with nothing to take: another consumer took the item"
            return items.pop()

    async def producer() -> None:
        for i in range(2):
            await _later(2)
            async with cond:
                items.append(i)
                cond.notify()

    return [consumer(0), consumer(4), producer()], ["consumer1", "consumer2", "producer"]
