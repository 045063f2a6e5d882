"""The watchdog: a watched group that stops moving on something untraced is reported, not awaited.

Design
------
The detector proves deadlocks from the waits it can see: traced primitives and tasks awaiting
tasks. A group blocked on a plain ``asyncio.Barrier``, ``asyncio.Event`` or a bare future gives
it nothing to prove, and ``watch()`` would wait forever. The :class:`Watchdog` samples the group
every ``idle_s / 4`` seconds of loop time. The group is *idle* when every unfinished task awaits
a future that nothing visible will resolve:

* not a future a pending timer resolves (``asyncio.sleep``, ``asyncio.wait(timeout=)``),
* not one chained to a thread (``to_thread`` / ``run_in_executor``), and no executor job of a
  virtual-time loop is in flight,
* not under a deadline (``asyncio.timeout``, ``wait_for``),
* and no file descriptor that may still deliver is registered: an asyncio transport's (a
  stream or subprocess that may be waiting for a slow response) or a pending ``sock_*`` call's.
  Descriptors of other frameworks, such as a Jupyter kernel's ZMQ sockets, do not count.

If the group stays idle -- the same tasks awaiting the same futures, no trace event -- for
``idle_s`` seconds, the watchdog raises :class:`HangSuspected` with a :class:`HangReport`: what
each task awaits and its coroutine stack with source lines. It is *not* a
:class:`~flowlab.errors.DeadlockDetected`: nothing is proven, the program may be waiting for
something flowlab cannot see. On virtual time the samples are timers, so an untraced hang is
reported after ``idle_s`` virtual seconds, at once in wall time. The explorer's loop has its own
"every task is blocked" check, so no watchdog runs there.
"""

from __future__ import annotations

import asyncio
import linecache
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flowlab.engine.clock import VirtualTimeLoop
from flowlab.errors import FlowlabError
from flowlab.study.deadlock.awaits import deadlines as timer_deadlines
from flowlab.study.deadlock.kinds import is_future

if TYPE_CHECKING:
    from flowlab.study.deadlock.group import WatchGroup

__all__ = ["HangReport", "HangSuspected", "TaskStack", "Watchdog"]

Task = asyncio.Task[Any]


@dataclass(frozen=True, slots=True)
class TaskStack:
    """One idle task: what it awaits and its coroutine stack, outermost frame first."""

    task: str
    awaiting: str
    stack: list[str] = field(default_factory=list)


@dataclass
class HangReport:
    """What an idle group was awaiting when the watchdog gave up on it (no deadlock proven).

    Attributes
    ----------
    idle_s : float
        How long nothing moved (loop seconds).
    at : float
        Loop time when the watchdog fired (seconds since the group began on the real clock).
    clock : str
        ``"virtual"`` or ``"real"``.
    tasks : list of TaskStack
        Every unfinished task, what it awaits and where (``file.py:12 in fn: source``).
    """

    idle_s: float
    at: float
    clock: str
    tasks: list[TaskStack]

    def explain(self) -> str:
        """Why the watchdog fired, then one block per task: what it awaits and its stack."""
        head = (
            f"No deadlock proven, but nothing in the group moved for {self.idle_s:g} s "
            f"(t={self.at:.3f} s, {self.clock} clock): every task awaits something flowlab does "
            "not trace and that no timer, thread or socket will complete. A plain asyncio "
            "primitive (Barrier, Event, Lock, Queue) or a bare future is the usual cause: use "
            "fl.deadlock's traced ones to get a proof and the cycle. If the group is only "
            "slow, raise idle_s (or pass idle_s=None)."
        )
        lines = [head]
        for t in self.tasks:
            lines.append(f"task {t.task} awaits {t.awaiting}")
            lines += [f"    {frame}" for frame in t.stack]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<HangReport idle {self.idle_s:g} s, tasks={[t.task for t in self.tasks]}>"


class HangSuspected(FlowlabError):
    """A watched group stopped moving on something untraced: reported, not proven.

    Attributes
    ----------
    report : HangReport
        What each task was awaiting, with coroutine stacks.
    """

    def __init__(self, message: str, *, report: HangReport) -> None:
        super().__init__(message)
        self.report = report


def _stack(task: Task) -> list[str]:
    out: list[str] = []
    coro: Any = task.get_coro()
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            path, line = frame.f_code.co_filename, frame.f_lineno
            source = linecache.getline(path, line).strip()
            out.append(f"{os.path.basename(path)}:{line} in {frame.f_code.co_name}: {source}")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return out


