"""The run a step belongs to: :func:`charge`, :func:`current_run`, :func:`last_result`.

Each branch task carries ``(run, branch record)`` in a context variable, so a step can charge
usage to its run's shared budget, from a coroutine or from a sync step in a worker thread (the
thread runs in a copy of the task's context). The last run's result is kept for
``fl.last_result()``, which is how a notebook gets at a run that was interrupted.
"""

from __future__ import annotations

import contextvars
import math
from typing import TYPE_CHECKING

from flowlab.core.numbers import is_number
from flowlab.errors import ConfigError

if TYPE_CHECKING:
    from flowlab.engine.coordinator import Run
    from flowlab.results.record import RunResult
    from flowlab.results.records import BranchRecord

__all__ = ["charge", "current_run", "last_result"]

_current: contextvars.ContextVar[tuple[Run, BranchRecord | None]] = contextvars.ContextVar(
    "flowlab_current"
)
_last: list[RunResult] = []


def last_result() -> RunResult | None:
    """The result of the most recent run in this process, finished or not (``None`` if none)."""
    return _last[-1] if _last else None


def current_run() -> Run | None:
    """The run the calling step belongs to, or ``None`` outside a run."""
    cur = _current.get(None)
    return cur[0] if cur else None


def charge(cost: float = 0.0, tokens: int = 0) -> None:
    """Charge usage against the run's shared :class:`~flowlab.core.usage.UsageLimits`, atomically.

    Call it inside a step (async or sync). The charge that crosses a limit raises
    :class:`~flowlab.errors.UsageLimitExceeded` in its branch, and every sibling is cancelled at once.
    The crossing charge still counts: its work was done.

    Raises
    ------
    ConfigError
        Outside a run, or for negative / non-numeric amounts.
    ChargeRefused
        When the calling branch (or the run) has already ended: a thread or task the step left
        behind cannot charge, so the run's totals always equal the sum of its branch rows.
    UsageLimitExceeded
        When this charge (or an earlier one) crossed the budget.
    """
    cur = _current.get(None)
    if cur is None:
        raise ConfigError(
            "fl.charge() was called outside a flowlab run. HINT: call it inside a step that "
            "fl.run / fl.arun / fl.start is running."
        )
    for param, v in (("cost", cost), ("tokens", tokens)):
        if not is_number(v) or math.isnan(v) or v < 0:
            raise ConfigError(f"{param}={v!r} is not valid; give a number >= 0.")
    if not float(tokens).is_integer():
        raise ConfigError(f"tokens={tokens!r} is not valid; give a whole number.")
    run, brec = cur
    run.charge(float(cost), int(tokens), brec)
