"""Self-contained HTML reports of a run or a comparison (plots as base64 PNG, frames as tables).

One file, no network, no JavaScript: open it in any browser, attach it to a ticket, archive it.
Every string that came from the user (pipeline, step and branch names, error messages, context
values) is HTML-escaped, so a branch named ``<script>alert(1)</script>`` shows as text.

Figures are drawn with matplotlib's object API (``matplotlib.figure.Figure``), never through
pyplot, so making a report leaves no figure open and works under any backend.

Examples
--------
>>> result.to_html("run.html")                       # doctest: +SKIP
>>> fl.compare(pipe, Ctx(), grid=...).to_html("cmp.html")   # doctest: +SKIP
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowlab.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from flowlab.results.record import RunResult
    from flowlab.study.experiment import Comparison

__all__ = [
    "comparison_fragment",
    "comparison_html",
    "figure_img_tag",
    "render",
    "result_fragment",
    "result_html",
    "timeline_img_tag",
]

MAX_TABLE_ROWS = 200
"""Frames longer than this are cut (head and tail) in reports."""
_MANY_BRANCHES = 100  # above this, report timelines leave out the completion ranks

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto;
       max-width: 1100px; color: #1d2731; line-height: 1.45; padding: 0 1rem; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; } h2 { font-size: 1.25rem; margin-top: 2rem;
     border-bottom: 1px solid #d6dde4; padding-bottom: .2rem; } h3 { font-size: 1.05rem; }
table { border-collapse: collapse; font-size: .82rem; margin: .5rem 0 1rem; }
th, td { border: 1px solid #d6dde4; padding: .2rem .5rem; text-align: left; vertical-align: top; }
th { background: #f1f4f7; } td { font-variant-numeric: tabular-nums; }
img { max-width: 100%; height: auto; display: block; margin: .6rem 0; }
.error { background: #fdecee; border-left: 4px solid #d1495b; padding: .5rem .8rem; }
.muted { color: #5b6b7a; font-size: .85rem; } details { margin: .5rem 0 1rem; }
summary { cursor: pointer; font-weight: 600; }
.scroll { overflow-x: auto; max-width: 100%; } .scroll table { margin-top: 0; }
td.what { color: #5b6b7a; }
"""


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _figure(width: float, height: float) -> tuple[Figure, Axes]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.add_subplot()


