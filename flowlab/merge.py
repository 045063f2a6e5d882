"""``fl.merge``: merge strategies and per-field rules (the public face of :mod:`flowlab.core.merge`)."""

from flowlab.core.merge import *  # noqa: F403
from flowlab.core.merge import __all__ as __all__
from flowlab.core.merge import diff as diff  # importable here as before; not in __all__
