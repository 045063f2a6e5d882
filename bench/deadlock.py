"""Figure 6: deadlock detection latency, on the real clock.

The textbook lock-order deadlock, with flowlab's traced locks under ``fl.deadlock.watch``: task
``one`` holds ``A`` and wants ``B``, task ``two`` holds ``B`` and wants ``A``. Each task stamps
``perf_counter()`` right before its second acquire; the later stamp is the moment the cycle closes.
The latency of one sample is from that stamp to :class:`~flowlab.errors.DeadlockDetected` reaching
the caller (report built, the group's tasks cancelled and awaited). Median and p99.

Baseline: the fixed program (both tasks take ``A`` then ``B``) on plain ``asyncio.Lock`` under
``asyncio.gather``, timed the same way: from the later stamp to ``gather`` returning. The ratio says
how a detected hang compares with the same program simply finishing.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench._core import Figure, Settings, median, percentile

__all__ = ["deadlock_latency"]


def _api() -> tuple[Any, Any] | str:
    try:
        from flowlab.study.deadlock import Lock, watch
    except ImportError as err:
        return f"skipped: fl.deadlock.watch / Lock are not available ({err})"
    return Lock, watch


async def _hang_once(lock_cls: Any, watch: Any) -> float:
    from flowlab.errors import DeadlockDetected

    a, b = lock_cls(name="A"), lock_cls(name="B")
    stamps: list[float] = []

    async def one() -> None:
        async with a:
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            stamps.append(time.perf_counter())
            async with b:
                pass

    async def two() -> None:
        async with b:
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            stamps.append(time.perf_counter())
            async with a:
                pass

    try:
        await watch(one(), two())
    except DeadlockDetected:
        return time.perf_counter() - max(stamps)
    raise RuntimeError("the lock-order deadlock was not detected")


async def _fixed_once() -> float:
    a, b = asyncio.Lock(), asyncio.Lock()
    stamps: list[float] = []

    async def task() -> None:
        async with a:
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            stamps.append(time.perf_counter())
            async with b:
                pass

    await asyncio.gather(task(), task())
    return time.perf_counter() - max(stamps)


def deadlock_latency(settings: Settings) -> Figure:
    """Figure 6."""
    fig = Figure("deadlock", 6, "Deadlock detection latency, real clock")
    api = _api()
    if isinstance(api, str):
        fig.skipped = api
        return fig
    lock_cls, watch = api
    n = settings.pick(30, 300)

    async def main() -> tuple[list[float], list[float]]:
        await _hang_once(lock_cls, watch)
        await _fixed_once()
        hang: list[float] = []
        fixed: list[float] = []
        for _ in range(n):
            fixed.append(await _fixed_once())
            hang.append(await _hang_once(lock_cls, watch))
        return hang, fixed

    hang, fixed = asyncio.run(main())
    fig.add(
        "median_ms", median(hang) * 1e3, "ms", "cycle closed -> DeadlockDetected, median",
        target="< 100 ms", check=lambda v: v < 100,
    )  # fmt: skip
    fig.add("p99_ms", percentile(hang, 99) * 1e3, "ms", "  p99")
    fig.add("baseline_median_ms", median(fixed) * 1e3, "ms", "fixed order, plain asyncio: to done")
    fig.add("ratio_median", median(hang) / median(fixed), "x", "detected hang / fixed run, median")
    fig.notes.append(f"{n} samples each, one event loop")
    return fig
