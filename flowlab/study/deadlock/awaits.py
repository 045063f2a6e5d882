"""What a task awaits that is not a traced primitive -- other tasks -- and which timers end a wait.

Design
------
The wait-for graph (:mod:`flowlab.study.deadlock.graph`) and the watchdog read two things off a
suspended task:

* :func:`awaited_tasks` -- the tasks whose end it awaits: ``await task``, ``gather(...)`` (nested
  gathers flattened) or the end of an ``asyncio.TaskGroup`` (its ``__aexit__`` awaits a private
  future; the group is found on the task's coroutine stack). Anything else (a bare future,
  ``asyncio.wait``, ``shield``) is not a task wait: ``None``.
* :func:`deadlines` -- the tasks a pending timer will cancel: ``asyncio.timeout`` (and so
  ``wait_for`` on 3.12+), ``loop.call_later(d, task.cancel)``, and on 3.11 ``wait_for``, which
  runs its awaitable in a task of its own and cancels it when the timer releases the caller.
  A deadline reaches down: cancelling a task cancels the task it awaits (``await``, ``gather``
  and a ``TaskGroup`` all pass the cancellation on), so those tasks are under it too.

* :func:`pending_wakes` -- what callbacks already queued or armed may wake:
  ``loop.call_later(1, event.set)`` wakes a waiter that no task will. A bound method of a
  traced primitive names it; a callback of the user's own code (a lambda) may wake any wait
  whose wakers are unknown. Callbacks of asyncio, flowlab and installed libraries (a notebook
  kernel's) are neither.

A wait under a deadline, or one a pending callback may wake, is never stuck.

Examples
--------
>>> import asyncio
>>> from flowlab.study.deadlock.awaits import awaited_tasks, deadlines
>>> async def demo():
...     child = asyncio.create_task(asyncio.sleep(1))
...     async def parent():
...         async with asyncio.timeout(5):
...             await asyncio.gather(child)
...     outer = asyncio.create_task(parent())
...     await asyncio.sleep(0)
...     loop = asyncio.get_running_loop()
...     timers = deadlines(loop, [outer])  # the timeout cancels outer, and so child too
...     found = awaited_tasks(outer) == [child], [round(t - loop.time()) for t in timers.values()]
...     outer.cancel()
...     return found
>>> asyncio.run(demo())
(True, [5, 5])
"""

from __future__ import annotations

import asyncio
import functools
import os
import sysconfig
from collections.abc import Iterable
from typing import Any

from flowlab.study.deadlock.base import Traced
from flowlab.study.deadlock.kinds import is_future, is_task

__all__ = ["awaited_tasks", "deadlines", "pending_wakes"]

Task = asyncio.Task[Any]
# the timer callback of asyncio.wait_for on 3.11 (and of asyncio.wait(timeout=)); None if absent
_RELEASE_WAITER = getattr(asyncio.tasks, "_release_waiter", None)
_TASK_GROUP_EXIT = asyncio.TaskGroup.__aexit__.__code__


def awaited_tasks(task: Task, known: Iterable[Task] = ()) -> list[Task] | None:
    """The tasks ``task`` awaits the end of (see the module docstring); None if not such a wait.

    A ``TaskGroup`` keeps its tasks in a set: they are listed in the order of ``known`` (the
    tasks of a watched group, as they joined it), any others after them.
    """
    waiter = getattr(task, "_fut_waiter", None)
    if waiter is None or waiter.done():
        return None  # not awaiting, or its wake-up is already scheduled: it will run
    if is_task(waiter):
        return [waiter]
    if getattr(waiter, "_children", None) is not None:
        return _gathered(waiter)
    return _task_group(task, waiter, known)


def _gathered(fut: asyncio.Future[Any]) -> list[Task] | None:
    """The tasks a ``gather`` future waits for, nested gathers flattened; None if one is not."""
    out: list[Task] = []
    for child in getattr(fut, "_children", ()):
        if is_task(child):
            out.append(child)
        elif getattr(child, "_children", None) is not None:
            inner = _gathered(child)
            if inner is None:
                return None
            out += inner
        elif not child.done():
            return None  # a bare future: nobody in particular completes it
    return out


