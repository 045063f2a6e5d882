"""The Lab: an ipywidgets control panel over :func:`flowlab.run` / :func:`flowlab.start` and the plots.

The panel is a thin layer over a model that works without a browser. Its controls are made from the
pipeline (one group per Parallel step, see :mod:`flowlab.widgets_controls`); Run builds a copy of the
pipeline with the chosen options (:meth:`flowlab.Pipeline.replace`), runs it, adds a row to
:attr:`Lab.history`, and shows the timeline, the concurrency plot, the merge table and the final
context (:mod:`flowlab.widgets_views`). The Compare view is in :mod:`flowlab.widgets_compare`.

Where a run goes:

* **No event loop running** (a script): :meth:`Lab.run` blocks and returns the last
  :class:`~flowlab.record.RunResult`.
* **A loop running** (a notebook cell, a button's click callback): :meth:`Lab.run` schedules the run
  as a task on that loop (:func:`flowlab.start`) and returns the task; the panel updates when it is
  done, and Stop cancels it meanwhile. ``await lab.arun()`` waits for it.

Output goes only through :meth:`ipywidgets.Output.append_display_data` and friends: a ``with out:``
block inside an async callback loses its output in JupyterLab 4.
"""

from __future__ import annotations

import asyncio
import html
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from flowlab import widgets_views as views
from flowlab.errors import ConfigError
from flowlab.pipeline import Pipeline, as_node
from flowlab.record import BranchRecord, Instrument, RunResult
from flowlab.widgets_compare import CompareView
from flowlab.widgets_controls import RunControls, StepControls

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Lab"]

RUN_KWARGS: tuple[str, ...] = (
    "input",
    "usage",
    "max_concurrency",
    "timeout",
    "instruments",
    "record",
    "backend",
    "clock",
)


class _Progress(Instrument):
    """Counts finished branches into the Lab's progress bar, on the Lab's own thread."""

    def __init__(self, tick: Callable[[], None], loop: asyncio.AbstractEventLoop) -> None:
        self._tick = tick
        self._loop = loop
        self._thread = threading.get_ident()

    def branch_finished(self, record: BranchRecord) -> None:
        if threading.get_ident() == self._thread:
            self._tick()
            return
        try:  # a virtual-clock run lives in a helper thread: hand the update to the Lab's loop
            self._loop.call_soon_threadsafe(self._tick)
        except RuntimeError:  # the Lab's loop is gone; nobody is watching the bar any more
            pass


def _clear(out: Any) -> None:
    # Reset the same trait that append_display_data / append_stdout extend. Output.clear_output()
    # goes through `with self:`, which is exactly what loses output inside an async callback.
    out.outputs = ()


