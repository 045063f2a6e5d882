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

The check runs :func:`~flowlab.study.deadlock.graph.analyze` on the group, so it fires at the same
virtual instant the cycle closes, within microseconds on the real clock, and also when only part
of the group is stuck. On a deadlock the report is built *before* anything is cancelled (it shows
the state that hung), then -- with ``on_deadlock="raise"`` -- every task of the group is cancelled
in declared order and awaited, so nothing leaks and the loop stays usable. With
``"cancel_stuck"`` only the stuck tasks are cancelled and checks go on (a healthy task may join
the deadlock later); with ``"report"`` nothing is cancelled until only stuck tasks are left.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from typing import Any

from flowlab.errors import ConfigError, DeadlockDetected, check_one_of
from flowlab.study.deadlock.group import WatchGroup, detected, hub, unhook
from flowlab.study.deadlock.kinds import is_task
from flowlab.study.deadlock.report import DeadlockReport
from flowlab.study.deadlock.scheduler import ExplorerLoop
from flowlab.study.deadlock.watchdog import Watchdog

__all__ = ["IDLE_S", "ON_DEADLOCK", "detected", "supervise", "unhook", "watch"]

ON_DEADLOCK = ("raise", "cancel_stuck", "report")
IDLE_S = 5.0
Task = asyncio.Task[Any]


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
    *aws: Awaitable[Any],
    names: Sequence[str] | None = None,
    on_deadlock: str = "raise",
    idle_s: float | None = IDLE_S,
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
    idle_s : float or None
        The watchdog's bound (see :func:`watch`); ``None`` disables it.

    Raises
    ------
    HangSuspected
        When the watchdog fires (the group is cancelled first).
    """
    check_one_of("on_deadlock", on_deadlock, ON_DEADLOCK)
    if idle_s is not None and not idle_s > 0:
        raise ConfigError(f"idle_s={idle_s!r} is not valid; give seconds > 0, or None.")
    loop = asyncio.get_running_loop()
    labels = list(names) if names is not None else _default_names(aws)
    if len(labels) != len(aws):
        raise ConfigError(
            f"names has {len(labels)} entries for {len(aws)} awaitables; "
            "give one name per awaitable."
        )
    loop_hub = hub(loop)
    group = WatchGroup(loop, on_deadlock)
    dog: Watchdog | None = None
    listener = group.poke
    group.reg.listeners.append(listener)
    loop_hub.enter(group)
    try:
        loop_hub.adopting = group
        try:
            roots = []
            for aw, label in zip(aws, labels, strict=True):
                if is_task(aw):
                    group.add(aw)
                    roots.append(aw)
                else:
                    roots.append(loop.create_task(aw, name=label))  # type: ignore[arg-type]
        finally:
            loop_hub.adopting = None
        group.poke()  # a group may start deadlocked (e.g. awaiting itself)
        if idle_s is not None and not isinstance(loop, ExplorerLoop):
            dog = Watchdog(group, idle_s)
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
        return results, group.snapshot(None)
    finally:
        if dog is not None:
            dog.stop()
        group.reg.listeners.remove(listener)
        loop_hub.exit(group)


async def _wrap_up(
    group: WatchGroup, report: DeadlockReport, roots: list[Task]
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
    *aws: Awaitable[Any],
    names: Sequence[str] | None = None,
    on_deadlock: str = "raise",
    idle_s: float | None = IDLE_S,
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
    idle_s : float or None
        The watchdog for hangs the detector cannot prove (tasks blocked on plain asyncio
        primitives or bare futures): when every unfinished task has awaited the same untraced
        future for ``idle_s`` seconds of loop time -- no timer, thread, deadline or socket that
        could end the wait -- the group is cancelled and :class:`HangSuspected` raised with what
        each task awaits (coroutine stacks with source lines). Default 5 s; ``None``: wait as
        long as it takes. See :mod:`flowlab.study.deadlock.watchdog`.

    Raises
    ------
    DeadlockDetected
        With ``.report`` (a :class:`DeadlockReport`): which tasks were stuck, which healthy,
        which were cancelled, and the results of those that finished.
    HangSuspected
        With ``.report`` (a :class:`~flowlab.study.deadlock.watchdog.HangReport`): the watchdog fired;
        no deadlock is claimed.

    Examples
    --------
    >>> import flowlab.study.deadlock as dl
    >>> from flowlab.engine.clock import run_virtual
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
    results, report = await supervise(*aws, names=names, on_deadlock=on_deadlock, idle_s=idle_s)
    if report.deadlocked and on_deadlock != "report":
        raise DeadlockDetected(report.explain(), report=report)
    return results
