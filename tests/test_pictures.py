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


# --------------------------------------------------------------------------- compare


def _frame(rows: list[tuple[Any, Any, float]]) -> Any:
    import pandas as pd

    return pd.DataFrame([{"merge": a, "cap": b, "makespan_s": y} for a, b, y in rows])


def _series(ax: Any) -> dict[str, list[tuple[float, float]]]:
    """Each legend entry's drawn points, ``(x, y)`` in data coordinates."""
    out = {}
    for c in ax.containers:
        line = c.lines[0]
        out[c.get_label()] = list(
            zip(map(float, line.get_xdata()), map(float, line.get_ydata()), strict=True)
        )
    return out


def test_compare_draws_points_not_lines_across_categories() -> None:
    rows = [
        (m, cap, t) for m, t in (("overwrite", 4.0), ("deep", 5.0), ("sum", 4.5)) for cap in (1, 2)
    ]
    ax = plot.compare(_frame(rows), x="merge", hue="cap", ax=Figure().add_subplot())
    assert [t.get_text() for t in ax.get_xticklabels()] == ["overwrite", "deep", "sum"]
    for c in ax.containers:
        line = c.lines[0]
        assert line.get_linestyle() == "None"  # nothing joins "overwrite" to "deep"
        assert line.get_marker() not in (None, "None", "")


def test_compare_dodges_series_that_coincide_so_each_is_visible() -> None:
    # makespan does not depend on the merge strategy: three identical series
    rows = [(m, cap, 8.0 / cap) for m in ("overwrite", "deep", "sum") for cap in (1, 2, 4)]
    ax = plot.compare(_frame(rows), x="cap", hue="merge", ax=Figure().add_subplot())
    series = _series(ax)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["overwrite", "deep", "sum"]
    for k in range(3):  # at each cap the three points sit apart, none hidden under another
        points = {s[k] for s in series.values()}
        assert len(points) == 3
        assert {round(y, 9) for _, y in points} == {8.0 / (1, 2, 4)[k]}
    markers = {c.lines[0].get_marker() for c in ax.containers}
    assert len(markers) == 3  # and each series has its own marker


def test_compare_leaves_series_that_do_not_coincide_in_place() -> None:
    rows = [
        (m, cap, base / cap) for m, base in (("overwrite", 8.0), ("deep", 16.0)) for cap in (1, 2)
    ]
    ax = plot.compare(_frame(rows), x="cap", hue="merge", ax=Figure().add_subplot())
    assert {name: [x for x, _ in pts] for name, pts in _series(ax).items()} == {
        "overwrite": [1.0, 2.0], "deep": [1.0, 2.0],
    }  # fmt: skip


def test_compare_gives_an_integer_axis_integer_ticks() -> None:
    import pandas as pd

    frame = pd.DataFrame({"cap": pd.array([1, 2, 1, 2], dtype="Int64"), "merge": ["a", "a", "b", "b"],
                          "makespan_s": [4.0, 2.0, 4.0, 2.0], "peak_concurrency": [1, 2, 1, 2]})  # fmt: skip
    ax = plot.compare(frame, x="cap", y="peak_concurrency", hue="merge", ax=Figure().add_subplot())
    ax.figure.canvas.draw()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2"]
    assert list(ax.get_xticks()) == [1.0, 2.0]
    lo, hi = ax.get_ylim()
    yticks = [t for t in ax.get_yticks() if lo <= t <= hi]
    assert yticks and all(float(t).is_integer() for t in yticks)


def test_compare_sorts_numeric_x_with_no_cap_last() -> None:
    import pandas as pd

    caps = [2, 1, 3, 4, 5, None]  # the order runs happened in
    frame = pd.DataFrame(
        {"cap": pd.array(caps, dtype="Int64"), "makespan_s": [3.0, 6.0, 2.0, 1.5, 1.2, 1.0]}
    )
    ax = plot.compare(frame, x="cap", hue=False, ax=Figure().add_subplot())
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "3", "4", "5", "none"]
    (points,) = _series(ax).values()
    assert [y for _, y in points] == [6.0, 3.0, 2.0, 1.5, 1.2, 1.0]
    assert [x for x, _ in points] == sorted(x for x, _ in points)


