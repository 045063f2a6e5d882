"""Branch outcomes as they happen: ``handle.as_completed()`` and ``fl.run(on_branch=...)``.

Both are instruments (see :class:`~flowlab.results.recorder.Instrument`) on the ``branch_result`` hook, which
the engine calls as each branch ends, with its output and the exception that ended it.

* :class:`OutcomeStream` keeps every :class:`Outcome` of a run in completion order and hands them to
  any number of ``async for`` readers, on any event loop (a run on virtual time inside a notebook
  runs in a helper thread; its reader awaits on the notebook's loop). A reader that starts late
  gets the earlier outcomes first. Every reader ends when the run ends, however it ends.
* :class:`BranchCallback` calls ``on_branch(outcome)`` on the run's loop thread. A callback that
  raises is disabled like any instrument: a ``RuntimeWarning`` names it and the error, and the
  run's event log gets an ``instrument_disabled`` row (``result.events``); the run goes on.

Examples
--------
>>> import asyncio
>>> import flowlab as fl
>>> from pydantic import BaseModel
>>> class Ctx(BaseModel):
...     pass
>>> def nap(seconds):
...     async def step(data, ctx):
...         await asyncio.sleep(seconds)
...         return seconds
...     return step
>>> pipe = fl.Parallel({"slow": nap(2), "fast": nap(1)}, name="fan")
>>> async def main():
...     handle = fl.start(pipe, Ctx(), clock="virtual")
...     return [(o.branch, o.output) async for o in handle.as_completed()]
>>> from flowlab.engine.clock import run_virtual
>>> run_virtual(main())
[('fast', 1), ('slow', 2)]
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from flowlab.errors import ConfigError
from flowlab.results.recorder import Instrument
from flowlab.results.records import BranchRecord

__all__ = ["BranchCallback", "Outcome", "OutcomeStream", "check_on_branch"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one branch ended.

    Attributes
    ----------
    path : str
        The branch's path (``"fan:a"``; nested: ``"outer:x/inner:a"``).
    branch : str
        The branch name.
    step : str
        The Parallel's name.
    status : str
        ``"ok"``, ``"failed"``, ``"cancelled"`` or ``"timeout"``.
    output : Any
        What the branch returned (``None`` unless ``status == "ok"``).
    error : BaseException or None
        The exception that ended a failed or timed-out branch.
    reason : str
        Why a branch was cancelled or timed out (as in ``result.branches``).
    finished_s : float
        When it ended, in seconds from the run's start.
    """

    path: str
    branch: str
    step: str
    status: str
    output: Any
    error: BaseException | None
    reason: str
    finished_s: float

    @classmethod
    def of(cls, record: BranchRecord, output: Any, error: BaseException | None) -> Outcome:
        """The outcome of a finished branch record."""
        return cls(
            record.path, record.branch, record.step, record.status, output, error,
            record.reason, record.finished,
        )  # fmt: skip


class OutcomeStream(Instrument):
    """Every branch outcome of one run, in completion order, for ``async for`` readers."""

    def __init__(self) -> None:
        self.outcomes: list[Outcome] = []
        self.done = False
        self._lock = threading.Lock()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def branch_result(self, record: BranchRecord, output: Any, error: BaseException | None) -> None:
        with self._lock:
            self.outcomes.append(Outcome.of(record, output, error))
        self._wake()

    def run_finished(self, status: str) -> None:
        self.close()

    def close(self) -> None:
        """End every reader (the run ended). Safe from any thread; idempotent."""
        with self._lock:
            self.done = True
        self._wake()

    def _wake(self) -> None:
        with self._lock:
            waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            try:
                same = asyncio.get_running_loop() is loop
            except RuntimeError:
                same = False
            if same:
                _resolve(future)
            elif not loop.is_closed():
                loop.call_soon_threadsafe(_resolve, future)

    async def __aiter__(self) -> AsyncIterator[Outcome]:
        i = 0
        loop = asyncio.get_running_loop()
        while True:
            with self._lock:
                ready = self.outcomes[i:]
                done = self.done
                future: asyncio.Future[None] | None = None
                if not ready and not done:
                    future = loop.create_future()
                    self._waiters.append((loop, future))
            for outcome in ready:
                i += 1
                yield outcome
            if ready:
                continue
            if future is None:
                return
            await future

    def __repr__(self) -> str:
        return f"<OutcomeStream outcomes={len(self.outcomes)} done={self.done}>"


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class BranchCallback(Instrument):
    """Calls ``fn(outcome)`` as each branch ends (see :func:`flowlab.run`'s ``on_branch``)."""

    def __init__(self, fn: Callable[[Outcome], Any]) -> None:
        self.fn = fn

    def branch_result(self, record: BranchRecord, output: Any, error: BaseException | None) -> None:
        self.fn(Outcome.of(record, output, error))

    def __repr__(self) -> str:
        return f"<on_branch {getattr(self.fn, '__qualname__', self.fn)!r}>"


def check_on_branch(fn: Any) -> Callable[[Outcome], Any] | None:
    """``fn`` if it is ``None`` or a plain callable; :class:`ConfigError` otherwise."""
    if fn is None:
        return None
    if not callable(fn):
        raise ConfigError(
            f"on_branch={fn!r} is not valid; give a callable outcome -> None (it gets a "
            "fl.streaming.Outcome: .path .branch .status .output .error), or None."
        )
    if inspect.iscoroutinefunction(fn):
        raise ConfigError(
            f"on_branch={getattr(fn, '__qualname__', fn)!r} is an async function; on_branch is "
            "called synchronously on the run's loop as each branch ends. HINT: in async code, "
            "`async for outcome in fl.start(...).as_completed(): ...` instead."
        )
    return fn  # type: ignore[no-any-return]