def _task_group(task: Task, waiter: object, known: Iterable[Task]) -> list[Task] | None:
    """The live tasks of the ``TaskGroup`` whose end ``task`` awaits through ``waiter``."""
    coro: Any = task.get_coro()
    while coro is not None:
        frame = getattr(coro, "cr_frame", None)
        if frame is not None and frame.f_code is _TASK_GROUP_EXIT:
            group = frame.f_locals.get("self")
            if getattr(group, "_on_completed_fut", None) is not waiter:
                return None
            live = [t for t in getattr(group, "_tasks", ()) if not t.done()]
            first = [t for t in known if t in live]
            return first + [t for t in live if t not in first]
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return None


def deadlines(loop: asyncio.AbstractEventLoop, tasks: Iterable[Task] = ()) -> dict[Task, float]:
    """Tasks that a pending timer will cancel, with the earliest time it fires.

    ``tasks`` are the tasks to look at for 3.11's ``wait_for`` and to pass a deadline down from
    (see the module docstring); timers that cancel a task directly are found from the loop.
    """
    out: dict[Task, float] = {}
    released: dict[asyncio.Future[Any], float] = {}  # wait_for's waiters and their timers

    def note(task: Task | None, when: float) -> None:
        if task is not None and not task.done():
            out[task] = min(out.get(task, when), when)

    for handle in getattr(loop, "_scheduled", ()):
        if handle.cancelled():
            continue
        callback = getattr(handle, "_callback", None)
        owner = getattr(callback, "__self__", None)
        if is_task(owner) and getattr(callback, "__name__", "") == "cancel":
            note(owner, handle.when())
        elif isinstance(owner, asyncio.Timeout):
            note(getattr(owner, "_task", None), handle.when())
        elif callback is _RELEASE_WAITER and (args := getattr(handle, "_args", None)):
            released[args[0]] = min(released.get(args[0], handle.when()), handle.when())
    tasks = list(tasks)
    for task in tasks if released else ():
        for callback, _ in getattr(task, "_callbacks", None) or ():
            if isinstance(callback, functools.partial) and callback.func is _RELEASE_WAITER:
                when = released.get(callback.args[0]) if callback.args else None
                if when is not None:
                    note(task, when)
    queue = list(out)
    while queue:  # cancelling a task cancels what it awaits
        parent = queue.pop()
        for child in awaited_tasks(parent) or ():
            if child not in out or out[child] > out[parent]:
                note(child, out[parent])
                queue.append(child)
    return out


# code outside these (the user's) may do anything; asyncio's, flowlab's and libraries' callbacks do not
# touch traced primitives except through their bound methods, which are recognised as such
_NOT_USER = tuple(
    dict.fromkeys(
        os.path.realpath(p) + os.sep
        for p in (
            *(sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")),
            os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
        )
    )
)


def pending_wakes(loop: asyncio.AbstractEventLoop) -> tuple[list[object], float | None]:
    """What pending callbacks may wake: the traced primitives they act on, and when they run.

    A callback queued with ``call_soon`` or a timer -- ``loop.call_later(1, event.set)`` -- wakes
    a waiter that no task will. A bound method of a traced primitive (``event.set``,
    ``lock.release``) names that primitive; a callback of user code (a lambda, a function)
    could do anything, so it is listed as ``None``: it may wake any wait whose wakers are not
    known. Callbacks of asyncio, flowlab and installed libraries (task steps, futures, timeouts,
    the detector's checks, a kernel's) are neither. Returns the primitives (and ``None`` for user
    code) and the loop time at which the first such callback runs (``None`` if there is none).
    """
    found: list[object] = []
    first: float | None = None
    ready = [(h, loop.time()) for h in getattr(loop, "_ready", ())]
    timers = [(h, h.when()) for h in getattr(loop, "_scheduled", ())]
    for handle, when in [*ready, *timers]:
        if handle.cancelled():
            continue
        wakes, target = _target(getattr(handle, "_callback", None))
        if not wakes:
            continue
        if target not in found:
            found.append(target)
        first = when if first is None else min(first, when)
    return found, first


def _target(callback: Any) -> tuple[bool, object]:
    """Whether ``callback`` may wake a waiter, and the traced primitive it acts on (or None)."""
    while isinstance(callback, functools.partial):
        callback = callback.func
    owner = getattr(callback, "__self__", None)
    if isinstance(owner, Traced):
        return True, owner
    code = getattr(getattr(callback, "__func__", callback), "__code__", None)
    if code is None or is_future(owner) or isinstance(owner, asyncio.AbstractEventLoop):
        return False, None  # a builtin, a future's or the loop's own callback
    path = os.path.realpath(code.co_filename)
    return not path.startswith(_NOT_USER) and "site-packages" not in path, None
