"""Real and virtual time.

A run's clock is its event loop's clock. ``clock="real"`` runs on an ordinary asyncio loop.
``clock="virtual"`` runs on a :class:`VirtualTimeLoop`: whenever every task is waiting on a timer
(``asyncio.sleep``, ``asyncio.timeout``, ``loop.call_later``), the loop jumps straight to the next
timer instead of waiting for it — trio's ``MockClock(autojump_threshold=0)`` for asyncio. A pipeline
whose branches sleep 1 s each finishes in microseconds of wall time, and its recorded timings are exact
and identical on every run.

The two clocks are objects, :data:`REAL` (:class:`RealClock`) and :data:`VIRTUAL`
(:class:`VirtualClock`), each a :class:`~flowlab.engine.protocols.Clock`: a ``name``, a
``new_loop()`` that keeps its time, and ``runs_on(loop)``, whether a run on it may use the loop
already running in the caller's thread. :func:`as_clock` is the one place a clock's name
(``clock="virtual"``) becomes the clock; the engine asks the object. A run reads its time from its
loop (``loop.time()``), which is the clock's time by construction.

Rules of virtual time
---------------------
* Time only moves when nothing is ready to run. Pure computation takes zero virtual seconds.
* Work handed to a thread (sync steps, ``asyncio.to_thread``, ``run_in_executor``) also takes zero
  virtual seconds: while such work is outstanding the loop waits for it in real time and does not jump.
  That holds for a thread whose awaiter was cancelled too, until the thread returns (a job cancelled
  before its thread began never runs).
* Real I/O still works; the loop polls it before each jump.

Examples
--------
>>> import asyncio
>>> from flowlab.engine.clock import run_virtual
>>> async def nap():
...     loop = asyncio.get_running_loop()
...     await asyncio.sleep(3600)
...     return loop.time()
>>> run_virtual(nap())
3600.0
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import selectors
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import Future as ConcurrentFuture
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from flowlab.engine.protocols import Clock
from flowlab.errors import check_one_of

__all__ = [
    "CLOCKS",
    "REAL",
    "VIRTUAL",
    "ClockName",
    "RealClock",
    "VirtualClock",
    "VirtualTimeLoop",
    "as_clock",
    "new_loop",
    "run_in_thread",
    "run_virtual",
]

T = TypeVar("T")
ClockName = Literal["real", "virtual"]
CLOCKS: tuple[str, ...] = ("real", "virtual")


class _JumpingSelector(selectors.BaseSelector):
    """Wraps the loop's selector: a wait with a finite timeout becomes a jump of virtual time."""

    def __init__(self, loop: VirtualTimeLoop, inner: selectors.BaseSelector) -> None:
        self._loop = loop
        self._inner = inner

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._inner.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.modify(fileobj, events, data)

    def get_key(self, fileobj: Any) -> selectors.SelectorKey:
        return self._inner.get_key(fileobj)

    def get_map(self) -> Any:
        return self._inner.get_map()

    def close(self) -> None:
        self._inner.close()

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is not None and timeout <= 0:
            return self._inner.select(0)
        ready = self._inner.select(0)
        if ready:
            return ready
        if self._loop.threads_in_flight > 0:
            # Work in a thread takes no virtual time: wait for it (its completion wakes the loop
            # through the self-pipe) without moving the clock.
            return self._inner.select(None if timeout is None else min(timeout, 0.05))
        if timeout is None:
            # Nothing scheduled and nothing in threads: only real I/O could wake us.
            self._loop.idle_waits += 1
            return self._inner.select(None)
        self._loop.advance(timeout)
        return []


class _FifoTimerHandle(asyncio.TimerHandle):
    """A timer that, among timers due at the same instant, fires in the order it was scheduled.

    On virtual time many timers share one instant; FIFO ties make runs read like the code.
    """

    __slots__ = ("_seq",)

    def __init__(self, seq: int, *args: Any) -> None:
        super().__init__(*args)
        self._seq = seq

    def __lt__(self, other: object) -> bool:
        mine: float = self.when()
        theirs: float = other.when()  # type: ignore[attr-defined]
        if isinstance(other, _FifoTimerHandle) and mine == theirs:
            return self._seq < other._seq
        return mine < theirs

    def __le__(self, other: object) -> bool:
        return self == other or self < other

    def __gt__(self, other: object) -> bool:
        return not self <= other

    def __ge__(self, other: object) -> bool:
        return not self < other

    def __eq__(self, other: object) -> bool:
        return self is other

    __hash__ = asyncio.TimerHandle.__hash__


