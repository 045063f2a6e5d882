"""``fl.plot``: pictures of runs and comparisons (the public face of :mod:`flowlab.ui.plot`).

Loaded on first use of ``fl.plot``, so ``import flowlab`` never imports matplotlib.
"""

from flowlab.ui.plot import *  # noqa: F403
from flowlab.ui.plot import __all__ as __all__
