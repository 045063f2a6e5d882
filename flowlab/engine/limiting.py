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
    from flowlab.results.records import BranchRecord

__all__ = [
    "cap_spell_begins",
    "cap_spell_ends",
    "new_limiter",
    "new_rate",
    "rate_listener",
    "step_rates_hold",
]


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


def step_rates_hold(run: Run, parent: str, retry_of: BranchRecord | None = None) -> float:
    """Under a run-wide cap or rate, a leaf of branch ``parent`` has its run-wide slot and would
    start that branch (and every enclosing one not started yet), or retry a leaf of branch
    ``retry_of``: the seconds the ``rate=`` of their steps still holds it back (each a ``wait``
    row), or ``0.0``, the rates' tokens taken.

    A rated step's branches are spaced by when they really start, not by when they were
    dispatched: a branch dispatched at once may wait long for a run-wide slot, and several
    would then start in one instant (three starts at 2.5 s under one per second).
    """
    t = run.now()
    owners: list[Any] = []
    if retry_of is not None:  # a retry is a new request of its own branch's step
        owner = run.step_rates.get(_step_of(retry_of))
        owners += [owner] if owner is not None else []
    path, unstarted = parent, run.unstarted
    while retry_of is None and (brec := unstarted.get(path)) is not None:  # as Run.began
        owner = run.step_rates.get(_step_of(brec))
        if owner is not None:
            owners.append(owner)
        path = brec.parent
    waits: list[float] = [owner.rate.delay(t) for owner in owners]
    if any(waits):
        for owner, wait in zip(owners, waits, strict=True):
            if wait > 0.0:
                owner.rate.note_wait(wait)
                owner.on_rate_wait(t, wait, owner.in_flight)
        return max(waits)
    for owner in owners:
        owner.rate.take(t)
    return 0.0


def _step_of(brec: BranchRecord) -> str:
    """The path of the step whose branch ``brec`` is."""
    return brec.path[: len(brec.path) - len(brec.branch) - 1]
