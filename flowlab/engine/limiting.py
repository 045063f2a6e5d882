"""What holds work back, made per run and per step: caps and rates, and the rows they leave.

``new_limiter`` gives a step (or the run, ``"run"``) fresh state of its cap and records its
``start`` row in ``result.limits``; every move of an adaptive cap is a ``move`` row (and an
instrument's ``limit_changed``). ``new_rate`` does the same for a rate, whose token window (if
any) is fed by the charges made inside its scope, and ``rate_listener`` records each held start as
a ``wait`` row. The run-wide cap's *spells* (from the first leaf it holds back until none waits)
are ``wait`` rows too, stamped with the limit and the leaves in flight when the spell began.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flowlab.core.keyed import KeyedState

if TYPE_CHECKING:
    from flowlab.core.limits import LimiterState
    from flowlab.core.rate import Rate, RateState
    from flowlab.engine.coordinator import Run

__all__ = ["cap_spell_begins", "cap_spell_ends", "new_limiter", "new_rate", "rate_listener"]


def new_limiter(run: Run, cfg: Any, step: str) -> LimiterState | None:
    """Fresh limiter state for ``step`` (``"run"`` for the run-wide cap); records its start."""
    if cfg is None:
        return None
    state: LimiterState = cfg.new_state(_limit_listener(run, step, cfg.name))
    if not isinstance(state, KeyedState):  # a Keyed cap records each key as it appears
        run.recorder.limits.append((run.now(), step, state.limit, 0, cfg.name, "start", "", 0.0))
    return state


def _limit_listener(run: Run, step: str, kind: str) -> Callable[[int, int], None]:
    def listener(limit: int, in_flight: int) -> None:
        t = run.now()
        run.recorder.limits.append((t, step, limit, in_flight, kind, "move", "", 0.0))
        run.event("limit_changed", step, "", f"limit={limit}")
        run.emit("limit_changed", step, limit, in_flight, t)

    return listener


def cap_spell_begins(run: Run, t: float, limiter: LimiterState) -> None:
    """The run-wide cap holds a leaf back from ``t``: a spell begins (its row says the limit
    and the leaves in flight as they were then, at its ``time_s``)."""
    run.cap_since, run.cap_at = t, (limiter.limit, limiter.in_flight)


def cap_spell_ends(run: Run, limiter: LimiterState) -> None:
    """The run-wide cap held leaves back from ``cap_since`` until now: a ``wait`` row."""
    assert run.cap_since is not None
    t, since = run.now(), run.cap_since
    limit, in_flight = run.cap_at
    row = (since, "run", limit, in_flight, limiter.limiter.name, "wait", "")
    run.recorder.limits.append((*row, t - since))
    run.cap_since = None


def new_rate(run: Run, rate: Rate, scope: str) -> RateState:
    """Fresh state of ``rate`` for the step at path ``scope`` (``""``: the whole run); its
    token window, if any, is fed by the charges made inside that scope."""
    state = rate.new_state()
    if rate.tokens_per_minute is not None:
        run.token_windows.append((scope, state))
    limit = rate.burst if rate.period else int(rate.tokens_per_minute or 0)
    run.recorder.limits.append((run.now(), scope or "run", limit, 0, "rate", "start", "", 0.0))
    return state


def rate_listener(run: Run, step: str, state: RateState) -> Callable[[float, float, int], None]:
    """What records a rate's waits: a ``wait`` row in ``result.limits`` per held start."""
    limit = state.rate.burst if state.rate.period else int(state.rate.tokens_per_minute or 0)

    def on_wait(t: float, seconds: float, in_flight: int) -> None:
        run.recorder.limits.append((t, step, limit, in_flight, "rate", "wait", "", seconds))

    return on_wait
