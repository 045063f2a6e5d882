"""flowlab: run, see, compare and debug the parallel branches of a pipeline step.

Layout (arrows point down only; the core never imports pandas, matplotlib or ipywidgets):

* face — this file, ``cli.py``
* UI — ``widgets.py`` (Lab), ``plot.py``, ``report.py`` (loaded on first use)
* study — ``experiment.py`` (compare / sweeps), ``deadlock/`` (loaded on first use)
* results — ``record.py`` (RunResult), ``frames.py`` (pandas, on first use)
* engine — ``engine.py``, ``parallel.py``, ``attempts.py``, ``notebook.py`` (run / arun / start), ``clock.py``
* core — ``pipeline.py``, ``map.py``, ``retry.py``, ``context.py``, ``merge/``, ``limits.py``, ``errors.py``
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from flowlab import limits, merge
from flowlab.engine import RunCancelled, charge, last_result
from flowlab.errors import (
    BookkeepingError,
    BranchFailed,
    ChargeRefused,
    ConfigError,
    DeadlockDetected,
    FlowlabError,
    MergeConflict,
    MergeValidationError,
    RunNotFinished,
    StepFailed,
    StepTimeout,
    UsageLimitExceeded,
)
from flowlab.limits import UsageLimits
from flowlab.map import Map
from flowlab.notebook import RunHandle, arun, run, start
from flowlab.pipeline import Parallel, Pipeline, Step
from flowlab.record import Instrument, RunResult
from flowlab.retry import Retry

if TYPE_CHECKING:
    from flowlab import backends, deadlock, plot, report
    from flowlab.experiment import Comparison, compare
    from flowlab.widgets import Lab

__version__ = "0.1.0"

__all__ = [
    "BookkeepingError",
    "BranchFailed",
    "ChargeRefused",
    "Comparison",
    "ConfigError",
    "DeadlockDetected",
    "FlowlabError",
    "Instrument",
    "Lab",
    "Map",
    "MergeConflict",
    "MergeValidationError",
    "Parallel",
    "Pipeline",
    "Retry",
    "RunCancelled",
    "RunHandle",
    "RunNotFinished",
    "RunResult",
    "Step",
    "StepFailed",
    "StepTimeout",
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
    "compare": ("flowlab.experiment", "compare"),
    "Comparison": ("flowlab.experiment", "Comparison"),
    "Lab": ("flowlab.widgets", "Lab"),
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
    return sorted(set(globals()) | set(__all__))
