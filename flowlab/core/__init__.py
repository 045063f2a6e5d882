"""The core layer: what a pipeline *is*, before anything runs.

* :mod:`~flowlab.core.pipeline` — ``Step``, ``Parallel``, ``Pipeline``: pure descriptions
* :mod:`~flowlab.core.limits` — concurrency limiters and the shared usage budget;
  :mod:`~flowlab.core.limiter_stats` — the frozen statistics their per-run states report
* :mod:`~flowlab.core.context` — a branch's isolated context, what it changed, value equality
* :mod:`~flowlab.core.merge` — strategies and rules, the three-way merge

The core imports nothing above it (checked by the import-linter contract in ``pyproject.toml``)
and never imports pandas, matplotlib or ipywidgets.
"""
