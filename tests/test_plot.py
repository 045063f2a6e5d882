"""Plots are checked through their artists (bars, lines, labels, colors), never pixels."""

from __future__ import annotations

import asyncio
import math
from typing import Annotated, Any

import pandas as pd
import pytest
from matplotlib.colors import to_hex, to_rgba
from matplotlib.figure import Figure
from pydantic import BaseModel

import flowlab as fl
from flowlab import plot
from flowlab.ui.plot import STATUS_COLORS


class Ctx(BaseModel):
    processed: Annotated[int, fl.merge.Sum()] = 0
    scores: dict[str, float] = {}
    owner: str = ""


def work(seconds: float, *, fail: bool = False, owner: str | None = None) -> Any:
    async def step(data: Any, ctx: Ctx) -> str:
        await asyncio.sleep(seconds)
        ctx.processed += 1
        if owner is not None:
            ctx.owner = owner
            ctx.scores[owner] = seconds
        if fail:
            raise ValueError("boom")
        return "done"

    return step


def run(pipe: Any, **kwargs: Any) -> fl.RunResult:
    return fl.run(pipe, Ctx(), clock="virtual", raise_on_error=False, **kwargs)


def axes() -> Any:
    return Figure().add_subplot()


def by_gid(patches: Any, prefix: str) -> dict[str, Any]:
    return {p.get_gid()[len(prefix) :]: p for p in patches if str(p.get_gid()).startswith(prefix)}


@pytest.fixture(scope="module")
def capped() -> fl.RunResult:
    """a 0-1 ok, b 0-2 ok, c 1-2 failed (waited 1 s), d 2-3 ok (waited 2 s)."""
    fan = fl.Parallel(
        {"a": work(1, owner="a"), "b": work(2, owner="b"), "c": work(1, fail=True), "d": work(1)},
        max_concurrency=2, on_failure="ignore", name="fan",
    )  # fmt: skip
    return run(fan)


def test_timeline_draws_one_status_bar_per_branch_colored_by_status(capped: fl.RunResult) -> None:
    ax = plot.timeline(capped, ax=axes())
    bars = by_gid(ax.patches, "run:")
    frame = capped.branches
    assert sorted(bars) == sorted(frame["path"])
    for row in frame.itertuples():
        bar = bars[row.path]
        assert to_hex(bar.get_facecolor()) == STATUS_COLORS[str(row.status)]
        assert bar.get_x() == pytest.approx(row.started_s)
        assert bar.get_x() + bar.get_width() == pytest.approx(row.finished_s)
    assert to_hex(bars["fan:c"].get_facecolor()) == STATUS_COLORS["failed"]
    assert {t.get_text() for t in ax.get_legend().get_texts()} == {
        "ok",
        "failed",
        "queue wait",
        "merge winner",
    }


def test_timeline_wait_segment_runs_from_queued_to_started(capped: fl.RunResult) -> None:
    ax = plot.timeline(capped, ax=axes())
    waits = by_gid(ax.patches, "wait:")
    frame = capped.branches.set_index("path")
    waited = frame.loc[frame["wait_s"] > 0]
    assert sorted(waits) == sorted(waited.index) == ["fan:c", "fan:d"]
    for path, bar in waits.items():
        assert bar.get_x() == pytest.approx(frame.loc[path, "queued_s"])
        assert bar.get_x() + bar.get_width() == pytest.approx(frame.loc[path, "started_s"])
        run_bar = by_gid(ax.patches, "run:")[path]
        assert bar.get_facecolor()[3] < run_bar.get_facecolor()[3]  # drawn lighter
    assert waits["fan:d"].get_width() == pytest.approx(2.0)


def test_timeline_marks_completion_rank_and_merge_winner(capped: fl.RunResult) -> None:
    ax = plot.timeline(capped, ax=axes())
    ranks = {
        t.get_gid()[len("rank:") :]: t.get_text().strip()
        for t in ax.texts
        if str(t.get_gid()).startswith("rank:")
    }
    expected = {r.path: f"#{r.completion_rank}" for r in capped.branches.itertuples()}
    assert ranks == expected
    # overwrite, declared order: "b" is the last successful writer of owner and scores
    winners = capped.merges.loc[capped.merges["winner"].notna(), "winner"].unique().tolist()
    assert winners == ["b"]
    (stars,) = [c for c in ax.collections if c.get_gid() == "winners"]
    row_of = {lab.get_text(): i for i, lab in enumerate(ax.get_yticklabels())}
    assert [round(y) for _, y in stars.get_offsets()] == [row_of["b"]]


