"""Run the leaf steps of branches on a Dask distributed cluster.

``fl.run(pipe, Ctx(), backend=fl.backends.Dask())`` keeps the whole coordination on the driver —
slots, priorities, timeouts, cancellation, the usage account, diffs and merges — and sends only the
*work* of each leaf step inside a branch to the cluster. Steps outside branches run on the driver.

How one leaf step travels
-------------------------
1. The driver dumps the branch's context (``model_dump()``) and submits the step function, its
   input, that data and the model class (cloudpickle) with ``client.submit(..., priority=p)``,
   where ``p`` is the branch's priority (higher runs first on the cluster too).
2. The worker re-validates the context, runs the step (``async def`` steps under
   ``asyncio.run``), and replies: output or exception, the dumped context, its name, its wall
   clock start/stop and the usage the step charged.
3. The driver re-validates the context and swaps it into the branch's context
   (:func:`flowlab.core.context.isolation.apply_inplace`). The merge then happens on the driver exactly as
   locally, so every strategy and field rule behaves the same.

What comes back differently
---------------------------
The context is re-validated on return, so a value the model rejects fails the branch there
(locally it would fail the merge as ``MergeValidationError``); private attributes do not travel.
The first context of each model in a run must survive ``model_validate(model_dump())``.

Recording
---------
A branch row's ``started_s`` / ``finished_s`` are when its steps really ran *on the worker*, put on
the driver's run clock (:mod:`flowlab.backends._clocks`: exact on this host, bounded by each round
trip elsewhere), and ``worker`` names the worker. ``result.extra["backend_calls"]`` has one row per
submission with the driver's times too (submitted, received) and each worker's clock offset.

Limits
------
The driver's limiters already gate every branch (``Parallel(max_concurrency=...)``) and every leaf
step (``fl.run(max_concurrency=...)``) *before* the step is submitted, and a slot is released only
after the reply arrived or the cluster future was cancelled. So at most that many of the run's
steps are queued or running on the cluster at any moment; a ``distributed.Semaphore`` would add a
round trip per step and enforce the same number. (A step cancelled while its function runs in a
worker thread cannot be stopped by Dask; its slot is freed at once and the thread finishes in the
background. Async steps are really cancelled: see :mod:`flowlab.backends._worker`.) The caps are
per run, like locally; they do not coordinate several drivers sharing one cluster.

Failures
--------
An exception raised by a step fails its branch as locally (its traceback on the worker is added as
a note). A worker that dies mid-step makes Dask raise ``KilledWorker`` (or the connection closes);
the step is then resubmitted up to ``retries`` times, after which the branch fails with
:class:`WorkerLost`. On a cluster that flowlab starts itself the scheduler gives up on a task at
the first death (``allowed_failures=0``) so that ``retries`` is the only knob, and gives each worker
only as many tasks as it has threads (``worker-saturation=1.0``), so that a death takes down
only the steps really running there; an external
scheduler first applies its own ``distributed.scheduler.allowed-failures`` (default 3).
Cancellation, timeouts and usage breaches cancel the cluster future (``future.cancel()``).

Usage
-----
``fl.charge`` works inside a step on a worker: charges are collected there and sent back with the
reply, and the driver applies them to the run's one account, in order, when the reply arrives
(so a breach is seen when the crossing step returns, and siblings are cancelled then). The worker
knows what was left of the budget at submission, so the charge that certainly crosses it raises
``UsageLimitExceeded`` on the worker at once, as locally. A sibling cancelled while running on a
worker never replies: the charges it made before being cancelled are not counted.
"""

from __future__ import annotations

import asyncio
import importlib
import time
import uuid
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flowlab.backends._calls import AttachCalls, CallRecord, calls_frame, finalize
from flowlab.backends._clocks import ClockSync
from flowlab.backends._cluster import (
    ClusterUnavailable,
    WorkerLost,
    cancel_future,
    connect,
    lost_errors,
    start_cluster,
)
from flowlab.backends._worker import (
    WorkerReply,
    WorkerTask,
    check_round_trip,
    remaining,
    run_task,
)
from flowlab.core.context.isolation import apply_inplace
from flowlab.core.numbers import is_int
from flowlab.errors import ConfigError

if TYPE_CHECKING:
    from pydantic import BaseModel

    from flowlab.core.pipeline import Step
    from flowlab.engine.coordinator import Run
    from flowlab.results.records import BranchRecord

__all__ = ["ClusterUnavailable", "Dask", "WorkerLost"]


@dataclass(eq=False)
class _RunState:
    client: Any
    sync: ClockSync
    cluster: Any = None
    owns_client: bool = False
    calls: list[CallRecord] = field(default_factory=list)
    checked: set[type] = field(default_factory=set)


