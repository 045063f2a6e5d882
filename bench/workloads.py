"""The workloads the figures share: the no-op fan-out, its hand-written asyncio baseline, contexts.

The no-op branch is the issue's unit of engine overhead: each branch does one ``await
asyncio.sleep(0)`` (one trip through the event loop) and changes nothing in a context of five small
fields. The baseline does exactly the same awaits with nothing but ``asyncio.TaskGroup`` and
``asyncio.Semaphore(cap)``, which is the least any asyncio executor with a cap must do.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel

__all__ = [
    "SmallCtx",
    "fanout",
    "noop",
    "raw_fanout",
    "run_raw",
]


class SmallCtx(BaseModel):
    """A context of five small fields (the issue's engine-overhead context)."""

    run_id: str = "bench"
    attempt: int = 0
    score: float = 0.0
    tags: list[str] = ["a", "b"]
    flags: dict[str, bool] = {"dry_run": False}


async def noop(data: Any, ctx: SmallCtx) -> None:
    """One trip through the event loop, no context change."""
    await asyncio.sleep(0)


async def bump(data: Any, ctx: SmallCtx) -> None:
    """A branch that changes one field (so it is diffed, recorded and merged)."""
    await asyncio.sleep(0)
    ctx.score += 1.0


def fanout(n: int, *, cap: int | None = 64, branch: Any = noop, merge: Any = "overwrite") -> Any:
    """A one-step pipeline: a Parallel of ``n`` copies of ``branch`` under ``max_concurrency=cap``."""
    import flowlab as fl

    return fl.Pipeline(
        fl.Parallel(
            {f"b{i}": branch for i in range(n)}, max_concurrency=cap, merge=merge, name="fan"
        )
    )


async def raw_fanout(n: int, cap: int, sleep_s: float = 0.0) -> None:
    """``n`` tasks in one ``asyncio.TaskGroup``, each holding ``asyncio.Semaphore(cap)`` around a sleep."""
    sem = asyncio.Semaphore(cap)

    async def one() -> None:
        async with sem:
            await asyncio.sleep(sleep_s)

    async with asyncio.TaskGroup() as tg:
        for _ in range(n):
            tg.create_task(one())


def run_raw(n: int, cap: int = 64) -> None:
    """The baseline, on a fresh event loop (as ``fl.run`` makes one)."""
    asyncio.run(raw_fanout(n, cap))
