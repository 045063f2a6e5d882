"""Small programs for the explorer: bugs that asyncio's FIFO loop hides.

:func:`transfers` is a lock-order inversion that plain runs never hit: on asyncio's FIFO loop
``alice_to_bob`` always takes both locks before ``bob_to_alice`` is done validating, so it
passes every time. Two delays (``bob_to_alice`` running twice in a row while ``alice_to_bob``
is ready) close the cycle. The explorer finds them; :func:`plain_runs` shows that repeating
the program does not.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from flowlab.engine.clock import run_in_thread
from flowlab.errors import DeadlockDetected
from flowlab.study.deadlock.detector import watch
from flowlab.study.deadlock.primitives import Lock

__all__ = ["plain_runs", "transfers"]


async def transfers() -> list[str]:
    """Two transfers between alice and bob; the second validates first, then locks bob."""
    locks = {"alice": Lock(name="alice"), "bob": Lock(name="bob")}

    async def transfer(src: str, dst: str, checks: int) -> str:
        for _ in range(checks):
            await asyncio.sleep(0)  # validation round-trips
        async with locks[src]:
            await asyncio.sleep(0)  # read the balance
            async with locks[dst]:
                return f"{src}->{dst}"

    return await watch(
        transfer("alice", "bob", 0),
        transfer("bob", "alice", 2),
        names=["alice_to_bob", "bob_to_alice"],
    )


def plain_runs(fn: Callable[[], Coroutine[Any, Any, Any]], n: int = 10) -> dict[str, int]:
    """Run ``fn()`` ``n`` times on a plain asyncio loop (real clock); count ``ok``/``deadlock``."""
    counts = {"ok": 0, "deadlock": 0}
    for _ in range(n):
        try:
            run_in_thread(fn, "real").result()  # its own loop, also from a notebook cell
        except DeadlockDetected:
            counts["deadlock"] += 1
        else:
            counts["ok"] += 1
    return counts
