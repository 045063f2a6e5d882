"""The Lab model's instrument: counts finished branches, and lets Stop reach a sweep's runs.

:class:`~flowlab.ui.lab.model.LabModel` adds a fresh :class:`RunWatch` to the instruments of every
Run or Sweep. Its hooks run on the run's loop thread: the caller's loop for a real-clock run in a
notebook, a helper thread for a virtual-clock run inside a running loop, and a worker thread for
the runs of :func:`flowlab.compare` (a Sweep). Whatever the thread, the model hears of each
finished branch on its own loop, so a view only ever changes on that loop.

A sweep's runs are started by :func:`flowlab.compare`, not by the model: Stop cancels the one
going on through :meth:`RunWatch.stop`, and the watch cancels each later one as it starts.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from flowlab.results.recorder import Instrument
from flowlab.results.records import BranchRecord

if TYPE_CHECKING:
    from flowlab.engine.coordinator import Run

__all__ = ["RunWatch"]


class RunWatch(Instrument):
    """Reports finished branches on ``loop``, and cancels runs once Stop was asked for.

    Parameters
    ----------
    loop : asyncio.AbstractEventLoop
        The model's loop (the watch is made on it): ``on_branch`` is called there.
    on_branch : callable
        Called with the watch itself once per finished branch (so a late call from a run that is
        over can be told from the current one's).
    stopping : callable
        Whether Stop was asked for: a run that starts then is cancelled at once.

    Attributes
    ----------
    current : Run or None
        The latest run that started under this watch.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        on_branch: Callable[[RunWatch], None],
        stopping: Callable[[], bool],
    ) -> None:
        self._loop = loop
        self._thread = threading.get_ident()
        self._on_branch = on_branch
        self._stopping = stopping
        self.current: Run | None = None

    def run_started(self, total_branches: int | None) -> None:
        from flowlab.engine.coordinator import current_run

        self.current = current_run()
        if self._stopping() and self.current is not None:
            self.current.cancel()  # Stop was pressed between the runs of a sweep

    def branch_finished(self, record: BranchRecord) -> None:
        self._call(functools.partial(self._on_branch, self))

    def stop(self) -> None:
        """Cancel the current run from any thread."""
        run = self.current
        if run is None or run.loop is None or run.loop.is_closed():
            return
        try:
            run.loop.call_soon_threadsafe(run.cancel)
        except RuntimeError:  # the run's loop closed in between: nothing left to stop
            pass

    def _call(self, fn: Callable[[], None]) -> None:
        if threading.get_ident() == self._thread:
            fn()
            return
        try:
            self._loop.call_soon_threadsafe(fn)
        except RuntimeError:  # the model's loop is gone; nobody is counting any more
            pass

    def __repr__(self) -> str:
        run = "none" if self.current is None else "yes"
        return f"<RunWatch current_run={run} stopping={self._stopping()}>"
