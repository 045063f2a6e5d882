"""flowlab.study.deadlock: traced primitives, a deadlock detector, a scenario catalog, an explorer.

Layout (arrows point down only)::

    game.py         SchedulerGame: the learner picks the next task (goal: deadlock or failure);
                    hint() asks the explorer; plot() draws the lock state (flowlab.ui.plot._deadlock)
    explorer.py     explore(): bounded DFS (search.py) with partial-order reduction, PCT, random
    search.py       Search: preemption / delay bounds, conflicts (untraced steps conflict with all)
    choosers.py     forced (replay), random and PCT choosers
    shrink.py       fewest_preemptions(): iterative preemption bounding behind shrink()/minimize()
    runner.py       one schedule -> Outcome (fresh loop, report, clean-up); examples.py
    scheduler.py    ExplorerLoop: a virtual-time loop whose ready queue asks a strategy
    scenarios.py    catalog(), run(): the catalog, each broken and fixed; a race is explored
    bodies.py    Scenario and the first bodies; classics.py (Little Book, Prefect), races.py
    detector.py     watch() / supervise(): event-driven wait-for checks, on_deadlock policies
    watchdog.py     Watchdog, HangSuspected: an idle group blocked on untraced things, reported
    group.py        WatchGroup: members, checks, the stuck set; the task-factory hub; unhook()
    report.py       DeadlockReport: explain(), graph, timeline, plot(), _repr_html_ (flowlab.ui.plot._deadlock draws,
                    also an Outcome's swimlanes)
    states.py       hold/wait intervals from a trace; explain()'s one line per task
    graph.py        wait-for graph analysis: stuck set (greatest fixpoint) and the cycle
    awaits.py       tasks a task awaits (await, nested gather, TaskGroup); timers that end a wait
    primitives.py   Lock, RLock (try_acquire, acquire(timeout=)); semaphores.py: Semaphore,
                    BoundedSemaphore
    channels.py     Event, Condition, Queue        barriers.py: Barrier, CountdownEvent
    shared.py       Shared: a variable whose reads and writes are dependency events
    base.py         Traced (the base), Holder, Wakers: who could wake a waiter
    trace.py        per-loop registry: trace events, who waits on what
"""

from __future__ import annotations

from flowlab.errors import DeadlockDetected
from flowlab.study.deadlock.barriers import Barrier, CountdownEvent
from flowlab.study.deadlock.channels import Condition, Event, Queue
from flowlab.study.deadlock.detector import supervise, watch
from flowlab.study.deadlock.examples import plain_runs, transfers
from flowlab.study.deadlock.explorer import (
    SEARCH_STRATEGIES,
    Exploration,
    explore,
    minimize,
    replay,
)
from flowlab.study.deadlock.game import SchedulerGame
from flowlab.study.deadlock.primitives import BoundedSemaphore, Lock, RLock, Semaphore
from flowlab.study.deadlock.report import DeadlockReport
from flowlab.study.deadlock.runner import Outcome
from flowlab.study.deadlock.scenarios import (
    SCENARIOS,
    arun,
    catalog,
    measure_detection_latency,
    run,
)
from flowlab.study.deadlock.shared import Shared
from flowlab.study.deadlock.trace import forget
from flowlab.study.deadlock.watchdog import HangReport, HangSuspected

__all__ = [
    "SCENARIOS",
    "SEARCH_STRATEGIES",
    "Barrier",
    "BoundedSemaphore",
    "Condition",
    "CountdownEvent",
    "DeadlockDetected",
    "DeadlockReport",
    "Event",
    "Exploration",
    "HangReport",
    "HangSuspected",
    "Lock",
    "Outcome",
    "Queue",
    "RLock",
    "SchedulerGame",
    "Semaphore",
    "Shared",
    "arun",
    "catalog",
    "explore",
    "forget",
    "measure_detection_latency",
    "minimize",
    "plain_runs",
    "replay",
    "run",
    "supervise",
    "transfers",
    "watch",
]
