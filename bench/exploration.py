"""Figure 12: schedules to the first bug, per strategy, on five classic interleaving bugs.

Five SCTBench / CHESS-style asyncio bugs (lost update, order violation, account, wronglock,
the KISS bluetooth driver), each written once as ``setup`` (fresh shared state),
``workers`` (coroutine functions of the state) and an ``invariant`` over the state -- frontrun's
shape. The same code runs under both tools:

* flowlab: ``fl.deadlock.explore(fn, strategy=s, stop_on_first=True)`` for each of its
  strategies, where ``fn`` gathers the workers and asserts the invariant; the number is
  ``Exploration.schedules`` at the first failure (``None``: not found within the budget).
* frontrun (``pip install frontrun``, the ``bench`` extra): ``await frontrun.explore(setup=...,
  workers=..., invariant=..., strategy=s)`` for ``"dpor"`` and ``"random"``; the number is
  ``num_explored`` when ``property_holds`` is False.

Every bug passes on asyncio's own FIFO schedule (the later worker yields a few times first), so
a tool that runs one schedule would call each program correct. Shared state is plain Python
(attributes, ``asyncio.Lock``) on both sides: flowlab's explorer sees none of it and must treat
each such step as conflicting with all others. Schedule counts are deterministic (seeded); the
wall time of each search is reported too. Target (issue 19): flowlab's default (``dpor``) finds
each bug within preemption bound 2 in at most the schedules frontrun's DPOR needs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from bench._core import Figure, Settings

__all__ = ["BUGS", "exploration"]

Worker = Callable[[Any], Coroutine[Any, Any, None]]


async def _yield(turns: int) -> None:
    for _ in range(turns):
        await asyncio.sleep(0)


class _State:
    """A bag of attributes for the bugs below."""

    def __init__(self, **fields: Any) -> None:
        self.__dict__.update(fields)


@dataclass(frozen=True)
class Bug:
    name: str
    setup: Callable[[], Any]
    workers: list[Worker]
    invariant: Callable[[Any], bool]


# -- 1. lost update: read, await, write back ------------------------------------------------
async def _deposit(s: Any, turns: int) -> None:
    await _yield(turns)
    seen = s.balance
    await asyncio.sleep(0)
    s.balance = seen + 10


# -- 2. order violation: the handler assumes init ran first ---------------------------------
async def _init(s: Any) -> None:
    await asyncio.sleep(0)
    s.config = "db"


async def _handler(s: Any) -> None:
    await _yield(2)
    s.seen = s.config


# -- 3. SCTBench account: check and act in separate critical sections -----------------------
async def _withdraw(s: Any, turns: int) -> None:
    await _yield(turns)
    async with s.lock:
        ok = s.balance >= 80
    await asyncio.sleep(0)
    if ok:
        async with s.lock:
            s.balance -= 80


# -- 4. SCTBench wronglock: one counter, two different locks --------------------------------
async def _bump(s: Any, lock: str, turns: int) -> None:
    await _yield(turns)
    async with getattr(s, lock):
        seen = s.count
        await asyncio.sleep(0)
        s.count = seen + 1


# -- 5. the KISS bluetooth driver: stop() runs between dispatch's check and its increment -----
def _decrement(s: Any) -> None:
    s.pending -= 1
    if s.pending == 0:
        s.drained.set()


async def _dispatch(s: Any) -> None:
    await _yield(2)
    if s.stopping:
        return
    await asyncio.sleep(0)  # the window
    s.pending += 1
    s.ran_stopped = s.ran_stopped or s.stopped
    _decrement(s)


async def _stop(s: Any) -> None:
    await _yield(3)
    s.stopping = True
    _decrement(s)
    await s.drained.wait()
    s.stopped = True


def _w(body: Callable[..., Coroutine[Any, Any, None]], *args: Any) -> Worker:
    """A coroutine function of the state (frontrun tells async workers by that)."""

    async def worker(s: Any) -> None:
        await body(s, *args)

    return worker


BUGS: list[Bug] = [
    Bug("lost_update", lambda: _State(balance=0),
        [_w(_deposit, 0), _w(_deposit, 3)], lambda s: s.balance == 20),
    Bug("order_violation", lambda: _State(config=None, seen=None),
        [_init, _handler], lambda s: s.seen == "db"),
    Bug("account", lambda: _State(balance=100, lock=asyncio.Lock()),
        [_w(_withdraw, 0), _w(_withdraw, 2)], lambda s: s.balance >= 0),
    Bug("wronglock", lambda: _State(count=0, a=asyncio.Lock(), b=asyncio.Lock()),
        [_w(_bump, "a", 0), _w(_bump, "b", 2)], lambda s: s.count == 2),
    Bug("bluetooth", lambda: _State(pending=1, stopping=False, stopped=False, ran_stopped=False,
                                    drained=asyncio.Event()),
        [_dispatch, _stop], lambda s: not s.ran_stopped),
]  # fmt: skip


def _flowlab_fn(bug: Bug) -> Callable[[], Coroutine[Any, Any, None]]:
    async def fn() -> None:
        state = bug.setup()
        await asyncio.gather(*(w(state) for w in bug.workers))
        assert bug.invariant(state), f"{bug.name}: invariant violated"

    fn.__qualname__ = bug.name
    return fn


def _fifo_passes(bug: Bug) -> bool:
    try:
        asyncio.run(_flowlab_fn(bug)())
    except AssertionError:
        return False
    return True


def _flowlab(bug: Bug, strategy: str, budget: int) -> tuple[int | None, float]:
    from flowlab.study.deadlock import explore

    t0 = time.perf_counter()
    found = explore(_flowlab_fn(bug), strategy=strategy, stop_on_first=True,
                    max_schedules=budget, seed=0)  # fmt: skip
    took = time.perf_counter() - t0
    return (found.schedules if found.first_failure is not None else None), took


def _frontrun(bug: Bug, strategy: str, budget: int) -> tuple[int | None, float]:
    import frontrun

    async def main() -> Any:
        options: dict[str, Any] = (
            {"max_executions": budget}
            if strategy == "dpor"
            else {"max_attempts": budget, "seed": 0}
        )
        return await frontrun.explore(setup=bug.setup, workers=list(bug.workers),
                                      invariant=bug.invariant, strategy=strategy,
                                      **options)  # fmt: skip

    t0 = time.perf_counter()
    result = asyncio.run(main())
    took = time.perf_counter() - t0
    return (None if result.property_holds else int(result.num_explored)), took


def exploration(settings: Settings) -> Figure:
    """Figure 12."""
    fig = Figure("exploration", 12, "Schedules to the first bug, per strategy (flowlab, frontrun)")
    budget = settings.pick(300, 2000)
    try:
        import frontrun
    except ImportError as err:
        frontrun_skip: str | None = f"frontrun is not installed ({err})"
    else:
        frontrun_skip = None
        fig.notes.append(f"frontrun {getattr(frontrun, '__version__', '?')}")
    for bug in BUGS:
        if not _fifo_passes(bug):
            fig.notes.append(f"{bug.name}: fails on asyncio's FIFO schedule (not a hidden bug)")
        ours: int | None = None
        found: dict[str, int | None] = {}
        for strategy in ("dpor", "exhaustive", "pct", "random"):
            n, took = _flowlab(bug, strategy, budget)
            ours = n if strategy == "dpor" else ours
            found[strategy] = n
            fig.add(f"{bug.name}.flowlab.{strategy}", n, "schedules",
                    f"{bug.name}: flowlab {strategy} ({took * 1e3:.0f} ms)",
                    skipped=None if n is not None else f"not found in {budget}")  # fmt: skip
        if found["dpor"] is not None and found["exhaustive"] is not None:
            # the baseline measured in this run: exhaustive search of the same program
            fig.add(f"{bug.name}.dpor_vs_exhaustive", found["dpor"] / found["exhaustive"], "x",
                    f"{bug.name}: flowlab dpor / exhaustive schedules")  # fmt: skip
        theirs: int | None = None
        for strategy in ("dpor", "random"):
            key, label = f"{bug.name}.frontrun.{strategy}", f"{bug.name}: frontrun {strategy}"
            if frontrun_skip is not None:
                fig.skip_metric(key, "schedules", label, frontrun_skip)
                continue
            try:
                n, took = _frontrun(bug, strategy, budget)
            except Exception as err:  # an API mismatch is a skip with its reason, not a crash
                fig.skip_metric(key, "schedules", label, f"{type(err).__name__}: {err}")
                continue
            theirs = n if strategy == "dpor" else theirs
            fig.add(key, n, "schedules", f"{label} ({took * 1e3:.0f} ms)",
                    skipped=None if n is not None else f"not found in {budget}")  # fmt: skip
        if ours is not None and theirs is not None:
            fig.add(f"{bug.name}.dpor_ratio", ours / theirs, "x",
                    f"{bug.name}: flowlab dpor / frontrun dpor schedules",
                    target="<= 1x", check=lambda v: v <= 1)  # fmt: skip
    fig.notes.append(f"budget {budget} schedules per search; flowlab preemption bound 2")
    return fig
