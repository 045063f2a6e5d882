"""The few places that talk to ``distributed`` directly (imported only when a backend opens).

* :func:`start_local_cluster` — a ``LocalCluster`` configured the way the Dask backend wants it.
* :func:`connect`, :func:`start_cluster` — what :meth:`Dask.open` awaits for a run: a client to a
  scheduler, a new asynchronous ``LocalCluster``; each fails with :class:`ClusterUnavailable`.
* :func:`lost_errors` — the exceptions that mean "the cluster lost this task" (retriable).
* :func:`cancel_future` — cancel a cluster future without ever raising.
* :class:`ClusterUnavailable`, :class:`WorkerLost` — the backend's errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
from collections.abc import Iterator
from typing import Any

from flowlab.errors import ConfigError, FlowlabError

__all__ = [
    "ClusterUnavailable",
    "WorkerLost",
    "cancel_future",
    "cluster_config",
    "connect",
    "local_cluster_kwargs",
    "lost_errors",
    "start_cluster",
    "start_local_cluster",
]

#: Scheduler settings for clusters flowlab starts. ``worker-saturation=1.0``: a worker is given
#: only as many tasks as it has threads, so a worker that dies takes down only the steps it was
#: really running (Dask blames every task *assigned* to a dead worker, queued or not).
SCHEDULER_CONFIG: dict[str, Any] = {"distributed.scheduler.worker-saturation": 1.0}


def local_cluster_kwargs(
    n_workers: int, threads_per_worker: int, overrides: dict[str, Any]
) -> dict[str, Any]:
    """``LocalCluster`` arguments: worker processes on 127.0.0.1, no dashboard, and a scheduler
    that gives up on a task at the first worker death (``allowed_failures=0``), so that the
    backend's ``retries`` is the one knob for lost steps."""
    kwargs: dict[str, Any] = {
        "n_workers": n_workers,
        "threads_per_worker": threads_per_worker,
        "processes": True,
        "host": "127.0.0.1",
        "dashboard_address": None,
        "scheduler_kwargs": {"allowed_failures": 0},
    }
    kwargs.update(overrides)
    return kwargs


@contextlib.contextmanager
def cluster_config() -> Iterator[None]:
    """Dask config in force while a flowlab cluster's scheduler is made."""
    dask: Any = importlib.import_module("dask")
    with dask.config.set(SCHEDULER_CONFIG):
        yield


def start_local_cluster(*, n_workers: int = 2, threads_per_worker: int = 1, **kwargs: Any) -> Any:
    """Start (synchronously) a ``distributed.LocalCluster`` set up like the one
    ``fl.backends.Dask()`` starts for itself; close it with ``cluster.close()``.

    Use it to keep one cluster for many runs: ``Dask(address=cluster.scheduler_address)``.
    ``kwargs`` go to ``LocalCluster`` and win over the defaults.

    Examples
    --------
    >>> cluster = start_local_cluster(n_workers=2)  # doctest: +SKIP
    >>> backend = fl.backends.Dask(address=cluster.scheduler_address)  # doctest: +SKIP
    """
    distributed: Any = importlib.import_module("distributed")
    with cluster_config():
        return distributed.LocalCluster(
            **local_cluster_kwargs(n_workers, threads_per_worker, kwargs)
        )


async def connect(distributed: Any, where: Any, timeout_s: float) -> Any:
    """An asynchronous client to ``where`` (a scheduler address or a cluster), or
    :class:`ClusterUnavailable` when it does not answer within ``timeout_s``."""
    try:
        return await distributed.Client(where, asynchronous=True, timeout=timeout_s)
    except (OSError, TimeoutError) as err:
        shown = where if isinstance(where, str) else getattr(where, "scheduler_address", where)
        raise ClusterUnavailable(
            f"cannot reach the Dask scheduler at {shown!r} within "
            f"connect_timeout_s={timeout_s:g} ({type(err).__name__}: {err}). "
            "HINT: is the scheduler running, and is the address (tcp://host:8786) right?",
            cluster=str(shown),
        ) from err


async def start_cluster(
    distributed: Any,
    n_workers: int,
    threads_per_worker: int,
    overrides: dict[str, Any],
    timeout_s: float,
) -> Any:
    """A new asynchronous ``LocalCluster`` for one run (:func:`local_cluster_kwargs`), started
    within ``timeout_s``, or :class:`ClusterUnavailable` naming the arguments the user gave."""
    kwargs = local_cluster_kwargs(n_workers, threads_per_worker, overrides)
    given = {"n_workers": n_workers, "threads_per_worker": threads_per_worker}
    given.update(overrides)
    shown = "LocalCluster(" + ", ".join(f"{k}={v!r}" for k, v in given.items()) + ")"
    cluster = None
    try:
        with cluster_config():
            cluster = distributed.LocalCluster(asynchronous=True, **kwargs)
            async with asyncio.timeout(timeout_s):
                await cluster
    except Exception as err:  # TypeError for a bad argument, RuntimeError, OSError, ...
        if cluster is not None:
            with contextlib.suppress(Exception):
                await cluster.close()
        why = (
            f"did not start within connect_timeout_s={timeout_s:g}"
            if isinstance(err, TimeoutError)
            else f"failed to start ({type(err).__name__}: {err})"
        )
        raise ClusterUnavailable(
            f"the Dask {shown} flowlab starts for the run {why}. HINT: check "
            "cluster_kwargs (host, ports, memory), or start a cluster yourself and pass "
            "Dask(address=...).",
            cluster=shown,
        ) from err
    return cluster


def lost_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean the cluster lost a task: its worker died, the connection closed, or the
    cluster cancelled it (``FutureCancelledError`` — an ``asyncio.CancelledError`` subclass)."""
    from distributed import KilledWorker
    from distributed.client import FutureCancelledError
    from distributed.comm.core import CommClosedError

    return (KilledWorker, CommClosedError, FutureCancelledError)


async def cancel_future(fut: Any) -> None:
    """Cancel a cluster future; never raises (the client may be closing already)."""
    try:
        pending = fut.cancel(reason="cancelled by flowlab")
        if inspect.isawaitable(pending):
            await pending
    except Exception:
        pass


class WorkerLost(FlowlabError):
    """A leaf step was lost on the cluster (its worker died, or the cluster cancelled it), on
    every attempt ``retries`` allowed. ``__cause__`` is Dask's error (e.g. ``KilledWorker``).

    Attributes
    ----------
    step, branch : str
        The leaf step and the branch path it ran for.
    attempts : int
        How many times it was submitted.
    """

    def __init__(self, message: str, *, step: str = "", branch: str = "", attempts: int = 0):
        super().__init__(message)
        self.step = step
        self.branch = branch
        self.attempts = attempts


class ClusterUnavailable(ConfigError):
    """The run's Dask cluster could not be used: the scheduler at ``address`` did not answer
    within ``connect_timeout_s``, or the ``LocalCluster`` flowlab starts for the run failed to
    start (or did not start within ``connect_timeout_s``). The run fails before any step runs;
    ``__cause__`` is Dask's error.

    Also a :class:`~flowlab.errors.ConfigError` (an unreachable address used to raise one): the
    usual cause is a wrong address or cluster argument.

    Attributes
    ----------
    cluster : str
        The address, or the ``LocalCluster(...)`` it tried to start.
    """

    def __init__(self, message: str, *, cluster: str = "") -> None:
        super().__init__(message)
        self.cluster = cluster