def figure_img_tag(fig: Figure, *, alt: str, width: int | None = None, dpi: int = 100) -> str:
    """A matplotlib figure as an ``<img>`` with an embedded base64 PNG."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    size = f' width="{int(width)}"' if width is not None else ""
    return f'<img alt="{_esc(alt)}"{size} src="data:image/png;base64,{data}">'


def _plot_tag(
    draw: Callable[[Axes], Any],
    size: tuple[float, float],
    alt: str,
    width: int | None = None,
    dpi: int = 100,
) -> str:
    fig, ax = _figure(*size)
    draw(ax)
    return figure_img_tag(fig, alt=alt, width=width, dpi=dpi)


def _timeline_size(result: RunResult, width: float = 9.0) -> tuple[float, float]:
    rows = len(result.recorder.branches)
    return width, min(40.0, max(2.2, 0.32 * rows + 1.3))


def timeline_img_tag(result: RunResult, width: int = 640) -> str:
    """A small timeline of ``result`` as an ``<img>`` tag (used by ``RunResult._repr_html_``).

    Parameters
    ----------
    result : RunResult
    width : int, default 640
        Display width in CSS pixels. The figure is laid out at that width (so its text shows at
        its own size, not scaled down) and drawn at twice the pixels, for sharp high-dpi screens.
    """
    from flowlab.ui import plot

    few = len(result.recorder.branches) <= _MANY_BRANCHES
    inches = max(width, 560) / 100  # narrower than that, the labels would not fit: scaled down
    size = (inches, _timeline_size(result, inches)[1])
    return _plot_tag(
        lambda ax: plot.timeline(result, ax=ax, ranks=few), size,
        f"timeline of {result.pipeline_name}", width, dpi=round(2 * width / inches),
    )  # fmt: skip


def _table(frame: pd.DataFrame, *, max_rows: int = MAX_TABLE_ROWS) -> str:
    """A frame as an escaped HTML table; long frames keep their head and tail."""
    note = ""
    if len(frame) > max_rows:
        half = max_rows // 2
        note = f'<p class="muted">{len(frame)} rows; showing the first and last {half}.</p>'
        import pandas as pd

        frame = pd.concat([frame.head(half), frame.tail(half)])
    body = frame.to_html(
        escape=True, index=False, border=0, na_rep="", float_format=lambda v: f"{v:.6g}",
        formatters={c: _cell for c in frame.columns if frame[c].dtype == object},
    )  # fmt: skip
    return f'{note}<div class="scroll">{body}</div>'  # a wide frame scrolls, never cut by the page


def _cell(value: Any) -> str:
    text = repr(value) if isinstance(value, tuple | list | dict | set) else str(value)
    return text if len(text) <= 160 else text[:157] + "..."


_SUMMARY_WORDS: dict[str, tuple[str, str]] = {  # key -> (how the value reads, what it means)
    "makespan_s": ("{:.6g} s", "run start to run end, on the run's clock"),
    "peak_concurrency": ("{}", "the most leaf steps running at once (all steps of the run)"),
    "utilization": ("{:.1%}", "busy leaf-step time / (makespan × peak concurrency)"),
    "branches": ("{}", "branch runs, nested Parallels included"),
    "conflicts": ("{}", "merged paths whose writes collided (conflict=True rows)"),
    "dropped_writes": ("{}", "branch writes that lost under overwrite / keep_first"),
    "cost": ("{:.6g}", "usage charged with fl.charge(cost=...) (the run's budget account)"),
    "tokens": ("{}", "usage charged with fl.charge(tokens=...); not a context field"),
    "clock": ("{}", "virtual: sleeps take no wall time, timings exact"),
}


def _kv_table(items: Mapping[str, Any]) -> str:
    """A run summary: each value as it reads best, with what it means."""
    rows = []
    for key, value in items.items():
        shape, what = _SUMMARY_WORDS.get(key, ("{}", ""))
        if key.startswith("n_"):
            what = f"branches that ended {key[2:]}"
        try:
            shown = shape.format(value)
        except (TypeError, ValueError):
            shown = str(value)
        rows.append(
            f"<tr><th>{_esc(key)}</th><td>{_esc(shown)}</td><td class='what'>{_esc(what)}</td></tr>"
        )
    return f"<table>{''.join(rows)}</table>"


def result_fragment(result: RunResult, *, heading: str = "Run", level: int = 2) -> str:
    """The HTML body of a run's report: summary, plots and frames (no ``<html>`` wrapper)."""
    from flowlab.ui import plot

    h, sub = f"h{level}", f"h{level + 1}"
    parts = [
        f"<{h}>{_esc(heading)}: {_esc(result.pipeline_name)}</{h}>",
        _kv_table(result.summary()),
    ]
    if result.error is not None:
        parts.append(
            f'<p class="error"><b>{_esc(type(result.error).__name__)}</b>: {_esc(result.error)}</p>'
        )
    parts.append(f"<{sub}>Timeline</{sub}>")
    parts.append(
        '<p class="muted">One bar per branch, colored by status; the lighter bar before it is '
        "the time it waited for a slot; #n is its completion rank; a star marks a branch whose "
        "value a merge kept.</p>"
    )
    few = len(result.recorder.branches) <= _MANY_BRANCHES
    parts.append(_plot_tag(lambda ax: plot.timeline(result, ax=ax, ranks=few),
                           _timeline_size(result), "timeline"))  # fmt: skip
    parts.append(f"<{sub}>Concurrency</{sub}>")
    parts.append(_concurrency_tag(result))
    if len(result.diffs):
        n_fields = result.diffs["path"].nunique()
        n_rows = len(result.recorder.branches)
        parts.append(f"<{sub}>Merges: who wrote what</{sub}>")
        parts.append(_plot_tag(
            lambda ax: plot.merges(result, ax=ax),
            (min(16.0, max(6.0, 0.9 * n_fields + 4.5)), min(30.0, max(2.5, 0.4 * n_rows + 1.8))),
            "merges",
        ))  # fmt: skip
    parts.append(f"<{sub}>Branches</{sub}>" + _table(result.branches))
    if len(result.merges):
        parts.append(f"<{sub}>Merges</{sub}>" + _table(result.merges))
    parts.append(
        f"<details><summary>Diffs ({len(result.diffs)} rows)</summary>{_table(result.diffs)}</details>"
    )
    parts.append(
        f"<details><summary>Steps ({len(result.steps)} rows)</summary>{_table(result.steps)}</details>"
    )
    if len(result.limits):
        parts.append(
            f"<details><summary>Limits ({len(result.limits)} rows)</summary>{_table(result.limits)}</details>"
        )
    return "\n".join(parts)


DEFAULT_COMPARISON_PLOTS: tuple[dict[str, Any], ...] = ({"y": "makespan_s"}, {"y": "utilization"})
"""The plots a comparison report draws by default: keyword arguments of ``plot.compare``."""


def _concurrency_tag(result: RunResult) -> str:
    """In-flight leaf branches, plus one panel per capped Parallel whose branches nest others."""
    from flowlab.ui import plot

    frame = result.branches
    nesting = {(p, s) for p, s, path in zip(frame["parent"], frame["step"], frame["path"], strict=True)
               if path in set(frame["parent"].tolist())}  # fmt: skip
    steps = result.steps
    extra = [
        path
        for path, parent, step, kind, limit in zip(
            steps["path"],
            steps["parent"],
            steps["step"],
            steps["kind"].astype(str),
            steps["limit"],
            strict=True,
        )
        if kind == "parallel" and limit not in ("", "none") and (parent, step) in nesting
    ][:3]
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9.0, 3.0 * (1 + len(extra))), layout="constrained")
    axes = fig.subplots(1 + len(extra), 1, squeeze=False)[:, 0]
    plot.concurrency(result, ax=axes[0])
    for ax, path in zip(axes[1:], extra, strict=True):
        plot.concurrency(result, ax=ax, step=path)
    return figure_img_tag(fig, alt="concurrency")


