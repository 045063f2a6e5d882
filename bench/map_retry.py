"""Figure 13: what fanning out over data and retrying cost (issue 21).

**Map vs Parallel.** ``fl.Map`` over N = 10,000 instant items (each ``await asyncio.sleep(0)``,
the figure-1 no-op) against a ``fl.Parallel`` of 10,000 equivalent branches declared up front,
both under ``max_concurrency=64`` with recording on, in the figure-1 context. The Map reads its
items, names a branch per item and hands each its own item when the step runs; the Parallel's
branches were built with the pipeline. Target: Map ≤ 1.1× Parallel.

**A retried branch per attempt.** A Map over N/3 items whose step fails its first two attempts
(``fl.Retry(attempts=3, backoff=0)``, so 3 × N/3 = N attempts, each a row of
``result.attempts`` and each on a fresh copy of the context) against a Map over N items whose
step succeeds at once (N fresh branches): the same number of step calls, so the ratio is the cost
of an attempt over the cost of a fresh branch. Target ≤ 1.2×.

Both timed in CPU seconds, best of the repeats, alternating (see ``bench/_core.py``).
"""

from __future__ import annotations

import asyncio
from typing import Any

from bench._core import Figure, Settings, best
from bench.workloads import SmallCtx, fanout, noop

__all__ = ["map_retry"]

CAP = 64
ATTEMPTS = 3


def map_retry(settings: Settings) -> Figure:
    """Figure 13."""
    import flowlab as fl

    n = settings.pick(2_000, 10_000)
    k = f"N={n // 1000}k"
    fig = Figure("map", 14, f"Map over {n:,} items vs Parallel; a retried attempt vs a branch")
    ctx = SmallCtx()

    # ---- Map vs Parallel ------------------------------------------------------------------------
    parallel = fanout(n, cap=CAP)
    mapped = fl.Pipeline(
        fl.Map(noop, over=lambda data, ctx: range(n), max_concurrency=CAP, name="fan")
    )

    def run_parallel() -> None:
        fl.run(parallel, ctx)

    def run_map() -> None:
        fl.run(mapped, ctx)

    t_par, t_map = best([run_parallel, run_map], settings.pick(3, 9))
    fig.add("parallel_us", t_par / n * 1e6, "us/branch", f"Parallel of {n:,} branches, {k}")
    fig.add("map_us", t_map / n * 1e6, "us/branch", f"Map over {n:,} items, {k}")
    fig.add(
        "map_ratio", t_map / t_par, "x", f"Map / Parallel, {k}",
        **_target(1.1, settings),
    )  # fmt: skip

    # ---- a retried attempt vs a fresh branch -----------------------------------------------------
    items = n // ATTEMPTS
    tries: dict[int, int] = {}

    async def flaky(item: int, ctx: SmallCtx) -> None:
        await asyncio.sleep(0)
        tries[item] = tries.get(item, 0) + 1
        if tries[item] < ATTEMPTS:
            raise ConnectionError("503")

    async def fresh_step(item: int, ctx: SmallCtx) -> None:
        await asyncio.sleep(0)
        tries[item] = tries.get(item, 0) + 1  # the same work as an attempt, minus the failure

    policy = fl.Retry(attempts=ATTEMPTS, backoff=0, jitter=0)
    retried = fl.Pipeline(
        fl.Map(flaky, over=lambda d, c: range(items), max_concurrency=CAP, retry=policy)
    )
    fresh = fl.Pipeline(
        fl.Map(fresh_step, over=lambda d, c: range(items * ATTEMPTS), max_concurrency=CAP)
    )
    holder: dict[str, Any] = {}

    def run_retried() -> None:
        tries.clear()
        holder["retried"] = fl.run(retried, ctx)

    def run_fresh() -> None:
        tries.clear()
        fl.run(fresh, ctx)

    t_fresh, t_retried = best([run_fresh, run_retried], settings.pick(3, 9))
    attempts = len(holder["retried"].attempts)
    assert attempts == items * ATTEMPTS, attempts  # every item failed twice, then succeeded
    per_fresh = t_fresh / (items * ATTEMPTS) * 1e6
    per_attempt = t_retried / attempts * 1e6
    fig.add("fresh_us", per_fresh, "us/branch", f"fresh branch ({items * ATTEMPTS:,} branches)")
    fig.add("attempt_us", per_attempt, "us/attempt", f"retried: {items:,} x {ATTEMPTS} attempts")
    fig.add(
        "retry_ratio", per_attempt / per_fresh, "x", "retried attempt / fresh branch",
        **_target(1.2, settings),
    )  # fmt: skip

    # ---- a policy that is never needed: every first attempt succeeds ------------------------------
    guarded = fl.Pipeline(
        fl.Map(fresh_step, over=lambda d, c: range(n), max_concurrency=CAP, retry=policy)
    )
    unguarded = fl.Pipeline(fl.Map(fresh_step, over=lambda d, c: range(n), max_concurrency=CAP))

    def run_guarded() -> None:
        tries.clear()
        fl.run(guarded, ctx)

    def run_unguarded() -> None:
        tries.clear()
        fl.run(unguarded, ctx)

    t_plain, t_guarded = best([run_unguarded, run_guarded], settings.pick(3, 9))
    fig.add(
        "unused_policy_ratio", t_guarded / t_plain, "x",
        f"  retry policy, first attempts all succeed / none, {k}",
    )  # fmt: skip
    return fig


def _target(limit: float, settings: Settings) -> dict[str, Any]:
    """The issue's target ``<= limit x``; none on a quick run (its sizes are shrunk)."""
    if settings.quick:
        return {}
    return {"target": f"<= {limit:g}x", "check": lambda v: v <= limit}
