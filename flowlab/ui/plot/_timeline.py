"""A run over time: :func:`timeline`, a Gantt chart of its branches.

:func:`concurrency` lives in :mod:`flowlab.ui.plot._concurrency` and is re-exported here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from flowlab.errors import ConfigError, check_one_of
from flowlab.ui.plot._concurrency import concurrency
from flowlab.ui.plot._style import (
    BREACH_COLOR,
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

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes

    from flowlab.results.record import RunResult

__all__ = ["concurrency", "timeline"]

_BY = ("branch", "worker")

_MAX_LABELS = 80
_TICK_COLOR = "#2b2d42"  # ticks at failed attempts
_COMPACT_ROWS = 40  # beyond this many rows a new figure is compact ...
_COMPACT_IN = 8.0  # ... and this tall, in inches


def _merged_winners(result: RunResult) -> set[str]:
    """Paths of branches that won a merged field *and* whose win reached the run's result.

    A win is thrown away when the Parallel that merged it, or any branch or Parallel around it,
    did not end ``ok`` (a failed sibling under ``propagate``, a failed outer branch, ...).
    """
    won: set[tuple[str, str]] = set()
    merges = result.merges
    for step, winner in zip(merges["step"].tolist(), merges["winner"].tolist(), strict=True):
        names: Iterable[Any] = (
            winner if isinstance(winner, list | tuple | set | frozenset) else [winner]
        )
        won.update((str(step), n) for n in names if isinstance(n, str) and n)
    if not won:
        return set()
    steps = result.steps
    parallel_ok = {
        (str(p), str(s)): str(st) == "ok"
        for p, s, st, k in zip(steps["parent"], steps["step"], steps["status"], steps["kind"], strict=True)
        if str(k) == "parallel"
    }  # fmt: skip
    frame = result.branches
    rows = {
        str(path): (str(parent), str(step), str(branch), str(status))
        for path, parent, step, branch, status in zip(
            frame["path"], frame["parent"], frame["step"], frame["branch"], frame["status"],
            strict=True,
        )
    }  # fmt: skip

    def kept(path: str) -> bool:
        parent, step, _, status = rows[path]
        if status != "ok" or not parallel_ok.get((parent, step), False):
            return False
        return kept(parent) if parent in rows else True

    return {p for p, (_, step, branch, _) in rows.items() if (step, branch) in won and kept(p)}


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


def _breaches(ax: Axes, result: RunResult) -> bool:
    """A dashed line and a label where the usage budget was crossed; whether there was one."""
    events = result.events
    rows = events.loc[events["kind"].astype(str) == "usage_breach"]
    for t, detail in zip(rows["time_s"].tolist(), rows["detail"].astype(str).tolist(), strict=True):
        what = detail.split(": ", 1)[-1].split(" (", 1)[0]
        ax.axvline(float(t), color=BREACH_COLOR, linestyle="--", linewidth=1.2, gid="breach")
        late = float(t) > 0.5 * ax.get_xlim()[1]  # write it on the side with room
        label = f"budget breach: {text(what)}"
        ax.text(
            float(t), 0.0, f"{label} " if late else f" {label}",
            color=BREACH_COLOR, fontsize="x-small", va="bottom", ha="right" if late else "left",
            transform=ax.get_xaxis_transform(), gid="breach-label", clip_on=True,
        )  # fmt: skip
    return not rows.empty


_HELD = ("ran on in its thread", "still running in its thread")  # see flowlab.thread_call


def _thread_tails(ax: Axes, result: RunResult, ends: dict[str, tuple[float, float]]) -> None:
    """After a branch's bar, a thin dotted bar while a cancelled sync step of it ran on in its
    worker thread (holding its slot: see :mod:`flowlab.thread_call`). ``ends``: branch path ->
    (row y, finished_s)."""
    steps = result.steps
    for path, parent, error, finished in zip(
        steps["path"], steps["parent"], steps["error"].astype(str), steps["finished_s"],
        strict=True,
    ):  # fmt: skip
        if str(parent) not in ends or not any(h in error for h in _HELD):
            continue
        y, end = ends[str(parent)]
        ax.barh(
            [y], [max(0.0, float(finished) - end)], left=[end], height=0.15, color="#888888",
            hatch="..", alpha=0.7, edgecolor="#555555", linewidth=0.5, gid=f"thread:{path}",
            label="_thread",
        )  # fmt: skip


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
    import pandas as pd

    check_one_of("by", by, _BY)
    frame = result.branches
    if by == "worker":
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
        n_rows = len(labels)
    else:
        order = branch_rows(frame)
        ys = list(range(len(order)))
        labels = []
        for i, depth in order:
            name = text(frame["branch"].iat[i])
            labels.append(("    " * (depth - 1) + "└ " + name) if depth else name)
        n_rows = len(order)
    if compact is None:
        compact = ax is None and n_rows > _COMPACT_ROWS
    tall = max(2.0, 0.38 * n_rows + 1.2)
    ax = new_axes(ax, (8.0, min(tall, _COMPACT_IN) if compact else tall))
    ranks = ranks and not compact

    from matplotlib.colors import to_rgba

    won = _merged_winners(result) if winners else set()
    lefts, widths, colors, hatches, gids, rows, heights = [], [], [], [], [], [], []
    wait_bars: list[tuple[float, float, float, Any, str]] = []
    stars: list[tuple[float, float]] = []
    ends: dict[str, tuple[float, float]] = {}  # branch path -> (its row's y, where its bar ends)
    records = frame.to_dict("records")
    spans = [_span(records[i], result.makespan_s) for i, _ in order]
    lanes = (
        _lanes([(y, a, b) for y, (a, b) in zip(ys, spans, strict=True)]) if by == "worker" else {}
    )
    for k, ((i, _depth), row_y) in enumerate(zip(order, ys, strict=True)):
        row = records[i]
        lane, n_lanes = lanes.get(k, (0, 1))
        bar_h = height / n_lanes
        y = row_y - height / 2 + (lane + 0.5) * bar_h
        status = str(row["status"])
        color = STATUS_COLORS.get(status, "#999999")
        queued, started, finished = (
            float(row["queued_s"]),
            float(row["started_s"]),
            float(row["finished_s"]),
        )
        if math.isnan(finished):
            finished = result.makespan_s
        never_started = math.isnan(started)
        left = queued if never_started else started
        lefts.append(left)
        widths.append(max(0.0, finished - left))
        colors.append(color)
        hatches.append("//" if never_started else None)
        gids.append(f"run:{row['path']}")
        rows.append(y)
        heights.append(bar_h)
        if wait and by == "branch" and not never_started and started > queued:
            wait_bars.append(
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
            stars.append((left + max(0.0, finished - left) / 2, float(y)))
        ends[str(row["path"])] = (float(y), finished)

    if wait_bars:
        wb = ax.barh(
            [w[0] for w in wait_bars], [w[2] for w in wait_bars], left=[w[1] for w in wait_bars],
            height=height, color=[w[3] for w in wait_bars], edgecolor="none", label="_wait",
        )  # fmt: skip
        for patch, w in zip(wb.patches, wait_bars, strict=True):
            patch.set_gid(f"wait:{w[4]}")
    edge = 0.0 if compact else 0.5  # a white edge would eat a bar a few points high
    bar_kwargs: dict[str, Any] = {"edgecolor": "white", "linewidth": edge, **kwargs}
    bars = ax.barh(
        rows, widths, left=lefts, height=heights, color=colors, label="_run", **bar_kwargs
    )
    for patch, gid, hatch in zip(bars.patches, gids, hatches, strict=True):
        patch.set_gid(gid)
        if hatch:
            patch.set_hatch(hatch)
            patch.set_alpha(0.6)
    if by == "branch":
        _thread_tails(ax, result, ends)
    if stars:
        ax.scatter(
            [s[0] for s in stars], [s[1] for s in stars], marker="*", s=90, color="#f5d000",
            edgecolors="#333333", linewidths=0.5, zorder=3, label="merge winner", gid="winners",
        )  # fmt: skip

    every = max(
        1, math.ceil(n_rows / _MAX_LABELS)
    )  # ticks are costly and unreadable by the hundred
    ax.set_yticks(range(0, n_rows, every), labels[::every])
    ax.set_ylim(max(n_rows, 1) - 0.5, -0.5)  # (a run with no branch still gets a row)
    if compact:
        fit_row_labels(ax)
    ax.set_xlim(
        left=0.0,
        right=max(
            result.makespan_s, max((a + b for a, b in zip(lefts, widths, strict=True)), default=0.0)
        )
        * 1.08
        or 1.0,
    )
    ax.set_xlabel("seconds from run start")
    ax.set_title(
        f"{text(result.pipeline_name)}: {result.status}, makespan {seconds(result.makespan_s)} s"
    )
    ax.grid(axis="x", alpha=0.3)
    if by == "branch":
        _step_separators(ax, frame, order)
    breach = _breaches(ax, result)
    ticked = (
        by == "branch" and retries and _retry_ticks(ax, result, order, rows, compact=bool(compact))
    )
    if legend:
        statuses = frame["status"].astype(str).tolist()
        handles = legend_handles(statuses, wait=bool(wait_bars), winners=bool(stars), breach=breach)
        if ticked:
            from matplotlib.lines import Line2D

            handles.append(Line2D([], [], marker="|", linestyle="none", color=_TICK_COLOR,
                                  markersize=8, label="failed attempt"))  # fmt: skip
        if handles:
            ax.legend(
                handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small"
            )
    return ax


def _retry_ticks(
    ax: Axes,
    result: RunResult,
    order: Sequence[tuple[int, int]],
    ys: Sequence[float],
    *,
    compact: bool,
) -> bool:
    """A thin tick on its branch's bar where each attempt that did not succeed ended (one
    artist, gid ``"retries"``); whether there was one. A top-level leaf has no branch row."""
    frame = result.attempts
    failed = frame.loc[frame["status"].astype(str) != "ok"]
    if failed.empty:
        return False
    paths = result.branches["path"].tolist()
    y_of = {paths[i]: y for (i, _), y in zip(order, ys, strict=True)}
    points = [
        (float(t), y_of[str(b)])
        for b, t in zip(failed["branch"].tolist(), failed["finished_s"].tolist(), strict=True)
        if str(b) in y_of and not math.isnan(float(t))
    ]
    if not points:
        return False
    ax.scatter([p[0] for p in points], [p[1] for p in points], marker="|",
               s=64.0 if compact else 144.0, color=_TICK_COLOR, linewidths=1.0, zorder=3,
               label="_retries", gid="retries")  # fmt: skip
    return True


def _step_separators(ax: Axes, frame: pd.DataFrame, order: Sequence[tuple[int, int]]) -> None:
    """A thin line between top-level groups that belong to different step runs."""
    prev: str | None = None
    for y, (i, depth) in enumerate(order):
        if depth:
            continue
        key = f"{frame['parent'].iat[i]}|{frame['step'].iat[i]}"
        if prev is not None and key != prev:
            ax.axhline(y - 0.5, color="#999999", linewidth=0.6, linestyle=":", gid="step-separator")
        prev = key


def _span(row: dict[Any, Any], end: float) -> tuple[float, float]:
    """Where a branch's status bar starts and ends (queue time for one that never started)."""
    queued, started, finished = (float(row[c]) for c in ("queued_s", "started_s", "finished_s"))
    left = queued if math.isnan(started) else started
    return left, end if math.isnan(finished) else finished
