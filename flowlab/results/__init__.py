"""The results layer: what a run recorded.

* :mod:`~flowlab.results.record` — the recorder and :class:`RunResult`
* :mod:`~flowlab.results.frames` — tidy pandas frames (pandas imported on first use)
* :mod:`~flowlab.results.trace` — Chrome / Perfetto trace files
* :mod:`~flowlab.results.remerge` — what-if re-merge of a finished run

Results do not render; the one exception is the lazy HTML edge (``RunResult._repr_html_`` and
``to_html`` import :mod:`flowlab.ui.report` when called).
"""
