"""Backends: where the leaf steps of branches run. Default (no backend): in this process.

A backend is any object with three methods, which the engine calls::

    async def open(run) -> None                              # at run start
    async def call(run, step, args, ctx) -> Any              # each leaf step inside a branch
    async def close(run) -> None                             # at run end, whatever happened

``call`` must run ``step.fn(*args)`` somewhere, leave what the step did to ``ctx`` in ``ctx``, and
return its output. Everything else — slots, priorities, timeouts, cancellation, usage, diffs and
merges — stays with the engine on the driver, so a backend changes *where* work runs, never *what*
a run means.

* :class:`Dask` (``flowlab/backends/dask.py``) — a Dask distributed cluster (extra ``dask``).

Modules: ``dask.py`` (the backend), ``_worker.py`` (what runs on a worker), ``_clocks.py`` (worker
clocks onto the driver's), ``_calls.py`` (the per-submission record and frame), ``_cluster.py``
(connecting, starting a LocalCluster, the errors that mean "lost", cancelling futures). Importing this
package does not import ``distributed``; :meth:`Dask.open` does.
"""

from __future__ import annotations

from flowlab.backends._cluster import ClusterUnavailable, start_local_cluster
from flowlab.backends.dask import Dask, WorkerLost

__all__ = ["ClusterUnavailable", "Dask", "WorkerLost", "start_local_cluster"]