class _CountedJob:
    """An executor job of a :class:`VirtualTimeLoop`, counted in ``threads_in_flight`` (time
    stands still) until its result reaches the loop, or, if its awaiter was cancelled while the
    thread ran, until the thread returns: work in a thread takes no virtual time, awaited or
    not. A job cancelled before its thread began never runs."""

    __slots__ = ("abandoned", "dropped", "func", "loop", "returned", "started")

    def __init__(self, loop: VirtualTimeLoop, func: Callable[..., Any]) -> None:
        self.loop, self.func = loop, func
        self.started = self.returned = self.abandoned = self.dropped = False

    def __call__(self, *args: Any) -> Any:
        with self.loop._count_lock:
            if self.dropped:
                return None
            self.started = True
        try:
            return self.func(*args)
        finally:
            with self.loop._count_lock:
                self.returned = True
                abandoned = self.abandoned
            if abandoned:  # counted until now: uncount it on the loop, in order
                try:
                    self.loop.call_soon_threadsafe(self.loop._thread_returned)
                except RuntimeError:  # the loop is closed
                    pass

    def awaited(self, future: asyncio.Future[Any]) -> None:
        """The loop's future is done: uncount the job, unless its thread still runs."""
        with self.loop._count_lock:
            if future.cancelled() and not self.returned:
                if self.started:
                    self.abandoned = True  # uncounted when the thread returns
                    return
                self.dropped = True
            self.loop.threads_in_flight -= 1


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock jumps to the next timer whenever the loop would otherwise wait.

    Attributes
    ----------
    threads_in_flight : int
        Executor jobs currently running (virtual time is frozen while any run).
    jumps : int
        How many times the clock jumped.
    """

    def __init__(self, start: float = 0.0) -> None:
        super().__init__()
        self._virtual_now = float(start)
        self.threads_in_flight = 0
        self.jumps = 0
        self.idle_waits = 0
        self._selector = _JumpingSelector(self, self._selector)  # type: ignore[has-type]
        self._count_lock = threading.Lock()
        self._timer_seq = itertools.count()

    def time(self) -> float:
        return self._virtual_now

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds`` (never backwards)."""
        if seconds > 0:
            self._virtual_now += seconds
            self.jumps += 1

    def call_at(  # type: ignore[override]
        self, when: float, callback: Callable[..., object], *args: Any, context: Any = None
    ) -> asyncio.TimerHandle:
        self._check_closed()  # type: ignore[attr-defined]
        timer = _FifoTimerHandle(next(self._timer_seq), when, callback, args, self, context)
        if timer._source_traceback:  # type: ignore[attr-defined]
            del timer._source_traceback[-1]  # type: ignore[attr-defined]
        heapq.heappush(self._scheduled, timer)  # type: ignore[attr-defined]
        timer._scheduled = True  # type: ignore[attr-defined]
        return timer

    def run_in_executor(  # type: ignore[override]
        self, executor: Any, func: Callable[..., T], *args: Any
    ) -> asyncio.Future[T]:
        with self._count_lock:
            self.threads_in_flight += 1
        job = _CountedJob(self, func)
        future = super().run_in_executor(executor, job, *args)
        future.add_done_callback(job.awaited)
        return future

    def _thread_returned(self) -> None:
        with self._count_lock:
            self.threads_in_flight -= 1

    def __repr__(self) -> str:
        return (
            f"<VirtualTimeLoop time={self._virtual_now:g}s jumps={self.jumps} "
            f"threads_in_flight={self.threads_in_flight} running={self.is_running()}>"
        )