class Dask:
    """Run the leaf steps of branches on a Dask distributed cluster (see the module docs).

    Parameters
    ----------
    client : distributed.Client, optional
        A client to an existing cluster. An ``asynchronous=True`` client made on the loop that
        runs flowlab is used as is; any other client (e.g. a plain ``Client()`` in a script) is
        used for its scheduler address, through a client of flowlab's own for the run. Never closed.
    address : str, optional
        A scheduler address (``"tcp://10.0.0.5:8786"``) to connect to for each run.
    retries : int, default 0
        How many times a step lost with its worker is resubmitted before the branch fails with
        :class:`WorkerLost`. Exceptions raised by the step itself are never retried.
    n_workers, threads_per_worker : int
        With neither ``client`` nor ``address``: the ``LocalCluster`` (worker processes on
        127.0.0.1, no dashboard) started for each run and closed after it.
    cluster_kwargs : dict, optional
        More ``LocalCluster`` arguments.
    connect_timeout_s : float, default 30
        Seconds to wait for the scheduler when connecting, and for the ``LocalCluster`` to
        start; past it (or when the cluster fails to start) the run fails with
        :class:`ClusterUnavailable`, naming the address or the cluster, before any step runs.

    Examples
    --------
    >>> import flowlab as fl
    >>> fl.backends.Dask(address="tcp://127.0.0.1:8786", retries=1)
    <Dask address='tcp://127.0.0.1:8786' retries=1 runs_open=0>
    """

    def __init__(
        self,
        client: Any = None,
        *,
        address: str | None = None,
        retries: int = 0,
        n_workers: int = 2,
        threads_per_worker: int = 1,
        cluster_kwargs: dict[str, Any] | None = None,
        connect_timeout_s: float = 30.0,
    ) -> None:
        if client is not None and not (hasattr(client, "submit") and hasattr(client, "scheduler")):
            raise ConfigError(
                f"client={client!r} is not valid; give a distributed.Client, or None."
            )
        if client is not None and address is not None:
            raise ConfigError(
                f"client= and address={address!r} were both given; give one of them (or neither, "
                "to start a LocalCluster for each run)."
            )
        if address is not None and (not isinstance(address, str) or not address):
            raise ConfigError(
                f"address={address!r} is not valid; give a scheduler address such as "
                "'tcp://127.0.0.1:8786', or None."
            )
        for param, value, low in (
            ("retries", retries, 0),
            ("n_workers", n_workers, 1),
            ("threads_per_worker", threads_per_worker, 1),
        ):
            if not is_int(value) or value < low:
                raise ConfigError(f"{param}={value!r} is not valid; give a whole number >= {low}.")
        if (
            isinstance(connect_timeout_s, bool)
            or not isinstance(connect_timeout_s, int | float)
            or not connect_timeout_s > 0
        ):
            raise ConfigError(
                f"connect_timeout_s={connect_timeout_s!r} is not valid; give seconds as a number > 0."
            )
        self.client = client
        self.address = address
        self.retries = retries
        self.n_workers = n_workers
        self.threads_per_worker = threads_per_worker
        self.cluster_kwargs = dict(cluster_kwargs or {})
        self.connect_timeout_s = connect_timeout_s
        self._states: dict[int, _RunState] = {}

    def __repr__(self) -> str:
        if self.client is not None:
            where = f"client={self.client!r}"
        elif self.address is not None:
            where = f"address={self.address!r}"
        else:
            where = f"LocalCluster(n_workers={self.n_workers})"
        return f"<Dask {where} retries={self.retries} runs_open={len(self._states)}>"

    # ---- run lifecycle (called by the engine) -------------------------------------------------
    async def open(self, run: Run) -> None:
        """Connect for ``run``: the given client, the address, or a new ``LocalCluster``."""
        if run.clock != "real":
            raise ConfigError(
                f"clock={run.clock!r} is not valid with backend=Dask(...): workers run on real "
                "time. Choose clock='real'."
            )
        distributed: Any = importlib.import_module("distributed")
        cluster = None
        client = self.client
        owns = True
        timeout_s = self.connect_timeout_s
        try:
            if client is not None:
                loop = getattr(getattr(client, "loop", None), "asyncio_loop", None)
                if getattr(client, "asynchronous", False) and loop is asyncio.get_running_loop():
                    owns = False
                else:
                    client = await connect(distributed, client.scheduler.address, timeout_s)
            elif self.address is not None:
                client = await connect(distributed, self.address, timeout_s)
            else:
                cluster = await start_cluster(
                    distributed, self.n_workers, self.threads_per_worker, self.cluster_kwargs,
                    timeout_s,
                )  # fmt: skip
                client = await connect(distributed, cluster, timeout_s)
        except BaseException:
            if cluster is not None:
                await cluster.close()
            raise
        state = _RunState(client, ClockSync(time.time() - run.now()), cluster, owns)
        self._states[id(run)] = state
        run.hooks.add(AttachCalls(run, state.calls))

    async def close(self, run: Run) -> None:
        """Put worker times on the run clock, then close what :meth:`open` opened."""
        state = self._states.pop(id(run), None)
        if state is None:
            return
        finalize(state.calls, state.sync, run.recorder.branches)
        if run.result is not None:  # the run was cancelled from outside: result made already
            run.result.extra["backend_calls"] = calls_frame(state.calls)
        try:
            if state.owns_client:
                await state.client.close()
            if state.cluster is not None:
                await state.cluster.close()
        except Exception as err:
            warnings.warn(
                f"closing the Dask client/cluster raised {type(err).__name__}: {err}",
                RuntimeWarning,
                stacklevel=2,
            )

    # ---- one leaf step --------------------------------------------------------------------------
    async def call(self, run: Run, step: Step, args: tuple[Any, ...], ctx: BaseModel) -> Any:
        """Run ``step`` on the cluster; apply the context it returns to ``ctx``; return its output."""
        from flowlab.engine.current import _current

        state = self._states.get(id(run))
        if state is None:
            raise ConfigError(
                "Dask.call() before Dask.open(run). HINT: pass the backend to fl.run / fl.arun "
                "(backend=fl.backends.Dask(...)); the engine opens and closes it."
            )
        cur = _current.get(None)
        brec: BranchRecord | None = cur[1] if cur is not None else None
        ctx_cls: type[BaseModel] | None = None
        ctx_data: dict[str, Any] | None = None
        if step.wants.stop == 2:  # it is given the context
            if type(ctx) not in state.checked:
                check_round_trip(ctx)
                state.checked.add(type(ctx))
            ctx_cls, ctx_data = type(ctx), ctx.model_dump()
        limits, account = run.account.limits, run.account
        task = WorkerTask(
            step.fn, step.name, "", step.is_async, -1 if step.takes_ctx else step.arity,
            args[0] if args and not step.takes_ctx else None,
            ctx_cls, ctx_data,
            remaining(limits.cost, account.cost) if limits is not None else None,
            _int_or_none(remaining(limits.tokens, account.tokens)) if limits is not None else None,
        )  # fmt: skip
        reply, rec = await self._submit(run, state, step, task, brec)
        if brec is not None:
            workers = [w for w in brec.worker.split(",") if w]
            if reply.worker not in workers:
                brec.worker = ",".join([*workers, reply.worker])
        try:
            for cost, tokens in reply.charges:
                run.charge(cost, tokens, brec)
        except BaseException as err:
            rec.status, rec.error = "failed", f"{type(err).__name__}: {err}"
            raise
        if not reply.ok:
            assert reply.error is not None
            rec.status, rec.error = "failed", f"{type(reply.error).__name__}: {reply.error}"
            raise reply.error
        if ctx_cls is not None:
            try:
                new = ctx_cls.model_validate(reply.ctx_data)
            except Exception as err:
                rec.status, rec.error = "failed", f"{type(err).__name__}: {err}"
                err.add_note(
                    f"(the context step {step.name!r} returned from Dask worker {reply.worker} "
                    "does not validate; locally this would fail the merge instead)"
                )
                raise
            apply_inplace(ctx, new)
        rec.status = "ok"
        return reply.output

    async def _submit(
        self, run: Run, state: _RunState, step: Step, task: WorkerTask, brec: BranchRecord | None
    ) -> tuple[WorkerReply, CallRecord]:
        path = brec.path if brec is not None else ""
        priority = brec.priority if brec is not None else 0.0
        lost = lost_errors()
        for attempt in range(1, self.retries + 2):
            key = f"flowlab-{step.name}-{uuid.uuid4().hex}"
            rec = CallRecord(step.name, path, attempt, key, priority, run.now(), brec)
            state.calls.append(rec)
            fut = state.client.submit(
                run_task,
                _with_key(task, key),
                key=key,
                priority=int(priority) if float(priority).is_integer() else priority,
                pure=False,
            )
            run.event("backend_submitted", step.name, path, key)
            try:
                reply: WorkerReply = await fut
            except asyncio.CancelledError as err:
                rec.received = run.now()
                if isinstance(err, lost) and not _cancelling():
                    error: BaseException = err
                else:
                    rec.status, rec.error = "cancelled", "cancelled by the driver"
                    await cancel_future(fut)
                    raise
            except lost as err:
                rec.received = run.now()
                error = err
            except BaseException as err:
                rec.received = run.now()
                rec.status, rec.error = "failed", f"{type(err).__name__}: {err}"
                await cancel_future(fut)
                raise
            else:
                rec.received = run.now()
                rec.worker, rec.address = reply.worker, reply.address
                rec.worker_started, rec.worker_finished = reply.started, reply.finished
                state.sync.observe(
                    reply.address, rec.submitted, rec.received, reply.started, reply.finished
                )
                run.event("backend_received", step.name, path, f"{key} worker={reply.worker}")
                return reply, rec
            rec.status, rec.error = "lost", f"{type(error).__name__}: {error}"
            run.event("backend_lost", step.name, path, rec.error)
        raise WorkerLost(
            f"step {step.name!r} of branch {path!r} was lost on the Dask cluster on all "
            f"{self.retries + 1} attempt(s): {type(error).__name__}: {error}. HINT: its worker "
            "died while running it (out of memory, a crash, os._exit?); "
            "fl.backends.Dask(retries=N) resubmits a lost step up to N times.",
            step=step.name,
            branch=path,
            attempts=self.retries + 1,
        ) from error


def _with_key(task: WorkerTask, key: str) -> WorkerTask:
    from dataclasses import replace

    return replace(task, key=key)


def _int_or_none(value: float | None) -> int | None:
    return None if value is None else int(value)


def _cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
