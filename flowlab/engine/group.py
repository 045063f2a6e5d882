"""The task group of one Parallel step: structured concurrency at one call per branch.

:class:`asyncio.TaskGroup` adds a done callback to every task it starts, so each task's end costs
one more scheduled callback and one more Python call. A branch of a Parallel already closes its
own record in a ``finally`` (see :mod:`flowlab.engine.parallel`), so :class:`BranchGroup` lets the branch
say that it ended (:meth:`BranchGroup.ended`) instead, and keeps TaskGroup's guarantees:

* :meth:`BranchGroup.wait` returns only when every task started in the group has ended, including
  tasks started while it waits (a freed slot starts the next queued branch);
* if the waiting step is cancelled, every task in the group is cancelled and waited for before the
  cancellation goes on (waiting again if cancelled again), so no branch outlives its step;
* once closing, :meth:`BranchGroup.start` refuses new tasks (``RuntimeError``, as TaskGroup does);
* a ``BaseException`` that is neither an ``Exception`` nor a cancellation (``KeyboardInterrupt``,
  ``SystemExit``), handed to :meth:`BranchGroup.abort` by a branch, cancels the other branches and
  is raised by :meth:`BranchGroup.wait` once they have ended.

A task cancelled before it ran its first line never runs its ``finally``; whoever cancels it that
way must call :meth:`BranchGroup.ended` for it (the engine does, from the task's done callback).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

__all__ = ["BranchGroup"]


class BranchGroup:
    """The live tasks of one Parallel step (see the module docstring).

    Examples
    --------
    >>> import asyncio
    >>> async def main() -> list[int]:
    ...     group, out = BranchGroup(asyncio.get_running_loop()), []
    ...     async def branch(i: int) -> None:
    ...         try:
    ...             await asyncio.sleep(0)
    ...             out.append(i)
    ...         finally:
    ...             group.ended(asyncio.current_task())
    ...     for i in range(3):
    ...         group.start(branch(i), name=f"b{i}")
    ...     await group.wait()
    ...     return out
    >>> asyncio.run(main())
    [0, 1, 2]
    """

    __slots__ = ("_closing", "_fatal", "_loop", "_tasks", "_waiter")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        # Strong references (asyncio keeps weak ones), in start order: a dict, not a set, so
        # that cancel_all() cancels in that order, run after run.
        self._tasks: dict[asyncio.Task[Any], None] = {}
        self._waiter: asyncio.Future[None] | None = None
        self._closing = False
        self._fatal: BaseException | None = None

    def __repr__(self) -> str:
        state = "closing" if self._closing else "open"
        return f"<BranchGroup {state} tasks={len(self._tasks)}>"

    def __len__(self) -> int:
        return len(self._tasks)

    def start(self, coro: Coroutine[Any, Any, None], *, name: str) -> asyncio.Task[None]:
        """Start ``coro`` as a task of the group; ``RuntimeError`` once the group is closing."""
        if self._closing:
            coro.close()
            raise RuntimeError(f"{self!r} is closing; no new tasks")
        task = self._loop.create_task(coro, name=name)
        self._tasks[task] = None
        return task

    def ended(self, task: asyncio.Task[Any] | None) -> None:
        """``task`` is over (called once per task: from its ``finally``, or for a task cancelled
        before its first line, by whoever cancelled it)."""
        tasks = self._tasks
        tasks.pop(task, None)  # type: ignore[arg-type]
        if not tasks:
            waiter = self._waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    def abort(self, err: BaseException) -> None:
        """A branch hit ``err`` (a ``BaseException`` that no branch handles): cancel the rest;
        :meth:`wait` raises ``err`` once every task has ended."""
        if self._fatal is None:
            self._fatal = err
        self.cancel_all()

    def cancel_all(self) -> None:
        """Close the group and cancel every task in it (:meth:`wait` then waits for them)."""
        self._closing = True
        for task in list(self._tasks):
            task.cancel()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)  # wake wait(): a task cancelled unstarted never says ended()

    async def wait(self) -> None:
        """Wait until every task has ended (see the module docstring for cancellation)."""
        try:
            while self._tasks and not self._closing:
                self._waiter = self._loop.create_future()
                await self._waiter
        except asyncio.CancelledError:
            self.cancel_all()
            await self._drain()
            raise
        finally:
            self._waiter = None
        if self._closing:
            await self._drain()
        if self._fatal is not None:
            raise self._fatal

    async def _drain(self) -> None:
        """Wait for every task to be done, through further cancellations of the waiting task
        (the step's ``finally`` must not run while one of its branches still does)."""
        cancelled = False
        while True:
            pending = [t for t in self._tasks if not t.done()]
            if not pending:
                break
            try:
                await asyncio.wait(pending)
            except asyncio.CancelledError:
                cancelled = True
        self._tasks.clear()
        if cancelled:
            raise asyncio.CancelledError
