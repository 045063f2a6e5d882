"""The queue of one Parallel step: which queued branch may start now, and what holds the rest.

A :class:`BranchQueue` holds the branches of one step that wait for a slot, best first: names in
declared order (a deque) when no branch has a priority — the common case, nothing to keep sorted
— else a heap of ``(-priority, declared index, name)``, and under a
:class:`~flowlab.core.keyed.Keyed` cap one heap per key (:class:`~flowlab.core.keyed.KeyedQueue`,
so a full key never holds up another). :meth:`BranchQueue.next_ready` answers one question for
:meth:`~flowlab.engine.parallel.ParallelRun.dispatch`: the name of the next branch that may start
at ``t``, its slot (and its rate token) taken — or ``None`` when nothing may start.

Three things can hold a queued branch back, and each leaves a row in ``result.limits``:

* the step's cap (``max_concurrency``): a *spell* from the first branch it holds back until the
  queue is empty, one ``wait`` row;
* a Keyed cap: a full key's spells, logged by the KeyedQueue;
* the step's rate (``rate=``): one ``wait`` row per held start, and one timer armed for the moment
  the next start conforms — when it fires, the queue asks its owner to dispatch again.

Everything here runs on the event-loop thread; nothing blocks.
"""

from __future__ import annotations

import asyncio
import collections
import heapq
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any

from flowlab.core.keyed import BranchInfo, KeyedQueue, KeyedState
from flowlab.errors import ConfigError
from flowlab.results.records import BranchRecord

if TYPE_CHECKING:
    from flowlab.core.limits import LimiterState
    from flowlab.core.rate import RateState
    from flowlab.engine.parallel import ParallelRun

__all__ = ["BranchQueue", "branch_keys", "enqueue"]

Row = tuple[float, str, int, int, str, str, str, float]


class BranchQueue:
    """The queued branches of one step, the limiter and rate that let them start.

    Parameters
    ----------
    step : str
        The step's path (rows of ``result.limits`` name it).
    limiter : LimiterState or None
        The step's cap (a :class:`~flowlab.core.keyed.KeyedState` for a Keyed cap).
    rate : RateState or None
        The step's rate.
    on_rate_wait : callable or None
        ``on_rate_wait(t, seconds, in_flight)`` records a held start.
    log : callable
        Appends a row to ``result.limits``.
    by_priority : bool
        Some branch has a priority: keep a heap instead of declared order.
    loop : asyncio.AbstractEventLoop
        Where the rate's timer is armed.
    t0 : float
        The run's start on the loop's clock (timer deadlines are ``t0 + t``).
    """

    __slots__ = (
        "_due",
        "_log",
        "_loop",
        "_on_rate_wait",
        "_pop",
        "_spell_at",
        "_step",
        "_t0",
        "cap_since",
        "entries",
        "heap",
        "keyed",
        "limiter",
        "queued",
        "rate",
        "rate_timer",
        "rate_wake",
        "simple",
    )  # fmt: skip

    def __init__(
        self,
        step: str,
        limiter: LimiterState | None,
        rate: RateState | None,
        on_rate_wait: Callable[[float, float, int], None] | None,
        log: Callable[[Row], None],
        *,
        by_priority: bool,
        loop: asyncio.AbstractEventLoop,
        t0: float,
    ) -> None:
        self._step, self._log, self._loop, self._t0 = step, log, loop, t0
        self.limiter, self.rate, self._on_rate_wait = limiter, rate, on_rate_wait
        self.keyed = isinstance(limiter, KeyedState)
        self.heap = by_priority and not self.keyed
        self.simple = not self.heap and not self.keyed and rate is None  # the common case
        entries: Any
        if self.keyed:
            entries = KeyedQueue(limiter, step, log)  # type: ignore[arg-type]
        elif self.heap:
            entries = []
        else:
            entries = collections.deque()
        self.entries = entries
        self._pop: Any = (
            None
            if self.keyed
            else (lambda: heapq.heappop(entries))
            if self.heap
            else entries.popleft
        )
        self.queued: dict[str, Any] = {}  # name -> its live entry (run.live), while it waits
        self._spell_at: tuple[int, int] = (0, 0)  # (limit, in flight) when the spell began
        self.cap_since: float | None = None  # since when the cap holds branches back (a spell)
        self.rate_timer: asyncio.TimerHandle | None = None  # armed while the rate holds starts
        self.rate_wake: asyncio.Future[None] | None = None  # the step waits for the rate alone
        self._due: Callable[[], None] = lambda: None  # set by the owner: dispatch again

    def __bool__(self) -> bool:
        return bool(self.entries)

    def on_due(self, dispatch: Callable[[], None]) -> None:
        """What to call when the rate lets a held start go (the owner's dispatch)."""
        self._due = dispatch

    # ---- filling ----------------------------------------------------------------------------
    def push(self, priority: float, index: int, name: str, key: Hashable, t: float) -> None:
        """Queue branch ``name`` (declared at ``index``; ``key`` under a Keyed cap)."""
        if self.keyed:
            self.entries.push((-priority, index, name), key, t)
        else:
            self.entries.append((-priority, index, name) if self.heap else name)

    def ready(self) -> None:
        """Every branch is pushed: order the heap once."""
        if self.heap:
            heapq.heapify(self.entries)

    # ---- starting -------------------------------------------------------------------------------
    def next_ready(self, t: float, in_flight: int) -> str | None:
        """The next branch that may start at ``t`` (its slot and rate token taken), skipping
        branches no longer :attr:`queued` (cancelled while queued); ``None`` if none may."""
        entries, limiter, rate, queued = self.entries, self.limiter, self.rate, self.queued
        name: str
        while entries:
            if not self.keyed:
                head = entries[0]
                name = head[2] if self.heap else head
                if name not in queued:  # cancelled while queued
                    self._pop()
                    continue
            if rate is not None:
                if self.rate_timer is not None:
                    return None  # held by the rate: its timer dispatches
                wait = rate.delay(t)
                if wait > 0.0:
                    self._hold(t, wait, in_flight)
                    return None
            if self.keyed:
                got = entries.pop_ready(queued, t)  # takes a slot of the branch's key
                if got is None:
                    return None  # every key with queued branches is full
                name = got
            else:
                if limiter is not None and not limiter.try_acquire(t):
                    if self.cap_since is None:
                        self.spell_begins(t, limiter, in_flight)
                    return None
                self._pop()
            if rate is not None:
                rate.take(t)
            return name
        return None

    def release(self, name: str, latency: float, ok: bool, *, adapt: bool = True) -> None:
        """Give ``name``'s slot back (its key's, under a Keyed cap)."""
        if self.keyed:
            self.entries.release(name)
        elif self.limiter is not None:
            self.limiter.release(latency, ok, adapt=adapt)

    # ---- what holds branches back ---------------------------------------------------------------
    def spell_begins(self, t: float, limiter: LimiterState, in_flight: int) -> None:
        """The cap holds a branch back: a spell begins (its row says the limit and the branches
        in flight as they were when it began, at its ``time_s``)."""
        self.cap_since, self._spell_at = t, (limiter.limit, in_flight)

    def spell_ends(self, t: float, in_flight: int) -> None:
        """The cap held branches back from ``cap_since`` until ``t``: a ``wait`` row, stamped
        with the limit and the branches in flight when the spell began."""
        limiter, since = self.limiter, self.cap_since
        assert limiter is not None
        assert since is not None
        limit, running = self._spell_at
        row = (since, self._step, limit, running, limiter.limiter.name, "wait", "")
        self._log((*row, t - since))
        self.cap_since = None

    def _hold(self, t: float, wait: float, in_flight: int) -> None:
        """The rate holds the queue: dispatch again once a start conforms, ``wait`` s on."""
        assert self.rate is not None
        assert self._on_rate_wait is not None
        self.rate.note_wait(wait)
        self._on_rate_wait(t, wait, in_flight)
        self.rate_timer = self._loop.call_at(self._t0 + t + wait, self._rate_due)

    def _rate_due(self) -> None:
        self.rate_timer = None
        self._due()
        if self.rate_timer is None or not self.queued:
            self.rate_done()

    def rate_done(self) -> None:
        """Nothing is held by the rate any more: wake the step if it waits for that alone."""
        if self.rate_timer is not None and not self.queued:
            self.rate_timer.cancel()
            self.rate_timer = None
        if self.rate_wake is not None and not self.rate_wake.done():
            self.rate_wake.set_result(None)

    def close(self, t: float, in_flight: int) -> None:
        """The step ended: no timer left armed, an open spell of the cap closed."""
        if self.rate_timer is not None:
            self.rate_timer.cancel()
        if self.cap_since is not None:  # the step ended (cancelled) with branches held back
            self.spell_ends(t, in_flight)


