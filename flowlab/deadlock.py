"""``fl.deadlock``: the deadlock lab (the public face of :mod:`flowlab.study.deadlock`).

Adds the pictures and widgets that live in the UI layer: :func:`plot_swimlanes`
(:mod:`flowlab.ui.plot._deadlock`), and ``Lab`` / ``SchedulerWidget``
(:mod:`flowlab.ui.lab.deadlock`, loaded on first use because they import ipywidgets).
"""

from __future__ import annotations

from flowlab.study import deadlock as _study
from flowlab.study.deadlock import *  # noqa: F403
from flowlab.ui.plot._deadlock import plot_swimlanes

__all__ = [*_study.__all__, "Lab", "SchedulerWidget", "plot_swimlanes"]  # noqa: F405


def __getattr__(name: str) -> object:
    """``Lab`` and ``SchedulerWidget`` load ipywidgets, so they are imported on first use."""
    if name in ("Lab", "SchedulerWidget"):
        from flowlab.ui.lab import deadlock as widgets

        return getattr(widgets, name)
    raise AttributeError(f"module 'flowlab.deadlock' has no attribute {name!r}")
