"""The trace log and the wait registry that every traced primitive reports to.

Design
------
One :class:`Registry` per event loop (kept in a weak dictionary, so a closed loop takes its
registry with it). A traced primitive never keeps global state of its own: when it is first used
it binds to the running loop, and from then on it

* appends a :class:`TraceEvent` for every ``wait``, ``acquire``, ``release``, ``set``, ``clear``,
  ``notify``, ``put``, ``get``, ``wake`` and ``cancel`` (with the loop's time, so the log is exact
  on virtual time), and
* registers each task that blocks as a :class:`Wait` (task, resource, operation, the user's source
  line, since when) and removes it *at the moment it is granted*, by the releasing task.

Because the grant and the unblock happen in the same synchronous step, the registry is consistent
at every callback boundary: a task listed as blocked really cannot run until someone acts. The
detector (:mod:`flowlab.study.deadlock.detector`) subscribes to blocks to check the wait-for graph at once.

Every container here is a list, a deque or an insertion-ordered dict: nothing depends on set
iteration order or ``id()``, so the schedule explorer can replay a run exactly.

"Learned" wakers: when a named event is set (or a named semaphore released by a task that did not
acquire it, a named queue put to, a condition notified), the setting task's name is remembered
process-wide. Learned names only enrich explanations ("which task ``a`` set in an earlier run");
they never make the detector declare a deadlock on their own, because they may be stale.
"""

from __future__ import annotations

import asyncio
import os
import sys
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from flowlab.study.deadlock.base import Traced

__all__ = [
    "Registry",
    "TraceEvent",
    "Wait",
    "caller_where",
    "learned",
    "loop_state",
    "registry_for",
    "task_name",
]

_HERE = os.path.dirname(os.path.abspath(__file__))
_INTERNAL = {
    os.path.join(_HERE, "trace.py"),
    os.path.join(_HERE, "base.py"),
    os.path.join(_HERE, "primitives.py"),
    os.path.join(_HERE, "semaphores.py"),
    os.path.join(_HERE, "channels.py"),
    os.path.join(_HERE, "shared.py"),
    os.path.join(_HERE, "barriers.py"),
}
_LEARNED: dict[str, list[str]] = {}
_T = TypeVar("_T")
_ELSEWHERE: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, Any]] = (
    weakref.WeakKeyDictionary()
)  # the state of loops that take no attributes (__slots__)


def loop_state(loop: asyncio.AbstractEventLoop, name: str, make: Callable[[], _T]) -> _T:
    """The lab's state ``name`` for ``loop`` (made by ``make()`` on first use), kept *on the
    loop*: a cycle the collector frees with the loop. A weak-key table from loops cannot hold
    it, because the state refers to its loop (and to blocked tasks, whose futures do too):
    every loop a traced program ever ran on stayed alive, with all its tasks."""
    key = f"_flowlab_{name}"
    state = getattr(loop, key, None)
    if state is None:
        table = _ELSEWHERE.get(loop)
        state = None if table is None else table.get(key)
    if state is None:
        state = make()
        try:
            setattr(loop, key, state)
        except AttributeError:
            _ELSEWHERE.setdefault(loop, {})[key] = state
    return state


@dataclass(frozen=True, slots=True)
class TraceEvent:
    """One thing a traced primitive saw: who did what to which resource, when and where."""

    seq: int
    time: float
    task: str
    op: str
    resource: str
    kind: str
    where: str


@dataclass(slots=True)
class Wait:
    """A task blocked on a traced primitive (removed from the registry when it is granted)."""

    task: asyncio.Task[Any]
    resource: Traced
    op: str
    where: str
    since: float
    future: asyncio.Future[Any]


@dataclass
class Registry:
    """Per-loop log of trace events plus the table of which task waits on what.

    Attributes
    ----------
    events : list of TraceEvent
        Every event since the loop's first traced operation, in order.
    blocked : dict
        ``{task: Wait}`` for every task currently blocked on a traced primitive.
    parents : WeakKeyDictionary
        ``{task: the task that created it}`` for tasks made inside a watched group.
    """

    loop: asyncio.AbstractEventLoop
    events: list[TraceEvent] = field(default_factory=list)
    blocked: dict[asyncio.Task[Any], Wait] = field(default_factory=dict)
    listeners: list[Callable[[asyncio.Task[Any]], None]] = field(default_factory=list)
    parents: weakref.WeakKeyDictionary[asyncio.Task[Any], asyncio.Task[Any]] = field(
        default_factory=weakref.WeakKeyDictionary
    )

    def record(self, op: str, resource: Traced, where: str, task: str | None = None) -> None:
        """Append one event, stamped with the loop's clock."""
        self.events.append(
            TraceEvent(
                seq=len(self.events),
                time=self.loop.time(),
                task=task if task is not None else task_name(),
                op=op,
                resource=resource.label,
                kind=resource.kind,
                where=where,
            )
        )

    def block(
        self,
        task: asyncio.Task[Any],
        resource: Traced,
        op: str,
        where: str,
        future: asyncio.Future[Any],
    ) -> None:
        """Register ``task`` as blocked and tell every listener (the detectors) about it."""
        self.blocked[task] = Wait(task, resource, op, where, self.loop.time(), future)
        self.record("wait", resource, where, task.get_name())
        for listener in list(self.listeners):
            listener(task)

    def unblock(self, task: asyncio.Task[Any]) -> Wait | None:
        """Forget that ``task`` is blocked (it was granted, woken or cancelled)."""
        return self.blocked.pop(task, None)

    def wait_of(self, task: asyncio.Task[Any]) -> Wait | None:
        """The live wait of ``task``, or ``None`` if it is not blocked on a traced primitive."""
        wait = self.blocked.get(task)
        if wait is None or wait.future.done():
            return None
        return wait


def registry_for(loop: asyncio.AbstractEventLoop) -> Registry:
    """The registry of ``loop`` (created on first use)."""
    return loop_state(loop, "trace_registry", lambda: Registry(loop))


def task_name(task: asyncio.Task[Any] | None = None) -> str:
    """Name of ``task`` (default: the current task); ``"<callback>"`` outside any task."""
    if task is None:
        try:
            task = asyncio.current_task()
        except RuntimeError:
            task = None
    return task.get_name() if task is not None else "<callback>"


def caller_where() -> str:
    """``"file.py:12"`` of the first frame outside flowlab's primitive modules."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename in _INTERNAL:
        frame = frame.f_back  # type: ignore[assignment]
    if frame is None:
        return "?"
    return f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno}"


def learn(resource: Traced, task: str) -> None:
    """Remember that ``task`` woke the named ``resource`` (set / released / put / notified)."""
    if not resource.named or task == "<callback>":
        return
    names = _LEARNED.setdefault(resource.key, [])
    if task not in names:
        names.append(task)


def learned(resource: Traced) -> list[str]:
    """Task names seen waking ``resource`` in this process (empty for unnamed primitives)."""
    return list(_LEARNED.get(resource.key, ())) if resource.named else []


def forget() -> None:
    """Forget every learned waker (tests and notebooks use this for a clean slate)."""
    _LEARNED.clear()
