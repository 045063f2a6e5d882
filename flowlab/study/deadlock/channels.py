"""Traced ``Event``, ``Condition`` and ``Queue``: whose wakers are other tasks' future actions.

Design
------
All build on :class:`~flowlab.study.deadlock.primitives.Traced`, so every wait is registered with the
line that waited and every ``set`` / ``clear`` / ``notify`` / ``put`` / ``get`` is a trace event.

* :class:`Event` wakes every waiter on ``set``; who may set it is declared with ``setters=[...]``.

* :class:`Condition` wraps a traced :class:`~flowlab.study.deadlock.primitives.Lock` (its own unless one
  is given). ``wait()`` releases the lock, blocks as a ``wait`` on the condition, then re-acquires
  the lock as an ordinary (traced) lock wait, exactly like asyncio's. Who can notify is declared
  with ``notifiers=[...]``.
* :class:`Queue` blocks ``get`` on an empty queue (woken by ``producers``) and ``put`` on a full
  one (woken by ``consumers``); ``join`` waits for ``task_done`` calls (by ``consumers``).

Declared names let the detector call a partial deadlock while other tasks still run; without them
a waiter is stuck only when its whole watched group is blocked. A declared name also covers the
tasks that task creates (work delegated to a child such as ``client.send``), and a task *seen*
doing the waking action counts as a waker whether declared or not; if it was not declared the
declaration is incomplete, the report warns, and any live task counts as a possible waker.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any, Generic, TypeVar

from flowlab.study.deadlock.base import Holder, Traced, Wakers, _Waiter
from flowlab.study.deadlock.primitives import Lock
from flowlab.study.deadlock.trace import caller_where, learn, learned, task_name

__all__ = ["Condition", "Event", "Queue"]

T = TypeVar("T")
R = TypeVar("R")


class Event(Traced):
    """A traced ``asyncio.Event``.

    Parameters
    ----------
    name : str, optional
        Shown in reports.
    setters : iterable of str, optional
        Names of the tasks that may set the event. When all of them are finished or blocked, a
        waiter can never wake: the detector reports it even while unrelated tasks still run.
        Without ``setters`` a waiter counts as stuck only once every task of the group is blocked.
    """

    kind = "Event"

    def __init__(self, *, name: str | None = None, setters: Iterable[str] | None = None) -> None:
        super().__init__(name)
        self._flag = False
        self._waiting: deque[_Waiter] = deque()
        self.setters = list(setters or [])

    def is_set(self) -> bool:
        """True once set (until cleared)."""
        return self._flag

    def set(self) -> None:
        """Set the flag and wake every waiter."""
        reg = self._reg()
        reg.record("set", self, caller_where())
        learn(self, task_name())
        self._saw("wait")
        if self._flag:
            return
        self._flag = True
        while (waiter := self._pop_live(self._waiting)) is not None:
            self._grant(waiter, "wake")

    def clear(self) -> None:
        """Reset the flag: later waiters block again."""
        self._reg().record("clear", self, caller_where())
        self._flag = False

    async def wait(self) -> bool:
        """Return at once if set, else block (traced) until some task sets the event."""
        if self._flag:
            return True
        await self._block(self._waiting, "wait", caller_where())
        return True

    def waiters(self) -> list[str]:
        return [w.task.get_name() for w in self._waiting if not w.future.done()]

    def wakers(self, op: str) -> Wakers:
        return Wakers(
            "set by", declared=list(self.setters), learned=learned(self), observed=self.observed(op)
        )

    def __repr__(self) -> str:
        state = "set" if self._flag else "unset"
        return f"<{self.label} {state} waiters={len(self.waiters())}>"


class Condition(Traced):
    """A traced ``asyncio.Condition``.

    Parameters
    ----------
    lock : Lock, optional
        The traced lock to use; a new ``Lock(name=f"{name}.lock")`` by default.
    name : str, optional
        Shown in reports.
    notifiers : iterable of str, optional
        Names of the tasks that call ``notify``/``notify_all``.
    """

    kind = "Condition"

    def __init__(
        self,
        lock: Lock | None = None,
        *,
        name: str | None = None,
        notifiers: Iterable[str] | None = None,
    ) -> None:
        super().__init__(name)
        self.lock = lock if lock is not None else Lock(name=f"{self.name}.lock")
        self._waiting: deque[_Waiter] = deque()
        self.notifiers = list(notifiers or [])

    def locked(self) -> bool:
        """True while the underlying lock is held."""
        return self.lock.locked()

    async def acquire(self) -> bool:
        """Acquire the underlying lock."""
        return await self.lock.acquire()

    def release(self) -> None:
        """Release the underlying lock."""
        self.lock.release()

    async def __aenter__(self) -> None:
        await self.lock.acquire()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.lock.release()

    async def wait(self) -> bool:
        """Release the lock, wait for a notify, re-acquire the lock (even when cancelled)."""
        if not self.locked():
            raise RuntimeError("cannot wait on un-acquired lock")
        where = caller_where()
        self.lock.release()
        try:
            await self._block(self._waiting, "wait", where)
            return True
        finally:
            cancelled = False
            while True:
                try:
                    await self.lock.acquire()
                    break
                except asyncio.CancelledError:
                    cancelled = True
            if cancelled:
                raise asyncio.CancelledError

    async def wait_for(self, predicate: Callable[[], R]) -> R:
        """Wait until ``predicate()`` is true (checked under the lock) and return its value."""
        result = predicate()
        while not result:
            await self.wait()
            result = predicate()
        return result

    def notify(self, n: int = 1) -> None:
        """Wake up to ``n`` waiters (the lock must be held)."""
        if not self.locked():
            raise RuntimeError("cannot notify on un-acquired lock")
        self._reg().record("notify", self, caller_where())
        learn(self, task_name())
        self._saw("wait")
        for _ in range(n):
            waiter = self._pop_live(self._waiting)
            if waiter is None:
                break
            self._grant(waiter, "wake")

    def notify_all(self) -> None:
        """Wake every waiter (the lock must be held)."""
        self.notify(len(self._waiting))

    def holders(self) -> list[Holder]:
        return self.lock.holders()

    def waiters(self) -> list[str]:
        return [w.task.get_name() for w in self._waiting if not w.future.done()]

    def wakers(self, op: str) -> Wakers:
        return Wakers(
            "notified by",
            declared=list(self.notifiers),
            learned=learned(self),
            observed=self.observed(op),
        )


class Queue(Traced, Generic[T]):
    """A traced ``asyncio.Queue`` (FIFO).

    Parameters
    ----------
    maxsize : int
        Capacity; 0 means unbounded.
    name : str, optional
        Shown in reports.
    producers, consumers : iterable of str, optional
        Names of the tasks that put to / take from the queue (they wake ``get`` / ``put`` waiters).
    """

    kind = "Queue"

    def __init__(
        self,
        maxsize: int = 0,
        *,
        name: str | None = None,
        producers: Iterable[str] | None = None,
        consumers: Iterable[str] | None = None,
    ) -> None:
        super().__init__(name)
        self.maxsize = maxsize
        self._items: deque[T] = deque()
        self._getters: deque[_Waiter] = deque()
        self._putters: deque[_Waiter] = deque()
        self._joiners: deque[_Waiter] = deque()
        self._unfinished = 0
        self.producers = list(producers or [])
        self.consumers = list(consumers or [])

    def qsize(self) -> int:
        """Number of items queued."""
        return len(self._items)

    def empty(self) -> bool:
        return not self._items

    def full(self) -> bool:
        return 0 < self.maxsize <= len(self._items)

    async def put(self, item: T) -> None:
        """Put ``item``, waiting (traced) while the queue is full."""
        where = caller_where()
        while self.full():
            await self._block(self._putters, "put", where)
        self.put_nowait(item)

    def put_nowait(self, item: T) -> None:
        """Put without waiting; raise ``asyncio.QueueFull`` when full."""
        if self.full():
            raise asyncio.QueueFull
        self._items.append(item)
        self._unfinished += 1
        self._reg().record("put", self, caller_where())
        learn(self, task_name())
        self._saw("get")
        self._wake(self._getters)

    async def get(self) -> T:
        """Remove and return the first item, waiting (traced) while the queue is empty."""
        where = caller_where()
        while self.empty():
            await self._block(self._getters, "get", where)
        return self.get_nowait()

    def get_nowait(self) -> T:
        """Take without waiting; raise ``asyncio.QueueEmpty`` when empty."""
        if self.empty():
            raise asyncio.QueueEmpty
        item = self._items.popleft()
        self._reg().record("get", self, caller_where())
        self._saw("put")
        self._wake(self._putters)
        return item

    def task_done(self) -> None:
        """Mark one taken item as processed; wakes ``join`` when none are left."""
        if self._unfinished <= 0:
            raise ValueError("task_done() called too many times")
        self._unfinished -= 1
        self._saw("join")
        if self._unfinished == 0:
            while (waiter := self._pop_live(self._joiners)) is not None:
                self._grant(waiter, "wake")

    async def join(self) -> None:
        """Wait until every item put has been marked done."""
        if self._unfinished:
            await self._block(self._joiners, "join", caller_where())

    def _wake(self, queue: deque[_Waiter]) -> None:
        waiter = self._pop_live(queue)
        if waiter is not None:
            self._grant(waiter, "wake")

    def _regrant(self, waiter: _Waiter) -> None:
        if waiter.op == "get" and self._items:
            self._wake(self._getters)
        elif waiter.op == "put" and not self.full():
            self._wake(self._putters)

    def waiters(self) -> list[str]:
        live = [*self._getters, *self._putters, *self._joiners]
        return [w.task.get_name() for w in live if not w.future.done()]

    def wakers(self, op: str) -> Wakers:
        seen = self.observed(op)
        if op == "get":
            return Wakers(
                "fed by", declared=list(self.producers), learned=learned(self), observed=seen
            )
        return Wakers(
            "drained by", declared=list(self.consumers), learned=learned(self), observed=seen
        )

    def statistics(self) -> dict[str, Any]:
        return {**super().statistics(), "qsize": self.qsize(), "maxsize": self.maxsize}

    def __repr__(self) -> str:
        return (
            f"<{self.label} qsize={self.qsize()} maxsize={self.maxsize} "
            f"waiters={len(self.waiters())}>"
        )
