"""What the Lab shows: figures as PNG display objects, and escaped HTML for tables and messages.

Every function here is pure: it takes a result (or the history frame) and returns an IPython display
object for :meth:`ipywidgets.Output.append_display_data`. Figures are drawn on a bare
:class:`matplotlib.figure.Figure` (no pyplot: nothing global is left open) by the plots in
:mod:`flowlab.ui.plot`, and every user string that reaches HTML goes through :func:`html.escape`.
"""

from __future__ import annotations

import html
import io
import json
import math
import traceback
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from flowlab.errors import FlowlabError

if TYPE_CHECKING:
    import pandas as pd
    from IPython.display import HTML, Image
    from matplotlib.figure import Figure
    from pydantic import BaseModel

    from flowlab.results.record import RunResult

__all__ = [
    "caption",
    "clear",
    "context_ab_html",
    "context_html",
    "draw_compare",
    "draw_side_by_side",
    "error_html",
    "figure",
    "history_html",
    "merges_html",
    "mixed_html",
    "png",
    "points_html",
    "result_displays",
    "summary_html",
]

_BOX = "padding:6px 10px;margin:4px 0;border-radius:4px;"
ERROR_STYLE = _BOX + "background:#fdecea;border-left:4px solid #c62828;color:#5f2120;"
NOTE_STYLE = _BOX + "background:#eef4fb;border-left:4px solid #1565c0;"
WARN_STYLE = _BOX + "background:#fff8e1;border-left:4px solid #f9a825;"
_DIFFERS = "class='flowlab-differs' style='background:#fff3cd'"


def clear(out: Any) -> None:
    """Empty an :class:`ipywidgets.Output`.

    It resets the ``outputs`` trait that ``append_display_data`` and ``append_stdout`` extend.
    ``Output.clear_output()`` works through ``with out:``, which is what loses output inside an
    async callback in JupyterLab 4.
    """
    out.outputs = ()


def figure(draw: Callable[[Figure], Any], *, size: tuple[float, float] = (8.0, 3.0)) -> Figure:
    """A bare matplotlib Figure (not registered with pyplot) drawn by ``draw(fig)``."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=100, layout="constrained")
    draw(fig)
    return fig


def png(fig: Figure) -> Image:
    """The figure as an ``image/png`` display object."""
    from IPython.display import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return Image(data=buf.getvalue(), format="png")  # type: ignore[no-untyped-call]


def _html(body: str) -> HTML:
    from IPython.display import HTML

    return HTML(body)  # type: ignore[no-untyped-call]


def caption(text: str, *, css_class: str) -> HTML:
    """A small heading (escaped) with a CSS class the browser test can find."""
    return _html(f"<h4 class='{css_class}' style='margin:8px 0 2px'>{html.escape(text)}</h4>")


def timeline_height(result: RunResult) -> float:
    """Figure height in inches for a timeline of the result's branches."""
    return 1.4 + 0.32 * max(1, len(result.recorder.branches))


def draw_timeline(fig: Figure, result: RunResult) -> None:
    """Draw ``fl.plot.timeline`` on a fresh Axes of ``fig``."""
    from flowlab.ui import plot

    plot.timeline(result, ax=fig.add_subplot())


def draw_concurrency(fig: Figure, result: RunResult, *, step: str | None = None) -> None:
    """Draw ``fl.plot.concurrency`` on a fresh Axes of ``fig`` (``step``: that Parallel's branches
    in flight against its cap; default: leaf steps)."""
    from flowlab.ui import plot

    plot.concurrency(result, ax=fig.add_subplot(), step=step)


def draw_side_by_side(fig: Figure, results: Sequence[tuple[str, RunResult]]) -> None:
    """One timeline per ``(title, result)``, side by side on one time range (the longer run's),
    with one legend (:func:`flowlab.ui.plot.timelines`)."""
    from flowlab.ui import plot

    axes = fig.subplots(1, len(results), squeeze=False)[0]
    panels = plot.timelines([r for _, r in results], ax=axes, ncols=len(results))
    for ax, (title, _) in zip(panels, results, strict=True):
        ax.set_title(title, fontsize="medium")


def draw_compare(
    fig: Figure, frame: pd.DataFrame, *, x: str, y: str, hue: str | None = None
) -> None:
    """``fl.plot.compare`` on the Lab's history: ``y`` by ``x`` (and ``hue``), mean ± sd of repeats."""
    from flowlab.ui import plot

    plot.compare(frame, x=x, y=y, hue=hue or False, ax=fig.add_subplot())  # "(none)": one line


