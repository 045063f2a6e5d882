"""More scenario bodies: The Little Book of Semaphores' classics and two Prefect hangs.

Design
------
Same shape as :mod:`flowlab.study.deadlock.bodies`: ``build(fixed) -> (coroutines, names)`` with
fresh traced primitives, a few tenths of a virtual second long, the broken and fixed variants
differing only where ``fixed`` is read. Each of these hangs, so the detector finds it; the texts
that go with them are in :mod:`flowlab.study.deadlock.scenarios`.

The two Prefect scenarios model a thread pool with traced primitives (worker tasks pulling jobs
from a traced :class:`~flowlab.study.deadlock.channels.Queue`), because a thread blocked in
``future.result()`` cannot be observed from the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from flowlab.study.deadlock.bodies import Coro
from flowlab.study.deadlock.channels import Event, Queue
from flowlab.study.deadlock.primitives import Lock, Semaphore

__all__ = [
    "bounded_queue_cycle",
    "nested_pool",
    "rendezvous",
    "reusable_barrier",
    "self_deadlock",
    "slot_held",
]

Built = tuple[list[Coro], list[str]]


def rendezvous(fixed: bool) -> Built:
    """Two tasks meet: each must reach its rendezvous before either goes on."""
    a_arrived = Semaphore(0, name="a_arrived", releasers=["a"])
    b_arrived = Semaphore(0, name="b_arrived", releasers=["b"])
    log: list[str] = []

    async def a() -> None:
        await asyncio.sleep(0.1)
        log.append("a1")
        if fixed:
            a_arrived.release()  # say "I am here" first ...
            await b_arrived.acquire()  # ... then wait for the other
        else:
            await b_arrived.acquire()  # wait for b first: b does the same
            a_arrived.release()
        log.append("a2")

    async def b() -> None:
        await asyncio.sleep(0.2)
        log.append("b1")
        if fixed:
            b_arrived.release()
            await a_arrived.acquire()
        else:
            await a_arrived.acquire()
            b_arrived.release()
        log.append("b2")

    return [a(), b()], ["a", "b"]


def reusable_barrier(fixed: bool) -> Built:
    """Three workers meet at a two-phase barrier (turnstiles) in each of two rounds."""
    n = 3
    mutex = Lock(name="mutex")
    names = [f"worker{i}" for i in range(n)]
    turnstile = Semaphore(0, name="turnstile", releasers=names)
    turnstile2 = Semaphore(1, name="turnstile2", releasers=names)
    count = [0]

    async def worker(i: int) -> int:
        for _ in range(2):
            await asyncio.sleep(0.1 * (i + 1))  # this round's work
            async with mutex:
                count[0] += 1
                if count[0] == n:  # the last to arrive locks turnstile2, opens turnstile
                    await turnstile2.acquire()
                    turnstile.release()
            await turnstile.acquire()
            if fixed:
                turnstile.release()  # let the next one through
            async with mutex:
                count[0] -= 1
                if count[0] == 0:  # the last to leave locks turnstile, opens turnstile2
                    await turnstile.acquire()
                    turnstile2.release()
            await turnstile2.acquire()
            if fixed:
                turnstile2.release()
        return i

    return [worker(i) for i in range(n)], names


def self_deadlock(fixed: bool) -> Built:
    """A task holding a semaphore calls a helper that takes the same semaphore again."""
    db = Semaphore(1, name="db")
    rows: list[str] = []

    async def log(message: str, *, holding: bool) -> None:
        if holding:  # the caller already holds db
            rows.append(message)
            return
        async with db:  # takes db: the caller holds it, so this waits for the caller
            rows.append(message)

    async def save(item: str) -> list[str]:
        async with db:
            await asyncio.sleep(0.1)
            rows.append(item)
            await log(f"saved {item}", holding=fixed)
        return rows

    return [save("order-1")], ["save"]


def bounded_queue_cycle(fixed: bool) -> Built:
    """Two peers each send three messages to the other's one-slot inbox, then read theirs."""
    to_b: Queue[int] = Queue(1, name="to_b", producers=["a"], consumers=["b"])
    to_a: Queue[int] = Queue(1, name="to_a", producers=["b"], consumers=["a"])

    async def peer(out: Queue[int], inbox: Queue[int]) -> list[int]:
        got: list[int] = []
        await asyncio.sleep(0.1)
        for i in range(3):
            await out.put(i)  # broken: the second put waits for the peer to read ...
            if fixed:
                got.append(await inbox.get())  # send one, receive one
        if not fixed:
            got = [await inbox.get() for _ in range(3)]  # ... which it does only after sending
        return got

    return [peer(to_b, to_a), peer(to_a, to_b)], ["a", "b"]


