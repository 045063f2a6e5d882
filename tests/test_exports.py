"""The public surface: every name in __all__ resolves, once; import stays light."""

from __future__ import annotations

import subprocess
import sys

import flowlab as fl

CONTRACT = [
    "Pipeline", "Parallel", "Step", "run", "arun", "start", "charge", "UsageLimits", "RunResult",
    "compare", "Comparison", "Lab", "plot", "deadlock", "merge", "limits", "last_result",
    "FlowlabError", "ConfigError", "MergeConflict", "MergeValidationError", "BranchFailed",
    "StepTimeout", "UsageLimitExceeded", "DeadlockDetected", "Map", "Retry",
]  # fmt: skip


def test_all_is_sorted_unique_and_resolves() -> None:
    assert len(fl.__all__) == len(set(fl.__all__))
    for name in fl.__all__:
        assert getattr(fl, name) is not None, name


def test_contract_names_are_exported() -> None:
    missing = [n for n in CONTRACT if n not in fl.__all__]
    assert missing == []


def test_error_tree() -> None:
    for cls in [fl.ConfigError, fl.MergeConflict, fl.MergeValidationError, fl.BranchFailed,
                fl.StepTimeout, fl.UsageLimitExceeded, fl.DeadlockDetected, fl.RunCancelled]:  # fmt: skip
        assert issubclass(cls, fl.FlowlabError)


def test_import_does_not_pull_pandas_matplotlib_ipywidgets() -> None:
    code = (
        "import sys, flowlab\n"
        "heavy = [m for m in ('pandas', 'matplotlib', 'ipywidgets') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_subpackages_export_each_public_name_once() -> None:
    for module in (fl.merge, fl.limits, fl.deadlock):
        names = module.__all__
        assert len(names) == len(set(names)), module.__name__
        for name in names:
            assert hasattr(module, name), f"{module.__name__}.{name}"
    rules = ["Overwrite", "KeepFirst", "DeepMerge", "Append", "Union", "Sum", "Max", "Min",
             "ErrorOnConflict", "Custom", "Ignore"]  # fmt: skip
    assert [r for r in rules if r not in fl.merge.__all__] == []
