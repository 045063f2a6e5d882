"""``fl.limits``: caps, rates and budgets (the public face of the core's limit modules).

* caps: ``Fixed``, ``Adaptive``, ``AIMD`` (:mod:`flowlab.core.limits`), ``Keyed`` caps per key
  (:mod:`flowlab.core.keyed`)
* rates: ``Rate`` (:mod:`flowlab.core.rate`)
* what a cap's or a rate's per-run state reports: ``LimiterStatistics``, ``KeyedStatistics``,
  ``RateStatistics`` (:mod:`flowlab.core.limiter_stats`)
* the shared budget: ``UsageLimits`` (:mod:`flowlab.core.usage`), also ``fl.UsageLimits``
"""

from flowlab.core.keyed import BranchInfo, Keyed, KeyedState
from flowlab.core.limiter_stats import KeyedStatistics, LimiterStatistics, RateStatistics
from flowlab.core.limits import (
    AIMD,
    Adaptive,
    AdaptiveState,
    Fixed,
    Limiter,
    LimiterState,
    as_limiter,
)
from flowlab.core.rate import Rate, RateState
from flowlab.core.usage import UsageAccount, UsageLimits, tidy_cost

__all__ = [
    "AIMD",
    "Adaptive",
    "AdaptiveState",
    "BranchInfo",
    "Fixed",
    "Keyed",
    "KeyedState",
    "KeyedStatistics",
    "Limiter",
    "LimiterState",
    "LimiterStatistics",
    "Rate",
    "RateState",
    "RateStatistics",
    "UsageAccount",
    "UsageLimits",
    "as_limiter",
    "tidy_cost",
]
