"""Waiting for a :class:`~flowlab.core.rate.Rate` on the run's loop: one timer, a heap of waiters.

:class:`RateGate` is the run-wide rate (``fl.run(rate=...)``): every leaf step awaits
:meth:`RateGate.acquire` before it runs. Waiters queue in a heap by their branch's place in the
tree (priority, then declared order, as the run-wide cap orders them), then first come first
served; one timer, armed for the instant the next start conforms, lets them through. A Parallel's
own ``rate=`` needs no waiters: its queue of branch records asks the state synchronously and arms a
timer of its own (see :mod:`flowlab.engine.parallel`).

A gate never holds anything while it waits and always lets a start through eventually (a rate only
delays), so it cannot close a wait cycle.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from typing import Any

from flowlab.core.rate import RateState

__all__ = ["RateGate"]

WaitListener = Callable[[float, float, int], None]  # (time, seconds held, in flight)


class RateGate:
    """Starts through a :class:`~flowlab.core.rate.RateState`, in order, on one event loop.

    Parameters
    ----------
    state : RateState
    now : callable
        Seconds since the run started (the run's clock).
    t0 : float
        The loop time at which the run started (``now() == loop.time() - t0``).
    on_wait : callable, optional
        ``on_wait(time, seconds, in_flight)`` each time the gate closes with starts waiting
        (``in_flight``: what ``in_flight()`` says then).
    in_flight : callable, optional
        How much runs now (for the wait rows).
    """

    def __init__(
        self,
        state: RateState,
        now: Callable[[], float],
        t0: float,
        on_wait: WaitListener | None = None,
        in_flight: Callable[[], int] = lambda: 0,
    ) -> None:
        self.state = state
        self._now = now
        self._t0 = t0
        self._on_wait = on_wait
        self._in_flight = in_flight
        self._waiters: list[tuple[tuple[Any, ...], int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._timer: asyncio.Handle | None = None

    @property
    def waiting(self) -> int:
        """Starts waiting for the rate."""
        return sum(1 for *_, f in self._waiters if not f.done())

    async def acquire(self, order: tuple[Any, ...] = ()) -> None:
        """Wait until a start conforms to the rate, then count it."""
        t = self._now()
        if not self._waiters and self.state.delay(t) == 0.0:
            self.state.take(t)
            return
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        heapq.heappush(self._waiters, (order, next(self._seq), future))
        self._arm(loop)
        await future  # cancelled while waiting: the heap skips it (its future is done)

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._timer is not None:
            return
        t = self._now()
        delay = self.state.delay(t)
        if delay == 0.0:
            self._timer = loop.call_soon(self._fire)
            return
        self.state.note_wait(delay)
        if self._on_wait is not None:
            self._on_wait(t, delay, self._in_flight())
        self._timer = loop.call_at(self._t0 + t + delay, self._fire)

    def _fire(self) -> None:
        self._timer = None
        waiters = self._waiters
        while waiters:
            if waiters[0][2].done():  # its caller was cancelled
                heapq.heappop(waiters)
                continue
            t = self._now()
            if self.state.delay(t) > 0.0:
                break
            self.state.take(t)
            heapq.heappop(waiters)[2].set_result(None)
        if waiters:
            self._arm(asyncio.get_running_loop())

    def close(self) -> None:
        """Drop the timer (the run ended)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def __repr__(self) -> str:
        return f"<RateGate {self.state!r} waiting={self.waiting}>"
