"""Retries over time: :func:`attempts`, one row per retried leaf step, one bar per attempt.

The picture of ``result.attempts`` (a row per attempt of every leaf step that has a
:class:`~flowlab.Retry` policy): each attempt is a bar from its start to its end, colored by its
status; the backoff the leaf waited before an attempt (``delay_s``) is a hatched, unfilled bar right
after the attempt before it, and any further time before the attempt started (queued for a
run-wide slot or rate token) a light bar after that.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from flowlab.ui.plot._style import (
    STATUS_COLORS,
    WAIT_ALPHA,
    check_result,
    fit_row_labels,
    new_axes,
    seconds,
    text,
)

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes

    from flowlab.results.record import RunResult

__all__ = ["attempts"]

BACKOFF_COLOR = "#555555"
"""Edge and hatch color of a backoff wait."""

_COMPACT_ROWS = 40  # beyond this many rows a new figure is compact ...
_COMPACT_IN = 8.0  # ... and this tall, in inches
_NUMBER_MIN = 0.03  # an attempt's number is written on bars at least this share of the x range


def attempts(
    result: RunResult,
    ax: Axes | None = None,
    *,
    retried_only: bool = True,
    numbers: bool = True,
    legend: bool = True,
    height: float = 0.6,
    **kwargs: Any,
) -> Axes:
    """The attempts of retried leaf steps: one row per leaf, one bar per attempt.

    Each attempt is a bar from ``started_s`` to ``finished_s``, colored by its status (see
    :data:`STATUS_COLORS`). Before each attempt after the first, the backoff it waited
    (``delay_s``) is a hatched, unfilled bar starting where the attempt before it ended; when the
    attempt started later still (it queued for a run-wide slot or rate token), that extra wait
    is a light bar. Rows go by the first attempt's start.

    Artists carry a gid: ``"attempt:<leaf path>#<n>"`` for attempt ``n``'s bar,
    ``"backoff:<leaf path>#<n>"`` and ``"queued:<leaf path>#<n>"`` for the waits before it,
    ``"number:<leaf path>#<n>"`` for its number.

    Parameters
    ----------
    result : RunResult
    ax : matplotlib Axes, optional
        Draw here; by default a new figure sized to the number of rows.
    retried_only : bool, default True
        Only leaves that took more than one attempt; ``False``: every leaf with a policy.
    numbers : bool, default True
        Write each attempt's number on its bar (on bars at least 3 % of the x range wide).
    legend : bool, default True
    height : float, default 0.6
        Bar height in row units.
    **kwargs
        Passed to ``Axes.barh`` for the attempt bars (``edgecolor``, ``linewidth``, ...).

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import asyncio
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from pydantic import BaseModel
    >>> import flowlab as fl
    >>> class Ctx(BaseModel):
    ...     calls: int = 0
    >>> calls = []
    >>> async def flaky(data, ctx):
    ...     calls.append(1)
    ...     await asyncio.sleep(1)
    ...     if len(calls) < 3:
    ...         raise ConnectionError("429")
    >>> step = fl.Step(flaky, retry=fl.Retry(attempts=3, backoff=2.0, jitter=0))
    >>> ax = fl.plot.attempts(fl.run(step, Ctx(), clock="virtual"))
    >>> [(p.get_gid(), float(p.get_x()), float(p.get_width())) for p in ax.patches]
    ... # doctest: +NORMALIZE_WHITESPACE
    [('backoff:flaky#2', 1.0, 2.0), ('backoff:flaky#3', 4.0, 4.0),
     ('attempt:flaky#1', 0.0, 1.0), ('attempt:flaky#2', 3.0, 1.0), ('attempt:flaky#3', 8.0, 1.0)]
    """
    check_result(result)
    frame = result.attempts
    counts = frame.groupby("path", sort=False)["attempt"].transform("max")
    if retried_only:
        frame = frame.loc[counts > 1]
    frame = frame.sort_values(["started_s", "attempt"], kind="stable")
    paths = list(dict.fromkeys(frame["path"].tolist()))
    row_of = {p: i for i, p in enumerate(paths)}
    n_rows = len(paths)
    compact = ax is None and n_rows > _COMPACT_ROWS
    tall = max(2.0, 0.38 * n_rows + 1.2)
    ax = new_axes(ax, (8.0, min(tall, _COMPACT_IN) if compact else tall))

    end = result.makespan_s
    bars, backoffs, queued = _pieces(frame, row_of, end)
    right = max([end, *(b[1] + b[2] for b in bars)])
    for y, left, width, _, tag in bars if numbers else ():
        if width >= _NUMBER_MIN * right:  # a number only where it fits
            ax.text(
                left + width / 2, y, tag.rsplit("#", 1)[1], ha="center", va="center",
                fontsize="x-small", color="white", clip_on=True, gid=f"number:{tag}",
            )  # fmt: skip
    _draw_waits(ax, backoffs, queued, height * 0.5)
    # edges in the bar's own color: an attempt of a split second stays a visible line
    colors = [b[3] for b in bars]
    bar_kwargs: dict[str, Any] = {"edgecolor": colors, "linewidth": 0.8, **kwargs}
    drawn = ax.barh([b[0] for b in bars], [b[2] for b in bars], left=[b[1] for b in bars],
                    height=height, color=colors, label="_attempt",
                    **bar_kwargs)  # fmt: skip
    for patch, b in zip(drawn.patches, bars, strict=True):
        patch.set_gid(f"attempt:{b[4]}")

    ax.set_yticks(range(n_rows), [text(p) for p in paths])
    ax.set_ylim(max(n_rows, 1) - 0.5, -0.5)
    if compact:
        fit_row_labels(ax)
    ax.set_xlim(0.0, right * 1.08 or 1.0)
    ax.set_xlabel("seconds from run start")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(_title(result, frame, n_rows, retried_only))
    if legend and bars:
        ax.legend(handles=_handles(frame["status"].astype(str).tolist(), bool(backoffs),
                                   bool(queued)),
                  loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")  # fmt: skip
    return ax


_Bar = tuple[float, float, float, str, str]  # (y, left, width, color, "<leaf path>#<n>")
_Wait = tuple[float, float, float, str]  # (y, left, width, gid)


def _pieces(
    frame: pd.DataFrame, row_of: dict[str, int], end: float
) -> tuple[list[_Bar], list[_Wait], list[_Wait]]:
    """The attempt bars, backoff waits and further queue waits to draw, from the attempts'
    rows (an attempt still running ends at ``end``)."""
    bars: list[_Bar] = []
    backoffs: list[_Wait] = []
    queued: list[_Wait] = []
    previous: dict[str, float] = {}  # leaf path -> where its last attempt ended
    for row in frame.sort_values(["path", "attempt"], kind="stable").to_dict("records"):
        path, n = str(row["path"]), int(row["attempt"])
        y, started = float(row_of[path]), float(row["started_s"])
        finished = end if math.isnan(float(row["finished_s"])) else float(row["finished_s"])
        tag = f"{path}#{n}"
        if path in previous:
            gap_from, delay = previous[path], float(row["delay_s"])
            if delay > 0:
                backoffs.append((y, gap_from, delay, f"backoff:{tag}"))
            if started > gap_from + delay:
                queued.append((y, gap_from + delay, started - gap_from - delay, f"queued:{tag}"))
        previous[path] = finished
        status = str(row["status"])
        bars.append((y, started, finished - started, STATUS_COLORS.get(status, "#999999"), tag))
    return bars, backoffs, queued


def _draw_waits(ax: Axes, backoffs: list[_Wait], queued: list[_Wait], height: float) -> None:
    """Queue waits as light bars, backoffs as hatched unfilled ones, each with its gid."""
    from matplotlib.colors import to_rgba

    if queued:
        color = to_rgba(STATUS_COLORS["queued"], 1.0 - WAIT_ALPHA)
        drawn = ax.barh([q[0] for q in queued], [q[2] for q in queued],
                        left=[q[1] for q in queued], height=height, color=color,
                        edgecolor="none", label="_queued")  # fmt: skip
        for patch, q in zip(drawn.patches, queued, strict=True):
            patch.set_gid(q[3])
    if backoffs:
        drawn = ax.barh([b[0] for b in backoffs], [b[2] for b in backoffs],
                        left=[b[1] for b in backoffs], height=height, fill=False,
                        hatch="///", edgecolor=BACKOFF_COLOR, linewidth=0.6,
                        label="_backoff")  # fmt: skip
        for patch, b in zip(drawn.patches, backoffs, strict=True):
            patch.set_gid(b[3])


def _title(result: RunResult, frame: Any, n_rows: int, retried_only: bool) -> str:
    """What the picture shows, in numbers (or why it is empty)."""
    name = text(result.pipeline_name)
    if n_rows == 0:
        why = (
            "no leaf was retried"
            if retried_only and not result.attempts.empty
            else ("no attempts recorded: no step has a retry policy")
        )
        return f"{name}: {why}"
    failed = int((frame["status"].astype(str) != "ok").sum())
    waited = float(frame["delay_s"].sum())
    leaves = "retried leaf" if retried_only else "leaf with a retry policy"
    plural = "retried leaves" if retried_only else "leaves with a retry policy"
    return (
        f"{name}: {n_rows} {leaves if n_rows == 1 else plural}, {len(frame)} attempts "
        f"({failed} not ok), {seconds(waited)} s of backoff"
    )


def _handles(statuses: list[str], backoff: bool, queued: bool) -> list[Any]:
    from matplotlib.colors import to_rgba
    from matplotlib.patches import Patch

    present = set(statuses)
    out: list[Any] = [Patch(color=c, label=s) for s, c in STATUS_COLORS.items() if s in present]
    if backoff:
        out.append(Patch(fill=False, hatch="///", edgecolor=BACKOFF_COLOR, label="backoff"))
    if queued:
        out.append(Patch(color=to_rgba(STATUS_COLORS["queued"], 1.0 - WAIT_ALPHA),
                         label="queued"))  # fmt: skip
    return out
