"""Property: correct programs built from a small grammar of traced operations never raise an alarm.

The grammar makes deadlock impossible by construction:

* locks are taken in increasing index order, the semaphore (``async with``) never together with
  a lock, and nobody waits for a signal while holding anything -- except a "cross" op, which
  takes a higher lock, then a lower one under ``asyncio.timeout(0.25)`` and gives up on timeout:
  a real lock-order cycle, always broken by its deadline;
* every *channel* (an event, a queue, a semaphore used as a signal, or a "baton" semaphore)
  has one setter and one waiter. A setter that fires itself has a lower index than the waiter,
  so waits form no cycle. A setter may instead delegate to a child task (``<setter>.send``),
  spawned first thing and awaited at the end, that only sleeps and fires: then the setter may be
  any other task -- declared wakers may form a cycle while the real waits do not (the issue's
  ``producers=["client"]`` case). A baton is a ``Semaphore(1)`` the setter takes with a bare
  ``acquire()`` and never gives back (it may finish holding it); a child of the *waiter*
  releases it for the waiter (the lightswitch: the task that releases did not acquire).
  The channel may or may not declare the setter's name (``setters=`` / ``producers=`` /
  ``releasers=``).

Each program runs under ``supervise`` on virtual time and, as an independent model, with plain
asyncio primitives: the traced run must not report a deadlock and must end with the same results
and the same log. A few programs also go through the explorer (random schedules, ``watch``
inside): no schedule may be called a deadlock.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

import flowlab.deadlock as dl
from flowlab.engine.clock import run_virtual
from flowlab.study.deadlock.explorer import explore

DELAYS = st.sampled_from([0.0, 0.5, 1.0])
OP = st.one_of(
    st.tuples(st.just("sleep"), DELAYS),
    st.tuples(
        st.just("locks"), st.lists(st.integers(0, 2), min_size=1, max_size=3, unique=True), DELAYS
    ),
    st.tuples(st.just("sem"), DELAYS),
    st.tuples(
        st.just("cross"), st.lists(st.integers(0, 2), min_size=2, max_size=2, unique=True), DELAYS
    ),
    st.tuples(
        st.just("tcross"), st.lists(st.integers(0, 2), min_size=2, max_size=2, unique=True), DELAYS
    ),
    st.tuples(st.just("rlock"), DELAYS),
    st.tuples(st.just("try"), st.integers(0, 2), DELAYS),
)


class PlainCountdown:
    """The model of ``dl.CountdownEvent`` on plain asyncio."""

    def __init__(self, count: int) -> None:
        self.count, self.event = count, asyncio.Event()

    def signal(self) -> None:
        self.count -= 1
        if not self.count:
            self.event.set()

    async def wait(self) -> None:
        await self.event.wait()


@dataclass(frozen=True)
class Channel:
    kind: str  # "event" | "queue" | "signal" | "baton" | "countdown"
    setter: int
    waiter: int
    delegate: bool
    declare: bool
    count: int
    set_at: int
    wait_at: int
    delay: float


@st.composite
def programs(draw: st.DrawFn) -> tuple[list[list[Any]], list[Channel], int]:
    n = draw(st.integers(2, 4))
    ops = [draw(st.lists(OP, min_size=1, max_size=4)) for _ in range(n)]
    channels = []
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["event", "queue", "signal", "baton", "countdown"]))
        delegate = kind == "baton" or draw(st.booleans())
        if delegate:
            setter, waiter = draw(st.permutations(range(n)))[:2]
        else:
            setter = draw(st.integers(0, n - 2))
            waiter = draw(st.integers(setter + 1, n - 1))
        channels.append(
            Channel(
                kind=kind,
                setter=setter,
                waiter=waiter,
                delegate=delegate,
                declare=draw(st.booleans()),
                count=draw(st.integers(1, 2)),
                set_at=draw(st.integers(0, len(ops[setter]))),
                wait_at=draw(st.integers(0, len(ops[waiter]))),
                delay=draw(DELAYS),
            )
        )
    return ops, channels, draw(st.integers(1, 2)), draw(st.booleans())


Spec = tuple[list[list[Any]], list[Channel], int, bool]


def build(spec: Spec, traced: bool) -> tuple[list, list]:
    """The coroutines, on traced (flowlab) or plain (asyncio) primitives, and a shared log.

    ``meet``: every worker ends at a barrier of all workers (after its channels, holding
    nothing), so no wait can depend on a task stuck at it.
    """
    ops, channels, permits, meet = spec
    names = [f"w{i}" for i in range(len(ops))]
    log: list[tuple[float, str]] = []
    if traced:
        locks: list[Any] = [dl.Lock(name=f"L{i}") for i in range(3)]
        sem: Any = dl.Semaphore(permits, name="S")
        rlock: Any = dl.RLock(name="R")
        barrier: Any = dl.Barrier(len(ops), name="end")
    else:
        locks = [asyncio.Lock() for _ in range(3)]
        sem = asyncio.Semaphore(permits)
        rlock = asyncio.Lock()  # re-entry is a no-op in the model
        barrier = asyncio.Barrier(len(ops))
    made: list[Any] = []
    for c in channels:
        spawner = c.waiter if c.kind == "baton" else c.setter
        who = [names[spawner]] if c.declare else None
        if c.kind == "event":
            made.append(dl.Event(setters=who) if traced else asyncio.Event())
        elif c.kind == "queue":
            made.append(dl.Queue(producers=who) if traced else asyncio.Queue())
        elif c.kind == "countdown":
            made.append(
                dl.CountdownEvent(c.count, signalers=who) if traced else PlainCountdown(c.count)
            )
        else:
            start = 1 if c.kind == "baton" else 0
            made.append(dl.Semaphore(start, releasers=who) if traced else asyncio.Semaphore(start))

    def note(what: str) -> None:
        log.append((asyncio.get_running_loop().time(), what))

    async def fire(c: Channel, thing: Any, who: str) -> None:
        await asyncio.sleep(c.delay)
        for k in range(c.count if c.kind in ("queue", "signal", "countdown") else 1):
            if c.kind == "event":
                thing.set()
            elif c.kind == "countdown":
                thing.signal()
            elif c.kind == "queue":
                await thing.put(k)
            else:
                thing.release()
        note(f"{who} fired {c.kind}")

    async def take(c: Channel, thing: Any, who: str) -> None:
        for _ in range(c.count if c.kind in ("queue", "signal") else 1):
            if c.kind in ("event", "countdown"):
                await thing.wait()
            elif c.kind == "queue":
                await thing.get()
            else:
                await thing.acquire()
        note(f"{who} took {c.kind}")

    async def run_op(op: Any, who: str) -> None:
        if op[0] == "sleep":
            await asyncio.sleep(op[1])
        elif op[0] == "sem":
            async with sem:
                await asyncio.sleep(op[1])
        elif op[0] == "cross":
            async with locks[max(op[1])]:
                await asyncio.sleep(op[2])
                try:
                    async with asyncio.timeout(0.25):
                        await locks[min(op[1])].acquire()
                except TimeoutError:
                    note(f"{who} gave up")
                else:
                    locks[min(op[1])].release()
        elif op[0] == "tcross":  # the same, with acquire(timeout=) on the traced side
            async with locks[max(op[1])]:
                await asyncio.sleep(op[2])
                if traced:
                    got = await locks[min(op[1])].acquire(timeout=0.25)
                else:
                    try:
                        async with asyncio.timeout(0.25):
                            got = await locks[min(op[1])].acquire()
                    except TimeoutError:
                        got = False
                if got:
                    locks[min(op[1])].release()
                else:
                    note(f"{who} gave up")
        elif op[0] == "rlock":
            async with rlock:
                await asyncio.sleep(op[1])
                if traced:
                    async with rlock:  # re-entry
                        await asyncio.sleep(0)
                else:
                    await asyncio.sleep(0)
        elif op[0] == "try":
            lock = locks[op[1]]
            # the model: asyncio's own fast path (free, and no waiter queued, even one woken)
            ok = lock.try_acquire() if traced else not lock.locked() and not lock._waiters
            if ok and not traced:
                await lock.acquire()  # free, so this does not wait (the model's try)
            if ok:
                await asyncio.sleep(op[2])
                lock.release()
            note(f"{who} try {'took' if ok else 'missed'}")
        else:
            held = [locks[i] for i in sorted(op[1])]
            for lock in held:
                await lock.acquire()
            await asyncio.sleep(op[2])
            for lock in reversed(held):
                lock.release()
        note(f"{who} {op[0]}")

    async def worker(i: int) -> str:
        who = names[i]
        pairs = list(zip(channels, made, strict=True))
        children = [
            asyncio.create_task(fire(c, t, f"{who}.send"), name=f"{who}.send")
            for c, t in pairs
            if c.delegate and i == (c.waiter if c.kind == "baton" else c.setter)
        ]
        for c, t in pairs:
            if c.kind == "baton" and c.setter == i:
                await t.acquire()  # taken here, released by the child for the waiter
        for pos in range(len(ops[i]) + 1):
            for c, thing in zip(channels, made, strict=True):
                if c.waiter == i and c.wait_at == pos:
                    await take(c, thing, who)
                if c.setter == i and c.set_at == pos and not c.delegate:
                    await fire(c, thing, who)
            if pos < len(ops[i]):
                await run_op(ops[i][pos], who)
        if meet:
            await barrier.wait()
            note(f"{who} met")
        for child in children:
            await child
        return who

    return [worker(i) for i in range(len(ops))], log


@settings(max_examples=80, deadline=None, derandomize=True)
@given(programs())
def test_correct_programs_never_raise_an_alarm(spec: Any) -> None:
    async def traced() -> tuple[list[Any], dl.DeadlockReport, list]:
        coros, log = build(spec, traced=True)
        names = [f"w{i}" for i in range(len(coros))]
        results, report = await dl.supervise(*coros, names=names)
        return results, report, log

    async def plain() -> tuple[list[Any], list]:
        coros, log = build(spec, traced=False)
        return await asyncio.gather(*coros), log

    results, report, log = run_virtual(traced())
    model_results, model_log = run_virtual(plain())
    assert not report.deadlocked, report.explain()
    assert results == model_results
    assert sorted(log) == sorted(model_log)


@settings(max_examples=15, deadline=None, derandomize=True)
@given(programs())
def test_no_explored_schedule_of_a_correct_program_is_called_a_deadlock(spec: Any) -> None:
    async def program() -> list[Any]:
        coros, _ = build(spec, traced=True)
        return await dl.watch(*coros, names=[f"w{i}" for i in range(len(coros))])

    found = explore(program, strategy="random", max_schedules=8, seed=1)
    assert found.deadlocks == 0 and found.failures == 0, found.first_failure
