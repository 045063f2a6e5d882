"""Concurrency limiters: ``Fixed``, ``Adaptive``, ``AIMD`` and their per-run :class:`LimiterState`.

A *limiter* is configuration: it is validated once when built (``Fixed(4)``, ``AIMD(1, 16, 0.5)``)
and makes fresh per-run state with :meth:`Limiter.new_state`, so one Parallel can be run many times
(``Adaptive`` keeps its load readings in an :class:`AdaptiveState`); ``state.statistics()`` is a
frozen :class:`~flowlab.core.limiter_stats.LimiterStatistics`.

Why this cannot deadlock
------------------------
Each :class:`LimiterState` is "a sack of tokens" owned by the single event-loop thread. ``acquire``
either takes a token at once or parks a future in a heap ordered by (priority, order, arrival);
``release`` hands the token to the best waiter on the next loop turn. No lock is ever held while awaiting something else, and
a token is only ever held by code that is actively running a branch (never by a parent waiting for
its own children: the run-wide cap is taken by *leaf* steps only). With no hold-and-wait there is no
cycle, hence no deadlock.
(The usage budget, :mod:`flowlab.core.usage`, takes a lock only around arithmetic.)

Examples
--------
>>> from flowlab.core.limits import Fixed
>>> lim = Fixed(2)
>>> state = lim.new_state()
>>> state
<Fixed limit=2 in_flight=0 waiting=0 peak=0>
"""

from __future__ import annotations

import asyncio
import heapq
import math
from collections.abc import Callable
from typing import Any

from flowlab.core.limiter_stats import LimiterStatistics
from flowlab.core.numbers import check_int, is_int, is_number
from flowlab.errors import BookkeepingError, ConfigError

__all__ = ["AIMD", "Adaptive", "AdaptiveState", "Fixed", "Limiter", "LimiterState", "as_limiter"]

LimitListener = Callable[[int, int], None]  # (new_limit, in_flight)


def _check_limit(limiter: Any, limit: Any) -> int:
    """A limiter's limit must be a whole number >= 1 (0 would never let a branch run)."""
    if not is_int(limit) or limit < 1:
        raise ConfigError(
            f"{type(limiter).__name__}: limit={limit!r} is not valid; a limiter's limit must be "
            "an integer >= 1 (see Limiter.initial / on_acquire / on_release)."
        )
    return limit


_NO_CAP = "None for no cap"
_SETTLE_HOPS = 16  # loop turns a freed token may wait for the loop to be quiet (LimiterState)


class Limiter:
    """Base class: a validated concurrency policy that makes fresh :class:`LimiterState` per run."""

    name = "limiter"

    def initial(self) -> int:
        """The limit a fresh state starts with."""
        raise NotImplementedError

    def new_state(self, on_change: LimitListener | None = None) -> LimiterState:
        """Fresh, unshared state for one run of one step (a policy that keeps state of its own
        returns a subclass, as :class:`Adaptive` its :class:`AdaptiveState`)."""
        return LimiterState(self, on_change)

    def on_release(self, state: LimiterState, latency_s: float, ok: bool) -> int | None:
        """Return a new limit after a branch finishes, or ``None`` to keep it."""
        return None

    def on_acquire(self, state: LimiterState, now: float) -> int | None:
        """Return a new limit before granting a slot, or ``None`` to keep it."""
        return None


class Fixed(Limiter):
    """At most ``limit`` in flight.

    Parameters
    ----------
    limit : int
        Slots, >= 1.
    """

    name = "fixed"

    def __init__(self, limit: int) -> None:
        self.limit = check_int("max_concurrency", limit, otherwise=_NO_CAP)

    def initial(self) -> int:
        return self.limit

    def __repr__(self) -> str:
        return f"Fixed({self.limit})"


