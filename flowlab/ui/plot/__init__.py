"""Pictures of runs and comparisons: ``timeline``, ``timelines``, ``concurrency``, ``merges``,
``compare``, ``attempts``.

Every function follows seaborn's contract: pass ``ax=`` to draw into an existing Axes (otherwise a
new figure is made), get the Axes back, pass extra keyword arguments on to the main artist, and
nothing is ever shown for you (no ``plt.show()``). matplotlib is imported inside the functions, so
``import flowlab`` stays light.

Artists carry a ``gid`` so they can be found again (tests inspect artists, not pixels):
``"run:<branch path>"`` and ``"wait:<branch path>"`` for timeline bars (``"name:<branch path>"``
for their names ``by="worker"``, ``"winners"`` for merge-winner stars, ``"breach"`` for the line
where a usage budget was crossed), ``"in_flight"`` and
``"limit:<step path>"`` for concurrency lines, ``"cell:<row>|<field>"`` for merge-matrix cells,
``"attempt:<leaf path>#<n>"`` and ``"backoff:<leaf path>#<n>"`` for retry attempts and their
waits (``"retries"`` for the ticks at failed attempts on a timeline).

Examples
--------
>>> import flowlab as fl                                         # doctest: +SKIP
>>> ax = fl.plot.timeline(result)                                # doctest: +SKIP
>>> fl.plot.concurrency(result, ax=axes[1])                      # doctest: +SKIP
"""

from __future__ import annotations

from flowlab.ui.plot._attempts import attempts
from flowlab.ui.plot._compare import compare
from flowlab.ui.plot._concurrency import concurrency
from flowlab.ui.plot._grid import timelines
from flowlab.ui.plot._merges import merges
from flowlab.ui.plot._style import STATUS_COLORS
from flowlab.ui.plot._timeline import timeline

__all__ = [
    "STATUS_COLORS", "attempts", "compare", "concurrency", "merges", "timeline", "timelines",
]  # fmt: skip
