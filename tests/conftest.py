"""Shared fixtures (a non-interactive matplotlib backend, no figure left open) and the fast lane."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(autouse=True)
def _close_figures() -> Iterator[None]:
    yield
    import sys

    if "matplotlib.pyplot" in sys.modules:
        import matplotlib.pyplot as plt

        plt.close("all")


# The fast lane (`pytest -m "not slow"`) leaves out whatever starts a real part or runs long: the
# notebooks (each a Jupyter kernel), the stress suite, and the modules that drive real kernels,
# browsers or Dask clusters. The README command still runs everything.
_REAL_PART_MODULES = {
    "test_binder.py",
    "test_dask_backend.py",
    "test_infra_smoke.py",
    "test_kernel_interrupt_message.py",
    "test_kernel_realities.py",
    "test_lab_browser.py",
    "test_notebook_bridge.py",
    "test_report_browser.py",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = Path(str(config.rootpath))
    slow_dirs = (root / "notebooks", root / "tests" / "stress")
    for item in items:
        path = Path(str(item.path))
        if path.name in _REAL_PART_MODULES or any(d in path.parents for d in slow_dirs):
            item.add_marker(pytest.mark.slow)
