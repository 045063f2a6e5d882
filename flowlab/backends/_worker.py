"""What runs on a Dask worker: rebuild the context, run one leaf step, send back what it did.

The driver sends a :class:`WorkerTask` (the step function, its input, the context as
``model_dump()`` data plus the model class) and gets back a :class:`WorkerReply`. The reply always
comes back, also when the step raised: the exception travels inside it, together with the usage the
step charged before raising, so that no charge is lost to an error.

This module imports neither pandas nor distributed at import time; workers import it by reference
(``flowlab.backends._worker.run_task``), so flowlab must be installed on every worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import math
import pickle
import time
import traceback
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, cast

from pydantic import BaseModel

from flowlab.core.context.isolation import same
from flowlab.errors import ConfigError, UsageLimitExceeded

__all__ = ["WorkerReply", "WorkerTask", "check_round_trip", "run_task"]

#: How often an async step on a worker checks whether its Dask task was cancelled (seconds).
CANCEL_POLL_S = 0.05


@dataclass(frozen=True, slots=True)
class WorkerTask:
    """Everything one leaf step needs on a worker (pickled with cloudpickle by Dask)."""

    fn: Callable[..., Any]
    step: str
    key: str
    is_async: bool
    arity: int  # how many of (data, ctx) the step takes; -1: the context alone
    data: Any
    ctx_cls: type[BaseModel] | None
    ctx_data: dict[str, Any] | None
    budget_cost: float | None = None
    budget_tokens: int | None = None


@dataclass(slots=True)
class WorkerReply:
    """What the worker sends back. Times are the worker's wall clock (``time.time()``)."""

    ok: bool
    output: Any
    error: BaseException | None
    ctx_data: dict[str, Any] | None
    worker: str
    address: str
    started: float
    finished: float
    charges: list[tuple[float, int]] = field(default_factory=list)


class WorkerAccount:
    """Stands in for the driver's run while a step runs on a worker: it collects ``fl.charge``.

    The driver's usage account lives in another process, so charges are kept here and sent back
    with the reply; the driver applies them, in order, when the reply arrives. ``budget_*`` is what
    was left of the run's limits when the step was submitted: charges beyond it will certainly
    cross the limit (the account only grows), so the charge that gets there raises
    :class:`~flowlab.errors.UsageLimitExceeded` at once, as it would locally.
    """

    def __init__(self, budget_cost: float | None, budget_tokens: int | None) -> None:
        self.budget_cost = budget_cost
        self.budget_tokens = budget_tokens
        self.charges: list[tuple[float, int]] = []
        self.cost = 0.0
        self.tokens = 0

    def charge(self, cost: float, tokens: int, brec: object = None) -> None:
        """Record one charge (called by :func:`flowlab.charge` on the worker)."""
        self.charges.append((cost, tokens))
        self.cost = round(self.cost + cost, 12)
        self.tokens += tokens
        which = ""
        if self.budget_cost is not None and self.cost > self.budget_cost + 1e-12:
            which = "cost"
        elif self.budget_tokens is not None and self.tokens > self.budget_tokens:
            which = "tokens"
        if which:
            raise UsageLimitExceeded(
                f"usage limit exceeded on a Dask worker: this step charged {which} "
                f"{self.cost if which == 'cost' else self.tokens:g}, more than the "
                f"{getattr(self, 'budget_' + which):g} left when it was submitted.",
                limit=which,
            )


def _worker_identity() -> tuple[str, str, Any]:
    """``(name, address, worker)`` of the Dask worker running this task, or local stand-ins."""
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return "local", "", None
    address = str(worker.address)
    name = worker.name
    return (str(name) if name is not None and name != address else address), address, worker


async def _watch_cancel(coro: Coroutine[Any, Any, Any], key: str, worker: Any) -> Any:
    """Run ``coro``; cancel it as soon as Dask marks task ``key`` cancelled on this worker.

    Dask cannot stop a function that is running in a worker thread; it only drops its result. An
    async step, though, runs on its own event loop here, so it can be cancelled for real.
    """
    task = asyncio.ensure_future(coro)
    while True:
        done, _ = await asyncio.wait({task}, timeout=CANCEL_POLL_S)
        if done:
            return task.result()
        ts = worker.state.tasks.get(key) if worker is not None else None
        if worker is not None and (ts is None or ts.state == "cancelled"):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            raise asyncio.CancelledError(f"Dask task {key!r} was cancelled")