def test_timeline_rows_nest_children_under_their_branch() -> None:
    inner = fl.Parallel({"x": work(0.5), "y": work(0.5)}, name="inner")
    res = run(fl.Parallel({"a": work(1), "n": fl.Pipeline(inner), "z": work(1)}, name="outer"))
    ax = plot.timeline(res, ax=axes())
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["a", "n", "└ x", "└ y", "z"]
    bars = by_gid(ax.patches, "run:")
    assert len(bars) == len(res.branches) == 5
    assert round(bars["outer:n/inner:x"].get_y() + bars["outer:n/inner:x"].get_height() / 2) == 2


def test_timeline_hatches_a_branch_cancelled_while_queued() -> None:
    fan = fl.Parallel({"a": work(1, fail=True), "b": work(1), "c": work(1)},
                      max_concurrency=1, on_failure="fail_fast", name="fan")  # fmt: skip
    res = run(fan)
    assert res.branches["status"].astype(str).tolist() == ["failed", "cancelled", "cancelled"]
    ax = plot.timeline(res, ax=axes())
    bars = by_gid(ax.patches, "run:")
    assert len(bars) == 3
    assert bars["fan:b"].get_hatch() == "//"
    assert bars["fan:a"].get_hatch() is None
    assert to_hex(bars["fan:b"].get_facecolor()) == STATUS_COLORS["cancelled"]
    assert bars["fan:b"].get_x() == 0.0 and bars["fan:b"].get_width() == pytest.approx(1.0)


def test_timeline_colors_timeouts() -> None:
    res = run(
        fl.Parallel({"slow": work(5), "fast": work(0.1)}, branch_timeout=1, on_failure="ignore")
    )
    ax = plot.timeline(res, ax=axes())
    bars = by_gid(ax.patches, "run:")
    assert to_hex(bars["parallel:slow"].get_facecolor()) == STATUS_COLORS["timeout"]
    assert bars["parallel:slow"].get_width() == pytest.approx(1.0)
    assert "timeout" in {t.get_text() for t in ax.get_legend().get_texts()}


def test_timeline_passes_kwargs_and_uses_the_given_axes(capped: fl.RunResult) -> None:
    import matplotlib.pyplot as plt

    ax = axes()
    out = plot.timeline(capped, ax=ax, edgecolor="black", linewidth=2)
    assert out is ax
    assert plt.get_fignums() == []  # nothing drawn through pyplot when ax is given
    bars = by_gid(ax.patches, "run:")
    assert all(
        to_hex(b.get_edgecolor()) == "#000000" and b.get_linewidth() == 2 for b in bars.values()
    )


def test_timeline_without_ax_makes_a_figure(capped: fl.RunResult) -> None:
    import matplotlib.pyplot as plt

    ax = plot.timeline(capped)
    assert plt.get_fignums() == [ax.figure.number]
    assert ax.get_xlabel() == "seconds from run start"


def test_timeline_by_worker_needs_workers(capped: fl.RunResult) -> None:
    with pytest.raises(fl.ConfigError, match=r"by='worker'.*'branch'"):
        plot.timeline(capped, ax=axes(), by="worker")
    with pytest.raises(fl.ConfigError, match=r"by='lane'.*'branch', 'worker'"):
        plot.timeline(capped, ax=axes(), by="lane")


def test_timeline_by_worker_puts_each_workers_branches_on_its_row() -> None:
    res = run(fl.Parallel({"a": work(1), "b": work(1), "c": work(1)}, max_concurrency=2))
    for rec, worker in zip(res.recorder.branches, ["w1", "w2", "w1"], strict=True):
        rec.worker = worker  # what a remote backend records
    ax = plot.timeline(res, ax=axes(), by="worker")
    assert [t.get_text() for t in ax.get_yticklabels()] == ["w1", "w2"]
    rows = {p: round(b.get_y() + b.get_height() / 2) for p, b in by_gid(ax.patches, "run:").items()}
    assert rows == {"parallel:a": 0, "parallel:b": 1, "parallel:c": 0}


