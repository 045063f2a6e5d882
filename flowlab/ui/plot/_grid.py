"""Small multiples of runs: :func:`timelines`, one timeline per run on one shared x range."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from flowlab.core.numbers import is_int
from flowlab.errors import ConfigError
from flowlab.ui.plot._style import fit_row_labels, legend_handles, seconds, text
from flowlab.ui.plot._timeline import timeline

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure, SubFigure

    from flowlab.results.record import RunResult

__all__ = ["timelines"]

_X_LABEL = "seconds from run start"


def timelines(
    results: Mapping[Any, RunResult] | Sequence[RunResult],
    ax: Axes | Iterable[Axes] | None = None,
    *,
    ncols: int | None = None,
    figsize: tuple[float, float] | None = None,
    wait: bool = True,
    winners: bool = True,
    ranks: bool = False,
    legend: bool = True,
    **kwargs: Any,
) -> list[Axes]:
    """Small multiples: one :func:`~flowlab.ui.plot.timeline` per run, all on one x range.

    Every panel spans from 0 to the longest makespan, so a run that took twice as long *looks*
    twice as long; a panel is titled with its label and makespan (``"cap 1 · 40 s"``, plus the
    status when it is not ``ok``). One legend for the whole figure lists what any panel shows.
    Row labels are thinned to what fits the panel; x labels sit on the bottom row.

    Parameters
    ----------
    results : mapping of label to RunResult, or sequence of RunResult
        A sequence labels its runs ``#1``, ``#2``, ... in order.
    ax : matplotlib Axes or iterable of Axes, optional
        One Axes: its area is split into the panels. Several (``axes.flat``): one run each, the
        spare ones switched off. By default a new figure with a constrained layout.
    ncols : int, optional
        Panels per row; default ``min(4, len(results))``.
    figsize : (float, float), optional
        Size of a new figure; default 4 × 3 inches per panel.
    wait, winners, ranks : bool
        Passed to :func:`~flowlab.ui.plot.timeline`; completion ranks are off by default (at this
        size they spill into the next panel).
    legend : bool, default True
        One figure legend under the panels.
    **kwargs
        Passed to :func:`~flowlab.ui.plot.timeline` (and on to ``Axes.barh``).

    Returns
    -------
    list of matplotlib.axes.Axes
        One per run, in order.

    Examples
    --------
    >>> import flowlab as fl                                             # doctest: +SKIP
    >>> runs = {f"cap {c}": fl.run(fl.Parallel(branches, max_concurrency=c), Ctx(),
    ...                            clock="virtual") for c in (1, 2, 4)}  # doctest: +SKIP
    >>> panels = fl.plot.timelines(runs)                                 # doctest: +SKIP
    """
    if isinstance(results, Mapping):
        labeled = [(text(k), r) for k, r in results.items()]
    else:
        labeled = [(f"#{i + 1}", r) for i, r in enumerate(results)]
    if not labeled:
        raise ConfigError("results is empty; give at least one RunResult to draw.")
    if ncols is not None and (not is_int(ncols) or ncols < 1):
        raise ConfigError(f"ncols={ncols!r} is not valid; give a positive int or None.")
    n = len(labeled)
    cols = min(ncols or 4, n)
    panels, fig = _panels(ax, n, cols, figsize)

    right = max(r.makespan_s for _, r in labeled) or 1.0
    statuses: set[str] = set()
    drew_wait = drew_stars = drew_breach = False
    for i, (axes, (name, res)) in enumerate(zip(panels, labeled, strict=False)):
        timeline(res, ax=axes, wait=wait, winners=winners, ranks=ranks, legend=False, **kwargs)
        axes.set_xlim(0.0, right)
        title = f"{name} · {seconds(res.makespan_s)} s"
        axes.set_title(
            title if res.status == "ok" else f"{title} · {res.status}", fontsize="medium"
        )
        bottom = i + cols >= n
        axes.set_xlabel(_X_LABEL if bottom else "")
        axes.tick_params(labelbottom=bottom, labelsize="x-small")
        fit_row_labels(axes)
        statuses.update(res.branches["status"].astype(str).tolist())
        drew_wait |= any(str(p.get_gid()).startswith("wait:") for p in axes.patches)
        drew_stars |= any(c.get_gid() == "winners" for c in axes.collections)
        drew_breach |= any(ln.get_gid() == "breach" for ln in axes.lines)
    for spare in panels[n:]:
        spare.axis("off")
    handles = legend_handles(statuses, wait=drew_wait, winners=drew_stars, breach=drew_breach)
    if legend and handles:
        constrained = type(fig.get_layout_engine()).__name__ == "ConstrainedLayoutEngine"
        fig.legend(
            handles=handles, loc="outside lower center" if constrained else "lower center",
            ncols=len(handles), fontsize="small", frameon=False,
        )  # fmt: skip
    return panels[:n]


def _panels(
    ax: Axes | Iterable[Axes] | None, n: int, cols: int, figsize: tuple[float, float] | None
) -> tuple[list[Axes], Figure | SubFigure]:
    """The Axes to draw into, and their figure."""
    from matplotlib.axes import Axes

    rows = math.ceil(n / cols)
    if ax is None:
        import matplotlib.pyplot as plt

        new = plt.figure(figsize=figsize or (4.0 * cols, 3.0 * rows + 0.4), layout="constrained")
        grid = new.add_gridspec(rows, cols)
        return [new.add_subplot(grid[i // cols, i % cols]) for i in range(n)], new
    if isinstance(ax, Axes):
        spec, fig = ax.get_subplotspec(), ax.get_figure()
        if spec is None or fig is None:
            raise ConfigError(
                "ax is not valid: it is not part of a grid of subplots; give one made by "
                "fig.add_subplot() / plt.subplots(), several Axes, or None."
            )
        ax.remove()
        sub = spec.subgridspec(rows, cols)
        return [fig.add_subplot(sub[i // cols, i % cols]) for i in range(n)], fig
    import numpy as np

    given = [a for a in np.asarray(list(ax), dtype=object).ravel() if isinstance(a, Axes)]
    first = given[0].get_figure() if given else None
    if len(given) < n or first is None:
        raise ConfigError(
            f"ax is not valid: {len(given)} Axes given for {n} runs; give one per run."
        )
    return given, first
