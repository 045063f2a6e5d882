"""The Lab's Compare view: a metric across the run history, and two runs' timelines side by side.

It reads the Lab's :attr:`~flowlab.ui.lab.lab.Lab.history` and :attr:`~flowlab.ui.lab.lab.Lab.results`;
it never runs anything itself. The choices (metric, x, hue, scope, the two runs) are refreshed
after every run, keeping what the user picked when it is still available.

Averages must not mislead: the view plots the last sweep by default (one setting varies, the rest
are fixed), ``x`` is drawn in value order (caps ``1, 2, ..., none``), a point that pools runs whose
other settings differ is flagged above the plot, and runs are named by what differs between them
(``#15 overwrite · cap 2``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from flowlab.errors import ConfigError
from flowlab.ui.lab import views
from flowlab.ui.plot._style import seconds

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from flowlab.ui.lab.lab import Lab

__all__ = ["CompareView", "mixed_groups", "plotted_points", "run_labels"]

_NOT_METRICS = {"run", "repeat"}
_NONE = "(none)"
LAST_SWEEP, ALL_HISTORY = "last sweep", "all history"


class CompareView:
    """Widgets and drawing for comparing runs of one :class:`~flowlab.ui.lab.lab.Lab`.

    Attributes
    ----------
    metric, x, hue : ipywidgets.Dropdown
        What to plot: a numeric history column by a parameter column (``hue`` optional).
    scope : ipywidgets.ToggleButtons
        Which runs: ``"last sweep"`` (the default once there is one) or ``"all history"``.
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
        self.hue = w.Dropdown(options=[_NONE], value=_NONE, description="color", style=style)
        self.scope = w.ToggleButtons(
            options=[ALL_HISTORY], value=ALL_HISTORY, style={"button_width": "7.5em"},
            tooltips=["every run so far"],
        )  # fmt: skip
        self.plot_button = w.Button(description="Compare", icon="bar-chart")
        self.run_a = w.Dropdown(options=[], description="run A", style=style)
        self.run_b = w.Dropdown(options=[], description="run B", style=style)
        self.side_button = w.Button(description="Side by side", icon="columns")
        self.output = w.Output()
        self._user: set[Any] = set()  # dropdowns the user (or a script) picked a value in
        self._refreshing = False
        for dropdown in (self.metric, self.x, self.hue, self.scope):
            dropdown.observe(self._picked, names="value")
        self.scope.observe(self._rescoped, names="value")
        self.plot_button.on_click(lambda _b: self.plot())
        self.side_button.on_click(lambda _b: self.side_by_side())
        for widget, css in (
            (self.metric, "flowlab-metric"),
            (self.x, "flowlab-x"),
            (self.hue, "flowlab-hue"),
            (self.scope, "flowlab-compare-scope"),
            (self.plot_button, "flowlab-compare"),
            (self.side_button, "flowlab-side-by-side"),
            (self.output, "flowlab-compare-output"),
        ):
            widget.add_class(css)
        self.box = w.VBox(
            [
                w.HTML("<h4 style='margin:8px 0 2px'>Compare</h4>"),
                w.HBox([self.metric, self.x, self.hue, self.plot_button]),
                self.scope,
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

    def sweep_runs(self) -> list[int]:
        """History ``run`` numbers of the Lab's last sweep (empty before the first one)."""
        cmp = getattr(self.lab, "last_comparison", None)
        if cmp is None:
            return []
        ids = {id(r) for r in cmp.results}
        return [i for i, r in enumerate(self.lab.results, start=1) if id(r) in ids]

    def frame(self) -> pd.DataFrame:
        """The history rows the view compares: the last sweep's, or all of them (``scope``)."""
        frame = self.lab.history
        runs = self.sweep_runs() if self.scope.value == LAST_SWEEP else []
        if not runs or frame.empty:
            return frame
        return frame.loc[frame["run"].isin(runs)].reset_index(drop=True)

    def _picked(self, change: dict[str, Any]) -> None:
        if not self._refreshing:
            self._user.add(change["owner"])

    def _rescoped(self, change: dict[str, Any]) -> None:
        if not self._refreshing and len(self.lab.results):
            self.plot()

    def refresh(self) -> None:
        """Update the choices from the history.

        A metric, x or hue the user picked is kept while it is still a choice; the others follow
        the history: x is the first parameter that varies (numbers first), hue the next one.
        """
        self._refreshing = True
        try:
            scopes = [LAST_SWEEP, ALL_HISTORY] if self.sweep_runs() else [ALL_HISTORY]
            self.scope.tooltips = [
                {LAST_SWEEP: "the runs of the last Sweep", ALL_HISTORY: "every run so far"}[o]
                for o in scopes
            ]
            self._choose(self.scope, scopes, scopes[0])
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
        history = self.lab.history
        labels = run_labels(history, self.parameter_columns()) if len(history) else {}
        runs = [(labels.get(i, f"#{i}"), i) for i in range(1, len(self.lab.results) + 1)]
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
        frame = self.frame()
        cols = [
            c for c in params if c != "run" and c in frame and frame[c].nunique(dropna=False) > 1
        ]
        return sorted(cols, key=lambda c: not _is_numeric(frame[c]))  # stable: numbers first

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
        frame = self.frame()
        views.clear(self.output)
        if frame.empty:
            self.output.append_display_data(views.note_html("No runs yet: press Run first."))
            return None
        y, xcol = str(self.metric.value), str(self.x.value)
        huecol = None if self.hue.value in (_NONE, xcol) else str(self.hue.value)
        title = f"{y} by {xcol}" + (f" and {huecol}" if huecol else "")
        title += f" · {self.scope.value} (runs {_span(frame['run'].tolist())})"
        try:
            fig = views.figure(lambda f: views.draw_compare(f, frame, x=xcol, y=y, hue=huecol))
        except Exception as err:
            self.output.append_display_data(views.error_html(err, title=f"Could not plot {title}"))
            return None
        self.output.append_display_data(views.caption(title, css_class="flowlab-compare-title"))
        by = [c for c in (xcol, huecol) if c]
        mixed = mixed_groups(frame, by, [*self.lab.parameters(), "status"])
        if mixed:
            self.output.append_display_data(views.mixed_html(mixed))
        self.output.append_display_data(views.png(fig))
        self.output.append_display_data(views.points_html(plotted_points(frame, xcol, y, huecol)))
        return fig

    def side_by_side(self, a: int | None = None, b: int | None = None) -> Figure | None:
        """Timelines of runs ``a`` and ``b`` (history ``run`` numbers) side by side, on one time
        range, then their final contexts field by field (what differs first)."""
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
        names = run_labels(self.lab.history, self.parameter_columns())
        a_name, b_name = (names.get(i, f"#{i}") for i in ids)
        self.output.append_display_data(
            views.caption(f"timelines · {a_name} | {b_name}", css_class="flowlab-side-title")
        )
        self.output.append_display_data(views.png(fig))
        contexts = [
            (n, self.lab.results[i - 1].context) for n, i in zip((a_name, b_name), ids, strict=True)
        ]
        self.output.append_display_data(views.context_ab_html(contexts[0], contexts[1]))
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


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or str(value) == "<NA>":
        return "none"
    return str(value)


def _span(runs: list[int]) -> str:
    """``1–5`` for a contiguous block of run numbers, else ``2, 3, 7``."""
    if runs and runs == list(range(runs[0], runs[-1] + 1)) and len(runs) > 2:
        return f"{runs[0]}–{runs[-1]}"
    return ", ".join(map(str, runs))


def mixed_groups(
    frame: pd.DataFrame, by: list[str], settings: list[str]
) -> list[tuple[str, dict[str, list[str]]]]:
    """The points of a plot by ``by`` that pool runs whose other ``settings`` differ.

    Returns ``(point, {setting: [values]})`` per such point, in the frame's order, e.g.
    ``("fanout.max_concurrency = 4", {"fanout.cap": ["fixed", "aimd"]})``.

    Examples
    --------
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"cap": [1, 1, 2], "merge": ["deep", "sum", "deep"],
    ...                       "clock": ["virtual"] * 3})
    >>> mixed_groups(frame, ["cap"], ["cap", "merge", "clock"])
    [('cap = 1', {'merge': ['deep', 'sum']})]
    """
    others = [c for c in settings if c in frame.columns and c not in by]
    keys = [tuple(_text(v) for v in row) for row in frame[by].itertuples(index=False)]
    values = {c: [_text(v) for v in frame[c].tolist()] for c in others}
    groups: dict[tuple[str, ...], dict[str, list[str]]] = {}
    for i, key in enumerate(keys):
        seen = groups.setdefault(key, {c: [] for c in others})
        for c in others:
            if values[c][i] not in seen[c]:
                seen[c].append(values[c][i])
    out = []
    for key, seen in groups.items():
        differ = {c: v for c, v in seen.items() if len(v) > 1}
        if differ:
            out.append((", ".join(f"{c} = {v}" for c, v in zip(by, key, strict=True)), differ))
    return out


def plotted_points(frame: pd.DataFrame, x: str, y: str, hue: str | None = None) -> pd.DataFrame:
    """The points a Compare plot draws, in its order: ``x`` (and ``hue``) levels, runs pooled, mean
    and sd of ``y``. Levels are text (``none`` for no value), as on the plot's axis.

    Examples
    --------
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"cap": pd.array([2, None, 1, 2], dtype="Int64"),
    ...                       "makespan_s": [2.0, 1.0, 4.0, 3.0]})
    >>> plotted_points(frame, "cap", "makespan_s").to_dict("list")
    {'cap': ['1', '2', 'none'], 'runs': [1, 2, 1], 'makespan_s': [4.0, 2.5, 1.0], 'sd': [nan, 0.707..., nan]}
    """
    import pandas as pd

    from flowlab.ui.plot._compare import levels

    by = [c for c in (x, hue) if c]
    keys = pd.DataFrame({c: [_text(v) for v in frame[c].tolist()] for c in by})
    keys["value"] = frame[y].astype("float64").to_numpy()
    stats = keys.groupby(by, sort=False)["value"].agg(["count", "mean", "std"]).reset_index()
    stats.columns = [*by, "runs", y, "sd"]
    for c in by:
        order = {_text(v): i for i, v in enumerate(levels(frame[c])[0])}
        stats[f"_{c}"] = stats[c].map(order)
    stats = stats.sort_values([f"_{c}" for c in by], kind="stable")
    return stats.drop(columns=[f"_{c}" for c in by]).reset_index(drop=True)


def run_labels(frame: pd.DataFrame, params: list[str]) -> dict[int, str]:
    """A short name per history ``run``: the settings that differ across the history.

    ``#15 overwrite · cap 2``; a run that did not end ``ok`` adds its status, and with nothing
    differing the makespan names it (``#1 · 2 s``).

    Examples
    --------
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"run": [1, 2], "s.merge": ["deep", "sum"], "s.cap": ["fixed"] * 2,
    ...     "s.max_concurrency": pd.array([2, None], dtype="Int64"), "status": ["ok", "failed"],
    ...     "makespan_s": [2.0, 1.0]})
    >>> run_labels(frame, ["run", "s.merge", "s.cap", "s.max_concurrency"])
    {1: '#1 deep · cap 2', 2: '#2 sum · no cap · failed'}
    """
    varying = [
        c for c in params if c != "run" and c in frame and frame[c].nunique(dropna=False) > 1
    ]
    caps = {c.rsplit(".", 1)[0] for c in varying if c.endswith(".max_concurrency")}
    out: dict[int, str] = {}
    for row in frame.to_dict("records"):
        parts = []
        for c in varying:
            step, _, option = c.rpartition(".")
            value = row[c]
            if option == "cap" and step in caps:
                continue  # said with the number below
            if option == "max_concurrency":
                mode = str(row.get(f"{step}.cap", "fixed"))
                if _text(value) == "none":
                    parts.append("no cap")
                else:
                    parts.append(f"cap {value}" if mode == "fixed" else f"{mode} ≤ {value}")
            elif option == "branch_timeout":
                parts.append("no timeout" if _text(value) == "none" else f"timeout {value:g} s")
            else:
                parts.append(_text(value))
        status = str(row.get("status", "ok"))
        if status != "ok":
            parts.append(status)
        name = " · ".join(parts) if parts else f"· {seconds(float(row['makespan_s']))} s"
        out[int(row["run"])] = f"#{row['run']} {name}"
    return out