def test_timeline_shows_dollar_signs_literally() -> None:
    res = run(fl.Parallel({"$x$": work(1), "<b>": work(1)}))
    ax = plot.timeline(res, ax=axes())
    ax.figure.canvas.draw()  # mathtext would choke or render math
    assert [t.get_text() for t in ax.get_yticklabels()] == [r"\$x\$", "<b>"]


def test_concurrency_step_line_and_fixed_limit(capped: fl.RunResult) -> None:
    ax = plot.concurrency(capped, ax=axes())
    (line,) = [ln for ln in ax.lines if ln.get_gid() == "in_flight"]
    xs, ys = line.get_xdata(), line.get_ydata()
    assert list(xs) == [0.0, 3.0, 3.0] or max(ys) == 2
    assert (
        max(ys) == capped.steps.loc[capped.steps["step"] == "fan", "peak_concurrency"].iat[0] == 2
    )
    assert ys[-1] == 0
    (limit,) = [ln for ln in ax.lines if ln.get_gid() == "limit:fan"]
    step = capped.steps.loc[capped.steps["path"] == "fan"].iloc[0]
    assert set(limit.get_ydata()) == {2}
    assert limit.get_xdata()[0] == pytest.approx(step["started_s"])
    assert limit.get_xdata()[-1] == pytest.approx(step["finished_s"])


def test_concurrency_counts_in_flight_at_each_moment() -> None:
    res = run(fl.Parallel({"a": work(1), "b": work(3), "c": work(2)}, max_concurrency=2))
    ax = plot.concurrency(res, ax=axes())
    (line,) = [ln for ln in ax.lines if ln.get_gid() == "in_flight"]
    # a 0-1, b 0-3, c 1-3: two in flight until 3 (no spike at 1), then none
    assert list(zip(line.get_xdata(), line.get_ydata(), strict=True)) == [(0.0, 2), (3.0, 0)]


def test_concurrency_limit_line_follows_result_limits() -> None:
    aimd = fl.limits.AIMD(min=1, max=4, latency_target_s=2.0)
    res = run(fl.Parallel({f"b{i}": work(1) for i in range(8)}, max_concurrency=aimd, name="fan"))
    moves = res.limits.loc[res.limits["event"] != "wait"]  # its start and moves
    assert len(moves) >= 2  # AIMD grew the limit
    ax = plot.concurrency(res, ax=axes())
    (limit,) = [ln for ln in ax.lines if ln.get_gid() == "limit:fan"]
    xs, ys = list(limit.get_xdata()), list(limit.get_ydata())
    assert (xs[0], ys[0]) == (0.0, 1)  # starts at AIMD's min (its "start" row)
    assert xs[:-1] == moves["time_s"].tolist()  # one point per row: the start, every move
    assert ys[:-1] == moves["limit"].tolist()
    assert xs[-1] == pytest.approx(res.makespan_s) and ys[-1] == ys[-2]
    (line,) = [ln for ln in ax.lines if ln.get_gid() == "in_flight"]
    assert max(line.get_ydata()) <= max(ys)


def test_concurrency_of_one_step_with_nested_branches() -> None:
    inner = fl.Parallel({"x": work(1), "y": work(1), "z": work(1)}, name="inner")
    outer = fl.Parallel({"a": work(2), "n": fl.Pipeline(inner)}, max_concurrency=1, name="outer")
    res = run(outer)
    leaves = plot.concurrency(res, ax=axes())
    assert [ln.get_gid() for ln in leaves.lines] == [
        "in_flight"
    ]  # outer's cap does not bound leaves
    (line,) = leaves.lines
    assert max(line.get_ydata()) == 3
    ax = plot.concurrency(res, ax=axes(), step="outer")
    gids = {ln.get_gid(): ln for ln in ax.lines}
    assert max(gids["in_flight"].get_ydata()) == 1
    assert set(gids["limit:outer"].get_ydata()) == {1}
    with pytest.raises(fl.ConfigError, match=r"step='nope'.*'inner'.*'outer'"):
        plot.concurrency(res, ax=axes(), step="nope")


