"""A deterministic event loop whose ready queue asks a strategy which task steps next.

Design
------
:class:`ExplorerLoop` is a :class:`~flowlab.engine.clock.VirtualTimeLoop` with its own ``_run_once``: it
runs **one** handle per iteration instead of the whole ready batch.

* A handle that is not a task step (a future callback, a ``call_soon`` function, the detector's
  check) at the head of the queue runs at once, in FIFO order: it is bookkeeping, not a choice.
* When the head is a task step, every task with a ready step is an *option*, listed in FIFO
  order of its first ready handle. With one option there is nothing to choose; with two or more
  this is a **choice point** and the chooser returns an index. Index 0 is what asyncio itself
  would run, so the all-zero schedule *is* asyncio's FIFO schedule and any other index is a
  *delay* (a deviation from FIFO; bounded search counts these).
* Time is virtual and jumps to the next timer only when nothing is ready. When nothing is ready
  and no timer is left, every task is blocked: the loop marks itself ``stuck`` and stops.

Tasks are numbered by creation (``ordinals``), never by ``id()``; the queue is scanned in order; no
set is iterated. Given the same choices a run is therefore reproduced exactly, which is what makes
schedules replayable. A schedule is saved as the list of indices with trailing zeros dropped and
runs compressed: ``"0*4.1.0*2.2"`` (:func:`encode` / :func:`decode`); ``""`` is plain FIFO.
"""

from __future__ import annotations

import asyncio
import heapq
import os
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from types import FrameType
from typing import Any

from flowlab.engine.clock import VirtualTimeLoop
from flowlab.errors import ConfigError
from flowlab.study.deadlock.kinds import is_task
from flowlab.study.deadlock.trace import registry_for

__all__ = ["ChoicePoint", "Chooser", "ExplorerLoop", "Step", "decode", "encode", "preempts"]

Task = asyncio.Task[Any]
_SKIP = (os.path.dirname(asyncio.__file__), os.path.dirname(os.path.abspath(__file__)))
_BODIES = ("bodies.py", "classics.py", "races.py", "examples.py")  # user code in the lab
Chooser = Callable[[int, list[int], int | None], int]


@dataclass(slots=True)
class ChoicePoint:
    """Ready tasks (ordinals, FIFO order) at a decision, the index chosen, the previous task.

    ``prev`` is the ordinal of the task that ran the step just before (``None`` at the start):
    choosing another task while ``prev`` is among the options is a *preemption*.
    """

    options: list[int]
    chosen: int
    step: int
    prev: int | None = None


@dataclass(slots=True)
class Step:
    """One task step: which task ran, which traced resources it touched, its choice point.

    ``reads`` lists the resources of ``resources`` that the step only read (``Shared.get``);
    every other touch counts as a write. ``traced_wake`` is True when the step began because a
    traced primitive granted the task's wait; False when it began after an untraced await
    (``sleep``, I/O, a plain future, another task) or is the task's first step. ``where`` is the
    line the task stopped at after the step (recorded on replays, see :func:`suspended_at`).
    """

    task: int
    resources: tuple[str, ...]
    point: int | None
    reads: tuple[str, ...] = ()
    traced_wake: bool = False
    where: str = ""


