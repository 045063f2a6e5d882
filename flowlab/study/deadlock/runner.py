"""One schedule, one run: ``run_schedule(fn, chooser)`` -> :class:`Outcome`.

Design
------
Each run gets a fresh :class:`~flowlab.study.deadlock.scheduler.ExplorerLoop` (fresh registry, fresh
task numbering), so runs never share state and the same choices give the same run. ``fn()`` runs
as the task ``main``. The run ends when ``main`` finishes, when every task is blocked (the loop is
``stuck``: a global deadlock even without :func:`~flowlab.study.deadlock.detector.watch`), or at
``max_steps``. The report is taken before cleanup; cleanup then cancels whatever is left, in task
order, with FIFO scheduling (await cycles are unhooked first so ``cancel`` cannot recurse), and
closes the loop, so nothing leaks from one run into the next.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flowlab.errors import ConfigError, DeadlockDetected
from flowlab.study.deadlock.awaits import awaited_tasks
from flowlab.study.deadlock.detector import watch
from flowlab.study.deadlock.graph import analyze
from flowlab.study.deadlock.group import cancel_round
from flowlab.study.deadlock.registry import scenario
from flowlab.study.deadlock.report import DeadlockReport, report_from
from flowlab.study.deadlock.scheduler import (
    ChoicePoint,
    Chooser,
    ExplorerLoop,
    Step,
    encode,
    label,
    preempts,
)
from flowlab.study.deadlock.trace import TraceEvent, registry_for

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["Outcome", "resolve", "run_schedule"]

Fn = Callable[[], Coroutine[Any, Any, Any]]


@dataclass
class Outcome:
    """One run under one schedule.

    Attributes
    ----------
    status : str
        ``"ok"``, ``"deadlock"``, ``"failed"`` or ``"step_limit"``.
    schedule : str
        The saved schedule (``""`` is plain FIFO); pass it to ``replay``.
    report : DeadlockReport or None
        For a deadlock: the cycle, explanation, graph and timeline.
    interleaving : list of str
        Which task ran at each step.
    events : list of TraceEvent
        Every traced operation of the run (locks, events, ``Shared`` reads and writes...).
    shrink_note : str
        Set by shrinking (``minimize``, ``Exploration.shrink``) when ``max_schedules`` ran out
        before a smaller failing schedule was seen: this one may not have the fewest
        preemptions.
    """

    status: str
    schedule: str
    choices: list[int]
    steps: int
    value: Any = None
    error: BaseException | None = None
    report: DeadlockReport | None = None
    points: list[ChoicePoint] = field(default_factory=list, repr=False)
    trace: list[Step] = field(default_factory=list, repr=False)
    task_names: list[str] = field(default_factory=list, repr=False)
    events: list[TraceEvent] = field(default_factory=list, repr=False)
    scenario: str | None = None
    fixed: bool | str | None = None
    problem: str = ""
    fix: str = ""
    note: str = ""
    found_by: str = ""
    shrink_note: str = ""

    @property
    def deadlocked(self) -> bool:
        return self.status == "deadlock"

    @property
    def failed(self) -> bool:
        """True when the run did not end ``ok`` (deadlock, exception or step limit)."""
        return self.status != "ok"

    @property
    def preemptions(self) -> int:
        """Choice points where a ready task was switched away from (CHESS preemptions)."""
        return sum(preempts(p.options, p.prev, p.chosen) for p in self.points)

    @property
    def interleaving(self) -> list[str]:
        return [self.task_names[s.task] for s in self.trace]

    def explain(self) -> str:
        """One paragraph: schedule, status, steps, preemptions, and the report or the error."""
        head = (
            f"Schedule {self.schedule!r}: {self.status} after {self.steps} steps "
            f"({self.preemptions} preemption{'s' * (self.preemptions != 1)})."
        )
        if self.report is not None:
            head += " " + self.report.explain()
        elif self.error is not None:
            head += f" {type(self.error).__name__}: {self.error}"
        if self.found_by:
            head += f" {self.found_by}"
        if self.shrink_note:
            head += f" {self.shrink_note}"
        if self.problem:
            head += f" What went wrong: {self.problem}"
        if self.fix:
            head += f" What fixes it{'' if self.fixed else ' (run with fixed=True)'}: {self.fix}"
        return head + (f" Note: {self.note}" if self.note else "")

    def plot(self, ax: Axes | None = None, **kwargs: Any) -> Axes:
        """Swimlanes: one lane per task, a bar per turn (steps between switches), the end marked.

        See :func:`~flowlab.ui.plot._deadlock.plot_swimlanes`; returns the Axes.
        """
        from flowlab.ui.plot._deadlock import plot_swimlanes

        return plot_swimlanes(self, ax=ax, **kwargs)

    def _repr_html_(self) -> str:
        import html

        return f"<div class='flowlab-outcome'><pre>{html.escape(self.narrate())}</pre></div>"

    def narrate(self) -> str:
        """Which task ran between switches and the line where it stopped, one line per turn.

        Lines are known for replayed runs (``replay``, ``Exploration.replay``, ``shrink``);
        ``"?"`` otherwise.
        """
        turns: list[str] = []
        i = 0
        while i < len(self.trace):
            j = i
            while j + 1 < len(self.trace) and self.trace[j + 1].task == self.trace[i].task:
                j += 1
            name = self.task_names[self.trace[i].task]
            where = self.trace[j].where or "?"
            stop = "finished" if where == "end" else f"stopped at {where}"
            count = j - i + 1
            turns.append(f"{len(turns) + 1}. {name} ran {count} step{'s' * (count > 1)}, {stop}")
            i = j + 1
        return "\n".join([self.explain(), *turns])

    def __repr__(self) -> str:
        return f"<Outcome {self.status} schedule={self.schedule!r} steps={self.steps}>"


def resolve(target: Any, fixed: bool | str) -> tuple[Fn, str]:
    """A zero-argument async function and a label for ``target`` (scenario name or callable)."""
    if isinstance(target, str):
        sc = scenario(target)
        variant = sc.variant(fixed)

        async def scenario_main() -> Any:
            coros, names = sc.build(variant)
            return await watch(*coros, names=names)

        tag = "" if not variant else " (fixed)" if variant is True else f" (fixed={variant!r})"
        return scenario_main, f"scenario {sc.name}{tag}"
    if callable(target):
        return target, getattr(target, "__qualname__", repr(target))
    raise ConfigError(
        f"target={target!r} is not valid; give a scenario name from "
        "fl.deadlock.catalog() or a zero-argument async function."
    )


def run_schedule(
    fn: Fn, chooser: Chooser, *, max_steps: int = 20_000, lines: bool = False
) -> Outcome:
    """Run ``fn()`` once on a fresh explorer loop, ``chooser`` deciding every choice point.

    ``lines=True`` records the source line each task stopped at after each step (slower; replays
    use it so :meth:`Outcome.narrate` can tell the story).
    """
    loop = ExplorerLoop(chooser, max_steps=max_steps, lines=lines)

    async def call() -> Any:
        return await fn()

    running = [True]

    def stop(_: object) -> None:
        if running[0]:  # main may finish on the very step that hits max_steps: its stop
            loop.stop()  # callback is then still queued and must not cut the clean-up short

    main = loop.create_task(call(), name="main")
    main.add_done_callback(stop)
    try:
        loop.run_forever()
        outcome = _outcome(loop, main)
    finally:
        running[0] = False
        main.remove_done_callback(stop)
        _cleanup(loop)
        loop.close()
    return outcome


def _outcome(loop: ExplorerLoop, main: asyncio.Task[Any]) -> Outcome:
    base: dict[str, Any] = {
        "schedule": encode(loop.choices),
        "choices": loop.choices,
        "steps": len(loop.steps),
        "points": list(loop.points),
        "trace": list(loop.steps),
        "task_names": [label(t, i) for i, t in enumerate(loop.tasks)],
        "events": list(registry_for(loop).events),
    }
    if main.done():
        err = None if main.cancelled() else main.exception()
        if isinstance(err, DeadlockDetected):
            return Outcome("deadlock", error=err, report=err.report, **base)
        if err is not None or main.cancelled():
            return Outcome("failed", error=err or asyncio.CancelledError(), **base)
        return Outcome("ok", value=main.result(), **base)
    if loop.stuck:
        return Outcome("deadlock", report=_stuck_report(loop), **base)
    return Outcome("step_limit", **base)


def _stuck_report(loop: ExplorerLoop) -> DeadlockReport:
    reg = registry_for(loop)
    names = [t.get_name() for t in loop.tasks]
    analysis = analyze(list(loop.tasks), reg)
    report = report_from(analysis, names, reg, 0, started=0.0)
    if not analysis.deadlocked:
        report.deadlocked, report.kind = True, "untraced"
        report.stuck = [t.get_name() for t in loop.tasks if not t.done()]
        report.detected_at = loop.time()
        report.untraced = [  # not on a traced primitive, not awaiting tasks: on something else
            t.get_name()
            for t in loop.tasks
            if not t.done() and reg.wait_of(t) is None and awaited_tasks(t) is None
        ]
    return report


def _cleanup(loop: ExplorerLoop) -> None:
    loop.chooser = lambda point, options, prev: 0
    loop.max_steps = 1 << 62
    for _ in range(4):
        pending = [t for t in loop.tasks if not t.done()]
        if not pending:
            break
        subset = cancel_round(pending)
        loop.until = lambda s=subset: all(t.done() for t in s)
        loop.stuck = False
        loop.run_forever()
    loop.until = None
    loop.run_until_complete(loop.shutdown_asyncgens())