def test_concurrency_shows_a_run_wide_cap_when_given() -> None:
    res = run(fl.Parallel({f"b{i}": work(1) for i in range(4)}), max_concurrency=3)
    ax = plot.concurrency(res, ax=axes(), limit=3)
    gids = {ln.get_gid(): ln for ln in ax.lines}
    assert set(gids["limit:run"].get_ydata()) == {3}
    assert max(gids["in_flight"].get_ydata()) == 3


def test_merges_matrix_marks_writers_winners_and_failed_changes(capped: fl.RunResult) -> None:
    ax = plot.merges(capped, ax=axes())
    cells = by_gid(ax.patches, "cell:")
    diffs = capped.diffs
    expected = {f"{b}|{p}" for b, p in zip(diffs["branch"], diffs["path"], strict=True)}
    assert set(cells) == expected
    assert to_rgba(cells["a|processed"].get_facecolor()) == to_rgba(STATUS_COLORS["ok"])
    assert cells["c|processed"].get_hatch() == "//"  # failed branch: recorded, not merged
    winners = {
        ln.get_gid()[len("winner:") :] for ln in ax.lines if str(ln.get_gid()).startswith("winner:")
    }
    assert winners == {"b|owner", "b|scores.b"}  # overwrite keeps b's whole scores dict
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "c", "d"]


def test_merges_highlights_conflicts() -> None:
    def set_owner(value: str) -> Any:
        async def step(data: Any, ctx: Ctx) -> None:
            await asyncio.sleep(1)
            ctx.owner = value
            ctx.processed += 1

        return step

    fan = fl.Parallel(
        {"p": set_owner("x"), "q": set_owner("y")}, merge="error_on_conflict", name="ec"
    )
    res = run(fan)
    assert res.status == "failed" and res.merges["conflict"].any()
    ax = plot.merges(res, ax=axes())
    labels = {t.get_text(): t for t in ax.get_xticklabels()}
    assert to_hex(labels["owner"].get_color()) == STATUS_COLORS["failed"]
    assert to_hex(labels["processed"].get_color()) != STATUS_COLORS["failed"]
    cells = by_gid(ax.patches, "cell:")
    assert to_hex(cells["p|owner"].get_edgecolor()) == STATUS_COLORS["failed"]
    assert "conflict" in {t.get_text() for t in ax.get_legend().get_texts()}


def test_merges_can_select_a_step() -> None:
    inner = fl.Parallel({"x": work(1, owner="x")}, name="inner")
    res = run(fl.Parallel({"a": work(1, owner="a"), "n": fl.Pipeline(inner)}, name="outer"))
    both = plot.merges(res, ax=axes())
    # rows are the branches' paths (a nested Parallel's runs are told apart by where they ran)
    labels = {t.get_text() for t in both.get_yticklabels()}
    assert labels == {"outer:a", "outer:n", "outer:n/inner:x"}
    only = plot.merges(res, ax=axes(), step="inner")
    assert [t.get_text() for t in only.get_yticklabels()] == ["x"]


def _sweep_frame() -> pd.DataFrame:
    rows = []
    for merge, base in (("overwrite", 10.0), ("deep", 20.0)):
        for cap in (1, 2):
            for rep, noise in enumerate((-1.0, 1.0)):
                rows.append({"merge": merge, "max_concurrency": cap, "repeat": rep,
                             "makespan_s": base / cap + noise})  # fmt: skip
    return pd.DataFrame(rows)


def test_compare_draws_mean_and_std_per_hue() -> None:
    ax = plot.compare(_sweep_frame(), x="max_concurrency", y="makespan_s", hue="merge", ax=axes())
    assert len(ax.containers) == 2
    data = {c.get_label(): c for c in ax.containers}
    assert set(data) == {"overwrite", "deep"}
    line = data["deep"].lines[0]
    assert list(line.get_xdata()) == [1.0, 2.0]
    assert list(line.get_ydata()) == [20.0, 10.0]
    (bars,) = data["deep"].lines[2]
    segments = bars.get_segments()
    assert [s[1][1] - s[0][1] for s in segments] == pytest.approx([2 * math.sqrt(2)] * 2)  # ±1 std
    assert ax.get_legend().get_title().get_text() == "merge"


