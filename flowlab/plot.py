"""Pictures of runs and comparisons: ``timeline``, ``concurrency``, ``merges``, ``compare``.

Every function follows seaborn's contract: pass ``ax=`` to draw into an existing Axes (otherwise a
new figure is made), get the Axes back, pass extra keyword arguments on to the main artist, and
nothing is ever shown for you (no ``plt.show()``). matplotlib is imported inside the functions, so
``import flowlab`` stays light.

Artists carry a ``gid`` so they can be found again (tests inspect artists, not pixels):
``"run:<branch path>"`` and ``"wait:<branch path>"`` for timeline bars, ``"in_flight"`` and
``"limit:<step path>"`` for concurrency lines, ``"cell:<row>|<field>"`` for merge-matrix cells.

Examples
--------
>>> import flowlab as fl                                         # doctest: +SKIP
>>> ax = fl.plot.timeline(result)                                # doctest: +SKIP
>>> fl.plot.concurrency(result, ax=axes[1])                      # doctest: +SKIP
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from flowlab.errors import ConfigError, check_one_of
from flowlab.limits import Limiter

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes

    from flowlab.experiment import Comparison
    from flowlab.record import RunResult

__all__ = ["STATUS_COLORS", "compare", "concurrency", "merges", "timeline"]

STATUS_COLORS: dict[str, str] = {
    "ok": "#4c9f70",
    "failed": "#d1495b",
    "cancelled": "#8d99ae",
    "timeout": "#edae49",
    "queued": "#c9d3dd",
    "running": "#5dade2",
}
"""Colour of a branch bar per status (hex strings, usable as matplotlib colours)."""

_WAIT_ALPHA = 0.3
_BY = ("branch", "worker")


def _new_axes(ax: Axes | None, size: tuple[float, float]) -> Axes:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, new = plt.subplots(figsize=size, layout="constrained")
    return new


def _text(value: Any) -> str:
    """A user string made safe for matplotlib text: ``$`` would start mathtext."""
    return str(value).replace("$", r"\$")


def _branch_rows(frame: pd.DataFrame) -> list[tuple[int, int]]:
    """Row order for the timeline: ``(frame position, depth)``, children right under parents."""
    paths = frame["path"].tolist()
    parents = frame["parent"].tolist()
    known = set(paths)
    children: dict[str, list[int]] = {}
    roots: list[int] = []
    for i, parent in enumerate(parents):
        if parent and parent in known:
            children.setdefault(parent, []).append(i)
        else:
            roots.append(i)
    out: list[tuple[int, int]] = []

    def visit(i: int, depth: int) -> None:
        out.append((i, depth))
        for child in children.get(paths[i], []):
            visit(child, depth + 1)

    for i in roots:
        visit(i, 0)
    return out


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
    branches that won a merged field are marked with a star.

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
    from matplotlib.patches import Patch

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
        labels = [_text(w) for w in workers]
        if any(not w for w in frame["worker"].tolist()):
            labels.append("(local)")
        n_rows = len(labels)
    else:
        order = _branch_rows(frame)
        ys = list(range(len(order)))
        labels = []
        for i, depth in order:
            name = _text(frame["branch"].iat[i])
            labels.append(("    " * (depth - 1) + "└ " + name) if depth else name)
        n_rows = len(order)
    ax = _new_axes(ax, (8.0, max(2.0, 0.38 * n_rows + 1.2)))

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
                (float(y), queued, started - queued, to_rgba(color, _WAIT_ALPHA), row["path"])
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

    ax.set_yticks(range(n_rows), labels)
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
        f"{_text(result.pipeline_name)}: {result.status}, makespan {result.makespan_s:g} s"
    )
    ax.grid(axis="x", alpha=0.3)
    if by == "branch":
        _step_separators(ax, frame, order)
    if legend:
        present = [s for s in STATUS_COLORS if s in set(frame["status"].astype(str).tolist())]
        handles: list[Any] = [Patch(color=STATUS_COLORS[s], label=s) for s in present]
        if wait_bars:
            handles.append(Patch(color=to_rgba("#4c9f70", _WAIT_ALPHA), label="queue wait"))
        if stars:
            from matplotlib.lines import Line2D

            handles.append(Line2D([], [], marker="*", linestyle="none", markersize=10,
                                  markerfacecolor="#f5d000", markeredgecolor="#333333",
                                  label="merge winner"))  # fmt: skip
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
    ax = _new_axes(ax, (8.0, 3.0))
    end = result.makespan_s
    xs, ys = _in_flight(rows, end)
    line_kwargs: dict[str, Any] = {"where": "post", "color": "#2f6690", "linewidth": 2.0,
                                   "label": f"{_text(step)} branches" if step else "leaf steps",
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
                    label=f"limit ({_text(path)})", gid=f"limit:{path}")  # fmt: skip
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
    ax.set_title("concurrency" + (f" of {_text(step)}" if step else ""))
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


def _field(path: str) -> str:
    """``tags[3]`` -> ``tags``: list positions collapse onto their field."""
    return re.sub(r"\[\d+\]", "", path)


def merges(
    result: RunResult, ax: Axes | None = None, *, step: str | None = None, **kwargs: Any
) -> Axes:
    """Who wrote what: a branch × field matrix for the Parallel steps of a run.

    A filled cell means the branch changed that field (list items collapse onto their field);
    a hatched cell is a change by a branch that did not succeed (recorded, never merged). The
    branch whose value the merge kept is starred, and fields whose merge found a conflict get a
    red frame and a red label.

    Parameters
    ----------
    result : RunResult
    ax : matplotlib Axes, optional
    step : str, optional
        Only this Parallel step (by name). Default: every step, rows named ``step:branch`` when
        there is more than one.
    **kwargs
        Passed to every cell ``Rectangle`` (``alpha``, ``edgecolor``, ...).

    Returns
    -------
    matplotlib.axes.Axes
    """
    from matplotlib.colors import to_rgba
    from matplotlib.patches import Rectangle

    diffs = result.diffs
    merged = result.merges
    if step is not None:
        check_one_of(
            "step", step, sorted(set(diffs["step"].tolist()) | set(merged["step"].tolist()))
        )
        diffs = diffs.loc[diffs["step"] == step]
        merged = merged.loc[merged["step"] == step]
    many = len(set(diffs["step"].tolist())) > 1

    def key(s: str, b: str) -> str:
        return f"{s}:{b}" if many else b

    branches = result.branches
    steps = set(diffs["step"].tolist()) | set(merged["step"].tolist())
    rows: dict[str, str] = {}  # row key -> status of that branch, in timeline order
    for i, _depth in _branch_rows(branches):
        if branches["step"].iat[i] in steps:
            rows.setdefault(key(str(branches["step"].iat[i]), str(branches["branch"].iat[i])),
                            str(branches["status"].iat[i]))  # fmt: skip
    cells: dict[tuple[str, str], str] = {}
    for s, b, status, path in zip(diffs["step"], diffs["branch"], diffs["branch_status"].astype(str),
                                  diffs["path"], strict=True):  # fmt: skip
        rows.setdefault(key(s, b), status)
        cells[(key(s, b), _field(path))] = status
    fields = list(dict.fromkeys(f for _, f in cells))
    winners: set[tuple[str, str]] = set()
    conflicts: set[str] = set()
    for s, path, winner, conflict in zip(merged["step"], merged["path"], merged["winner"],
                                         merged["conflict"], strict=True):  # fmt: skip
        hit = [f for f in fields if f == _field(path) or f.startswith(_field(path) + ".")]
        if conflict:
            conflicts.update(hit)
        names = winner if isinstance(winner, list | tuple | set | frozenset) else [winner]
        for n in names:
            if isinstance(n, str) and n:
                winners.update((key(s, n), f) for f in hit)
    ax = _new_axes(ax, (max(4.0, 1.1 * len(fields) + 2.5), max(2.0, 0.45 * len(rows) + 1.5)))
    row_names = list(rows)
    for (r, f), status in cells.items():
        y, x = row_names.index(r), fields.index(f)
        ok = status == "ok"
        color = STATUS_COLORS.get(status, "#999999")
        cell_kwargs: dict[str, Any] = {
            "facecolor": color if ok else to_rgba(color, _WAIT_ALPHA),
            "edgecolor": STATUS_COLORS["failed"]
            if f in conflicts
            else (color if not ok else "white"),
            "linewidth": 2.5 if f in conflicts else 1.0,
            "hatch": None if ok else "//",
            **kwargs,
        }
        ax.add_patch(Rectangle((x - 0.45, y - 0.45), 0.9, 0.9, gid=f"cell:{r}|{f}", **cell_kwargs))
        if (r, f) in winners:
            ax.plot([x], [y], marker="*", markersize=13, color="#f5d000", markeredgecolor="#333333",
                    markeredgewidth=0.5, linestyle="none", gid=f"winner:{r}|{f}")  # fmt: skip
    ax.set_xticks(range(len(fields)), [_text(f) for f in fields], rotation=30, ha="right")
    for label, f in zip(ax.get_xticklabels(), fields, strict=True):
        if f in conflicts:
            label.set_color(STATUS_COLORS["failed"])
            label.set_fontweight("bold")
    ax.set_yticks(range(len(row_names)), [_text(r) for r in row_names])
    ax.set_xlim(-0.5, max(len(fields), 1) - 0.5)
    ax.set_ylim(max(len(row_names), 1) - 0.5, -0.5)
    ax.set_xlabel("field")
    ax.set_title("who wrote what")
    _merge_legend(ax, set(cells.values()), bool(winners), bool(conflicts))
    if not cells:
        ax.text(0.5, 0.5, "no branch changed the context", transform=ax.transAxes, ha="center")
    return ax


def _merge_legend(ax: Axes, statuses: set[str], winners: bool, conflicts: bool) -> None:
    from matplotlib.colors import to_rgba
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles: list[Any] = []
    if "ok" in statuses:
        handles.append(Patch(color=STATUS_COLORS["ok"], label="changed (branch ok)"))
    for status in sorted(statuses - {"ok"}):
        color = STATUS_COLORS.get(status, "#999999")
        handles.append(Patch(facecolor=to_rgba(color, _WAIT_ALPHA), edgecolor=color, hatch="//",
                             label=f"changed, not merged (branch {status})"))  # fmt: skip
    if winners:
        handles.append(Line2D([], [], marker="*", linestyle="none", markersize=11,
                              color="#f5d000", label="value kept by the merge"))  # fmt: skip
    if conflicts:
        handles.append(Patch(facecolor="white", edgecolor=STATUS_COLORS["failed"], linewidth=2.5,
                             label="conflict"))  # fmt: skip
    if handles:
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")


def compare(
    comparison: Comparison | pd.DataFrame,
    x: str | None = None,
    y: str = "makespan_s",
    hue: str | None = None,
    ax: Axes | None = None,
    *,
    dodge: bool = False,
    **kwargs: Any,
) -> Axes:
    """One line per ``hue`` level: the mean of ``y`` against ``x``, error bars over repeats.

    Parameters
    ----------
    comparison : Comparison or DataFrame
        ``fl.compare(...)``'s result or its ``.frame``.
    x : str, optional
        A column; default the first grid key with numbers (else the first grid key).
    y : str, default "makespan_s"
    hue : str, optional
        A column; default the first other grid key.
    ax : matplotlib Axes, optional
    dodge : bool, default False
        Shift each ``hue`` level's points sideways a little, so lines that coincide stay visible.
    **kwargs
        Passed to ``Axes.errorbar`` (``capsize``, ``marker``, ...).

    Returns
    -------
    matplotlib.axes.Axes
        Error bars are one standard deviation over the rows that share ``(hue, x)``.
    """
    import pandas as pd

    frame = comparison if isinstance(comparison, pd.DataFrame) else comparison.frame
    keys = list(getattr(comparison, "grid", {})) or [c for c in frame.columns if c != "repeat"][:2]
    columns = [str(c) for c in frame.columns]
    if x is None:
        numeric = [k for k in keys if k in columns and pd.api.types.is_numeric_dtype(frame[k])]
        x = (numeric or keys or columns)[0]
    if hue is None:
        others = [k for k in keys if k != x]
        hue = others[0] if others else None
    for param, value in (("x", x), ("y", y), ("hue", hue)):
        if value is not None:
            check_one_of(param, value, columns)
    ax = _new_axes(ax, (6.0, 4.0))
    numeric_x = pd.api.types.is_numeric_dtype(frame[x]) and not frame[x].isna().any()
    x_levels = list(dict.fromkeys(_level(v) for v in frame[x].tolist()))
    if numeric_x:
        x_levels.sort()
    position = {v: (float(v) if numeric_x else float(i)) for i, v in enumerate(x_levels)}
    hue_levels = list(dict.fromkeys(_level(v) for v in frame[hue].tolist())) if hue else [None]
    eb_kwargs: dict[str, Any] = {"marker": "o", "capsize": 3, **kwargs}
    gaps = [
        b - a
        for a, b in zip(sorted(position.values()), sorted(position.values())[1:], strict=False)
    ]
    step = 0.3 * min(gaps, default=1.0) / max(len(hue_levels), 1) if dodge else 0.0
    for n, level in enumerate(hue_levels):
        shift = (n - (len(hue_levels) - 1) / 2) * step
        sub = frame if hue is None else frame.loc[[_level(v) == level for v in frame[hue].tolist()]]
        xs, means, errs = [], [], []
        for xv in x_levels:
            vals = pd.to_numeric(
                sub.loc[[_level(v) == xv for v in sub[x].tolist()], y], errors="coerce"
            ).dropna()
            if len(vals):
                xs.append(position[xv] + shift)
                means.append(float(vals.mean()))
                errs.append(float(vals.std(ddof=1)) if len(vals) > 1 else 0.0)
        ax.errorbar(xs, means, yerr=errs, label=_text(level) if hue else _text(y), **eb_kwargs)
    if not numeric_x:
        ax.set_xticks([position[v] for v in x_levels], [_text(v) for v in x_levels])
    ax.set_xlabel(_text(x))
    ax.set_ylabel(_text(y))
    ax.grid(alpha=0.3)
    if hue:
        ax.legend(title=_text(hue), fontsize="small")
    return ax


def _level(value: Any) -> Any:
    """Group key: missing values (``None`` = no cap) become the label ``"none"``."""
    try:
        import pandas as pd

        if value is None or (not isinstance(value, str) and bool(pd.isna(value))):
            return "none"
    except (TypeError, ValueError):
        pass
    return value
