"""The detector: run a group of coroutines and stop them the moment they deadlock.

Design
------
:func:`watch` (and :func:`supervise`, which returns the report instead of raising) runs each
coroutine as a named task of a *group*. Tasks those tasks create join the group too: while a group
is active the loop's task factory is wrapped (and restored afterwards), so fan-outs, nested
``gather`` calls and ``create_task`` children are watched without changes to user code.

Checks are event-driven, never polled. A check is scheduled (``loop.call_soon``, coalesced) when

* any task blocks on a traced primitive (the registry calls its listeners),
* a task of the group finishes (it may have been the last waker of someone), or
* someone starts awaiting a task of the group (group tasks are a ``Task`` subclass whose
  ``add_done_callback`` pokes the group; asyncio calls it when one task awaits another).

The check runs :func:`~flowlab.deadlock.graph.analyze` on the group, so it fires at the same
virtual instant the cycle closes, within microseconds on the real clock, and also when only part
of the group is stuck. On a deadlock the report is built *before* anything is cancelled (it shows
the state that hung), then -- with ``on_deadlock="raise"`` -- every task of the group is cancelled
in declared order and awaited, so nothing leaks and the loop stays usable. With
``"cancel_stuck"`` only the stuck tasks are cancelled and checks go on (a healthy task may join
the deadlock later); with ``"report"`` nothing is cancelled until only stuck tasks are left.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

from flowlab.clock import VirtualTimeLoop
from flowlab.deadlock.graph import Analysis, analyze
from flowlab.deadlock.report import DeadlockReport, report_from
from flowlab.deadlock.trace import registry_for
from flowlab.errors import DeadlockDetected, check_one_of

__all__ = ["ON_DEADLOCK", "detected", "supervise", "unhook", "watch"]

ON_DEADLOCK = ("raise", "cancel_stuck", "report")

Task = asyncio.Task[Any]
_HUBS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Hub] = weakref.WeakKeyDictionary()


class _WatchedTask(asyncio.Task):  # type: ignore[type-arg]
    """A task of a watched group: being awaited by another task triggers a check."""

    _flowlab_group: _Group | None = None

    def add_done_callback(self, fn: Callable[..., object], *, context: Any = None) -> None:
        super().add_done_callback(fn, context=context)
        group = self._flowlab_group
        if group is not None and not self.done():
            group.poke()


class _Hub:
    """Per-loop bookkeeping: active groups and the wrapped task factory."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.groups: list[_Group] = []
        self.adopting: _Group | None = None
        self.previous: Any = None

    def enter(self, group: _Group) -> None:
        if not self.groups:
            self.previous = self.loop.get_task_factory()
            self.loop.set_task_factory(self._factory)  # type: ignore[arg-type]
        self.groups.append(group)

    def exit(self, group: _Group) -> None:
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
            group.add(task)
            if parent is not None:
                group.reg.parents[task] = parent
        return task


class _Group:
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
        self.tasks.append(task)
        self.members[task] = None
        if isinstance(task, _WatchedTask):
            task._flowlab_group = self
        task.add_done_callback(self._on_done)

    def poke(self, _task: object = None) -> None:
        if not self.scheduled and (self.report is None or self.policy != "raise"):
            self.scheduled = True
            self.loop.call_soon(self._check)

    def _on_done(self, task: Task) -> None:
        if self.error is None and not task.cancelled() and task.exception() is not None:
            self.error = task.exception()
        elif not all(t.done() for t in self.tasks):
            self.poke()
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
        if not analysis.deadlocked:
            return
        if self.report is None:
            self.report = self._report(analysis)
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

    def _report(self, analysis: Analysis | None) -> DeadlockReport:
        report = report_from(
            analysis, self._names(), self.reg, self.first_event, started=self.started
        )
        report.near_misses = list(self.near_misses)
        report.warnings = list(self.warnings)
        return report

    def _names(self) -> list[str]:
        return [t.get_name() for t in self.tasks]

    def finished(self) -> bool:
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
            unhooked = [t for t in pending if unhook(t)]
            if not unhooked:
                for t in pending:
                    t.cancel()
            subset = unhooked or pending
            await self.until(lambda s=subset: all(t.done() for t in s), grace_s)  # type: ignore[misc]
        return [t.get_name() for t in self.tasks if not t.done()]


def unhook(task: Task) -> bool:
    """Wake ``task`` out of ``await other_task`` with a CancelledError; False if not awaiting.

    ``Task.cancel`` forwards to the awaited task, so on an await cycle it recurses forever.
    Instead the wakeup callback is moved off the awaited task and called with an
    already-cancelled future, which raises CancelledError at the ``await``.
    """
    awaited = getattr(task, "_fut_waiter", None)
    if not isinstance(awaited, asyncio.Task) or awaited.done():
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
    hub = _HUBS.get(loop)
    return hub is not None and any(g.report is not None for g in hub.groups)


def _hub(loop: asyncio.AbstractEventLoop) -> _Hub:
    hub = _HUBS.get(loop)
    if hub is None:
        hub = _HUBS[loop] = _Hub(loop)
    return hub


def _default_names(aws: Sequence[Awaitable[Any]]) -> list[str]:
    names: list[str] = []
    for aw in aws:
        code = getattr(aw, "cr_code", None)
        base = code.co_name if code is not None else type(aw).__name__
        name, n = base, 1
        while name in names:
            n += 1
            name = f"{base}-{n}"
        names.append(name)
    return names


