"""``fl.limits``: caps, rates and budgets (the public face of the core's limit modules).

* caps: ``Fixed``, ``Adaptive``, ``AIMD`` (:mod:`flowlab.core.limits`), ``Keyed`` caps per key
  (:mod:`flowlab.core.keyed`)
* rates: ``Rate`` (:mod:`flowlab.core.rate`)
* the shared budget: ``UsageLimits`` (:mod:`flowlab.core.usage`), also ``fl.UsageLimits``
"""

from flowlab.core.keyed import BranchInfo, Keyed
from flowlab.core.limits import AIMD, Adaptive, Fixed, Limiter, LimiterState, as_limiter
from flowlab.core.rate import Rate
from flowlab.core.usage import UsageAccount, UsageLimits, tidy_cost

__all__ = [
    "AIMD",
    "Adaptive",
    "BranchInfo",
    "Fixed",
    "Keyed",
    "Limiter",
    "LimiterState",
    "Rate",
    "UsageAccount",
    "UsageLimits",
    "as_limiter",
    "tidy_cost",
]