def test_compare_categorical_x_and_dodge() -> None:
    ax = plot.compare(_sweep_frame(), x="merge", hue="max_concurrency", ax=axes(), dodge=True)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["overwrite", "deep"]
    lines = [c.lines[0] for c in ax.containers]
    assert list(lines[0].get_xdata()) < list(lines[1].get_xdata())  # shifted apart
    assert list(lines[0].get_ydata()) == [10.0, 20.0]


def test_compare_hue_false_pools_every_row_into_one_line() -> None:
    frame = _sweep_frame()
    picked = plot.compare(frame, x="max_concurrency", ax=axes())
    assert len(picked.containers) == 2  # hue=None picks the other grid key, "merge"
    ax = plot.compare(frame, x="max_concurrency", hue=False, ax=axes())
    (only,) = ax.containers
    assert only.get_label() == "makespan_s"
    line = only.lines[0]
    assert list(line.get_xdata()) == [1.0, 2.0]
    # cap 1: 9, 11 (overwrite), 19, 21 (deep); cap 2: 4, 6, 9, 11
    assert list(line.get_ydata()) == pytest.approx([15.0, 7.5])
    assert ax.get_legend() is None


@pytest.mark.parametrize("bad", [True, 3])
def test_compare_rejects_a_hue_that_is_not_a_column_none_or_false(bad: object) -> None:
    with pytest.raises(fl.ConfigError, match=rf"hue={bad!r} is not valid; .*False"):
        plot.compare(_sweep_frame(), x="merge", hue=bad, ax=axes())  # type: ignore[arg-type]


def test_compare_rejects_unknown_columns() -> None:
    with pytest.raises(
        fl.ConfigError, match=r"y='speed' is not valid; choose one of .*'makespan_s'"
    ):
        plot.compare(_sweep_frame(), x="merge", y="speed", ax=axes())


def test_timeline_labels_every_nth_row_beyond_80() -> None:
    res = run(fl.Parallel({f"b{i}": work(1) for i in range(90)}, max_concurrency=30))
    ax = plot.timeline(res, ax=axes(), ranks=False)
    assert len(by_gid(ax.patches, "run:")) == 90
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == [f"b{i}" for i in range(0, 90, 2)]
    assert [t.get_text() for t in ax.texts if str(t.get_gid()).startswith("rank:")] == []


def test_merges_marks_every_dropped_write() -> None:
    from pydantic import BaseModel

    import flowlab as fl

    class C(BaseModel):
        status: str = ""

    def a(data: object, ctx: C) -> None:
        ctx.status = "a"

    def b(data: object, ctx: C) -> None:
        ctx.status = "b"

    result = fl.run(fl.Pipeline(fl.Parallel({"a": a, "b": b}, name="p")), C(), clock="virtual")
    ax = fl.plot.merges(result)
    gids = {line.get_gid() for line in ax.lines}
    assert gids == {"winner:b|status", "dropped:a|status"}
    assert "write lost (dropped)" in [t.get_text() for t in ax.get_legend().get_texts()]


def test_merges_summarizes_a_very_wide_diff_into_parent_columns_with_counts() -> None:
    from pydantic import BaseModel

    import flowlab as fl

    class Wide(BaseModel):
        d: dict[str, int] = {}
        n: int = 0

    def a(data: object, ctx: Wide) -> None:
        for i in range(500):
            ctx.d[f"k{i}"] = i
        ctx.n = 1

    def b(data: object, ctx: Wide) -> None:
        ctx.d["k0"] = -1

    result = fl.run(fl.Pipeline(fl.Parallel({"a": a, "b": b}, name="p")), Wide(), clock="virtual")
    ax = fl.plot.merges(result, max_fields=10)
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == ["d.* (500)", "n"]
    assert {line.get_gid() for line in ax.lines} == {"winner:b|d", "dropped:a|d", "winner:a|n"}
    assert len(fl.plot.merges(result).get_xticklabels()) == 2  # 501 paths > 40: summarized too
