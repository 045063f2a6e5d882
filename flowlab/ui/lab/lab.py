"""The Lab: an ipywidgets control panel over :func:`flowlab.start`, :func:`flowlab.compare` and the plots.

The panel is a thin layer over a model that works without a browser. Its controls are made from the
pipeline (one group per Parallel step, :mod:`flowlab.ui.lab.controls`); Run builds a copy of the
pipeline with the chosen options (:meth:`flowlab.Pipeline.replace`), runs it
(:mod:`flowlab.ui.lab.runs`), adds a row to :attr:`Lab.history` (:mod:`flowlab.ui.lab.history`),
and shows the timeline, the concurrency plot, the merge table and the final context
(:mod:`flowlab.ui.lab.views`). The Compare view is :mod:`flowlab.ui.lab.compare`.

Output goes only through :meth:`ipywidgets.Output.append_display_data` and
:meth:`~ipywidgets.Output.append_stdout`: a ``with out:`` block inside an async callback loses its
output in JupyterLab 4.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from flowlab.core.pipeline import Pipeline, as_node
from flowlab.errors import ConfigError, check_one_of
from flowlab.results.record import RunResult
from flowlab.ui.lab import views
from flowlab.ui.lab.compare import CompareView
from flowlab.ui.lab.controls import RunControls, StepControls
from flowlab.ui.lab.runs import LabRuns

if TYPE_CHECKING:
    import pandas as pd


__all__ = ["Lab"]

RUN_KWARGS: tuple[str, ...] = (
    "input", "usage", "max_concurrency", "timeout", "instruments", "record", "backend", "clock",
)  # fmt: skip
"""Keywords :class:`Lab` accepts and passes to every run (``clock`` sets the control)."""


class Lab(LabRuns):
    """A control panel to flip merge strategies and concurrency limits and compare outcomes.

    Parameters
    ----------
    pipe : Pipeline, Parallel or Step
        What to run. Every Parallel step (nested ones included) gets its own controls.
    ctx : pydantic.BaseModel
        The starting context (copied by every run; never mutated).
    **run_kwargs
        Passed to every run: ``input``, ``usage``, ``max_concurrency`` (run-wide), ``timeout``,
        ``instruments``, ``record``, ``backend``; ``clock`` sets the clock control's starting value
        (default ``"virtual"``).

    Attributes
    ----------
    controls : dict of str to StepControls
        One group of widgets per Parallel step, by step name.
    run_controls : RunControls
        ``clock`` and ``repeat``.
    results : list of RunResult
        Every run's result; ``results[i]`` is the history row with ``run == i + 1``.
    panel : ipywidgets.VBox
        What the notebook shows.
    show_plots : bool
        Draw the timeline and concurrency plots after a run (default True). Each costs a few
        tenths of a second; turn them off for quick scripted batches.

    Examples
    --------
    >>> lab = fl.Lab(pipe, Ctx())                          # doctest: +SKIP
    >>> lab.controls["fanout"].merge.value = "deep"        # doctest: +SKIP
    >>> lab.run()                                          # doctest: +SKIP
    >>> lab.history                                        # doctest: +SKIP
    """

    def __init__(self, pipe: Any, ctx: BaseModel, **run_kwargs: Any) -> None:
        import ipywidgets as w

        if not isinstance(ctx, BaseModel):
            raise ConfigError(f"ctx={ctx!r} is not valid; give a pydantic BaseModel instance.")
        for name in run_kwargs:
            check_one_of("Lab run option", name, RUN_KWARGS)
        node = as_node(pipe, param="pipe")
        self.pipe: Pipeline = node if isinstance(node, Pipeline) else Pipeline(node, name=node.name)
        self.ctx = ctx
        self.run_kwargs = dict(run_kwargs)
        self.controls: dict[str, StepControls] = {}
        for step in self.pipe.parallels():
            self.controls.setdefault(step.name, StepControls(step))
        self.run_controls = RunControls(clock=self.run_kwargs.pop("clock", "virtual"))
        self._init_runs()
        self.show_plots = True

        self.run_button = w.Button(description="Run", button_style="success", icon="play")
        self.stop_button = w.Button(
            description="Stop", button_style="danger", icon="stop", disabled=True
        )
        self.sweep_key = w.Dropdown(options=self.sweep_keys(), description="sweep")
        self.sweep_button = w.Button(description="Sweep", icon="th", disabled=not self.controls)
        self.progress = w.IntProgress(value=0, min=0, max=1, description="branches")
        self.progress_label = w.Label("0 / 0")
        self.status = w.HTML("<i>ready</i>")
        self.output = w.Output()
        self.history_output = w.Output()
        self.remerge_on_flip = True  # flipping a merge strategy re-merges the latest run
        for c in self.controls.values():
            c.merge.observe(self._merge_flipped, names="value")
        self.run_button.on_click(lambda _b: self.run())
        self.stop_button.on_click(lambda _b: self.stop())
        self.sweep_button.on_click(lambda _b: self.sweep())
        for widget, css in (
            (self.run_button, "flowlab-run"),
            (self.stop_button, "flowlab-stop"),
            (self.sweep_key, "flowlab-sweep-key"),
            (self.sweep_button, "flowlab-sweep"),
            (self.progress, "flowlab-progress"),
            (self.status, "flowlab-status"),
            (self.output, "flowlab-output"),
            (self.history_output, "flowlab-history-output"),
        ):
            widget.add_class(css)
        self.compare_view = CompareView(self)
        title = w.HTML(
            f"<h3 style='margin:4px 0'>flowlab Lab — {html.escape(self.pipe.name)}: "
            f"{html.escape(' → '.join(self.pipe.names()))}</h3>"
        )
        steps = [c.box for c in self.controls.values()] or [
            w.HTML("<i>This pipeline has no Parallel step: only the run controls apply.</i>")
        ]
        buttons = w.HBox([self.run_button, self.stop_button, self.progress, self.progress_label])
        sweep = w.HBox([self.sweep_key, self.sweep_button])
        heading = w.HTML("<h4 style='margin:8px 0 2px'>History</h4>")
        self.panel = w.VBox(
            [title, w.HBox(steps, layout=w.Layout(flex_flow='row wrap')), self.run_controls.box, buttons, sweep, self.status,
             self.output, heading, self.history_output, self.compare_view.box]
        )  # fmt: skip
        self.panel.add_class("flowlab-lab")
        self._show_history()

    def _merge_flipped(self, change: dict[str, Any]) -> None:
        if self.remerge_on_flip:
            self.remerge()

    # ---- the model ----------------------------------------------------------------------------
    def pipeline(self) -> Pipeline:
        """The pipeline with the options the controls show (validated like the constructor)."""
        return self.pipe.replace({name: c.options() for name, c in self.controls.items()})

    def parameters(self) -> dict[str, Any]:
        """The history's parameter columns for the current control values."""
        params: dict[str, Any] = {}
        for c in self.controls.values():
            params.update(c.params())
        params.update(self.run_controls.params())
        return params

    @property
    def history(self) -> pd.DataFrame:
        """One row per run: ``run`` (1, 2, ...), the parameters, ``repeat``, then the outcomes.

        Parameters are ``"<step>.<option>"`` columns (``merge``, ``order``, ``cap``,
        ``max_concurrency``, ``on_failure``, ``branch_timeout``) and ``clock``; outcomes are those
        of :attr:`flowlab.Comparison.frame` plus ``branches``, ``cancelled_branches`` and
        ``ctx.<field>`` (``ctx.<field>.len`` for collections) for the final context.
        """
        return self._history.frame()

    # ---- comparing ----------------------------------------------------------------------------
    def compare(
        self, metric: str | None = None, x: str | None = None, hue: str | None = None
    ) -> Any:
        """Plot ``metric`` (a numeric history column) across the history by ``x`` and ``hue``.

        Draws in the Compare view and returns the matplotlib Figure (``None`` with no history).
        Left-out arguments keep the view's current choices; ``hue="(none)"`` draws one line.
        """
        return self.compare_view.plot(metric, x, hue)

    def side_by_side(self, a: int | None = None, b: int | None = None) -> Any:
        """Draw runs ``a`` and ``b`` (history ``run`` numbers) side by side; return the Figure."""
        return self.compare_view.side_by_side(a, b)

    # ---- output ---------------------------------------------------------------------------------
    def _show_result(self, run_id: int, result: RunResult) -> None:
        try:
            # the outermost Parallel's branches against its cap: what the max concurrency slider sets
            outer = next(iter(self.controls), None)
            shown = views.result_displays(run_id, result, plots=self.show_plots, step=outer)
        except Exception as err:  # a drawing problem is shown, never lost
            shown = [views.summary_html(run_id, result)]
            if result.error is not None:
                shown.append(views.error_html(result.error))
            shown.append(views.error_html(err, title="Could not draw this run"))
        views.clear(self.output)
        for item in shown:
            self.output.append_display_data(item)

    def _show_history(self) -> None:
        views.clear(self.history_output)
        try:
            self.history_output.append_display_data(views.history_html(self.history))
            self.compare_view.refresh()
        except Exception as err:  # shown in the panel, never lost
            shown = views.error_html(err, title="Could not show the history")
            self.history_output.append_display_data(shown)

    def _show_error(self, err: BaseException, *, title: str, clear: bool = True) -> None:
        if clear:
            views.clear(self.output)
        self.output.append_display_data(views.error_html(err, title=title))
        self.output.append_stdout(f"{title}: {views.error_text(err)}\n")

    def _note(self, text: str) -> None:
        self.output.append_display_data(views.note_html(text))

    # ---- display ------------------------------------------------------------------------------
    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.panel)  # type: ignore[no-untyped-call]

    def _repr_html_(self) -> str:
        """A static view (for HTML exports): the settings and the history."""
        items = "".join(
            f"<li><code>{html.escape(k)}</code> = {html.escape(repr(v))}</li>"
            for k, v in self.parameters().items()
        )
        hist = views.history_html(self.history).data
        name = html.escape(self.pipe.name)
        return f"<div class='flowlab-lab-static'><b>flowlab Lab</b> — {name}<ul>{items}</ul>{hist}</div>"

    def __repr__(self) -> str:
        state = "running" if self._busy else "idle"
        runs = len(self.results)
        return f"<Lab {self.pipe.name!r} steps={list(self.controls)} runs={runs} {state}>"
