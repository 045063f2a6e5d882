"""Figure 11: CPU-bound branches on a 2-worker Dask cluster vs local worker threads (the GIL).

200 branches of ~50 ms of pure-Python work each (``--quick``: 40). Locally, sync steps run in
worker threads and take turns on the GIL; with ``backend=fl.backends.Dask(...)`` each leaf step runs
in one of two worker *processes* of a ``LocalCluster`` started here on 127.0.0.1. The figure is the
wall-time ratio threads / Dask (above 1: Dask is faster), best of two rounds each. It lives here, not
in a unit test: it is a speed claim, and it depends on the machine being otherwise idle.
"""

from __future__ import annotations

import math
import time
from typing import Any

from pydantic import BaseModel

from bench._core import Figure, Settings

__all__ = ["dask_gil"]


class _Ctx(BaseModel):
    n: int = 0


def burn(n: int) -> int:
    """Pure-Python busy work (holds the GIL)."""
    x = 0
    for i in range(n):
        x += i * i % 7
    return x


def _calibrate(seconds: float) -> int:
    n, best = 100_000, math.inf
    for _ in range(3):
        t = time.perf_counter()
        burn(n)
        best = min(best, time.perf_counter() - t)
    return max(1, int(n * seconds / best))


def dask_gil(settings: Settings) -> Figure:
    """Figure 11."""
    fig = Figure("dask", 11, "CPU-bound branches: local threads vs a 2-worker Dask cluster")
    try:
        import distributed  # noqa: F401
    except ImportError:
        fig.skipped = "skipped: dask[distributed] is not installed (pip install -e '.[dask]')"
        return fig
    import sys

    import cloudpickle  # type: ignore[import-untyped]

    import flowlab as fl
    from flowlab.backends import start_local_cluster

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers need not import bench

    branches = settings.pick(40, 200)
    n = _calibrate(0.05)
    pipe = fl.Parallel({f"b{i}": burn for i in range(branches)}, merge="no_merge", name="cpu")
    cluster: Any = start_local_cluster(n_workers=2)
    try:
        backend = fl.backends.Dask(address=cluster.scheduler_address)
        fl.run(fl.Parallel({"a": burn, "b": burn}), _Ctx(), input=1, backend=backend)  # warm up
        local_s = dask_s = math.inf
        workers: set[str] = set()
        for _ in range(2):
            t = time.perf_counter()
            fl.run(pipe, _Ctx(), input=n)
            local_s = min(local_s, time.perf_counter() - t)
            t = time.perf_counter()
            remote = fl.run(pipe, _Ctx(), input=n, backend=backend)
            dask_s = min(dask_s, time.perf_counter() - t)
            workers |= set(remote.branches["worker"])
    finally:
        cluster.close()
    fig.add("threads_s", local_s, "s", f"{branches} x 50 ms, local worker threads (wall)")
    fig.add("dask_s", dask_s, "s", f"{branches} x 50 ms, Dask LocalCluster, 2 processes (wall)")
    fig.add("workers", float(len(workers)), "", "distinct workers used")
    fig.add(
        "ratio", local_s / dask_s, "x", "threads / Dask (> 1: Dask beats the GIL)",
        target="> 1", check=lambda v: v > 1,
    )  # fmt: skip
    return fig