def summary_html(run_id: int, result: RunResult) -> HTML:
    """One line: run number, status, makespan, peak concurrency, branch counts."""
    s = result.summary()
    counts = ", ".join(f"{k[2:]} {v}" for k, v in s.items() if k.startswith("n_"))
    color = "#2e7d32" if result.status == "ok" else "#c62828"
    body = (
        f"<div class='flowlab-summary'><b>run #{run_id}</b> · status "
        f"<b style='color:{color}'>{html.escape(result.status)}</b> · makespan "
        f"{s['makespan_s']:.3g} s ({html.escape(result.clock)} clock) · peak concurrency "
        f"{s['peak_concurrency']} · branches: {html.escape(counts)}</div>"
    )
    return _html(body)


def error_text(err: BaseException) -> str:
    """``Type: message`` plus the chain of causes, one per line."""
    lines = [f"{type(err).__name__}: {err}"]
    errors = getattr(err, "errors", None)
    seen: list[BaseException] = [err]
    if isinstance(errors, dict) and len(errors) > 1:
        lines += [f"  branch {name!r}: {type(e).__name__}: {e}" for name, e in errors.items()]
        seen += list(errors.values())
    cause = err.__cause__
    while cause is not None and len(lines) < 12:
        if not any(cause is e for e in seen):
            lines.append(f"caused by {type(cause).__name__}: {cause}")
        seen.append(cause)
        cause = cause.__cause__
    return "\n".join(lines)


def error_html(err: BaseException, *, title: str = "The run failed") -> HTML:
    """A readable, escaped error box; flowlab's own errors need no traceback, others get one."""
    text = html.escape(error_text(err))
    details = ""
    if not isinstance(err, FlowlabError) and err.__traceback__ is not None:
        tb = "".join(traceback.format_exception(err))
        details = (
            "<details><summary>traceback</summary>"
            f"<pre style='font-size:11px'>{html.escape(tb)}</pre></details>"
        )
    body = (
        f"<div class='flowlab-error' style='{ERROR_STYLE}'><b>{html.escape(title)}</b>"
        f"<pre style='white-space:pre-wrap;margin:4px 0'>{text}</pre>{details}</div>"
    )
    return _html(body)


def note_html(text: str) -> HTML:
    """An escaped notice box."""
    return _html(f"<div class='flowlab-note' style='{NOTE_STYLE}'>{html.escape(text)}</div>")


def mixed_html(groups: Sequence[tuple[str, dict[str, list[str]]]], *, limit: int = 6) -> HTML:
    """A warning listing the plotted points that pool runs with different other settings.

    ``groups`` holds ``(point, {column: [values]})``, e.g.
    ``("fanout.max_concurrency = 4", {"fanout.cap": ["fixed", "aimd"]})``.
    """
    items = "".join(
        f"<li>{html.escape(point)} mixes "
        + "; ".join(
            f"<b>{html.escape(c)}: {html.escape(', '.join(v))}</b>" for c, v in cols.items()
        )
        + "</li>"
        for point, cols in groups[:limit]
    )
    more = f"<li>… and {len(groups) - limit} more</li>" if len(groups) > limit else ""
    return _html(
        f"<div class='flowlab-compare-mixed' style='{WARN_STYLE}'>Some points average runs whose "
        f"other settings differ (pick “last sweep”, or color by the setting):<ul style='margin:2px 0'>"
        f"{items}{more}</ul></div>"
    )


