"""The Lab's controls, made from the pipeline itself: one group per Parallel step, one for the run.

Each group is a plain object holding ipywidgets (``.merge``, ``.order``, ``.max_concurrency``, ...),
so a script can set ``controls.merge.value = "deep"`` exactly as a click in the browser would. A group
turns its widgets back into Parallel options (:meth:`StepControls.options`, fed to
:meth:`flowlab.Pipeline.replace`) and into the parameter columns of the Lab's history
(:meth:`StepControls.params`). :class:`LabControls` holds every group of one Lab and is the
:class:`~flowlab.ui.lab.protocols.LabSettings` its model runs with.

ipywidgets is imported when a group is built, never when this module is imported.
"""

from __future__ import annotations

import html
import math
from typing import Any

from flowlab.core.limits import AIMD, Adaptive, Fixed, Limiter
from flowlab.core.pipeline import ON_FAILURE, ORDERS, Parallel, Pipeline
from flowlab.errors import ConfigError

__all__ = ["CAP_MODES", "LabControls", "RunControls", "StepControls", "limiter_for"]

CAP_MODES: tuple[str, ...] = ("fixed", "unlimited", "adaptive", "aimd")
"""How ``max_concurrency`` is set: a fixed cap, none, CPU-adaptive, or AIMD on latency."""

_CAP_LABELS = {"fixed": "fixed", "unlimited": "unlimited", "adaptive": "adaptive", "aimd": "AIMD"}
_CLOCKS = ("virtual", "real")


def limiter_for(mode: str, limit: int, original: Limiter | None = None) -> Limiter | None:
    """The ``max_concurrency`` value for a cap ``mode`` and the slider's ``limit``.

    ``adaptive`` and ``aimd`` move between 1 and ``limit``. When ``original`` (the pipeline's own
    limiter) is of the chosen kind with the same maximum, it is kept as is, so its other settings
    (targets, intervals) survive.

    Examples
    --------
    >>> limiter_for("fixed", 3)
    Fixed(3)
    >>> limiter_for("unlimited", 3) is None
    True
    """
    if mode == "unlimited":
        return None
    if mode == "fixed":
        return Fixed(limit)
    kind: type[Limiter] = Adaptive if mode == "adaptive" else AIMD
    if mode not in CAP_MODES:
        raise ConfigError(
            f"cap={mode!r} is not valid; choose one of {', '.join(repr(m) for m in CAP_MODES)}."
        )
    if type(original) is kind and getattr(original, "max", None) == limit:
        return original
    return Adaptive(min=1, max=limit) if mode == "adaptive" else AIMD(min=1, max=limit)


_MAP_SLIDER_MAX = 16  # a Map's cap slider (its branches are only known as it runs)


def _cap_of(limiter: Limiter | None) -> tuple[str, int | None]:
    if limiter is None:
        return "unlimited", None
    if isinstance(limiter, Fixed):
        return "fixed", limiter.limit
    if isinstance(limiter, Adaptive):
        return "adaptive", limiter.max
    if isinstance(limiter, AIMD):
        return "aimd", limiter.max
    return "fixed", limiter.initial()


