"""The scenario bodies: eight classic asyncio deadlocks, each with a broken and a fixed variant.

Design
------
Each scenario is a function ``build(fixed) -> (coroutines, names)`` that makes fresh traced
primitives and the coroutines of one run; :mod:`flowlab.study.deadlock.scenarios` runs them under the
detector (or, for a bug that is not a deadlock, under the explorer: ``finder="explorer"``).
``fixed`` is ``False`` (broken), ``True`` (the fix) or the name of another fix listed in
``Scenario.fixes`` (the dining philosophers have two). More bodies live in
:mod:`flowlab.study.deadlock.classics` (The Little Book of Semaphores, Prefect) and
:mod:`flowlab.study.deadlock.races` (interleaving bugs that only the explorer finds). Durations are a few tenths of a second, so a scenario finishes instantly on virtual
time and in well under a second on the real clock. The broken and fixed variants differ only in
the lines the ``fix`` text names, so a learner can diff them.
"""

from __future__ import annotations

import asyncio
import inspect
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from flowlab.errors import check_one_of
from flowlab.study.deadlock.channels import Event, Queue
from flowlab.study.deadlock.primitives import Lock, Semaphore

__all__ = ["FINDERS", "Build", "Scenario"]

Coro = Coroutine[Any, Any, Any]
Build = Callable[[Any], tuple[list[Coro], list[str]]]
FINDERS = ("detector", "explorer")


@dataclass(frozen=True)
class Scenario:
    """One catalog entry: what it shows, what goes wrong, what fixes it, and its body.

    Attributes
    ----------
    finder : {"detector", "explorer"}
        What finds the broken variant: the deadlock detector (it hangs), or the schedule
        explorer (a race that fails only under some interleavings and never hangs).
    fixes : dict of str to str
        Further fixes by name (``run(name, fixed="footman")``); ``fix`` is the main one.
    """

    name: str
    title: str
    primitives: str
    problem: str
    fix: str
    build: Build = field(repr=False)
    note: str = ""
    finder: str = "detector"
    fixes: dict[str, str] = field(default_factory=dict)

    @property
    def source(self) -> str:
        """The body's source code: the broken and fixed variants differ where ``fixed`` is read."""
        return inspect.getsource(self.build)

    @property
    def variants(self) -> list[bool | str]:
        """``[False, True, *fixes]``: every value ``fixed`` accepts."""
        return [False, True, *self.fixes]

    def variant(self, fixed: bool | str) -> bool | str:
        """Check ``fixed`` (``False``, ``True`` or a name from :attr:`fixes`) and return it."""
        if isinstance(fixed, str):
            check_one_of("fixed", fixed, list(self.fixes), hint=f"fixes of {self.name}")
        return fixed

    def fix_text(self, fixed: bool | str) -> str:
        """What the fix ``fixed`` changes (the main ``fix`` for ``True``)."""
        return self.fixes[fixed] if isinstance(fixed, str) else self.fix


def governor(fixed: bool) -> tuple[list[Coro], list[str]]:
    """A mini parallel executor: concurrency semaphore, completion lock, usage-breach event."""
    branches = {"a": (1.0, 0.6), "b": (0.5, 0.6), "c": (0.2, 0.1)}  # name: (seconds, cost)
    limit = 1.0
    concurrency = Semaphore(2, name="concurrency")
    completion_lock = Lock(name="completion_lock")
    limit_breached = Event(name="limit_breached", setters=list(branches))
    state: dict[str, Any] = {"spent": 0.0, "pending": len(branches)}

    async def branch(name: str, seconds: float, cost: float) -> str:
        async with concurrency:
            await asyncio.sleep(seconds)  # the branch's step runs
            async with completion_lock:  # record its charge and its completion
                state["spent"] += cost
                state["pending"] -= 1
                if state["spent"] > limit:
                    limit_breached.set()
                elif not fixed and state["pending"] and state["spent"] > limit / 2:
                    # Near the budget: wait to learn whether a sibling breaches, lock still held.
                    await limit_breached.wait()
        return "breached" if limit_breached.is_set() else "ok"

    coros = [branch(n, s, c) for n, (s, c) in branches.items()]
    return coros, list(branches)


def lock_order(fixed: bool) -> tuple[list[Coro], list[str]]:
    """Two transfers lock the two accounts in opposite orders."""
    locks = {"alice": Lock(name="alice"), "bob": Lock(name="bob")}

    async def transfer(src: str, dst: str) -> str:
        first, second = sorted((src, dst)) if fixed else (src, dst)
        async with locks[first]:
            await asyncio.sleep(0.1)  # read the balance
            async with locks[second]:
                return f"{src}->{dst}"

    return [transfer("alice", "bob"), transfer("bob", "alice")], ["alice_to_bob", "bob_to_alice"]


def nested_semaphore(fixed: bool) -> tuple[list[Coro], list[str]]:
    """Parents hold a slot of a shared limiter while waiting for children that need one."""
    slots = Semaphore(2, name="slots")

    async def child() -> None:
        async with slots:
            await asyncio.sleep(0.1)

    async def parent(name: str) -> None:
        await slots.acquire()
        await asyncio.sleep(0.1)  # the parent's own work
        if fixed:
            slots.release()  # a branch waiting for its own children holds no slot
        kids = [asyncio.create_task(child(), name=f"{name}.child{i}") for i in (1, 2)]
        await asyncio.gather(*kids)
        if not fixed:
            slots.release()

    return [parent("parent1"), parent("parent2")], ["parent1", "parent2"]