def _portable(err: BaseException) -> BaseException:
    """``err`` if it pickles, else a RuntimeError that tells what it was."""
    try:
        pickle.loads(pickle.dumps(err))
    except Exception:
        plain = RuntimeError(
            f"{type(err).__name__}: {err} (the original exception does not pickle)"
        )
        for note in getattr(err, "__notes__", []):
            plain.add_note(note)
        return plain
    return err


def _call_step(task: WorkerTask, worker: Any) -> tuple[Any, BaseModel | None]:
    ctx = None
    if task.ctx_cls is not None:
        ctx = task.ctx_cls.model_validate(task.ctx_data)
    args: tuple[Any, ...] = (ctx,) if task.arity < 0 else (task.data, ctx)[: task.arity]
    if task.is_async:
        out = asyncio.run(_watch_cancel(task.fn(*args), task.key, worker))
    else:
        out = task.fn(*args)
        if inspect.iscoroutine(out):
            out.close()
            raise ConfigError(
                f"step {task.step!r} returned a coroutine object instead of a value. "
                "HINT: `await` the coroutine inside the step (return await other(data)), "
                "or make the step `async def`."
            )
    return out, ctx


def run_task(task: WorkerTask) -> WorkerReply:
    """Run one leaf step on this worker (the function Dask executes).

    The step runs in a fresh :mod:`contextvars` context in which :func:`flowlab.charge` reaches a
    :class:`WorkerAccount`; nothing leaks into the worker thread's next task.
    """
    from flowlab.engine.current import _current

    name, address, worker = _worker_identity()
    account = WorkerAccount(task.budget_cost, task.budget_tokens)

    def body() -> tuple[Any, BaseModel | None]:
        _current.set(cast(Any, (account, None)))
        return _call_step(task, worker)

    started = time.time()
    try:
        out, ctx = contextvars.Context().run(body)
    except BaseException as err:
        finished = time.time()
        if not isinstance(err, Exception | asyncio.CancelledError):
            raise
        err.add_note(
            f"(raised on Dask worker {name} [{address}]; worker traceback:)\n"
            + "".join(traceback.format_exception(err)).rstrip()
        )
        return WorkerReply(
            False, None, _portable(err), None, name, address, started, finished, account.charges
        )
    finished = time.time()
    data = ctx.model_dump() if ctx is not None else None
    return WorkerReply(True, out, None, data, name, address, started, finished, account.charges)


def remaining(limit: float | None, used: float) -> float | None:
    """What is left of ``limit`` after ``used`` (``None``: no limit)."""
    if limit is None or math.isinf(limit):
        return None
    return max(0.0, limit - used)


def check_round_trip(ctx: BaseModel) -> None:
    """Raise :class:`ConfigError` unless ``ctx`` survives ``model_validate(model_dump())``.

    The backend checks the first context of each model in a run: a field that changes on the way
    (a model inside ``Any`` comes back as a dict, a lossy serializer) would show up as a change
    made by every branch.
    """
    cls = type(ctx)
    try:
        back = cls.model_validate(ctx.model_dump())
    except Exception as err:
        raise ConfigError(
            f"ctx of type {cls.__name__} cannot travel to a Dask worker: "
            f"{cls.__name__}.model_validate(ctx.model_dump()) fails ({type(err).__name__}: "
            f"{err}). HINT: make the context round-trip, or run it without backend=."
        ) from err
    changed = [n for n in cls.model_fields if not same(ctx.__dict__[n], back.__dict__[n])]
    if changed:
        raise ConfigError(
            f"ctx of type {cls.__name__} cannot travel to a Dask worker: field(s) "
            f"{', '.join(changed)} change under model_validate(model_dump()). HINT: use "
            "plain data types (or serializers that round-trip) for the context's fields."
        )