class StepControls:
    """The widgets for one Parallel step.

    Attributes
    ----------
    merge : ipywidgets.Dropdown
        Every strategy in :data:`flowlab.core.merge.STRATEGIES`; a custom rule or function given to the
        step is one more choice, ``"custom: <name>"``.
    order : ipywidgets.ToggleButtons
        ``"declared"`` or ``"completion"``.
    cap : ipywidgets.ToggleButtons
        ``"fixed"``, ``"unlimited"``, ``"adaptive"`` or ``"aimd"`` (see :data:`CAP_MODES`).
    max_concurrency : ipywidgets.IntSlider
        The cap (the most an adaptive limiter may reach). Moving it while the cap is
        ``"unlimited"`` switches the cap to ``"fixed"``.
    on_failure : ipywidgets.Dropdown
        ``"propagate"``, ``"fail_fast"`` or ``"ignore"``.
    branch_timeout : ipywidgets.BoundedFloatText
        Seconds per branch; ``0`` means no timeout.
    box : ipywidgets.VBox
        The group as shown in the panel.
    """

    def __init__(self, step: Parallel) -> None:
        import ipywidgets as w

        from flowlab.core.merge import STRATEGIES

        self.name = step.name
        self._original_limiter = step.max_concurrency
        choices = list(STRATEGIES)
        self._custom: tuple[str, Any] | None = None
        merge_arg = step.merge_arg
        if isinstance(merge_arg, str) and merge_arg in STRATEGIES:
            merge_value = merge_arg
        else:
            merge_value = f"custom: {getattr(step.merge, 'name', 'merge')}"
            self._custom = (merge_value, merge_arg)
            choices.append(merge_value)
        mode, limit = _cap_of(step.max_concurrency)
        # a Map's branches are made as it runs: the slider then goes to 16 (or the cap)
        n = len(step.branches) or _MAP_SLIDER_MAX
        limit = limit if limit is not None else n
        style = {"description_width": "9em"}
        self.merge = w.Dropdown(
            options=choices, value=merge_value, description="merge", style=style
        )
        self.order = w.ToggleButtons(
            options=list(ORDERS), value=step.order, style={"button_width": "7.5em"}
        )
        self.cap = w.ToggleButtons(
            options=[(_CAP_LABELS[m], m) for m in CAP_MODES],
            value=mode,
            style={"button_width": "6.5em"},
            tooltips=[
                "at most max concurrency branches at once",
                "no cap",
                "1..max concurrency, moved by CPU and memory load",
                "1..max concurrency, moved by branch latency (AIMD)",
            ],
        )
        self.max_concurrency = w.IntSlider(
            value=limit,
            min=1,
            max=max(n, limit),
            description="max concurrency",
            style=style,
            continuous_update=False,
        )
        self.on_failure = w.Dropdown(
            options=list(ON_FAILURE), value=step.on_failure, description="on failure", style=style
        )
        self.branch_timeout = w.BoundedFloatText(
            value=step.branch_timeout or 0.0,
            min=0.0,
            max=1e9,
            step=0.5,
            description="branch timeout",
            style=style,
        )
        self.max_concurrency.observe(self._slider_moved, names="value")
        for attr in ("merge", "order", "cap", "max_concurrency", "on_failure", "branch_timeout"):
            getattr(self, attr).add_class(f"flowlab-{attr.replace('_', '-')}")
        shape = (
            f"Parallel of {n} branches: {html.escape(', '.join(step.branches))}"
            if step.branches
            else f"Map: a branch per item, {html.escape(repr(step))}"
        )
        title = f"<b>{html.escape(step.name)}</b> — {shape} <i>(branch timeout 0 = none)</i>"
        self.box = w.VBox(
            [
                w.HTML(title),
                self.merge,
                _labelled("order", self.order),
                _labelled("cap", self.cap),
                self.max_concurrency,
                self.on_failure,
                self.branch_timeout,
            ],
        )
        self.box.add_class("flowlab-step")
        self.box.add_class(f"flowlab-step-{_css(step.name)}")

    def _slider_moved(self, change: dict[str, Any]) -> None:
        if self.cap.value == "unlimited":
            self.cap.value = "fixed"

    @property
    def merge_arg(self) -> Any:
        """The ``merge`` option for the chosen dropdown value (a custom rule stays itself)."""
        if self._custom is not None and self.merge.value == self._custom[0]:
            return self._custom[1]
        return self.merge.value

    def options(self) -> dict[str, Any]:
        """Parallel options from the widgets, for :meth:`flowlab.Pipeline.replace`."""
        timeout = float(self.branch_timeout.value)
        return {
            "merge": self.merge_arg,
            "order": self.order.value,
            "max_concurrency": limiter_for(
                self.cap.value, int(self.max_concurrency.value), self._original_limiter
            ),
            "on_failure": self.on_failure.value,
            "branch_timeout": timeout if timeout > 0 else None,
        }

    def params(self) -> dict[str, Any]:
        """History columns, named ``"<step>.<option>"`` like :func:`flowlab.compare` grid keys.

        ``<step>.max_concurrency`` is the slider value, missing (``None``) when unlimited;
        ``<step>.branch_timeout`` is in seconds, NaN when there is none.
        """
        timeout = float(self.branch_timeout.value)
        cap = self.cap.value
        return {
            f"{self.name}.merge": str(self.merge.value),
            f"{self.name}.order": str(self.order.value),
            f"{self.name}.cap": str(cap),
            f"{self.name}.max_concurrency": None
            if cap == "unlimited"
            else int(self.max_concurrency.value),
            f"{self.name}.on_failure": str(self.on_failure.value),
            f"{self.name}.branch_timeout": timeout if timeout > 0 else math.nan,
        }

    def __repr__(self) -> str:
        opts = ", ".join(f"{k.split('.', 1)[1]}={v!r}" for k, v in self.params().items())
        return f"<StepControls {self.name!r} {opts}>"