class Lab:
    """A control panel to flip merge strategies and concurrency limits and compare outcomes.

    Parameters
    ----------
    pipe : Pipeline, Parallel or Step
        What to run. Every Parallel step (nested ones included) gets its own controls.
    ctx : pydantic.BaseModel
        The starting context (copied for every run; never mutated).
    **run_kwargs
        Passed to :func:`flowlab.start` for every run: ``input``, ``usage``, ``max_concurrency``
        (run-wide), ``timeout``, ``instruments``, ``record``, ``backend``; ``clock`` sets the
        clock control's starting value (default ``"virtual"``).

    Attributes
    ----------
    controls : dict of str to StepControls
        One group of widgets per Parallel step, by step name.
    run_controls : RunControls
        ``clock`` and ``repeat``.
    results : list of RunResult
        Every run's result; ``results[i]`` is history row ``run == i + 1``.
    panel : ipywidgets.VBox
        What the notebook shows.

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
        unknown = sorted(set(run_kwargs) - set(RUN_KWARGS))
        if unknown:
            listed = ", ".join(repr(k) for k in RUN_KWARGS)
            raise ConfigError(f"{unknown[0]!r} is not a Lab run option; choose one of {listed}.")
        node = as_node(pipe, param="pipe")
        self.pipe: Pipeline = node if isinstance(node, Pipeline) else Pipeline(node, name=node.name)
        self.ctx = ctx
        self.run_kwargs = dict(run_kwargs)
        clock = self.run_kwargs.pop("clock", "virtual")
        self.controls: dict[str, StepControls] = {}
        for step in self.pipe.parallels():
            self.controls.setdefault(step.name, StepControls(step))
        self.run_controls = RunControls(clock=clock)
        self.results: list[RunResult] = []
        self._rows: list[dict[str, Any]] = []
        self._handle: Any = None
        self._task: asyncio.Task[RunResult | None] | None = None
        self._busy = False
        self._stop = False

        self.run_button = w.Button(description="Run", button_style="success", icon="play")
        self.stop_button = w.Button(
            description="Stop", button_style="danger", icon="stop", disabled=True
        )
        self.progress = w.IntProgress(value=0, min=0, max=1, description="branches")
        self.progress_label = w.Label("0 / 0")
        self.status = w.HTML("<i>ready</i>")
        self.output = w.Output()
        self.history_output = w.Output()
        self.run_button.on_click(lambda _b: self.run())
        self.stop_button.on_click(lambda _b: self.stop())
        for widget, css in (
            (self.run_button, "flowlab-run"),
            (self.stop_button, "flowlab-stop"),
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
        self.panel = w.VBox(
            [
                title,
                w.HBox(steps),
                self.run_controls.box,
                buttons,
                self.status,
                self.output,
                w.HTML("<h4 style='margin:8px 0 2px'>History</h4>"),
                self.history_output,
                self.compare_view.box,
            ],
        )
        self.panel.add_class("flowlab-lab")
        self._show_history()

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
        """One row per run: ``run``, the parameters, ``repeat``, then outcome metrics.

        Outcomes: ``status``, ``makespan_s``, ``peak_concurrency``, ``utilisation``, ``branches``,
        ``n_<status>`` counts, ``conflicts``, ``cost``, ``tokens``, ``wall_s`` (seconds of real time),
        ``error``, and ``ctx.<field>`` for the final context's numeric fields (``ctx.<field>.len``
        for lists, sets and dicts).
        """
        import pandas as pd

        frame = pd.DataFrame.from_records(self._rows)
        for col in frame.columns:
            if col.startswith("n_") or col.endswith(".max_concurrency"):
                frame[col] = frame[col].astype("Int64")
        return frame

    @property
    def result(self) -> RunResult | None:
        """The latest run's result."""
        return self.results[-1] if self.results else None

    @property
    def running(self) -> bool:
        """Whether a run is going."""
        return self._busy

    # ---- running ------------------------------------------------------------------------------
    def run(self) -> Any:
        """Run with the current control values (``repeat`` times).

        Returns
        -------
        RunResult, asyncio.Task or None
            With no event loop running: blocks and returns the last result (``None`` if nothing
            ran). Inside a running loop: returns the scheduled task at once (``await`` it for the
            result); the panel updates when it is done.
        """
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.arun())
        if self._busy:
            self._note("A run is already going: wait for it, or press Stop.")
            return self._task
        task = loop.create_task(self.arun())
        self._task = task
        return task

    async def arun(self) -> RunResult | None:
        """Run with the current control values and return the last result (``None`` if none ran).

        Never raises for a failed run: the error is shown in the panel and kept in the history.
        """
        from flowlab.notebook import start

        if self._busy:
            self._note("A run is already going: wait for it, or press Stop.")
            return None
        try:
            pipe = self.pipeline()
        except Exception as err:
            self._show_error(err, title="These options are not valid")
            return None
        params, clock = self.parameters(), str(self.run_controls.clock.value)
        repeat = int(self.run_controls.repeat.value)
        kwargs = dict(self.run_kwargs)
        instruments = [
            *kwargs.pop("instruments", ()),
            _Progress(self._tick, asyncio.get_running_loop()),
        ]
        self._begin(total=max(1, _count(pipe)) * repeat)
        last: RunResult | None = None
        problem: BaseException | None = None
        try:
            for i in range(repeat):
                if self._stop:
                    break
                t0 = time.perf_counter()
                self._handle = start(pipe, self.ctx, clock=clock, instruments=instruments, **kwargs)
                try:
                    result = await self._handle.wait()
                except asyncio.CancelledError:
                    self._handle.cancel()
                    raise
                last = result
                self._record(result, params, i, time.perf_counter() - t0)
        except Exception as err:
            problem = err
        finally:
            self._end()
        if last is not None:
            self._show_result(len(self.results), last)
        self._show_history()
        if problem is not None:
            self._show_error(
                problem, title="The Lab could not run the pipeline", clear=last is None
            )
        return last

    def stop(self) -> None:
        """Cancel the run in progress (and any repeats still to come)."""
        if not self._busy:
            return
        self._stop = True
        self.status.value = "<i>stopping…</i>"
        if self._handle is not None:
            self._handle.cancel()

    # ---- comparing ----------------------------------------------------------------------------
    def compare(
        self, metric: str | None = None, x: str | None = None, hue: str | None = None
    ) -> Any:
        """Plot ``metric`` (a numeric history column) across the history by ``x`` and ``hue``.

        Draws in the Compare view and returns the matplotlib Figure (``None`` with no history).
        Left-out arguments keep the view's current choices.
        """
        return self.compare_view.plot(metric, x, hue)

    def side_by_side(self, a: int | None = None, b: int | None = None) -> Any:
        """Draw runs ``a`` and ``b`` (history ``run`` numbers) side by side; return the Figure."""
        return self.compare_view.side_by_side(a, b)

    # ---- bookkeeping --------------------------------------------------------------------------
    def _begin(self, total: int) -> None:
        self._busy, self._stop = True, False
        self.run_button.disabled = True
        self.stop_button.disabled = False
        self.progress.max = total
        self.progress.value = 0
        self.progress.bar_style = ""
        self.progress_label.value = f"0 / {total}"
        self.status.value = "<i>running…</i>"

    def _end(self) -> None:
        self._busy = False
        self._handle = None
        self.run_button.disabled = False
        self.stop_button.disabled = True
        last = self.result
        self.progress.bar_style = (
            "success" if last is not None and last.status == "ok" else "danger"
        )
        state = "stopped" if self._stop else (last.status if last is not None else "not run")
        self.status.value = f"<i>{html.escape(state)}</i>"

    def _tick(self) -> None:
        self.progress.value = min(self.progress.max, self.progress.value + 1)
        self.progress_label.value = f"{self.progress.value} / {self.progress.max}"

    def _record(
        self, result: RunResult, params: Mapping[str, Any], index: int, wall_s: float
    ) -> None:
        self.results.append(result)
        s = result.summary()
        merges = result.merges
        row: dict[str, Any] = {"run": len(self.results), **params, "repeat": index + 1}
        row.update(
            status=result.status,
            makespan_s=float(s["makespan_s"]),
            peak_concurrency=int(s["peak_concurrency"]),
            utilisation=float(s["utilisation"]),
            branches=int(s["branches"]),
        )
        row.update({k: v for k, v in s.items() if k.startswith("n_")})
        row.update(
            conflicts=int(merges["conflict"].sum()) if not merges.empty else 0,
            cost=float(result.cost),
            tokens=int(result.tokens),
            wall_s=round(wall_s, 6),
            error="" if result.error is None else f"{type(result.error).__name__}: {result.error}",
        )
        row.update(_context_metrics(result.context))
        self._rows.append(row)

    # ---- output -------------------------------------------------------------------------------
    def _show_result(self, run_id: int, result: RunResult) -> None:
        out = self.output
        _clear(out)
        out.append_display_data(views.summary_html(run_id, result))
        if result.error is not None:
            title = "The run was cancelled" if result.status == "cancelled" else "The run failed"
            out.append_display_data(views.error_html(result.error, title=title))
        try:
            out.append_display_data(
                views.caption(f"timeline · run #{run_id}", css_class="flowlab-timeline")
            )
            fig = views.figure(
                lambda f: views.draw_timeline(f, result), size=(8.0, views.timeline_height(result))
            )
            out.append_display_data(views.png(fig))
            out.append_display_data(
                views.caption(f"concurrency · run #{run_id}", css_class="flowlab-concurrency")
            )
            out.append_display_data(
                views.png(views.figure(lambda f: views.draw_concurrency(f, result)))
            )
            out.append_display_data(
                views.caption(
                    "merges: which branch won each field", css_class="flowlab-merge-title"
                )
            )
            out.append_display_data(views.merges_html(result))
            out.append_display_data(
                views.caption("final context", css_class="flowlab-context-title")
            )
            out.append_display_data(views.context_html(result.context))
        except Exception as err:
            out.append_display_data(views.error_html(err, title="Could not draw this run"))

    def _show_history(self) -> None:
        _clear(self.history_output)
        try:
            self.history_output.append_display_data(views.history_html(self.history))
            self.compare_view.refresh()
        except Exception as err:
            self.history_output.append_display_data(
                views.error_html(err, title="Could not show the history")
            )

    def _show_error(self, err: BaseException, *, title: str, clear: bool = True) -> None:
        if clear:
            _clear(self.output)
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
        return (
            f"<div class='flowlab-lab-static'><b>flowlab Lab</b> — {html.escape(self.pipe.name)}"
            f"<ul>{items}</ul>{hist}</div>"
        )

    def __repr__(self) -> str:
        state = "running" if self._busy else "idle"
        return (
            f"<Lab {self.pipe.name!r} steps={list(self.controls)} runs={len(self.results)} {state}>"
        )


def _count(pipe: Pipeline) -> int:
    """Declared branches, nested ones included (what the engine reports as ``total_branches``)."""
    return sum(len(p.branches) for p in pipe.parallels())


def _context_metrics(ctx: BaseModel) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in type(ctx).model_fields:
        value = getattr(ctx, name)
        if isinstance(value, bool):
            continue
        if isinstance(value, int | float):
            out[f"ctx.{name}"] = value
        elif isinstance(value, list | tuple | set | frozenset | dict):
            out[f"ctx.{name}.len"] = len(value)
    return out
