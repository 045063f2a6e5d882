"""The explorer and the detector tell the truth after ``fl.run`` ran inside a running loop.

``fl.run`` in a notebook cell applies nest_asyncio2, which rebinds ``asyncio.Task`` to the Python
implementation for the rest of the process. The explorer used to stop seeing task steps then,
and reported a program with a reachable deadlock as clean after exploring 10,000 schedules.
Each check runs in a fresh interpreter: the patch cannot be undone in this one.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.slow

_SCRIPT = textwrap.dedent(
    """
    import asyncio
    from pydantic import BaseModel
    import flowlab as fl
    import flowlab.deadlock as dl

    class Ctx(BaseModel):
        n: int = 0

    async def step(data, ctx):
        await asyncio.sleep(0.001)

    async def cell():  # what a notebook cell is: a running loop, and fl.run inside it
        fl.run(fl.Parallel({"a": step}), Ctx())

    asyncio.run(cell())
    assert asyncio.Task is asyncio.tasks._PyTask  # the patch is in place
    found = dl.explore(dl.transfers, strategy="random", seed=0, stop_on_first=True)
    print(found.first_failure.status if found.first_failure else "none")
    report = dl.run("dining_philosophers")
    print(type(report).__name__, report.deadlocked)
    """
)


def test_a_buggy_program_is_still_found_buggy_after_fl_run_in_a_running_loop() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.split()
    assert lines[0] == "deadlock"  # (it said "none" after 10,000 schedules)
    assert lines[1:] == ["DeadlockReport", "True"]
