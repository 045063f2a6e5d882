"""The Lab: an ipywidgets control panel over runs and comparisons.

* :mod:`~flowlab.ui.lab.lab` — :class:`Lab`: composes the controls, the model and the panel
* :mod:`~flowlab.ui.lab.model` — :class:`~flowlab.ui.lab.model.LabModel`: Run, Sweep, Stop,
  re-merge and the history, with no widget
* :mod:`~flowlab.ui.lab.protocols` — the model's seams: ``LabSettings`` in, ``LabView`` out
* :mod:`~flowlab.ui.lab.watch` — the instrument that counts branches and lets Stop reach a sweep
* :mod:`~flowlab.ui.lab.panel` — the buttons, progress, status and outputs: the model's view
* :mod:`~flowlab.ui.lab.controls` — controls made from the pipeline: the model's settings
* :mod:`~flowlab.ui.lab.history` — the record of runs
* :mod:`~flowlab.ui.lab.compare` — the Compare view
* :mod:`~flowlab.ui.lab.views` — figures and tables as display objects
* :mod:`~flowlab.ui.lab.deadlock` — the deadlock Lab and the scheduler game's widget
"""

from flowlab.ui.lab.lab import Lab

__all__ = ["Lab"]
