"""What counts as a task or a future here, whichever asyncio implementation made it.

asyncio has two of each: the C ``_asyncio.Task`` / ``_asyncio.Future`` and the pure-Python
``asyncio.tasks._PyTask`` / ``asyncio.futures._PyFuture``. ``nest_asyncio2`` (which ``fl.run``
applies inside a running loop, as in every notebook cell) rebinds ``asyncio.Task`` and
``asyncio.Future`` to the Python ones for the rest of the process. A check written
``isinstance(x, asyncio.Task)`` then says no to every task made from a class bound earlier (the
lab's own task subclass among them), and the explorer, seeing no task steps, explored one
schedule ten thousand times and called a buggy program clean. Every check here uses these tuples,
which hold both implementations, bound once.

Examples
--------
>>> import asyncio
>>> from flowlab.study.deadlock.kinds import TASKS, is_task
>>> len(TASKS)
2
>>> is_task(object())
False
"""

from __future__ import annotations

import asyncio
from typing import Any, TypeGuard

__all__ = ["FUTURES", "TASKS", "is_future", "is_task"]


def _both(python: type, name: str) -> tuple[type, ...]:
    try:
        import _asyncio
    except ImportError:  # (an interpreter without the C accelerator)
        return (python,)
    return tuple(dict.fromkeys((getattr(_asyncio, name), python)))


TASKS: tuple[type, ...] = _both(asyncio.tasks._PyTask, "Task")  # type: ignore[attr-defined]
FUTURES: tuple[type, ...] = _both(asyncio.futures._PyFuture, "Future")  # type: ignore[attr-defined]


def is_task(obj: Any) -> TypeGuard[asyncio.Task[Any]]:
    """``obj`` is an asyncio task (C or Python, a subclass of either)."""
    return isinstance(obj, TASKS)


def is_future(obj: Any) -> TypeGuard[asyncio.Future[Any]]:
    """``obj`` is an asyncio future (tasks included; C or Python)."""
    return isinstance(obj, FUTURES)