def lost_wakeup(fixed: bool) -> tuple[list[Coro], list[str]]:
    """The producer pulses an event (set, then clear) before the consumer starts waiting."""
    ready = Event(name="ready", setters=["producer"])
    box: list[str] = []

    async def producer() -> None:
        await asyncio.sleep(0.1)
        box.append("data")
        ready.set()
        if not fixed:
            ready.clear()  # "notify" as a pulse: only tasks already waiting see it

    async def consumer() -> str:
        await asyncio.sleep(0.2)  # busy with something else when the pulse comes
        await ready.wait()
        if fixed:
            ready.clear()  # the consumer resets the flag after taking the data
        return box.pop()

    return [producer(), consumer()], ["producer", "consumer"]


def await_cycle(fixed: bool) -> tuple[list[Coro], list[str]]:
    """Two tasks await each other's result."""
    handles: dict[str, asyncio.Task[Any]] = {}

    async def fetch_user() -> dict[str, Any]:
        await asyncio.sleep(0.1)
        orders = None if fixed else await handles["fetch_orders"]  # wants an order count
        return {"user": 42, "orders": orders}

    async def fetch_orders() -> list[int]:
        await asyncio.sleep(0.1)
        user = await handles["fetch_user"]  # needs the user id
        return [user["user"] * 10]

    async def root() -> list[Any]:
        handles["fetch_user"] = asyncio.create_task(fetch_user(), name="fetch_user")
        handles["fetch_orders"] = asyncio.create_task(fetch_orders(), name="fetch_orders")
        return list(await asyncio.gather(handles["fetch_user"], handles["fetch_orders"]))

    return [root()], ["root"]


def pool_exhaustion(fixed: bool) -> tuple[list[Coro], list[str]]:
    """Jobs running in a 2-worker pool submit nested jobs to the same pool and wait for them."""
    workers = ["pool-worker-1", "pool-worker-2"]
    work: Queue[tuple[str, Callable[[], Coro], Event] | None] = Queue(
        name="work_queue", producers=["submitter", *workers], consumers=workers
    )

    def submit(name: str, body: Callable[[], Coro]) -> Event:
        done = Event(name=f"{name} result", setters=workers)
        work.put_nowait((name, body, done))
        return done

    async def inner() -> None:
        await asyncio.sleep(0.1)

    def outer(i: int) -> Callable[[], Coro]:
        async def body() -> None:
            await asyncio.sleep(0.1)
            if fixed:
                await inner()  # nested work runs inline in the caller's worker
            else:
                await submit(f"inner-{i}", inner).wait()  # blocks this worker on queued work

        return body

    async def worker() -> None:
        while (job := await work.get()) is not None:
            _, body, done = job
            await body()
            done.set()

    async def submitter() -> None:
        pending = [submit(f"outer-{i}", outer(i)) for i in (1, 2)]
        for done in pending:
            await done.wait()
        for _ in workers:
            work.put_nowait(None)

    return [submitter(), worker(), worker()], ["submitter", *workers]


def dining_philosophers(fixed: bool | str) -> tuple[list[Coro], list[str]]:
    """Five philosophers each take the left fork, then the right one."""
    n = 5
    forks = [Lock(name=f"fork{i}") for i in range(n)]
    footman = Semaphore(n - 1, name="footman")  # fixed="footman": at most four at the table
    ordered = bool(fixed) and fixed != "footman"

    async def philosopher(i: int) -> None:
        left, right = i, (i + 1) % n
        first, second = (min(left, right), max(left, right)) if ordered else (left, right)
        if fixed == "footman":
            await footman.acquire()
        async with forks[first]:
            await asyncio.sleep(0.1)
            async with forks[second]:
                await asyncio.sleep(0.1)  # eat
        if fixed == "footman":
            footman.release()

    return [philosopher(i) for i in range(n)], [f"philosopher{i}" for i in range(n)]


def producer_consumer(fixed: bool) -> tuple[list[Coro], list[str]]:
    """A bounded buffer (The Little Book of Semaphores): the consumer takes the mutex too early."""
    mutex = Lock(name="mutex")
    items = Semaphore(0, name="items", releasers=["producer"])
    spaces = Semaphore(2, name="spaces", releasers=["consumer"])
    buffer: deque[int] = deque()

    async def producer() -> None:
        for i in range(4):
            await asyncio.sleep(0.1)  # make an item
            await spaces.acquire()
            async with mutex:
                buffer.append(i)
            items.release()

    async def consumer() -> list[int]:
        got = []
        for _ in range(4):
            if fixed:
                await items.acquire()  # wait for an item first ...
                async with mutex:  # ... then take the mutex
                    got.append(buffer.popleft())
            else:
                async with mutex:  # takes the mutex ...
                    await items.acquire()  # ... then waits for an item, mutex held
                    got.append(buffer.popleft())
            spaces.release()
        return got

    return [producer(), consumer()], ["producer", "consumer"]
