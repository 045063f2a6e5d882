"""Choosers: who decides each choice point of a run (a forced prefix, uniform random, PCT).

Design
------
A chooser is ``chooser(point_no, options, prev) -> index`` (see
:class:`~flowlab.study.deadlock.scheduler.ExplorerLoop`). The systematic search has its own
(:meth:`~flowlab.study.deadlock.search.Search.choose`); these are the others:

* :func:`forced` -- replay a saved schedule, then asyncio's FIFO choice (index 0);
* :func:`random_chooser` -- a seeded uniform choice at every point;
* :func:`pct_chooser` -- probabilistic concurrency testing: random task priorities plus
  ``depth - 1`` priority change points at random choice points (Burckhardt et al. 2010).

Examples
--------
>>> from flowlab.study.deadlock.choosers import forced
>>> chooser = forced([2, 1])
>>> [chooser(n, [0, 1, 2], None) for n in range(3)]
[2, 1, 0]
"""

from __future__ import annotations

import random

from flowlab.study.deadlock.scheduler import Chooser

__all__ = ["forced", "pct_chooser", "random_chooser"]


def forced(prefix: list[int]) -> Chooser:
    """Choose ``prefix[point]`` while the prefix lasts, then what asyncio would run (index 0)."""
    return lambda point, options, prev: prefix[point] if point < len(prefix) else 0


def random_chooser(rng: random.Random) -> Chooser:
    """A uniform choice among the ready tasks at every choice point, drawn from ``rng``."""
    return lambda point, options, prev: rng.randrange(len(options))


def pct_chooser(rng: random.Random, depth: int, k: int) -> Chooser:
    """PCT for bug depth ``depth`` over runs of about ``k`` choice points."""
    priorities: dict[int, float] = {}
    change = {rng.randrange(k): depth - 1 - j for j in range(depth - 1)}

    def choose(point: int, options: list[int], prev: int | None) -> int:
        for o in options:
            if o not in priorities:
                priorities[o] = depth + rng.random()  # above every change-point priority
        best = max(range(len(options)), key=lambda i: priorities[options[i]])
        if point in change:
            priorities[options[best]] = change[point] + rng.random() * 1e-3
            best = max(range(len(options)), key=lambda i: priorities[options[i]])
        return best

    return choose
