"""Traced ``Semaphore`` and ``BoundedSemaphore`` (asyncio's, with holders, releasers and FIFO).

Design
------
See :mod:`flowlab.study.deadlock.primitives` for what every traced lock and semaphore adds
(holders, waiters, wakers, hand-over on release, ``try_acquire`` and ``acquire(timeout=)``). A
semaphore has no owner: any task may release it, which turns its holders into mere hints (any
live task may then be the one to release it), and a permit given back by a task holding none
ends the oldest hold. As in asyncio, a waiter granted a permit but not run yet still stands in
the queue: a task acquiring a permit released meanwhile waits behind it.

Examples
--------
>>> import asyncio
>>> import flowlab.study.deadlock as dl
>>> async def two_at_once():
...     sem = dl.Semaphore(2, name="slots")
...     async with sem:
...         return repr(sem)
>>> asyncio.run(two_at_once())
"<Semaphore 'slots' value=1/2 holders=1 waiters=0>"
"""

from __future__ import annotations

import asyncio
import sys
from collections import deque
from collections.abc import Iterable
from types import TracebackType
from typing import Any

from flowlab.study.deadlock.base import Holder, Traced, Wakers, _gone, _Waiter
from flowlab.study.deadlock.trace import caller_where, learn, learned, task_name

__all__ = ["BoundedSemaphore", "Semaphore"]


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
        self._granted: list[_Waiter] = []  # woken, not run yet: asyncio still queues them
        self.releasers = list(releasers or [])
        self._track = not self.releasers  # a signal semaphore has no owners, only releasers
        self._owned = True  # every permit so far taken by ``async with`` and given back by it

    def locked(self) -> bool:
        """True when ``acquire()`` would wait: no permit free, or a waiter ahead (as asyncio)."""
        return (
            self._value == 0
            or bool(self._granted)
            or any(not w.future.done() for w in self._waiting)
        )

    async def acquire(self, *, timeout: float | None = None) -> bool:
        """Take a permit, waiting (traced) while none is free.

        Parameters
        ----------
        timeout : float, optional
            Seconds to wait at most; then give up and return False. ``None``: no limit.
        """
        self._owned = False  # a bare acquire: another task may be the one to release
        return await self._acquire(timeout)

    def try_acquire(self) -> bool:
        """Take a permit if one is free and return True; otherwise return False at once."""
        self._owned = False
        where = caller_where()
        if self._take(where):
            return True
        self._reg().record("try", self, where)
        return False

    async def _acquire(self, timeout: float | None = None) -> bool:
        where = caller_where()
        if self._take(where):
            return True
        return await self._wait(self._waiting, "acquire", where, timeout)

    def _take(self, where: str) -> bool:
        reg = self._reg()
        if not self.locked():
            self._value -= 1
            if self._track:
                self._held.append(Holder(asyncio.current_task(), where, reg.loop.time()))
            reg.record("acquire", self, where)
            return True
        return False

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
            if self._held:
                del self._held[0]  # the permit given back ends the oldest hold (a lightswitch)
        waiter = self._pop_live(self._waiting)
        if waiter is None:
            self._value += 1
            return
        self._hand(waiter)

    def _hand(self, waiter: _Waiter) -> None:
        """Give ``waiter`` a permit; until it runs, later acquirers queue behind it (FIFO)."""
        if self._track:
            self._held.append(Holder(waiter.task, waiter.where, self._now()))
        self._granted.append(waiter)
        self._grant(waiter, "acquire")

    def _resumed(self, waiter: _Waiter) -> None:
        """As asyncio: the woken waiter, running again, wakes those queued behind it."""
        if waiter in self._granted:
            self._granted.remove(waiter)
        while self._value > 0 and (nxt := self._pop_live(self._waiting)) is not None:
            self._value -= 1
            self._hand(nxt)
            if sys.version_info < (3, 12):
                break  # 3.11 wakes one; it wakes the next when it runs

    def _check_release(self) -> None:
        """Hook for :class:`BoundedSemaphore`."""

    def _regrant(self, waiter: _Waiter) -> None:
        if waiter in self._granted:
            self._granted.remove(waiter)
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
        holders = self.holders()
        return Wakers(
            "held by",
            holders=holders,
            learned=learned(self),
            observed=seen,
            anyone=not self._owned or _gone(holders),
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
