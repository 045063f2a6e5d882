"""Shared look of flowlab's plots: status colors, legends, new axes, safe text, durations, row order."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes

__all__ = [
    "BREACH_COLOR", "STATUS_COLORS", "WAIT_ALPHA", "branch_rows", "fit_row_labels",
    "legend_handles", "new_axes", "seconds", "text",
]  # fmt: skip

STATUS_COLORS: dict[str, str] = {
    "ok": "#4c9f70",
    "failed": "#d1495b",
    "cancelled": "#8d99ae",
    "timeout": "#edae49",
    "queued": "#c9d3dd",
    "running": "#5dade2",
}
"""Color of a branch bar per status (hex strings, usable as matplotlib colors)."""

WAIT_ALPHA = 0.3
"""Opacity of queue-wait bars and of changes that were not merged."""

BREACH_COLOR = "#7b2d26"
"""Color of the line where a run's usage budget was crossed."""


def new_axes(ax: Axes | None, size: tuple[float, float]) -> Axes:
    """``ax`` itself, or the Axes of a new pyplot figure of ``size`` inches (shown inline in Jupyter)."""
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, new = plt.subplots(figsize=size, layout="constrained")
    return new


def fit_row_labels(ax: Axes, *, label_pt: float = 9.0) -> None:
    """Keep every n-th y tick label, so those that stay fit the Axes' height (``label_pt`` points
    each), in a small font."""
    ticks = list(ax.get_yticks())
    labels = [t.get_text() for t in ax.get_yticklabels()]
    fig = ax.get_figure()
    if not ticks or fig is None:
        return
    height_pt = ax.get_window_extent().height / fig.dpi * 72.0
    fit = max(1, int(0.8 * height_pt / label_pt))
    every = math.ceil(len(ticks) / fit)
    ax.set_yticks(ticks[::every], labels[::every])
    ax.tick_params(axis="y", labelsize="x-small")


def text(value: Any) -> str:
    """A user string made safe for matplotlib text: ``$`` would start mathtext."""
    return str(value).replace("$", r"\$")


def branch_rows(frame: pd.DataFrame) -> list[tuple[int, int]]:
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


def seconds(value: float) -> str:
    """A duration for a title or label: ``40``, ``13.25``, ``0.72`` — never ``0.718991``.

    Examples
    --------
    >>> [seconds(v) for v in (40.0, 13.25, 0.718991, 0.004, float("nan"))]
    ['40', '13.25', '0.72', '0.004', 'nan']
    """
    if value != value or abs(value) >= 0.1 or value == 0:
        return f"{value:.2f}".rstrip("0").rstrip(".")
    return f"{value:.2g}"


def legend_handles(
    statuses: Iterable[str], *, wait: bool = False, winners: bool = False, breach: bool = False
) -> list[Any]:
    """Legend entries for timeline bars: the statuses present (in :data:`STATUS_COLORS` order),
    then "queue wait", "merge winner" and "budget breach" when those were drawn."""
    from matplotlib.colors import to_rgba
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    present = set(statuses)
    handles: list[Any] = [Patch(color=c, label=s) for s, c in STATUS_COLORS.items() if s in present]
    if wait:
        handles.append(Patch(color=to_rgba(STATUS_COLORS["ok"], WAIT_ALPHA), label="queue wait"))
    if winners:
        handles.append(Line2D([], [], marker="*", linestyle="none", markersize=10,
                              markerfacecolor="#f5d000", markeredgecolor="#333333",
                              label="merge winner"))  # fmt: skip
    if breach:
        handles.append(Line2D([], [], color=BREACH_COLOR, linestyle="--", label="budget breach"))
    return handles


def check_result(value: Any, param: str = "result") -> None:
    """Refuse anything but a :class:`~flowlab.RunResult` with a :class:`~flowlab.ConfigError`
    (``fl.plot.timeline(None)`` would otherwise fail deep inside with an AttributeError)."""
    from flowlab.errors import ConfigError
    from flowlab.results.record import RunResult

    if not isinstance(value, RunResult):
        raise ConfigError(
            f"{param}={value!r} ({type(value).__name__}) is not a RunResult; pass what fl.run(...) "
            "returned, or fl.last_result()."
        )
