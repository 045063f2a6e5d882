"""Be the scheduler: the learner picks which ready task runs next, step by step.

Design
------
:class:`SchedulerGame` keeps only the list of choices made so far. To show the position after
them it replays the program from the start with those choices forced and pauses at the next
choice point (the chooser raises :class:`_Pause` carrying a :class:`Position`: every live task
with its next source line, the ready ones, who holds and who waits for what); the run is then
cleaned up like any other. Replaying from scratch each move costs a few milliseconds for these
small programs and keeps the game exactly as deterministic as
:func:`~flowlab.study.deadlock.explorer.replay`. When no choice point is left the run finishes and
:attr:`SchedulerGame.outcome` says how it ended.

The goal is ``"deadlock"`` (force the hang), ``"failure"`` (reach the assertion or exception --
as in The Deadlock Empire, where most levels are won by getting both threads into the critical
section) or ``"any"``. By default a race scenario of the catalog asks for the failure, a
deadlock scenario for the deadlock, and a program of your own for either.

Moves are offered in a stable order -- by task creation, not by the order in which the tasks
became ready -- and ``choose(i)`` counts in that order; the saved schedule still holds asyncio's
FIFO indices, so it replays with ``fl.deadlock.replay``. :meth:`SchedulerGame.hint` asks the
explorer: a preemption-bounded exhaustive search below each candidate move, returning the first
move from which some schedule reaches the goal. :meth:`SchedulerGame.plot` draws the lock state.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import linecache
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flowlab.errors import ConfigError
from flowlab.study.deadlock.detector import detected
from flowlab.study.deadlock.explorer import _in_thread
from flowlab.study.deadlock.runner import Outcome, resolve, run_schedule
from flowlab.study.deadlock.scheduler import ExplorerLoop, encode, label, suspended_frame
from flowlab.study.deadlock.search import Search
from flowlab.study.deadlock.states import intervals
from flowlab.study.deadlock.trace import registry_for

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["GOALS", "Position", "SchedulerGame"]

GOALS = {"deadlock": "force the deadlock", "failure": "reach the failure", "any": "break it"}


@dataclass
class Position:
    """The state at a choice point: ready tasks, next lines, who holds / waits for what.

    Attributes
    ----------
    time : float
        Loop time (virtual seconds).
    ready : list of str
        Tasks that may run next, in asyncio's FIFO order (the order a schedule counts in).
    holds, waits : list of (str, str)
        ``(task, resource)`` pairs: locks and semaphores held, traced waits in progress.
    tasks : list of str
        Every unfinished task, in creation order.
    lines : dict of str to str
        For each unfinished task, the line it runs next: ``"file.py:12 (func): source"``.
    """

    time: float
    ready: list[str]
    holds: list[tuple[str, str]]
    waits: list[tuple[str, str]]
    tasks: list[str] = field(default_factory=list)
    lines: dict[str, str] = field(default_factory=dict)

    @property
    def options(self) -> list[str]:
        """The ready tasks in creation order (the order the game offers them)."""
        return [t for t in self.tasks if t in self.ready] or list(self.ready)

    def describe(self) -> str:
        holds = ", ".join(f"{t} holds {r}" for t, r in self.holds) or "nobody holds anything"
        waits = ", ".join(f"{t} waits for {r}" for t, r in self.waits) or "nobody waits"
        return f"t={self.time:.3f} s. {holds}; {waits}. Ready: {', '.join(self.options)}."

    def task_lines(self) -> list[str]:
        """One line per live task: ``name (ready|waiting|blocked) at file.py:12 (fn): source``."""
        waiting = dict(self.waits)
        out = []
        for task in self.tasks:
            state = "ready" if task in self.ready else "waiting" if task in waiting else "blocked"
            line = self.lines.get(task, "?")
            out.append(f"{task} ({state})" + ("" if line == "?" else f" at {line}"))
        return out


class _Pause(Exception):
    def __init__(self, position: Position) -> None:
        super().__init__("pause")
        self.position = position


def _next_line(task: asyncio.Task[Any]) -> str:
    frame = suspended_frame(task)
    if frame is None:
        return "?"
    path, line = frame.f_code.co_filename, frame.f_lineno
    source = linecache.getline(path, line).strip()
    coro: Any = task.get_coro()
    if inspect.iscoroutine(coro) and inspect.getcoroutinestate(coro) == inspect.CORO_CREATED:
        source = f"not started ({source})"  # the line shown is the ``async def``
    return f"{os.path.basename(path)}:{line} ({frame.f_code.co_name}): {source}"


def _position(loop: ExplorerLoop, options: list[int]) -> Position:
    names = {t.get_name(): label(t, i) for i, t in enumerate(loop.tasks)}
    rows = [r for r in intervals(registry_for(loop).events, loop.time()) if r[7]]
    live = [(i, t) for i, t in enumerate(loop.tasks) if not t.done()]
    return Position(
        loop.time(),
        [label(loop.tasks[o], o) for o in options],
        [(names.get(r[0], r[0]), r[1]) for r in rows if r[2] == "hold"],
        [(names.get(r[0], r[0]), r[1]) for r in rows if r[2] == "wait"],
        [label(t, i) for i, t in live],
        {label(t, i): _next_line(t) for i, t in live},
    )


class SchedulerGame:
    """Pick the next task at every choice point; try to force the deadlock or the failure.

    Parameters
    ----------
    target : str or callable
        A scenario name or a zero-argument async function (default: ``transfers``, whose
        deadlock plain asyncio never shows).
    fixed : bool
        For a scenario name: play its fixed variant (no move breaks it).
    goal : {"deadlock", "failure", "any"} or None
        What wins. None: ``"failure"`` for a race scenario, ``"deadlock"`` for another
        scenario, ``"any"`` for a program of your own.

    Examples
    --------
    >>> import flowlab.study.deadlock as dl
    >>> game = dl.SchedulerGame()
    >>> game.options, game.goal
    (['alice_to_bob', 'bob_to_alice'], 'any')
    >>> for move in ["alice_to_bob", "bob_to_alice", "bob_to_alice", "bob_to_alice"]:
    ...     game.choose(move)
    >>> game.choose(game.hint())
    >>> game.won, game.schedule
    (True, '0*2.1*2')
    """

    def __init__(self, target: Any = None, *, fixed: bool = False, goal: str | None = None) -> None:
        if target is None:
            from flowlab.study.deadlock.examples import transfers

            target = transfers
        if goal is not None and goal not in GOALS:
            raise ConfigError(
                f"goal={goal!r} is not valid; choose one of "
                + ", ".join(repr(g) for g in GOALS)
                + " (or None for the scenario's own goal)."
            )
        self._fn, self.label = resolve(target, fixed)
        self.goal = goal or _default_goal(target)
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
        """Names of the tasks you may run next, in creation order (empty once the run is over)."""
        return [] if self.position is None else self.position.options

    @property
    def won(self) -> bool:
        """True once the run has ended the way :attr:`goal` asks."""
        return self.outcome is not None and self.reaches(self.outcome)

    def reaches(self, outcome: Outcome) -> bool:
        """True when ``outcome`` meets the goal (a deadlock, or an exception that ended it)."""
        if outcome.status == "deadlock":
            return self.goal in ("deadlock", "any")
        return outcome.status == "failed" and self.goal in ("failure", "any")

    def _play(self, choices: list[int]) -> tuple[Position | None, Outcome | None]:
        def chooser(point: int, options: list[int], prev: int | None) -> int:
            if point < len(choices):
                return choices[point]
            loop = asyncio.get_running_loop()
            assert isinstance(loop, ExplorerLoop)
            if detected(loop):
                return 0  # the deadlock is found: the clean-up that follows is not a game move
            raise _Pause(_position(loop, options))

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
        """Run ``task`` next: a name from :attr:`options`, or its index in :attr:`options`."""
        if self.position is None:
            raise ConfigError("the run is over; call reset() to play again.")
        options = self.position.options
        if isinstance(task, int):
            if not 0 <= task < len(options):
                raise ConfigError(
                    f"task={task!r} is not valid; give an index below {len(options)}."
                )
            task = options[task]
        if task not in options:
            raise ConfigError(
                f"task={task!r} is not valid; choose one of "
                + ", ".join(repr(r) for r in options)
                + "."
            )
        self.choices.append(self.position.ready.index(task))
        self._advance()

    def reset(self) -> None:
        """Start again from the beginning."""
        self.choices = []
        self._advance()

    def hint(self, *, max_schedules: int = 200, preemption_bound: int = 3) -> str | None:
        """A ready task from which the explorer can still reach the goal (None if none).

        Below each candidate move (in :attr:`options` order), every schedule with at most
        ``preemption_bound`` preemptions (CHESS-style, see
        :func:`~flowlab.study.deadlock.explorer.explore`) is tried, up to ``max_schedules`` per move.
        """
        if self.position is None:
            return None
        base = list(self.choices)
        position = self.position

        def search() -> str | None:
            for name in position.options:
                below = Search(reduce=False, preemption_bound=preemption_bound)
                head = [*base, position.ready.index(name)]

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
                    if self.reaches(out):
                        return name
                    if not below.advance(
                        dataclasses.replace(out, points=out.points[len(base) + 1 :])
                    ):
                        break
            return None

        move: str | None = _in_thread(search)
        return move

    def describe(self) -> str:
        """Where the game stands: a first line, then each live task's next line (or the report)."""
        if self.outcome is not None:
            out = self.outcome
            if self.won and out.deadlocked:
                verdict = "You forced the deadlock!"
            elif self.won:
                message = (str(out.error).splitlines() or [""])[0]  # not pytest's rewrite
                verdict = f"You reached the failure! {type(out.error).__name__}: {message}."
            else:
                verdict = f"The run ended {out.status}: the goal ({GOALS[self.goal]}) was missed."
            head = f"{verdict} Schedule {self.schedule!r}."
            return head if out.report is None else f"{head}\n{out.report.explain()}"
        assert self.position is not None
        head = (
            f"Move {len(self.choices) + 1} (goal: {GOALS[self.goal]}): " + self.position.describe()
        )
        return "\n".join([head, *self.position.task_lines()])

    def state(self) -> Position:
        """The lock state now: the current position, or after the last move how the run ended."""
        if self.position is not None:
            return self.position
        assert self.outcome is not None
        out = self.outcome
        trace = out.report.trace if out.report is not None else out.events
        end = out.report.finished_at if out.report is not None else 0.0
        rows = [r for r in intervals(trace, end) if r[7]]
        names = list(dict.fromkeys([*out.task_names, *(r[0] for r in rows)]))
        return Position(
            end,
            [],
            [(r[0], r[1]) for r in rows if r[2] == "hold"],
            [(r[0], r[1]) for r in rows if r[2] == "wait"],
            [n for n in names if any(r[0] == n for r in rows)],
        )

    def plot(self, ax: Axes | None = None, **kwargs: Any) -> Axes:
        """Draw who holds what and who waits (:func:`~flowlab.ui.plot._deadlock.plot_position`)."""
        from flowlab.ui.plot._deadlock import plot_position

        if self.outcome is None:
            title = f"move {len(self.choices) + 1}: goal {GOALS[self.goal]}"
        else:
            title = f"after move {len(self.choices)}: {self.outcome.status}"
            title += " (you win)" if self.won else ""
        return plot_position(self.state(), ax=ax, title=title, **kwargs)

    def __repr__(self) -> str:
        return (
            f"<SchedulerGame {self.label} goal={self.goal} moves={len(self.choices)} "
            f"options={self.options}>"
        )


def _default_goal(target: Any) -> str:
    if isinstance(target, str):
        from flowlab.study.deadlock.scenarios import scenario

        return "failure" if scenario(target).finder == "explorer" else "deadlock"
    return "any"
