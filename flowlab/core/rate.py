"""Rate limits on starts: :class:`Rate` (a token bucket) and its per-run :class:`RateState`.

``Rate(per_second=10, burst=1)`` lets a start through every 0.1 s (``burst`` at once after a
pause); ``Rate(tokens_per_minute=90_000)`` holds starts while the tokens that :func:`flowlab.charge`
reported over the last 60 s reach the limit. Both can be given in one ``Rate``. A ``Rate`` goes on a
Parallel (``rate=``: the starts of its branches) or on a run (``fl.run(rate=...)``: the starts of
every leaf step of the run, nested Parallels included).

Why not aiolimiter
------------------
aiolimiter's ``AsyncLimiter`` reads ``loop.time()``, so it does follow flowlab's virtual clock, but
it does not fit three ways. (1) It is an ``await limiter.acquire()`` per caller: a parked task per
queued branch, where flowlab's queue holds 10,000 queued branches as 10,000 small records and needs
a synchronous "may one start now, else when?" to arm one timer. (2) It leaks a float level by
``elapsed * rate`` and re-waits a whole period when the level is an ulp short, so on virtual time the
starts drift off the exact grid (``0.1 * 3 != 0.3``); here the n-th start of a busy period is
computed as ``anchor + n * period / count``, which lands exactly on 0.1, 0.2, ..., 4.9. (3) It has
no rolling window of amounts reported *after* a start (tokens). So this module is a small
hand-written GCRA ("generic cell rate algorithm", the token bucket as a schedule) on the run's
clock, plus a deque of charges for the token window.

Examples
--------
>>> from flowlab.core.rate import Rate
>>> state = Rate(per_second=10).new_state()
>>> [state.delay(0.0), state.take(0.0), state.delay(0.0)]
[0.0, None, 0.1]
>>> state
<Rate per_second=10 burst=1 granted=1 next_in=0.1s>
"""

from __future__ import annotations

import collections
import math
import threading
from typing import Any

from flowlab.core.limiter_stats import RateStatistics
from flowlab.core.numbers import is_int
from flowlab.errors import ConfigError

__all__ = ["WINDOW_S", "Rate", "RateState", "check_rate"]

WINDOW_S = 60.0
"""The rolling window of a token rate, in seconds."""

_EPS = 1e-9  # a timer may fire up to the clock's resolution early (asyncio's end_time)
_PARAMS = "per_second=, per_minute= and/or tokens_per_minute="


def _check_rate(param: str, value: Any) -> float | None:
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or math.isnan(value)
        or math.isinf(value)
        or value <= 0
    ):
        raise ConfigError(
            f"Rate: {param}={value!r} is not valid; give a finite number > 0 (starts or tokens "
            f"per unit of time), or leave it out. Choices: {_PARAMS}."
        )
    return float(value)


class Rate:
    """A rate limit on starts: a token bucket for requests and/or a rolling token window.

    Parameters
    ----------
    per_second, per_minute : float, optional
        Starts allowed per second / per minute (give one of them at most). Starts are spaced
        evenly: at ``per_second=10`` a busy queue starts one every 0.1 s, exactly so on
        virtual time.
    burst : int, default 1
        Starts allowed at once after an idle spell (the bucket's size).
    tokens_per_minute : float, optional
        Hold starts while the tokens reported by :func:`flowlab.charge` within the last 60 s
        reach this number. Charges come after a start, so branches in flight can push the
        window past the limit; a start then waits until enough of the window has aged out.

    Raises
    ------
    ConfigError
        For a zero, negative, NaN or infinite rate, for both ``per_second`` and ``per_minute``,
        for a ``burst`` that is not an integer >= 1, or when no rate is given at all.

    Examples
    --------
    >>> import flowlab as fl
    >>> fl.limits.Rate(per_minute=600, tokens_per_minute=90_000)
    Rate(per_minute=600, tokens_per_minute=90000)
    """

    name = "rate"

    def __init__(
        self,
        per_second: float | None = None,
        *,
        per_minute: float | None = None,
        burst: int = 1,
        tokens_per_minute: float | None = None,
    ) -> None:
        self.per_second = _check_rate("per_second", per_second)
        self.per_minute = _check_rate("per_minute", per_minute)
        self.tokens_per_minute = _check_rate("tokens_per_minute", tokens_per_minute)
        if self.per_second is not None and self.per_minute is not None:
            raise ConfigError(
                f"Rate: per_second={per_second!r} and per_minute={per_minute!r} are both given; "
                "give one of them (per_minute=600 is per_second=10)."
            )
        if self.per_second is None and self.per_minute is None and self.tokens_per_minute is None:
            raise ConfigError(
                f"Rate() has no rate; give at least one of {_PARAMS} "
                "(e.g. Rate(per_second=10) or Rate(tokens_per_minute=90_000))."
            )
        if not is_int(burst) or burst < 1:
            raise ConfigError(
                f"Rate: burst={burst!r} is not valid; give an integer >= 1 (starts allowed at "
                "once after an idle spell)."
            )
        self.burst = burst
        # the bucket as a whole period and a count: start n of a busy spell is at n*period/count
        if self.per_second is not None:
            self.period, self.count = 1.0, self.per_second
        elif self.per_minute is not None:
            self.period, self.count = 60.0, self.per_minute
        else:
            self.period, self.count = 0.0, math.inf

    @property
    def interval_s(self) -> float:
        """Seconds between two starts of a busy spell (0 for a token-only rate)."""
        return self.period / self.count

    def new_state(self) -> RateState:
        """Fresh, unshared state for one run of one step (or of the whole run)."""
        return RateState(self)

    def __repr__(self) -> str:
        parts = [
            f"{p}={getattr(self, p):g}"
            for p in ("per_second", "per_minute", "tokens_per_minute")
            if getattr(self, p) is not None
        ]
        if self.burst != 1:
            parts.append(f"burst={self.burst}")
        return f"Rate({', '.join(parts)})"


