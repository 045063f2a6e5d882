"""The UI layer: pictures, the Lab, HTML reports, progress bars (matplotlib/ipywidgets on first use).

* :mod:`~flowlab.ui.plot` — timelines, concurrency, merges, comparisons, deadlocks
* :mod:`~flowlab.ui.lab` — the Lab's model and views, the deadlock Lab
* :mod:`~flowlab.ui.report` — self-contained HTML reports
* :mod:`~flowlab.ui.progress` — the tqdm progress instrument
"""