def branch_keys(pr: ParallelRun) -> list[Any]:
    """Each branch's key under a Keyed cap, in declared order, before any branch is queued: a
    key with no cap (or a key callable that raises) fails the step before anything starts. A
    Map's branch gives its item to the key callable (``BranchInfo.mapped``)."""
    path, inputs, limiter = pr.path, pr.plan.inputs, pr.limiter
    assert isinstance(limiter, KeyedState)
    try:
        return [
            limiter.key_of(
                BranchInfo(n, i, path)
                if inputs is None
                else BranchInfo(n, i, path, inputs[n], True)
            )
            for i, n in enumerate(pr.plan.names)
        ]
    except ConfigError as err:
        srec, run = pr.srec, pr.run
        srec.status, srec.error, srec.finished = "failed", f"ConfigError: {err}", run.now()
        run.event("step_finished", path, "", srec.status)
        run.emit("step_finished", srec)
        raise


def enqueue(pr: ParallelRun, keys: list[Any]) -> None:
    """A record and a queue entry per branch (a branch a handle cancelled before the run
    began is recorded, and cancelled, but never queued)."""
    run, queue, log = pr.run, pr.queue, pr.log
    queued, priority = queue.queued, pr.plan.priority
    # bound once per step, not looked up per branch (this loop runs once per branch); a bound
    # method per branch would also be 2 long-lived objects more for the GC
    drop_queued, never_ran, new_live = pr.drop_queued, pr.never_ran, run.new_live
    step, path, parent, group, capped = pr.par.name, pr.path, pr.parent, pr.group, pr.capped
    keep, instruments, precancel = run.recorder.branches.append, run.instruments, run.precancel
    # declared order under a plain cap (the common case): the name itself is the queue entry
    append = queue.entries.append if queue.simple else None
    now = run.now()
    outer = run.ranks.get(parent, ())  # the enclosing branch's place in the tree
    for index, name in enumerate(pr.plan.names):
        prio = priority.get(name, 0.0)
        brec = BranchRecord(step, name, f"{path}:{name}", parent, prio, now)
        if capped:
            run.ranks[brec.path] = (*outer, (-prio, index))
        keep(brec)
        live = queued[name] = new_live(brec, group, drop_queued, never_ran)
        if log is not None:
            log(brec)
        if instruments:
            run.emit("branch_queued", brec)
        if precancel and run.precancelled(name, brec.path):
            run.cancel_live(live, "cancelled", "cancelled by handle")
            continue
        if append is not None:
            append(name)  # what push() does for a simple queue
        else:
            queue.push(prio, index, name, keys[index] if keys else None, now)
    queue.ready()
    if pr.limiter is not None:
        pr.limiter.queued = len(queued)
