"""Traced drop-ins for asyncio's ``Lock``, ``Semaphore`` and ``BoundedSemaphore``, and their base.

Design
------
Each primitive keeps asyncio's interface (``async with``, ``acquire``/``release``, ``locked``,
``set``/``wait``/``clear``...) and adds what a deadlock report needs:

* **holders** -- which task holds it and the source line where it acquired it (``holders()``);
* **waiters** -- FIFO of blocked tasks, each registered in the loop's
  :class:`~flowlab.deadlock.trace.Registry` with the line where it waits;
* **wakers** -- who could unblock a waiter: the holders of a lock or semaphore, the declared
  ``setters`` of an event (``Event(setters=["a"])``) or ``releasers`` of a semaphore used as a
  signal, and every task *seen* doing the waking action in this loop (``observed``). Learned
  wakers (seen in earlier runs) are shown in explanations only.

A semaphore has no owner: any task may release it (the Little Book's "lightswitch": the first
reader in acquires ``roomEmpty``, the last one out releases it). Only when every permit so far was
taken by ``async with`` -- which releases in the same task -- and released by its holder are the
holders its only wakers. A bare ``acquire()`` or a release by a non-holder turns that off for
good: from then on *any* live task is a possible waker (``Wakers.anyone``), so a waiter is stuck
only when every task of its group is finished or stuck. A :class:`Lock` released by a task that
did not acquire it (asyncio allows that) is treated the same way.

Ownership is **handed off** on release: the first waiter becomes the holder in the same step the
lock is released, so no third task can barge in and the registry never shows a free lock with a
blocked waiter. This is FIFO-fair like asyncio's lock and makes the wait-for graph exact at every
callback boundary. A waiter cancelled after being granted passes the grant on.

Every operation is recorded as a :class:`~flowlab.deadlock.trace.TraceEvent`; ``statistics()``
gives a snapshot and ``repr()`` shows live state, e.g. ``<Lock 'A' held by a waiters=1>``.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, ClassVar

from flowlab.deadlock.trace import Registry, caller_where, learn, learned, registry_for, task_name

__all__ = ["BoundedSemaphore", "Holder", "Lock", "Semaphore", "Traced", "Wakers"]

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

    async def _block(self, queue: deque[_Waiter], op: str, where: str) -> None:
        """Wait in ``queue`` until a waker resolves our future (registering the wait)."""
        reg = self._reg()
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError(f"{self.label}.{op}() must be awaited inside a task")
        fut: asyncio.Future[Any] = reg.loop.create_future()
        waiter = _Waiter(fut, task, where, op)
        queue.append(waiter)
        reg.block(task, self, op, where, fut)
        try:
            await fut
        except BaseException:
            reg.unblock(task)
            if fut.done() and not fut.cancelled():
                self._regrant(waiter)  # granted, then cancelled before it could run
            else:
                if waiter in queue:
                    queue.remove(waiter)
                reg.record("cancel", self, where, task.get_name())
            raise

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

    def _grant(self, waiter: _Waiter, op: str) -> None:
        reg = self._reg()
        reg.unblock(waiter.task)
        reg.record(op, self, waiter.where, waiter.task.get_name())
        waiter.future.set_result(True)

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


class Lock(Traced):
    """A traced ``asyncio.Lock`` (not reentrant: acquiring it twice in one task deadlocks).

    Parameters
    ----------
    name : str, optional
        Shown in reports; unnamed locks get ``lock-<n>``.
    """

    kind = "Lock"

    def __init__(self, name: str | None = None) -> None:
        super().__init__(name)
        self._holder: Holder | None = None
        self._waiting: deque[_Waiter] = deque()
        self._owned = True  # released so far only by the task that acquired it

    def locked(self) -> bool:
        """True while some task holds the lock."""
        return self._holder is not None

    async def acquire(self) -> bool:
        """Acquire the lock, waiting (traced) while another task holds it."""
        where = caller_where()
        reg = self._reg()
        if self._holder is None and not any(not w.future.done() for w in self._waiting):
            self._holder = Holder(asyncio.current_task(), where, reg.loop.time())
            reg.record("acquire", self, where)
            return True
        await self._block(self._waiting, "acquire", where)
        return True

    def _grant_to(self, waiter: _Waiter) -> None:
        self._holder = Holder(waiter.task, waiter.where, self._now())
        self._grant(waiter, "acquire")

    def release(self) -> None:
        """Release the lock and hand it to the first waiter, if any."""
        if self._holder is None:
            raise RuntimeError("Lock is not acquired.")
        reg = self._reg()
        reg.record("release", self, caller_where())
        if self._holder.task is not asyncio.current_task():
            self._owned = False  # asyncio allows it: the lock is used as a signal
            self._saw("acquire")
        self._holder = None
        waiter = self._pop_live(self._waiting)
        if waiter is not None:
            self._grant_to(waiter)

    def _regrant(self, waiter: _Waiter) -> None:
        if self._holder is not None and self._holder.task is waiter.task:
            self.release()

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def holders(self) -> list[Holder]:
        return [self._holder] if self._holder is not None else []

    def waiters(self) -> list[str]:
        return [w.task.get_name() for w in self._waiting if not w.future.done()]

    def wakers(self, op: str) -> Wakers:
        return Wakers(
            "held by",
            holders=self.holders(),
            learned=learned(self),
            observed=self.observed(op),
            anyone=not self._owned,
        )


class Semaphore(Traced):
    """A traced ``asyncio.Semaphore``: ``value`` permits, holders tracked per task.

    Parameters
    ----------
    value : int
        Initial permits (>= 0).
    name : str, optional
        Shown in reports.
    releasers : iterable of str, optional
        Task names that release the semaphore without acquiring it (a semaphore used as a
        signal, e.g. ``items`` in a bounded buffer). Their names let the detector see a partial
        deadlock even while unrelated tasks still run. Without them, once a permit is taken by a
        bare ``acquire()`` or released by a task that did not take it, any live task may be the
        one to release it (see the module docstring).
    """

    kind = "Semaphore"

    def __init__(
        self, value: int = 1, *, name: str | None = None, releasers: Iterable[str] | None = None
    ) -> None:
        if value < 0:
            raise ValueError("Semaphore initial value must be >= 0")
        super().__init__(name)
        self._value = value
        self._initial = value
        self._held: list[Holder] = []
        self._waiting: deque[_Waiter] = deque()
        self.releasers = list(releasers or [])
        self._track = not self.releasers  # a signal semaphore has no owners, only releasers
        self._owned = True  # every permit so far taken by ``async with`` and given back by it

    def locked(self) -> bool:
        """True when no permit is free."""
        return self._value == 0

    async def acquire(self) -> bool:
        """Take a permit, waiting (traced) while none is free."""
        self._owned = False  # a bare acquire: another task may be the one to release
        return await self._acquire()

    async def _acquire(self) -> bool:
        where = caller_where()
        reg = self._reg()
        if self._value > 0 and not any(not w.future.done() for w in self._waiting):
            self._value -= 1
            if self._track:
                self._held.append(Holder(asyncio.current_task(), where, reg.loop.time()))
            reg.record("acquire", self, where)
            return True
        await self._block(self._waiting, "acquire", where)
        return True

    def release(self) -> None:
        """Return a permit (by its holder, or as a signal by anyone); hand it to a waiter."""
        self._check_release()
        reg = self._reg()
        task = asyncio.current_task()
        reg.record("release", self, caller_where())
        for i in range(len(self._held) - 1, -1, -1):  # the most recent grant goes first
            if self._held[i].task is task:
                del self._held[i]
                break
        else:
            learn(self, task_name(task))  # released without holding: a signal
            self._owned = False
            self._saw("acquire")
        waiter = self._pop_live(self._waiting)
        if waiter is None:
            self._value += 1
            return
        if self._track:
            self._held.append(Holder(waiter.task, waiter.where, self._now()))
        self._grant(waiter, "acquire")

    def _check_release(self) -> None:
        """Hook for :class:`BoundedSemaphore`."""

    def _regrant(self, waiter: _Waiter) -> None:
        self.release()  # runs in the cancelled waiter's task: drops its newest permit

    async def __aenter__(self) -> None:
        await self._acquire()  # released by this same task in __aexit__

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def holders(self) -> list[Holder]:
        return list(self._held)

    def waiters(self) -> list[str]:
        return [w.task.get_name() for w in self._waiting if not w.future.done()]

    def wakers(self, op: str) -> Wakers:
        seen = self.observed(op)
        if self.releasers:
            return Wakers(
                "released by", declared=list(self.releasers), learned=learned(self), observed=seen
            )
        return Wakers(
            "held by",
            holders=self.holders(),
            learned=learned(self),
            observed=seen,
            anyone=not self._owned,
        )

    def statistics(self) -> dict[str, Any]:
        return {**super().statistics(), "value": self._value, "initial": self._initial}

    def __repr__(self) -> str:
        return (
            f"<{self.label} value={self._value}/{self._initial} holders={len(self._held)} "
            f"waiters={len(self.waiters())}>"
        )


class BoundedSemaphore(Semaphore):
    """A traced ``asyncio.BoundedSemaphore``: releasing above the initial value raises."""

    kind = "BoundedSemaphore"

    def _check_release(self) -> None:
        if self._value >= self._initial and not self._waiting:
            raise ValueError("BoundedSemaphore released too many times")