class _Pool:
    """A modelled thread pool: ``workers`` tasks run submitted jobs from a traced queue."""

    def __init__(self, workers: list[str], submitters: list[str]) -> None:
        self.workers = workers
        self.jobs: Queue[tuple[Callable[[], Coro], Event, list[Any]] | None] = Queue(
            name="pool_queue", producers=[*submitters, *workers], consumers=workers
        )

    def submit(self, name: str, body: Callable[[], Coro]) -> tuple[Event, list[Any]]:
        done, box = Event(name=f"{name} result", setters=self.workers), list[Any]()
        self.jobs.put_nowait((body, done, box))
        return done, box

    async def worker(self) -> None:
        while (job := await self.jobs.get()) is not None:
            body, done, box = job
            box.append(await body())
            done.set()

    def shutdown(self) -> None:
        for _ in self.workers:
            self.jobs.put_nowait(None)


def nested_pool(fixed: bool) -> Built:
    """Prefect #17060: pool tasks spawn child tasks into the same two-thread pool and wait."""
    workers = ["thread-1", "thread-2"]
    pool = _Pool(workers, ["flow"])

    def dependent_task(n: int) -> Callable[[], Coro]:
        async def body() -> int:
            await asyncio.sleep(0.1)
            return n

        return body

    async def task_spawner(n: int) -> list[int]:  # a plain function, not a task
        futures = [pool.submit(f"dependent_task({n})#{k}", dependent_task(n)) for k in (1, 2)]
        for done, _ in futures:
            await done.wait()  # broken: a pool thread blocks here on queued children
        return [box[0] for _, box in futures]

    def initial_task(n: int) -> Callable[[], Coro]:
        async def body() -> Any:
            await asyncio.sleep(0.1 * n)
            return n if fixed else await task_spawner(n)

        return body

    async def flow() -> list[Any]:
        parents = [pool.submit(f"initial_task({n})", initial_task(n)) for n in (1, 2, 3)]
        results = []
        for done, box in parents:
            await done.wait()
            results.append(await task_spawner(box[0]) if fixed else box[0])
        pool.shutdown()
        return results

    return [flow(), pool.worker(), pool.worker()], ["flow", *workers]


def slot_held(fixed: bool) -> Built:
    """Prefect #17686: submitted tasks take their tag's concurrency slot, then wait upstream."""
    deps = {"load_a": ["extract"], "load_b": ["extract"], "extract": []}
    start = {"load_a": 0.0, "load_b": 0.0, "extract": 0.1}  # the waiting ones come first
    slots = Semaphore(2, name="tag 'db' slots")
    done = {name: Event(name=f"{name} done", setters=[name]) for name in deps}

    async def task_run(name: str) -> str:
        await asyncio.sleep(start[name])
        if fixed:
            for upstream in deps[name]:  # wait for wait_for= first, holding nothing
                await done[upstream].wait()
        async with slots:
            if not fixed:
                for upstream in deps[name]:  # holds a slot while its upstream needs one
                    await done[upstream].wait()
            await asyncio.sleep(0.2)  # the task's own work
        done[name].set()
        return name

    return [task_run(name) for name in deps], list(deps)
