"""fl.run(..., detect_deadlocks=True): branches that deadlock on traced primitives fail at once."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import BaseModel

import flowlab as fl


class Ctx(BaseModel):
    n: int = 0


def lock_order_pipeline(first: str) -> tuple[fl.Parallel, dict[str, fl.deadlock.Lock]]:
    locks = {"A": fl.deadlock.Lock(name="A"), "B": fl.deadlock.Lock(name="B")}

    def worker(one: str, two: str):
        async def step(data, ctx: Ctx):
            async with locks[one]:
                await asyncio.sleep(1)
                async with locks[two]:
                    ctx.n += 1

        return step

    other = "B" if first == "A" else "A"
    par = fl.Parallel(
        {"ab": worker("A", "B"), "ba": worker(first, other)}, merge="accumulate", name="fan"
    )
    return par, locks


def test_lock_order_deadlock_is_detected_explained_and_the_run_ends() -> None:
    par, _ = lock_order_pipeline(first="B")
    with pytest.raises(fl.DeadlockDetected) as info:
        fl.run(par, Ctx(), clock="virtual", detect_deadlocks=True)
    report = info.value.report
    assert report.deadlocked
    text = report.explain()
    assert "'A'" in text
    assert "'B'" in text
    result = info.value.result
    assert result is not None
    assert result.status == "failed"
    assert result.makespan_s == 1.0  # detected at the very instant the cycle closed
    assert set(result.branches["status"]) == {"cancelled"}


def test_same_order_runs_normally_with_detection_on() -> None:
    par, _ = lock_order_pipeline(first="A")
    result = fl.run(par, Ctx(), clock="virtual", detect_deadlocks=True)
    assert result.status == "ok"
    assert result.context.n == 2
    assert result.makespan_s == 2.0
