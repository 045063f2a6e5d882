"""Be the scheduler: the learner picks which ready task runs next, step by step.

Design
------
:class:`SchedulerGame` keeps only the list of choices made so far. To show the position after
them it replays the program from the start with those choices forced and pauses at the next
choice point (the chooser raises :class:`_Pause` carrying a snapshot of the ready tasks, holders
and waiters); the run is then cleaned up like any other. Replaying from scratch each move costs a
few milliseconds for these small programs and keeps the game exactly as deterministic as
:func:`~flowlab.deadlock.explorer.replay`. When no choice point is left the run finishes and
:attr:`SchedulerGame.outcome` says how it ended -- the goal is ``"deadlock"``.

:meth:`SchedulerGame.hint` asks the explorer: a bounded exhaustive search below each candidate
move, returning the first move from which some schedule deadlocks.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass
from typing import Any

from flowlab.deadlock.detector import detected
from flowlab.deadlock.explorer import _in_thread
from flowlab.deadlock.runner import Outcome, resolve, run_schedule
from flowlab.deadlock.scheduler import ExplorerLoop, encode
from flowlab.deadlock.search import Search
from flowlab.deadlock.states import intervals
from flowlab.deadlock.trace import registry_for
from flowlab.errors import ConfigError

__all__ = ["Position", "SchedulerGame"]


@dataclass
class Position:
    """The state at a choice point: ready tasks and who holds / waits for what."""

    time: float
    ready: list[str]
    holds: list[tuple[str, str]]
    waits: list[tuple[str, str]]

    def describe(self) -> str:
        holds = ", ".join(f"{t} holds {r}" for t, r in self.holds) or "nobody holds anything"
        waits = ", ".join(f"{t} waits for {r}" for t, r in self.waits) or "nobody waits"
        return f"t={self.time:.3f} s. {holds}; {waits}. Ready: {', '.join(self.ready)}."


class _Pause(Exception):
    def __init__(self, position: Position) -> None:
        super().__init__("pause")
        self.position = position


class SchedulerGame:
    """Pick the next task at every choice point; try to force the deadlock.

    Parameters
    ----------
    target : str or callable
        A scenario name or a zero-argument async function (default: ``transfers``, whose
        deadlock plain asyncio never shows).
    fixed : bool
        For a scenario name: play its fixed variant (no move deadlocks it).
    """

    def __init__(self, target: Any = None, *, fixed: bool = False) -> None:
        if target is None:
            from flowlab.deadlock.examples import transfers

            target = transfers
        self._fn, self.label = resolve(target, fixed)
        self.choices: list[int] = []
        self.position: Position | None = None
        self.outcome: Outcome | None = None
        self._advance()

    @property
    def schedule(self) -> str:
        """The moves so far as a schedule string (replayable with ``fl.deadlock.replay``)."""
        return encode(self.choices)

    @property
    def options(self) -> list[str]:
        """Names of the tasks you may run next (empty once the run is over)."""
        return [] if self.position is None else list(self.position.ready)

    def _play(self, choices: list[int]) -> tuple[Position | None, Outcome | None]:
        def chooser(point: int, options: list[int], prev: int | None) -> int:
            if point < len(choices):
                return choices[point]
            loop = asyncio.get_running_loop()
            assert isinstance(loop, ExplorerLoop)
            if detected(loop):
                return 0  # the deadlock is found: the clean-up that follows is not a game move
            rows = intervals(registry_for(loop).events, loop.time())
            raise _Pause(
                Position(
                    loop.time(),
                    [loop.tasks[o].get_name() for o in options],
                    [(r[0], r[1]) for r in rows if r[2] == "hold" and r[7]],
                    [(r[0], r[1]) for r in rows if r[2] == "wait" and r[7]],
                )
            )

        def work() -> tuple[Position | None, Outcome | None]:
            try:
                return None, run_schedule(self._fn, chooser)
            except _Pause as pause:
                return pause.position, None

        result: tuple[Position | None, Outcome | None] = _in_thread(work)
        return result

    def _advance(self) -> None:
        self.position, self.outcome = self._play(self.choices)

    def choose(self, task: str | int) -> None:
        """Run ``task`` (a name from :attr:`options`, or its index) next."""
        if self.position is None:
            raise ConfigError("the run is over; call reset() to play again.")
        ready = self.position.ready
        if isinstance(task, str):
            if task not in ready:
                raise ConfigError(
                    f"task={task!r} is not valid; choose one of "
                    + ", ".join(repr(r) for r in ready)
                    + "."
                )
            task = ready.index(task)
        if not 0 <= task < len(ready):
            raise ConfigError(f"task={task!r} is not valid; give an index below {len(ready)}.")
        self.choices.append(task)
        self._advance()

    def reset(self) -> None:
        """Start again from the beginning."""
        self.choices = []
        self._advance()

    def hint(self, *, max_schedules: int = 200, preemption_bound: int = 3) -> str | None:
        """A ready task from which the explorer can still reach a deadlock (None if none).

        Below each candidate move, every schedule with at most ``preemption_bound`` preemptions
        (CHESS-style, see :func:`~flowlab.deadlock.explorer.explore`) is tried, up to
        ``max_schedules`` per move.
        """
        if self.position is None:
            return None
        base = list(self.choices)
        ready = list(self.position.ready)

        def search() -> str | None:
            for index, name in enumerate(ready):
                below = Search(reduce=False, preemption_bound=preemption_bound)
                head = [*base, index]

                def chooser(
                    point: int,
                    options: list[int],
                    prev: int | None,
                    below: Search = below,
                    head: list[int] = head,
                ) -> int:
                    if point < len(head):
                        return head[point]
                    return below.choose(point - len(head), options, prev)

                for _ in range(max_schedules):
                    out = run_schedule(self._fn, chooser)
                    if out.status == "deadlock":
                        return name
                    if not below.advance(
                        dataclasses.replace(out, points=out.points[len(base) + 1 :])
                    ):
                        break
            return None

        move: str | None = _in_thread(search)
        return move

    def describe(self) -> str:
        """Where the game stands, in one paragraph."""
        if self.outcome is not None:
            verdict = (
                "You forced the deadlock!"
                if self.outcome.deadlocked
                else f"The run ended: {self.outcome.status}."
            )
            return f"{verdict} Schedule {self.schedule!r}. " + (
                self.outcome.report.explain() if self.outcome.report is not None else ""
            )
        assert self.position is not None
        return f"Move {len(self.choices) + 1}: {self.position.describe()}"

    def __repr__(self) -> str:
        return f"<SchedulerGame {self.label} moves={len(self.choices)} options={self.options}>"
