"""What an interrupted run shows in a real Jupyter kernel: one line, no internal frames.

Without care, interrupting ``fl.run`` in a cell prints some 30 lines of traceback through
nest_asyncio2, asyncio and selectors (or concurrent.futures and threading, for a virtual-clock run
on its helper thread), and an interrupted ``await fl.arun`` / ``await handle`` prints the frames of
flowlab's waits ending in a bare ``CancelledError``. The cell should say what happened and where
the partial result is: ``RunInterrupted: partial result in fl.last_result()``. ``fl.run`` raises a
:class:`~flowlab.RunInterrupted` (a ``KeyboardInterrupt``); an ``await`` raises the
``CancelledError`` asyncio needs, caused by one and shown as the same line.

One kernel serves the whole module: every interrupt is followed by a check that the run was
cancelled (its partial result in ``fl.last_result()``) and, at the end, that the kernel still runs.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator

import pytest
from kernel_utils import CellResult, KernelSession, kernel_session

pytestmark = [pytest.mark.kernel, pytest.mark.slow, pytest.mark.timeout(180)]

SETUP = textwrap.dedent(
    """
    import asyncio, threading, time
    from pydantic import BaseModel
    import flowlab as fl

    class Ctx(BaseModel):
        n: int = 0

    async def quick(data, ctx):
        ctx.n += 1

    async def long(data, ctx):
        print("branch running", flush=True)
        await asyncio.sleep(20)

    def sync_long(data, ctx):  # blocks its worker thread: the virtual clock cannot skip it
        print("branch running", flush=True)
        time.sleep(3)

    slow = fl.Pipeline(fl.Parallel({"quick": quick, "a": long, "b": long}, name="slow"))
    blocking = fl.Pipeline(fl.Parallel({"quick": quick, "a": sync_long}, name="blocking"))
    print("setup done")
    """
)
LINE = "RunInterrupted: partial result in fl.last_result()"
SLOW = "['cancelled', 'cancelled', 'ok']"
BLOCKING = "['cancelled', 'ok']"


@pytest.fixture(scope="module")
def kernel() -> Iterator[KernelSession]:
    with kernel_session() as session:
        setup = session.run(SETUP, timeout_s=60)
        assert setup.status == "ok" and "setup done" in setup.stdout, setup.describe()
        yield session


def _interrupt(kernel: KernelSession, code: str) -> CellResult:
    cell = kernel.submit(code)
    kernel.wait_for_stdout(cell, "branch running", timeout_s=20)
    kernel.interrupt()
    kernel.wait([cell], timeout_s=30)
    return cell


def _check_partial(kernel: KernelSession, statuses: str) -> None:
    check = kernel.run(
        "r = fl.last_result(); print(r.status, sorted(map(str, r.branches['status'])))"
    )
    assert check.status == "ok", check.describe()
    assert check.stdout.strip() == f"cancelled {statuses}"


@pytest.mark.parametrize(
    ("code", "ename", "statuses", "rounds"),
    [
        # on the cell's own loop; the interrupt lands in the selector or in a step's print
        ("fl.run(slow, Ctx())", "RunInterrupted", SLOW, 3),
        ("fl.run(blocking, Ctx(), clock='virtual')", "RunInterrupted", BLOCKING, 1),  # thread
        # ipykernel cancels an ``await`` cell's task: asyncio's CancelledError, one line too
        ("r = await fl.arun(slow, Ctx())", "CancelledError", SLOW, 2),
        ("handle = fl.start(slow, Ctx()); r = await handle", "CancelledError", SLOW, 1),
        # the run on a helper thread is cancelled, not left to finish while the cell waits
        ("r = await fl.arun(blocking, Ctx(), clock='virtual')", "CancelledError", BLOCKING, 1),
        ("r = await fl.start(blocking, Ctx(), clock='virtual')", "CancelledError", BLOCKING, 1),
    ],
)
def test_an_interrupted_run_is_one_line_naming_the_partial_result(
    kernel: KernelSession, code: str, ename: str, statuses: str, rounds: int
) -> None:
    for _ in range(rounds):
        cell = _interrupt(kernel, code)
        assert cell.status == "error", cell.describe()
        assert cell.error is not None
        assert cell.error_name == ename
        assert cell.error["evalue"] == LINE.removeprefix("RunInterrupted: ")
        assert cell.error["traceback"] == [LINE]  # no frames of nest_asyncio2, selectors, flowlab
        _check_partial(kernel, statuses)
    after = kernel.run("print(fl.run(fl.Pipeline(quick), Ctx()).context.n)")
    assert after.status == "ok" and after.stdout.strip() == "1", after.describe()


def test_what_an_interrupt_raises_is_caught_as_python_code_expects(kernel: KernelSession) -> None:
    # fl.run: a KeyboardInterrupt carrying the result; an await: a CancelledError caused by one
    cell = kernel.submit(
        textwrap.dedent(
            """
            try:
                fl.run(slow, Ctx())
            except KeyboardInterrupt as err:
                print("caught", type(err).__name__, err.result is fl.last_result(), flush=True)
            """
        )
    )
    kernel.wait_for_stdout(cell, "branch running", timeout_s=20)
    kernel.interrupt()
    kernel.wait([cell], timeout_s=30)
    assert cell.status == "ok", cell.describe()
    assert cell.stdout.strip().splitlines()[-1] == "caught RunInterrupted True"
    cell = kernel.submit(
        textwrap.dedent(
            """
            try:
                await fl.arun(slow, Ctx())
            except asyncio.CancelledError as err:
                cause = err.__cause__
                print("caught", type(cause).__name__, cause.result is fl.last_result(), flush=True)
            """
        )
    )
    kernel.wait_for_stdout(cell, "branch running", timeout_s=20)
    kernel.interrupt()
    kernel.wait([cell], timeout_s=30)
    assert cell.status == "ok", cell.describe()
    assert cell.stdout.strip().splitlines()[-1] == "caught RunInterrupted True"


@pytest.mark.parametrize("call", ["fl.run(fl.Pipeline(stop), Ctx())", "await fl.arun(stop, Ctx())"])
def test_a_keyboard_interrupt_raised_by_a_step_is_one_line_too_and_kept_whole(
    kernel: KernelSession, call: str
) -> None:
    cell = kernel.run(
        textwrap.dedent(
            """
            def stop(data, ctx):
                raise KeyboardInterrupt("stopped by the step")

            """
        )
        + call
    )
    assert cell.error is not None and cell.error_name == "RunInterrupted", cell.describe()
    line = "RunInterrupted: stopped by the step; partial result in fl.last_result()"
    assert cell.error["traceback"] == [line]
    check = kernel.run(
        "import traceback; e = fl.last_result().error; "
        "print(repr(e), 'in stop' in ''.join(traceback.format_exception(e)))"
    )
    assert check.stdout.strip() == "KeyboardInterrupt('stopped by the step') True"
