"""The engine layer: runs a pipeline on one event loop.

* :mod:`~flowlab.engine.entry` — ``run`` / ``arun`` / ``start``; :mod:`~flowlab.engine.handle` — :class:`RunHandle`;
  :mod:`~flowlab.engine.interrupts` — one line for an interrupted cell
* :mod:`~flowlab.engine.options` — :class:`RunOptions`, the run keywords spelled once
* :mod:`~flowlab.engine.coordinator` — :class:`Run`, one coordinator per run
* :mod:`~flowlab.engine.parallel` — one Parallel step: fan out, wait, merge back
* :mod:`~flowlab.engine.leaf` — one leaf step: record, cap, timeout, thread, backend
* :mod:`~flowlab.engine.group` — the task group of one Parallel step
* :mod:`~flowlab.engine.current` — ``charge``, ``current_run``, ``last_result``
* :mod:`~flowlab.engine.clock` — real and virtual time (the two :class:`Clock` objects)
* :mod:`~flowlab.engine.plugins` — what the layers above plug in (the deadlock watch, the progress bar)
* :mod:`~flowlab.engine.protocols` — :class:`Backend`, :class:`Clock` and the instrument protocol; :mod:`~flowlab.engine.instruments` — per-hook dispatch

The engine reports through instruments (:class:`~flowlab.results.recorder.Instrument`); it draws
nothing and knows no study layer.
"""
