"""fl.run inside a running event loop (a Jupyter cell), fl.arun, fl.start from a script."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import BaseModel

import flowlab as fl


class Ctx(BaseModel):
    n: int = 0


async def step(data, ctx: Ctx):
    await asyncio.sleep(0.01)
    ctx.n += 1
    return data


PIPE = fl.Parallel({"a": step, "b": step}, merge="accumulate")


def test_run_blocking_inside_a_running_loop_real_clock() -> None:
    async def cell() -> fl.RunResult:
        # What a notebook cell does: call the blocking API while the kernel's loop runs.
        return fl.run(PIPE, Ctx(), input=1)

    result = asyncio.run(cell())
    assert result.context.n == 2
    assert result.output == {"a": 1, "b": 1}


def test_run_virtual_inside_a_running_real_loop_uses_its_own_loop() -> None:
    async def slow(data, ctx: Ctx):
        await asyncio.sleep(3600)
        ctx.n += 1

    async def cell() -> tuple[fl.RunResult, fl.RunResult]:
        first = fl.run(
            fl.Parallel({"a": slow, "b": slow}, merge="accumulate"), Ctx(), clock="virtual"
        )
        second = await fl.arun(fl.Parallel({"a": slow}, merge="accumulate"), Ctx(), clock="virtual")
        return first, second

    first, second = asyncio.run(cell())
    assert first.makespan_s == 3600.0
    assert first.context.n == 2
    assert second.makespan_s == 3600.0


def test_several_runs_in_one_loop_one_after_another() -> None:
    async def cell() -> list[int]:
        return [fl.run(PIPE, Ctx()).context.n for _ in range(3)] + [
            (await fl.arun(PIPE, Ctx())).context.n
        ]

    assert asyncio.run(cell()) == [2, 2, 2, 2]


def test_start_from_a_plain_script_runs_in_a_background_thread() -> None:
    handle = fl.start(PIPE, Ctx(), clock="virtual")
    result = handle.result(timeout=30)
    assert handle.done()
    assert result.context.n == 2
    assert "done" in repr(handle)


def test_arun_raises_with_partial_result() -> None:
    def bad(data, ctx):
        raise KeyError("missing")

    async def cell() -> None:
        await fl.arun(fl.Parallel({"ok": step, "bad": bad}), Ctx())

    with pytest.raises(fl.BranchFailed) as info:
        asyncio.run(cell())
    assert info.value.result is not None
    assert info.value.result.status == "failed"


def test_bad_clock_name() -> None:
    with pytest.raises(fl.ConfigError, match=r"clock='wall'.*'real', 'virtual'"):
        fl.run(PIPE, Ctx(), clock="wall")


def test_a_signal_handler_callback_reaches_a_sleeping_real_clock_run() -> None:
    """ipykernel interrupts an ``await`` cell from a SIGINT handler with ``call_soon``, which does
    not wake a loop asleep in ``select``; a real-clock run wakes its loop now and then, so the
    interrupt is seen long before the branch's 30 s sleep ends."""
    import os
    import signal
    import threading

    async def long(data, ctx: Ctx) -> None:
        await asyncio.sleep(30)

    async def cell() -> tuple[fl.RunResult, float]:
        loop = asyncio.get_running_loop()
        earlier = fl.last_result()
        task = asyncio.ensure_future(fl.arun(fl.Parallel({"a": long, "b": long}), Ctx()))
        # like ipykernel's handle_sigint: a plain call_soon from inside the signal handler
        previous = signal.signal(signal.SIGUSR1, lambda *_: loop.call_soon(task.cancel))
        try:
            # from another thread, so the signal lands while the loop sleeps in select
            threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGUSR1)).start()
            t0 = loop.time()
            with pytest.raises(asyncio.CancelledError):
                await task
            waited = loop.time() - t0
        finally:
            signal.signal(signal.SIGUSR1, previous)
        for _ in range(100):  # arun re-raises at once; the run winds down right after
            if fl.last_result() is not earlier:
                break
            await asyncio.sleep(0.01)
        result = fl.last_result()
        assert result is not None and result is not earlier
        return result, waited

    result, waited = asyncio.run(cell())
    assert waited < 15  # seen at a wake-up (0.1 s), not when the 30 s sleep ends
    assert result.status == "cancelled"
    assert set(result.branches["status"]) == {"cancelled"}
