"""The two seams of the Lab's model: where its settings come from, and whom it tells what happened.

:class:`~flowlab.ui.lab.model.LabModel` runs, sweeps, stops and re-merges without any widget. It
reads the options to run with from a :class:`LabSettings` (in the panel: the controls,
:class:`~flowlab.ui.lab.controls.LabControls`) and reports to a :class:`LabView` (in the panel:
:class:`~flowlab.ui.lab.panel.PanelView`, which writes the progress bar, the status line and the
output areas). A script or a test can give it any object with these methods, e.g. a recording
fake view and a fixed set of options.

Every :class:`LabView` call happens on the thread of the event loop that runs the Lab (the
notebook's loop, or the one :meth:`~flowlab.ui.lab.model.LabModel.run` starts in a script).

Examples
--------
A model driven from a script, with fixed options and a view that prints what it is told:

>>> import asyncio
>>> from pydantic import BaseModel
>>> import flowlab as fl
>>> from flowlab.ui.lab.model import LabModel
>>> class Ctx(BaseModel):
...     n: int = 0
>>> async def add(data, ctx):
...     await asyncio.sleep(1)
...     ctx.n += 1
>>> pipe = fl.Pipeline(fl.Parallel({"a": add, "b": add}, name="fan", merge="accumulate"))
>>> class Options:  # a LabSettings
...     repeat, clock = 1, "virtual"
...     def pipeline(self): return pipe
...     def parameters(self): return {"clock": self.clock}
...     def caps(self): return {"fan": 2}
>>> class Printer:  # a LabView: every method prints its name and its plain arguments
...     def observers(self): return []  # (no live view here)
...     def __getattr__(self, told):
...         return lambda *args, **kw: print(told, *[a for a in args if isinstance(a, int | str)])
>>> model = LabModel(Ctx(), Options(), Printer())
>>> model.run().context.n
began 2
ticked 1 2
ticked 2 2
ended ok True
show_result 1
show_history
2
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from flowlab.core.pipeline import Pipeline
    from flowlab.results.record import RunResult
    from flowlab.study.comparison import Comparison

__all__ = ["LabSettings", "LabView"]


class LabSettings(Protocol):
    """The options the next run uses, as the user has set them.

    The model reads them when a run or sweep starts (and when it re-merges), never in between.
    """

    @property
    def repeat(self) -> int:
        """How many times Run runs the pipeline (each run is one history row)."""
        ...

    @property
    def clock(self) -> str:
        """``"virtual"`` or ``"real"``."""
        ...

    def pipeline(self) -> Pipeline:
        """The pipeline with the chosen options; raises (a ``ConfigError``) if they are not valid."""
        ...

    def parameters(self) -> dict[str, Any]:
        """The history's parameter columns: ``"<step>.<option>"`` for each Parallel step, ``clock``."""
        ...

    def caps(self) -> dict[str, int]:
        """Each Parallel step's largest cap, by step name in pipeline order (Sweep tries 1..cap)."""
        ...


class LabView(Protocol):
    """What the model tells whoever shows it. Each method only shows; none may call back to run.

    A call that raises is shown through :meth:`show_error` (``clear=False``) and the model goes on.
    """

    def began(self, total: int | None) -> None:
        """A run or a sweep began; ``total`` branches are expected in all (``None``: unknown,
        a Map names its branches as it runs)."""
        ...

    def observers(self) -> list[Any]:
        """Instruments to add to each run (a live timeline, say); ``[]`` for none."""
        ...

    def ticked(self, done: int, total: int | None) -> None:
        """One more branch finished: ``done`` of ``total``."""
        ...

    def stopping(self) -> None:
        """Stop was asked for; the run in progress is being cancelled."""
        ...

    def ended(self, state: str, ok: bool) -> None:
        """The run or sweep is over (the Lab is idle again).

        ``state`` is the last run's status (``"ok"``, ``"failed"``, ``"cancelled"``, ...),
        ``"stopped"`` after Stop, or ``"not run"`` when nothing ran; ``ok`` says whether the last
        run succeeded.
        """
        ...

    def show_result(self, run_id: int, result: RunResult) -> None:
        """Show one run: the history row ``run == run_id``."""
        ...

    def show_history(self) -> None:
        """The history changed: show it again."""
        ...

    def show_sweep(self, key: str, comparison: Comparison) -> None:
        """A sweep over option ``key`` ended with ``comparison`` (its runs are in the history)."""
        ...

    def show_error(self, err: BaseException, *, title: str, clear: bool = True) -> None:
        """Show an error under ``title``; ``clear`` replaces what the output shows, else appends."""
        ...

    def note(self, text: str) -> None:
        """A short notice (a second run asked for while one is going; a re-merge refused)."""
        ...
