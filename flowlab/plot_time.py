"""Plots of one run over time: :func:`timeline` (a Gantt chart) and :func:`concurrency`."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from flowlab.errors import ConfigError, check_one_of
from flowlab.limits import Limiter
from flowlab.plot_style import (
    STATUS_COLORS,
    WAIT_ALPHA,
    branch_rows,
    legend_handles,
    new_axes,
    seconds,
    text,
)

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes

    from flowlab.record import RunResult

__all__ = ["concurrency", "timeline"]

_BY = ("branch", "worker")
_MAX_LABELS = 80


def _winners(result: RunResult) -> set[tuple[str, str]]:
    """``(step, branch)`` pairs that won at least one merged path."""
    out: set[tuple[str, str]] = set()
    frame = result.merges
    for step, winner in zip(frame["step"].tolist(), frame["winner"].tolist(), strict=True):
        names: Iterable[Any] = (
            winner if isinstance(winner, list | tuple | set | frozenset) else [winner]
        )
        out.update((str(step), n) for n in names if isinstance(n, str) and n)
    return out


def timeline(
    result: RunResult,
    ax: Axes | None = None,
    *,
    by: str = "branch",
    wait: bool = True,
    ranks: bool = True,
    winners: bool = True,
    legend: bool = True,
    height: float = 0.6,
    **kwargs: Any,
) -> Axes:
    """A Gantt chart of a run: one bar per branch, coloured by status.

    Each branch gets one status bar from ``started_s`` to ``finished_s`` (a branch cancelled
    before it started gets a hatched bar over its queue time instead). The queue wait, from
    ``queued_s`` to ``started_s``, is drawn lighter in front of it. Nested branches sit right under
    their parent branch, indented. The completion rank (``#3``) is written after each bar and
    branches that won a merged field are marked with a star. Beyond 80 rows only every n-th row
    is labelled.

    Parameters
    ----------
    result : RunResult
    ax : matplotlib Axes, optional
        Draw here; by default a new figure sized to the number of rows.
    by : {"branch", "worker"}, default "branch"
        ``"worker"``: one row per worker (the ``worker`` column, filled by remote backends).
    wait, ranks, winners, legend : bool, default True
        Draw queue waits / completion ranks / merge-winner stars / the status legend.
    height : float, default 0.6
        Bar height in row units.
    **kwargs
        Passed to ``Axes.barh`` for the status bars (``edgecolor``, ``linewidth``, ...).

    Returns
    -------
    matplotlib.axes.Axes
    """
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
        order = [(i, 0) for i in range(len(frame))]
        ys = [row_of.get(w, len(workers)) for w in frame["worker"].tolist()]
        labels = [text(w) for w in workers]
        if any(not w for w in frame["worker"].tolist()):
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
    ax = new_axes(ax, (8.0, max(2.0, 0.38 * n_rows + 1.2)))

    from matplotlib.colors import to_rgba

    won = _winners(result) if winners else set()
    lefts, widths, colors, hatches, gids, rows = [], [], [], [], [], []
    wait_bars: list[tuple[float, float, float, Any, str]] = []
    stars: list[tuple[float, float]] = []
    records = frame.to_dict("records")
    for (i, _depth), y in zip(order, ys, strict=True):
        row = records[i]
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
        if wait and by == "branch" and not never_started and started > queued:
            wait_bars.append(
                (float(y), queued, started - queued, to_rgba(color, WAIT_ALPHA), row["path"])
            )
        if ranks and not pd.isna(row["completion_rank"]):
            ax.text(
                finished, y, f" #{int(row['completion_rank'])}", va="center", ha="left",
                fontsize="x-small", color="#333333", gid=f"rank:{row['path']}",
            )  # fmt: skip
        if (str(row["step"]), str(row["branch"])) in won and status == "ok":
            stars.append((left + max(0.0, finished - left) / 2, float(y)))

    if wait_bars:
        wb = ax.barh(
            [w[0] for w in wait_bars], [w[2] for w in wait_bars], left=[w[1] for w in wait_bars],
            height=height, color=[w[3] for w in wait_bars], edgecolor="none", label="_wait",
        )  # fmt: skip
        for patch, w in zip(wb.patches, wait_bars, strict=True):
            patch.set_gid(f"wait:{w[4]}")
    bar_kwargs: dict[str, Any] = {"edgecolor": "white", "linewidth": 0.5, **kwargs}
    bars = ax.barh(
        rows, widths, left=lefts, height=height, color=colors, label="_run", **bar_kwargs
    )
    for patch, gid, hatch in zip(bars.patches, gids, hatches, strict=True):
        patch.set_gid(gid)
        if hatch:
            patch.set_hatch(hatch)
            patch.set_alpha(0.6)
    if stars:
        ax.scatter(
            [s[0] for s in stars], [s[1] for s in stars], marker="*", s=90, color="#f5d000",
            edgecolors="#333333", linewidths=0.5, zorder=3, label="merge winner", gid="winners",
        )  # fmt: skip

    every = math.ceil(n_rows / _MAX_LABELS)  # ticks are costly and unreadable by the hundred
    ax.set_yticks(range(0, n_rows, every), labels[::every])
    ax.set_ylim(n_rows - 0.5, -0.5)
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
    if legend:
        statuses = frame["status"].astype(str).tolist()
        handles = legend_handles(statuses, wait=bool(wait_bars), winners=bool(stars))
        if handles:
            ax.legend(
                handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small"
            )
    return ax


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


def _initial_limit(limit_repr: str) -> int | None:
    match = re.fullmatch(r"Fixed\((\d+)\)", limit_repr.strip())
    if match:
        return int(match.group(1))
    match = re.search(r"\bmin=(\d+)", limit_repr)
    return int(match.group(1)) if match else None


def _in_flight(frame: pd.DataFrame, end: float) -> tuple[list[float], list[int]]:
    deltas: list[tuple[float, int]] = []
    for s, f in zip(frame["started_s"].tolist(), frame["finished_s"].tolist(), strict=True):
        if not math.isnan(s):
            deltas += [(float(s), 1), (float(f) if not math.isnan(f) else end, -1)]
    deltas.sort()  # at equal times the -1 comes first: back-to-back branches do not spike
    xs, ys, level = [0.0], [0], 0
    for t, d in deltas:
        level += d
        if xs[-1] == t:
            ys[-1] = level
        else:
            xs.append(t)
            ys.append(level)
    keep = [i for i in range(len(xs)) if i == 0 or ys[i] != ys[i - 1]]  # drop no-change points
    xs, ys = [xs[i] for i in keep], [ys[i] for i in keep]
    if end > xs[-1]:
        xs.append(end)
        ys.append(level)
    return xs, ys


def concurrency(
    result: RunResult,
    ax: Axes | None = None,
    *,
    step: str | None = None,
    limit: int | Limiter | None = None,
    **kwargs: Any,
) -> Axes:
    """Work in flight over time as a step line, with each cap overlaid as a dashed line.

    Without ``step``, the line counts running *leaf steps* (the callables doing the work, inside
    branches or not: what a run-wide cap bounds, and what ``summary()["peak_concurrency"]``
    counts), and the caps of the Parallels whose branches are all leaves are overlaid. With
    ``step=`` (a Parallel's name or path) the line counts that step's branches and its cap is
    overlaid: use it for a step whose branches hold nested Parallels. A cap is drawn from the step's start to its
    end; a limiter that moved (adaptive, AIMD) follows every move in ``result.limits``.

    Parameters
    ----------
    result : RunResult
    ax : matplotlib Axes, optional
    step : str, optional
        A Parallel step's name or path.
    limit : int or Limiter, optional
        The run-wide cap given to ``fl.run(max_concurrency=...)``, if any: a run result does not
        record a fixed run-wide cap, so pass it to see it.
    **kwargs
        Passed to ``Axes.step`` for the in-flight line.

    Returns
    -------
    matplotlib.axes.Axes
    """
    frame = result.branches
    steps = result.steps
    parallels = steps.loc[steps["kind"].astype(str) == "parallel"]
    if step is not None:
        names = sorted(set(parallels["step"].tolist()) | set(parallels["path"].tolist()))
        check_one_of("step", step, names)
        chosen = parallels.loc[(parallels["step"] == step) | (parallels["path"] == step)]
        owners = set(zip(chosen["parent"].tolist(), chosen["step"].tolist(), strict=True))
        rows = frame.loc[
            [
                (p, s) in owners
                for p, s in zip(frame["parent"].tolist(), frame["step"].tolist(), strict=True)
            ]
        ]
    else:
        # leaf steps: the unit of work that a run-wide cap bounds and summary() counts
        rows = steps.loc[steps["kind"].astype(str) == "step"]
        has_children = set(frame["parent"].tolist())
        # caps drawn by default: those of Parallels whose branches are all leaves
        owners = {
            (p, s)
            for p, s, path in zip(frame["parent"], frame["step"], frame["path"], strict=True)
            if path in has_children
        }
        chosen = parallels.loc[
            [
                (p, s) not in owners
                for p, s in zip(parallels["parent"], parallels["step"], strict=True)
            ]
        ]
    ax = new_axes(ax, (8.0, 3.0))
    end = result.makespan_s
    xs, ys = _in_flight(rows, end)
    line_kwargs: dict[str, Any] = {"where": "post", "color": "#2f6690", "linewidth": 2.0,
                                   "label": f"{text(step)} branches" if step else "leaf steps",
                                   **kwargs}  # fmt: skip
    (line,) = ax.step(xs, ys, **line_kwargs)
    line.set_gid("in_flight")
    top = max(ys)
    limits = result.limits
    for path, started, finished, lim in zip(
        chosen["path"].tolist(), chosen["started_s"].tolist(), chosen["finished_s"].tolist(),
        chosen["limit"].tolist(), strict=True,
    ):  # fmt: skip
        moves = limits.loc[limits["step"] == path]
        lx, ly = _limit_series(
            _initial_limit(str(lim)), float(started), float(finished) if not math.isnan(finished) else end,
            moves["time"].tolist(), moves["limit"].tolist(),
        )  # fmt: skip
        if lx:
            ax.step(lx, ly, where="post", linestyle="--", linewidth=1.5, color="#d1495b",
                    label=f"limit ({text(path)})", gid=f"limit:{path}")  # fmt: skip
            top = max(top, *ly)
    run_moves = limits.loc[limits["step"] == "run"]
    initial = limit.initial() if isinstance(limit, Limiter) else limit
    lx, ly = _limit_series(
        initial, 0.0, end, run_moves["time"].tolist(), run_moves["limit"].tolist()
    )
    if lx:
        ax.step(lx, ly, where="post", linestyle="-.", linewidth=1.5, color="#7b2d26",
                label="limit (run)", gid="limit:run")  # fmt: skip
        top = max(top, *ly)
    ax.set_ylim(0, top + 1)
    ax.set_xlim(0, max(end, xs[-1]) or 1.0)
    from matplotlib.ticker import MaxNLocator

    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("seconds from run start")
    ax.set_ylabel("in flight")
    ax.set_title("concurrency" + (f" of {text(step)}" if step else ""))
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize="small")
    return ax


def _limit_series(
    initial: int | None, start: float, end: float, times: Sequence[float], values: Sequence[int]
) -> tuple[list[float], list[int]]:
    if initial is None and not values:
        return [], []
    xs: list[float] = []
    ys: list[int] = []
    if initial is not None:
        xs.append(start)
        ys.append(int(initial))
    for t, v in zip(times, values, strict=True):
        xs.append(float(t))
        ys.append(int(v))
    xs.append(max(end, xs[-1]))
    ys.append(ys[-1])
    return xs, ys
