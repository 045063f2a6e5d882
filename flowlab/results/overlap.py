"""The most intervals open at once: a peak that agrees with the rows it summarizes.

A live counter of "in flight" depends on the order in which one instant's events are handled:
on virtual time a branch that a rate (or a free slot) starts at t = 1 is often counted before a
sibling that ends at t = 1 is, and the counter says 2 where the rows, [0, 1) and [1, 2), never
overlap. :func:`max_overlap` reads the rows instead: intervals are half-open (one that ends at
``t`` and one that starts at ``t`` do not overlap), and an interval of no length counts at its
instant. The frames report ``min(live counter, max_overlap(rows))``: the counter is right where
zero-length rows are ambiguous (instant leaves run one after another), the rows where the
counter saw one instant's events out of order.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

__all__ = ["max_overlap"]


def max_overlap(intervals: Iterable[tuple[float, float]]) -> int:
    """The most ``[start, finish)`` intervals open at one instant (see the module docstring).

    A ``start`` that is NaN (never started) is skipped; a ``finish`` that is NaN (still open)
    counts as open from then on.

    Examples
    --------
    >>> max_overlap([(0, 1), (1, 2), (2, 3)])  # touching, never overlapping
    1
    >>> max_overlap([(0, 1), (0, 1), (1, 2)]), max_overlap([(0, 0), (0, 0)]), max_overlap([])
    (2, 2, 0)
    """
    opens: list[float] = []
    closes: list[float] = []
    points: dict[float, int] = {}
    for start, finish in intervals:
        if math.isnan(start):
            continue
        if math.isnan(finish) or finish > start:
            opens.append(start)
            if not math.isnan(finish):
                closes.append(finish)
        else:  # no length: it ran at that instant
            points[start] = points.get(start, 0) + 1
    opens.sort()
    closes.sort()
    times = sorted({*opens, *closes, *points})
    best = now = i = j = 0
    for t in times:
        while j < len(closes) and closes[j] <= t:  # what ends at t is gone before t's starts
            now -= 1
            j += 1
        while i < len(opens) and opens[i] <= t:
            now += 1
            i += 1
        best = max(best, now + points.get(t, 0))
    return best
