"""The shared usage budget: :class:`UsageLimits` (configuration) and :class:`UsageAccount` (a run's).

``fl.run(..., usage=fl.UsageLimits(cost=1.0, tokens=50_000))`` gives the whole run one budget that
every branch's :func:`flowlab.charge` draws on. The account adds charges exactly as they come
(no per-charge rounding: a thousand charges of ``1e-13`` total ``1e-10``); the charge that crosses
a limit is the *crossing charge*, and the run cancels the crossing branch's siblings at once. The
account takes a :class:`threading.Lock` only around arithmetic (sync steps charge from worker
threads) and never awaits under it. A branch that has ended can no longer charge
(:class:`~flowlab.errors.ChargeRefused`), so totals always equal the sum of the branch rows.

Examples
--------
>>> from flowlab.core.usage import UsageLimits, tidy_cost
>>> UsageLimits(cost=1.0).cost
1.0
>>> tidy_cost(0.1 + 0.2)
0.3
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Any

from flowlab.core.numbers import is_number
from flowlab.errors import ChargeRefused, ConfigError, UsageLimitExceeded

__all__ = ["UsageAccount", "UsageLimits", "tidy_cost"]

_OPEN = ("queued", "running")  # branch statuses that may still charge


def tidy_cost(total: float) -> float:
    """A cost total as shown (results, frames, errors): 12 significant digits.

    Charges are added exactly as they come (``1e-13`` a thousand times is ``1e-10``, not 0); the
    total is shown without the float noise of adding decimals in binary (``0.1 + 0.2`` is shown
    as ``0.3``).

    Examples
    --------
    >>> tidy_cost(0.1 + 0.2), tidy_cost(sum([1e-13] * 1000))
    (0.3, 1e-10)
    """
    return float(f"{total:.12g}")


@dataclass(frozen=True)
class UsageLimits:
    """A run's shared budget: one account for every branch, never split.

    Parameters
    ----------
    cost : float, optional
        Maximum total cost (any currency unit).
    tokens : int, optional
        Maximum total tokens.
    """

    cost: float | None = None
    tokens: int | None = None

    def __post_init__(self) -> None:
        for param in ("cost", "tokens"):
            v = getattr(self, param)
            if v is not None and (not is_number(v) or math.isnan(v) or v < 0):
                raise ConfigError(f"{param}={v!r} is not valid; give a number >= 0, or None.")
        if self.tokens is not None and not float(self.tokens).is_integer():
            raise ConfigError(
                f"tokens={self.tokens!r} is not valid; give a whole number >= 0, or None."
            )


@dataclass
class UsageAccount:
    """The run's atomic usage account. ``charge`` is safe from worker threads.

    Amounts are added as they come, never rounded (1,000 charges of ``1e-13`` total ``1e-10``).
    Once closed (:meth:`close`, when the run ends), every charge is refused.
    """

    limits: UsageLimits | None
    cost: float = 0.0
    tokens: int = 0
    charges: int = 0
    breached: UsageLimitExceeded | None = None
    closed: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def close(self) -> tuple[float, int]:
        """Refuse every later charge; return the final ``(cost, tokens)``."""
        with self._lock:
            self.closed = True
            return self.cost, self.tokens

    def charge(self, cost: float, tokens: int, branch: str | None, record: Any = None) -> bool:
        """Add a charge (to ``record``'s ``cost`` and ``tokens`` too, in the same step); return
        True if this charge crossed a limit (the first to do so).

        Raises
        ------
        ChargeRefused
            After :meth:`close`, or when ``record`` (a branch) has already ended.
        """
        with self._lock:
            if self.closed or (record is not None and record.status not in _OPEN):
                who = f"branch {branch!r}" if record is not None else "the run"
                raise ChargeRefused(
                    f"fl.charge(cost={cost:g}, tokens={tokens}) refused: {who} has already "
                    "ended, so the charge would not be in its totals. HINT: charge inside the "
                    "step, before it returns; a thread or task it leaves behind cannot charge."
                )
            self.cost += cost
            self.tokens += tokens
            self.charges += 1
            if record is not None:
                record.cost += cost
                record.tokens += tokens
            if self.breached is not None or self.limits is None:
                return False
            lim = self.limits
            which = None
            if lim.cost is not None and self.cost > lim.cost * (1 + 1e-9):  # float slack only
                which = "cost"
            elif lim.tokens is not None and self.tokens > lim.tokens:
                which = "tokens"
            if which is None:
                return False
            limit_value = getattr(lim, which)
            used = self.cost if which == "cost" else self.tokens
            self.breached = UsageLimitExceeded(
                f"usage limit exceeded: {which} {used:g} > {limit_value:g} "
                f"(charge by branch {branch!r}); totals cost={self.cost:g} tokens={self.tokens}.",
                branch=branch,
                limit=which,
                totals={"cost": tidy_cost(self.cost), "tokens": self.tokens},
            )
            return True