def check_rate(rate: Any, param: str = "rate") -> Rate | None:
    """``rate`` if it is a :class:`Rate` or ``None``; :class:`ConfigError` otherwise."""
    if rate is None or isinstance(rate, Rate):
        return rate
    hint = (
        f" HINT: {param}=fl.limits.Rate(per_second={rate!r})."
        if isinstance(rate, int | float) and not isinstance(rate, bool)
        else ""
    )
    raise ConfigError(
        f"{param}={rate!r} is not valid; give fl.limits.Rate(per_second=..., per_minute=..., "
        f"burst=..., tokens_per_minute=...), or None for no rate limit.{hint}"
    )


class RateState:
    """Per-run state of a :class:`Rate`, on the run's clock (seconds from the run's start).

    ``delay(t)`` says how long a start at ``t`` must wait (0: go now); ``take(t)`` counts a
    start; ``add_tokens(t, n)`` feeds the token window (safe from worker threads).
    """

    def __init__(self, rate: Rate) -> None:
        self.rate = rate
        self.granted = 0
        self.waits = 0  # times a start was held (see the owner's "wait" rows in result.limits)
        self.waited_s = 0.0
        self._anchor = -math.inf  # start of the current busy spell
        self._n = 0  # starts counted since the anchor
        self._tokens: collections.deque[tuple[float, float]] = collections.deque()
        self._in_window = 0.0
        self._lock = threading.Lock()  # charges arrive from worker threads (sync steps)
        self._last_t = 0.0

    # ---- the bucket -------------------------------------------------------------------------
    def _bucket_delay(self, t: float) -> float:
        rate = self.rate
        if rate.period == 0.0:
            return 0.0
        # GCRA: a start at t conforms when t >= tat - (burst - 1) * interval, with the
        # theoretical arrival time tat = anchor + n * interval, computed from integers.
        ready = self._anchor + (self._n - rate.burst + 1) * rate.period / rate.count
        return 0.0 if t + _EPS >= ready else ready - t

    # ---- the token window -------------------------------------------------------------------
    def _window_delay(self, t: float) -> float:
        limit = self.rate.tokens_per_minute
        if limit is None:
            return 0.0
        with self._lock:
            tokens = self._tokens
            while tokens and tokens[0][0] <= t - WINDOW_S + _EPS:
                self._in_window -= tokens.popleft()[1]
            if not tokens:
                self._in_window = 0.0  # no float residue once the window is empty
            if self._in_window < limit:
                return 0.0
            left = self._in_window
            for when, amount in tokens:  # the first instant the window drops below the limit
                left -= amount
                if left < limit:
                    return max(when + WINDOW_S - t, 0.0)
        return 0.0  # not reached: the loop empties the window at the latest

    def add_tokens(self, t: float, tokens: float) -> None:
        """Count ``tokens`` charged at ``t`` in the rolling window."""
        if self.rate.tokens_per_minute is None or tokens <= 0:
            return
        with self._lock:
            self._tokens.append((t, float(tokens)))
            self._in_window += tokens

    # ---- the owner's interface --------------------------------------------------------------
    def delay(self, t: float) -> float:
        """Seconds a start at ``t`` must wait (``0.0``: it may start now)."""
        return max(self._bucket_delay(t), self._window_delay(t))

    def take(self, t: float) -> None:
        """Count a start at ``t`` (call it only when :meth:`delay` said 0)."""
        self.granted += 1
        self._last_t = t
        rate = self.rate
        if rate.period == 0.0:
            return
        tat = self._anchor + self._n * rate.period / rate.count
        if t > tat + _EPS:  # idle since the bucket refilled: a new busy spell starts here
            self._anchor, self._n = t, 1
        else:
            self._n += 1

    def note_wait(self, seconds: float) -> None:
        """Count a held start (``seconds``: how long it is held)."""
        self.waits += 1
        self.waited_s += seconds

    @property
    def tokens_in_window(self) -> float:
        """Tokens charged within the last 60 s, as of the last check."""
        return self._in_window

    def statistics(self) -> RateStatistics:
        """A frozen snapshot: granted starts, held starts and seconds, tokens in the window."""
        return RateStatistics(
            limiter=self.rate.name, rate=repr(self.rate), granted=self.granted,
            waits=self.waits, waited_s=self.waited_s, tokens_in_window=self._in_window,
        )  # fmt: skip

    def __repr__(self) -> str:
        r = self.rate
        parts = [
            f"{p}={getattr(r, p):g}"
            for p in ("per_second", "per_minute", "tokens_per_minute")
            if getattr(r, p) is not None
        ]
        if r.period:
            parts.append(f"burst={r.burst}")
        parts.append(f"granted={self.granted}")
        parts.append(f"next_in={self.delay(self._last_t):g}s")
        return f"<Rate {' '.join(parts)}>"