def _compare_plots(cmp: Comparison, plots: Sequence[Mapping[str, Any]], width: int | None) -> str:
    from flowlab.ui import plot

    def drawer(spec: Mapping[str, Any]) -> Callable[[Axes], Any]:
        return lambda ax: plot.compare(cmp, ax=ax, **spec)

    tags = [
        _plot_tag(drawer(spec), (7.0, 4.0), f"{spec.get('y', 'makespan_s')} by grid value", width)
        for spec in plots
    ]
    return "\n".join(tags)


def comparison_fragment(
    cmp: Comparison,
    *,
    heading: str = "Comparison",
    level: int = 2,
    plots: Sequence[Mapping[str, Any]] | None = None,
) -> str:
    """The HTML body of a comparison's report (also its notebook display).

    ``plots`` lists keyword arguments for :func:`flowlab.ui.plot.compare`, one dict per plot
    (default :data:`DEFAULT_COMPARISON_PLOTS`; the notebook display draws the first only).
    """
    h = f"h{level}"
    grid = ", ".join(
        f"{_esc(k)} ∈ {{{_esc(', '.join(map(str, vs)))}}}" for k, vs in cmp.grid.items()
    )
    repeats = int(cmp.frame["repeat"].max()) + 1 if len(cmp.frame) else 0
    parts = [
        f"<{h}>{_esc(heading)}</{h}>",
        f"<p>{len(cmp)} runs on the {_esc(cmp.clock)} clock: {grid}; {repeats} repeat(s) each.</p>",
    ]
    try:
        specs = list(plots if plots is not None else DEFAULT_COMPARISON_PLOTS)
        parts.append(
            _compare_plots(cmp, specs if level == 2 else specs[:1], None if level == 2 else 480)
        )
    except Exception as err:  # a report shows what it can
        parts.append(f'<p class="error">plot failed: {_esc(type(err).__name__)}: {_esc(err)}</p>')
    parts.append("<h3>Summary (mean over repeats)</h3>" + _table(cmp.summary()))
    parts.append(
        f"<details><summary>Every run ({len(cmp.frame)} rows)</summary>{_table(cmp.frame)}</details>"
    )
    return "\n".join(parts)


def render(
    *,
    result: RunResult | None = None,
    comparison: Comparison | None = None,
    comparison_plots: Sequence[Mapping[str, Any]] | None = None,
    title: str = "flowlab report",
    intro: str = "",
    result_heading: str = "Run",
    path: str | Path | None = None,
) -> str:
    """A complete HTML page with a comparison section and/or a run section.

    Parameters
    ----------
    result, comparison : optional
        What to show (comparison first).
    comparison_plots : list of dict, optional
        Keyword arguments of :func:`flowlab.ui.plot.compare`, one dict per comparison plot.
    title : str
    intro : str
        A paragraph of plain text under the title (escaped).
    result_heading : str
        Heading of the run section, e.g. ``"One run in detail"``.
    path : str or Path, optional
        Also write the page there (UTF-8), creating parent directories.

    Returns
    -------
    str
        The page.
    """
    from flowlab._version import __version__

    body = [f"<h1>{_esc(title)}</h1>"]
    if intro:
        body.append(f"<p>{_esc(intro)}</p>")
    if comparison is not None:
        body.append(comparison_fragment(comparison, plots=comparison_plots))
    if result is not None:
        body.append(result_fragment(result, heading=result_heading))
    body.append(f'<p class="muted">Made by flowlab {_esc(__version__)}.</p>')
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_esc(title)}</title><style>{_CSS}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )
    if path is not None:
        target = Path(path)
        if not target.parent.is_dir():  # a typo in a folder must not create folders silently
            raise ConfigError(
                f"path={str(path)!r}: the folder {str(target.parent)!r} does not exist; create it "
                "first, or give a path in an existing folder."
            )
        if target.is_dir():
            raise ConfigError(f"path={str(path)!r} is a folder; give a file path such as run.html.")
        target.write_text(page, encoding="utf-8")
    return page


def result_html(result: RunResult, path: str | Path | None = None) -> str:
    """A self-contained HTML report of one run; also written to ``path`` when given."""
    return render(result=result, title=f"flowlab run: {result.pipeline_name}", path=path)


def comparison_html(cmp: Comparison, path: str | Path | None = None) -> str:
    """A self-contained HTML report of a comparison; also written to ``path`` when given."""
    return render(comparison=cmp, title="flowlab comparison", path=path)
