"""Traced ``Lock`` and ``RLock`` (asyncio's, plus re-entry); ``Semaphore`` lives in ``semaphores``.

Design
------
Each primitive keeps asyncio's interface (``async with``, ``acquire``/``release``, ``locked``,
``set``/``wait``/``clear``...) and adds what a deadlock report needs:

* **holders** -- which task holds it and the source line where it acquired it (``holders()``);
* **waiters** -- FIFO of blocked tasks, each registered in the loop's
  :class:`~flowlab.study.deadlock.trace.Registry` with the line where it waits;
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
did not acquire it (asyncio allows that) is treated the same way, and so is a lock or semaphore
whose holder *finished* holding it: that is a hand-over to whoever releases it, or a leak that
is reported once nothing else of the group can run. A permit given back by a task that holds
none ends the oldest hold: the lightswitch's first reader no longer holds ``roomEmpty`` once the
last one out has released it.

Ownership is **handed off** on release: the first waiter becomes the holder in the same step the
lock is released, so no third task can barge in and the registry never shows a free lock with a
blocked waiter. This is FIFO-fair like asyncio's lock and makes the wait-for graph exact at every
callback boundary. A waiter cancelled after being granted passes the grant on. As in asyncio, a
semaphore's waiter that was granted a permit but has not run yet still stands in the queue: a
task acquiring a permit released meanwhile waits behind it (and is woken when it runs), so
``await sem.acquire()`` yields exactly where asyncio's does.

Like The Deadlock Empire's ``Monitor.TryEnter``, every lock and semaphore has ``try_acquire()``
(take it if free, never wait) and ``acquire(timeout=...)`` (give up after that many seconds and
return False). A timed wait is never stuck: it runs under ``asyncio.timeout``, whose pending timer
the detector sees; if it would deadlock without the deadline, the report names it as a near miss.
A failed try is traced (op ``try``), so the explorer sees that it read the lock.

Every operation is recorded as a :class:`~flowlab.study.deadlock.trace.TraceEvent`; ``statistics()``
gives a snapshot and ``repr()`` shows live state, e.g. ``<Lock 'A' held by a waiters=1>``.
"""

from __future__ import annotations

import asyncio
from collections import deque
from types import TracebackType
from typing import Any

from flowlab.study.deadlock.base import Holder, Traced, Wakers, _gone, _Waiter
from flowlab.study.deadlock.semaphores import BoundedSemaphore, Semaphore
from flowlab.study.deadlock.trace import caller_where, learned

__all__ = ["BoundedSemaphore", "Holder", "Lock", "RLock", "Semaphore", "Traced", "Wakers"]


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
        self._granted: _Waiter | None = None  # handed the lock, not run yet (asyncio: free)

    def locked(self) -> bool:
        """True while some task holds the lock.

        As asyncio's: False from a release until the waiter it wakes runs (the lock is already
        that waiter's, so nobody else can take it in between).
        """
        return self._holder is not None and self._granted is None

    async def acquire(self, *, timeout: float | None = None) -> bool:
        """Acquire the lock, waiting (traced) while another task holds it.

        Parameters
        ----------
        timeout : float, optional
            Seconds to wait at most; then give up and return False. ``None``: wait as long as it
            takes.
        """
        where = caller_where()
        if self._take(where):
            return True
        return await self._wait(self._waiting, "acquire", where, timeout)

    def try_acquire(self) -> bool:
        """Acquire the lock if it is free and return True; otherwise return False at once."""
        where = caller_where()
        if self._take(where):
            return True
        self._reg().record("try", self, where)
        return False

    def _take(self, where: str) -> bool:
        reg = self._reg()
        if self._holder is None and not any(not w.future.done() for w in self._waiting):
            self._holder = Holder(asyncio.current_task(), where, reg.loop.time())
            reg.record("acquire", self, where)
            return True
        return False

    def _grant_to(self, waiter: _Waiter) -> None:
        self._holder = Holder(waiter.task, waiter.where, self._now())
        self._granted = waiter
        self._grant(waiter, "acquire")

    def _resumed(self, waiter: _Waiter) -> None:
        if self._granted is waiter:
            self._granted = None

    def release(self) -> None:
        """Release the lock and hand it to the first waiter, if any."""
        if self._holder is None or self._granted is not None:
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
        if self._granted is waiter:
            self._granted = None
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
        holders = self.holders()
        return Wakers(
            "held by",
            holders=holders,
            learned=learned(self),
            observed=self.observed(op),
            anyone=not self._owned or _gone(holders),
        )


class RLock(Lock):
    """A traced re-entrant lock: the task holding it may acquire it again.

    Each ``acquire`` by the holder must be matched by a ``release``; the lock is free when the
    last one is. Only the holder may release it (``RuntimeError`` otherwise), so its holder is
    always its only waker -- a cycle through an ``RLock`` is a deadlock like any other.

    Parameters
    ----------
    name : str, optional
        Shown in reports.
    """

    kind = "RLock"

    def __init__(self, name: str | None = None) -> None:
        super().__init__(name)
        self._depth = 0

    def _mine(self) -> bool:
        return self._holder is not None and self._holder.task is asyncio.current_task()

    async def acquire(self, *, timeout: float | None = None) -> bool:
        """Acquire (again, if this task holds it already); ``timeout`` as for :class:`Lock`."""
        if self._mine():
            self._depth += 1
            self._reg().record("acquire", self, caller_where())
            return True
        ok = await super().acquire(timeout=timeout)
        if ok:
            self._depth = 1
        return ok

    def try_acquire(self) -> bool:
        """Acquire if free or already held by this task; otherwise return False at once."""
        if self._mine():
            self._depth += 1
            self._reg().record("acquire", self, caller_where())
            return True
        ok = super().try_acquire()
        if ok:
            self._depth = 1
        return ok

    def _grant_to(self, waiter: _Waiter) -> None:
        super()._grant_to(waiter)
        self._depth = 1

    def release(self) -> None:
        """Undo one ``acquire``; the last one frees the lock for the first waiter."""
        if not self._mine():
            raise RuntimeError(f"{self.label} can only be released by the task holding it")
        self._depth -= 1
        if self._depth:
            self._reg().record("release", self, caller_where())
            return
        super().release()

    def statistics(self) -> dict[str, Any]:
        return {**super().statistics(), "depth": self._depth}
