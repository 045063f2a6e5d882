"""Random small programs over every kind of primitive, runnable on flowlab's or on asyncio's.

A program is plain data (a list of operations per task), so the same program runs twice: on
flowlab's traced primitives and on asyncio's own (the independent model,
:mod:`asyncio_model`). Operations:

``lock i [body]`` ``async with L[i]``; ``sem [body]`` ``async with S`` (a ``Semaphore`` or
``BoundedSemaphore`` of 1 or 2 permits); ``wf_lock i t [body]`` ``wait_for(L[i].acquire(), t)``;
``wf_body t [body]`` ``wait_for`` around a whole block; ``set/clear/wait j`` on event ``E[j]``;
``twait j t`` a wait under ``asyncio.timeout``; ``notify n`` (``n=0``: ``notify_all``) and
``cwait k`` (``wait_for(count >= k)``) / ``cwait_bare`` (a bare ``wait``: a lost wake-up is
possible) on one ``Condition``; ``signal`` / ``take`` on a ``Semaphore(0)`` used as a signal;
``spawn [body]`` a child task awaited when its parent ends; ``gather [a] [b]`` and
``group [a] [b]`` (``asyncio.TaskGroup``) run two children and wait for both;
``cancel_acq i`` a child that queues on ``L[i]`` and is cancelled while it may still wait;
``yield`` and ``sleep d``.

A wait with nobody to wake it is usually paired with a waker in another task, so that most
programs can finish under some schedule and hang under another. Half the programs declare, on
the traced side, which root tasks set each event, notify the condition and release the signal
(``setters=`` / ``notifiers=`` / ``releasers=``), so that partial deadlocks are called early.
Every timed operation gets its own power-of-two offset so that no two timers ever tie.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import flowlab.deadlock as dl

Op = tuple[Any, ...]
Spec = dict[str, Any]

KINDS = [
    "lock", "lock", "sem", "yield", "set", "clear", "wait", "twait", "notify", "cwait",
    "cwait_bare", "signal", "take", "spawn", "gather", "group", "sleep", "wf_lock", "wf_body",
    "cancel_acq",
]  # fmt: skip
_BLOCKS = ("lock", "sem", "wf_lock", "wf_body", "spawn", "gather", "group")
_PAIRS = [
    ("'wait', 0", ("set", 0)),
    ("'wait', 1", ("set", 1)),
    ("'twait', 0", ("set", 0)),
    ("'twait', 1", ("set", 1)),
    ("'take'", ("signal",)),
    ("'cwait'", ("notify", 0)),
    ("'cwait_bare'", ("notify", 1)),
]


def _op(rng: random.Random, kind: str, depth: int) -> Op | None:
    def body(most: int) -> list[Op]:
        return ops(rng, depth + 1, rng.randint(0, most))

    if kind in _BLOCKS and depth >= (1 if kind in ("spawn", "gather", "group") else 2):
        return None
    simple: dict[str, Op] = {
        "lock": ("lock", rng.randrange(3), body(2)) if kind == "lock" else (),
        "sem": ("sem", body(2)) if kind == "sem" else (),
        "wf_lock": ("wf_lock", rng.randrange(3), rng.choice([0.5, 1.0]), body(1))
        if kind == "wf_lock"
        else (),
        "wf_body": ("wf_body", rng.choice([0.5, 1.0]), body(2)) if kind == "wf_body" else (),
        "spawn": ("spawn", body(2)) if kind == "spawn" else (),
        "gather": ("gather", body(2), body(2)) if kind == "gather" else (),
        "group": ("group", body(2), body(2)) if kind == "group" else (),
    }
    if kind in simple:
        return simple[kind]
    if kind in ("set", "clear", "wait"):
        return (kind, rng.randrange(2))
    if kind == "twait":
        return (kind, rng.randrange(2), rng.choice([0.5, 1.0]))
    if kind == "notify":
        return (kind, rng.choice([0, 1, 2]))
    if kind == "cwait":
        return (kind, rng.randint(1, 2))
    if kind == "sleep":
        return (kind, rng.choice([0.0, 0.5]))
    if kind == "cancel_acq":
        return (kind, rng.randrange(3))
    return (kind,)


def ops(rng: random.Random, depth: int, n: int, kinds: list[str] | None = None) -> list[Op]:
    """``n`` random operations (fewer when a block may not nest this deep)."""
    out = [_op(rng, rng.choice(kinds or KINDS), depth) for _ in range(n)]
    return [op for op in out if op is not None]


_TIMED = {"wf_lock": 2, "wf_body": 1, "twait": 2, "sleep": 1}  # op -> index of its seconds


def _distinct(bodies: list[list[Op]], counter: list[int]) -> list[list[Op]]:
    """Give every timed op its own power of two on top of its seconds.

    Two timers due at the same instant fire in an order asyncio does not define (a heap), so
    programs never tie: every moment a timer fires at is a distinct sum of distinct powers.
    """
    out = []
    for body in bodies:
        new: list[Op] = []
        for op in body:
            items = [_distinct([x], counter)[0] if isinstance(x, list) else x for x in op]
            at = _TIMED.get(op[0])
            if at is not None and items[at] > 0:
                counter[0] += 1
                items[at] += 2.0 ** -(counter[0] + 10)
            new.append(tuple(items))
        out.append(new)
    return out


def program(seed: int, *, tasks: tuple[int, int] = (2, 3), most: int = 3) -> Spec:
    """The program of ``seed``: 2-3 tasks of 1-``most`` operations, waits mostly paired."""
    rng = random.Random(seed)
    bodies = [ops(rng, 0, rng.randint(1, most)) for _ in range(rng.randint(*tasks))]
    text = [repr(b) for b in bodies]
    for needle, waker in _PAIRS:
        for i, t in enumerate(text):
            if needle in t and rng.random() < 0.85:
                j = rng.choice([x for x in range(len(bodies)) if x != i])
                bodies[j].insert(rng.randint(0, len(bodies[j])), waker)
    return {
        "tasks": _distinct(bodies, [0]),
        "permits": rng.randint(1, 2),
        "bounded": rng.random() < 0.5,
        "declare": rng.random() < 0.5,
    }


class Prims:
    """The primitives of one run, traced (flowlab) or plain (asyncio), and the shared count."""

    def __init__(self, spec: Spec, traced: bool) -> None:
        if traced:
            who = _wakers(spec) if spec.get("declare") else {}
            self.locks: list[Any] = [dl.Lock(name=f"L{i}") for i in range(3)]
            sem: Any = dl.BoundedSemaphore if spec["bounded"] else dl.Semaphore
            self.sem = sem(spec["permits"], name="S")
            self.events: list[Any] = [
                dl.Event(name=f"E{i}", setters=who.get(("set", i))) for i in range(2)
            ]
            self.cond: Any = dl.Condition(name="C", notifiers=who.get(("notify",)))
            self.signal: Any = dl.Semaphore(0, name="G", releasers=who.get(("signal",)))
        else:
            self.locks = [asyncio.Lock() for _ in range(3)]
            sem = asyncio.BoundedSemaphore if spec["bounded"] else asyncio.Semaphore
            self.sem = sem(spec["permits"])
            self.events = [asyncio.Event() for _ in range(2)]
            self.cond = asyncio.Condition()
            self.signal = asyncio.Semaphore(0)
        self.count = 0
        self.log: list[str] = []
        self.holder: dict[str, str] = {}  # lock name -> task name, kept by the program itself
        self.waiting: dict[str, str] = {}  # task name -> lock name it queues on
        self.sem_holders: list[str] = []  # tasks inside ``async with S``


async def _locked(p: Prims, i: int, who: str, body: list[Op], kids: list[Any]) -> None:
    p.waiting[who] = f"L{i}"
    try:
        await p.locks[i].acquire()
    finally:
        del p.waiting[who]
    p.holder[f"L{i}"] = who
    p.log.append(f"{who}+L{i}")
    try:
        await run(body, p, who, kids)
    finally:
        del p.holder[f"L{i}"]
        p.locks[i].release()


async def _block(op: Op, p: Prims, who: str, kids: list[Any]) -> None:
    kind = op[0]
    if kind == "lock":
        await _locked(p, op[1], who, op[2], kids)
    elif kind == "sem":
        async with p.sem:
            p.sem_holders.append(who)
            p.log.append(f"{who}+S")
            try:
                await run(op[1], p, who, kids)
            finally:
                p.sem_holders.remove(who)
    elif kind == "wf_lock":
        grab = asyncio.create_task(p.locks[op[1]].acquire(), name=f"{who}/acq")
        try:
            await asyncio.wait_for(grab, op[2])
        except TimeoutError:
            p.log.append(f"{who}~L{op[1]}")
            return
        p.holder[f"L{op[1]}"] = f"{who}/acq"  # the helper task acquired it; we release it
        p.log.append(f"{who}+L{op[1]}")
        try:
            await run(op[3], p, who, kids)
        finally:
            del p.holder[f"L{op[1]}"]
            p.locks[op[1]].release()
    elif kind == "wf_body":
        inner = asyncio.create_task(run(op[2], p, f"{who}/w", []), name=f"{who}/w")
        try:
            await asyncio.wait_for(inner, op[1])
        except TimeoutError:
            p.log.append(f"{who}~w")
    elif kind == "spawn":
        name = f"{who}.{len(kids)}"
        kids.append(asyncio.create_task(task(op[1], p, name), name=name))
    elif kind == "gather":
        await asyncio.gather(*[_named(b, p, f"{who}.g{i}") for i, b in enumerate(op[1:])])
    elif kind == "group":
        async with asyncio.TaskGroup() as tg:
            for i, b in enumerate(op[1:]):
                tg.create_task(task(b, p, f"{who}.t{i}"), name=f"{who}.t{i}")


def _named(body: list[Op], p: Prims, who: str) -> asyncio.Task[None]:
    return asyncio.create_task(task(body, p, who), name=who)


async def _cancel_acq(p: Prims, i: int, who: str) -> None:
    child = asyncio.create_task(_locked(p, i, f"{who}/grab", [("yield",)], []), name=f"{who}/grab")
    await asyncio.sleep(0)
    child.cancel()
    try:
        await child
    except asyncio.CancelledError:
        pass
    p.log.append(f"{who}x")


async def _wait(op: Op, p: Prims, who: str) -> None:
    kind = op[0]
    if kind == "wait":
        await p.events[op[1]].wait()
        p.log.append(f"{who}:E{op[1]}")
    elif kind == "twait":
        try:
            async with asyncio.timeout(op[2]):
                await p.events[op[1]].wait()
            p.log.append(f"{who}:E{op[1]}")
        except TimeoutError:
            p.log.append(f"{who}~E{op[1]}")
    elif kind == "cwait":
        async with p.cond:
            await p.cond.wait_for(lambda: p.count >= op[1])
            p.log.append(f"{who}:C")
    elif kind == "cwait_bare":
        async with p.cond:
            await p.cond.wait()
            p.log.append(f"{who}:C")
    elif kind == "take":
        await p.signal.acquire()
        p.log.append(f"{who}:G")


async def run(body: list[Op], p: Prims, who: str, kids: list[Any]) -> None:
    """Run ``body`` as task ``who``; spawned children go to ``kids``."""
    for op in body:
        kind = op[0]
        if kind in _BLOCKS:
            await _block(op, p, who, kids)
        elif kind in ("wait", "twait", "cwait", "cwait_bare", "take"):
            await _wait(op, p, who)
        elif kind == "yield":
            await asyncio.sleep(0)
        elif kind == "sleep":
            await asyncio.sleep(op[1])
        elif kind == "set":
            p.events[op[1]].set()
        elif kind == "clear":
            p.events[op[1]].clear()
        elif kind == "notify":
            async with p.cond:
                p.count += 1
                if op[1]:
                    p.cond.notify(op[1])
                else:
                    p.cond.notify_all()
        elif kind == "signal":
            p.signal.release()
        elif kind == "cancel_acq":
            await _cancel_acq(p, op[1], who)


async def task(body: list[Op], p: Prims, who: str) -> None:
    """A task of the program: its body, then the children it spawned."""
    kids: list[Any] = []
    await run(body, p, who, kids)
    for kid in kids:
        await kid


def build(spec: Spec, traced: bool) -> tuple[list[Any], list[str], Prims]:
    """The program's root coroutines, their names, and its primitives (with the log)."""
    p = Prims(spec, traced)
    names = [f"w{i}" for i in range(len(spec["tasks"]))]
    return [task(b, p, names[i]) for i, b in enumerate(spec["tasks"])], names, p


def _wakers(spec: Spec) -> dict[tuple[Any, ...], list[str]]:
    """The root tasks whose bodies (children included) set each event, notify, or signal.

    A declared name covers the tasks that task creates, so declaring the roots is exact.
    """
    out: dict[tuple[Any, ...], list[str]] = {}

    def walk(body: list[Op], root: str) -> None:
        for op in body:
            key = ("set", op[1]) if op[0] == "set" else (op[0],)
            if op[0] in ("set", "notify", "signal") and root not in out.setdefault(key, []):
                out[key].append(root)
            for part in op[1:]:
                if isinstance(part, list):
                    walk(part, root)

    for i, body in enumerate(spec["tasks"]):
        walk(body, f"w{i}")
    return out
