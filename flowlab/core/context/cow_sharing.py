"""Copy on write and objects a context holds in more than one place.

A context may hold one object in two places: ``ctx.current_tags = ctx.docs[0]["tags"]`` (a handle
on a nested list), a model field pointing into a list of models. An eager deep copy keeps them one
object, so a branch's write through one place shows through the other; a copy-on-write branch
(:mod:`flowlab.core.context.cow`) does too, through its memo — *as long as it reads*. What it
never read stays the base's object in its containers' storage ("raw"): ``docs[0]`` above, whose
``"tags"`` is still the base's list while the branch wrote to its own copy of that list through
``current_tags``. The diff, a branch's detached output and a custom merge's context read that
storage, so they would miss the write.

The :class:`Plan` tells which objects are held in more than one place: an item of a container, or
a field of a model, whose ``sys.getrefcount`` is above that of a single reference (read once per
step, before any branch copied it). The branch notes every object of its own that it made for
such a base object (:meth:`~flowlab.core.context.cow.Branch.note_shared`), and for a deep copy
(a tuple holding lists, an object) whether anything it copied inside is held elsewhere. When the
branch ends, :func:`wrote_shared` asks whether it changed any of them: almost never, and then its
diff is the lazy one. When it did, the branch is read whole through its own methods (:func:`view`:
every item adopted, so every place shows the branch's object) — an eager copy's cost, paid only by
a branch that wrote to an object its context holds in two places.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from flowlab.core.context.cow_containers import IMMUTABLE, CowDict, CowList
from flowlab.core.context.equality import same

if TYPE_CHECKING:
    from flowlab.core.context.cow import Branch

__all__ = ["Plan", "branches_in", "held_elsewhere", "view", "view_context", "wrote_shared"]

_getrefcount = sys.getrefcount
_SINGLE = 2  # sys.getrefcount of an item held by one container, read through map()


class Plan:
    """What every branch of one step shares: which base containers hold items that may be
    referenced from elsewhere (their refcount, read before any branch copied them)."""

    __slots__ = ("shared",)

    def __init__(self) -> None:
        self.shared: dict[int, tuple[Any, tuple[Any, ...]]] = {}

    def shared_items(self, container: Any, items: Iterable[Any], keys: Callable[[], Any]) -> Any:
        """The keys / positions of ``container``'s mutable items referenced more than once
        (``container``: a list, a dict, or a model's ``__dict__`` / extras)."""
        entry = self.shared.get(id(container))
        if entry is None:
            counts = list(map(_getrefcount, items))
            found: tuple[Any, ...] = ()
            if counts and max(counts) > _SINGLE:
                found = tuple(
                    key
                    for key, count, value in zip(keys(), counts, items, strict=True)
                    if count > _SINGLE and type(value) not in IMMUTABLE
                )
            entry = self.shared[id(container)] = (container, found)  # keeps the id alive
        return entry[1]


def held_elsewhere(raw: Any, memo: dict[int, Any], before: int) -> bool:
    """Whether a deep copy of ``raw`` made with ``memo`` (whose keep-alive list held ``before``
    originals before it) copied a mutable object inside ``raw`` that something else holds too."""
    return max(_counts(raw, memo, before), default=0) > _COPIED_ONCE


def _counts(raw: Any, memo: dict[int, Any], before: int) -> list[int]:
    kept = memo.get(id(memo), ())
    out = []
    for original in kept[before:]:
        if original is not raw and type(original) not in IMMUTABLE:
            out.append(_getrefcount(original))
    return out


def _copied_once() -> int:
    """``sys.getrefcount`` of an object that a deep copy copied and its holder alone held, read
    in :func:`_counts` (measured, not assumed, for this interpreter)."""
    holder: tuple[list[int]] = ([],)
    memo: dict[int, Any] = {}
    copy.deepcopy(holder, memo)
    (count,) = _counts(holder, memo, 0)
    return count


_COPIED_ONCE = _copied_once()


def wrote_shared(branch: Branch) -> bool:
    """Whether ``branch`` changed an object of its own made for a base object that the context
    holds in more than one place (see the module docstring); remembered on the branch."""
    found = branch.aliased
    if found is None:
        found = False
        for raw, own in branch.shared.values():
            kind = type(own)
            if own.dirty if kind is CowList or kind is CowDict else not same(raw, own):
                found = True
                break
        branch.aliased = found
    return found


def branches_in(ctx: BaseModel, owner: Branch) -> list[Branch]:
    """``owner`` and every other branch whose containers ``ctx``'s fields (and its nested
    models' fields) hold: a retried attempt is undone by putting a fresh copy's values, made by
    a branch of their own, into the context."""
    found = {id(owner): owner}
    seen: set[int] = set()
    todo: list[Any] = [ctx]
    while todo:
        model = todo.pop()
        if id(model) in seen:
            continue
        seen.add(id(model))
        for value in [*model.__dict__.values(), *(model.__pydantic_extra__ or {}).values()]:
            kind = type(value)
            if kind is CowList or kind is CowDict:
                found.setdefault(id(value.branch), value.branch)
            elif isinstance(value, BaseModel):
                todo.append(value)
    return list(found.values())


def view(value: Any) -> Any:
    """A plain deep copy of ``value`` (a branch context, or something a branch returned) read
    through the copy-on-write containers' methods: every place shows the branch's object."""
    return copy.deepcopy(value)


def view_context(ctx: BaseModel) -> BaseModel:
    """:func:`view` of a branch context."""
    copied: BaseModel = copy.deepcopy(ctx)
    return copied
