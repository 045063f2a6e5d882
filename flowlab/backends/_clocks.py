"""Putting times measured on other hosts onto the driver's run clock.

A step on a Dask worker reports when it started and stopped by the *worker's* wall clock
(``time.time()``). Clocks of two hosts disagree by an unknown offset (often milliseconds, sometimes
seconds), so those numbers cannot be compared with the driver's run times directly.

What is known for sure is that the function ran *inside* the driver's round trip: after the driver
submitted it and before the driver received its result. Write ``d`` for "worker wall time minus
driver run time" (the worker's clock offset plus the driver's wall time at run start). Each call
bounds it::

    worker_stop - received  <=  d  <=  worker_start - submitted

Every call to one worker (one clock) narrows the interval: :class:`ClockSync` keeps, per worker,
the intersection of all those bounds, and takes its midpoint — the worker's run centred in the
tightest round trip seen (Cristian's algorithm, with the worker's run standing in for one
timestamp). The error is at most half the interval's width and shrinks as calls come in. If the
bounds ever contradict each other (a clock was stepped mid-run) the interval restarts from the
newest call.

A worker on the driver's own host (a loopback address, or one of the host's own addresses) shares
the driver's clock, so there the offset is exactly zero and nothing is estimated. Converted times
are always clamped into ``[submitted, received]``.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from functools import cache
from urllib.parse import urlsplit

__all__ = ["ClockSync", "same_host"]


@cache
def _local_addresses() -> frozenset[str]:
    names = {"localhost"}
    try:
        host = socket.gethostname()
        names.add(host)
        names.update(socket.gethostbyname_ex(host)[2])
    except OSError:
        pass
    return frozenset(names)


def same_host(address: str) -> bool:
    """Whether a Dask address (``tcp://127.0.0.1:4567``, ``inproc://...``) is on this host."""
    if not address or address.startswith("inproc://"):
        return True
    host = urlsplit(address if "://" in address else f"tcp://{address}").hostname or ""
    try:
        if ipaddress.ip_address(host).is_loopback:
            return True
    except ValueError:
        pass
    return host in _local_addresses()


@dataclass(slots=True)
class _Bounds:
    lo: float
    hi: float
    exact: bool = False


class ClockSync:
    """Per-worker estimate of how the worker's wall clock maps onto the driver's run clock.

    Parameters
    ----------
    wall0 : float
        The driver's ``time.time()`` at run time 0 (``time.time() - run.now()``).
    """

    def __init__(self, wall0: float) -> None:
        self.wall0 = wall0
        self._bounds: dict[str, _Bounds] = {}

    def observe(
        self, address: str, submitted: float, received: float, started: float, finished: float
    ) -> None:
        """Narrow ``address``'s offset with one call: run times ``submitted``/``received``
        (driver), wall times ``started``/``finished`` (worker)."""
        if address in self._bounds and self._bounds[address].exact:
            return
        if same_host(address):
            self._bounds[address] = _Bounds(self.wall0, self.wall0, exact=True)
            return
        lo, hi = finished - received, started - submitted
        if lo > hi:  # the worker measured a longer run than the round trip: clocks disagree in rate
            lo = hi = (lo + hi) / 2
        old = self._bounds.get(address)
        if old is not None and max(lo, old.lo) <= min(hi, old.hi):
            lo, hi = max(lo, old.lo), min(hi, old.hi)
        self._bounds[address] = _Bounds(lo, hi)

    def offset(self, address: str) -> tuple[float, float]:
        """``(offset_s, error_s)``: worker wall clock minus driver wall clock, and its bound.

        ``(nan, nan)`` for a worker never observed.
        """
        b = self._bounds.get(address)
        if b is None:
            return float("nan"), float("nan")
        return (b.lo + b.hi) / 2 - self.wall0, (b.hi - b.lo) / 2

    def to_run_time(
        self, address: str, started: float, finished: float, submitted: float, received: float
    ) -> tuple[float, float]:
        """The worker wall times ``started``/``finished`` as driver run times, clamped into
        ``[submitted, received]``."""
        b = self._bounds.get(address)
        d = (b.lo + b.hi) / 2 if b is not None else started - submitted
        start = min(max(started - d, submitted), received)
        stop = min(max(finished - d, start), received)
        return start, stop