class Adaptive(Limiter):
    """Moves the limit between ``min`` and ``max`` toward a CPU (and memory) target.

    Before granting a slot, at most once per ``interval_s`` of the run's clock, the machine load is
    read (``psutil.cpu_percent`` / ``virtual_memory``, or the injected ``reader``): above the target
    the limit drops by one, well below it (< 90 % of target) the limit grows by one.

    Parameters
    ----------
    min, max : int
        Bounds of the limit; it starts at ``min``.
    target_cpu : float, default 0.8
        Target CPU load as a fraction.
    target_memory : float, default 0.9
        Memory fraction above which the limit always drops.
    interval_s : float, default 0.5
        Minimum seconds between readings.
    reader : callable, optional
        ``reader() -> (cpu_fraction, memory_fraction)``; defaults to psutil. Inject a series in tests.
    """

    name = "adaptive"

    def __init__(
        self,
        min: int = 1,
        max: int = 8,
        target_cpu: float = 0.8,
        *,
        target_memory: float = 0.9,
        interval_s: float = 0.5,
        reader: Callable[[], tuple[float, float]] | None = None,
    ) -> None:
        self.min = check_int("min", min, otherwise=_NO_CAP)
        self.max = check_int("max", max, otherwise=_NO_CAP)
        if self.max < self.min:
            raise ConfigError(f"max={max!r} is not valid; it must be >= min={min!r}.")
        for param, v in (("target_cpu", target_cpu), ("target_memory", target_memory)):
            if not is_number(v) or not 0 < v <= 1:
                raise ConfigError(f"{param}={v!r} is not valid; give a fraction in (0, 1].")
        if not isinstance(interval_s, int | float) or interval_s < 0 or math.isnan(interval_s):
            raise ConfigError(f"interval_s={interval_s!r} is not valid; give seconds >= 0.")
        self.target_cpu = float(target_cpu)
        self.target_memory = float(target_memory)
        self.interval_s = float(interval_s)
        self.reader = reader

    def initial(self) -> int:
        return self.min

    def new_state(self, on_change: LimitListener | None = None) -> AdaptiveState:
        return AdaptiveState(self, on_change)

    def _read(self) -> tuple[float, float]:
        if self.reader is not None:
            value = self.reader()
            try:
                cpu, mem = value
                if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
                    raise TypeError
            except (TypeError, ValueError):
                who = getattr(self.reader, "__qualname__", repr(self.reader))
                raise ConfigError(
                    f"reader={who} returned {value!r}; an Adaptive reader must return "
                    "(cpu_fraction, memory_fraction), two numbers such as (0.5, 0.3)."
                ) from None
            return float(cpu), float(mem)
        import psutil

        return psutil.cpu_percent(interval=None) / 100.0, psutil.virtual_memory().percent / 100.0

    def on_acquire(self, state: LimiterState, now: float) -> int | None:
        assert isinstance(state, AdaptiveState)  # made by new_state
        last = state.last_read_s
        if last is not None and now - last < self.interval_s:
            return None
        state.last_read_s = now
        state.cpu, state.memory = cpu, mem = self._read()
        if cpu > self.target_cpu or mem > self.target_memory:
            return max(self.min, state.limit - 1)
        if cpu < 0.9 * self.target_cpu:
            return min(self.max, state.limit + 1)
        return None

    def __repr__(self) -> str:
        return f"Adaptive(min={self.min}, max={self.max}, target_cpu={self.target_cpu:g})"


class AIMD(Limiter):
    """Additive increase, multiplicative decrease on latency (after Netflix's concurrency-limits).

    A branch that finishes within ``latency_target_s`` adds ``increase`` to the limit; a slow or
    failed one multiplies it by ``backoff``. The limit stays within ``[min, max]`` and starts at ``min``.
    """

    name = "aimd"

    def __init__(
        self,
        min: int = 1,
        max: int = 16,
        latency_target_s: float = 1.0,
        *,
        increase: int = 1,
        backoff: float = 0.5,
    ) -> None:
        self.min = check_int("min", min, otherwise=_NO_CAP)
        self.max = check_int("max", max, otherwise=_NO_CAP)
        if self.max < self.min:
            raise ConfigError(f"max={max!r} is not valid; it must be >= min={min!r}.")
        if not isinstance(latency_target_s, int | float) or not latency_target_s > 0:
            raise ConfigError(
                f"latency_target_s={latency_target_s!r} is not valid; give seconds > 0."
            )
        if not isinstance(backoff, int | float) or not 0 < backoff < 1:
            raise ConfigError(f"backoff={backoff!r} is not valid; give a fraction in (0, 1).")
        self.latency_target_s = float(latency_target_s)
        self.increase = check_int("increase", increase, otherwise=_NO_CAP)
        self.backoff = float(backoff)

    def initial(self) -> int:
        return self.min

    def on_release(self, state: LimiterState, latency_s: float, ok: bool) -> int | None:
        if not ok or latency_s > self.latency_target_s:
            return max(self.min, int(state.limit * self.backoff))
        return min(self.max, state.limit + self.increase)

    def __repr__(self) -> str:
        return f"AIMD(min={self.min}, max={self.max}, latency_target_s={self.latency_target_s:g})"


