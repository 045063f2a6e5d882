"""``fl.report``: self-contained HTML reports (the public face of :mod:`flowlab.ui.report`)."""

from flowlab.ui.report import *  # noqa: F403
from flowlab.ui.report import __all__ as __all__
