"""What the engine expects of the parts plugged into it, as typing protocols.

* :class:`Backend` — where the leaf steps of branches run (``backend=``; e.g.
  ``fl.backends.Dask``). The engine calls ``open`` at run start, ``call`` for each leaf step inside
  a branch, ``close`` at run end whatever happened; everything else (slots, priorities, timeouts,
  cancellation, usage, diffs, merges) stays with the engine, so a backend changes *where* work
  runs, never *what* a run means.
* :class:`Clock` — the time a run keeps (``clock="real"`` / ``"virtual"``): a name, a fresh loop
  that keeps that time, and whether a loop already running will do. The two clocks are in
  :mod:`flowlab.engine.clock`.
* :class:`Observer` — an instrument: :class:`~flowlab.results.recorder.Instrument` subclasses
  override the hooks they need; any object with some of its hook methods also works, and hears
  just those (:mod:`flowlab.engine.instruments`).

The engine imports no backend: it knows them only through :class:`Backend`.

Examples
--------
>>> from flowlab.engine.protocols import Backend
>>> class Here:
...     async def open(self, run): ...
...     async def call(self, run, step, args, ctx): return step.fn(*args)
...     async def close(self, run): ...
>>> isinstance(Here(), Backend)
True
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import asyncio

    from pydantic import BaseModel

    from flowlab.core.step import Step
    from flowlab.engine.coordinator import Run
    from flowlab.results.records import BranchRecord

__all__ = ["Backend", "Clock", "Observer"]


@runtime_checkable
class Backend(Protocol):
    """Where leaf steps run: ``open`` / ``call`` / ``close`` (``open`` and ``close`` optional)."""

    async def call(self, run: Run, step: Step, args: tuple[Any, ...], ctx: BaseModel) -> Any:
        """Run ``step.fn(*args)`` somewhere, leave what it did to ``ctx`` in ``ctx``, return its
        output."""


@runtime_checkable
class Clock(Protocol):
    """The time a run keeps, as the engine asks for it (after ``trio.abc.Clock``).

    A run reads its time from its event loop (``loop.time()``), so a clock is the loops it makes
    and accepts; ``clock="real"`` and ``"virtual"`` name :data:`~flowlab.engine.clock.REAL` and
    :data:`~flowlab.engine.clock.VIRTUAL` (:func:`~flowlab.engine.clock.as_clock` maps them).

    Attributes
    ----------
    name : str
        What ``clock=`` takes and ``result.clock`` says: ``"real"`` or ``"virtual"``.

    Examples
    --------
    >>> from flowlab.engine.clock import REAL, VIRTUAL
    >>> from flowlab.engine.protocols import Clock
    >>> isinstance(REAL, Clock), isinstance(VIRTUAL, Clock)
    (True, True)
    """

    name: str

    def new_loop(self) -> asyncio.AbstractEventLoop:
        """A fresh event loop that keeps this clock's time (a run with no loop running uses it,
        and so does the helper thread of a run whose caller's loop will not do)."""

    def runs_on(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Whether a run on this clock may use ``loop``, the loop running in the caller's
        thread; if not, the run gets a :meth:`new_loop` of its own in a helper thread."""


@runtime_checkable
class Observer(Protocol):
    """The least an instrument has: the hook most of them want (the others are optional)."""

    def branch_finished(self, record: BranchRecord) -> None:
        """A branch ended: ok, failed, cancelled or timeout."""
