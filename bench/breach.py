"""Figure 5: breach-to-cancel latency for 100 siblings, on the real clock.

One Parallel of 101 branches under ``fl.UsageLimits(cost=0.5)``: 100 siblings sleep (30 s), and a
last branch, once every sibling is asleep, stamps ``t0 = perf_counter()`` and calls
``fl.charge(cost=1.0)``, which crosses the budget. An :class:`~flowlab.Instrument` stamps every
``branch_finished``; the latency of one run is ``max(sibling finish stamps) - t0``: from the
crossing charge to *every* sibling cancelled and recorded. Median and p99 over many runs.

Baseline: the same shape in raw asyncio — 100 sleeping tasks and one that stamps ``t0`` and
raises inside an ``asyncio.TaskGroup`` (whose abort cancels the siblings); the siblings stamp in
``finally``. That is the least any asyncio executor pays to cancel 100 tasks.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench._core import Figure, Settings, median, percentile
from bench.workloads import SmallCtx

__all__ = ["breach_latency"]

SIBLINGS = 100


class _Boom(Exception):
    pass


def _flowlab_sample(pipe: Any, stamps: dict[str, float]) -> float:
    import flowlab as fl

    class Finish(fl.Instrument):
        def __init__(self) -> None:
            self.done: dict[str, tuple[float, str]] = {}

        def branch_finished(self, record: Any) -> None:
            self.done[record.branch] = (time.perf_counter(), record.status)

    inst = Finish()
    stamps.clear()
    res = fl.run(
        pipe, SmallCtx(), usage=fl.UsageLimits(cost=0.5), raise_on_error=False, instruments=[inst]
    )
    if res.status != "usage_limit_exceeded":
        raise RuntimeError(f"expected a usage breach, the run ended {res.status!r}")
    sib = [v for k, v in inst.done.items() if k != "breacher"]
    if len(sib) != SIBLINGS or any(status != "cancelled" for _, status in sib):
        raise RuntimeError("not every sibling was recorded as cancelled")
    return max(t for t, _ in sib) - stamps["t0"]


def _raw_sample() -> float:
    stamps: dict[str, float] = {}
    ends: list[float] = []

    async def sibling() -> None:
        try:
            await asyncio.sleep(30)
        finally:
            ends.append(time.perf_counter())

    async def breacher() -> None:
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        stamps["t0"] = time.perf_counter()
        raise _Boom

    async def main() -> None:
        try:
            async with asyncio.TaskGroup() as tg:
                for _ in range(SIBLINGS):
                    tg.create_task(sibling())
                tg.create_task(breacher())
        except* _Boom:
            pass

    asyncio.run(main())
    if len(ends) != SIBLINGS:
        raise RuntimeError("baseline: not every sibling was cancelled")
    return max(ends) - stamps["t0"]


def breach_latency(settings: Settings) -> Figure:
    """Figure 5."""
    import flowlab as fl

    fig = Figure("breach", 5, "Breach-to-cancel latency, 100 siblings, real clock")
    stamps: dict[str, float] = {}

    async def sibling(data: Any, ctx: SmallCtx) -> None:
        await asyncio.sleep(30)

    async def breacher(data: Any, ctx: SmallCtx) -> None:
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        stamps["t0"] = time.perf_counter()
        fl.charge(cost=1.0)

    branches: dict[str, Any] = {f"s{i}": sibling for i in range(SIBLINGS)}
    branches["breacher"] = breacher
    pipe = fl.Pipeline(fl.Parallel(branches, name="fan"))

    n = settings.pick(20, 200)
    _flowlab_sample(pipe, stamps)
    _raw_sample()
    flow: list[float] = []
    raw: list[float] = []
    for _ in range(n):
        raw.append(_raw_sample())
        flow.append(_flowlab_sample(pipe, stamps))
    fig.add("baseline_median_ms", median(raw) * 1e3, "ms", "raw TaskGroup abort, median")
    fig.add(
        "median_ms", median(flow) * 1e3, "ms", "flowlab, median",
        target="< 5 ms", check=lambda v: v < 5,
    )  # fmt: skip
    fig.add("p99_ms", percentile(flow, 99) * 1e3, "ms", "flowlab, p99")
    fig.add("baseline_p99_ms", percentile(raw, 99) * 1e3, "ms", "raw TaskGroup abort, p99")
    fig.add("ratio_median", median(flow) / median(raw), "x", "flowlab / raw, median")
    fig.notes.append(f"{n} runs each")
    return fig
