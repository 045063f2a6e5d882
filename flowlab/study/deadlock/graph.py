"""Wait-for graph analysis: which tasks can never run again, and the cycle that explains why.

Design
------
A task is a *candidate* when it is blocked on a traced primitive (the registry knows the resource,
the operation and the line) or awaits other tasks of the watched group (``await task``,
``gather(...)`` nested or not, the end of an ``asyncio.TaskGroup``; see
:mod:`flowlab.study.deadlock.awaits`). Every candidate has *wakers*:

* known wakers -- the holders of a lock / semaphore, the declared setters of an event, the awaited
  tasks. The candidate can progress if any known waker is alive and not itself stuck.
* unknown wakers -- an event without declared setters, a semaphore not used as an owned lock
  (see :mod:`flowlab.study.deadlock.primitives`), a declaration contradicted by a task seen doing the
  waking action: any task could wake it, so the candidate can progress while any task of the
  group is alive and not stuck.

A declared waker name stands for that task *and every task it created* (delegation to a child);
tasks seen doing the waking action in this loop are wakers too. A candidate with a pending
deadline (``asyncio.timeout``, ``wait_for``, ``loop.call_later(d, task.cancel)``, or one on a task
that awaits it, since cancelling a task cancels what it awaits) is never stuck: its wait will end. If it would be stuck without the deadline, :attr:`Analysis.timed` names it, as information.

The stuck set is the greatest fixpoint: start from all candidates, drop every task that could
progress, repeat until nothing changes. What remains can never run again -- a cycle of holders
and waiters, or waiters whose only wakers have finished (an event nobody alive can set). This
catches partial deadlocks while unrelated tasks keep running, because a known waker that is stuck
does not count, however busy the rest of the program is.

Cycle search prefers known edges and avoids self-loops, so the reported cycle is the one a person
would draw. Its edges always lead to a task that holds (or was seen waking) what the previous one
waits for -- never through "any task could": without such a cycle the report follows the waits
to the resource nobody alive can wake (``kind="no_waker"``). Nothing iterates a set: order follows the group's declared order, then the registry.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from dataclasses import dataclass, field
from typing import Any

from flowlab.study.deadlock.awaits import awaited_tasks, deadlines, pending_wakes
from flowlab.study.deadlock.trace import Registry

__all__ = ["Analysis", "Edge", "StuckWait", "analyze"]

Task = asyncio.Task[Any]


@dataclass(slots=True)
class Edge:
    """One wait-for edge: task -> resource (``waits``), resource -> task (holder, setter...)."""

    source: str
    target: str
    kind: str
    where: str = ""
    in_cycle: bool = False


@dataclass(slots=True)
class StuckWait:
    """What a stuck task waits for and who could (but never will) wake it."""

    task: str
    op: str
    resource: str
    kind: str
    where: str
    since: float
    relation: str
    wakers: list[str] = field(default_factory=list)
    waker_where: list[str] = field(default_factory=list)
    waker_states: list[str] = field(default_factory=list)
    learned: list[str] = field(default_factory=list)
    known: bool = True
    holders: int = 0  # the first ``holders`` wakers hold the resource; the rest may wake it


@dataclass(slots=True)
class Analysis:
    """Result of :func:`analyze`."""

    deadlocked: bool
    stuck: list[str]
    waits: list[StuckWait]
    cycle: list[str]
    kind: str
    edges: list[Edge]
    timed: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    stuck_tasks: list[Task] = field(default_factory=list)
    recheck_at: float | None = None  # when a pending callback that may wake a wait has run


@dataclass(slots=True)
class _Node:
    task: Task
    targets: list[Task]
    known: bool
    info: StuckWait
    warning: str = ""
    resource: object = None  # the traced primitive it waits on (None: it awaits tasks)


def _descendants(roots: list[Task], kids: dict[Task, list[Task]]) -> list[Task]:
    """Every task created (directly or not) by one of ``roots``, breadth first."""
    out: list[Task] = []
    queue = list(roots)
    while queue:
        for child in kids.get(queue.pop(0), ()):
            if child not in out and child not in roots:
                out.append(child)
                queue.append(child)
    return out


def _awaited(task: Task, members: dict[Task, None]) -> list[Task] | None:
    """Group tasks that ``task`` awaits (directly, through ``gather`` or a ``TaskGroup``'s end);
    None if not awaiting only group tasks."""
    live = [t for t in awaited_tasks(task, members) or () if not t.done()]
    if not live or any(t not in members for t in live):
        return None
    return live


_ASYNCIO = os.path.dirname(os.path.abspath(asyncio.__file__))


def _suspended_at(task: Task) -> str:
    """``"file.py:12"`` of the innermost frame of ``task`` outside asyncio ("" if none)."""
    where = ""
    coro: Any = task.get_coro()
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None and not frame.f_code.co_filename.startswith(_ASYNCIO):
            where = f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno}"
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return where


def _node(
    task: Task,
    reg: Registry,
    members: dict[Task, None],
    by_name: dict[str, list[Task]],
    kids: dict[Task, list[Task]],
) -> _Node | None:
    wait = reg.wait_of(task)
    name = task.get_name()
    if wait is not None:
        wk = wait.resource.wakers(wait.op)
        targets: list[Task] = []
        where: list[str] = []
        known = wk.known
        for holder in wk.holders:
            if holder.task is None:
                known = False
            else:
                targets.append(holder.task)
                where.append(holder.where)
        holding = len(targets)
        named: list[Task] = []
        for declared in wk.declared:
            found = by_name.get(declared)
            if not found:
                known = False  # declared waker not in sight yet: it might still come
            named.extend(found or ())
        helpers = _descendants(named, kids)
        warning = ""
        for t in wk.observed:
            if wk.declared and t not in named and t not in helpers:
                known = False  # the declaration is incomplete: trust no list
                warning = (
                    f"{wait.resource.label} was declared {wk.relation} "
                    f"{', '.join(wk.declared)}, but task {t.get_name()} did it too; the "
                    "declaration is incomplete, so any live task counts as a possible waker"
                )
        for t in [*named, *helpers, *wk.observed]:
            if t not in targets:
                targets.append(t)
                where.append("")
        info = StuckWait(
            name,
            wait.op,
            wait.resource.label,
            wait.resource.kind,
            wait.where,
            wait.since,
            wk.relation,
            [t.get_name() for t in targets],
            where,
            learned=list(wk.learned),
            known=known,
            holders=holding,
        )
        return _Node(task, targets, known, info, warning, wait.resource)
    awaited = _awaited(task, members)
    if not awaited:
        return None
    label = ", ".join(t.get_name() for t in awaited)
    info = StuckWait(
        name,
        "await",
        f"Task '{label}'",
        "Task",
        _suspended_at(task),
        reg.loop.time(),
        "finished by",
        [t.get_name() for t in awaited],
        [""] * len(awaited),
    )
    return _Node(task, awaited, True, info)


def _find_cycle(start: Task, succ: dict[Task, list[Task]]) -> list[Task] | None:
    path: list[Task] = [start]
    on_path: dict[Task, int] = {start: 0}
    iters = [iter(succ.get(start, []))]
    while iters:
        nxt = next(iters[-1], None)
        if nxt is None:
            iters.pop()
            on_path.pop(path.pop(), None)
            continue
        if nxt is start:
            return [*path, start]
        if nxt in on_path:
            continue
        path.append(nxt)
        on_path[nxt] = len(path)
        iters.append(iter(succ.get(nxt, [])))
    return None


def analyze(group: list[Task], reg: Registry) -> Analysis:
    """Find the tasks of ``group`` that can never make progress (see the module docstring)."""
    members: dict[Task, None] = dict.fromkeys(group)
    kids: dict[Task, list[Task]] = {}
    for t in group:
        parent = reg.parents.get(t)
        if parent is not None:
            kids.setdefault(parent, []).append(t)
    universe = list(group) + [t for t in reg.blocked if t not in members]
    by_name: dict[str, list[Task]] = {}
    for t in universe:
        by_name.setdefault(t.get_name(), []).append(t)
    nodes: dict[Task, _Node] = {}
    for t in universe:
        if not t.done() and (node := _node(t, reg, members, by_name, kids)) is not None:
            nodes[t] = node
    timers = deadlines(reg.loop, nodes) if nodes else {}
    wakes, first_wake = pending_wakes(reg.loop) if nodes else ([], None)
    woken = [  # a pending callback acts on what they wait for, or may do anything
        t
        for t, n in nodes.items()
        if (n.resource is not None and n.resource in wakes) or (None in wakes and not n.known)
    ]
    stuck = _fixpoint(nodes, group, [t for t in nodes if t not in timers and t not in woken])
    timed: list[str] = []
    if any(t in timers for t in nodes):
        without = _fixpoint(nodes, group, [t for t in nodes if t not in woken])
        if any(t in without for t in group):
            timed = [t.get_name() for t in universe if t in without and t not in stuck]
    warnings = list(dict.fromkeys(n.warning for n in nodes.values() if n.warning))
    deadlocked = any(t in stuck for t in group)
    order = [t for t in universe if t in stuck]
    waits = []
    for t in order:
        info = nodes[t].info
        info.waker_states = [
            "blocked" if w in stuck else "finished" if w.done() else "running"
            for w in nodes[t].targets
        ]
        waits.append(info)
    cycle, kind = _explain_path(order, nodes, stuck) if deadlocked else ([], "none")
    edges = _edges(order, nodes, cycle)
    names = [t.get_name() for t in order]
    recheck = first_wake if woken else None
    return Analysis(deadlocked, names, waits, cycle, kind, edges, timed, warnings, order, recheck)


def _fixpoint(nodes: dict[Task, _Node], group: list[Task], start: list[Task]) -> dict[Task, None]:
    """Greatest fixpoint: drop every task that a live, unstuck waker could still wake."""
    stuck: dict[Task, None] = dict.fromkeys(start)
    changed = True
    while changed:
        changed = False
        for t in list(stuck):
            node = nodes[t]
            pool = node.targets if node.known else group
            if any(not w.done() and w not in stuck for w in pool):
                del stuck[t]
                changed = True
    return stuck


def _explain_path(
    order: list[Task], nodes: dict[Task, _Node], stuck: dict[Task, None]
) -> tuple[list[str], str]:
    # Edges to the tasks that hold or were seen waking what each one waits for. A wait anyone
    # could end (an event without setters, a lock whose holder finished) has no edge to the
    # other blocked tasks: a cycle through "anyone" would name tasks that hold nothing of it.
    mine = {t: [w for w in nodes[t].targets if w in stuck and w is not t] for t in order}
    known = {t: succ for t, succ in mine.items() if nodes[t].known}
    for succ in (known, mine):
        for start in order:
            found = _find_cycle(start, succ)
            if found:
                return _alternate(found, nodes), "cycle"
    for t in order:
        if nodes[t].targets == [t]:
            return _alternate([t, t], nodes), "cycle"
    # No cycle: follow waits from the first stuck task to a resource nobody alive can release.
    path = [order[0]]
    while True:
        nxt = [w for w in nodes[path[-1]].targets if w in stuck and w not in path]
        if not nxt:
            break
        path.append(nxt[0])
    labels = _alternate(path, nodes)
    labels.append(nodes[path[-1]].info.resource)
    return labels, "no_waker"


def _alternate(tasks: list[Task], nodes: dict[Task, _Node]) -> list[str]:
    out: list[str] = []
    for i, t in enumerate(tasks):
        out.append(t.get_name())
        if i < len(tasks) - 1:
            out.append(nodes[t].info.resource)
    return out


def _edges(order: list[Task], nodes: dict[Task, _Node], cycle: list[str]) -> list[Edge]:
    pairs = set(itertools.pairwise(cycle))
    edges: list[Edge] = []
    seen: set[tuple[str, str]] = set()

    def add(src: str, dst: str, kind: str, where: str) -> None:
        if (src, dst) in seen:
            return
        seen.add((src, dst))
        edges.append(Edge(src, dst, kind, where, (src, dst) in pairs))

    for t in order:
        info = nodes[t].info
        add(info.task, info.resource, "waits for", info.where)
        for i, (name, where) in enumerate(zip(info.wakers, info.waker_where, strict=True)):
            held = info.relation == "held by" and i >= info.holders
            add(info.resource, name, "released by" if held else info.relation, where)
    return edges
