"""flowlab: run, see, compare and debug the parallel branches of a pipeline step.

This file is the facade: the names in ``__all__`` are the API. The tree shows the layers, and
arrows point down only (checked by the import-linter contract in ``pyproject.toml``):

* face — this file, ``cli.py``, ``demo.py``; the public modules ``fl.merge``, ``fl.limits``,
  ``fl.plot``, ``fl.report``, ``fl.deadlock`` (thin faces over the layers below)
* ``ui/`` — plots, the Lab, HTML reports, the progress bar (matplotlib / ipywidgets on first use)
* ``study/`` — ``compare`` (grids of runs), the deadlock lab
* ``backends/`` — where leaf steps run (Dask)
* ``engine/`` — ``run`` / ``arun`` / ``start``, the run coordinator, Parallel steps, leaves, clocks
* ``results/`` — the recorder, ``RunResult``, frames (pandas on first use), traces
* ``core/`` — pipelines, limits, contexts and their diffs, merges; ``errors.py`` under everything

The engine knows nothing above it: the deadlock watch and the progress bar are plugged in here
(:mod:`flowlab.engine.plugins`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from flowlab import limits, merge
from flowlab._version import __version__
from flowlab.core.map import Map
from flowlab.core.pipeline import Parallel, Pipeline, Step
from flowlab.core.retry import Retry
from flowlab.core.update import Update
from flowlab.core.usage import UsageLimits
from flowlab.engine import plugins
from flowlab.engine.coordinator import RunCancelled, charge, last_result
from flowlab.engine.entry import arun, run, start
from flowlab.engine.handle import RunHandle
from flowlab.engine.options import RunOptions
from flowlab.errors import (
    BookkeepingError,
    BranchFailed,
    ChargeRefused,
    ConfigError,
    DeadlockDetected,
    FlowlabError,
    FlowlabWarning,
    IsolationBreach,
    MergeConflict,
    MergeValidationError,
    RunInterrupted,
    RunNotFinished,
    StepFailed,
    StepTimeout,
    UsageLimitExceeded,
)
from flowlab.results.record import RunResult
from flowlab.results.recorder import Instrument

if TYPE_CHECKING:
    from flowlab import backends, deadlock, plot, report
    from flowlab.study.experiment import Comparison, compare
    from flowlab.ui.lab.lab import Lab

plugins.register("deadlock_watch", lambda: importlib.import_module("flowlab.study.deadlock").watch)
plugins.register("progress_bar", lambda: importlib.import_module("flowlab.ui.progress").ProgressBar)
plugins.register("live_view", lambda: importlib.import_module("flowlab.ui.live").LiveView)

__all__ = [
    "BookkeepingError",
    "BranchFailed",
    "ChargeRefused",
    "Comparison",
    "ConfigError",
    "DeadlockDetected",
    "FlowlabError",
    "FlowlabWarning",
    "Instrument",
    "IsolationBreach",
    "Lab",
    "Map",
    "MergeConflict",
    "MergeValidationError",
    "Parallel",
    "Pipeline",
    "Retry",
    "RunCancelled",
    "RunHandle",
    "RunInterrupted",
    "RunNotFinished",
    "RunOptions",
    "RunResult",
    "Step",
    "StepFailed",
    "StepTimeout",
    "Update",
    "UsageLimitExceeded",
    "UsageLimits",
    "__version__",
    "arun",
    "backends",
    "charge",
    "compare",
    "deadlock",
    "last_result",
    "limits",
    "merge",
    "plot",
    "report",
    "run",
    "start",
]

# Heavy parts load on first use, so `import flowlab` stays fast and free of pandas/matplotlib.
_LAZY_MODULES = {"plot", "deadlock", "report", "backends", "demo"}
_LAZY_NAMES = {
    "compare": ("flowlab.study.experiment", "compare"),
    "Comparison": ("flowlab.study.experiment", "Comparison"),
    "Lab": ("flowlab.ui.lab.lab", "Lab"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY_MODULES:
        module = importlib.import_module(f"flowlab.{name}")
        globals()[name] = module
        return module
    if name in _LAZY_NAMES:
        mod_name, attr = _LAZY_NAMES[name]
        value = getattr(importlib.import_module(mod_name), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'flowlab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
