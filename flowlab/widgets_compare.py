"""The Lab's Compare view: a metric across the run history, and two runs' timelines side by side.

It reads the Lab's :attr:`~flowlab.widgets.Lab.history` and :attr:`~flowlab.widgets.Lab.results`;
it never runs anything itself. The choices (metric, x, hue, the two runs) are refreshed after every
run, keeping what the user picked when it is still available.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flowlab import widgets_views as views
from flowlab.errors import ConfigError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from flowlab.widgets import Lab

__all__ = ["CompareView"]

_NOT_METRICS = {"run", "repeat"}
_NONE = "(none)"


class CompareView:
    """Widgets and drawing for comparing runs of one :class:`~flowlab.widgets.Lab`.

    Attributes
    ----------
    metric, x, hue : ipywidgets.Dropdown
        What to plot: a numeric history column by a parameter column (``hue`` optional).
    run_a, run_b : ipywidgets.Dropdown
        The two runs (history ``run`` numbers) whose timelines go side by side.
    output : ipywidgets.Output
        Where the comparison is drawn.
    """

    def __init__(self, lab: Lab) -> None:
        import ipywidgets as w

        self.lab = lab
        style = {"description_width": "5em"}
        self.metric = w.Dropdown(
            options=["makespan_s"], value="makespan_s", description="metric", style=style
        )
        self.x = w.Dropdown(options=["run"], value="run", description="by", style=style)
        self.hue = w.Dropdown(options=[_NONE], value=_NONE, description="colour", style=style)
        self.plot_button = w.Button(description="Compare", icon="bar-chart")
        self.run_a = w.Dropdown(options=[], description="run A", style=style)
        self.run_b = w.Dropdown(options=[], description="run B", style=style)
        self.side_button = w.Button(description="Side by side", icon="columns")
        self.output = w.Output()
        self._user: set[Any] = set()  # dropdowns the user (or a script) picked a value in
        self._refreshing = False
        for dropdown in (self.metric, self.x, self.hue):
            dropdown.observe(self._picked, names="value")
        self.plot_button.on_click(lambda _b: self.plot())
        self.side_button.on_click(lambda _b: self.side_by_side())
        for widget, css in (
            (self.metric, "flowlab-metric"),
            (self.x, "flowlab-x"),
            (self.hue, "flowlab-hue"),
            (self.plot_button, "flowlab-compare"),
            (self.side_button, "flowlab-side-by-side"),
            (self.output, "flowlab-compare-output"),
        ):
            widget.add_class(css)
        self.box = w.VBox(
            [
                w.HTML("<h4 style='margin:8px 0 2px'>Compare</h4>"),
                w.HBox([self.metric, self.x, self.hue, self.plot_button]),
                w.HBox([self.run_a, self.run_b, self.side_button]),
                self.output,
            ],
        )

    # ---- choices ------------------------------------------------------------------------------
    def parameter_columns(self) -> list[str]:
        """Columns that describe a run's settings (possible ``x`` and ``hue``)."""
        return ["run", *self.lab.parameters()]

    def metric_columns(self) -> list[str]:
        """Numeric outcome columns of the history (possible metrics)."""
        frame = self.lab.history
        params = set(self.parameter_columns())
        return [
            c
            for c in frame.columns
            if c not in params and c not in _NOT_METRICS and _is_numeric(frame[c])
        ]

    def _picked(self, change: dict[str, Any]) -> None:
        if not self._refreshing:
            self._user.add(change["owner"])

    def refresh(self) -> None:
        """Update the choices from the history.

        A metric, x or hue the user picked is kept while it is still a choice; the others follow
        the history: x is the first parameter that varies (numbers first), hue the next one.
        """
        self._refreshing = True
        try:
            metrics = self.metric_columns() or ["makespan_s"]
            self._choose(self.metric, metrics, "makespan_s")
            params = self.parameter_columns()
            varying = self._varying(params)
            self._choose(self.x, params, varying[0] if varying else "run")
            x = self.x.value
            others = [c for c in varying if c != x]
            self._choose(self.hue, [_NONE, *params], others[0] if others else _NONE)
        finally:
            self._refreshing = False
        runs = [(self._label(i), i) for i in range(1, len(self.lab.results) + 1)]
        n = len(runs)
        self.run_a.options = runs  # after each run: the one before against the latest
        self.run_b.options = runs
        if n:
            self.run_a.value, self.run_b.value = max(1, n - 1), n

    def _choose(self, dropdown: Any, options: list[Any], default: Any) -> None:
        keep = dropdown.value if dropdown in self._user and dropdown.value in options else default
        dropdown.options = options  # resets the value to the first option
        if keep in options:
            dropdown.value = keep

    def _varying(self, params: list[str]) -> list[str]:
        frame = self.lab.history
        cols = [
            c for c in params if c != "run" and c in frame and frame[c].nunique(dropna=False) > 1
        ]
        return sorted(cols, key=lambda c: not _is_numeric(frame[c]))  # stable: numbers first

    def _label(self, run_id: int) -> str:
        r = self.lab.results[run_id - 1]
        return f"#{run_id} {r.status} {r.makespan_s:.3g}s"

    # ---- drawing ------------------------------------------------------------------------------
    def plot(
        self, metric: str | None = None, x: str | None = None, hue: str | None = None
    ) -> Figure | None:
        """Plot ``metric`` across the history by ``x`` (and ``hue``); draw it in the view.

        Arguments left out take the dropdowns' values; given ones set the dropdowns.
        """
        if metric is not None:
            self.metric.value = _check("metric", metric, self.metric)
        if x is not None:
            self.x.value = _check("x", x, self.x)
        if hue is not None:
            self.hue.value = _check("hue", hue, self.hue)
        frame = self.lab.history
        views.clear(self.output)
        if frame.empty:
            self.output.append_display_data(views.note_html("No runs yet: press Run first."))
            return None
        y, xcol = str(self.metric.value), str(self.x.value)
        huecol = None if self.hue.value in (_NONE, xcol) else str(self.hue.value)
        title = f"{y} by {xcol}" + (f" and {huecol}" if huecol else "")
        try:
            fig = views.figure(lambda f: views.draw_compare(f, frame, x=xcol, y=y, hue=huecol))
        except Exception as err:
            self.output.append_display_data(views.error_html(err, title=f"Could not plot {title}"))
            return None
        self.output.append_display_data(views.caption(title, css_class="flowlab-compare-title"))
        self.output.append_display_data(views.png(fig))
        return fig

    def side_by_side(self, a: int | None = None, b: int | None = None) -> Figure | None:
        """Timelines of runs ``a`` and ``b`` (history ``run`` numbers) side by side."""
        n = len(self.lab.results)
        for param, value in (("a", a), ("b", b)):
            if value is not None and not 1 <= value <= n:
                raise ConfigError(
                    f"{param}={value!r} is not valid; give a run number from 1 to {n} "
                    "(the history's `run` column)."
                )
        if a is not None:
            self.run_a.value = a
        if b is not None:
            self.run_b.value = b
        views.clear(self.output)
        if self.run_a.value is None or self.run_b.value is None:
            self.output.append_display_data(views.note_html("No runs yet: press Run first."))
            return None
        ids = [int(self.run_a.value), int(self.run_b.value)]
        pairs = [
            (f"run #{i}: {self.lab.results[i - 1].status}", self.lab.results[i - 1]) for i in ids
        ]
        rows = max(len(r.recorder.branches) for _, r in pairs)
        try:
            fig = views.figure(
                lambda f: views.draw_side_by_side(f, pairs), size=(11.0, 1.4 + 0.32 * max(1, rows))
            )
        except Exception as err:
            self.output.append_display_data(
                views.error_html(err, title="Could not draw the timelines")
            )
            return None
        self.output.append_display_data(
            views.caption(
                f"timelines · run #{ids[0]} | run #{ids[1]}", css_class="flowlab-side-title"
            )
        )
        self.output.append_display_data(views.png(fig))
        return fig

    def __repr__(self) -> str:
        return (
            f"<CompareView metric={self.metric.value!r} x={self.x.value!r} hue={self.hue.value!r}>"
        )


def _is_numeric(series: Any) -> bool:
    import pandas as pd

    return bool(pd.api.types.is_numeric_dtype(series)) and not pd.api.types.is_bool_dtype(series)


def _check(param: str, value: Any, dropdown: Any) -> Any:
    values = [o[1] if isinstance(o, tuple) else o for o in dropdown.options]
    if value not in values:
        listed = ", ".join(repr(v) for v in values)
        raise ConfigError(f"{param}={value!r} is not valid; choose one of {listed}.")
    return value
