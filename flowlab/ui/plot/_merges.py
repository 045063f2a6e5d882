"""Who wrote what: the branch × field matrix of a run's merges."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flowlab.core.context.paths import join, split
from flowlab.errors import check_one_of
from flowlab.ui.plot._style import (
    STATUS_COLORS,
    WAIT_ALPHA,
    branch_rows,
    check_result,
    new_axes,
    text,
)

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes

    from flowlab.results.record import RunResult

__all__ = ["merges"]


def _field(path: str) -> str:
    """``tags[3]`` -> ``tags``: list positions collapse onto their field."""
    return re.sub(r"\[\d+\]", "", path)


def merges(
    result: RunResult,
    ax: Axes | None = None,
    *,
    step: str | None = None,
    max_fields: int = 40,
    **kwargs: Any,
) -> Axes:
    """Who wrote what: a branch × field matrix for the Parallel steps of a run.

    A filled cell means the branch changed that field (list items collapse onto their field);
    a hatched cell is a change by a branch that did not succeed (recorded, never merged). The
    branch whose value the merge kept is starred, a branch whose write lost (``dropped`` in
    ``result.merges``: overwrite / keep-first kept another value) gets a cross, and fields whose
    merge found a conflict get a red frame and a red label.

    Parameters
    ----------
    result : RunResult
    ax : matplotlib Axes, optional
    step : str, optional
        Only this Parallel step (by name). Default: every step, rows named ``step:branch`` when
        there is more than one.
    max_fields : int, default 40
        More changed fields than this are summarized: paths are cut to their parents until they
        fit, and a column ``scores.* (2,000)`` stands for the 2,000 paths under ``scores``.
    **kwargs
        Passed to every cell ``Rectangle`` (``alpha``, ``edgecolor``, ...).

    Returns
    -------
    matplotlib.axes.Axes
    """
    check_result(result)
    diffs = result.diffs
    merged = result.merges
    if step is not None:
        check_one_of(
            "step", step, sorted(set(diffs["step"].tolist()) | set(merged["step"].tolist()))
        )
        diffs = diffs.loc[diffs["step"] == step]
        merged = merged.loc[merged["step"] == step]
    # one row per branch run: a Parallel nested in a Map (or reused) runs once per place, and
    # its runs' branches share their names; (parent, step) tells the runs apart
    runs = set(zip(diffs["parent"].tolist(), diffs["step"].tolist(), strict=True))
    runs |= set(zip(merged["parent"].tolist(), merged["step"].tolist(), strict=True))
    many = len(runs) > 1

    def key(p: str, s: str, b: str) -> str:
        return (f"{p}/{s}:{b}" if p else f"{s}:{b}") if many else b

    rows, cells = _rows_and_cells(result.branches, diffs, merged, key)
    fields = list(dict.fromkeys(f for _, f in cells))
    counts: dict[str, int] = {}  # a shown column -> how many changed paths it stands for
    if len(fields) > max_fields:  # a very wide diff: one column per parent path, with counts
        cells, fields, counts = _summarized(cells, fields, max_fields)
    winners, dropped, conflicts = _merge_marks(merged, fields, key)
    ax = new_axes(ax, (max(4.0, 1.1 * len(fields) + 2.5), max(2.0, 0.45 * len(rows) + 1.5)))
    row_names = list(rows)
    _draw_cells(ax, cells, row_names, fields, (winners, dropped, conflicts), kwargs)
    labels = [f"{f}.* ({counts[f]:,})" if counts.get(f, 1) > 1 else f for f in fields]
    ax.set_xticks(range(len(fields)), [text(_fit(f)) for f in labels], rotation=30, ha="right")
    for label, f in zip(ax.get_xticklabels(), fields, strict=True):
        if f in conflicts:
            label.set_color(STATUS_COLORS["failed"])
            label.set_fontweight("bold")
    ax.set_yticks(range(len(row_names)), [text(_fit(r)) for r in row_names])
    ax.set_xlim(-0.5, max(len(fields), 1) - 0.5)
    ax.set_ylim(max(len(row_names), 1) - 0.5, -0.5)
    ax.set_xlabel("field")
    ax.set_title("who wrote what")
    _merge_legend(ax, set(cells.values()), bool(winners), bool(conflicts), bool(dropped))
    if not cells:
        ax.text(0.5, 0.5, "no branch changed the context", transform=ax.transAxes, ha="center")
    return ax


def _rows_and_cells(
    branches: pd.DataFrame,
    diffs: pd.DataFrame,
    merged: pd.DataFrame,
    key: Callable[[str, str, str], str],
) -> tuple[dict[str, str], dict[tuple[str, str], str]]:
    """The matrix's rows (row key -> branch status, in timeline order) and its changed cells
    ((row key, field) -> status of the branch that changed it)."""
    steps = set(diffs["step"].tolist()) | set(merged["step"].tolist())
    rows: dict[str, str] = {}
    for i, _depth in branch_rows(branches):
        if branches["step"].iat[i] in steps:
            at = (str(branches["parent"].iat[i]), str(branches["step"].iat[i]))
            rows.setdefault(key(*at, str(branches["branch"].iat[i])),
                            str(branches["status"].iat[i]))  # fmt: skip
    cells: dict[tuple[str, str], str] = {}
    for p, s, b, status, path in zip(
        diffs["parent"], diffs["step"], diffs["branch"], diffs["branch_status"].astype(str),
        diffs["path"], strict=True,
    ):  # fmt: skip
        rows.setdefault(key(p, s, b), status)
        cells[(key(p, s, b), _field(path))] = status
    return rows, cells


_Marks = tuple[set[tuple[str, str]], set[tuple[str, str]], set[str]]


def _merge_marks(
    merged: pd.DataFrame, fields: list[str], key: Callable[[str, str, str], str]
) -> _Marks:
    """From ``result.merges``: the (row, field) cells whose value the merge kept, the cells
    whose write was dropped, and the fields whose merge found a conflict."""
    under: dict[str, list[str]] = {}  # a merged path -> the fields at or below it (one pass)
    for f in fields:
        parts = split(f)
        for n in range(1, len(parts) + 1):
            under.setdefault(join(parts[:n]), []).append(f)
    winners: set[tuple[str, str]] = set()
    dropped: set[tuple[str, str]] = set()
    conflicts: set[str] = set()
    for p, s, path, winner, conflict, losers in zip(
        merged["parent"], merged["step"], merged["path"], merged["winner"], merged["conflict"],
        merged["dropped"], strict=True,
    ):  # fmt: skip
        hit = under.get(_field(path), []) or _above(under, _field(path))
        if conflict:
            conflicts.update(hit)
        names = winner if isinstance(winner, list | tuple | set | frozenset) else [winner]
        for n in names:
            if isinstance(n, str) and n:
                winners.update((key(p, s, n), f) for f in hit)
        for n in losers:
            dropped.update((key(p, s, n), f) for f in hit)
    return winners, dropped, conflicts


def _draw_cells(
    ax: Axes,
    cells: dict[tuple[str, str], str],
    row_names: list[str],
    fields: list[str],
    marks: _Marks,
    kwargs: dict[str, Any],
) -> None:
    """One ``Rectangle`` per changed cell (hatched when its branch did not succeed, framed red
    on a conflict), starred when the merge kept its value, crossed when its write was dropped."""
    from matplotlib.colors import to_rgba
    from matplotlib.patches import Rectangle

    winners, dropped, conflicts = marks
    row_at = {r: i for i, r in enumerate(row_names)}
    field_at = {f: i for i, f in enumerate(fields)}
    for (r, f), status in cells.items():
        y, x = row_at[r], field_at[f]
        ok = status == "ok"
        color = STATUS_COLORS.get(status, "#999999")
        cell_kwargs: dict[str, Any] = {
            "facecolor": color if ok else to_rgba(color, WAIT_ALPHA),
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
        elif (r, f) in dropped:
            ax.plot([x], [y], marker="X", markersize=11, color="#333333", markeredgecolor="white",
                    markeredgewidth=0.8, linestyle="none", gid=f"dropped:{r}|{f}")  # fmt: skip


def _fit(label: str, limit: int = 40) -> str:
    """A tick label no longer than ``limit``: a long path keeps its head and its end."""
    if len(label) <= limit:
        return label
    keep = (limit - 1) // 2
    return f"{label[:keep]}…{label[-(limit - 1 - keep) :]}"


def _summarized(
    cells: dict[tuple[str, str], str], fields: list[str], limit: int
) -> tuple[dict[tuple[str, str], str], list[str], dict[str, int]]:
    """Cells and fields cut to parent paths until at most ``limit`` columns remain (one level at
    least), with the number of paths each column stands for. A column is ``ok`` for a branch if
    any of its paths is."""
    depth = max(len(split(f)) for f in fields)
    cut: dict[str, str] = {}
    while depth > 1:
        depth -= 1
        cut = {f: join(split(f)[:depth]) for f in fields}
        if len(set(cut.values())) <= limit:
            break
    counts: dict[str, int] = {}
    for f in fields:
        counts[cut[f]] = counts.get(cut[f], 0) + 1
    merged: dict[tuple[str, str], str] = {}
    for (r, f), status in cells.items():
        at = (r, cut[f])
        if merged.get(at) != "ok":
            merged[at] = status
    return merged, list(dict.fromkeys(cut[f] for f in fields)), counts


def _above(under: dict[str, list[str]], path: str) -> list[str]:
    """The shown column that a path below it was summarized into (a list of one, or none)."""
    parts = split(path)
    for n in range(len(parts) - 1, 0, -1):
        parent = join(parts[:n])
        if parent in under:
            return [parent]
    return []


def _merge_legend(
    ax: Axes, statuses: set[str], winners: bool, conflicts: bool, dropped: bool = False
) -> None:
    from matplotlib.colors import to_rgba
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles: list[Any] = []
    if "ok" in statuses:
        handles.append(Patch(color=STATUS_COLORS["ok"], label="changed (branch ok)"))
    for status in sorted(statuses - {"ok"}):
        color = STATUS_COLORS.get(status, "#999999")
        handles.append(Patch(facecolor=to_rgba(color, WAIT_ALPHA), edgecolor=color, hatch="//",
                             label=f"changed, not merged (branch {status})"))  # fmt: skip
    if winners:
        handles.append(Line2D([], [], marker="*", linestyle="none", markersize=11,
                              color="#f5d000", label="value kept by the merge"))  # fmt: skip
    if dropped:
        handles.append(Line2D([], [], marker="X", linestyle="none", markersize=10,
                              color="#333333", label="write lost (dropped)"))  # fmt: skip
    if conflicts:
        handles.append(Patch(facecolor="white", edgecolor=STATUS_COLORS["failed"], linewidth=2.5,
                             label="conflict"))  # fmt: skip
    if handles:
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
