"""Shrinking a failing schedule: same failure, fewest preemptions, then fewest steps (issue 19)."""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

import pytest

import flowlab.deadlock as dl
from flowlab.errors import ConfigError
from flowlab.study.deadlock.examples import transfers
from flowlab.study.deadlock.explorer import explore, replay

sys.path.insert(0, str(Path(__file__).parent))
from test_preemption import late_counter


@pytest.mark.parametrize(("fn", "status"), [(late_counter, "failed"), (transfers, "deadlock")])
def test_shrink_keeps_the_failure_and_needs_the_fewest_preemptions(fn: object, status: str) -> None:
    found = explore(fn, strategy="random", seed=0, stop_on_first=True)  # type: ignore[arg-type]
    first = found.first_failure
    assert first is not None and first.status == status and first.preemptions >= 2
    small = found.shrink()
    assert small.status == status and type(small.error) is type(first.error)
    assert small.preemptions == 1 < first.preemptions
    assert small.steps <= first.steps
    # minimal: no schedule with fewer preemptions fails at all
    assert explore(fn, strategy="exhaustive", preemption_bound=0).first_failure is None  # type: ignore[arg-type]
    # and among the one-preemption failures it has the fewest steps
    ones = explore(fn, strategy="exhaustive", preemption_bound=1)  # type: ignore[arg-type]
    steps = [s for _, st, s in ones.runs if st == status]
    assert small.steps == min(steps)
    for _ in range(5):  # replayable, exactly
        again = replay(fn, small.schedule)  # type: ignore[arg-type]
        order = [step.task for step in again.trace]  # task ordinals: names carry a global count
        assert (again.status, order) == (status, [step.task for step in small.trace])


def test_minimize_takes_a_schedule_string() -> None:
    found = explore(transfers, strategy="random", seed=0, stop_on_first=True)
    schedule = found.first_failing_schedule
    assert schedule is not None
    small = dl.minimize(transfers, schedule)
    assert small.status == "deadlock" and small.preemptions == 1
    assert small.schedule == found.shrink().schedule


def test_shrink_without_a_failure_is_a_config_error() -> None:
    ok = explore("lock_order", fixed=True, strategy="exhaustive", preemption_bound=1)
    with pytest.raises(ConfigError, match="nothing to shrink"):
        ok.shrink()
    assert dl.minimize(transfers, "").status == "ok"  # FIFO passes: nothing to shrink


def _line(fn: object, text: str, after: str = "") -> int:
    lines, start = inspect.getsourcelines(fn)  # type: ignore[arg-type]
    skip = next(i for i, line in enumerate(lines) if after in line) if after else 0
    return start + next(i for i, line in enumerate(lines) if i >= skip and text in line)


def test_a_shrunk_failure_tells_its_story_with_source_lines() -> None:
    small = explore(late_counter, strategy="random", seed=0, stop_on_first=True).shrink()
    window = _line(late_counter, "await asyncio.sleep(0)", after="seen = count")
    gather = _line(late_counter, "await asyncio.gather")
    story = small.narrate().splitlines()
    head = "Schedule '0*2.1*5': failed after 10 steps (1 preemption). AssertionError: lost update"
    assert story[0].startswith(head)
    assert story[-5:] == [
        f"1. main ran 1 step, stopped at test_preemption.py:{gather} (late_counter)",
        f"2. add#1 ran 1 step, stopped at test_preemption.py:{window} (add)",
        "3. add#2 ran 6 steps, finished",  # the preemption: add#2 reads before add#1 writes
        "4. add#1 ran 1 step, finished",
        "5. main ran 1 step, finished",
    ]
    assert small.interleaving == ["main", "add#1", *["add#2"] * 6, "add#1", "main"]
