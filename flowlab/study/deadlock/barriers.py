"""Traced ``Barrier`` (like ``asyncio.Barrier``) and ``CountdownEvent`` (a countdown latch).

Design
------
Both are meeting points whose waiters are woken by *other tasks arriving*, not by a holder:

* :class:`Barrier` -- ``parties`` tasks call ``wait()``; the last to arrive lets them all through
  (each gets its arrival index). As in asyncio, the round then *drains*: a task that calls
  ``wait()`` again before every released waiter has left waits until they have, so a fast task
  cannot fill the next round while a slow one is still in the last (without it the explorer
  reached orderings asyncio never produces). ``abort()`` breaks it (every waiter, and every
  later ``wait()``, raises ``asyncio.BrokenBarrierError``); ``reset()`` breaks the current round
  and starts afresh once its waiters have left.
* :class:`CountdownEvent` -- .NET's ``CountdownEvent`` / Java's ``CountDownLatch``: it starts at
  ``count``; ``signal()`` counts down; ``wait()`` blocks until it reaches zero; ``add()`` counts
  up while it is not yet set.

Who can wake a waiter: for a barrier, any live task of the group that is not itself stuck could
still arrive, so a barrier with missing parties is stuck only when no such task is left (every
other task finished or blocked for good) -- never while one could still come. A countdown's
waker is any task that may signal it: the declared ``signalers=[...]`` (which lets the detector
call a partial deadlock while unrelated tasks run), else any live task.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable
from typing import Any

from flowlab.study.deadlock.base import Traced, Wakers, _Waiter
from flowlab.study.deadlock.trace import caller_where, learn, learned, task_name

__all__ = ["Barrier", "CountdownEvent"]


class Barrier(Traced):
    """A traced ``asyncio.Barrier``: ``parties`` tasks wait until all of them have arrived.

    Parameters
    ----------
    parties : int
        Tasks that must call :meth:`wait` before any of them goes on (>= 1).
    name : str, optional
        Shown in reports.

    Examples
    --------
    >>> import asyncio
    >>> import flowlab.study.deadlock as dl
    >>> from flowlab.engine.clock import run_virtual
    >>> async def meet():
    ...     barrier = dl.Barrier(2, name="start")
    ...     async def runner(delay):
    ...         await asyncio.sleep(delay)
    ...         await barrier.wait()
    ...         return asyncio.get_running_loop().time()
    ...     return await dl.watch(runner(0.1), runner(0.3))
    >>> run_virtual(meet())  # both leave when the second arrives
    [0.3, 0.3]
    """

    kind = "Barrier"

    def __init__(self, parties: int, *, name: str | None = None) -> None:
        if parties < 1:
            raise ValueError("parties must be >= 1")
        super().__init__(name)
        self.parties = parties
        self._count = 0
        self._broken = False
        self._round = 0  # bumped whenever a round opens or breaks
        self._waiting: deque[_Waiter] = deque()
        self._draining = 0  # released (or broken) waiters that have not left wait() yet
        self._held: deque[_Waiter] = deque()  # arrivals waiting for the round to drain

    @property
    def n_waiting(self) -> int:
        """Tasks waiting for the rest of their round."""
        return self._count

    @property
    def broken(self) -> bool:
        """True after :meth:`abort` (until :meth:`reset`)."""
        return self._broken

    async def wait(self) -> int:
        """Arrive and wait for the other parties; return this task's arrival index (0-based)."""
        where = caller_where()
        reg = self._reg()
        while self._draining and not self._broken:  # the last round is still leaving
            await self._block(self._held, "wait", where)
        if self._broken:
            raise asyncio.BrokenBarrierError
        index = self._count
        self._count += 1
        reg.record("arrive", self, where)
        if self._count == self.parties:  # the last one opens the barrier for this round
            self._count = 0
            self._round += 1
            self._release(True)
            return index
        round_ = self._round
        try:
            passed = await self._block(self._waiting, "wait", where)
        except BaseException:
            if self._round == round_:
                self._count -= 1  # cancelled before its round opened: it leaves the round
            else:
                self._left()  # released (or broken), then cancelled before it ran again
            raise
        self._left()
        if not passed:
            raise asyncio.BrokenBarrierError
        return index

    def _release(self, passed: bool) -> None:
        """Wake this round's waiters (``passed``: let through, else broken); the round drains."""
        while (waiter := self._pop_live(self._waiting)) is not None:
            self._draining += 1
            self._grant(waiter, "wake", value=passed)

    def _left(self) -> None:
        """A released waiter left ``wait()``: the last one lets the held arrivals in."""
        self._draining -= 1
        if not self._draining:
            while (waiter := self._pop_live(self._held)) is not None:
                self._grant(waiter, "wake")

    def abort(self) -> None:
        """Break the barrier: waiters and later ``wait()`` calls raise ``BrokenBarrierError``."""
        self._reg().record("abort", self, caller_where())
        self._broken = True
        self._break_waiters()

    def reset(self) -> None:
        """Break the current round (its waiters raise) and start empty, unbroken."""
        self._reg().record("reset", self, caller_where())
        self._break_waiters()
        self._broken = False

    def _break_waiters(self) -> None:
        self._count = 0
        self._round += 1
        self._release(False)
        if self._broken:  # held arrivals raise now, as later wait() calls do
            while (waiter := self._pop_live(self._held)) is not None:
                self._grant(waiter, "wake")

    def waiters(self) -> list[str]:
        return [w.task.get_name() for w in (*self._waiting, *self._held) if not w.future.done()]

    def wakers(self, op: str) -> Wakers:
        # Any live task could still arrive: nothing is declared, so the detector calls a waiter
        # stuck only once every other task of the group is finished or stuck. (Tasks seen
        # arriving are the waiters themselves, so they are not listed as wakers.)
        return Wakers("completed by", learned=learned(self))

    def statistics(self) -> dict[str, Any]:
        return {
            **super().statistics(),
            "parties": self.parties,
            "n_waiting": self._count,
            "broken": self._broken,
        }

    def __repr__(self) -> str:
        state = " broken" if self._broken else ""
        return f"<{self.label}{state} waiting={self._count}/{self.parties}>"


