"""The deadlock catalog: ``catalog()`` lists the scenarios, ``run(name, fixed=...)`` runs one.

Design
------
A scenario's body (in :mod:`flowlab.study.deadlock.bodies`) only builds coroutines; this module runs
them under :func:`~flowlab.study.deadlock.detector.supervise` on a fresh loop for the requested clock
(``"virtual"`` by default: exact, repeatable times, no wall time) and returns the
:class:`~flowlab.study.deadlock.report.DeadlockReport`, annotated with what went wrong and what the fix
changes. When called from a running loop (a notebook cell) the scenario runs on its own loop in a
worker thread; :func:`arun` runs it on the current loop instead.

:func:`measure_detection_latency` is the probe bench/ uses for the real-clock detection latency.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from flowlab.engine.clock import CLOCKS, new_loop, run_in_thread
from flowlab.errors import DeadlockDetected, check_one_of
from flowlab.study.deadlock.bodies import Scenario
from flowlab.study.deadlock.detector import supervise
from flowlab.study.deadlock.explorer import explore, replay
from flowlab.study.deadlock.primitives import Lock
from flowlab.study.deadlock.registry import SCENARIOS, scenario
from flowlab.study.deadlock.report import DeadlockReport
from flowlab.study.deadlock.runner import Outcome

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["SCENARIOS", "arun", "catalog", "measure_detection_latency", "run", "scenario"]


def catalog() -> pd.DataFrame:
    """A frame of every scenario: name, title, primitives, problem, fix, finder, fixes.

    ``finder`` says what finds the broken variant: ``"detector"`` (it hangs) or ``"explorer"``
    (a race that fails only under some schedules); ``fixes`` names further fixes, if any.
    """
    import pandas as pd

    cols = ["name", "title", "primitives", "problem", "fix", "finder"]
    rows = [[getattr(s, c) for c in cols] + [", ".join(s.fixes)] for s in SCENARIOS.values()]
    return pd.DataFrame(rows, columns=[*cols, "fixes"])


async def arun(name: str, *, fixed: bool | str = False) -> DeadlockReport | Outcome:
    """Run scenario ``name`` on the current loop and return its report (never raises on a hang).

    A scenario found by the explorer (``finder="explorer"``) is explored as :func:`run` does.
    """
    sc = scenario(name)
    variant = sc.variant(fixed)
    if sc.finder == "explorer":
        return _explore(sc, variant)
    coros, names = sc.build(variant)
    _, report = await supervise(*coros, names=names)
    report.scenario, report.fixed = sc.name, variant
    report.problem = "" if variant else sc.problem
    report.fix, report.note = sc.fix_text(variant), sc.note
    return report


def run(
    name: str, *, fixed: bool | str = False, clock: str = "virtual"
) -> DeadlockReport | Outcome:
    """Run scenario ``name`` (broken unless ``fixed``) and show what is wrong with it.

    A scenario that hangs (``finder="detector"``) runs under the deadlock detector on a fresh
    loop and gives its :class:`DeadlockReport`. A race that never hangs (``finder="explorer"``:
    lost update, order violation, ``if`` vs ``while``) is invisible to the detector and passes on
    asyncio's own schedule, so it is explored instead: the result is the
    :class:`~flowlab.study.deadlock.runner.Outcome` of the first failing schedule, shrunk to the fewest
    preemptions (``narrate()``, ``plot()``), or for a fixed variant a passing run whose
    ``explain()`` says how many schedules were tried. Either way ``explain()`` says which applies.

    Parameters
    ----------
    name : str
        A name from :func:`catalog`.
    fixed : bool or str
        Run the fixed variant; a string names another fix from ``catalog()["fixes"]``.
    clock : {"virtual", "real"}
        Virtual time (default) finishes instantly with exact times (the explorer always runs
        on virtual time).

    Examples
    --------
    >>> import flowlab.study.deadlock as dl
    >>> dl.run("rendezvous").cycle
    ['a', "Semaphore 'b_arrived'", 'b', "Semaphore 'a_arrived'", 'a']
    >>> dl.run("dining_philosophers", fixed="footman").deadlocked
    False
    >>> found = dl.run("lost_update")
    >>> found.status, found.error
    ('failed', AssertionError('lost update: balance 110, expected 130'))
    """
    sc = scenario(name)
    variant = sc.variant(fixed)
    check_one_of("clock", clock, CLOCKS)
    if sc.finder == "explorer":
        return _explore(sc, variant)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        with asyncio.Runner(loop_factory=lambda: new_loop(clock)) as runner:
            return runner.run(arun(name, fixed=variant))
    return run_in_thread(lambda: arun(name, fixed=variant), clock).result()


def _explore(sc: Scenario, fixed: bool | str) -> Outcome:
    """Explore a race scenario: the shrunk first failure, or a passing run saying what was tried."""
    found = explore(sc.name, fixed=fixed, stop_on_first=True)
    call = f"dl.explore({sc.name!r}{', fixed=' + repr(fixed) if fixed else ''})"
    if found.first_failure is not None:
        outcome = found.shrink()
        fifo = " asyncio's own FIFO schedule passes;" if found.runs[0][1] == "ok" else ""
        outcome.found_by = (
            "Not a deadlock, so the detector cannot see it: no task ever waits forever."
            f"{fifo} {call} found a failing schedule after {found.schedules} run(s), shrunk "
            f"to {outcome.preemptions} preemption(s) (dl.replay({sc.name!r}, "
            f"{outcome.schedule!r}) repeats it)."
        )
    else:
        outcome = replay(sc.name, "", fixed=fixed)
        outcome.found_by = f"{call}: {found.summary()}"
    outcome.scenario, outcome.fixed = sc.name, fixed
    outcome.problem = "" if fixed else sc.problem
    outcome.fix, outcome.note = sc.fix_text(fixed), sc.note
    return outcome


def measure_detection_latency(n: int = 20) -> list[float]:
    """Real-clock seconds from a cycle closing to ``DeadlockDetected`` reaching the caller.

    Each trial runs a fresh real-time loop with two tasks taking two traced locks in opposite
    order; the clock starts just before the acquire that closes the cycle and stops when the
    caller catches the error (so it includes building the report and cancelling the tasks).
    Use the median: ``statistics.median(measure_detection_latency(50))``.
    """
    return [_trial() for _ in range(n)]


def _trial() -> float:
    async def main() -> float:
        a, b = Lock(name="A"), Lock(name="B")
        holding = asyncio.Event()
        closed: list[float] = []

        async def first() -> None:
            async with a:
                await holding.wait()
                async with b:
                    pass

        async def second() -> None:
            async with b:
                holding.set()
                await asyncio.sleep(0.001)  # let first block on b, then close the cycle
                closed.append(time.perf_counter())
                async with a:
                    pass

        from flowlab.study.deadlock.detector import watch

        try:
            await watch(first(), second())
        except DeadlockDetected:
            return time.perf_counter() - closed[0]
        raise AssertionError("the latency probe did not deadlock")

    with asyncio.Runner(loop_factory=lambda: new_loop("real")) as runner:
        return runner.run(main())
