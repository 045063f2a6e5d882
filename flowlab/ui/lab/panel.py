"""The Lab's panel: the buttons, progress bar, status line and output areas, as the model's view.

:class:`PanelView` implements :class:`~flowlab.ui.lab.protocols.LabView`: the model
(:class:`~flowlab.ui.lab.model.LabModel`) tells it that a run began, ticked or ended, and gives it
results, errors and notes to show; it writes them into its widgets and does nothing else. Buttons
are wired by :class:`~flowlab.ui.lab.lab.Lab`, which composes the panel with the model.

Output goes only through :meth:`ipywidgets.Output.append_display_data` and
:meth:`~ipywidgets.Output.append_stdout`: a ``with out:`` block inside an async callback loses its
output in JupyterLab 4.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from flowlab.ui.lab import views

if TYPE_CHECKING:
    from flowlab.results.record import RunResult
    from flowlab.study.comparison import Comparison
    from flowlab.ui.lab.lab import Lab

__all__ = ["PanelView"]


class PanelView:
    """The widgets a Lab's runs show in, and the :class:`~flowlab.ui.lab.protocols.LabView` over them.

    Parameters
    ----------
    lab : Lab
        Whose history, Compare view and controls the panel shows.

    Attributes
    ----------
    run_button, stop_button, sweep_button : ipywidgets.Button
        Run, Stop and Sweep (wired by the Lab).
    sweep_key : ipywidgets.Dropdown
        The option Sweep varies (the Lab fills it with its ``sweep_keys()``).
    progress : ipywidgets.IntProgress
        Branches finished in the run or sweep going on; green when it ended ``ok``, red otherwise.
    progress_label : ipywidgets.Label
        ``done / total``.
    status : ipywidgets.HTML
        ``ready``, ``running…``, ``stopping…``, then the last run's status (or ``stopped``).
    live : ipywidgets.HTML
        The run going on, drawn as it goes: counts and a timeline that grows as branches start
        and end (a :class:`~flowlab.ui.live.LiveView` per run draws into it, see
        :meth:`observers`).
    output : ipywidgets.Output
        The latest run (summary, plots, merges, context), errors and notes.
    history_output : ipywidgets.Output
        The history table.
    """

    def __init__(self, lab: Lab) -> None:
        import ipywidgets as w

        self.lab = lab
        self.run_button = w.Button(description="Run", button_style="success", icon="play")
        self.stop_button = w.Button(
            description="Stop", button_style="danger", icon="stop", disabled=True
        )
        self.sweep_key = w.Dropdown(options=[], description="sweep")  # the Lab fills it
        self.sweep_button = w.Button(description="Sweep", icon="th", disabled=not lab.controls)
        self.progress = w.IntProgress(value=0, min=0, max=1, description="branches")
        self.progress_label = w.Label("0 / 0")
        self.status = w.HTML("<i>ready</i>")
        self.live = w.HTML("")
        self.output = w.Output()
        self.history_output = w.Output()
        for widget, css in (
            (self.run_button, "flowlab-run"),
            (self.stop_button, "flowlab-stop"),
            (self.sweep_key, "flowlab-sweep-key"),
            (self.sweep_button, "flowlab-sweep"),
            (self.progress, "flowlab-progress"),
            (self.status, "flowlab-status"),
            (self.live, "flowlab-live"),
            (self.output, "flowlab-output"),
            (self.history_output, "flowlab-history-output"),
        ):
            widget.add_class(css)

    # ---- the run going on ---------------------------------------------------------------------
    def observers(self) -> list[Any]:
        """Instruments for the next run: a live view that draws it into :attr:`live`."""
        from flowlab.ui.live import LiveView

        view = LiveView(notebook=True, display=False)
        view.widget = self.live  # one area in the panel, redrawn by each run in turn
        return [view]

    def began(self, total: int | None) -> None:
        """Buttons: only Stop; progress ``0 / total`` (``0 / ?`` with a Map); ``running…``."""
        self.run_button.disabled = self.sweep_button.disabled = True
        self.stop_button.disabled = False
        self.progress.max, self.progress.value, self.progress.bar_style = max(1, total or 0), 0, ""
        self.progress_label.value = f"0 / {'?' if total is None else total}"
        self.status.value = "<i>running…</i>"

    def ticked(self, done: int, total: int | None) -> None:
        """Progress ``done / total`` (a Map's branches are counted as they finish: ``done / ?``)."""
        if total is None and done > self.progress.max:
            self.progress.max = done
        self.progress.value = min(self.progress.max, done)
        self.progress_label.value = f"{done} / {'?' if total is None else total}"

    def stopping(self) -> None:
        """Status ``stopping…``."""
        self.status.value = "<i>stopping…</i>"

    def ended(self, state: str, ok: bool) -> None:
        """Buttons back; a green (``ok``) or red bar; the state as the status."""
        self.run_button.disabled = False
        self.sweep_button.disabled = not self.lab.controls
        self.stop_button.disabled = True
        self.progress.bar_style = "success" if ok else "danger"
        self.status.value = f"<i>{html.escape(state)}</i>"

    # ---- what it showed -----------------------------------------------------------------------
    def show_result(self, run_id: int, result: RunResult) -> None:
        """The run's summary, timeline and concurrency plots, merges and final context.

        A drawing problem is shown in place of the plots, with the run's summary and error.
        """
        lab = self.lab
        try:
            # the outermost Parallel's branches against its cap: what the max concurrency slider sets
            outer = next(iter(lab.controls), None)
            shown = views.result_displays(run_id, result, plots=lab.show_plots, step=outer)
        except Exception as err:  # a drawing problem is shown, never lost
            shown = [views.summary_html(run_id, result)]
            if result.error is not None:
                shown.append(views.error_html(result.error))
            shown.append(views.error_html(err, title="Could not draw this run"))
        views.clear(self.output)
        for item in shown:
            self.output.append_display_data(item)

    def show_history(self) -> None:
        """The history table, and the Compare view's choices refreshed."""
        views.clear(self.history_output)
        try:
            self.history_output.append_display_data(views.history_html(self.lab.history))
            self.lab.compare_view.refresh()
        except Exception as err:  # shown in the panel, never lost
            shown = views.error_html(err, title="Could not show the history")
            self.history_output.append_display_data(shown)

    def show_sweep(self, key: str, comparison: Comparison) -> None:
        """The Compare view plots the sweep's default metric by the swept option."""
        self.lab.compare_view.plot(x=key, hue="(none)")

    def show_error(self, err: BaseException, *, title: str, clear: bool = True) -> None:
        """An error box (a traceback for errors not flowlab's own), and a line of text."""
        if clear:
            views.clear(self.output)
        self.output.append_display_data(views.error_html(err, title=title))
        self.output.append_stdout(f"{title}: {views.error_text(err)}\n")

    def note(self, text: str) -> None:
        """A notice box under what the output shows."""
        self.output.append_display_data(views.note_html(text))

    def __repr__(self) -> str:
        return f"<PanelView status={self.status.value!r} progress={self.progress_label.value!r}>"
