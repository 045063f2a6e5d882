"""A sync step's call in a worker thread, which keeps its slot until the thread returns.

Python cannot stop a thread. When a sync step is cancelled (its branch is cancelled, its
timeout fires, the run ends early), its branch ends at once but the call goes on in its worker
thread. flowlab does not pretend that the work stopped: **a cancelled sync step stays in flight
until its thread returns**. Until then

* it keeps its slot of the run-wide cap (``max_concurrency=`` of ``fl.run``): a leaf waiting for
  a slot waits for the thread, so the cap holds for the work really running;
* it counts among the run's live leaves (``summary()["peak_concurrency"]``);
* its row in ``result.steps`` stays open; ``finished_s`` is the time its thread returned, and its
  ``error`` says that the call ran on after the cancellation. The concurrency plot and the
  timeline draw it from that row.

Why hold the slot rather than abandon the thread and free the slot: a cap bounds the work in
flight (calls to a rate-limited API, CPU-bound work), and a thread that runs on is such work;
freeing its slot would let the cap be exceeded while the frames said it held. trio does the same
(``trio.to_thread.run_sync(abandon_on_cancel=True)`` releases its ``CapacityLimiter`` token
only when the thread finishes). Cancellation itself stays prompt: the branch ends, is recorded
``cancelled`` and is never merged at once; only the slot and the step's row wait for the thread.
A thread that never returns holds its slot until the run ends (a run ``timeout=`` or
``handle.cancel()`` still ends the run); its row is then closed at the run's end, saying that its
thread was still running. A call cancelled before its thread began never runs.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flowlab.results.records import StepRecord

__all__ = ["HeldThreads", "ThreadCall"]


class ThreadCall:
    """One call of a sync function in a worker thread, and whether that thread has returned.

    Parameters
    ----------
    loop : asyncio.AbstractEventLoop
        The run's loop: where :meth:`hold`'s callback runs.

    Examples
    --------
    >>> import asyncio
    >>> async def main() -> int:
    ...     call = ThreadCall(asyncio.get_running_loop())
    ...     return await call.run(None, lambda x: x + 1, 41)
    >>> asyncio.run(main())
    42
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.started = False  # the thread began the call
        self.returned = False  # ... and came back from it
        self._dropped = False  # cancelled before it began: it never will
        self._on_return: Callable[[], None] | None = None
        self._lock = threading.Lock()

    async def run(self, executor: Executor | None, fn: Callable[..., Any], *args: Any) -> Any:
        """Call ``fn(*args)`` in ``executor`` (in a copy of the caller's context) and await it."""
        runner = contextvars.copy_context().run
        return await self.loop.run_in_executor(executor, self._call, runner, fn, args)

    def _call(
        self, runner: Callable[..., Any], fn: Callable[..., Any], args: tuple[Any, ...]
    ) -> Any:
        with self._lock:
            if self._dropped:
                return None  # cancelled before it began (nobody awaits this result)
            self.started = True
        try:
            return runner(fn, *args)
        finally:
            with self._lock:
                self.returned = True
                callback = self._on_return
            if callback is not None:
                try:
                    self.loop.call_soon_threadsafe(callback)
                except RuntimeError:  # the loop is closed: the run is long over
                    pass

    def hold(self, callback: Callable[[], None]) -> bool:
        """After a cancellation: call ``callback`` on the loop once the thread returns.

        Returns False (and never calls ``callback``) when there is nothing to wait for: the
        thread has already returned, or had not begun (then it never will).
        """
        with self._lock:
            if not self.started:
                self._dropped = True
                return False
            if self.returned:
                return False
            self._on_return = callback
            return True

    def __repr__(self) -> str:
        state = "returned" if self.returned else "running" if self.started else "not started"
        return f"<ThreadCall {state}>"


class HeldThreads:
    """A run's cancelled sync steps whose thread still runs, and who waits for them.

    A Parallel's branch that ends while a step under it is held keeps its slot of the step's
    ``max_concurrency`` until those threads return too (:meth:`after`).
    """

    def __init__(self) -> None:
        self.records: list[StepRecord] = []
        self._waiters: list[tuple[set[int], Callable[[], None]]] = []

    def __bool__(self) -> bool:
        return bool(self.records)

    def add(self, rec: StepRecord) -> None:
        """``rec``'s step was cancelled while its thread runs on."""
        self.records.append(rec)

    def under(self, path: str, parents: Callable[[], Mapping[str, str]]) -> list[StepRecord]:
        """The held steps inside the branch at ``path``: those whose path starts with it, each
        confirmed up its branches' parents (``parents()``: branch path -> enclosing branch
        path, asked only then), since a Map's item names may hold "/" ("m:dir" holds nothing
        of "m:dir/a")."""
        prefix = path + "/"
        found = [r for r in self.records if r.path.startswith(prefix)]
        if not found:
            return found
        parent_of = parents()
        out = []
        for r in found:
            up = r.parent
            while up and up != path:
                up = parent_of.get(up, "")
            if up:
                out.append(r)
        return out

    def after(self, recs: list[StepRecord], callback: Callable[[], None]) -> None:
        """Call ``callback`` once every one of ``recs`` has returned."""
        self._waiters.append(({id(r) for r in recs}, callback))

    def returned(self, rec: StepRecord) -> list[Callable[[], None]] | None:
        """``rec``'s thread returned: forget it; return the callbacks it was the last one for
        (the caller calls them once it has closed ``rec``), or None if it was not held (the
        run has already ended and closed it)."""
        if not any(r is rec for r in self.records):
            return None
        self.records.remove(rec)
        due = []
        for waiter in list(self._waiters):
            waiter[0].discard(id(rec))
            if not waiter[0]:
                self._waiters.remove(waiter)
                due.append(waiter[1])
        return due

    def close(self) -> list[StepRecord]:
        """The run ends: the steps still held (their threads never returned), forgotten."""
        out, self.records, self._waiters = self.records, [], []
        return out
