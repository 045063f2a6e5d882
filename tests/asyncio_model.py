"""The independent model: plain asyncio on a loop of our own, with virtual time and chosen steps.

Nothing here imports flowlab. :class:`ModelLoop` is asyncio's base loop with two changes:

* time is virtual: when nothing is ready it jumps to the next timer;
* when several *tasks* have a step ready, ``choose(n)`` picks which one runs (other callbacks
  run first, in FIFO order, as asyncio runs them).

The hang check needs no wall clock: nothing is ready and no timer is left, so every task is
blocked for good. :func:`outcome` runs a program once; :func:`all_outcomes` runs it under every
interleaving (a stateless depth-first search over the choices) and returns the set of end
states: ``("ok", value)``, ``"hang"``, ``"failed:<ExceptionType>"`` or ``"step_limit"``.
"""

from __future__ import annotations

import asyncio
import asyncio.base_events
import heapq
from collections.abc import Callable, Coroutine
from typing import Any

Program = Callable[[], Coroutine[Any, Any, Any]]
Choose = Callable[[int], int]
End = tuple[str, Any] | str


class ModelLoop(asyncio.base_events.BaseEventLoop):
    """Plain asyncio, virtual time; ``choose(n)`` picks one of ``n`` ready tasks."""

    def __init__(self, choose: Choose) -> None:
        super().__init__()
        self.now = 0.0
        self.choose = choose
        self.hung = False
        self.steps = 0
        self.made: list[asyncio.Task[Any]] = []  # every task, in creation order

    def time(self) -> float:
        return self.now

    def create_task(self, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:  # type: ignore[override]
        task = super().create_task(coro, **kwargs)
        self.made.append(task)
        return task

    def _process_events(self, event_list: Any) -> None:
        """No selector: a program of the model does no I/O."""

    def _write_to_self(self) -> None:
        """No self-pipe: nothing calls in from another thread."""

    @staticmethod
    def _task(handle: asyncio.Handle) -> object | None:
        owner = getattr(handle._callback, "__self__", None)  # type: ignore[attr-defined]
        return owner if isinstance(owner, asyncio.Task | asyncio.tasks._PyTask) else None  # type: ignore[attr-defined]

    def _run_once(self) -> None:
        ready, timers = self._ready, self._scheduled  # type: ignore[attr-defined]
        while timers and timers[0]._cancelled:
            self._timer_cancelled_count -= 1  # type: ignore[attr-defined]
            heapq.heappop(timers)._scheduled = False
        if not ready:
            if not timers:
                self.hung = True  # every task blocked, nothing will ever wake one
                self.stop()
                return
            self.now = max(self.now, timers[0]._when)
        while timers and timers[0]._when <= self.now:
            handle = heapq.heappop(timers)
            handle._scheduled = False
            if handle._cancelled:
                self._timer_cancelled_count -= 1  # type: ignore[attr-defined]
            else:
                ready.append(handle)
        while ready and ready[0]._cancelled:
            ready.popleft()
        if not ready:
            return
        if self._task(ready[0]) is None:
            ready.popleft()._run()
            return
        firsts: dict[object, int] = {}
        for i, handle in enumerate(ready):
            task = self._task(handle)
            if task is not None and task not in firsts and not handle._cancelled:
                firsts[task] = i
        options = list(firsts)
        pick = self.choose(len(options)) if len(options) > 1 else 0
        index = firsts[options[pick]]
        handle = ready[index]
        del ready[index]
        self.steps += 1
        handle._run()


def outcome(
    program: Program,
    choose: Choose = lambda n: 0,
    *,
    max_steps: int = 5_000,
    on_hang: Callable[[list[str], list[str]], None] | None = None,
) -> End:
    """Run ``program`` once; ``choose`` decides each choice point (default: asyncio's FIFO).

    ``on_hang`` is called at a hang, before anything is cancelled, with the names of the tasks
    that are blocked for good (every unfinished task but the program's own) and of those that
    were cancelled before the hang (by another task: a way out the detector cannot foresee).
    """
    loop = ModelLoop(choose)
    main = loop.create_task(program())
    main.add_done_callback(lambda _: loop.stop())
    try:
        while not (main.done() or loop.hung or loop.steps > max_steps):
            loop.run_forever()
        if not main.done():
            if loop.hung and on_hang is not None:
                blocked = [t for t in asyncio.all_tasks(loop) if not t.done() and t is not main]
                cancelled = [t.get_name() for t in loop.made if t.cancelled()]
                on_hang(sorted(t.get_name() for t in blocked), cancelled)
            return "hang" if loop.hung else "step_limit"
        if main.cancelled():
            return "failed:CancelledError"
        err = main.exception()
        return f"failed:{type(err).__name__}" if err is not None else ("ok", main.result())
    finally:
        _clean_up(loop)


def _clean_up(loop: ModelLoop) -> None:
    loop.choose = lambda n: 0
    for _ in range(8):
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        if not pending:
            break
        for task in pending:
            task.cancel()
        loop.hung = False
        gone = loop.create_task(asyncio.wait(pending, timeout=1.0))
        gone.add_done_callback(lambda _: loop.stop())
        while not (gone.done() or loop.hung):
            loop.run_forever()
    loop.close()


class _Prefix:
    """Depth-first search state: the choices of the current run, and how many each point had."""

    def __init__(self) -> None:
        self.stack: list[list[int]] = []  # [chosen, options] per choice point
        self.depth = 0

    def choose(self, n: int) -> int:
        d, self.depth = self.depth, self.depth + 1
        if d < len(self.stack):
            return self.stack[d][0]
        self.stack.append([0, n])
        return 0

    def advance(self) -> bool:
        """The next prefix to run; False when every interleaving has been run."""
        del self.stack[self.depth :]
        self.depth = 0
        while self.stack and self.stack[-1][0] + 1 >= self.stack[-1][1]:
            self.stack.pop()
        if not self.stack:
            return False
        self.stack[-1][0] += 1
        return True


def all_outcomes(program: Program, *, limit: int = 2_000) -> tuple[set[End] | None, int]:
    """Every end state over every interleaving; ``(None, runs)`` when more than ``limit`` runs."""
    prefix = _Prefix()
    ends: set[End] = set()
    runs = 0
    while True:
        ends.add(outcome(program, prefix.choose))
        runs += 1
        if runs > limit:
            return None, runs
        if not prefix.advance():
            return ends, runs
