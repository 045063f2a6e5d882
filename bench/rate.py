"""Figure 13: a Rate of 1,000 starts/s over 10,000 instant branches on virtual time (issue 21).

``fl.Parallel`` of 10,000 branches that return at once, under ``rate=fl.limits.Rate(per_second=1000)``
and no cap, run with ``clock="virtual"``: the n-th branch starts at exactly n / 1,000 s, so the
virtual makespan is 9.999 s (target: within 1 % of 10 s), and the wall time is what the engine costs
(target: < 2 s). The same through the run-wide rate (``fl.run(rate=...)``, every leaf step waits
for the rate in its own task) is shown beside it. Baseline: 10,000 ``asyncio`` tasks in one
TaskGroup on the same :class:`~flowlab.engine.clock.VirtualTimeLoop`, task n sleeping n / 1,000 s (the
same start grid, precomputed: no limiter at all), so the ratio is what the rate limiter and the
engine add.
"""

from __future__ import annotations

import asyncio
from typing import Any

from bench._core import Figure, Settings, best
from bench.workloads import SmallCtx

__all__ = ["rate_limit"]

N = 10_000
PER_SECOND = 1_000


async def _instant(data: Any, ctx: SmallCtx) -> None:
    return None


async def _raw_grid(n: int) -> None:
    async def one(i: int) -> None:
        await asyncio.sleep(i / PER_SECOND)

    async with asyncio.TaskGroup() as tg:
        for i in range(n):
            tg.create_task(one(i))


def rate_limit(settings: Settings) -> Figure:
    """Figure 13."""
    import flowlab as fl
    from flowlab.engine.clock import run_virtual

    n = settings.pick(2_000, N)
    fig = Figure("rate", 13, f"Rate {PER_SECOND:,}/s over {n:,} instant branches, virtual time")
    rate = fl.limits.Rate(per_second=PER_SECOND)
    branches = {f"b{i}": _instant for i in range(n)}
    step_pipe = fl.Pipeline(fl.Parallel(branches, rate=rate, name="fan"))
    run_pipe = fl.Pipeline(fl.Parallel(branches, name="fan"))
    holder: dict[str, Any] = {}

    def step_rate() -> None:
        holder["step"] = fl.run(step_pipe, SmallCtx(), clock="virtual")

    def run_rate() -> None:
        holder["run"] = fl.run(run_pipe, SmallCtx(), clock="virtual", rate=rate)

    def raw() -> None:
        run_virtual(_raw_grid(n))

    reps = settings.pick(1, 3)
    t_raw, t_step, t_run = best([raw, step_rate, run_rate], reps, clock="wall")
    c_raw, c_step, c_run = best([raw, step_rate, run_rate], reps, clock="cpu")
    expected = n / PER_SECOND
    makespan = holder["step"].makespan_s
    exact = holder["step"].branches["started_s"].tolist() == [i / PER_SECOND for i in range(n)]
    label = f"virtual makespan (expected {(n - 1) / PER_SECOND:g} s: start n at n/{PER_SECOND:,} s)"
    if n == N:
        fig.add("makespan_s", makespan, "s", label, target="within 1 % of 10 s",
                check=lambda v: abs(v - expected) <= 0.01 * expected)  # fmt: skip
        fig.add("wall_s", t_step, "s", "flowlab wall time (Parallel rate=)", target="< 2 s",
                check=lambda v: v < 2)  # fmt: skip
    else:
        fig.add("makespan_s", makespan, "s", label + f" (target is for N={N:,})")
        fig.add("wall_s", t_step, "s", f"flowlab wall time (target is for N={N:,})")
    fig.add("exact_grid", float(exact), "bool", "every start exactly on n/1,000 s (1 = yes)")
    fig.add("cpu_s", c_step, "s", "  flowlab CPU time (Parallel rate=)")
    fig.add("run_wall_s", t_run, "s", "flowlab wall time, run-wide fl.run(rate=...)")
    fig.add("run_makespan_s", holder["run"].makespan_s, "s", "  its virtual makespan")
    fig.add("baseline_wall_s", t_raw, "s", "TaskGroup of precomputed sleeps, wall")
    fig.add("ratio", c_step / c_raw, "x", "flowlab Parallel rate= / baseline (CPU time)")
    fig.add("run_ratio", c_run / c_raw, "x", "flowlab run-wide rate / baseline (CPU time)")
    return fig