class LimiterState:
    """Per-run state of a limiter: a sack of ``limit`` tokens and a priority queue of waiters."""

    def __init__(self, limiter: Limiter, on_change: LimitListener | None = None) -> None:
        self.limiter = limiter
        self.limit = _check_limit(limiter, limiter.initial())
        self.in_flight = 0
        self.peak = 0
        self.granted = 0
        self.moves = 0
        self._waiters: list[tuple[float, tuple[Any, ...], int, asyncio.Future[None]]] = []
        self._seq = 0
        self._wake_pending = False
        self.queued = 0  # set by an owner that queues callers itself (flowlab.engine.parallel)
        self._on_change = on_change
        # A policy is asked only about what it overrides (Fixed: neither): a slot taken and
        # given back once per branch costs no hook calls that could only answer None.
        policy = type(limiter)
        self._asks_acquire = policy.on_acquire is not Limiter.on_acquire
        self._asks_release = policy.on_release is not Limiter.on_release

    @property
    def waiting(self) -> int:
        """Callers waiting for a token (in ``acquire``, or in the owner's own queue)."""
        return self.queued + sum(1 for *_, f in self._waiters if not f.done())

    def _set_limit(self, new: int | None) -> None:
        if new is None or new == self.limit:
            return
        self.limit = new
        self.moves += 1
        if self._on_change is not None:
            self._on_change(new, self.in_flight)

    def _take(self) -> None:
        n = self.in_flight = self.in_flight + 1
        self.granted += 1
        if n > self.peak:
            self.peak = n

    def try_acquire(self, now: float = 0.0) -> bool:
        """Take a token at once if one is free; never waits (the caller queues for itself)."""
        if self._asks_acquire:
            self._set_limit(self.limiter.on_acquire(self, now))
        if self.in_flight < self.limit and not self._waiters:
            self._take()
            return True
        return False

    async def acquire(
        self, priority: float = 0.0, now: float = 0.0, *, order: tuple[Any, ...] = ()
    ) -> None:
        """Wait for a token; higher ``priority`` first, then smaller ``order`` (where the caller
        sits among its equals, e.g. its branch's declared position), then first come first
        served."""
        if self._asks_acquire:
            self._set_limit(self.limiter.on_acquire(self, now))
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._seq += 1
        heapq.heappush(self._waiters, (-priority, order, self._seq, future))
        if self.in_flight < self.limit and not self._wake_pending:
            # Grant once the loop is quiet, not now: branches that queue in the same instant are
            # then all in the heap, so the first slots go by priority, not by who asked first.
            self._wake_pending = True
            loop.call_soon(self._settle, 0)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release(0.0, True, adapt=False)  # granted just as we were cancelled
            raise

    def release(self, latency_s: float = 0.0, ok: bool = True, *, adapt: bool = True) -> None:
        """Return a token (and let the policy adapt the limit) and wake the best waiter.

        Raises
        ------
        BookkeepingError
            No token is out: a release without its acquire would make ``in_flight`` negative
            and let one branch too many run.
        """
        if self.in_flight <= 0:
            raise BookkeepingError(
                f"{self!r}: release() without a matching acquire (no token is out); the "
                "limiter's count is left as it was."
            )
        self.in_flight -= 1
        if adapt and self._asks_release:
            self._set_limit(self.limiter.on_release(self, latency_s, ok))
        if self._waiters and not self._wake_pending:
            # Grant once the loop is quiet, not now: the releasing caller's next request (a
            # branch's next step, or the leaves of its next Parallel, a few task hops away) is
            # then in the heap too, and competes by priority and order.
            self._wake_pending = True
            asyncio.get_running_loop().call_soon(self._settle, 0)

    def _settle(self, hops: int) -> None:
        """Grant free tokens once nothing else is ready to run on the loop (everything that will
        ask at this instant has asked), or after ``_SETTLE_HOPS`` loop turns at the most."""
        loop = asyncio.get_running_loop()
        if hops < _SETTLE_HOPS and getattr(loop, "_ready", None):  # asyncio's ready queue
            loop.call_soon(self._settle, hops + 1)
            return
        self._wake()

    def _wake(self) -> None:
        self._wake_pending = False
        while self._waiters and self.in_flight < self.limit:
            *_, future = heapq.heappop(self._waiters)
            if future.done():
                continue
            self._take()
            future.set_result(None)

    def statistics(self) -> LimiterStatistics:
        """A frozen snapshot: limit, in_flight, waiting, peak, granted, moves."""
        return LimiterStatistics(
            limiter=self.limiter.name, limit=self.limit, in_flight=self.in_flight,
            waiting=self.waiting, peak=self.peak, granted=self.granted, moves=self.moves,
        )  # fmt: skip

    def __repr__(self) -> str:
        return (
            f"<{type(self.limiter).__name__} limit={self.limit} in_flight={self.in_flight} "
            f"waiting={self.waiting} peak={self.peak}>"
        )


class AdaptiveState(LimiterState):
    """Per-run state of :class:`Adaptive`: a :class:`LimiterState` and the last load reading.

    Attributes
    ----------
    last_read_s : float or None
        When the load was last read (the run's clock), ``None`` before the first reading.
    cpu, memory : float or None
        The last reading, as fractions.
    """

    def __init__(self, limiter: Adaptive, on_change: LimitListener | None = None) -> None:
        super().__init__(limiter, on_change)
        self.last_read_s: float | None = None
        self.cpu: float | None = None
        self.memory: float | None = None


def as_limiter(value: int | Limiter | None, *, param: str = "max_concurrency") -> Limiter | None:
    """``None`` -> no cap, an int -> :class:`Fixed`, a :class:`Limiter` as is (its starting limit
    checked: a whole number >= 1)."""
    if value is None:
        return None
    if type(value).__name__ == "Rate":
        raise ConfigError(
            f"{param}={value!r} is not valid: a Rate limits starts per unit of time, not how many "
            f"run at once. HINT: pass it as rate={value!r} (and a cap, if any, as {param}=)."
        )
    if isinstance(value, Limiter):
        _check_limit(value, value.initial())
        return value
    if not is_int(value) or value < 1:
        raise ConfigError(
            f"{param}={value!r} is not valid; give an integer >= 1, a fl.limits "
            "Fixed/Adaptive/AIMD/Keyed limiter, or None for no cap."
        )
    return Fixed(value)
