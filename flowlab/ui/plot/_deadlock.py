"""Pictures of a ``DeadlockReport`` and of an explorer ``Outcome``, drawn with matplotlib only.

Design
------
* :func:`plot_graph` -- the wait-for graph. Nodes sit on a circle, the cycle's nodes first and in
  cycle order so the cycle reads as a ring; tasks are rounded boxes, resources square boxes.
  Each edge is one ``FancyArrowPatch`` (so tests can count ``ax.patches``); edges on the cycle are
  :data:`CYCLE_COLOR` and thicker, the others :data:`EDGE_COLOR`. No networkx needed.
* :func:`plot_timeline` -- a Gantt of holds (solid :data:`HOLD_COLOR`) and waits (hatched
  :data:`WAIT_COLOR`) per task, with the detection instant as a red vertical line.
* :func:`plot_swimlanes` -- an explorer run: one lane per task, a bar per turn (the steps a task
  ran between two switches), the failure as a red line and cross.
* :func:`plot_position` -- the scheduler game's lock state: tasks on the left (ready ones green),
  resources on the right, a solid :data:`HOLD_COLOR` arrow from a resource to its holder and a
  dashed :data:`WAIT_COLOR` arrow from a waiting task to its resource.

Both take ``ax=None`` (then make their own figure), pass ``**kwargs`` to the main artists, return
the Axes and never call ``plt.show()``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from flowlab.study.deadlock.game import Position
    from flowlab.study.deadlock.report import DeadlockReport
    from flowlab.study.deadlock.runner import Outcome

__all__ = [
    "CYCLE_COLOR",
    "EDGE_COLOR",
    "HOLD_COLOR",
    "WAIT_COLOR",
    "plot_graph",
    "plot_position",
    "plot_swimlanes",
    "plot_timeline",
]

CYCLE_COLOR = "#d62728"
EDGE_COLOR = "#8c8c8c"
HOLD_COLOR = "#1f77b4"
WAIT_COLOR = "#ff7f0e"


def _axes(ax: Axes | None, size: tuple[float, float]) -> Axes:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, new = plt.subplots(figsize=size)
    return new


def plot_graph(report: DeadlockReport, ax: Axes | None = None, **kwargs: Any) -> Axes:
    """Draw the wait-for graph of ``report`` with its cycle highlighted; return the Axes."""
    from matplotlib.patches import FancyArrowPatch

    ax = _axes(ax, (6.0, 6.0))
    nodes: list[str] = []
    for name in report.cycle:
        if name not in nodes:
            nodes.append(name)
    for edge in report.edges:
        for name in (edge.source, edge.target):
            if name not in nodes:
                nodes.append(name)
    if not nodes:
        ax.text(0.5, 0.5, "no deadlock: nothing waits", ha="center", va="center")
        ax.set_axis_off()
        return ax
    tasks = set(report.tasks) | set(report.stuck)
    pos: dict[str, tuple[float, float]] = {}
    for i, name in enumerate(nodes):
        angle = math.pi / 2 - 2 * math.pi * i / len(nodes)
        pos[name] = (math.cos(angle), math.sin(angle))
    for edge in report.edges:
        color = CYCLE_COLOR if edge.in_cycle else EDGE_COLOR
        arrow = FancyArrowPatch(
            pos[edge.source],
            pos[edge.target],
            arrowstyle="-|>",
            mutation_scale=16,
            shrinkA=28,
            shrinkB=28,
            connectionstyle="arc3,rad=0.12",
            color=color,
            linewidth=2.6 if edge.in_cycle else 1.2,
            zorder=1,
            label="cycle" if edge.in_cycle else edge.kind,
            **kwargs,
        )
        ax.add_patch(arrow)
        (x1, y1), (x2, y2) = pos[edge.source], pos[edge.target]
        # on the arc, not on the chord: two edges between one pair (a waits for b, b holds
        # what a wants) bend to opposite sides, so their labels never land on each other
        mx = (x1 + x2) / 2 + 0.5 * 0.12 * (y2 - y1)
        my = (y1 + y2) / 2 - 0.5 * 0.12 * (x2 - x1)
        ax.text(
            mx,
            my,
            edge.kind,
            fontsize=8,
            color=color,
            ha="center",
            va="center",
            zorder=2,
            bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.8},
        )
    for name, (x, y) in pos.items():
        is_task = name in tasks
        stuck = name in report.stuck or name in report.cycle
        ax.text(
            x,
            y,
            name,
            ha="center",
            va="center",
            fontsize=9,
            zorder=3,
            bbox={
                "boxstyle": "round,pad=0.4" if is_task else "square,pad=0.4",
                "fc": "#fde0dd" if (stuck and is_task) else "#eef3fb",
                "ec": CYCLE_COLOR if name in report.cycle else "#444444",
            },
        )
    ax.set_xlim(-1.5, 1.5)
    ax.set_ylim(-1.4, 1.4)
    ax.set_aspect("equal")
    ax.set_axis_off()
    title = "wait-for graph" + (" (cycle in red)" if report.kind == "cycle" else "")
    ax.set_title(title)
    return ax


def plot_timeline(report: DeadlockReport, ax: Axes | None = None, **kwargs: Any) -> Axes:
    """Hold/wait Gantt of ``report``: one row per task; return the Axes."""
    from matplotlib.patches import Patch

    frame = report.timeline
    order = [t for t in report.tasks if t in set(frame["task"])]
    order += [t for t in dict.fromkeys(frame["task"]) if t not in order]
    ax = _axes(ax, (8.0, 0.6 * max(len(order), 2) + 1.2))
    span = max(report.finished_at - report.started_at, 1e-9)
    min_width = span / 200
    for row_i, task in enumerate(order):
        sub = frame.loc[frame["task"] == task]
        for state, color, hatch in (("hold", HOLD_COLOR, None), ("wait", WAIT_COLOR, "//")):
            part = sub.loc[sub["state"] == state]
            if part.empty:
                continue
            bars = [
                (float(s), max(float(d), min_width))
                for s, d in zip(part["start_s"], part["duration_s"], strict=True)
            ]
            offset = -0.2 if state == "hold" else 0.2
            ax.broken_barh(
                bars,
                (row_i + offset - 0.18, 0.36),
                facecolors=color,
                hatch=hatch,
                edgecolor="white" if hatch is None else "#a35200",
                label=state,
                **kwargs,
            )
            for (start, _), resource in zip(bars, part["resource"], strict=True):
                ax.text(start, row_i + offset, f" {resource}", fontsize=8, va="center")
    if report.detected_at is not None:
        ax.axvline(report.detected_at, color=CYCLE_COLOR, linestyle="--", linewidth=1.5)
    ax.set_yticks(range(len(order)), order)
    ax.invert_yaxis()
    ax.set_xlabel(f"time (s, {report.clock} clock)")
    ax.set_title("holds and waits per task")
    ax.legend(
        handles=[
            Patch(facecolor=HOLD_COLOR, label="holds"),
            Patch(facecolor=WAIT_COLOR, hatch="//", label="waits"),
        ],
        loc="upper right",
        fontsize=8,
    )
    return ax


def plot_swimlanes(outcome: Outcome, ax: Axes | None = None, **kwargs: Any) -> Axes:
    """One lane per task of an explorer ``outcome``; a bar per turn; the end marked; the Axes.

    A *turn* is a run of consecutive steps by one task (between two switches). Bars are labelled
    with the turn's number and, for replayed or shrunk outcomes, the line where the task stopped.
    A run that did not end ``ok`` gets a red line after its last step and a red ``x`` on the
    lane of the task that ran it; the title names the status and the error.

    Parameters
    ----------
    outcome : Outcome
        One explorer run (``dl.run`` of a race, ``Exploration.shrink()``, ``dl.replay``...).
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure when omitted.
    **kwargs
        Passed to each turn's ``broken_barh``.

    Returns
    -------
    matplotlib.axes.Axes
    """
    trace = outcome.trace
    names = outcome.task_names
    lanes = list(dict.fromkeys(s.task for s in trace))
    ax = _axes(ax, (9.0, 0.7 * max(len(lanes), 2) + 1.4))
    turns: list[tuple[int, int, int]] = []  # (task, first step, last step)
    for i, step in enumerate(trace):
        if turns and turns[-1][0] == step.task:
            turns[-1] = (step.task, turns[-1][1], i)
        else:
            turns.append((step.task, i, i))
    row = {task: r for r, task in enumerate(lanes)}
    palette = [HOLD_COLOR, "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]
    for n, (task, first, last) in enumerate(turns, start=1):
        color = palette[row[task] % len(palette)]
        ax.broken_barh(
            [(first, last - first + 1)],
            (row[task] - 0.35, 0.7),
            facecolors=color,
            edgecolor="white",
            **kwargs,
        )
        where = trace[last].where
        text = f"{n}" + (f" → {where.split(' ')[0]}" if where and where != "end" else "")
        ax.text(first + 0.1, row[task], text, fontsize=7, va="center", color="white")
    end = len(trace)
    title = f"schedule {outcome.schedule!r}: {outcome.status}"
    if outcome.status != "ok":
        ax.axvline(end, color=CYCLE_COLOR, linestyle="--", linewidth=1.5)
        if trace:
            ax.plot([end], [row[trace[-1].task]], marker="x", color=CYCLE_COLOR, markersize=12)
        if outcome.error is not None and outcome.report is None:
            title += f" ({type(outcome.error).__name__}: {outcome.error})"
    ax.set_yticks(range(len(lanes)), [names[t] for t in lanes])
    ax.invert_yaxis()
    ax.set_xlim(0, max(end, 1) + 0.5)
    ax.set_xlabel("step")
    ax.set_title(title, fontsize=9)
    return ax


def plot_position(
    position: Position, ax: Axes | None = None, *, title: str = "", **kwargs: Any
) -> Axes:
    """Draw who holds what and who waits at a game position; return the Axes.

    Parameters
    ----------
    position : Position
        A :class:`~flowlab.study.deadlock.game.Position` (``SchedulerGame.state()``).
    ax : matplotlib Axes, optional
        Where to draw; a new figure when None.
    title : str
        The Axes title.
    **kwargs
        Passed to every arrow (``FancyArrowPatch``).
    """
    from matplotlib.patches import FancyArrowPatch

    ax = _axes(ax, (6.0, 3.0))
    tasks = list(dict.fromkeys([*position.tasks, *(t for t, _ in position.holds + position.waits)]))
    resources = list(dict.fromkeys(r for _, r in position.holds + position.waits))
    rows = max(len(tasks), len(resources), 1)
    where = {
        t: (0.0, rows - 1 - i * (rows - 1) / max(len(tasks) - 1, 1)) for i, t in enumerate(tasks)
    }
    spot = {
        r: (1.0, rows - 1 - i * (rows - 1) / max(len(resources) - 1, 1))
        for i, r in enumerate(resources)
    }
    if len(tasks) == 1:
        where = {tasks[0]: (0.0, (rows - 1) / 2)}
    if len(resources) == 1:
        spot = {resources[0]: (1.0, (rows - 1) / 2)}
    arrows = [(spot[r], where[t], HOLD_COLOR, "-", "holds") for t, r in position.holds]
    arrows += [(where[t], spot[r], WAIT_COLOR, "--", "waits for") for t, r in position.waits]
    for start, end, color, style, text in arrows:
        ax.add_patch(
            FancyArrowPatch(
                start,
                end,
                arrowstyle="-|>",
                mutation_scale=14,
                shrinkA=30,
                shrinkB=30,
                connectionstyle="arc3,rad=0.08",
                color=color,
                linestyle=style,
                linewidth=1.8,
                label=text,
                **kwargs,
            )
        )
    waiting = {t for t, _ in position.waits}
    for name, (x, y) in where.items():
        fill = "#e5f5e0" if name in position.ready else "#fde0dd" if name in waiting else "#eeeeee"
        box = {"boxstyle": "round,pad=0.4", "fc": fill, "ec": "#444444"}
        ax.text(x, y, name, ha="center", va="center", fontsize=9, zorder=3, bbox=box)
    for name, (x, y) in spot.items():
        box = {"boxstyle": "square,pad=0.4", "fc": "#eef3fb", "ec": "#444444"}
        ax.text(x, y, name, ha="center", va="center", fontsize=9, zorder=3, bbox=box)
    if not tasks:
        ax.text(0.5, 0.5, "no task is left", ha="center", va="center")
    ax.set_xlim(-0.6, 1.6)
    ax.set_ylim(-0.8, rows - 0.2)
    ax.set_axis_off()
    ax.set_title(title or "who holds what (solid), who waits (dashed)", fontsize=9)
    return ax