async def supervise(
    *aws: Awaitable[Any], names: Sequence[str] | None = None, on_deadlock: str = "raise"
) -> tuple[list[Any], DeadlockReport]:
    """Run ``aws`` as a watched group; return ``(results, report)`` instead of raising.

    With ``on_deadlock="raise"`` a deadlock cancels every task of the group at once and
    ``results`` is empty. With ``"cancel_stuck"`` or ``"report"`` the healthy tasks run to the end
    and ``results`` holds, like ``gather(..., return_exceptions=True)``, each root's result or a
    :class:`DeadlockDetected` for a root that got stuck. ``report.deadlocked`` is True either way;
    ``report.stuck`` / ``report.healthy`` split the group and ``report.results`` maps each task that
    finished to its result. A task that raises cancels the others and the error is raised.

    Parameters
    ----------
    *aws : coroutine
        The coroutines (or tasks) to run together.
    names : sequence of str, optional
        Task names shown in reports (default: the coroutine function names, made unique).
    on_deadlock : {"raise", "cancel_stuck", "report"}
        What a deadlock of part of the group does to the rest (see :func:`watch`).
    """
    check_one_of("on_deadlock", on_deadlock, ON_DEADLOCK)
    loop = asyncio.get_running_loop()
    labels = list(names) if names is not None else _default_names(aws)
    if len(labels) != len(aws):
        from flowlab.errors import ConfigError

        raise ConfigError(
            f"names has {len(labels)} entries for {len(aws)} awaitables; "
            "give one name per awaitable."
        )
    hub = _hub(loop)
    group = _Group(loop, on_deadlock)
    listener = group.poke
    group.reg.listeners.append(listener)
    hub.enter(group)
    try:
        hub.adopting = group
        try:
            roots = []
            for aw, label in zip(aws, labels, strict=True):
                if isinstance(aw, asyncio.Task):
                    group.add(aw)
                    roots.append(aw)
                else:
                    roots.append(loop.create_task(aw, name=label))  # type: ignore[arg-type]
        finally:
            hub.adopting = None
        group.poke()  # a group may start deadlocked (e.g. awaiting itself)
        try:
            await group.until(group.finished)
        except asyncio.CancelledError:
            await group.drain()
            raise
        if group.report is not None and (group.error is None or on_deadlock == "raise"):
            return await _wrap_up(group, group.report, roots)
        if group.error is not None:
            await group.drain()
            raise group.error
        results = [t.result() for t in roots]
        return results, group._report(None)
    finally:
        group.reg.listeners.remove(listener)
        hub.exit(group)


async def _wrap_up(
    group: _Group, report: DeadlockReport, roots: list[Task]
) -> tuple[list[Any], DeadlockReport]:
    """After a deadlock: cancel what is left, fill in the report, build the results."""
    report.leaked = await group.drain()
    report.cancelled = [t.get_name() for t in group.tasks if t.cancelled()]
    report.near_misses, report.warnings = list(group.near_misses), list(group.warnings)
    report.healthy = [t.get_name() for t in group.tasks if t.get_name() not in report.stuck]
    report.results = {
        t.get_name(): t.result()
        for t in group.tasks
        if t.done() and not t.cancelled() and t.exception() is None
    }
    if group.policy == "raise":
        return [], report
    error = DeadlockDetected(report.explain(), report=report)
    ok = [t for t in roots if t.done() and not t.cancelled() and t.exception() is None]
    return [t.result() if t in ok else error for t in roots], report


async def watch(
    *aws: Awaitable[Any], names: Sequence[str] | None = None, on_deadlock: str = "raise"
) -> list[Any]:
    """Run ``aws`` together like ``gather``; raise :class:`DeadlockDetected` if they hang.

    Detection is event-driven: a check runs whenever a task of the group blocks on a traced
    primitive, starts awaiting another watched task, or finishes. A deadlock of part of the
    group is caught even while other tasks still run.

    Parameters
    ----------
    *aws : coroutine
        The coroutines (or tasks) to run together.
    names : sequence of str, optional
        Task names shown in reports (default: the coroutine function names, made unique).
    on_deadlock : {"raise", "cancel_stuck", "report"}
        ``"raise"`` (default): at detection cancel the whole group and raise.
        ``"cancel_stuck"``: cancel only the stuck tasks, let the healthy ones finish, then raise.
        ``"report"``: cancel nothing while a healthy task runs; when only stuck tasks are left,
        cancel them and return the results, a :class:`DeadlockDetected` in place of each stuck
        root (like ``gather(..., return_exceptions=True)``). Tasks that join the deadlock later
        are added to the report.

    Raises
    ------
    DeadlockDetected
        With ``.report`` (a :class:`DeadlockReport`): which tasks were stuck, which healthy,
        which were cancelled, and the results of those that finished.

    Examples
    --------
    >>> import flowlab.deadlock as dl
    >>> from flowlab.clock import run_virtual
    >>> async def demo():
    ...     a, b = dl.Lock(name="A"), dl.Lock(name="B")
    ...     async def one():
    ...         async with a:
    ...             await asyncio.sleep(1)
    ...             async with b: pass
    ...     async def two():
    ...         async with b:
    ...             await asyncio.sleep(1)
    ...             async with a: pass
    ...     try:
    ...         await dl.watch(one(), two())
    ...     except dl.DeadlockDetected as err:
    ...         return err.report.cycle
    >>> run_virtual(demo())
    ['one', "Lock 'B'", 'two', "Lock 'A'", 'one']
    """
    results, report = await supervise(*aws, names=names, on_deadlock=on_deadlock)
    if report.deadlocked and on_deadlock != "report":
        raise DeadlockDetected(report.explain(), report=report)
    return results
