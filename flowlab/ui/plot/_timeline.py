"""A run over time: :func:`timeline`, a Gantt chart of its branches.

:func:`concurrency` lives in :mod:`flowlab.ui.plot._concurrency` and is re-exported here. The marks
drawn on and around the bars (stars, breaches, thread tails, retry ticks, step separators) are in
:mod:`flowlab.ui.plot._timeline_marks`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flowlab.errors import ConfigError, check_one_of
from flowlab.ui.plot._concurrency import concurrency
from flowlab.ui.plot._style import (
    STATUS_COLORS,
    WAIT_ALPHA,
    branch_rows,
    check_result,
    fit_row_labels,
    legend_handles,
    new_axes,
    seconds,
    text,
)
from flowlab.ui.plot._timeline_marks import (
    TICK_COLOR,
    breaches,
    merged_winners,
    retry_ticks,
    step_separators,
    thread_tails,
)

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes

    from flowlab.results.record import RunResult

__all__ = ["concurrency", "timeline"]

_BY = ("branch", "worker")

_MAX_LABELS = 80
_COMPACT_ROWS = 40  # beyond this many rows a new figure is compact ...
_COMPACT_IN = 8.0  # ... and this tall, in inches


def _lanes(intervals: Sequence[tuple[int, float, float]]) -> dict[int, tuple[int, int]]:
    """``{index: (lane, lanes in its row)}``: bars that overlap in time on one row get their own
    lane (greedy, by start time), so none hides another."""
    out: dict[int, tuple[int, int]] = {}
    by_row: dict[int, list[tuple[float, float, int]]] = {}
    for i, (row, start, end) in enumerate(intervals):
        by_row.setdefault(row, []).append((start, end, i))
    for items in by_row.values():
        ends: list[float] = []  # per lane: when its last bar ends
        placed: list[tuple[int, int]] = []
        for start, end, i in sorted(items):
            lane = next((k for k, e in enumerate(ends) if e <= start), len(ends))
            if lane == len(ends):
                ends.append(end)
            else:
                ends[lane] = end
            placed.append((i, lane))
        for i, lane in placed:
            out[i] = (lane, len(ends))
    return out


def timeline(
    result: RunResult,
    ax: Axes | None = None,
    *,
    by: str = "branch",
    wait: bool = True,
    ranks: bool = True,
    winners: bool = True,
    retries: bool = True,
    legend: bool = True,
    height: float = 0.6,
    compact: bool | None = None,
    **kwargs: Any,
) -> Axes:
    """A Gantt chart of a run: one bar per branch, colored by status.

    Each branch gets one status bar from ``started_s`` to ``finished_s`` (a branch cancelled
    before it started gets a hatched bar over its queue time instead); a thin dotted bar after it
    shows a cancelled sync step of it still running in its thread, until that thread returned. The queue wait, from
    ``queued_s`` to ``started_s``, is drawn lighter in front of it. Nested branches sit right under
    their parent branch, indented. The completion rank (``#3``) is written after each bar.
    Branches that won a merged field are marked with a star, only when that win reached the
    result (not when the Parallel that merged it, or one around it, failed). A usage-budget breach
    is a dashed line at the moment of the crossing charge, labelled with what was exceeded.
    A branch whose leaf step was retried gets a thin tick at the end of each attempt that did not
    succeed (see :func:`attempts` for the attempts themselves). Beyond 80 rows only every n-th
    row is labelled.

    Parameters
    ----------
    result : RunResult
    ax : matplotlib Axes, optional
        Draw here; by default a new figure sized to the number of rows.
    by : {"branch", "worker"}, default "branch"
        ``"worker"``: one row per worker (the ``worker`` column, filled by remote backends),
        holding the leaf branches it ran, each named on its bar; branches that overlap in time
        on one worker are stacked in thinner lanes, so none hides another.
    wait, ranks, winners, retries, legend : bool, default True
        Draw queue waits / completion ranks / merge-winner stars / ticks at failed attempts /
        the status legend.
    height : float, default 0.6
        Bar height in row units.
    compact : bool, optional
        Fit many rows in a figure of at most 8 inches: row labels thinned to what fits, no
        completion ranks. By default on when a new figure would hold more than 40 rows.
    **kwargs
        Passed to ``Axes.barh`` for the status bars (``edgecolor``, ``linewidth``, ...).

    Returns
    -------
    matplotlib.axes.Axes
    """
    check_result(result)
    check_one_of("by", by, _BY)
    frame = result.branches
    order, ys, labels = _worker_rows(frame) if by == "worker" else _branch_rows(frame)
    n_rows = len(labels)
    if compact is None:
        compact = ax is None and n_rows > _COMPACT_ROWS
    tall = max(2.0, 0.38 * n_rows + 1.2)
    ax = new_axes(ax, (8.0, min(tall, _COMPACT_IN) if compact else tall))
    ranks = ranks and not compact
    won = merged_winners(result) if winners else set()
    bars = _place_bars(ax, result, order, ys, by=by, height=height, wait=wait, ranks=ranks, won=won)
    _draw_bars(ax, bars, height=height, compact=compact, kwargs=kwargs)
    if by == "branch":
        thread_tails(ax, result, bars.ends)
    if bars.stars:
        ax.scatter(
            [s[0] for s in bars.stars], [s[1] for s in bars.stars], marker="*", s=90,
            color="#f5d000", edgecolors="#333333", linewidths=0.5, zorder=3,
            label="merge winner", gid="winners",
        )  # fmt: skip
    _frame_axes(ax, result, labels, bars, compact=compact)
    if by == "branch":
        step_separators(ax, frame, order)
    breach = breaches(ax, result)
    ticked = (
        by == "branch" and retries and retry_ticks(ax, result, order, bars.rows, compact=compact)
    )
    if legend:
        _legend(ax, frame, bars, breach=breach, ticked=ticked)
    return ax


def _worker_rows(frame: pd.DataFrame) -> tuple[list[tuple[int, int]], list[int], list[str]]:
    """``(order, row of each, row labels)`` with one row per worker, holding its leaf branches
    (a last ``(local)`` row for those run on the driver)."""
    workers = [w for w in dict.fromkeys(frame["worker"].tolist()) if w]
    if not workers:
        raise ConfigError(
            "by='worker' is not valid for this result: the worker column is empty; "
            "choose one of 'branch'. HINT: workers are recorded by remote backends."
        )
    row_of = {w: i for i, w in enumerate(workers)}
    parents = set(frame["parent"].tolist())  # a branch holding others runs no work itself
    order = [(i, 0) for i, p in enumerate(frame["path"].tolist()) if p not in parents]
    ys = [row_of.get(frame["worker"].iat[i], len(workers)) for i, _ in order]
    labels = [text(w) for w in workers]
    if any(not frame["worker"].iat[i] for i, _ in order):
        labels.append("(local)")
    return order, ys, labels


def _branch_rows(frame: pd.DataFrame) -> tuple[list[tuple[int, int]], list[int], list[str]]:
    """``(order, row of each, row labels)`` with one row per branch, nested ones indented."""
    order = branch_rows(frame)
    labels: list[str] = []
    for i, depth in order:
        name = text(frame["branch"].iat[i])
        labels.append(("    " * (depth - 1) + "└ " + name) if depth else name)
    return order, list(range(len(order))), labels


@dataclass(eq=False)
class _Bars:
    """The status bars of a timeline (one per placed branch, in row order) and their extras."""

    lefts: list[float] = field(default_factory=list)
    widths: list[float] = field(default_factory=list)
    colors: list[str] = field(default_factory=list)
    hatches: list[str | None] = field(default_factory=list)
    gids: list[str] = field(default_factory=list)
    rows: list[float] = field(default_factory=list)  # each bar's y
    heights: list[float] = field(default_factory=list)
    waits: list[tuple[float, float, float, Any, str]] = field(default_factory=list)  # queue waits
    stars: list[tuple[float, float]] = field(default_factory=list)  # merge winners
    ends: dict[str, tuple[float, float]] = field(default_factory=dict)  # path -> (y, bar's end)


def _place_bars(
    ax: Axes,
    result: RunResult,
    order: Sequence[tuple[int, int]],
    ys: Sequence[int],
    *,
    by: str,
    height: float,
    wait: bool,
    ranks: bool,
    won: set[str],
) -> _Bars:
    """Where each branch's bars go; writes each bar's name (by worker) or completion rank."""
    import pandas as pd
    from matplotlib.colors import to_rgba

    out = _Bars()
    records = result.branches.to_dict("records")
    spans = [_span(records[i], result.makespan_s) for i, _ in order]
    lanes = (
        _lanes([(y, a, b) for y, (a, b) in zip(ys, spans, strict=True)]) if by == "worker" else {}
    )
    for k, ((i, _depth), row_y) in enumerate(zip(order, ys, strict=True)):
        row = records[i]
        lane, n_lanes = lanes.get(k, (0, 1))
        bar_h = height / n_lanes
        y = row_y - height / 2 + (lane + 0.5) * bar_h
        color = STATUS_COLORS.get(str(row["status"]), "#999999")
        queued, started, finished = (float(row[c]) for c in ("queued_s", "started_s", "finished_s"))
        if math.isnan(finished):
            finished = result.makespan_s
        never_started = math.isnan(started)
        left = queued if never_started else started
        out.lefts.append(left)
        out.widths.append(max(0.0, finished - left))
        out.colors.append(color)
        out.hatches.append("//" if never_started else None)
        out.gids.append(f"run:{row['path']}")
        out.rows.append(y)
        out.heights.append(bar_h)
        if wait and by == "branch" and not never_started and started > queued:
            out.waits.append(
                (float(y), queued, started - queued, to_rgba(color, WAIT_ALPHA), row["path"])
            )
        rank = "" if pd.isna(row["completion_rank"]) else f" #{int(row['completion_rank'])}"
        if by == "worker":  # rows are workers: name each bar (the rank goes inside, too)
            ax.text(
                left, y, f" {text(row['branch'])}{rank if ranks else ''}", va="center", ha="left",
                fontsize="x-small", color="white", clip_on=True, gid=f"name:{row['path']}",
            )  # fmt: skip
        elif ranks and rank:
            ax.text(
                finished, y, rank, va="center", ha="left",
                fontsize="x-small", color="#333333", gid=f"rank:{row['path']}",
            )  # fmt: skip
        if row["path"] in won:
            out.stars.append((left + max(0.0, finished - left) / 2, float(y)))
        out.ends[str(row["path"])] = (float(y), finished)
    return out


def _draw_bars(
    ax: Axes, bars: _Bars, *, height: float, compact: bool, kwargs: dict[str, Any]
) -> None:
    """The queue waits (lighter, in front), then the status bars (hatched if never started)."""
    if bars.waits:
        wb = ax.barh(
            [w[0] for w in bars.waits], [w[2] for w in bars.waits],
            left=[w[1] for w in bars.waits], height=height, color=[w[3] for w in bars.waits],
            edgecolor="none", label="_wait",
        )  # fmt: skip
        for patch, w in zip(wb.patches, bars.waits, strict=True):
            patch.set_gid(f"wait:{w[4]}")
    edge = 0.0 if compact else 0.5  # a white edge would eat a bar a few points high
    bar_kwargs: dict[str, Any] = {"edgecolor": "white", "linewidth": edge, **kwargs}
    drawn = ax.barh(
        bars.rows, bars.widths, left=bars.lefts, height=bars.heights, color=bars.colors,
        label="_run", **bar_kwargs,
    )  # fmt: skip
    for patch, gid, hatch in zip(drawn.patches, bars.gids, bars.hatches, strict=True):
        patch.set_gid(gid)
        if hatch:
            patch.set_hatch(hatch)
            patch.set_alpha(0.6)


def _frame_axes(
    ax: Axes, result: RunResult, labels: Sequence[str], bars: _Bars, *, compact: bool
) -> None:
    """Row labels (every n-th beyond 80 rows), limits, axis label, title and grid."""
    n_rows = len(labels)
    # ticks are costly and unreadable by the hundred
    every = max(1, math.ceil(n_rows / _MAX_LABELS))
    ax.set_yticks(range(0, n_rows, every), labels[::every])
    ax.set_ylim(max(n_rows, 1) - 0.5, -0.5)  # (a run with no branch still gets a row)
    if compact:
        fit_row_labels(ax)
    ends = (a + b for a, b in zip(bars.lefts, bars.widths, strict=True))
    ax.set_xlim(left=0.0, right=max(result.makespan_s, max(ends, default=0.0)) * 1.08 or 1.0)
    ax.set_xlabel("seconds from run start")
    ax.set_title(
        f"{text(result.pipeline_name)}: {result.status}, makespan {seconds(result.makespan_s)} s"
    )
    ax.grid(axis="x", alpha=0.3)


def _legend(ax: Axes, frame: pd.DataFrame, bars: _Bars, *, breach: bool, ticked: bool) -> None:
    """The status legend, right of the axes, with the extras that were drawn."""
    statuses = frame["status"].astype(str).tolist()
    handles = legend_handles(
        statuses, wait=bool(bars.waits), winners=bool(bars.stars), breach=breach
    )
    if ticked:
        from matplotlib.lines import Line2D

        handles.append(Line2D([], [], marker="|", linestyle="none", color=TICK_COLOR,
                              markersize=8, label="failed attempt"))  # fmt: skip
    if handles:
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")


def _span(row: dict[Any, Any], end: float) -> tuple[float, float]:
    """Where a branch's status bar starts and ends (queue time for one that never started)."""
    queued, started, finished = (float(row[c]) for c in ("queued_s", "started_s", "finished_s"))
    left = queued if math.isnan(started) else started
    return left, end if math.isnan(finished) else finished
