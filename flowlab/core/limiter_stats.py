"""What a limiter's per-run state reports: frozen snapshots from ``state.statistics()``.

* :class:`LimiterStatistics` — a cap (``Fixed``, ``Adaptive``, ``AIMD``): its limit, the
  branches in flight and waiting, the peak, the slots granted, the moves of the limit.
* :class:`KeyedStatistics` — a ``Keyed`` cap: the same totals, plus the counts per key.
* :class:`RateStatistics` — a ``Rate``: starts granted, starts held and for how long, the tokens
  in the rolling window.

Each is a frozen, slotted dataclass, as anyio's ``CapacityLimiterStatistics``: a snapshot taken
when asked, which does not move with the state afterwards. :meth:`~LimiterStatistics.as_dict`
gives the plain dict that frames and reports want.

Examples
--------
>>> from flowlab.core.limits import Fixed
>>> state = Fixed(2).new_state()
>>> state.try_acquire()
True
>>> stats = state.statistics()
>>> stats
LimiterStatistics(limiter='fixed', limit=2, in_flight=1, waiting=0, peak=1, granted=1, moves=0)
>>> stats.in_flight, stats.as_dict()["limit"]
(1, 2)
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

__all__ = ["KeyedStatistics", "LimiterStatistics", "RateStatistics"]


def _as_dict(stats: Any) -> dict[str, Any]:
    """The fields of ``stats`` in order, mappings copied into plain dicts."""
    out: dict[str, Any] = {}
    for f in fields(stats):
        value = getattr(stats, f.name)
        out[f.name] = dict(value) if isinstance(value, Mapping) else value
    return out


@dataclass(frozen=True, slots=True)
class LimiterStatistics:
    """A snapshot of a cap's per-run state (:meth:`~flowlab.core.limits.LimiterState.statistics`).

    Attributes
    ----------
    limiter : str
        The policy's name: ``"fixed"``, ``"adaptive"``, ``"aimd"`` (``"keyed"``: see
        :class:`KeyedStatistics`).
    limit : int
        Branches allowed in flight at once, as of now (an adaptive policy moves it).
    in_flight : int
        Slots taken and not yet released.
    waiting : int
        Callers waiting for a slot.
    peak : int
        Most slots taken at once so far.
    granted : int
        Slots granted so far.
    moves : int
        Times the limit changed.

    Examples
    --------
    >>> from flowlab.core.limits import AIMD
    >>> AIMD(2, 8).new_state().statistics().as_dict()
    {'limiter': 'aimd', 'limit': 2, 'in_flight': 0, 'waiting': 0, 'peak': 0, 'granted': 0, 'moves': 0}
    """

    limiter: str
    limit: int
    in_flight: int
    waiting: int
    peak: int
    granted: int
    moves: int

    def as_dict(self) -> dict[str, Any]:
        """The fields, in order, as a plain dict (mappings copied)."""
        return _as_dict(self)


@dataclass(frozen=True, slots=True)
class KeyedStatistics(LimiterStatistics):
    """A snapshot of a ``Keyed`` cap's per-run state: the totals of :class:`LimiterStatistics`
    (``limit`` is the largest cap) and, per key seen so far, copies of its counts.

    The mappings are left out of ``hash()`` (a snapshot is hashable all the same) but not out of
    ``==``.

    Attributes
    ----------
    per_key : Mapping[Hashable, int]
        Slots of each key in flight.
    caps : Mapping[Hashable, int]
        The cap of each key (``limits[key]``, or the ``"*"`` entry).
    peak_per_key : Mapping[Hashable, int]
        Most slots of each key in flight at once (keys that never ran are absent).

    Examples
    --------
    >>> from flowlab.core.keyed import BranchInfo, Keyed
    >>> state = Keyed(key=lambda b: b.name[:3], limits={"gpt": 2, "*": 1}).new_state()
    >>> state.try_acquire_key(state.key_of(BranchInfo("gpt-1", 0, "fan")))
    True
    >>> stats = state.statistics()
    >>> stats.per_key, stats.caps, stats.in_flight
    ({'gpt': 1}, {'gpt': 2}, 1)
    """

    per_key: Mapping[Hashable, int] = field(hash=False)
    caps: Mapping[Hashable, int] = field(hash=False)
    peak_per_key: Mapping[Hashable, int] = field(hash=False)


@dataclass(frozen=True, slots=True)
class RateStatistics:
    """A snapshot of a ``Rate``'s per-run state (:meth:`~flowlab.core.rate.RateState.statistics`).

    Attributes
    ----------
    limiter : str
        ``"rate"``.
    rate : str
        The rate, as its ``repr`` (``"Rate(per_second=10)"``).
    granted : int
        Starts let through.
    waits : int
        Times a start was held back.
    waited_s : float
        Seconds of the run's clock that starts were held back, in all.
    tokens_in_window : float
        Tokens charged within the last 60 s, as of the last check.

    Examples
    --------
    >>> from flowlab.core.rate import Rate
    >>> state = Rate(per_second=10).new_state()
    >>> state.take(0.0)
    >>> state.statistics()
    RateStatistics(limiter='rate', rate='Rate(per_second=10)', granted=1, waits=0, waited_s=0.0, tokens_in_window=0.0)
    """

    limiter: str
    rate: str
    granted: int
    waits: int
    waited_s: float
    tokens_in_window: float

    def as_dict(self) -> dict[str, Any]:
        """The fields, in order, as a plain dict."""
        return _as_dict(self)