def test_cmp_plot_of_a_real_sweep_is_honest() -> None:
    pipe = fl.Parallel({f"b{i}": work(1.0) for i in range(4)}, name="fan")
    cmp = fl.compare(pipe, Ctx(), grid={"merge": ["overwrite", "deep", "accumulate"],
                                        "max_concurrency": [1, 2, None]}, clock="virtual")  # fmt: skip
    ax = cmp.plot(ax=Figure().add_subplot())
    ax.figure.canvas.draw()
    assert ax.get_xlabel() == "max_concurrency"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "none"]
    series = _series(ax)
    assert list(series) == ["overwrite", "deep", "accumulate"]
    for k in range(3):
        assert len({pts[k] for pts in series.values()}) == 3  # identical makespans, all visible
    by_merge = plot.compare(cmp, x="merge", hue="max_concurrency", ax=Figure().add_subplot())
    assert all(c.lines[0].get_linestyle() == "None" for c in by_merge.containers)
    assert [t.get_text() for t in by_merge.get_legend().get_texts()] == ["1", "2", "none"]


# --------------------------------------------------------------------------- timeline details


def _owner(seconds: float, name: str, *, fail: bool = False) -> Any:
    async def step(data: Any, ctx: Owned) -> None:
        await asyncio.sleep(seconds)
        ctx.owner = name
        if fail:
            raise ValueError("boom")

    return step


class Owned(BaseModel):
    owner: str = ""


def _gids(ax: Any, prefix: str) -> dict[str, Any]:
    artists = [*ax.patches, *ax.texts, *ax.lines, *ax.collections]
    return {
        str(a.get_gid())[len(prefix) :]: a for a in artists if str(a.get_gid()).startswith(prefix)
    }


def test_timeline_by_worker_stacks_overlapping_branches_and_names_them() -> None:
    res = fl.run(fl.Parallel({"a": work(1.0), "b": work(2.0), "c": work(1.0, fail=True)},
                             on_failure="ignore", name="fan"),
                 Ctx(), clock="virtual", raise_on_error=False)  # fmt: skip
    for rec, worker in zip(res.recorder.branches, ["w1", "w1", "w2"], strict=True):
        rec.worker = worker  # a and b ran at the same time on w1
    ax = plot.timeline(res, ax=Figure().add_subplot(), by="worker")
    bars = _gids(ax, "run:")
    a, b = bars["fan:a"], bars["fan:b"]
    tol = 1e-9  # stacked lanes touch: one ends where the next begins
    assert (
        a.get_y() + a.get_height() <= b.get_y() + tol
        or b.get_y() + b.get_height() <= a.get_y() + tol
    )
    assert a.get_height() == pytest.approx(b.get_height()) and a.get_y() != pytest.approx(b.get_y())
    for bar in (a, b):  # both inside w1's row, which is row 0
        assert bar.get_y() >= -0.5 and bar.get_y() + bar.get_height() <= 0.5
    names = {path: t.get_text().strip() for path, t in _gids(ax, "name:").items()}
    assert names == {"fan:a": "a #1", "fan:b": "b #3", "fan:c": "c #2"}  # name and rank


def test_timeline_title_rounds_the_makespan() -> None:
    res = fl.run(fl.Parallel({"a": work(0.718991)}, name="fan"), Ctx(), clock="virtual")
    ax = plot.timeline(res, ax=Figure().add_subplot())
    assert res.makespan_s == pytest.approx(0.718991)
    assert ax.get_title().endswith("makespan 0.72 s")


def _nested(*, on_failure: str) -> fl.RunResult:
    inner = fl.Parallel({"x": _owner(1, "x"), "y": _owner(1, "y")}, name="inner")
    outer = fl.Parallel({"n": fl.Pipeline(inner), "z": _owner(2, "z", fail=True)},
                        on_failure=on_failure, name="outer")  # fmt: skip
    return fl.run(outer, Owned(), clock="virtual", raise_on_error=False)


def test_no_merge_winner_star_when_the_merge_was_thrown_away() -> None:
    failed = _nested(on_failure="propagate")
    assert failed.status == "failed" and failed.context.owner == ""
    assert failed.merges["winner"].tolist() == ["y"]  # the inner merge happened, then was lost
    ax = plot.timeline(failed, ax=Figure().add_subplot())
    assert "winners" not in {c.get_gid() for c in ax.collections}
    assert "merge winner" not in {t.get_text() for t in ax.get_legend().get_texts()}


