"""Shared look of flowlab's plots: status colours, new axes, safe text, branch row order."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes

__all__ = ["STATUS_COLORS", "WAIT_ALPHA", "branch_rows", "new_axes", "text"]

STATUS_COLORS: dict[str, str] = {
    "ok": "#4c9f70",
    "failed": "#d1495b",
    "cancelled": "#8d99ae",
    "timeout": "#edae49",
    "queued": "#c9d3dd",
    "running": "#5dade2",
}
"""Colour of a branch bar per status (hex strings, usable as matplotlib colours)."""

WAIT_ALPHA = 0.3
"""Opacity of queue-wait bars and of changes that were not merged."""


def new_axes(ax: Axes | None, size: tuple[float, float]) -> Axes:
    """``ax`` itself, or the Axes of a new pyplot figure of ``size`` inches (shown inline in Jupyter)."""
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, new = plt.subplots(figsize=size, layout="constrained")
    return new


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
