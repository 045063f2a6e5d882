"""``live=True`` and ``as_completed()`` on a real ipykernel (jupyter_client).

* ``fl.run(..., live=True)`` in a cell displays one ipywidgets HTML (a widget view in the cell's
  outputs), on the real clock (the cell's loop) and on virtual time (the run in a helper thread,
  the widget made and shown in the cell's thread); its last value counts every branch.
* ``async for o in fl.start(...).as_completed()`` in a cell (top-level await) streams the
  outcomes in completion order.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator

import pytest
from kernel_utils import CellResult, KernelSession, kernel_session

pytestmark = [pytest.mark.kernel, pytest.mark.slow, pytest.mark.timeout(120)]

SETUP = textwrap.dedent(
    """
    import asyncio
    from pydantic import BaseModel
    import flowlab as fl
    from flowlab.ui.live import LiveView

    class Ctx(BaseModel):
        n: int = 0

    def nap(seconds):
        async def step(data, ctx):
            await asyncio.sleep(seconds)
            return seconds
        return step

    fan = fl.Parallel({"slow": nap(0.03), "fast": nap(0.01), "mid": nap(0.02)}, name="fan")
    print("setup done")
    """
)
WIDGET = "application/vnd.jupyter.widget-view+json"


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


@pytest.mark.parametrize("clock", ["real", "virtual"])
def test_live_displays_one_widget_that_ends_with_every_branch(
    kernel: KernelSession, clock: str
) -> None:
    cell = kernel.run(
        f"view = LiveView()\n"
        f"r = fl.run(fan, Ctx(), clock={clock!r}, instruments=[view])\n"
        "print(view.notebook, view.counts['done'], r.status)\n"
        "print(view.widget.value.split('</b>')[0])\n"
        f"r2 = fl.run(fan, Ctx(), clock={clock!r}, live=True)\n",
        timeout_s=60,
    )
    _ok([cell])
    assert "True 3 ok" in cell.stdout
    assert "<b>3 / 3 branches done" in cell.stdout
    widgets = [o for o in cell.outputs if WIDGET in o.get("data", {})]
    assert len(widgets) == 2  # one per run, each shown once
    assert cell.stderr == ""


def test_as_completed_in_a_cell(kernel: KernelSession) -> None:
    cell = kernel.run(
        "h = fl.start(fan, Ctx(), clock='virtual')\n"
        "print([o.branch async for o in h.as_completed()])\n",
        timeout_s=60,
    )
    _ok([cell])
    assert "['fast', 'mid', 'slow']" in cell.stdout