def test_merge_winner_stars_sit_on_the_branches_whose_writes_reached_the_result() -> None:
    ok = _nested(on_failure="ignore")
    assert ok.status == "ok" and ok.context.owner == "y"
    ax = plot.timeline(ok, ax=Figure().add_subplot())
    (stars,) = [c for c in ax.collections if c.get_gid() == "winners"]
    row_of = {t.get_text().strip("└ "): i for i, t in enumerate(ax.get_yticklabels())}
    assert sorted(round(y) for _, y in stars.get_offsets()) == sorted([row_of["n"], row_of["y"]])


def test_timeline_marks_a_budget_breach() -> None:
    async def costly(data: Any, ctx: Ctx) -> None:
        await asyncio.sleep(float(data))
        fl.charge(cost=0.05)
        await asyncio.sleep(10)

    def at(delay: float) -> Any:
        async def step(data: Any, ctx: Ctx) -> None:
            await costly(delay, ctx)

        return step

    res = fl.run(fl.Parallel({f"c{i}": at(i) for i in range(4)}, name="fan"), Ctx(),
                 clock="virtual", usage=fl.UsageLimits(cost=0.12), raise_on_error=False)  # fmt: skip
    assert res.status == "usage_limit_exceeded"
    ax = plot.timeline(res, ax=Figure().add_subplot())
    (line,) = [ln for ln in ax.lines if ln.get_gid() == "breach"]
    assert list(line.get_xdata()) == [2.0, 2.0]
    (label,) = [t for t in ax.texts if t.get_gid() == "breach-label"]
    assert "cost 0.15 > 0.12" in label.get_text()
    assert "budget breach" in {t.get_text() for t in ax.get_legend().get_texts()}
    ok = plot.timeline(fan(2), ax=Figure().add_subplot())
    assert not [ln for ln in ok.lines if ln.get_gid() == "breach"]


def test_a_large_timeline_is_compact_by_default() -> None:
    big = fan(30, n=150)
    ax = plot.timeline(big)
    fig = ax.figure
    assert fig.get_figheight() <= 9.0  # not 0.38 in per row: 58 in, 5,000+ px
    labels = [t.get_text() for t in ax.get_yticklabels()]
    height_pt = ax.get_window_extent().height / fig.dpi * 72
    assert labels[0] == "b0" and len(labels) <= height_pt / 9  # thinned to what fits
    assert not [t for t in ax.texts if str(t.get_gid()).startswith("rank:")]  # too small to read
    assert len([p for p in ax.patches if str(p.get_gid()).startswith("run:")]) == 150
    full = plot.timeline(big, compact=False)
    assert full.figure.get_figheight() > 50  # asked for: one readable row per branch
    assert [t for t in full.texts if str(t.get_gid()).startswith("rank:")]


def test_a_small_timeline_is_not_compact() -> None:
    ax = plot.timeline(fan(2, n=6))
    assert len(ax.get_yticklabels()) == 6
    assert len([t for t in ax.texts if str(t.get_gid()).startswith("rank:")]) == 6


# --------------------------------------------------------------------------- concurrency


def _nested_caps() -> fl.RunResult:
    """Three outer branches at once, each running its own `inner` Parallel capped at 2."""
    inner = fl.Parallel({k: work(1.0) for k in "xyz"}, max_concurrency=2, name="inner")
    outer = fl.Parallel({f"n{i}": fl.Pipeline(inner) for i in range(3)}, name="outer")
    return fl.run(outer, Ctx(), clock="virtual")


def test_concurrency_draws_a_nested_steps_caps_summed_over_its_runs() -> None:
    res = _nested_caps()
    assert res.summary()["peak_concurrency"] == 6  # 3 inner Parallels x cap 2: not a breach
    ax = plot.concurrency(res, ax=Figure().add_subplot())
    limits = [ln for ln in ax.lines if str(ln.get_gid()).startswith("limit")]
    assert [ln.get_gid() for ln in limits] == ["limit-sum:inner"]  # not three lines at 2
    (line,) = limits
    assert max(line.get_ydata()) == 6
    assert line.get_label() == "limit: 3 × inner's cap (each 2)"
    (flight,) = [ln for ln in ax.lines if ln.get_gid() == "in_flight"]
    assert max(flight.get_ydata()) <= max(line.get_ydata())
    assert flight.get_label() == "leaf steps in flight (whole run)"


def test_concurrency_of_a_named_nested_step_sums_its_runs_too() -> None:
    ax = plot.concurrency(_nested_caps(), ax=Figure().add_subplot(), step="inner")
    gids = {ln.get_gid(): ln for ln in ax.lines}
    assert max(gids["in_flight"].get_ydata()) == 6
    assert max(gids["limit-sum:inner"].get_ydata()) == 6
