"""The results layer: what a run recorded.

* :mod:`~flowlab.results.records` — one record per branch, step, attempt; :func:`snapshot`
* :mod:`~flowlab.results.recorder` — the instrument interface and the recorder
* :mod:`~flowlab.results.record` — :class:`RunResult`; :mod:`~flowlab.results.outcomes` — its outputs/errors
* :mod:`~flowlab.results.frames` — tidy pandas frames (pandas imported on first use)
* :mod:`~flowlab.results.trace` — Chrome / Perfetto trace files
* :mod:`~flowlab.results.remerge` — what-if re-merge of a finished run

Results do not render; the one exception is the lazy HTML edge (``RunResult._repr_html_`` and
``to_html`` import :mod:`flowlab.ui.report` when called).
"""
