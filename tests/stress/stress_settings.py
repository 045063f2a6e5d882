"""Hypothesis settings for the stress suite (CI vs. ``FLOWLAB_STRESS=1``).

CI runs a few hundred derandomized examples (the same ones every run) and does not shrink a
failure (a shrink replays hundreds of pipelines and can take minutes): it prints the
``@reproduce_failure`` blob instead. ``FLOWLAB_STRESS_SHRINK=1`` turns shrinking on, and the
stress run (``FLOWLAB_STRESS=1``) always shrinks.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, Phase, settings

STRESS = os.environ.get("FLOWLAB_STRESS", "") not in ("", "0")
STRESS_EXAMPLES = int(os.environ.get("FLOWLAB_STRESS_EXAMPLES", "10000"))
SHRINK = STRESS or os.environ.get("FLOWLAB_STRESS_SHRINK", "") not in ("", "0")


def examples(ci: int) -> settings:
    """``ci`` derandomized examples in CI; ``STRESS_EXAMPLES`` fresh random ones under stress."""
    phases = [Phase.explicit, Phase.reuse, Phase.generate] + ([Phase.shrink] if SHRINK else [])
    common = settings(
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        print_blob=True,
        phases=phases,
    )
    if STRESS:
        return settings(common, max_examples=STRESS_EXAMPLES, derandomize=False)
    return settings(common, max_examples=ci, derandomize=True, database=None)
