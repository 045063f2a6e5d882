"""Branch contexts: isolation, change tracking, the diff and value equality.

* :mod:`~flowlab.core.context.copying` — the one copy policy: every copy of context data
* :mod:`~flowlab.core.context.isolation` — ``isolate`` (a branch's copy), ``diff``, ``apply_inplace``
* :mod:`~flowlab.core.context.isolator` — one step's copy plan, decided once per step (``isolate`` is it, applied once)
* :mod:`~flowlab.core.context.tracking` — dicts and lists that remember where a branch wrote
* :mod:`~flowlab.core.context.changes` — :class:`Change` and the diff of two values
* :mod:`~flowlab.core.context.equality` — :func:`same`: "did this branch change it?"
"""