class CountdownEvent(Traced):
    """A countdown latch: ``wait()`` blocks until ``signal()`` has been called ``count`` times.

    Parameters
    ----------
    count : int
        Signals needed before waiters go on (>= 0; 0 starts set).
    name : str, optional
        Shown in reports.
    signalers : iterable of str, optional
        Names of the tasks that call :meth:`signal`. When all of them are finished or stuck, a
        waiter can never wake, and the detector says so even while unrelated tasks still run.
    """

    kind = "CountdownEvent"

    def __init__(
        self, count: int, *, name: str | None = None, signalers: Iterable[str] | None = None
    ) -> None:
        if count < 0:
            raise ValueError("count must be >= 0")
        super().__init__(name)
        self.initial = count
        self._count = count
        self._waiting: deque[_Waiter] = deque()
        self.signalers = list(signalers or [])

    @property
    def count(self) -> int:
        """Signals still missing."""
        return self._count

    def is_set(self) -> bool:
        """True once the count is zero."""
        return self._count == 0

    def signal(self, n: int = 1) -> bool:
        """Count down by ``n``; return True when that set the event (woke every waiter)."""
        if not 1 <= n <= self._count:
            raise ValueError(f"signal(n={n}) is not valid: {self._count} signal(s) left")
        self._reg().record("signal", self, caller_where())
        learn(self, task_name())
        self._saw("wait")
        self._count -= n
        if self._count:
            return False
        while (waiter := self._pop_live(self._waiting)) is not None:
            self._grant(waiter, "wake")
        return True

    def add(self, n: int = 1) -> None:
        """Count up by ``n`` (more work to wait for); an event already set cannot be re-armed."""
        if self._count == 0:
            raise RuntimeError(f"{self.label} is already set; reset() it to count again")
        self._count += n

    def reset(self, count: int | None = None) -> None:
        """Start again from ``count`` (default: the initial count)."""
        self._count = self.initial if count is None else count

    async def wait(self, *, timeout: float | None = None) -> bool:
        """Block (traced) until the count is zero; False if ``timeout`` seconds pass first."""
        if self._count == 0:
            return True
        return await self._wait(self._waiting, "wait", caller_where(), timeout)

    def waiters(self) -> list[str]:
        return [w.task.get_name() for w in self._waiting if not w.future.done()]

    def wakers(self, op: str) -> Wakers:
        return Wakers(
            "signalled by",
            declared=list(self.signalers),
            learned=learned(self),
            observed=self.observed(op),
        )

    def statistics(self) -> dict[str, Any]:
        return {**super().statistics(), "count": self._count, "initial": self.initial}

    def __repr__(self) -> str:
        return f"<{self.label} count={self._count}/{self.initial} waiters={len(self.waiters())}>"
