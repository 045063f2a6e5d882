"""The Lab: an ipywidgets control panel over :func:`flowlab.start`, :func:`flowlab.compare` and the plots.

The panel is a thin layer over a model that works without a browser. :class:`Lab` composes three
parts and wires the buttons to the model:

* the controls, made from the pipeline (one group per Parallel step,
  :mod:`flowlab.ui.lab.controls`): the settings each run reads;
* the model (:class:`~flowlab.ui.lab.model.LabModel`): Run builds a copy of the pipeline with the
  chosen options (:meth:`flowlab.Pipeline.replace`), runs it, adds a row to :attr:`Lab.history`
  (:mod:`flowlab.ui.lab.history`); Sweep, Stop and re-merge likewise; it touches no widget;
* the view (:class:`~flowlab.ui.lab.panel.PanelView`): buttons, progress, status and outputs; it
  shows the timeline, the concurrency plot, the merge table and the final context
  (:mod:`flowlab.ui.lab.views`). The Compare view is :mod:`flowlab.ui.lab.compare`.

The seams between them are the protocols of :mod:`flowlab.ui.lab.protocols`.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from flowlab.core.pipeline import Pipeline, as_node
from flowlab.engine.options import RunOptions
from flowlab.errors import ConfigError, check_one_of
from flowlab.ui.lab import views
from flowlab.ui.lab.compare import CompareView
from flowlab.ui.lab.controls import LabControls, RunControls, StepControls
from flowlab.ui.lab.model import RUN_OPTIONS, LabModel
from flowlab.ui.lab.panel import PanelView

if TYPE_CHECKING:
    import pandas as pd

    from flowlab.results.record import RunResult
    from flowlab.study.comparison import Comparison


__all__ = ["Lab"]

RUN_KWARGS: tuple[str, ...] = (*RUN_OPTIONS, "clock")
"""Keywords :class:`Lab` accepts and passes to every run (``clock`` sets the control)."""


class Lab:
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
    settings : LabControls
        Both of the above as the settings the model reads (``pipeline()``, ``parameters()``).
    model : LabModel
        Runs, sweeps, stops, re-merges and keeps the history; the buttons call it.
    view : PanelView
        The buttons, progress bar, status line and outputs the model reports to (also reachable
        as ``run_button``, ``stop_button``, ``sweep_key``, ``sweep_button``, ``progress``,
        ``progress_label``, ``status``, ``output`` and ``history_output``).
    results : list of RunResult
        Every run's result; ``results[i]`` is the history row with ``run == i + 1``.
    panel : ipywidgets.VBox
        What the notebook shows.
    show_plots : bool
        Draw the timeline and concurrency plots after a run (default True). Each costs a few
        tenths of a second; turn them off for quick scripted batches.
    remerge_on_flip : bool
        Flipping a merge control re-merges the latest run (default True; :meth:`remerge`).

    Examples
    --------
    >>> lab = fl.Lab(pipe, Ctx())                          # doctest: +SKIP
    >>> lab.controls["fanout"].merge.value = "deep"        # doctest: +SKIP
    >>> lab.run()                                          # doctest: +SKIP
    >>> lab.history                                        # doctest: +SKIP
    """

    def __init__(self, pipe: Any, ctx: BaseModel, **run_kwargs: Any) -> None:
        if not isinstance(ctx, BaseModel):
            raise ConfigError(f"ctx={ctx!r} is not valid; give a pydantic BaseModel instance.")
        for name in run_kwargs:
            check_one_of("Lab run option", name, RUN_KWARGS)
        # each value checked as a run checks it (the clock by its control, virtual first)
        RunOptions.of({k: v for k, v in run_kwargs.items() if k != "clock"}, where="fl.Lab")
        node = as_node(pipe, param="pipe")
        self.pipe: Pipeline = node if isinstance(node, Pipeline) else Pipeline(node, name=node.name)
        options = dict(run_kwargs)
        self.settings = LabControls(self.pipe, clock=options.pop("clock", "virtual"))
        self.controls: dict[str, StepControls] = self.settings.steps
        self.run_controls: RunControls = self.settings.run
        self.show_plots = True
        self.remerge_on_flip = True  # flipping a merge strategy re-merges the latest run
        self.view = view = PanelView(self)
        self.model = LabModel(ctx, self.settings, view, **options)
        self.run_kwargs = self.model.run_options
        self.run_button, self.stop_button = view.run_button, view.stop_button
        self.sweep_key, self.sweep_button = view.sweep_key, view.sweep_button
        self.progress, self.progress_label = view.progress, view.progress_label
        self.status, self.output = view.status, view.output
        self.history_output = view.history_output
        self.sweep_key.options = self.sweep_keys()
        for c in self.controls.values():
            c.merge.observe(self._merge_flipped, names="value")
        self.run_button.on_click(lambda _b: self.run())
        self.stop_button.on_click(lambda _b: self.stop())
        self.sweep_button.on_click(lambda _b: self.sweep())
        self.compare_view = CompareView(self)
        self.panel = self._layout()
        view.show_history()

    def _layout(self) -> Any:
        import ipywidgets as w

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
        panel = w.VBox(
            [title, w.HBox(steps, layout=w.Layout(flex_flow='row wrap')), self.run_controls.box, buttons, sweep, self.status,
             self.view.live, self.output, heading, self.history_output, self.compare_view.box]
        )  # fmt: skip
        panel.add_class("flowlab-lab")
        return panel

    def _merge_flipped(self, change: dict[str, Any]) -> None:
        if self.remerge_on_flip:
            self.remerge()

    # ---- the settings and the record ----------------------------------------------------------
    @property
    def ctx(self) -> BaseModel:
        """The starting context (copied by every run; never mutated); the next run uses a new one."""
        return self.model.ctx

    @ctx.setter
    def ctx(self, ctx: BaseModel) -> None:
        if not isinstance(ctx, BaseModel):
            raise ConfigError(f"ctx={ctx!r} is not valid; give a pydantic BaseModel instance.")
        self.model.ctx = ctx

    def pipeline(self) -> Pipeline:
        """The pipeline with the options the controls show (validated like the constructor)."""
        return self.settings.pipeline()

    def parameters(self) -> dict[str, Any]:
        """The history's parameter columns for the current control values."""
        return self.settings.parameters()

    @property
    def history(self) -> pd.DataFrame:
        """One row per run: ``run`` (1, 2, ...), the parameters, ``repeat``, then the outcomes.

        Parameters are ``"<step>.<option>"`` columns (``merge``, ``order``, ``cap``,
        ``max_concurrency``, ``on_failure``, ``branch_timeout``) and ``clock``; outcomes are those
        of :attr:`flowlab.Comparison.frame` plus ``branches``, ``cancelled_branches`` and
        ``ctx.<field>`` (``ctx.<field>.len`` for collections) for the final context.
        """
        return self.model.history.frame()

    @property
    def results(self) -> list[RunResult]:
        """Every run's result, in history order."""
        return self.model.results

    @property
    def result(self) -> RunResult | None:
        """The latest run's result."""
        return self.model.result

    @property
    def last_comparison(self) -> Comparison | None:
        """The latest sweep's :class:`flowlab.Comparison` (``None`` before the first)."""
        return self.model.last_comparison

    @property
    def running(self) -> bool:
        """Whether a run or a sweep is going (or scheduled and about to start)."""
        return self.model.running

    def sweep_keys(self) -> list[str]:
        """The options Sweep can vary: ``"<step>.merge"``, ``.max_concurrency``, ``.order``, ..."""
        return self.model.sweep_keys()

    def sweep_values(self, key: str) -> list[Any]:
        """Every value Sweep tries for ``key``: all strategies, caps 1..branches and none, ..."""
        return self.model.sweep_values(key)

    # ---- running (the model does it; the panel shows it) --------------------------------------
    def run(self) -> Any:
        """Run with the current control values (``repeat`` times): :meth:`LabModel.run`.

        Returns
        -------
        RunResult, asyncio.Task or None
            With no event loop running: blocks and returns the last result (``None`` if nothing
            ran). Inside a running loop: returns the scheduled task at once (``await`` it for the
            result); the panel updates when it is done.
        """
        return self.model.run()

    async def arun(self) -> RunResult | None:
        """Run with the current control values; return the last result (``None`` if none ran).

        Never raises for a failed run: the error is shown in the panel and kept in the history.
        """
        return await self.model.arun()

    def remerge(self) -> RunResult | None:
        """Show the latest run merged under the merge strategies the controls show now, without
        running any branch (:meth:`flowlab.RunResult.remerge`): a new history row, marked
        ``remerged``.

        Only the ``<step>.merge`` controls may differ from the latest row (anything else needs a
        real run). Returns the new result, or ``None`` (with a note saying why) when there is
        nothing to re-merge or a re-merge cannot be exact.
        """
        return self.model.remerge()

    def sweep(self, key: str | None = None) -> Any:
        """Run :func:`flowlab.compare` over every value of one option (``repeat`` times each).

        ``key`` is one of :meth:`sweep_keys` (default: the sweep dropdown's value); the other
        options keep the values the controls show. Every run becomes a history row, and the
        Compare view plots the outcome. Returns like :meth:`run` (a :class:`flowlab.Comparison`).
        """
        return self.model.sweep(self._sweep_key(key))

    async def asweep(self, key: str | None = None) -> Comparison | None:
        """Async :meth:`sweep`; returns the :class:`flowlab.Comparison` (``None`` if none ran)."""
        return await self.model.asweep(self._sweep_key(key))

    def _sweep_key(self, key: str | None) -> str:
        """``key`` shown in the dropdown (a bad one raises), or the dropdown's own value."""
        if key is None:
            return str(self.sweep_key.value)
        check_one_of("key", key, self.sweep_keys())
        self.sweep_key.value = key
        return key

    def stop(self) -> None:
        """Cancel the run in progress (and the repeats or sweep runs still to come)."""
        self.model.stop()

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
        state = "running" if self.model.running else "idle"
        runs = len(self.results)
        return f"<Lab {self.pipe.name!r} steps={list(self.controls)} runs={runs} {state}>"
