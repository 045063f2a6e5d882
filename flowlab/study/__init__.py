"""The study layer: runs about runs.

* :mod:`~flowlab.study.experiment` — ``compare``: a pipeline over a grid of options
* :mod:`~flowlab.study.comparison` — :class:`Comparison`, its frame and its runs
* :mod:`~flowlab.study.deadlock` — traced primitives, the detector, the explorer, the catalog
"""
