"""Shrinking: the same failure under the schedule with the fewest preemptions, then fewest steps.

Design
------
A failing schedule found by ``"random"`` or ``"pct"`` (or deep in a DFS) often switches tasks
far more than the bug needs, which makes it hard to read. :func:`fewest_preemptions` (behind
``Exploration.shrink()`` and ``flowlab.study.deadlock.minimize``) runs *iterative
preemption bounding*: an exhaustive bounded search (:class:`~flowlab.study.deadlock.search.Search`)
with ``preemption_bound=0``, then 1, 2, ... up to the failing schedule's own count. The first
bound at which a run fails *the same way* (same status, same exception type) is the fewest
preemptions that can show the failure -- the search below it covered every schedule, so none
with fewer exists. Among the failing runs at that bound the one with the fewest steps is
returned, re-run with source lines so that ``narrate()`` tells its story; its ``schedule``
replays it exactly, like any other.

If ``max_schedules`` runs out before a bound is finished, the best failure seen so far is
returned (its preemptions are the fewest, its steps may not be); if none was seen, the original
outcome is returned with a ``shrink_note`` saying that one with fewer preemptions may exist.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Coroutine
from typing import Any

from flowlab.study.deadlock.choosers import forced
from flowlab.study.deadlock.runner import Outcome, run_schedule
from flowlab.study.deadlock.search import Search

__all__ = ["fewest_preemptions", "same_failure"]

Fn = Callable[[], Coroutine[Any, Any, Any]]


def same_failure(a: Outcome, b: Outcome) -> bool:
    """True when ``a`` and ``b`` end the same way: status and exception type."""
    return a.status == b.status and type(a.error) is type(b.error)


def fewest_preemptions(
    fn: Fn, failing: Outcome, *, max_schedules: int = 10_000, max_steps: int = 20_000
) -> Outcome:
    """The run that fails like ``failing`` with the fewest preemptions, then the fewest steps."""
    if failing.status == "ok":
        return failing
    budget = max_schedules
    best: Outcome | None = None
    for bound in range(failing.preemptions + 1):
        search = Search(reduce=False, preemption_bound=bound)
        complete = False
        while budget > 0:
            budget -= 1
            outcome = run_schedule(fn, search.choose, max_steps=max_steps)
            if same_failure(outcome, failing) and (
                best is None
                or (outcome.preemptions, outcome.steps) < (best.preemptions, best.steps)
            ):
                best = outcome
            if not search.advance(outcome):
                complete = True
                break
        if best is not None or not complete:
            break
    if best is None:
        note = (
            f"Shrinking stopped by max_schedules={max_schedules} at preemption bound {bound}: "
            "a schedule with fewer preemptions may show the same failure."
        )
        return dataclasses.replace(failing, shrink_note=note)
    again = run_schedule(fn, forced(best.choices), max_steps=max_steps, lines=True)
    return again if same_failure(again, best) else best
