"""Notebook realities, each on a real ipykernel driven through jupyter_client.

* "Run All": several execute requests sent at once, each calling ``fl.run`` (real clock with tiny
  sleeps, and virtual clock) or ``await fl.arun``: every one replies ``ok``, in order.
* Interrupting the kernel in the middle of a run: ``KeyboardInterrupt`` in that cell; the next cell
  finds ``fl.last_result()`` cancelled with its branches cancelled, and a new run works.
* A sync step that blocks for ~2 s runs in a worker thread: its async siblings keep going.
* Re-running a cell that displays a Lab: every run displays a fresh widget, nothing breaks.

Every test checks its kernel's replies, stdout and errors; each takes well under 30 s.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator

import pytest
from kernel_utils import CellResult, KernelSession, kernel_session

pytestmark = [pytest.mark.kernel, pytest.mark.slow, pytest.mark.timeout(120)]

SETUP = textwrap.dedent(
    """
    import asyncio, json, time
    from typing import Annotated
    from pydantic import BaseModel
    import flowlab as fl

    class Ctx(BaseModel):
        n: Annotated[int, fl.merge.Sum()] = 0

    def nap(seconds):
        async def step(data, ctx):
            await asyncio.sleep(seconds)
            ctx.n += 1
            return seconds
        return step

    fan = fl.Pipeline(fl.Parallel({f"b{i}": nap(0.01 * (i % 3 + 1)) for i in range(6)},
                                  max_concurrency=3, name="fan"))
    print("setup done")
    """
)


def _ok(cells: list[CellResult]) -> None:
    bad = [c.describe() for c in cells if c.status != "ok"]
    assert not bad, "\n".join(bad)


@pytest.fixture(scope="module")
def kernel() -> Iterator[KernelSession]:
    with kernel_session() as session:
        setup = session.run(SETUP, timeout_s=60)
        _ok([setup])
        assert "setup done" in setup.stdout
        yield session


def test_run_all_every_queued_cell_that_runs_flowlab_replies(kernel: KernelSession) -> None:
    codes = []
    for i in range(4):
        codes.append(f"r = fl.run(fan, Ctx()); print('real {i}', r.status, r.context.n)")
        codes.append(
            f"r = fl.run(fan, Ctx(), clock='virtual'); "
            f"print('virtual {i}', r.status, r.context.n, r.summary()['makespan_s'])"
        )
    codes.append("r = await fl.arun(fan, Ctx()); print('arun', r.status, r.context.n)")
    codes.append(
        "r = await fl.arun(fan, Ctx(), clock='virtual'); print('arun virtual', r.status, r.context.n)"
    )
    cells = kernel.submit_many(codes)  # all queued before the first reply, like "Run All"
    kernel.wait(cells, timeout_s=25)
    _ok(cells)
    counts = [c.execution_count or 0 for c in cells]
    assert counts == sorted(counts) and len(set(counts)) == len(counts)
    for i in range(4):
        assert cells[2 * i].stdout.strip() == f"real {i} ok 6"
        # 6 branches, cap 3, durations 0.01/0.02/0.03 s: exactly 0.05 s of virtual time
        assert cells[2 * i + 1].stdout.strip() == f"virtual {i} ok 6 0.05"
    assert cells[-2].stdout.strip() == "arun ok 6"
    assert cells[-1].stdout.strip() == "arun virtual ok 6"
    assert not any(c.stderr for c in cells), [c.stderr for c in cells]


def test_interrupt_mid_run_cancels_branches_keeps_partial_result_next_cell_fine(
    kernel: KernelSession,
) -> None:
    _ok([kernel.run(textwrap.dedent(
        """
        async def long(data, ctx):
            print("branch running", flush=True)
            await asyncio.sleep(20)
            ctx.n += 1

        async def quick(data, ctx):
            ctx.n += 1

        slow = fl.Pipeline(fl.Parallel({"quick": quick, "a": long, "b": long, "c": long},
                                       merge="accumulate", name="slow"))
        """
    ))])  # fmt: skip
    cell = kernel.submit("t0 = time.monotonic(); fl.run(slow, Ctx())")
    kernel.wait_for_stdout(cell, "branch running", timeout_s=20)
    kernel.interrupt()
    kernel.wait([cell], timeout_s=20)
    assert cell.status == "error"
    assert cell.error_name == "RunInterrupted", cell.describe()  # a KeyboardInterrupt

    check = kernel.run(textwrap.dedent(
        """
        r = fl.last_result()
        b = r.branches.set_index("branch")
        print(json.dumps({
            "status": r.status,
            "elapsed_lt_10": time.monotonic() - t0 < 10,
            "branches": {k: str(v) for k, v in b["status"].items()},
            "n": r.context.n,
            "tasks": len([t for t in asyncio.all_tasks() if "flowlab" in t.get_name()]),
        }))
        """
    ))  # fmt: skip
    _ok([check])
    seen = json.loads(check.stdout.strip().splitlines()[-1])
    assert seen["status"] == "cancelled"
    assert seen["elapsed_lt_10"] is True
    assert seen["branches"] == {
        "quick": "ok",
        "a": "cancelled",
        "b": "cancelled",
        "c": "cancelled",
    }
    assert seen["n"] == 0  # the Parallel never merged: nothing half-applied
    assert seen["tasks"] == 0  # no branch task outlives the interrupted run

    # The same from an async cell: ipykernel cancels the cell's task, and arun cancels the run.
    cell = kernel.submit("t0 = time.monotonic(); r = await fl.arun(slow, Ctx())")
    kernel.wait_for_stdout(cell, "branch running", timeout_s=20)
    kernel.interrupt()
    kernel.wait([cell], timeout_s=20)
    assert cell.error_name == "CancelledError", cell.describe()
    assert cell.error is not None and len(cell.error["traceback"]) == 1
    check = kernel.run(
        "r = fl.last_result(); print(r.status, sorted(map(str, r.branches['status'])), "
        "r.context.n, time.monotonic() - t0 < 10)"
    )
    _ok([check])
    assert check.stdout.strip() == "cancelled ['cancelled', 'cancelled', 'cancelled', 'ok'] 0 True"

    after = kernel.submit_many([
        "r = fl.run(fan, Ctx()); print('after', r.status, r.context.n)",
        "r = await fl.arun(fan, Ctx(), clock='virtual'); print('after arun', r.status, r.context.n)",
    ])  # fmt: skip
    kernel.wait(after, timeout_s=20)
    _ok(after)
    assert after[0].stdout.strip() == "after ok 6"
    assert after[1].stdout.strip() == "after arun ok 6"


def test_a_blocking_sync_step_does_not_stall_its_async_siblings(kernel: KernelSession) -> None:
    cell = kernel.run(textwrap.dedent(
        """
        def blocker(data, ctx):
            time.sleep(2.0)   # blocks its worker thread, not the event loop
            ctx.n += 100

        par = fl.Parallel({"block": blocker, **{f"s{i}": nap(0.05 * (i + 1)) for i in range(5)}},
                          merge="accumulate", name="mixed")
        t0 = time.monotonic()
        r = fl.run(fl.Pipeline(par), Ctx())
        wall = time.monotonic() - t0
        b = r.branches.set_index("branch")
        print(json.dumps({"status": r.status, "n": r.context.n, "wall": wall,
                          "finished": {k: float(v) for k, v in b["finished_s"].items()}}))
        """
    ), timeout_s=25)  # fmt: skip
    _ok([cell])
    seen = json.loads(cell.stdout.strip().splitlines()[-1])
    assert seen["status"] == "ok"
    assert seen["n"] == 105
    finished = seen["finished"]
    block = finished.pop("block")
    assert 1.9 <= block < 4.0
    assert all(t < block for t in finished.values()), finished
    assert max(finished.values()) < 1.0  # the async siblings ran while the thread slept
    assert seen["wall"] < 4.0  # in parallel: 2 s, not 2 s + 0.75 s of serial sleeps


def test_rerunning_a_cell_that_displays_a_lab(kernel: KernelSession) -> None:
    code = textwrap.dedent(
        """
        lab = fl.Lab(fan, Ctx(), clock="virtual")
        display(lab)
        await lab.arun()
        print("lab", lab.result.status, lab.result.context.n, len(lab.history))
        """
    )
    cells = kernel.submit_many([code, code, code])  # run the same cell three times
    kernel.wait(cells, timeout_s=25)
    _ok(cells)
    model_ids = []
    for cell in cells:
        assert cell.stdout.strip() == "lab ok 6 1", cell.describe()
        views = [
            out["data"]["application/vnd.jupyter.widget-view+json"]
            for out in cell.outputs
            if "application/vnd.jupyter.widget-view+json" in out["data"]
        ]
        assert len(views) == 1, cell.describe()
        model_ids.append(views[0]["model_id"])
        assert "Traceback" not in cell.stderr, cell.stderr
    assert len(set(model_ids)) == 3  # each run displays its own, fresh panel
    again = kernel.run("lab.controls['fan'].max_concurrency.value = 1; r = await lab.arun(); "
                       "print(r.status, r.summary()['makespan_s'], len(lab.history))")  # fmt: skip
    _ok([again])
    assert again.stdout.strip() == "ok 0.12 2"  # 6 branches one at a time: 0.01+0.02+0.03, twice