def _number(value: Any) -> str:
    if isinstance(value, float):
        return "–" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def points_html(points: pd.DataFrame) -> HTML:
    """The plotted points as a table (class ``flowlab-compare-points``): the numbers behind the
    picture, in the order it draws them (see :func:`flowlab.ui.lab.compare.plotted_points`)."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in points.columns)
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_number(v))}</td>" for v in row) + "</tr>"
        for row in points.itertuples(index=False)
    )
    return _html(
        f"<table class='flowlab-compare-points'><thead><tr>{head}</tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )


def _short(value: Any, limit: int = 80) -> str:
    if isinstance(value, float) and math.isnan(value):
        return ""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def merges_html(result: RunResult) -> HTML:
    """The merge table: per Parallel step and field, the rule, the writers and the winner."""
    frame = result.merges
    if frame.empty:
        return note_html("No merges: no Parallel step merged any change.")
    cols = ["step", "path", "rule", "writers", "winner", "before", "after", "conflict", "dropped"]
    shown = frame.loc[:, cols].copy()
    shown["writers"] = [", ".join(map(str, w)) for w in shown["writers"]]
    shown["dropped"] = [", ".join(map(str, w)) for w in shown["dropped"]]
    # no single winner: a combining rule (sum, union, ...) used every writer
    shown["winner"] = ["(all)" if v is None else _short(v) for v in shown["winner"]]
    for c in ("before", "after"):
        shown[c] = ["" if v is None else _short(v) for v in shown[c]]
    table = shown.to_html(index=False, escape=True, classes="flowlab-merges", border=0)
    return _html(f"<div style='max-height:22em;overflow:auto'>{table}</div>")


def context_html(ctx: BaseModel) -> HTML:
    """The final context, one row per field (values as JSON, escaped)."""
    rows = []
    for name, value in ctx.model_dump(mode="json").items():
        text = json.dumps(value, default=str, ensure_ascii=False)
        rows.append(
            f"<tr><th style='text-align:left;vertical-align:top'>{html.escape(name)}</th>"
            f"<td><code>{html.escape(_short(text, 400))}</code></td></tr>"
        )
    title = html.escape(type(ctx).__name__)
    return _html(
        f"<table class='flowlab-context'><caption style='text-align:left'>{title}</caption>"
        f"{''.join(rows)}</table>"
    )


def context_ab_html(a: tuple[str, BaseModel], b: tuple[str, BaseModel]) -> HTML:
    """Two runs' final contexts field by field, ``(label, context)`` each; fields that differ are
    highlighted (class ``flowlab-differs``) and listed first."""
    dumped = [ctx.model_dump(mode="json") for _, ctx in (a, b)]
    names = list(dict.fromkeys([*dumped[0], *dumped[1]]))
    missing = object()
    rows = []
    for name in names:
        values = [d.get(name, missing) for d in dumped]
        cells = [
            "–" if v is missing else _short(json.dumps(v, default=str, ensure_ascii=False), 200)
            for v in values
        ]
        rows.append((values[0] != values[1], name, cells))
    rows.sort(key=lambda r: not r[0])  # stable: what differs first, then declared order
    marks = {True: _DIFFERS, False: "class='flowlab-same'"}
    body = "".join(
        f"<tr {marks[differs]}><th style='text-align:left'>{html.escape(name)}</th>"
        + "".join(f"<td><code>{html.escape(c)}</code></td>" for c in cells)
        + "</tr>"
        for differs, name, cells in rows
    )
    n = sum(1 for r in rows if r[0])
    head = "".join(f"<th>{html.escape(label)}</th>" for label, _ in (a, b))
    return _html(
        f"<table class='flowlab-context-ab'><caption style='text-align:left'>final context: "
        f"{n} of {len(rows)} fields differ</caption><tr><th>field</th>{head}</tr>{body}</table>"
    )


def history_html(frame: pd.DataFrame, *, last: int = 50, error_chars: int = 60) -> HTML:
    """The history table (the last ``last`` runs), outcomes first, escaped.

    Columns follow :func:`flowlab.ui.lab.history.view_columns`: those with one value in every
    run are left out and named once in the caption (``same in every run: clock = virtual · …``).
    An error is cut to ``error_chars`` characters; the whole text is its cell's tooltip.
    """
    from flowlab.ui.lab.history import view_columns

    if frame.empty:
        return note_html("No runs yet: press Run.")
    shown = frame.tail(last)
    columns, same = view_columns(shown)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    rows = []
    for record in shown.loc[:, columns].to_dict("records"):
        cells = []
        for col in columns:
            text = _cell(record[col])
            if col == "error" and len(text) > error_chars:
                cells.append(
                    f"<td title='{html.escape(text, quote=True)}' style='white-space:nowrap'>"
                    f"{html.escape(text[: error_chars - 1])}…</td>"
                )
            else:
                cells.append(f"<td>{html.escape(text)}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    said = [f"{c} = {_short(_cell(v), 40)}" for c, v in same.items() if _cell(v) != ""]
    caption = (
        f"<caption style='text-align:left;font-size:smaller'>same in every run: "
        f"{html.escape(' · '.join(said))}</caption>"
        if said
        else ""
    )
    table = (
        f"<table class='flowlab-history'>{caption}<thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )
    return _html(f"<div style='max-height:24em;overflow:auto'>{table}</div>")


def _cell(value: Any) -> str:
    """A history value as table text: ``–`` for no value, floats to 4 significant digits."""
    if value is None or str(value) in ("<NA>", "nan"):
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def result_displays(
    run_id: int, result: RunResult, *, plots: bool = True, step: str | None = None
) -> list[Any]:
    """Everything shown after a run, in order: summary, error (if any), timeline, concurrency
    plot of ``step`` (without ``plots``: neither), merge table and final context, each under a
    caption."""
    shown: list[Any] = [summary_html(run_id, result)]
    if result.error is not None:
        title = "The run was cancelled" if result.status == "cancelled" else "The run failed"
        shown.append(error_html(result.error, title=title))
    if plots:
        size = (8.0, timeline_height(result))
        shown += [
            caption(f"timeline · run #{run_id}", css_class="flowlab-timeline"),
            png(figure(lambda f: draw_timeline(f, result), size=size)),
            caption(f"concurrency · run #{run_id}", css_class="flowlab-concurrency"),
            png(figure(lambda f: draw_concurrency(f, result, step=step))),
        ]
    shown += [
        caption("merges: which branch won each field", css_class="flowlab-merge-title"),
        merges_html(result),
        caption("final context", css_class="flowlab-context-title"),
        context_html(result.context),
    ]
    return shown
