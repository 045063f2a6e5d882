"""Figure 9: peak memory and bytes kept per recorded branch, at 100k branches.

Each number comes from a fresh subprocess (``python -m bench.memory --child MODE N``), so nothing
the suite did before skews it. The pipeline (N no-op branches, cap 64) and the context are built
first; ``rss0`` is taken after a collection; then the run:

* ``flowlab`` — ``fl.run(..., record=True)``; peak RSS (``ru_maxrss``) minus ``rss0`` is the run's
  peak, and RSS after the run (result still held, after a collection) minus ``rss0`` is kept.
* ``flowlab-trace`` — the same under ``tracemalloc`` (started after the pipeline was built): the
  bytes freed when the ``RunResult`` is dropped (and collected), divided by N, are the **bytes per
  recorded branch** (exact Python allocations: records, event log, diffs, the result). What stays
  allocated after that (e.g. asyncio's process-wide task set, whose table grew to hold N tasks and
  does not shrink) is shown apart.
* ``raw`` — the ``asyncio.TaskGroup`` + ``Semaphore(64)`` baseline: its peak, for the ratio.
"""

from __future__ import annotations

import gc
import json
import os
import resource
import subprocess
import sys
from typing import Any

from bench._core import Figure, Settings

__all__ = ["memory"]

MODES = ("raw", "flowlab", "flowlab-trace")


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _child(mode: str, n: int) -> dict[str, Any]:
    import tracemalloc

    import flowlab as fl
    from bench._core import forget_last_result
    from bench.workloads import SmallCtx, fanout, run_raw

    pipe = fanout(n, cap=64) if mode != "raw" else None
    ctx = SmallCtx()
    gc.collect()
    rss0 = _rss()
    if mode == "flowlab-trace":
        tracemalloc.start()
    result = None
    if pipe is not None:
        result = fl.run(pipe, ctx)
    else:
        run_raw(n, 64)
    gc.collect()
    out: dict[str, Any] = {"rss0": rss0, "rss1": _rss()}
    out["peak"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if result is not None:
        out["branches"] = len(result.recorder.branches)
        out["events"] = len(result.recorder.events)
    if mode == "flowlab-trace":
        with_result = tracemalloc.get_traced_memory()[0]
        del result
        forget_last_result()
        gc.collect()
        left = tracemalloc.get_traced_memory()[0]
        out["retained"] = with_result - left
        out["left"] = left
        tracemalloc.stop()
    return out


def _spawn(mode: str, n: int) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.memory", "--child", mode, str(n)],
        capture_output=True,
        text=True,
        check=False,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    if proc.returncode != 0:
        raise RuntimeError(f"memory child {mode} failed:\n{proc.stderr[-2000:]}")
    data: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return data


def memory(settings: Settings) -> Figure:
    """Figure 9."""
    n = settings.pick(5_000, 100_000)
    k = f"{n // 1000}k"
    fig = Figure("memory", 9, f"Memory at {k} recorded branches (fresh subprocesses)")
    raw, flow, trace = (_spawn(m, n) for m in MODES)
    mb = 1 / 2**20
    raw_peak = raw["peak"] - raw["rss0"]
    flow_peak = flow["peak"] - flow["rss0"]
    fig.add("peak_mb", flow["peak"] * mb, "MB", f"flowlab peak RSS of the process, N={k}")
    fig.add("run_peak_mb", flow_peak * mb, "MB", "  run's peak above the built pipeline")
    fig.add("baseline_peak_mb", raw_peak * mb, "MB", "  raw TaskGroup run's peak above start")
    fig.add("peak_ratio", flow_peak / max(raw_peak, 1), "x", "  flowlab / raw, run peak")
    per = trace["retained"] / n
    label = f"kept per recorded branch (tracemalloc), N={k}"
    short = f"kept per recorded branch, N={k} (target: 100k)"
    if n == 100_000:
        fig.add(
            "bytes_per_branch", per, "B/branch", label, target="< 1 KB", check=lambda v: v < 1024
        )
    else:
        fig.add("bytes_per_branch", per, "B/branch", short)
    fig.add(
        "left_per_branch",
        trace["left"] / n,
        "B/branch",
        "  still allocated after the result is gone",
    )
    fig.add(
        "rss_kept_per_branch",
        (flow["rss1"] - flow["rss0"]) / n,
        "B/branch",
        "  RSS kept per branch",
    )
    fig.notes.append(
        f"{flow['branches']} branch records, {flow['events']} events; the pipeline itself "
        "(N Step objects) is built before the baseline reading and not counted"
    )
    return fig


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        print(json.dumps(_child(sys.argv[2], int(sys.argv[3]))))
    else:
        sys.exit("usage: python -m bench.memory --child {raw,flowlab,flowlab-trace} N")
