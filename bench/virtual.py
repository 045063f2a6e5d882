"""Figure 7: 10,000 branches of one virtual second each, under a cap of 100: wall time.

``fl.run(..., clock="virtual")`` on a Parallel of 10,000 branches that each ``await
asyncio.sleep(1)`` under ``max_concurrency=100``: the virtual makespan is exactly
ceil(10,000 / 100) × 1 s = 100 s; what is measured is the wall time it takes. Baseline: the same
sleeps through ``asyncio.TaskGroup`` + ``asyncio.Semaphore(100)`` on the same
:class:`~flowlab.engine.clock.VirtualTimeLoop` (so the ratio is the engine, not the clock).
"""

from __future__ import annotations

import asyncio
from typing import Any

from bench._core import Figure, Settings, best
from bench.workloads import SmallCtx, fanout, raw_fanout

__all__ = ["virtual_time"]

N = 10_000
CAP = 100


async def _sleep_one(data: Any, ctx: SmallCtx) -> None:
    await asyncio.sleep(1)


def virtual_time(settings: Settings) -> Figure:
    """Figure 7."""
    import flowlab as fl
    from flowlab.engine.clock import run_virtual

    n = settings.pick(2_000, N)
    fig = Figure("virtual", 7, f"Virtual time: {n:,} x 1 s branches, cap {CAP}")
    pipe = fanout(n, cap=CAP, branch=_sleep_one)
    holder: dict[str, Any] = {}

    def flow() -> None:
        holder["result"] = fl.run(pipe, SmallCtx(), clock="virtual")

    def raw() -> None:
        run_virtual(raw_fanout(n, CAP, 1.0))

    reps = settings.pick(1, 3)
    t_raw, t_flow = best([raw, flow], reps, warmup=False, clock="wall")
    c_raw, c_flow = best([raw, flow], reps, warmup=False, clock="cpu")
    makespan = holder["result"].makespan_s
    fig.add("makespan_s", makespan, "s", f"virtual makespan (expected {-(-n // CAP)} s)")
    if n == N:
        fig.add("wall_s", t_flow, "s", "flowlab wall time", target="< 2 s", check=lambda v: v < 2)
    else:
        fig.add("wall_s", t_flow, "s", f"flowlab wall time (target is for N={N:,})")
    fig.add("cpu_s", c_flow, "s", "  flowlab CPU time")
    fig.add("baseline_wall_s", t_raw, "s", "TaskGroup+Semaphore on VirtualTimeLoop, wall")
    fig.add("ratio", c_flow / c_raw, "x", "flowlab / baseline (CPU time)")
    fig.add("speedup", makespan / t_flow, "x", "virtual seconds per wall second")
    return fig
