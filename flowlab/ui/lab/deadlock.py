"""Notebook widgets: the deadlock ``Lab`` and "be the scheduler".

Design
------
Thin ipywidgets layers over models that work without a browser: :class:`Lab` over
:func:`~flowlab.study.deadlock.scenarios.run`, :class:`SchedulerWidget` over
:class:`~flowlab.study.deadlock.game.SchedulerGame`. Tests set ``.value`` and call ``Button.click()``.
Output goes through ``Output.append_stdout`` / ``append_display_data`` (never ``with out:``, which
loses output in async callbacks in JupyterLab 4). Figures are rendered to PNG with a bare
``matplotlib.figure.Figure`` so nothing is left open in pyplot. ipywidgets is imported here only.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

import ipywidgets as w

from flowlab.study.deadlock.game import GOALS, SchedulerGame
from flowlab.study.deadlock.runner import Outcome
from flowlab.study.deadlock.scenarios import SCENARIOS
from flowlab.study.deadlock.scenarios import run as run_scenario

if TYPE_CHECKING:
    from flowlab.study.deadlock.report import DeadlockReport

__all__ = ["Lab", "SchedulerWidget"]


def _png(draw: Any, size: tuple[float, float]) -> Any:
    from IPython.display import Image
    from matplotlib.figure import Figure

    fig = Figure(figsize=size)
    draw(fig.add_subplot())
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    return Image(data=buf.getvalue(), format="png")  # type: ignore[no-untyped-call]


class Lab:
    """Pick a scenario, toggle the fix, run; see the explanation, the graph and the timeline.

    Attributes
    ----------
    scenario : ipywidgets.Dropdown
    fixed : ipywidgets.Checkbox
    run_button : ipywidgets.Button
    explanation, graph, timeline, code : ipywidgets.Output
        ``code`` shows the scenario's source (``scenario.source``), broken and fixed, as soon
        as a scenario is picked.
    report : DeadlockReport or Outcome or None
        The last run's report (an explorer ``Outcome`` for a race scenario: its story is shown
        as the explanation and its swimlanes in place of the graph).
    """

    def __init__(self, scenario: str = "governor") -> None:
        self.scenario = w.Dropdown(options=list(SCENARIOS), value=scenario, description="scenario")
        self.fixed = w.Checkbox(value=False, description="apply the fix")
        self.run_button = w.Button(description="run", button_style="primary")
        self.explanation = w.Output()
        self.graph = w.Output()
        self.timeline = w.Output()
        self.code = w.Output()
        self.report: DeadlockReport | Outcome | None = None
        self.run_button.on_click(lambda _: self.run())
        self.scenario.observe(lambda _: self.show_code(), names="value")
        tabs = w.Tab(children=[self.explanation, self.graph, self.timeline, self.code])
        for i, title in enumerate(["explanation", "wait-for graph", "timeline", "code"]):
            tabs.set_title(i, title)
        self.widget = w.VBox([w.HBox([self.scenario, self.fixed, self.run_button]), tabs])
        self.show_code()

    def show_code(self) -> None:
        """Show the picked scenario's source in the code tab."""
        self.code.outputs = ()
        self.code.append_stdout(SCENARIOS[self.scenario.value].source)

    def run(self) -> DeadlockReport | Outcome:
        """Run the selected scenario on virtual time and show its report."""
        from IPython.display import HTML

        report = run_scenario(self.scenario.value, fixed=self.fixed.value)
        self.report = report
        for out in (self.explanation, self.graph, self.timeline):
            out.outputs = ()
        sc = SCENARIOS[report.scenario or self.scenario.value]
        if isinstance(report, Outcome):  # a race: explored, not watched
            self.explanation.append_stdout(f"{sc.title}\n\n{report.narrate()}\n")
            self.graph.append_display_data(_png(report.plot, (8, 3)))
            return report
        self.explanation.append_stdout(f"{sc.title}\n\n{report.explain()}\n")
        self.graph.append_display_data(_png(report.plot, (6, 6)))
        self.timeline.append_display_data(_png(report.plot_timeline, (8, 4)))
        table = HTML(report.timeline.to_html(index=False))  # type: ignore[no-untyped-call]
        self.timeline.append_display_data(table)
        return report

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)  # type: ignore[no-untyped-call]


class SchedulerWidget:
    """Be the scheduler: a button per ready task, a hint, a reset; goal: deadlock or failure.

    Parameters
    ----------
    target, fixed, goal
        As for :class:`~flowlab.study.deadlock.game.SchedulerGame`.
    picture : bool
        Redraw the lock-state picture (who holds what, who waits) after every move.

    Attributes
    ----------
    game : SchedulerGame
        The model (works without widgets).
    buttons : list of ipywidgets.Button
        One per ready task, in creation order (stable from move to move), rebuilt after every move.
    status, lines : ipywidgets.HTML
        Where the game stands (goal, holders, waiters) and each live task's next source line.
    picture, log : ipywidgets.Output
        The lock-state picture (replaced after every move) and the moves and hints so far.
    """

    def __init__(
        self,
        target: Any = None,
        *,
        fixed: bool = False,
        goal: str | None = None,
        picture: bool = True,
    ) -> None:
        self.game = SchedulerGame(target, fixed=fixed, goal=goal)
        self.draw = picture
        self.status = w.HTML()
        self.lines = w.HTML()
        self.choices = w.HBox()
        self.hint_button = w.Button(description="hint", icon="lightbulb-o")
        self.reset_button = w.Button(description="reset")
        self.picture = w.Output()
        self.log = w.Output()
        self.buttons: list[w.Button] = []
        self.hint_button.on_click(lambda _: self.hint())
        self.reset_button.on_click(lambda _: self._reset())
        self.widget = w.VBox(
            [
                self.status,
                self.lines,
                w.HBox([self.choices, self.hint_button, self.reset_button]),
                w.HBox([self.picture, self.log]),
            ]
        )
        self._render()

    def _render(self) -> None:
        import html

        head, *rest = self.game.describe().split("\n")  # then task lines, or the report
        self.status.value = f"<b>{html.escape(self.game.label)}</b>: " + html.escape(head)
        self.lines.value = f"<pre>{html.escape(chr(10).join(rest))}</pre>" if rest else ""
        self.buttons = []
        for name in self.game.options:
            button = w.Button(description=f"run {name}")
            button.on_click(lambda _, n=name: self._move(n))
            self.buttons.append(button)
        self.choices.children = tuple(self.buttons)
        if self.draw:
            self.picture.outputs = ()
            self.picture.append_display_data(_png(self.game.plot, (6, 3)))

    def _move(self, name: str) -> None:
        self.game.choose(name)
        self.log.append_stdout(f"ran {name}\n")
        self._render()

    def _reset(self) -> None:
        self.game.reset()
        self.log.append_stdout("reset\n")
        self._render()

    def hint(self) -> str | None:
        """Ask the explorer for a move from which the goal can still be reached."""
        move = self.game.hint()
        goal = GOALS[self.game.goal]
        self.log.append_stdout(f"hint: run {move}\n" if move else f"hint: cannot {goal} now\n")
        return move

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)  # type: ignore[no-untyped-call]
