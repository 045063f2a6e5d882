"""A watched group: its tasks, the event-driven checks, and what a deadlock does to it.

Design
------
:class:`WatchGroup` is the per-``watch`` state: the member tasks (roots and every task they
create, adopted through a per-loop task factory kept by :class:`_Hub`), the pending check, the
first report and, for the partial policies, the current stuck set. A member created without a
name (``gather``, ``create_task(coro)``) is named by its coroutine and numbered within the group
(``child#1``, ``child#2``), so reports never show ``Task-269159``. Its ``on_deadlock`` policy
decides what a detection does: ``"raise"`` ends the group at once; ``"cancel_stuck"`` cancels the
stuck tasks and goes on checking; ``"report"`` only records. :meth:`WatchGroup.finished` says when
``supervise`` may stop waiting. :func:`unhook` wakes a task out of an await cycle so it can be
cancelled without recursion.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from flowlab.engine.clock import VirtualTimeLoop
from flowlab.study.deadlock.graph import Analysis, analyze
from flowlab.study.deadlock.kinds import is_task
from flowlab.study.deadlock.report import DeadlockReport, report_from
from flowlab.study.deadlock.trace import loop_state, registry_for

__all__ = ["WatchGroup", "cancel_round", "detected", "hub", "unhook"]

Task = asyncio.Task[Any]


class _WatchedTask(asyncio.Task):  # type: ignore[type-arg]
    """A task of a watched group: being awaited by another task triggers a check."""

    _flowlab_group: WatchGroup | None = None

    def add_done_callback(self, fn: Callable[..., object], *, context: Any = None) -> None:
        super().add_done_callback(fn, context=context)
        group = self._flowlab_group
        if group is not None and not self.done():
            group.poke()


class _Hub:
    """Per-loop bookkeeping: active groups and the wrapped task factory."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.groups: list[WatchGroup] = []
        self.adopting: WatchGroup | None = None
        self.previous: Any = None

    def enter(self, group: WatchGroup) -> None:
        if not self.groups:
            self.previous = self.loop.get_task_factory()
            self.loop.set_task_factory(self._factory)  # type: ignore[arg-type]
        self.groups.append(group)

    def exit(self, group: WatchGroup) -> None:
        self.groups.remove(group)
        if not self.groups:
            self.loop.set_task_factory(self.previous)
            self.previous = None

    def _factory(
        self, loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any], **kwargs: Any
    ) -> Task:
        if self.previous is not None:
            task: Task = self.previous(loop, coro, **kwargs)
        else:
            task = _WatchedTask(coro, loop=loop, **kwargs)
        parent = asyncio.current_task(loop)
        group = self.adopting
        if group is None:
            group = next((g for g in self.groups if parent in g.members), None)
        if group is not None:
            name = task.get_name()  # asyncio's default; a name given to create_task comes later
            if kwargs.get("name") is None and name.startswith("Task-") and name[5:].isdigit():
                task.set_name(group.default_name(coro))
            group.add(task)
            if parent is not None:
                group.reg.parents[task] = parent
        return task