class RunControls:
    """The widgets for the run as a whole.

    Attributes
    ----------
    clock : ipywidgets.ToggleButtons
        ``"virtual"`` (sleeps take no wall time; exact, repeatable timings) or ``"real"``.
    repeat : ipywidgets.BoundedIntText
        How many times Run runs the pipeline (each run is one history row).
    """

    def __init__(self, *, clock: str = "virtual", repeat: int = 1) -> None:
        import ipywidgets as w

        if clock not in _CLOCKS:
            listed = ", ".join(repr(c) for c in _CLOCKS)
            raise ConfigError(f"clock={clock!r} is not valid; choose one of {listed}.")
        style = {"description_width": "9em"}
        self.clock = w.ToggleButtons(
            options=list(_CLOCKS),
            value=clock,
            style={"button_width": "6.5em"},
            tooltips=["sleeps take no wall time; exact, repeatable timings", "wall-clock time"],
        )
        self.repeat = w.BoundedIntText(
            value=repeat,
            min=1,
            max=100,
            description="repeat",
            style=style,
            layout=w.Layout(width="16em"),
        )
        self.clock.add_class("flowlab-clock")
        self.repeat.add_class("flowlab-repeat")
        self.box = w.VBox([_labelled("clock", self.clock), self.repeat])

    def params(self) -> dict[str, Any]:
        """The history column ``clock``."""
        return {"clock": str(self.clock.value)}

    def __repr__(self) -> str:
        return f"<RunControls clock={self.clock.value!r} repeat={self.repeat.value}>"


class LabControls:
    """All of a Lab's controls as the settings its model runs with
    (:class:`~flowlab.ui.lab.protocols.LabSettings`).

    Parameters
    ----------
    pipe : Pipeline
        The pipeline the controls are made from; :meth:`pipeline` is a copy with their options.
    clock : str, default "virtual"
        The clock control's starting value.

    Attributes
    ----------
    steps : dict of str to StepControls
        One group per Parallel step (nested ones included), by step name.
    run : RunControls
        ``clock`` and ``repeat``.
    """

    def __init__(self, pipe: Pipeline, *, clock: str = "virtual") -> None:
        self.pipe = pipe
        self.steps: dict[str, StepControls] = {}
        for step in pipe.parallels():
            self.steps.setdefault(step.name, StepControls(step))
        self.run = RunControls(clock=clock)

    @property
    def repeat(self) -> int:
        """How many times Run runs the pipeline."""
        return int(self.run.repeat.value)

    @property
    def clock(self) -> str:
        """``"virtual"`` or ``"real"``."""
        return str(self.run.clock.value)

    def pipeline(self) -> Pipeline:
        """The pipeline with the options the controls show (validated like the constructor)."""
        return self.pipe.replace({name: c.options() for name, c in self.steps.items()})

    def parameters(self) -> dict[str, Any]:
        """The history's parameter columns for the current control values."""
        params: dict[str, Any] = {}
        for c in self.steps.values():
            params.update(c.params())
        params.update(self.run.params())
        return params

    def caps(self) -> dict[str, int]:
        """Each step's largest cap: the end of its max concurrency slider."""
        return {name: int(c.max_concurrency.max) for name, c in self.steps.items()}


def _labelled(text: str, widget: Any) -> Any:
    """``widget`` after a label as wide as the other controls' descriptions.

    (ipywidgets 8 puts a ToggleButtons' own description on a line of its own.)
    """
    import ipywidgets as w

    label = w.HTML(
        f"<div style='text-align:right;padding-right:6px'>{html.escape(text)}</div>",
        layout=w.Layout(width="9em"),
    )
    return w.HBox([label, widget])


def _css(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name)
