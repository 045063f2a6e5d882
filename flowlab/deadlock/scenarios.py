"""The deadlock catalogue: ``catalog()`` lists the scenarios, ``run(name, fixed=...)`` runs one.

Design
------
A scenario's body (in :mod:`flowlab.deadlock.catalogue`) only builds coroutines; this module runs
them under :func:`~flowlab.deadlock.detector.supervise` on a fresh loop for the requested clock
(``"virtual"`` by default: exact, repeatable times, no wall time) and returns the
:class:`~flowlab.deadlock.report.DeadlockReport`, annotated with what went wrong and what the fix
changes. When called from a running loop (a notebook cell) the scenario runs on its own loop in a
worker thread; :func:`arun` runs it on the current loop instead.

:func:`measure_detection_latency` is the probe bench/ uses for the real-clock detection latency.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from flowlab.clock import CLOCKS, new_loop, run_in_thread
from flowlab.deadlock import catalogue as body
from flowlab.deadlock.catalogue import Scenario
from flowlab.deadlock.detector import supervise
from flowlab.deadlock.primitives import Lock
from flowlab.deadlock.report import DeadlockReport
from flowlab.errors import DeadlockDetected, check_one_of

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["SCENARIOS", "arun", "catalog", "measure_detection_latency", "run", "scenario"]

SCENARIOS: dict[str, Scenario] = {s.name: s for s in [
    Scenario(
        "governor", "The seed's executor: semaphore + completion lock + breach event",
        "Semaphore, Lock, Event",
        "branch b finished near the budget and, still holding completion_lock, waited for "
        "limit_breached to learn whether a sibling would cross the limit; the branch that "
        "could set it (a) needs completion_lock to record its charge, and c needs a "
        "concurrency slot that a and b hold.",
        "never await while holding a lock: completion_lock now guards only the bookkeeping "
        "(add the charge, mark the branch done), limit_breached is set but never awaited "
        "under it, and the budget verdict is read after the fan-out finishes.",
        body.governor),
    Scenario(
        "lock_order", "Two transfers lock two accounts in opposite orders", "Lock",
        "alice_to_bob holds alice and wants bob while bob_to_alice holds bob and wants alice.",
        "every transfer locks the accounts in one global order (sorted by name), so no task "
        "can hold the second lock while waiting for the first.",
        body.lock_order),
    Scenario(
        "nested_semaphore", "Parents hold the slots their children need", "Semaphore, Task",
        "both parents hold the two slots of a shared limiter while awaiting children that "
        "each need a slot.",
        "a parent releases its slot before waiting for its children (flowlab's rule: a "
        "branch waiting for its own children holds no slot).",
        body.nested_semaphore),
    Scenario(
        "lost_wakeup", "A pulsed event: set and cleared before anyone waits", "Event",
        "the producer set ready and cleared it at once (a pulse, like notify); the consumer "
        "began waiting afterwards, and its only setter had finished. The same happens when "
        "a waiter awaits a fresh Event that replaced the one already set.",
        "ready is level-triggered: the producer leaves it set and the consumer clears it "
        "after taking the data, so a late waiter still sees it.",
        body.lost_wakeup),
    Scenario(
        "await_cycle", "Two tasks await each other", "Task",
        "fetch_user awaits fetch_orders for an order count while fetch_orders awaits "
        "fetch_user for the user id.",
        "the dependencies form a DAG: fetch_user no longer awaits fetch_orders (the count "
        "is attached after both finish), so only fetch_orders waits.",
        body.await_cycle),
    Scenario(
        "pool_exhaustion", "Pool jobs wait for nested jobs queued behind them",
        "Queue, Event (a modelled thread pool)",
        "both workers run an outer job that submits an inner job to the same pool and blocks "
        "on its result; the inner jobs sit in work_queue behind them and no worker is free "
        "(the hold-and-wait that hangs nested tasks in a bounded thread-pool runner).",
        "nested work runs inline in the caller's worker instead of being queued to the pool "
        "the caller is blocking (a separate pool would also do).",
        body.pool_exhaustion,
        note="the thread pool is modelled with traced primitives: two worker tasks pulling "
        "from a traced Queue stand in for threads, because a thread blocked in "
        "future.result() cannot be observed from the event loop."),
    Scenario(
        "dining_philosophers", "Five philosophers take the left fork first", "Lock",
        "each philosopher holds the left fork and waits for the right one, held by the "
        "neighbour.",
        "forks are taken in one global order (lower number first): philosopher4 reaches for "
        "fork0 before fork4, which breaks the circle.",
        body.dining_philosophers),
    Scenario(
        "producer_consumer", "Bounded buffer: the consumer takes the mutex too early",
        "Semaphore, Lock",
        "the consumer took the mutex and then waited for items, on an empty buffer; the "
        "producer needs the mutex to add the item that would wake it.",
        "the consumer waits for items before taking the mutex (The Little Book of "
        "Semaphores' order), so the mutex is never held across a wait.",
        body.producer_consumer),
]}  # fmt: skip


def scenario(name: str) -> Scenario:
    """The catalogue entry ``name``; :class:`ConfigError` lists the valid names otherwise."""
    check_one_of("name", name, list(SCENARIOS), hint="see fl.deadlock.catalog()")
    return SCENARIOS[name]


def catalog() -> pd.DataFrame:
    """A frame of every scenario: name, title, primitives, problem, fix."""
    import pandas as pd

    cols = ["name", "title", "primitives", "problem", "fix"]
    return pd.DataFrame([[getattr(s, c) for c in cols] for s in SCENARIOS.values()], columns=cols)


async def arun(name: str, *, fixed: bool = False) -> DeadlockReport:
    """Run scenario ``name`` on the current loop and return its report (never raises on a hang)."""
    sc = scenario(name)
    coros, names = sc.build(fixed)
    _, report = await supervise(*coros, names=names)
    report.scenario, report.fixed = sc.name, fixed
    report.problem = "" if fixed else sc.problem
    report.fix, report.note = sc.fix, sc.note
    return report


def run(name: str, *, fixed: bool = False, clock: str = "virtual") -> DeadlockReport:
    """Run scenario ``name`` (broken unless ``fixed``) on a fresh loop; return the report.

    Parameters
    ----------
    name : str
        A name from :func:`catalog`.
    fixed : bool
        Run the fixed variant (its report has ``deadlocked=False``).
    clock : {"virtual", "real"}
        Virtual time (default) finishes instantly with exact times.
    """
    scenario(name)
    check_one_of("clock", clock, CLOCKS)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        with asyncio.Runner(loop_factory=lambda: new_loop(clock)) as runner:
            return runner.run(arun(name, fixed=fixed))
    return run_in_thread(lambda: arun(name, fixed=fixed), clock).result()


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

        from flowlab.deadlock.detector import watch

        try:
            await watch(first(), second())
        except DeadlockDetected:
            return time.perf_counter() - closed[0]
        raise AssertionError("the latency probe did not deadlock")

    with asyncio.Runner(loop_factory=lambda: new_loop("real")) as runner:
        return runner.run(main())