class WatchGroup:
    """The tasks of one ``watch`` / ``supervise`` call and what their checks found.

    Parameters
    ----------
    loop : asyncio.AbstractEventLoop
        The loop the group runs on (its registry is the group's source of waits).
    policy : {"raise", "cancel_stuck", "report"}
        What a detection does (validated by :func:`~flowlab.study.deadlock.detector.supervise`).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, policy: str = "raise") -> None:
        self.loop = loop
        self.policy = policy
        self.stuck: list[Task] = []
        self.reg = registry_for(loop)
        self.tasks: list[Task] = []
        self.members: dict[Task, None] = {}
        self.report: DeadlockReport | None = None
        self.error: BaseException | None = None
        self.waiters: list[asyncio.Future[None]] = []
        self.scheduled = False
        self.first_event = len(self.reg.events)
        self.started = loop.time()
        self.near_misses: list[str] = []
        self.warnings: list[str] = []
        self._timed: list[str] = []

    def add(self, task: Task) -> None:
        """Make ``task`` a member: its end and its being awaited trigger checks."""
        self.tasks.append(task)
        self.members[task] = None
        if isinstance(task, _WatchedTask):
            task._flowlab_group = self
        task.add_done_callback(self._on_done)

    def default_name(self, coro: Coroutine[Any, Any, Any]) -> str:
        """``child#2``: an unnamed task is named by its coroutine, numbered within the group."""
        base = getattr(coro, "__name__", None) or type(coro).__name__
        taken = {t.get_name() for t in self.tasks}
        n = 1
        while f"{base}#{n}" in taken:
            n += 1
        return f"{base}#{n}"

    def poke(self, _task: object = None) -> None:
        """Schedule one check (coalesced) at the end of the current loop iteration."""
        if not self.scheduled and (self.report is None or self.policy != "raise"):
            self.scheduled = True
            self.loop.call_soon(self._check)

    def _on_done(self, task: Task) -> None:
        err = None if task.cancelled() else task.exception()  # retrieved: no "never retrieved"
        if self.error is None and err is not None:
            self.error = err
        elif not all(t.done() for t in self.tasks):
            self.poke()
        self._wake()

    def fail(self, error: BaseException) -> None:
        """End the group with ``error`` (the watchdog's :class:`HangSuspected`), as a task would."""
        if self.error is None:
            self.error = error
        self._wake()

    def _wake(self) -> None:
        for fut in self.waiters:
            if not fut.done():
                fut.set_result(None)
        self.waiters.clear()

    def _check(self) -> None:
        self.scheduled = False
        if self.error is not None or (self.report is not None and self.policy == "raise"):
            return
        analysis = analyze(self.tasks, self.reg)
        self._absorb(analysis)
        if analysis.recheck_at is not None:  # once that callback has run, look again
            self.loop.call_at(analysis.recheck_at, self.poke)
        if not analysis.deadlocked:
            return
        if self.report is None:
            self.report = self.snapshot(analysis)
        else:
            self._extend(self.report, analysis)
        self.stuck = [t for t in analysis.stuck_tasks if t in self.members]
        if self.policy == "cancel_stuck":
            for task in self.stuck:
                if not task.done() and not unhook(task):
                    task.cancel()
        self._wake()

    @staticmethod
    def _extend(report: DeadlockReport, analysis: Analysis) -> None:
        """A later check found more stuck tasks (a healthy one blocked behind the deadlock)."""
        for name, wait in zip(analysis.stuck, analysis.waits, strict=True):
            if name not in report.stuck:
                report.stuck.append(name)
                report.waits.append(wait)
        seen = {(e.source, e.target) for e in report.edges}
        report.edges += [e for e in analysis.edges if (e.source, e.target) not in seen]

    def _absorb(self, analysis: Analysis) -> None:
        """Keep what is information, not a deadlock: near misses and contradicted declarations."""
        for warning in analysis.warnings:
            if warning not in self.warnings:
                self.warnings.append(warning)
        if analysis.timed and analysis.timed != self._timed:
            now = self.loop.time()
            at = now if isinstance(self.loop, VirtualTimeLoop) else now - self.started
            self.near_misses.append(
                f"t={at:.3f} s: tasks {', '.join(analysis.timed)} would deadlock without its "
                "timeout (each waits under a deadline that will end the wait)"
            )
        self._timed = analysis.timed

    def snapshot(self, analysis: Analysis | None) -> DeadlockReport:
        """A report of the group now (``analysis=None``: no deadlock), with its near misses."""
        report = report_from(
            analysis, self.names(), self.reg, self.first_event, started=self.started
        )
        report.near_misses = list(self.near_misses)
        report.warnings = list(self.warnings)
        report.done_at_detection = [t.get_name() for t in self.tasks if t.done()]
        return report

    def names(self) -> list[str]:
        """Names of every task of the group, in the order they joined."""
        return [t.get_name() for t in self.tasks]

    def finished(self) -> bool:
        """True when ``supervise`` may stop waiting (see the module docstring)."""
        if self.error is not None or all(t.done() for t in self.tasks):
            return True
        if self.report is None or self.policy == "raise":
            return self.report is not None
        return all(t in self.stuck for t in self.tasks if not t.done())  # only the stuck are left

    async def until(self, cond: Callable[[], bool], timeout_s: float | None = None) -> bool:
        """Wait until ``cond()`` holds (re-checked whenever a task of the group finishes)."""
        deadline = None if timeout_s is None else self.loop.time() + timeout_s
        while not cond():
            remaining = None if deadline is None else deadline - self.loop.time()
            if remaining is not None and remaining <= 0:
                return False
            fut: asyncio.Future[None] = self.loop.create_future()
            self.waiters.append(fut)
            await asyncio.wait([fut], timeout=remaining)
        return True

    async def drain(self, rounds: int = 4, grace_s: float = 1.0) -> list[str]:
        """Cancel every unfinished task (declared order) and wait; return names that leaked."""
        for _ in range(rounds):
            pending = [t for t in self.tasks if not t.done()]
            if not pending:
                break
            subset = cancel_round(pending)
            await self.until(lambda s=subset: all(t.done() for t in s), grace_s)  # type: ignore[misc]
        return [t.get_name() for t in self.tasks if not t.done()]


def cancel_round(pending: list[Task]) -> list[Task]:
    """One round of cancelling what is left: tasks stuck awaiting another task are unhooked
    first (``cancel`` would recurse around an await cycle), the rest cancelled once nothing can
    be unhooked. Returns the tasks this round acted on."""
    unhooked = [t for t in pending if unhook(t)]
    if not unhooked:
        for t in pending:
            t.cancel()
    return unhooked or pending


def unhook(task: Task) -> bool:
    """Wake ``task`` out of ``await other_task`` with a CancelledError; False if not awaiting.

    ``Task.cancel`` forwards to the awaited task, so on an await cycle it recurses forever.
    Instead the wakeup callback is moved off the awaited task and called with an
    already-cancelled future, which raises CancelledError at the ``await``.
    """
    awaited = getattr(task, "_fut_waiter", None)
    if not is_task(awaited) or awaited.done():
        return False
    for callback, context in list(getattr(awaited, "_callbacks", None) or ()):
        if getattr(callback, "__self__", None) is task:
            awaited.remove_done_callback(callback)
            dummy: asyncio.Future[None] = task.get_loop().create_future()
            dummy.cancel()
            task.get_loop().call_soon(callback, dummy, context=context)
            return True
    return False


def detected(loop: asyncio.AbstractEventLoop) -> bool:
    """True when a group watched on ``loop`` has already detected its deadlock."""
    return any(g.report is not None for g in hub(loop).groups)


def hub(loop: asyncio.AbstractEventLoop) -> _Hub:
    """The loop's hub (created on first use): its active groups and task factory."""
    return loop_state(loop, "watch_hub", lambda: _Hub(loop))  # on the loop (trace.loop_state)
