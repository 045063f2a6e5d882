"""The marks :func:`~flowlab.ui.plot._timeline.timeline` draws on and around its status bars.

Merge-winner stars (which branches get one), budget-breach lines, thread tails after a cancelled
sync step, ticks at failed attempts, and the separators between step runs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from flowlab.ui.plot._style import BREACH_COLOR, text

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes

    from flowlab.results.record import RunResult

__all__ = [
    "TICK_COLOR", "breaches", "merged_winners", "retry_ticks", "step_separators", "thread_tails",
]  # fmt: skip

TICK_COLOR = "#2b2d42"  # ticks at failed attempts


def merged_winners(result: RunResult) -> set[str]:
    """Paths of branches that won a merged field *and* whose win reached the run's result.

    A win is thrown away when the Parallel that merged it, or any branch or Parallel around it,
    did not end ``ok`` (a failed sibling under ``propagate``, a failed outer branch, ...).
    """
    # (parent, step, branch): a Parallel nested in a Map or reused in several branches runs
    # once per place; its name alone would star a branch of every run for one run's win
    won: set[tuple[str, str, str]] = set()
    merges = result.merges
    for parent, step, winner in zip(
        merges["parent"].tolist(), merges["step"].tolist(), merges["winner"].tolist(), strict=True
    ):
        names: Iterable[Any] = (
            winner if isinstance(winner, list | tuple | set | frozenset) else [winner]
        )
        won.update((str(parent), str(step), n) for n in names if isinstance(n, str) and n)
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

    return {
        p
        for p, (parent, step, branch, _) in rows.items()
        if (parent, step, branch) in won and kept(p)
    }


def breaches(ax: Axes, result: RunResult) -> bool:
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


def thread_tails(ax: Axes, result: RunResult, ends: dict[str, tuple[float, float]]) -> None:
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


def retry_ticks(
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
               s=64.0 if compact else 144.0, color=TICK_COLOR, linewidths=1.0, zorder=3,
               label="_retries", gid="retries")  # fmt: skip
    return True


def step_separators(ax: Axes, frame: pd.DataFrame, order: Sequence[tuple[int, int]]) -> None:
    """A thin line between top-level groups that belong to different step runs."""
    prev: str | None = None
    for y, (i, depth) in enumerate(order):
        if depth:
            continue
        key = f"{frame['parent'].iat[i]}|{frame['step'].iat[i]}"
        if prev is not None and key != prev:
            ax.axhline(y - 0.5, color="#999999", linewidth=0.6, linestyle=":", gid="step-separator")
        prev = key
