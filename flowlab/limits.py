"""``fl.limits``: concurrency limiters and usage budgets (the public face of :mod:`flowlab.core.limits`)."""

from flowlab.core.limits import *  # noqa: F403
from flowlab.core.limits import __all__ as __all__
