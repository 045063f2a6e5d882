"""``peak_concurrency`` agrees with the rows it summarizes.

The live in-flight counters depend on the order in which one instant's events are handled: on
virtual time a branch that a rate starts at t = 1 was counted before the sibling that ends at
t = 1, so ``result.steps`` and ``summary()`` said 2 while the rows, [0, 1) [1, 2) [2, 3), never
overlap (found by the runs-and-frames audit). The peak is now the smaller of the counter and the
rows' own overlap (:mod:`flowlab.results.overlap`), checked here against a brute-force count.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

import flowlab as fl
from flowlab.results.overlap import max_overlap


class Ctx(BaseModel):
    n: int = 0


async def second(data: Any, ctx: Ctx) -> None:
    await asyncio.sleep(1)


def brute(rows: list[tuple[float, float]]) -> int:
    """Open intervals at every instant any row starts or ends (half-open; zero length counts)."""
    instants = {t for row in rows for t in row if not math.isnan(t)}
    best = 0
    for t in instants:
        n = sum(
            1
            for s, f in rows
            if not math.isnan(s) and (s <= t < f or s == f == t or (math.isnan(f) and s <= t))
        )
        best = max(best, n)
    return best


times = st.integers(0, 6).map(float)


@given(st.lists(st.tuples(times, st.one_of(times, st.just(math.nan))), max_size=8))
def test_max_overlap_is_the_brute_force_count(raw: list[tuple[float, float]]) -> None:
    rows = [(s, f) if math.isnan(f) or f >= s else (f, s) for s, f in raw]
    assert max_overlap(rows) == brute(rows)


def rows_peak(result: fl.RunResult) -> int:
    b = result.branches
    return brute(list(zip(b.started_s.tolist(), b.finished_s.tolist(), strict=True)))


def test_a_rate_spaced_fan_out_never_ran_two_at_once() -> None:
    par = fl.Parallel(dict.fromkeys("abc", second), rate=fl.limits.Rate(per_second=1), name="fan")
    result = fl.run(fl.Pipeline(par), Ctx(), clock="virtual")
    assert list(result.branches.started_s) == [0.0, 1.0, 2.0]
    assert rows_peak(result) == 1
    assert result.steps.set_index("step").loc["fan", "peak_concurrency"] == 1  # was 2
    assert result.summary()["peak_concurrency"] == 1  # was 2


def test_a_capped_fan_out_still_reports_its_real_peak() -> None:
    par = fl.Parallel(dict.fromkeys("abcd", second), max_concurrency=2, name="fan")
    result = fl.run(fl.Pipeline(par), Ctx(), clock="virtual")
    assert rows_peak(result) == 2
    assert result.steps.set_index("step").loc["fan", "peak_concurrency"] == 2
    assert result.summary()["peak_concurrency"] == 2


def test_each_run_of_a_parallel_inside_a_map_has_its_own_peak() -> None:
    inner = fl.Parallel({"x": second, "y": second}, name="inner")
    spaced = fl.Parallel(
        {"x": second, "y": second}, rate=fl.limits.Rate(per_second=1), name="inner"
    )

    class Items(BaseModel):
        items: list[str] = ["p", "q"]

    def pick(item: str, ctx: Items) -> Any:
        return None

    together = fl.Map(fl.Pipeline(pick, inner), over="items", key=lambda item: item, name="m")
    apart = fl.Map(
        fl.Pipeline(pick, spaced), over="items", key=lambda item: item, max_concurrency=1, name="m"
    )
    for pipe, expected in ((together, 2), (apart, 1)):
        steps = fl.run(pipe, Items(), clock="virtual").steps
        inner_rows = steps[steps.step == "inner"]
        assert len(inner_rows) == 2  # one run per item
        assert inner_rows.peak_concurrency.tolist() == [expected, expected]
