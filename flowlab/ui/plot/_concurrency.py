"""Work in flight over time: :func:`concurrency`, a step line with each cap overlaid."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from flowlab.core.limits import Limiter
from flowlab.errors import check_one_of
from flowlab.ui.plot._style import check_result, new_axes, text

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes

    from flowlab.results.record import RunResult

__all__ = ["concurrency"]


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
    end; a limiter that moved (adaptive, AIMD) follows every move in ``result.limits``. Spells
    when a rate (``rate=``) or a full key of a ``Keyed`` cap held starts back are shaded (the
    ``wait`` rows of ``result.limits``, touching ones joined), labelled by step.

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
    check_result(result)
    rows, chosen = _counted_and_capped(result, step)
    ax = new_axes(ax, (8.0, 3.0))
    end = result.makespan_s
    xs, ys = _in_flight(rows, end)
    line_kwargs: dict[str, Any] = {"where": "post", "color": "#2f6690", "linewidth": 2.0,
                                   "label": f"{text(step)} branches" if step
                                   else "leaf steps in flight (whole run)",
                                   **kwargs}  # fmt: skip
    (line,) = ax.step(xs, ys, **line_kwargs)
    line.set_gid("in_flight")
    limits = result.limits
    # the caps drawn as lines: concurrency limiters (a rate and a Keyed cap have no one line)
    caps = limits.loc[limits["event"].isin(["start", "move"]) & ~limits["limiter"].isin(_HELD_BY)]
    top = _draw_step_caps(ax, caps, chosen, end, max(ys))
    top = _draw_run_cap(ax, caps, limit, end, top)
    waits = limits.loc[limits["event"] == "wait"]
    if step is not None:
        waits = waits.loc[waits["step"].isin(set(chosen["path"].tolist()))]
    _shade_waits(ax, waits)
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


def _counted_and_capped(result: RunResult, step: str | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rows the in-flight line counts, and the Parallel steps whose caps are drawn.

    With ``step``: that Parallel's branches and its own runs. Without: every leaf step, and the
    Parallels whose branches are all leaves.
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
        return rows, chosen
    # leaf steps: the unit of work that a run-wide cap bounds and summary() counts; a retried
    # leaf runs only during its attempts (it holds no slot while it waits out a backoff), so
    # its attempts are counted, not its step's row from first start to last end
    rows = steps.loc[steps["kind"].astype(str) == "step"]
    attempts = result.attempts
    if len(attempts):
        import pandas as pd

        once = rows.loc[~rows["path"].isin(set(attempts["path"].tolist()))]
        cols = ["started_s", "finished_s"]
        rows = pd.concat([once[cols], attempts[cols]], ignore_index=True)
    has_children = set(frame["parent"].tolist())
    # caps drawn by default: those of Parallels whose branches are all leaves
    owners = {
        (p, s)
        for p, s, path in zip(frame["parent"], frame["step"], frame["path"], strict=True)
        if path in has_children
    }
    chosen = parallels.loc[
        [(p, s) not in owners for p, s in zip(parallels["parent"], parallels["step"], strict=True)]
    ]
    return rows, chosen


def _draw_step_caps(
    ax: Axes, caps: pd.DataFrame, chosen: pd.DataFrame, end: float, top: int
) -> int:
    """Draw the cap of each chosen Parallel step (summed when a step ran more than once) as a
    dashed line; return ``top`` raised to the highest cap drawn."""
    by_step: dict[str, list[tuple[str, list[float], list[int]]]] = {}
    for path, name, started, finished in zip(
        chosen["path"].tolist(), chosen["step"].tolist(), chosen["started_s"].tolist(),
        chosen["finished_s"].tolist(), strict=True,
    ):  # fmt: skip
        # the cap's own rows (its "start" at the step's start, then every move): the limiter as
        # the engine ran it, never parsed back from its repr
        moves = caps.loc[caps["step"] == path]
        lx, ly = _limit_series(
            None, float(started), float(finished) if not math.isnan(finished) else end,
            moves["time_s"].tolist(), moves["limit"].tolist(),
        )  # fmt: skip
        if lx:
            by_step.setdefault(str(name), []).append((str(path), lx, ly))
    for name, series in by_step.items():
        if len(series) == 1:  # one run of the step: its own cap
            ((path, lx, ly),) = series
            label, gid = f"limit ({text(path)})", f"limit:{path}"
        else:  # a cap is per run of a Parallel: n runs at once allow n caps' worth
            lx, ly = _summed(series)
            each = {v for _, _, ys_ in series for v in ys_}
            label = f"limit: {len(series)} × {text(name)}'s cap" + (
                f" (each {each.pop()})" if len(each) == 1 else ""
            )
            gid = f"limit-sum:{name}"
        ax.step(lx, ly, where="post", linestyle="--", linewidth=1.5, color="#d1495b",
                label=label, gid=gid)  # fmt: skip
        top = max(top, *ly)
    return top


def _draw_run_cap(
    ax: Axes, caps: pd.DataFrame, limit: int | Limiter | None, end: float, top: int
) -> int:
    """Draw the run-wide cap (``limit`` if given, then its recorded moves) as a dash-dot line;
    return ``top`` raised to its highest value."""
    run_moves = caps.loc[caps["step"] == "run"]
    initial = limit.initial() if isinstance(limit, Limiter) else limit
    lx, ly = _limit_series(
        initial, 0.0, end, run_moves["time_s"].tolist(), run_moves["limit"].tolist()
    )
    if lx:
        ax.step(lx, ly, where="post", linestyle="-.", linewidth=1.5, color="#7b2d26",
                label="limit (run)", gid="limit:run")  # fmt: skip
        top = max(top, *ly)
    return top


_HELD_BY = ("rate", "keyed")  # limiters whose "wait" rows are shaded, not drawn as a cap line
_WAIT_COLOURS = {"rate": "#edae49", "keyed": "#8e7dbe"}


def merged_spans(starts: Sequence[float], lengths: Sequence[float]) -> list[tuple[float, float]]:
    """``(start, end)`` spans with the overlapping and touching ones joined, in time order.

    Examples
    --------
    >>> merged_spans([0.0, 0.1, 0.5], [0.1, 0.1, 0.2])
    [(0.0, 0.2), (0.5, 0.7)]
    """
    spans: list[tuple[float, float]] = []
    for s, n in sorted(zip(starts, lengths, strict=True)):
        e = s + n
        if spans and s <= spans[-1][1] + 1e-12:
            spans[-1] = (spans[-1][0], max(spans[-1][1], e))
        else:
            spans.append((s, e))
    return spans


def _shade_waits(ax: Axes, waits: pd.DataFrame) -> None:
    """Shade when a rate or a full key held starts back (``wait`` rows of ``result.limits``),
    one band per limiter and step (touching waits joined), lightly behind the lines."""
    groups: dict[tuple[str, str], tuple[list[float], list[float]]] = {}
    for s, kind, t, w in zip(waits["step"].tolist(), waits["limiter"].tolist(),
                             waits["time_s"].tolist(), waits["wait_s"].tolist(), strict=True):  # fmt: skip
        starts, lengths = groups.setdefault((str(s), str(kind)), ([], []))
        starts.append(float(t))
        lengths.append(float(w))
    for (s, kind), (starts, lengths) in sorted(groups.items()):
        label = f"held by {'a full key' if kind == 'keyed' else 'the rate'} ({text(s)})"
        for i, (a, b) in enumerate(merged_spans(starts, lengths)):
            ax.axvspan(a, b, color=_WAIT_COLOURS.get(kind, "#cccccc"), alpha=0.18, linewidth=0,
                       label=label if i == 0 else None, gid=f"wait:{kind}:{s}")  # fmt: skip


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


def _summed(series: Sequence[tuple[str, list[float], list[int]]]) -> tuple[list[float], list[int]]:
    """The sum of step functions (``where="post"``), each zero outside its own x range."""
    deltas: list[tuple[float, int]] = []
    for _, xs, ys in series:
        prev = 0
        for x, y in zip(xs[:-1], ys[:-1], strict=True):
            deltas.append((x, y - prev))
            prev = y
        deltas.append((xs[-1], -prev))
    deltas.sort()
    out_x: list[float] = []
    out_y: list[int] = []
    level = 0
    for x, d in deltas:
        level += d
        if out_x and out_x[-1] == x:
            out_y[-1] = level
        else:
            out_x.append(x)
            out_y.append(level)
    return out_x, out_y