class ExplorerLoop(VirtualTimeLoop):
    """Runs one ready handle per iteration; ``chooser(point_no, options, prev) -> index``."""

    def __init__(self, chooser: Chooser, *, max_steps: int = 20_000, lines: bool = False) -> None:
        super().__init__()
        self.chooser = chooser
        self.max_steps = max_steps
        self.lines = lines  # record where each task stopped after each step (for narratives)
        self.tasks: list[Task] = []
        self.ordinals: dict[Task, int] = {}
        self.points: list[ChoicePoint] = []
        self.steps: list[Step] = []
        self.stuck = False
        self.step_limit_hit = False
        self.until: Callable[[], bool] | None = None
        self.traced_wake: dict[int, bool] = {}  # task -> its next step is a traced wake-up

    def create_task(self, coro: Coroutine[Any, Any, Any], **kwargs: Any) -> Task:  # type: ignore[override]
        task = super().create_task(coro, **kwargs)
        self.ordinal(task)
        return task

    def ordinal(self, task: Task) -> int:
        """The task's creation number (assigned on first sight for tasks made elsewhere)."""
        number = self.ordinals.get(task)
        if number is None:
            number = self.ordinals[task] = len(self.tasks)
            self.tasks.append(task)
        return number

    @property
    def choices(self) -> list[int]:
        return [p.chosen for p in self.points]

    @staticmethod
    def _task_of(handle: asyncio.Handle) -> Task | None:
        owner = getattr(handle._callback, "__self__", None)  # type: ignore[attr-defined]
        return owner if is_task(owner) else None

    def _due_timers(self) -> None:
        sched = self._scheduled  # type: ignore[attr-defined]
        while sched and sched[0]._cancelled:
            heapq.heappop(sched)._scheduled = False
            self._timer_cancelled_count -= 1  # type: ignore[attr-defined]
        if not self._ready and sched and sched[0]._when > self.time():  # type: ignore[attr-defined]
            self.advance(sched[0]._when - self.time())
        end = self.time() + self._clock_resolution  # type: ignore[attr-defined]
        while sched and sched[0]._when < end:
            handle = heapq.heappop(sched)
            handle._scheduled = False
            if handle._cancelled:
                self._timer_cancelled_count -= 1  # type: ignore[attr-defined]
            else:
                self._ready.append(handle)  # type: ignore[attr-defined]

    def _run_once(self) -> None:
        if self.until is not None and self.until():
            self.stop()
            return
        ready = self._ready  # type: ignore[attr-defined]
        while ready and ready[0]._cancelled:
            ready.popleft()
        self._due_timers()
        if not ready:
            if self.threads_in_flight:
                super()._run_once()  # type: ignore[misc]
                return
            self.stuck = True
            self.stop()
            return
        if len(self.steps) >= self.max_steps:
            self.step_limit_hit = True
            self.stop()
            return
        head = ready[0]
        if self._task_of(head) is None:
            ready.popleft()
            head._run()
            return
        firsts: dict[Task, int] = {}
        for i, handle in enumerate(ready):
            task = self._task_of(handle)
            if task is not None and task not in firsts and not handle._cancelled:
                firsts[task] = i
        options = list(firsts)
        point: int | None = None
        pick = 0
        if len(options) > 1:
            point = len(self.points)
            ordinals = [self.ordinal(t) for t in options]
            prev = self.steps[-1].task if self.steps else None
            pick = self.chooser(point, ordinals, prev)
            if not 0 <= pick < len(options):
                raise ConfigError(
                    f"schedule does not fit this program: choice point {point} has "
                    f"{len(options)} ready tasks, index {pick} was asked for."
                )
            self.points.append(ChoicePoint(ordinals, pick, len(self.steps), prev))
        chosen = options[pick]
        index = firsts[chosen]
        handle = ready[index]
        del ready[index]
        reg = registry_for(self)
        before = len(reg.events)
        handle._run()
        events = reg.events[before:]
        touched = tuple(dict.fromkeys(e.resource for e in events))
        written = {e.resource for e in events if e.op != "read"}
        reads = tuple(r for r in touched if r not in written)
        number = self.ordinal(chosen)
        woken = self.traced_wake.get(number, False)
        self.traced_wake[number] = reg.wait_of(chosen) is not None  # parked on a traced wait
        where = suspended_at(chosen) if self.lines else ""
        self.steps.append(Step(number, touched, point, reads, woken, where))


def suspended_frame(task: Task) -> FrameType | None:
    """The innermost frame of ``task`` in user code (the lab's bodies count), or None."""
    frames = []
    coro: Any = task.get_coro()
    while coro is not None:  # follow the await chain down to the innermost coroutine
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            frames.append(frame)
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    for frame in reversed(frames):
        path = frame.f_code.co_filename
        if not path.startswith(_SKIP) or os.path.basename(path) in _BODIES:
            found: FrameType = frame
            return found
    return None


def suspended_at(task: Task) -> str:
    """``"file.py:12 (func)"``: the innermost user line where ``task`` now waits, or ``"end"``."""
    if task.done():
        return "end"
    frame = suspended_frame(task)
    if frame is None:
        return "?"
    return f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno} ({frame.f_code.co_name})"


def label(task: Task, ordinal: int) -> str:
    """The task's name, or for an unnamed one (``Task-12``) its coroutine's name and ordinal."""
    name = task.get_name()
    if name.startswith("Task-") and name[5:].isdigit():
        coro = task.get_coro()
        return f"{getattr(coro, '__name__', 'task')}#{ordinal}"
    return name


def preempts(options: list[int], prev: int | None, index: int) -> bool:
    """True when choosing ``options[index]`` switches away from ``prev`` while it is ready."""
    return prev is not None and prev in options and options[index] != prev


def encode(choices: list[int]) -> str:
    """``[0, 0, 0, 0, 1, 0, 0, 2]`` -> ``"0*4.1.0*2.2"`` (trailing zeros dropped)."""
    items = list(choices)
    while items and items[-1] == 0:
        items.pop()
    out: list[str] = []
    i = 0
    while i < len(items):
        j = i
        while j < len(items) and items[j] == items[i]:
            j += 1
        run = j - i
        out.append(str(items[i]) if run == 1 else f"{items[i]}*{run}")
        i = j
    return ".".join(out)


def decode(schedule: str) -> list[int]:
    """Inverse of :func:`encode`; :class:`ConfigError` for a malformed string."""
    out: list[int] = []
    if not schedule.strip():
        return out
    for part in schedule.strip().split("."):
        value, _, count = part.partition("*")
        try:
            out.extend([int(value)] * (int(count) if count else 1))
        except ValueError as err:
            raise ConfigError(
                f"schedule={schedule!r} is not valid; expected dot-separated indices such as "
                "'0*4.1.0*2.2' (as printed by explore())."
            ) from err
    return out
