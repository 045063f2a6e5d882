"""Resource hygiene: 1,000 consecutive virtual runs in one process leak nothing.

Every run here fans out async and sync (worker-thread) branches, fails one branch on purpose
(``on_failure="ignore"``), charges usage and nests a Parallel; the runs go through ``fl.run``,
``fl.arun`` inside a running loop, and ``fl.start`` with a cancellation. Every 50th run is also
drawn (``_repr_html_``, a report, a timeline on a caller's Axes). Afterwards the process must hold
no more asyncio tasks, event loops, threads, file descriptors or matplotlib figures than after a
short warm-up.
"""

from __future__ import annotations

import asyncio
import gc
import os
import threading
import time
from typing import Annotated, Any

import pytest
from pydantic import BaseModel

import flowlab as fl
from flowlab.engine.clock import VirtualTimeLoop, run_virtual

RUNS = 1_000


class Ctx(BaseModel):
    n: Annotated[int, fl.merge.Sum()] = 0
    tags: Annotated[list[str], fl.merge.Union()] = []


def nap(seconds: float, tag: str) -> Any:
    async def step(data: Any, ctx: Ctx) -> str:
        await asyncio.sleep(seconds)
        fl.charge(cost=0.001, tokens=1)
        ctx.n += 1
        ctx.tags.append(tag)
        return tag

    return step


def blocking(data: Any, ctx: Ctx) -> str:
    time.sleep(0.0005)  # a real (tiny) block in a worker thread
    ctx.n += 10
    return "sync"


async def broken(data: Any, ctx: Ctx) -> None:
    await asyncio.sleep(0.5)
    raise RuntimeError("on purpose")


PIPE = fl.Pipeline(
    fl.Parallel(
        {
            "a": nap(1.0, "a"),
            "b": nap(2.0, "b"),
            "sync": blocking,
            "broken": broken,
            "inner": fl.Parallel({"x": nap(0.5, "x"), "y": nap(0.25, "y")}, merge="accumulate"),
        },
        merge="accumulate",
        max_concurrency=3,
        on_failure="ignore",
        name="fan",
    ),
    name="hygiene",
)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def live(kind: type) -> int:
    return sum(1 for o in gc.get_objects() if isinstance(o, kind))


def pending_tasks() -> int:
    return sum(1 for o in gc.get_objects() if isinstance(o, asyncio.Task) and not o.done())


def settled_thread_count(target: int, timeout_s: float = 5.0) -> int:
    """``threading.active_count()`` once it is back to ``target`` (or after ``timeout_s``)."""
    deadline = time.monotonic() + timeout_s
    while threading.active_count() > target and time.monotonic() < deadline:
        time.sleep(0.01)
    return threading.active_count()


def one_run(i: int) -> fl.RunResult:
    mode = i % 5
    if mode < 3:
        return fl.run(PIPE, Ctx(), clock="virtual")

    async def inside_a_loop() -> fl.RunResult:
        if mode == 3:
            return await fl.arun(PIPE, Ctx(), clock="virtual")
        handle = fl.start(PIPE, Ctx(), clock="virtual")
        asyncio.get_running_loop().call_later(0.75, handle.cancel, "b")
        result = await handle.wait()
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        assert others == [], others
        return result

    return run_virtual(inside_a_loop())


def draw(result: fl.RunResult) -> None:
    import matplotlib.pyplot as plt

    assert "<table>" in result._repr_html_()
    assert "<html" in result.to_html()
    fig, ax = plt.subplots()
    assert fl.plot.timeline(result, ax=ax) is ax
    plt.close(fig)


@pytest.mark.slow
def test_a_thousand_runs_leak_no_tasks_loops_threads_fds_or_figures() -> None:
    import matplotlib.pyplot as plt

    for i in range(20):  # warm-up: imports, lazy caches, matplotlib
        one_run(i)
    draw(one_run(0))
    gc.collect()
    base = {
        "threads": settled_thread_count(threading.active_count()),
        "fds": open_fds(),
        "loops": live(VirtualTimeLoop),
        "tasks": live(asyncio.Task),
        "figures": len(plt.get_fignums()),
    }
    assert pending_tasks() == 0

    statuses: dict[str, int] = {}
    t0 = time.perf_counter()
    for i in range(RUNS):
        result = one_run(i)
        statuses[result.status] = statuses.get(result.status, 0) + 1
        assert isinstance(result.context, Ctx)
        assert result.context.n == 13 + (0 if i % 5 == 4 else 1)  # cancelled b adds nothing
        if i % 50 == 0:
            draw(result)
    elapsed = time.perf_counter() - t0
    gc.collect()

    after = {
        "threads": settled_thread_count(base["threads"]),
        "fds": open_fds(),
        "loops": live(VirtualTimeLoop),
        "tasks": live(asyncio.Task),
        "figures": len(plt.get_fignums()),
    }
    print(f"\n{RUNS} runs in {elapsed:.2f} s; before {base}; after {after}; statuses {statuses}")
    assert statuses == {"ok": RUNS}
    assert pending_tasks() == 0
    assert after["tasks"] <= base["tasks"], (base, after)
    assert after["loops"] <= base["loops"], (base, after)
    assert after["threads"] <= base["threads"], (base, after)
    assert after["fds"] <= base["fds"], (base, after)
    assert after["figures"] == base["figures"] == 0, (base, after)


def test_explorations_and_watched_runs_leave_no_loops_or_tasks_alive() -> None:
    # Each traced loop's registry sat in a weak-key table, yet held its loop (and its blocked
    # tasks): every loop a traced program ran on stayed alive with its tasks, 24 tasks per
    # explore() of a two-lock program, and asyncio.all_tasks() slowed down for the whole
    # process (a 1 s test took 132 s after the deadlock suite).
    from flowlab import deadlock as dl

    async def crossing() -> None:
        a, b = dl.Lock(name="A"), dl.Lock(name="B")

        async def one() -> None:
            async with a:
                await asyncio.sleep(0)
                async with b:
                    pass

        async def two() -> None:
            async with b:
                await asyncio.sleep(0)
                async with a:
                    pass

        await asyncio.gather(one(), two())

    def loops_alive() -> int:
        return sum(type(o).__name__ == "ExplorerLoop" for o in gc.get_objects())

    gc.collect()
    tasks_before, loops_before = len(asyncio.tasks._all_tasks), loops_alive()
    for _ in range(3):
        found = dl.explore(crossing, max_schedules=50)
        assert found.deadlocks  # the program does deadlock: the explorer ran its schedules
        del found
        gc.collect()
    assert len(asyncio.tasks._all_tasks) <= tasks_before
    assert loops_alive() <= loops_before
