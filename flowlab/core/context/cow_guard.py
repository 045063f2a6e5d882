"""Did a copy-on-write step's shared context stay as it was? The check behind
:class:`~flowlab.errors.IsolationBreach`.

Copy-on-write branches (:mod:`flowlab.core.context.cow`) share the step's context until they
write, and every write made through Python reaches the branch's own copy. One way is left to write
into the shared data: C code that reads a list's storage directly can hand a branch a shared item
(``heapq.heappop``, ``numpy.array(list_of_dicts)``, pydantic validating a ``list[Any]`` or models
already built), and mutating that item mutates the context every sibling reads.

So a :class:`Guard` keeps a copy of the step's context as its branches start (one walk of the
shared fields, with the copy policy of :mod:`flowlab.core.context.copying`) and compares it with
the context when they end, with ``==`` (C speed: ~1 ms for 10,000 small dicts, where the
type-aware :func:`~flowlab.core.context.equality.same` takes ~15 ms; ``same`` decides wherever
``==`` does not say equal). So a shared value overwritten with an *equal* value of
another type (``True`` over ``1``, ``-0.0`` over ``0.0``) is not seen: the one kind of write
this check can miss. A context that changed was written around copy on write: the step is told
which fields, and puts them back. Only the lists, dicts and models a branch can reach raw are
kept: an immutable value cannot be written to, and any other value (a set, an object) is
deep-copied for every branch.
"""

from __future__ import annotations

from collections.abc import Sequence
from copy import deepcopy
from typing import Any

from pydantic import BaseModel

from flowlab.core.context.copying import copy_value
from flowlab.core.context.equality import same
from flowlab.core.context.isolation import isolate

__all__ = ["Guard"]


class Guard:
    """The shared fields of a copy-on-write step's context as its branches start.

    Parameters
    ----------
    base : BaseModel
        The step's context (its branches' base), before any branch starts.
    include_keys : sequence of str, optional
        The fields the branches get (the others are not shared with them).

    Examples
    --------
    >>> from pydantic import BaseModel
    >>> class Ctx(BaseModel):
    ...     docs: list[dict[str, int]] = []
    >>> ctx = Ctx(docs=[{"n": 1}])
    >>> guard = Guard(ctx)
    >>> guard.changed(ctx)
    []
    >>> ctx.docs[0]["n"] = 2  # as if a branch had mutated a raw shared item
    >>> guard.changed(ctx), guard.restore(ctx, ["docs"]), ctx.docs
    (['docs'], None, [{'n': 1}])
    """

    __slots__ = ("copy", "kept")

    def __init__(self, base: BaseModel, include_keys: Sequence[str] | None = None) -> None:
        #: a copy of ``base`` as :func:`~flowlab.core.context.isolation.isolate` makes it, which
        #: is also what the step's merge record keeps (``None``: a value could not be copied)
        self.copy: BaseModel | None = None
        try:
            self.copy = isolate(base, include_keys)
            values = self.copy.__dict__
        except Exception:  # a value that cannot be copied (it is deep-copied per branch, or
            values = {}  # fails there): the copyable shared fields are kept one by one below
        memo: dict[int, Any] = {}
        self.kept: dict[str, Any] = {}
        for name in base.__dict__ if include_keys is None else include_keys:
            value = base.__dict__[name]
            if isinstance(value, (list, dict, BaseModel)):
                try:
                    kept = values[name] if name in values else copy_value(value, memo, deepcopy)
                except Exception:  # deep-copied per branch (or failing there): nothing of it
                    continue  # is shared raw
                self.kept[name] = kept
        extra = base.__pydantic_extra__
        if extra and include_keys is None:
            try:
                self.kept["__pydantic_extra__"] = copy_value(dict(extra), memo, deepcopy)
            except Exception:
                pass

    def changed(self, base: BaseModel) -> list[str]:
        """The kept fields whose value in ``base`` is no longer the kept one."""
        values, extra = base.__dict__, base.__pydantic_extra__ or {}
        out = []
        for name, kept in self.kept.items():
            now = extra if name == "__pydantic_extra__" else values[name]
            try:
                equal = kept == now
            except Exception:  # an item's == raised (arrays inside): same() decides
                equal = None
            # == is the fast yes; same() has the last word on a no (an object without __eq__
            # is compared by its attributes: its copy is not "changed")
            if equal is not True and not same(kept, now):
                out.append(name)
        return out

    def restore(self, base: BaseModel, names: Sequence[str]) -> None:
        """Put the kept values of ``names`` back into ``base`` (the guard and its :attr:`copy`
        are spent after)."""
        for name in names:
            if name == "__pydantic_extra__":
                object.__setattr__(base, "__pydantic_extra__", self.kept[name])
            else:
                base.__dict__[name] = self.kept[name]
