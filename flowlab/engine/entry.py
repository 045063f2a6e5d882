"""Entry points that work the same in a script, in async code and in a Jupyter cell.

* :func:`arun` — ``await fl.arun(pipe, ctx)`` in async code and notebook cells.
* :func:`run` — blocking. With no loop running it makes one. Inside a running loop (a Jupyter cell) it
  re-enters that loop through nest-asyncio2, the maintained fork of nest-asyncio (the archived
  nest-asyncio 1.6.0 drops queued cells under ipykernel 7 on "Run All").
* :func:`start` — a background run; the :class:`RunHandle` cancels branches, reports progress, and
  is awaitable.

Virtual time needs a loop of its own (:class:`~flowlab.engine.clock.VirtualTimeLoop`); when another loop is
already running, the run is executed on a virtual loop in a helper thread and awaited from the caller.
Which loop will do is the run's clock's to say (``RunOptions.timekeeper``, a
:class:`~flowlab.engine.protocols.Clock`: ``new_loop()``, ``runs_on(loop)``).

Interrupting (Ctrl-C, or the kernel's interrupt button) cancels every branch; the partial result is
kept — ``fl.last_result()`` or the raised error's ``.result`` — and the loop stays usable. An
interrupted :func:`run` raises :class:`~flowlab.errors.RunInterrupted` (a ``KeyboardInterrupt``); an
interrupted ``await fl.arun(...)`` / ``await handle`` raises the ``asyncio.CancelledError`` asyncio
needs, caused by a ``RunInterrupted``. A Jupyter cell shows either as the one line
``RunInterrupted: partial result in fl.last_result()`` instead of the frames of nest-asyncio2,
asyncio, selectors and flowlab it passed through.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Unpack

from pydantic import BaseModel

from flowlab.engine import plugins
from flowlab.engine.coordinator import Run
from flowlab.engine.handle import RunHandle, launch
from flowlab.engine.interrupts import (
    cancelled_cell,
    deliver,
    deliver_in_cell,
    reraise_interrupt,
    running_loop,
    wait_thread,
    wind_down_blocking,
)
from flowlab.engine.options import RunKwargs, RunOptions
from flowlab.engine.streaming import BranchCallback, OutcomeStream
from flowlab.results.record import RunResult
from flowlab.results.recorder import Instrument

__all__ = ["arun", "run", "start"]


def _make_run(
    pipeline: Any, ctx: BaseModel, options: RunOptions, stream: OutcomeStream | None = None
) -> Run:
    """The one place run/arun/start turn their options into a :class:`Run`: the instruments
    the options ask for (on_branch, live, progress, the handle's stream) join the user's."""
    extra: list[Instrument] = list(options.instruments)
    if options.live:
        extra.append(plugins.load("live_view")())
    if options.on_branch is not None:
        extra.append(BranchCallback(options.on_branch))
    if stream is not None:
        extra.append(stream)
    return Run(
        pipeline,
        ctx,
        options,
        instruments=_with_progress(extra, options.progress and not options.live),
    )


def run(
    pipeline: Any,
    ctx: BaseModel,
    *,
    raise_on_error: bool = True,
    **options: Unpack[RunKwargs],
) -> RunResult:
    """Run ``pipeline`` on a copy of ``ctx`` and wait for the result.

    Parameters
    ----------
    pipeline : Pipeline, Parallel, Step or callable
    ctx : pydantic.BaseModel
        The starting context. It is copied; the caller's object is never mutated.
    raise_on_error : bool, default True
        Raise the run's error (carrying ``.result``); ``False`` returns the result with its status.
    **options
        The run options, checked once by :class:`~flowlab.engine.options.RunOptions` (which
        documents each): ``input``, ``usage``, ``clock`` (``"real"`` or ``"virtual"``),
        ``max_concurrency``, ``rate``, ``timeout``, ``instruments``, ``progress``, ``record``,
        ``backend``, ``detect_deadlocks``, ``on_branch``, ``live``. An unknown keyword is a
        :class:`~flowlab.errors.ConfigError` naming the closest valid one.

    Returns
    -------
    RunResult

    Examples
    --------
    >>> import asyncio
    >>> import flowlab as fl
    >>> from pydantic import BaseModel
    >>> class Ctx(BaseModel):
    ...     n: int = 0
    >>> async def work(data, ctx):
    ...     await asyncio.sleep(1)
    ...     ctx.n += 1
    >>> pipe = fl.Pipeline(fl.Parallel({"a": work, "b": work}, merge="accumulate", max_concurrency=1))
    >>> r = fl.run(pipe, Ctx(), clock="virtual")
    >>> r.context.n, r.summary()["makespan_s"]
    (2, 2.0)
    """
    the_run = _make_run(pipeline, ctx, RunOptions.of(options, where="fl.run"))
    clock = the_run.options.timekeeper
    loop = running_loop()
    if loop is None:
        with asyncio.Runner(loop_factory=clock.new_loop) as runner:
            result = runner.run(the_run.execute())
        return deliver(result, raise_on_error)
    if not clock.runs_on(loop):
        return deliver_in_cell(wait_thread(the_run, clock), raise_on_error)
    import nest_asyncio2

    nest_asyncio2.apply(loop)
    task = loop.create_task(the_run.execute())
    try:
        result = loop.run_until_complete(task)
    except BaseException:
        # Interrupted (KeyboardInterrupt in a notebook cell): cancel every branch, keep the
        # partial result, leave the loop usable, then re-raise.
        if not task.done():
            the_run.run_reason = "interrupted"
            task.cancel()
            wind_down_blocking(loop, task, the_run)
        if the_run.result is None:
            the_run.finish("cancelled", None, None)
        reraise_interrupt(the_run)
        raise
    return deliver_in_cell(result, raise_on_error)


async def arun(
    pipeline: Any,
    ctx: BaseModel,
    *,
    raise_on_error: bool = True,
    **options: Unpack[RunKwargs],
) -> RunResult:
    """Async :func:`run`: ``result = await fl.arun(pipe, ctx)``. Same parameters."""
    the_run = _make_run(pipeline, ctx, RunOptions.of(options, where="fl.arun"))
    handle = launch(the_run)  # (no outcome stream: nobody can read it)
    try:
        result = await handle.wait()
    except asyncio.CancelledError:  # an interrupted cell: the run ends before the cell returns
        await handle.wind_down()
        err = cancelled_cell(handle.run)
        raise err from err.__cause__
    return deliver_in_cell(result, raise_on_error)


def start(
    pipeline: Any,
    ctx: BaseModel,
    **options: Unpack[RunKwargs],
) -> RunHandle:
    """Start a run in the background and return its :class:`RunHandle` at once.

    Inside a running loop the run is a task on it (virtual time: a helper thread); with no loop
    running (a plain script) it runs on its own loop in a helper thread. The handle keeps every
    branch's outcome (its output included) for :meth:`RunHandle.as_completed`, as long as the
    handle lives.
    """
    the_run = _make_run(pipeline, ctx, RunOptions.of(options, where="fl.start"), OutcomeStream())
    return launch(the_run)


def _with_progress(instruments: Sequence[Instrument], progress: bool) -> list[Instrument]:
    out = list(instruments)
    if progress:
        out.append(plugins.load("progress_bar")())
    return out
