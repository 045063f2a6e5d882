"""``fl.run(..., live=True)``: the run drawn while it goes.

In a notebook (an IPython kernel with ipywidgets) :class:`LiveView` shows an ``ipywidgets.HTML``
whose value it replaces as branches start and end: a count line and a small timeline, one bar per
branch (the latest ``rows`` of them), growing as the run goes. Elsewhere it is a tqdm bar of
finished branches (:class:`~flowlab.ui.progress.ProgressBar`). Redraws are throttled to one per
``min_interval_s`` of wall time, plus a last one when the run ends, so 10,000 branches do not cost
10,000 redraws. ipywidgets and IPython are imported only when a live view is made.

Examples
--------
>>> import asyncio
>>> import flowlab as fl
>>> from pydantic import BaseModel
>>> from flowlab.ui.live import LiveView
>>> class Ctx(BaseModel):
...     pass
>>> async def nap(data, ctx):
...     await asyncio.sleep(1)
>>> view = LiveView(notebook=True, display=False)
>>> _ = fl.run(fl.Parallel({"a": nap, "b": nap}, name="fan"), Ctx(), clock="virtual",
...            instruments=[view])
>>> view.counts
{'done': 2, 'running': 0, 'ok': 2, 'failed': 0, 'cancelled': 0, 'timeout': 0}
>>> "2 / 2 branches done" in view.widget.value
True
"""

from __future__ import annotations

import html
import math
import time
from typing import Any

from flowlab.results.recorder import Instrument
from flowlab.results.records import BranchRecord
from flowlab.ui.progress import ProgressBar

__all__ = ["LiveView", "in_notebook"]

_COLOURS = {"ok": "#2f6690", "failed": "#d1495b", "timeout": "#edae49",
            "cancelled": "#9a9a9a", "running": "#7fb7be"}  # fmt: skip


def in_notebook() -> bool:
    """Whether this process is an IPython kernel (a notebook) rather than a terminal."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


class LiveView(Instrument):
    """Branches drawn as they start and end: a widget in a notebook, a tqdm bar elsewhere.

    Parameters
    ----------
    notebook : bool, optional
        Force the widget (True) or the tqdm bar (False); default: :func:`in_notebook`.
    display : bool, default True
        Display the widget when the run starts (False: only build it, e.g. to place it yourself
        or in tests, as ``.widget``).
    rows : int, default 40
        The latest branches drawn as bars.
    min_interval_s : float, default 0.1
        Wall seconds between two redraws.
    **tqdm_kwargs
        Passed to the tqdm bar outside a notebook.
    """

    def __init__(
        self,
        *,
        notebook: bool | None = None,
        display: bool = True,
        rows: int = 40,
        min_interval_s: float = 0.1,
        **tqdm_kwargs: Any,
    ) -> None:
        self.notebook = in_notebook() if notebook is None else bool(notebook)
        self.display = display
        self.rows = rows
        self.min_interval_s = min_interval_s
        self.bar = None if self.notebook else ProgressBar(desc="branches", **tqdm_kwargs)
        self.widget: Any = None
        self.total: int | None = None
        self.branches: list[BranchRecord] = []  # started ones, in start order
        self.counts = {"done": 0, "running": 0, "ok": 0, "failed": 0, "cancelled": 0,
                       "timeout": 0}  # fmt: skip
        self.status = "running"
        self.now = 0.0
        self._drawn_at = -math.inf
        self.redraws = 0
        if self.notebook:
            # Made and shown here, in the caller's thread (the cell's): the run itself may go
            # on in a helper thread (virtual time in a notebook), which only sets its value.
            import ipywidgets

            self.widget = ipywidgets.HTML(value=self.html())
            if display:
                from IPython.display import display as show

                show(self.widget)  # type: ignore[no-untyped-call]

    # ---- hooks ------------------------------------------------------------------------------
    def run_started(self, total_branches: int | None) -> None:
        self.total = total_branches
        if self.bar is not None:
            self.bar.run_started(total_branches)
            return
        self._maybe_draw(force=True)

    def branch_started(self, record: BranchRecord) -> None:
        self.branches.append(record)
        self.counts["running"] += 1
        self.now = max(self.now, record.started)
        self._maybe_draw()

    def branch_finished(self, record: BranchRecord) -> None:
        if self.bar is not None:
            self.bar.branch_finished(record)
        if not math.isnan(record.started):
            self.counts["running"] -= 1
        self.counts["done"] += 1
        self.counts[record.status] = self.counts.get(record.status, 0) + 1
        self.now = max(self.now, record.finished)
        self._maybe_draw(force=self.counts["done"] == self.total)

    def run_finished(self, status: str) -> None:
        self.status = status
        if self.bar is not None:
            self.bar.run_finished(status)
            return
        self._maybe_draw(force=True)

    # ---- drawing ----------------------------------------------------------------------------
    def _maybe_draw(self, force: bool = False) -> None:
        if self.widget is None:
            return
        wall = time.monotonic()
        if force or wall - self._drawn_at >= self.min_interval_s:
            self._drawn_at = wall
            self.widget.value = self.html()
            self.redraws += 1

    def html(self) -> str:
        """The widget's content now: a count line and the timeline of the latest branches."""
        c = self.counts
        total = f" / {self.total:,}" if self.total else ""
        line = (
            f"<b>{c['done']:,}{total} branches done</b> · {c['running']:,} running · "
            f"{c['ok']:,} ok · {c['failed']:,} failed · {c['cancelled']:,} cancelled · "
            f"{c['timeout']:,} timeout · t = {self.now:.6g} s"
            + (f" · run {html.escape(self.status)}" if self.status != "running" else "")
        )
        return f"<div class='flowlab-live'>{line}{self._svg()}</div>"

    def _svg(self) -> str:
        shown = self.branches[-self.rows :]
        if not shown:
            return ""
        end = max(self.now, 1e-9)
        width, row_h, label_w = 520.0, 12, 110.0
        scale = (width - label_w - 10) / end
        parts = []
        for i, b in enumerate(shown):
            done = not math.isnan(b.finished)
            x0 = label_w + b.started * scale
            x1 = label_w + (b.finished if done else end) * scale
            colour = _COLOURS.get(b.status if done else "running", "#7fb7be")
            y = i * row_h
            parts.append(
                f"<text x='0' y='{y + 9}' font-size='9'>{html.escape(b.path[-18:])}</text>"
                f"<rect x='{x0:.1f}' y='{y + 1}' width='{max(x1 - x0, 1.0):.1f}' "
                f"height='{row_h - 2}' fill='{colour}'><title>{html.escape(b.path)} "
                f"{html.escape(b.status)}</title></rect>"
            )
        h = len(shown) * row_h
        return f"<svg width='{width:.0f}' height='{h}' role='img'>{''.join(parts)}</svg>"

    def __repr__(self) -> str:
        where = "widget" if self.notebook else "tqdm"
        return f"<LiveView {where} done={self.counts['done']} running={self.counts['running']}>"
