"""Pictures that must not mislead: small multiples on one x range, honest comparison plots.

Checked through the artists (limits, legends, ticks, offsets), never pixels.
"""

from __future__ import annotations

import asyncio
import warnings
from typing import Annotated, Any

import pytest
from matplotlib.figure import Figure
from pydantic import BaseModel

import flowlab as fl
from flowlab import plot


class Ctx(BaseModel):
    done: Annotated[int, fl.merge.Sum()] = 0


def work(seconds: float, *, fail: bool = False) -> Any:
    async def step(data: Any, ctx: Ctx) -> None:
        await asyncio.sleep(seconds)
        ctx.done += 1
        if fail:
            raise ValueError("boom")

    return step


def fan(cap: int | None, n: int = 6, *, fail: str | None = None) -> fl.RunResult:
    branches = {f"b{i}": work(1.0, fail=f"b{i}" == fail) for i in range(n)}
    pipe = fl.Parallel(branches, max_concurrency=cap, on_failure="ignore", name="fan")
    return fl.run(pipe, Ctx(), clock="virtual", raise_on_error=False)


@pytest.fixture(scope="module")
def by_cap() -> dict[str, fl.RunResult]:
    """Six one-second branches: cap 1 lasts 6 s, cap 2 3 s, cap 3 2 s, no cap 1 s."""
    return {"1": fan(1), "2": fan(2, fail="b1"), "3": fan(3), "none": fan(None)}


# --------------------------------------------------------------------------- timelines


def test_timelines_share_one_x_range_the_longest_makespan(by_cap: dict[str, fl.RunResult]) -> None:
    panels = plot.timelines(by_cap)
    assert [r.makespan_s for r in by_cap.values()] == [6.0, 3.0, 2.0, 1.0]
    assert len(panels) == 4
    for ax in panels:
        assert ax.get_xlim() == (0.0, 6.0)
    # each panel still holds its own run's bars
    bars = [[p for p in ax.patches if str(p.get_gid()).startswith("run:")] for ax in panels]
    assert [len(b) for b in bars] == [6, 6, 6, 6]
    assert max(p.get_x() + p.get_width() for p in bars[3]) == pytest.approx(1.0)


def test_timelines_draw_one_legend_for_the_figure(by_cap: dict[str, fl.RunResult]) -> None:
    panels = plot.timelines(by_cap)
    fig = panels[0].figure
    assert all(ax.get_legend() is None for ax in fig.axes)
    (legend,) = fig.legends
    labels = [t.get_text() for t in legend.get_texts()]
    # the union over panels: "failed" only happens in the cap-2 run, queue waits in capped ones
    assert labels[:2] == ["ok", "failed"]
    assert "queue wait" in labels


def test_timelines_titles_are_compact_and_name_the_panel(by_cap: dict[str, fl.RunResult]) -> None:
    panels = plot.timelines(by_cap)
    titles = [ax.get_title() for ax in panels]
    assert titles == ["1 · 6 s", "2 · 3 s", "3 · 2 s", "none · 1 s"]
    assert not any(str(t.get_gid()).startswith("rank:") for ax in panels for t in ax.texts)
    # x labels and tick labels on the bottom row only (one row of four here)
    assert [ax.get_xlabel() for ax in panels] == ["seconds from run start"] * 4
    two_rows = plot.timelines(by_cap, ncols=2)
    assert [ax.get_xlabel() != "" for ax in two_rows] == [False, False, True, True]


def test_timelines_lay_out_without_warnings(by_cap: dict[str, fl.RunResult]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        panels = plot.timelines(by_cap, ncols=2)
        fig = panels[0].figure
        fig.canvas.draw()
    assert fig.get_layout_engine() is not None
    grid = panels[0].get_subplotspec().get_gridspec()
    assert (grid.nrows, grid.ncols) == (2, 2)


def test_timelines_fill_given_axes_and_switch_off_the_spare_ones(
    by_cap: dict[str, fl.RunResult],
) -> None:
    fig = Figure(layout="constrained")
    grid = fig.subplots(2, 3)
    panels = plot.timelines(by_cap, ax=grid.flat)
    assert list(panels) == list(grid.flat)[:4]
    assert [ax.axison for ax in grid.flat] == [True, True, True, True, False, False]
    assert len(fig.legends) == 1


def test_timelines_split_one_given_axes_into_panels(by_cap: dict[str, fl.RunResult]) -> None:
    fig = Figure(layout="constrained")
    host = fig.add_subplot()
    panels = plot.timelines(by_cap, ax=host, ncols=4)
    assert host not in fig.axes  # replaced by its panels
    assert len(panels) == 4 and all(ax.figure is fig for ax in panels)
    assert all(ax.get_xlim() == (0.0, 6.0) for ax in panels)


def test_timelines_accept_a_list_and_label_runs_by_position() -> None:
    runs = [fan(2, n=2), fan(1, n=2)]
    panels = plot.timelines(runs)
    assert [ax.get_title() for ax in panels] == ["#1 · 1 s", "#2 · 2 s"]
    assert all(ax.get_xlim() == (0.0, 2.0) for ax in panels)


def test_timelines_say_when_a_run_did_not_end_ok() -> None:
    failed = fl.run(
        fl.Parallel({"a": work(1.0, fail=True), "b": work(2.0)}, name="fan"),
        Ctx(), clock="virtual", raise_on_error=False,
    )  # fmt: skip
    (ax,) = plot.timelines({"boom": failed})
    assert ax.get_title() == f"boom · {failed.makespan_s:g} s · failed"


def test_timelines_reject_an_empty_input_and_odd_options() -> None:
    with pytest.raises(fl.ConfigError, match=r"results is empty"):
        plot.timelines({})
    with pytest.raises(fl.ConfigError, match=r"ncols=0 is not valid"):
        plot.timelines([fan(1, n=1)], ncols=0)


def test_timelines_hide_row_labels_that_would_not_fit() -> None:
    many = fan(4, n=40)
    (ax,) = plot.timelines([many], figsize=(4.0, 3.0))
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert 0 < len(labels) < 40  # every n-th row, never 40 labels in 3 inches
    assert labels[0] == "b0"
