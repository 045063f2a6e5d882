"""The watchdog: a group blocked on untraced things is reported after ``idle_s``, never proven.

Real-clock tests use bounds of a tenth of a second; the rest run on virtual time, where the
watchdog's samples are timers and an untraced hang is reported at once in wall time.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import pytest

import flowlab.deadlock as dl
from flowlab.engine.clock import new_loop, run_virtual
from flowlab.errors import ConfigError


def run_real(coro: object) -> object:
    with asyncio.Runner(loop_factory=lambda: new_loop("real")) as runner:
        return runner.run(coro)  # type: ignore[arg-type]


async def _plain_barrier(idle_s: float | None) -> list[object]:
    barrier = asyncio.Barrier(3)  # untraced: the detector cannot prove anything

    async def runner() -> None:
        await barrier.wait()

    return await dl.watch(runner(), runner(), names=["r1", "r2"], idle_s=idle_s)


def test_real_clock_untraced_barrier_is_reported_after_the_idle_bound() -> None:
    start = time.perf_counter()
    with pytest.raises(dl.HangSuspected) as info:
        run_real(_plain_barrier(0.1))
    took = time.perf_counter() - start
    assert 0.1 <= took < 1.0
    err = info.value
    assert not isinstance(err, dl.DeadlockDetected)
    report = err.report
    assert [t.task for t in report.tasks] == ["r1", "r2"] and report.clock == "real"
    assert report.idle_s == 0.1 and report.at >= 0.1
    stack = report.tasks[0].stack
    assert stack[0].endswith("in runner: await barrier.wait()")  # the user's line first ...
    assert any(f.startswith("locks.py") and " in wait" in f for f in stack[1:])  # asyncio
    text = str(err)
    assert text.startswith("No deadlock proven, but nothing in the group moved for 0.1 s")
    assert "task r1 awaits <Future pending" in text


def test_virtual_clock_untraced_event_is_reported_at_once_in_wall_time() -> None:
    async def main() -> None:
        ready = asyncio.Event()

        async def waiter() -> None:
            await asyncio.sleep(1)
            await ready.wait()

        await dl.watch(waiter(), idle_s=2)

    start = time.perf_counter()
    with pytest.raises(dl.HangSuspected) as info:
        run_virtual(main())
    assert time.perf_counter() - start < 0.5
    report = info.value.report
    assert report.clock == "virtual" and 3.0 <= report.at <= 3.5 + 1e-9  # idle from t=1 on


def test_the_group_is_cancelled_and_the_loop_stays_usable() -> None:
    async def main() -> tuple[str, int]:
        try:
            await _plain_barrier(0.5)
        except dl.HangSuspected:
            outcome = "hang"
        else:
            outcome = "ok"
        return outcome, len(asyncio.all_tasks()) - 1

    assert run_virtual(main()) == ("hang", 0)


def test_traced_waits_are_named_in_the_hang_report() -> None:
    async def main() -> None:
        traced = dl.Event(name="go")  # no setters declared: not provably stuck
        plain = asyncio.Event()

        async def a() -> None:
            await traced.wait()

        async def b() -> None:
            await plain.wait()

        await dl.watch(a(), b(), idle_s=1)

    with pytest.raises(dl.HangSuspected) as info:
        run_virtual(main())
    awaiting = {t.task: t.awaiting for t in info.value.report.tasks}
    assert awaiting["a"].startswith("Event 'go' (wait, traced, at test_watchdog.py:")
    assert awaiting["b"].startswith("<Future pending")


def test_sleeping_tasks_are_never_idle() -> None:
    async def main() -> list[object]:
        async def slow() -> str:
            await asyncio.sleep(100)
            return "done"

        return await dl.watch(slow(), idle_s=1)

    assert run_virtual(main()) == ["done"]


def test_a_wait_under_a_deadline_ends_by_its_deadline_not_the_watchdog() -> None:
    async def main() -> list[object]:
        never = asyncio.Event()

        async def patient() -> str:
            try:
                await asyncio.wait_for(never.wait(), 30)
            except TimeoutError:
                return "timed out"
            return "set"

        return await dl.watch(patient(), idle_s=1)

    assert run_virtual(main()) == ["timed out"]


def test_work_in_a_thread_is_not_idle_on_the_real_clock() -> None:
    async def main() -> list[object]:
        async def threaded() -> str:
            await asyncio.to_thread(time.sleep, 0.3)
            return "done"

        return await dl.watch(threaded(), idle_s=0.05)

    assert run_real(main()) == ["done"]


def test_a_socket_that_may_still_deliver_is_not_idle() -> None:
    left, right = socket.socketpair()
    left.setblocking(False)

    async def main() -> list[object]:
        async def reader() -> bytes:
            return await asyncio.get_running_loop().sock_recv(left, 10)

        timer = threading.Timer(0.3, lambda: right.send(b"hi"))
        timer.start()
        try:
            return await dl.watch(reader(), idle_s=0.05)
        finally:
            timer.join()

    try:
        assert run_real(main()) == [b"hi"]
    finally:
        left.close()
        right.close()


def test_idle_s_none_waits_as_before_and_bad_values_are_config_errors() -> None:
    async def main() -> str:
        try:
            await asyncio.wait_for(_plain_barrier(None), 60)
        except TimeoutError:
            return "still waiting at t=60"
        return "returned"

    assert run_virtual(main()) == "still waiting at t=60"
    with pytest.raises(ConfigError, match="idle_s=0 is not valid"):
        run_virtual(dl.watch(asyncio.sleep(0), idle_s=0))


def test_a_proven_deadlock_is_still_a_deadlock_not_a_hang() -> None:
    report = dl.run("lock_order")
    assert isinstance(report, dl.DeadlockReport) and report.deadlocked


def test_the_explorer_still_calls_an_untraced_total_block_a_deadlock() -> None:
    async def fn() -> None:
        barrier = asyncio.Barrier(2)
        await dl.watch(barrier.wait())

    found = dl.explore(fn, max_schedules=5)
    assert found.first_failure is not None and found.first_failure.status == "deadlock"
    assert found.first_failure.report is not None
    assert found.first_failure.report.kind == "untraced"


def test_an_open_stream_may_still_deliver_but_a_foreign_descriptor_does_not() -> None:
    async def main() -> tuple[list[object], str]:
        loop = asyncio.get_running_loop()
        left, right = socket.socketpair()
        foreign_r, foreign_w = socket.socketpair()
        loop.add_reader(foreign_r, lambda: None)  # like a Jupyter kernel's ZMQ socket
        try:
            reader, writer = await asyncio.open_connection(sock=left)

            async def read() -> bytes:
                return await reader.read(2)

            timer = threading.Timer(0.3, lambda: right.send(b"ok"))
            timer.start()
            got = await dl.watch(read(), idle_s=0.05)  # a slow answer on a stream: no alarm
            timer.join()
            writer.close()
            try:
                await _plain_barrier(0.1)  # the foreign reader does not hide a hang
            except dl.HangSuspected:
                verdict = "hang reported"
            else:
                verdict = "no report"
            return got, verdict
        finally:
            loop.remove_reader(foreign_r)
            for s in (right, foreign_r, foreign_w):
                s.close()

    assert run_real(main()) == ([b"ok"], "hang reported")
