"""The Lab: an ipywidgets control panel over runs and comparisons.

* :mod:`~flowlab.ui.lab.lab` — :class:`Lab`, the panel
* :mod:`~flowlab.ui.lab.runs` — how it runs things (Run, Sweep, Stop)
* :mod:`~flowlab.ui.lab.controls` — controls made from the pipeline
* :mod:`~flowlab.ui.lab.history` — the record of runs
* :mod:`~flowlab.ui.lab.compare` — the Compare view
* :mod:`~flowlab.ui.lab.views` — figures and tables as display objects
* :mod:`~flowlab.ui.lab.deadlock` — the deadlock Lab and the scheduler game's widget
"""

from flowlab.ui.lab.lab import Lab

__all__ = ["Lab"]
