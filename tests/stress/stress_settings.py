"""Hypothesis settings for the stress suite (CI vs. ``FLOWLAB_STRESS=1``)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

STRESS = os.environ.get("FLOWLAB_STRESS", "") not in ("", "0")
STRESS_EXAMPLES = int(os.environ.get("FLOWLAB_STRESS_EXAMPLES", "10000"))


def examples(ci: int) -> settings:
    """``ci`` derandomized examples in CI; ``STRESS_EXAMPLES`` fresh random ones under stress."""
    common = dict(
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        print_blob=True,
    )
    if STRESS:
        return settings(max_examples=STRESS_EXAMPLES, derandomize=False, **common)
    return settings(max_examples=ci, derandomize=True, database=None, **common)
