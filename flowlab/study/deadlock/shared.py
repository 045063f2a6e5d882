"""``Shared(value)``: a variable whose reads and writes the explorer sees.

Design
------
The explorer's partial-order reduction (:mod:`flowlab.study.deadlock.search`) reorders two task steps
only when they *conflict*. Steps on traced primitives say what they touched; a plain Python
variable says nothing. So by default the explorer treats a step that touched nothing traced as
conflicting with every other step -- safe, but the search grows toward exhaustive. Keeping shared
state in a :class:`Shared` makes every access a trace event (``read`` / ``write``): two reads
commute, a write conflicts with every other access of the same variable, and a program whose
shared state is all in ``Shared`` variables can be explored with ``assume_traced=True``.

A ``Shared`` is not bound to an event loop (unlike a lock): it records into the registry of the
running loop, if any, so one object may be used across runs and outside any loop.
"""

from __future__ import annotations

import asyncio
from typing import Any, Generic, TypeVar

from flowlab.study.deadlock.base import Traced
from flowlab.study.deadlock.trace import Registry, caller_where, registry_for

__all__ = ["Shared"]

T = TypeVar("T")


class Shared(Traced, Generic[T]):
    """A traced variable: ``get()`` / ``set()`` (or ``.value``) are dependency events.

    Parameters
    ----------
    value : object
        The initial value.
    name : str, optional
        Shown in traces and reports; unnamed variables get ``shared-<n>``.

    Examples
    --------
    >>> import asyncio
    >>> import flowlab.study.deadlock as dl
    >>> async def lost_update():
    ...     count = dl.Shared(0, name="count")
    ...     async def add():
    ...         seen = count.get()
    ...         await asyncio.sleep(0)  # read-modify-write across an await
    ...         count.set(seen + 1)
    ...     await asyncio.gather(add(), add())
    ...     assert count.value == 2, f"lost update: {count.value}"
    >>> found = dl.explore(lost_update, stop_on_first=True)
    >>> found.first_failure.error
    AssertionError('lost update: 1')
    """

    kind = "Shared"

    def __init__(self, value: T, *, name: str | None = None) -> None:
        super().__init__(name)
        self._value = value

    def _reg(self) -> Registry:
        return registry_for(asyncio.get_running_loop())

    def _note(self, op: str) -> None:
        try:
            reg = self._reg()
        except RuntimeError:
            return  # outside any loop: nothing to trace
        reg.record(op, self, caller_where())

    def get(self) -> T:
        """Read the value (a ``read`` event)."""
        self._note("read")
        return self._value

    def set(self, value: T) -> None:
        """Write the value (a ``write`` event)."""
        self._note("write")
        self._value = value

    @property
    def value(self) -> T:
        """The value; reading and assigning it are traced like :meth:`get` / :meth:`set`."""
        return self.get()

    @value.setter
    def value(self, value: T) -> None:
        self.set(value)

    def statistics(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "value": self._value}

    def __repr__(self) -> str:
        return f"<{self.label} value={self._value!r}>"
