"""``preemption_bound`` counts CHESS preemptions; ``delay_bound`` counts deviations from FIFO."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from flowlab.errors import ConfigError
from flowlab.study.deadlock.examples import transfers
from flowlab.study.deadlock.explorer import explore, replay

sys.path.insert(0, str(Path(__file__).parent))
from test_explorer_sound import confused_counter, simple_counter


def test_a_one_preemption_lost_update_is_found_with_preemption_bound_one() -> None:
    none = explore(simple_counter, strategy="exhaustive", preemption_bound=0)
    assert none.exhausted and none.failures == 0  # each task runs until it blocks or ends
    one = explore(simple_counter, strategy="exhaustive", preemption_bound=1)
    assert one.failures > 0
    failing = one.replay()
    assert failing.status == "failed" and failing.preemptions == 1
    default = explore(simple_counter, preemption_bound=1, stop_on_first=True)
    assert default.strategy == "dpor" and default.first_failure is not None


async def late_counter() -> int:
    """A lost update behind four round trips: one preemption, but four delays from FIFO."""
    count = 0

    async def add(late: int) -> None:
        nonlocal count
        for _ in range(late):
            await asyncio.sleep(0)
        seen = count
        await asyncio.sleep(0)
        count = seen + 1

    await asyncio.gather(add(0), add(4))
    assert count == 2, f"lost update: {count}"
    return count


@pytest.mark.parametrize("strategy", ["dpor", "exhaustive"])
def test_preemption_bound_one_finds_what_needs_four_delays(strategy: str) -> None:
    assert asyncio.run(late_counter()) == 2  # asyncio's FIFO order hides it
    found = explore(late_counter, strategy=strategy, preemption_bound=1)
    assert found.failures == 2 and found.schedules == 8
    for delays in (1, 2, 3):
        missed = explore(late_counter, strategy=strategy, preemption_bound=None, delay_bound=delays)
        assert missed.exhausted and missed.failures == 0
    four = explore(late_counter, strategy=strategy, preemption_bound=None, delay_bound=4)
    assert four.failures > 0


def test_every_schedule_run_respects_the_preemption_bound() -> None:
    for bound in (0, 1, 2):
        found = explore(confused_counter, strategy="exhaustive", preemption_bound=bound)
        counts = [replay(confused_counter, s).preemptions for s, _, _ in found.runs]
        assert max(counts) == bound  # the bound is reached, never passed
        assert found.runs[0][0] == replay(confused_counter, found.runs[0][0]).schedule
    assert counts[0] == 0  # the first run preempts nothing: continuing is free


def test_preemptions_are_counted_like_chess() -> None:
    async def two_steps() -> list[str]:
        log: list[str] = []

        async def task(name: str) -> None:
            for i in range(2):
                log.append(f"{name}{i}")
                await asyncio.sleep(0)

        await asyncio.gather(task("a"), task("b"))
        return log

    fifo = replay(two_steps, "")  # asyncio alternates a and b while both are ready
    assert fifo.value == ["a0", "b0", "a1", "b1"]
    # a ready -> b, b ready -> a, a ready -> b, b ready -> a; then a ends and b runs for free
    assert fifo.preemptions == 4
    found = explore(two_steps, strategy="exhaustive", preemption_bound=0)
    assert found.schedules == 2  # a to the end then b, or b to the end then a
    values = [replay(two_steps, s).value for s, _, _ in found.runs]
    assert values == [["a0", "a1", "b0", "b1"], ["b0", "b1", "a0", "a1"]]


def test_transfers_deadlock_needs_one_preemption_but_two_delays() -> None:
    assert explore(transfers, strategy="exhaustive", preemption_bound=0).deadlocks == 0
    found = explore(transfers, strategy="exhaustive", preemption_bound=1, stop_on_first=True)
    assert found.first_failure is not None and found.first_failure.preemptions == 1
    delays = explore(transfers, strategy="exhaustive", preemption_bound=None, delay_bound=1)
    assert delays.exhausted and delays.deadlocks == 0
    assert explore(transfers, strategy="exhaustive", preemption_bound=None, delay_bound=2).deadlocks


def test_delay_bound_zero_is_fifo_only() -> None:
    fifo = explore(transfers, strategy="exhaustive", preemption_bound=None, delay_bound=0)
    assert (fifo.schedules, fifo.deadlocks, fifo.exhausted) == (1, 0, True)
    assert fifo.runs[0][0] == ""
    assert "within delay bound 0" in fifo.summary()


def test_bounds_are_named_in_the_summary_and_validated() -> None:
    both = explore(transfers, strategy="exhaustive", preemption_bound=1, delay_bound=3)
    assert "within preemption bound 1 and delay bound 3" in both.summary()
    for kwargs in ({"preemption_bound": -1}, {"delay_bound": -2}, {"delay_bound": 1.5}):
        with pytest.raises(ConfigError, match=f"{next(iter(kwargs))}=.* give an int >= 0 or None"):
            explore(transfers, **kwargs)  # type: ignore[arg-type]
