"""A retry policy: :class:`Retry`, how many attempts a leaf step gets and how long it waits between.

``fl.Step(fn, retry=fl.Retry(...))`` retries one step; ``fl.Parallel(..., retry=...)`` and
``fl.Map(..., retry=...)`` give the policy to every leaf inside them that has none of its own (the
innermost policy wins). The engine runs the attempts (:mod:`flowlab.engine.attempts`); this module only
describes them: which errors are retried, and the delay before each new attempt.

The delay
---------
After failed attempt ``n`` (1, 2, ...) the next one starts
``min(max_backoff, backoff * factor ** (n - 1)) * (1 - jitter * u)`` seconds later, on the run's
clock, with ``u`` in ``[0, 1)``. Jitter only ever *shortens* a delay, so ``max_backoff`` is a true
cap. ``u`` is not drawn from a global random generator: it is a hash of ``(seed, step path,
attempt)``, so one run's delays are the same every time it runs — exact and repeatable on virtual
time — while different branches still get different delays (which is what jitter is for: siblings
failing together do not all come back at the same instant). Change ``seed`` for other draws.

What is never retried
---------------------
Cancellation and every ``BaseException`` that is not an ``Exception`` (``KeyboardInterrupt``,
``SystemExit``); an error raised while the step's task is being cancelled; a crossed usage budget
(:class:`~flowlab.errors.UsageLimitExceeded`) and a refused charge
(:class:`~flowlab.errors.ChargeRefused`), since another attempt would only be refused again; and
:class:`~flowlab.errors.ConfigError`, a mistake in the pipeline that no retry can fix.

Why hand-written
----------------
tenacity and stamina were considered. Both own the retry *loop* (they call the function, sleep and
call again), while here the loop must be the engine's: each attempt runs on a fresh isolated copy of
the context, gives back its run-wide slot while it waits, is recorded as a row of
``result.attempts``, and must stop at once when its branch is cancelled. What would remain to borrow
is the delay formula, one line; and their jitter comes from the process-wide :mod:`random`
(``random.uniform``), which would make virtual runs unrepeatable, or would mean reseeding the user's
global generator. stamina is also not installed with flowlab and tenacity only as a dependency of an
optional extra. So the policy is these hundred lines, with parameter names that match the contract.

Examples
--------
>>> import flowlab as fl
>>> policy = fl.Retry(attempts=4, backoff=1.0, factor=2.0, max_backoff=3.0, jitter=0.0)
>>> [policy.delay(n) for n in (1, 2, 3)]
[1.0, 2.0, 3.0]
>>> policy.retries(ValueError("429")), policy.retries(KeyboardInterrupt())
(True, False)
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from typing import Any

from flowlab.core.numbers import is_int
from flowlab.errors import ChargeRefused, ConfigError, UsageLimitExceeded

__all__ = ["Retry", "check_retry"]

_NEVER: tuple[type[BaseException], ...] = (ConfigError, UsageLimitExceeded, ChargeRefused)


def _number(param: str, value: Any, *, low: float, rule: str) -> float:
    """``value`` as a float, or :class:`ConfigError` naming ``param``, the value and ``rule``."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or math.isnan(value)
        or math.isinf(value)
        or value < low
    ):
        raise ConfigError(f"{param}={value!r} is not valid; give {rule}.")
    return float(value)


def _check_on(on: Any) -> tuple[tuple[type[Exception], ...], Callable[[Exception], bool] | None]:
    """``on`` as (exception types, predicate); :class:`ConfigError` for anything else."""
    valid = (
        "an Exception subclass, a tuple of them, or a function (error) -> bool; "
        "e.g. on=(TimeoutError, ConnectionError)"
    )
    if isinstance(on, type):
        on = (on,)
    elif callable(on):
        return (), on
    if not isinstance(on, tuple | list) or not on:
        raise ConfigError(f"on={on!r} is not valid; give {valid}.")
    for kind in on:
        if not isinstance(kind, type) or not issubclass(kind, Exception):
            extra = (
                " Cancellation, KeyboardInterrupt and SystemExit are never retried."
                if isinstance(kind, type) and issubclass(kind, BaseException)
                else ""
            )
            raise ConfigError(f"on={on!r} is not valid: {kind!r} is not; give {valid}.{extra}")
    return tuple(on), None


