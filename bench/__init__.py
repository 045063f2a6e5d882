"""flowlab's benchmark suite: ``python -m bench`` (``--quick`` for a smoke run, ``--only NAME``).

One module per figure of issue 8, each measured as a ratio against a baseline run in the same
process; ``bench/README.md`` explains every figure, ``bench/results.json`` holds the last full run.

Layout::

    __main__.py     entry point: runs the figures, prints the table, writes results.json
    _core.py        Figure / Metric / targets, timing helpers
    workloads.py    the shared no-op fan-out and its TaskGroup + Semaphore baseline
    overhead.py     1 engine overhead, 2 recording cost
    merging.py      3 merge cost (strategies, scaling with changes)
    isolation.py    4 isolation cost as the context grows, include_keys
    breach.py       5 breach-to-cancel latency
    deadlock.py     6 deadlock detection latency
    virtual.py      7 virtual time
    peers.py        8 LangGraph, anyio, aiometer
    memory.py       9 peak RSS and bytes per recorded branch (subprocesses)
    importtime.py   10 import time (subprocesses)
    profiling.py    pyinstrument / cProfile of the hot paths (python -m bench.profiling)
"""
