"""Stress-suite switches: ``FLOWLAB_STRESS=1`` (or ``--stress``) runs 10,000 examples per property.

CI runs a few hundred examples in total, derandomized (the same examples every run, so CI is
deterministic). The stress run draws fresh random examples and takes tens of minutes, so it lifts
pytest-timeout for these tests; pytest's own ``faulthandler_timeout`` (an ini option) must be
lifted on the command line::

    FLOWLAB_STRESS=1 .venv/bin/pytest tests/stress -o faulthandler_timeout=0

``--stress`` is only recognised when ``tests/stress`` is on the command line (pytest reads option
hooks from the conftests of the paths it is given); the environment variable works from anywhere.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--stress",
        action="store_true",
        default=False,
        help="flowlab stress suite: run 10,000 random examples per property (FLOWLAB_STRESS=1)",
    )


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--stress", default=False):
        os.environ["FLOWLAB_STRESS"] = "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("FLOWLAB_STRESS", "") in ("", "0"):
        return
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.timeout(0))
