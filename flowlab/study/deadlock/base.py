"""The base of every traced primitive: naming, loop binding, blocking, holders and wakers.

Design
------
:class:`Traced` gives each primitive a name (``Lock 'A'``), binds it to the first loop that uses
it, and blocks a task in a FIFO of :class:`_Waiter` futures registered in the loop's
:class:`~flowlab.study.deadlock.trace.Registry` (with the line where it waits). A primitive says who
could unblock a waiter with :class:`Wakers`: concrete :class:`Holder` tasks, declared task names,
tasks *observed* doing the waking action in this loop (:meth:`Traced.observed`), or ``anyone``
when it cannot know (see :mod:`flowlab.study.deadlock.primitives` for when that is).
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from dataclasses import dataclass, field
from typing import Any, ClassVar

from flowlab.study.deadlock.trace import Registry, learned, registry_for, task_name

__all__ = ["Holder", "Traced", "Wakers"]

_counter = itertools.count(1)


@dataclass(frozen=True, slots=True)
class Holder:
    """A task holding a resource, the line where it acquired it and when."""

    task: asyncio.Task[Any] | None
    where: str
    since: float

    @property
    def name(self) -> str:
        return task_name(self.task) if self.task is not None else "<callback>"


@dataclass(slots=True)
class Wakers:
    """Who could unblock a waiter: concrete holder tasks and/or declared task names."""

    relation: str
    holders: list[Holder] = field(default_factory=list)
    declared: list[str] = field(default_factory=list)
    learned: list[str] = field(default_factory=list)
    observed: list[asyncio.Task[Any]] = field(default_factory=list)
    anyone: bool = False

    @property
    def known(self) -> bool:
        """True when the wakers are known (holders or declared), not "any task"."""
        return bool(self.holders or self.declared) and not self.anyone


def _gone(holders: list[Holder]) -> bool:
    """True when a holder finished while holding: someone else must release (or nobody will)."""
    return any(h.task is not None and h.task.done() for h in holders)


@dataclass(slots=True)
class _Waiter:
    future: asyncio.Future[Any]
    task: asyncio.Task[Any]
    where: str
    op: str


class Traced:
    """Base of every traced primitive: naming, loop binding, blocking and tracing."""

    kind: ClassVar[str] = "Traced"

    def __init__(self, name: str | None = None) -> None:
        self.named = name is not None
        self.name = name if name is not None else f"{self.kind.lower()}-{next(_counter)}"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._seen: dict[str, list[asyncio.Task[Any]]] = {}

    @property
    def label(self) -> str:
        """``"Lock 'A'"``: kind and name, as used in reports."""
        return f"{self.kind} '{self.name}'"

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.name}"

    def _reg(self) -> Registry:
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif self._loop is not loop:
            raise RuntimeError(f"{self.label} is bound to a different event loop")
        return registry_for(loop)

    def _now(self) -> float:
        return self._loop.time() if self._loop is not None else 0.0

    async def _wait(
        self, queue: deque[_Waiter], op: str, where: str, timeout: float | None
    ) -> bool:
        """:meth:`_block`, given up after ``timeout`` seconds (then False; None: no limit).

        The wait runs under ``asyncio.timeout``, whose pending timer the detector sees: a wait
        that will time out is never called stuck (at most a near miss).
        """
        if timeout is None:
            await self._block(queue, op, where)
            return True
        if timeout <= 0:
            self._reg().record("try", self, where)
            return False
        try:
            async with asyncio.timeout(timeout):
                await self._block(queue, op, where)
        except TimeoutError:
            self._reg().record("timeout", self, where)
            return False
        return True

    async def _block(self, queue: deque[_Waiter], op: str, where: str) -> Any:
        """Wait in ``queue`` until a waker resolves our future (registering the wait).

        Returns the value the waker gave the future (``True``, or ``False`` for a broken wait).
        """
        reg = self._reg()
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError(f"{self.label}.{op}() must be awaited inside a task")
        fut: asyncio.Future[Any] = reg.loop.create_future()
        waiter = _Waiter(fut, task, where, op)
        queue.append(waiter)
        reg.block(task, self, op, where, fut)
        try:
            value = await fut
        except BaseException:
            reg.unblock(task)
            if fut.done() and not fut.cancelled():
                self._regrant(waiter)  # granted, then cancelled before it could run
            else:
                if waiter in queue:
                    queue.remove(waiter)
                reg.record("cancel", self, where, task.get_name())
            raise
        self._resumed(waiter)
        return value

    def _resumed(self, waiter: _Waiter) -> None:
        """A granted waiter runs again (asyncio removes its future from the queue only now)."""

    def _regrant(self, waiter: _Waiter) -> None:
        """A granted waiter was cancelled before resuming: give the grant back."""

    def _saw(self, op: str) -> None:
        """Remember that the current task did what wakes ``op`` waiters (an observed waker)."""
        task = asyncio.current_task()
        if task is not None:
            seen = self._seen.setdefault(op, [])
            if task not in seen:
                seen.append(task)

    def observed(self, op: str) -> list[asyncio.Task[Any]]:
        """Tasks seen (in this loop) doing what wakes a task waiting here with ``op``."""
        return list(self._seen.get(op, ()))

    def _grant(self, waiter: _Waiter, op: str, value: bool = True) -> None:
        reg = self._reg()
        reg.unblock(waiter.task)
        reg.record(op, self, waiter.where, waiter.task.get_name())
        waiter.future.set_result(value)

    @staticmethod
    def _pop_live(queue: deque[_Waiter]) -> _Waiter | None:
        while queue:
            waiter = queue.popleft()
            if not waiter.future.done():
                return waiter
        return None

    def holders(self) -> list[Holder]:
        """Tasks currently holding this resource (empty for events)."""
        return []

    def waiters(self) -> list[str]:
        """Names of the tasks blocked on this resource, in FIFO order."""
        return []

    def wakers(self, op: str) -> Wakers:
        """Who could unblock a task waiting here with ``op``."""
        return Wakers("woken by", learned=learned(self))

    def statistics(self) -> dict[str, Any]:
        """Snapshot of the live state."""
        return {
            "name": self.name,
            "kind": self.kind,
            "holders": [h.name for h in self.holders()],
            "waiters": self.waiters(),
        }

    def __repr__(self) -> str:
        held = ", ".join(h.name for h in self.holders())
        state = f"held by {held}" if held else "free"
        return f"<{self.label} {state} waiters={len(self.waiters())}>"