class Retry:
    """How often a leaf step is tried, and how long it waits before trying again.

    Parameters
    ----------
    attempts : int, default 3
        Attempts in all (the first one included); ``1`` means no retry.
    backoff : float, default 1.0
        Seconds before the second attempt (``0``: retry at once).
    factor : float, default 2.0
        Each further delay is ``factor`` times the one before (``1``: constant delays).
    max_backoff : float, default 60.0
        No delay is longer than this (seconds, ``>= backoff``).
    jitter : float, default 0.1
        Each delay is shortened by a fraction of itself drawn in ``[0, jitter)``, from a hash of
        ``(seed, step path, attempt)``: repeatable run after run (see the module docstring).
    on : exception type, tuple of them, or callable, default (Exception,)
        Which errors are retried: instances of these types, or those for which ``on(error)``
        is true. Cancellation and non-``Exception`` errors never are, whatever ``on`` says.
    seed : int, default 0
        Another seed draws other jitters.

    Examples
    --------
    >>> import flowlab as fl
    >>> fl.Retry(attempts=5, backoff=0.5, jitter=0)
    Retry(attempts=5, backoff=0.5, factor=2, max_backoff=60, jitter=0)
    >>> fl.Retry(attempts=0)
    Traceback (most recent call last):
    ...
    flowlab.errors.ConfigError: attempts=0 is not valid; give a whole number >= 1 (attempts in all, the first one included).
    """

    __slots__ = ("_test", "attempts", "backoff", "factor", "jitter", "max_backoff", "on", "seed")

    def __init__(
        self,
        attempts: int = 3,
        *,
        backoff: float = 1.0,
        factor: float = 2.0,
        max_backoff: float = 60.0,
        jitter: float = 0.1,
        on: Any = (Exception,),
        seed: int = 0,
    ) -> None:
        if not is_int(attempts) or attempts < 1:
            raise ConfigError(
                f"attempts={attempts!r} is not valid; give a whole number >= 1 (attempts in "
                "all, the first one included)."
            )
        self.attempts = attempts
        self.backoff = _number("backoff", backoff, low=0.0, rule="seconds as a number >= 0")
        self.factor = _number("factor", factor, low=1.0, rule="a number >= 1 (1: equal delays)")
        self.max_backoff = _number(
            "max_backoff", max_backoff, low=0.0, rule="seconds as a number >= 0"
        )
        if self.max_backoff < self.backoff:
            raise ConfigError(
                f"max_backoff={max_backoff!r} is not valid; give seconds >= backoff={backoff!r} "
                "(the longest delay cannot be shorter than the first)."
            )
        self.jitter = _number("jitter", jitter, low=0.0, rule="a fraction between 0 and 1")
        if self.jitter > 1:
            raise ConfigError(f"jitter={jitter!r} is not valid; give a fraction between 0 and 1.")
        self.on, self._test = _check_on(on)
        if not is_int(seed):
            raise ConfigError(f"seed={seed!r} is not valid; give a whole number.")
        self.seed = seed

    def delay(self, attempt: int, key: str = "") -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based) of the step at ``key``."""
        try:
            base = min(self.max_backoff, self.backoff * self.factor ** (attempt - 1))
        except OverflowError:
            base = self.max_backoff
        if not self.jitter or not base:
            return base
        digest = hashlib.blake2b(f"{self.seed}:{key}:{attempt}".encode(), digest_size=8).digest()
        u = int.from_bytes(digest, "big") / 2.0**64
        return base * (1.0 - self.jitter * u)

    def retries(self, err: BaseException) -> bool:
        """Whether ``err`` may be retried (by kind; the engine also checks attempts left)."""
        if not isinstance(err, Exception) or isinstance(err, _NEVER):
            return False
        if self._test is not None:
            return bool(self._test(err))
        return isinstance(err, self.on)

    def __repr__(self) -> str:
        parts = [
            f"attempts={self.attempts}",
            f"backoff={self.backoff:g}",
            f"factor={self.factor:g}",
            f"max_backoff={self.max_backoff:g}",
            f"jitter={self.jitter:g}",
        ]
        if self._test is not None:
            parts.append(f"on={getattr(self._test, '__qualname__', repr(self._test))}")
        elif self.on != (Exception,):
            names = ", ".join(k.__name__ for k in self.on)
            parts.append(f"on=({names},)" if len(self.on) == 1 else f"on=({names})")
        if self.seed:
            parts.append(f"seed={self.seed}")
        return f"Retry({', '.join(parts)})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Retry):
            return NotImplemented
        return all(getattr(self, a) == getattr(other, a) for a in self.__slots__)

    def __hash__(self) -> int:
        return hash(tuple(getattr(self, a) for a in ("attempts", "backoff", "factor", "seed")))


def check_retry(retry: Any, *, param: str = "retry") -> Retry | None:
    """``retry`` if it is a :class:`Retry` or ``None``; :class:`ConfigError` otherwise."""
    if retry is None or isinstance(retry, Retry):
        return retry
    hint = " HINT: retry=fl.Retry(attempts=...)" if isinstance(retry, int) else ""
    raise ConfigError(
        f"{param}={retry!r} is not valid; give fl.Retry(attempts=..., backoff=...) or None.{hint}"
    )
