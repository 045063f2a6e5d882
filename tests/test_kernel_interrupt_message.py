"""What an interrupted ``fl.run`` shows in a real Jupyter kernel: one line, no internal frames.

Without care, interrupting ``fl.run`` in a cell prints some 30 lines of traceback through
nest_asyncio2, asyncio and selectors (or concurrent.futures and threading, for a virtual-clock run
on its helper thread). The cell should say what happened and where the partial result is, and stay
a ``KeyboardInterrupt`` for code that catches one.
"""

from __future__ import annotations

import textwrap

import pytest
from kernel_utils import CellResult, KernelSession, kernel_session

pytestmark = [pytest.mark.kernel, pytest.mark.slow, pytest.mark.timeout(120)]

SETUP = textwrap.dedent(
    """
    import asyncio, threading, time
    from pydantic import BaseModel
    import flowlab as fl

    class Ctx(BaseModel):
        n: int = 0

    started = threading.Event()

    async def quick(data, ctx):
        ctx.n += 1

    async def long(data, ctx):
        started.set()
        print("branch running", flush=True)
        await asyncio.sleep(20)

    def sync_long(data, ctx):  # blocks its worker thread: the virtual clock cannot skip it
        started.set()
        print("branch running", flush=True)
        time.sleep(3)

    slow = fl.Pipeline(fl.Parallel({"quick": quick, "a": long, "b": long}, name="slow"))
    blocking = fl.Pipeline(fl.Parallel({"quick": quick, "a": sync_long}, name="blocking"))
    print("setup done")
    """
)
LINE = "KeyboardInterrupt: the run was interrupted; partial result in fl.last_result()"


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
    ("code", "statuses", "rounds"),
    [
        # on the cell's own loop; the interrupt lands in the selector or in a step's print
        ("fl.run(slow, Ctx())", "['cancelled', 'cancelled', 'ok']", 3),
        ("fl.run(blocking, Ctx(), clock='virtual')", "['cancelled', 'ok']", 1),  # helper thread
    ],
)
def test_an_interrupted_run_is_one_line_naming_the_partial_result(
    code: str, statuses: str, rounds: int
) -> None:
    with kernel_session() as kernel:
        setup = kernel.run(SETUP, timeout_s=60)
        assert setup.status == "ok" and "setup done" in setup.stdout, setup.describe()
        for _ in range(rounds):
            cell = _interrupt(kernel, code)
            assert cell.status == "error", cell.describe()
            assert cell.error is not None
            assert cell.error_name == "KeyboardInterrupt"  # `except KeyboardInterrupt` works
            assert cell.error["evalue"] == LINE.removeprefix("KeyboardInterrupt: ")
            assert cell.error["traceback"] == [LINE]  # no frames of nest_asyncio2, selectors
            _check_partial(kernel, statuses)
        after = kernel.run("print(fl.run(fl.Pipeline(quick), Ctx()).context.n)")
        assert after.status == "ok" and after.stdout.strip() == "1", after.describe()


def test_a_keyboard_interrupt_raised_by_a_step_is_one_line_too_and_kept_whole() -> None:
    with kernel_session() as kernel:
        setup = kernel.run(SETUP, timeout_s=60)
        assert setup.status == "ok", setup.describe()
        cell = kernel.run(
            textwrap.dedent(
                """
                def stop(data, ctx):
                    raise KeyboardInterrupt("stopped by the step")

                fl.run(fl.Pipeline(stop), Ctx())
                """
            )
        )
        assert cell.error is not None and cell.error_name == "KeyboardInterrupt"
        line = (
            "KeyboardInterrupt: the run was interrupted (stopped by the step); "
            "partial result in fl.last_result()"
        )
        assert cell.error["traceback"] == [line]
        check = kernel.run(
            "import traceback; e = fl.last_result().error; "
            "print(repr(e), 'in stop' in ''.join(traceback.format_exception(e)))"
        )
        assert check.stdout.strip() == "KeyboardInterrupt('stopped by the step') True"