def _describe(fut: object) -> str:
    text = repr(fut)
    return text if len(text) <= 120 else text[:117] + "..."


class Watchdog:
    """Samples a :class:`~flowlab.study.deadlock.group.WatchGroup`; raises the hang into it when idle."""

    def __init__(self, group: WatchGroup, idle_s: float) -> None:
        self.group = group
        self.idle_s = idle_s
        self.interval = idle_s / 4
        self.last: tuple[Any, ...] | None = None
        self.since = 0.0
        self.handle: asyncio.TimerHandle | None = group.loop.call_later(self.interval, self.check)

    def stop(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None

    def check(self) -> None:
        group, loop = self.group, self.group.loop
        self.handle = None
        if group.finished():
            return
        now = loop.time()
        print_ = self.fingerprint()
        if print_ is None or print_ != self.last:
            self.last, self.since = print_, now
        elif now - self.since >= self.idle_s - 1e-9:
            self.fire(now)
            return
        self.handle = loop.call_later(self.interval, self.check)

    def fingerprint(self) -> tuple[Any, ...] | None:
        """The idle state (tasks and the futures they await), or None when something may move."""
        loop = self.group.loop
        if getattr(loop, "threads_in_flight", 0):
            return None
        if self._io_pending(loop):
            return None
        pending = [t for t in self.group.tasks if not t.done()]
        if not pending:
            return None
        timed = self._timer_futures(loop)
        deadlines = timer_deadlines(loop, pending)
        state: list[Any] = [len(self.group.reg.events)]
        for task in pending:
            fut = getattr(task, "_fut_waiter", None)
            if fut is None or fut.done() or task in deadlines or self._busy(fut, timed):
                return None
            state.append((task, fut))
        return tuple(state)

    @staticmethod
    def _io_pending(loop: asyncio.AbstractEventLoop) -> bool:
        """True when a registered file descriptor may still deliver to someone.

        A reader or writer of an asyncio transport (a stream, a subprocess pipe: it may be
        waiting for a slow response), or a ``sock_*`` call with a pending future, counts. The
        loop's own wake-up pipe and descriptors of other frameworks (a Jupyter kernel's ZMQ
        sockets) do not. On a loop without a selector (uvloop) I/O cannot be seen, so it is
        assumed to be pending: the watchdog never fires there.
        """
        selector = getattr(loop, "_selector", None)
        if selector is None:
            return True
        for key in list(selector.get_map().values()):
            for handle in key.data if isinstance(key.data, tuple) else ():
                if handle is None or handle.cancelled():
                    continue
                owner = getattr(getattr(handle, "_callback", None), "__self__", None)
                if isinstance(owner, asyncio.BaseTransport):
                    return True
                args = getattr(handle, "_args", ()) or ()
                if any(is_future(a) and not a.done() for a in args):
                    return True
        return False

    @staticmethod
    def _timer_futures(loop: asyncio.AbstractEventLoop) -> list[object]:
        out: list[object] = []
        for handle in getattr(loop, "_scheduled", ()):
            if not handle.cancelled():
                out += [a for a in getattr(handle, "_args", ()) if is_future(a)]
        return out

    def _busy(self, fut: asyncio.Future[Any], timed: list[object]) -> bool:
        if any(fut is t for t in timed):
            return True  # a timer resolves it
        callbacks = getattr(fut, "_callbacks", None) or ()
        if any(getattr(cb, "__name__", "") == "_call_check_cancel" for cb, _ in callbacks):
            return True  # chained to a concurrent.futures.Future: a thread works on it
        children = getattr(fut, "_children", None)
        if children:  # gather(...): busy if any child still is
            members = self.group.members
            return any(not c.done() and c not in members and self._busy(c, timed) for c in children)
        return False

    def fire(self, now: float) -> None:
        group = self.group
        loop = group.loop
        clock = "virtual" if isinstance(loop, VirtualTimeLoop) else "real"
        at = now if clock == "virtual" else now - group.started
        stacks: list[TaskStack] = []
        for task in group.tasks:
            if task.done():
                continue
            wait = group.reg.wait_of(task)
            if wait is not None:
                awaiting = f"{wait.resource.label} ({wait.op}, traced, at {wait.where})"
            else:
                awaiting = _describe(getattr(task, "_fut_waiter", None))
            stacks.append(TaskStack(task.get_name(), awaiting, _stack(task)))
        report = HangReport(self.idle_s, at, clock, stacks)
        group.fail(HangSuspected(report.explain(), report=report))