@dataclass(frozen=True, slots=True)
class RealClock:
    """Real time (``clock="real"``): an ordinary asyncio loop.

    A :class:`~flowlab.engine.protocols.Clock`. A run on real time takes whatever loop is running in the caller's thread; on a
    :class:`VirtualTimeLoop` it therefore follows that loop's (virtual) time.

    Examples
    --------
    >>> from flowlab.engine.clock import REAL
    >>> loop = REAL.new_loop()
    >>> REAL.name, REAL.runs_on(loop)
    ('real', True)
    >>> loop.close()
    """

    name = "real"

    def new_loop(self) -> asyncio.AbstractEventLoop:
        """A fresh asyncio event loop."""
        return asyncio.new_event_loop()

    def runs_on(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Always ``True``: real time runs on the loop it is given."""
        return True


@dataclass(frozen=True, slots=True)
class VirtualClock:
    """Virtual time (``clock="virtual"``): a :class:`VirtualTimeLoop`.

    A :class:`~flowlab.engine.protocols.Clock`. A run on virtual time needs a virtual loop: from
    inside any other running loop (a notebook cell) it runs on a loop of its own in a helper
    thread.

    Examples
    --------
    >>> import asyncio
    >>> from flowlab.engine.clock import VIRTUAL
    >>> loop = VIRTUAL.new_loop()
    >>> plain = asyncio.new_event_loop()
    >>> VIRTUAL.runs_on(loop), VIRTUAL.runs_on(plain)
    (True, False)
    >>> loop.close(); plain.close()
    """

    name = "virtual"

    def new_loop(self) -> VirtualTimeLoop:
        """A fresh :class:`VirtualTimeLoop`, starting at 0 s."""
        return VirtualTimeLoop()

    def runs_on(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Whether ``loop`` keeps virtual time (is a :class:`VirtualTimeLoop`)."""
        return isinstance(loop, VirtualTimeLoop)


REAL = RealClock()
"""The real clock (``clock="real"``)."""
VIRTUAL = VirtualClock()
"""The virtual clock (``clock="virtual"``)."""
_BY_NAME: dict[str, Clock] = {REAL.name: REAL, VIRTUAL.name: VIRTUAL}


def as_clock(clock: str | Clock) -> Clock:
    """The clock named ``clock`` (``"real"`` or ``"virtual"``); a clock object as it is.

    The one place a clock's name becomes the clock: the engine asks the object, never the name.

    Raises
    ------
    ConfigError
        For any other value, naming the valid names.

    Examples
    --------
    >>> from flowlab.engine.clock import as_clock
    >>> as_clock("virtual")
    VirtualClock()
    """
    if isinstance(clock, str):  # first: a protocol's isinstance costs microseconds
        check_one_of("clock", clock, CLOCKS)
        return _BY_NAME[clock]
    if not isinstance(clock, Clock):
        check_one_of("clock", clock, CLOCKS)  # raises, naming the choices
    return clock


def new_loop(clock: str | Clock = "real") -> asyncio.AbstractEventLoop:
    """A fresh event loop for ``clock`` (``"real"`` or ``"virtual"``, or a clock object).

    Raises
    ------
    ConfigError
        For any other clock name.
    """
    return as_clock(clock).new_loop()


def run_virtual(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion on a fresh :class:`VirtualTimeLoop` in this thread."""
    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
        return runner.run(coro)


def run_in_thread(
    factory: Callable[[], Coroutine[Any, Any, T]],
    clock: str | Clock = "real",
    *,
    gate: threading.Event | None = None,
    grace_s: float = 0.0,
) -> ConcurrentFuture[T]:
    """Run ``factory()`` on a fresh loop for ``clock`` in a daemon thread; return its future.

    Used when a loop is already running in this thread (a notebook cell) and the work needs a loop
    of its own, such as virtual time. With a ``gate``, the work begins once the gate is set, or
    after ``grace_s`` wall seconds at the latest (:func:`flowlab.start` gives its caller that
    long to ask for cancels that must apply before anything starts).
    """
    the_clock = as_clock(clock)
    future: ConcurrentFuture[T] = ConcurrentFuture()

    def main() -> None:
        if gate is not None:
            gate.wait(grace_s)
        if not future.set_running_or_notify_cancel():
            return
        try:
            with asyncio.Runner(loop_factory=the_clock.new_loop) as runner:
                value = runner.run(factory())
        except BaseException as err:
            future.set_exception(err)
        else:
            future.set_result(value)

    threading.Thread(target=main, name=f"flowlab-{the_clock.name}-loop", daemon=True).start()
    return future


def monotonic() -> float:
    """Wall-clock seconds for measurements that must not be virtual (benchmarks, latency)."""
    return time.perf_counter()


def wall() -> float:
    """Wall-clock seconds (merge timing is real CPU time even on virtual time)."""
    return time.perf_counter()
