"""The whole-value rules peers ask for: :class:`Single` (LangGraph's LastValue),
:class:`Upsert` (``add_messages``) and :class:`Reduce` (reducers such as ``operator.add``).

Each decides one field from the base value and its writers' whole values (rebuilt from their
diffs), writes one report row, and flags what it cannot combine: a ``conflict=True`` row, which
``Single`` also turns into a :class:`~flowlab.errors.MergeConflict`.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flowlab.core.context.changes import MISSING, list_slice, same
from flowlab.core.context.paths import dotted
from flowlab.core.merge import lists
from flowlab.core.merge.nodes import ChangeNode
from flowlab.core.merge.rules import Rule, _check_two_args, _fn_name, _items
from flowlab.errors import MergeValidationError

if TYPE_CHECKING:
    from flowlab.core.merge.tree import _Merger

__all__ = ["Reduce", "Single", "Upsert", "contribution", "decide"]


@dataclass(frozen=True, repr=False)
class _Keyed(Rule):
    """A whole-value rule decided by :func:`decide` (one writer's value, or all of them)."""

    whole = True

    def decide(
        self,
        merger: _Merger,
        node: ChangeNode,
        before: Any,
        keys: tuple[Hashable, ...],
        label: str,
        inherit: bool,
    ) -> Any:
        return decide(merger, self, node, before, keys, label)


@dataclass(frozen=True, repr=False)
class Reduce(_Keyed):
    """Fold ``fn(acc, contribution)`` over the writers' contributions, in merge order, from the
    base value (LangGraph's reducers; ``Annotated[list, operator.add]`` is ``Reduce(operator.add)``).

    A branch's *contribution* is what it added: for a list, the items it inserted (items it
    removed are removed from the starting value); for a number, its delta; for a string it
    extended, the suffix; otherwise its value. A string edited other than by appending is
    folded whole and its report row is a conflict.

    Examples
    --------
    >>> import operator
    >>> Reduce(operator.add)
    Reduce(add)
    """

    fn: Callable[[Any, Any], Any]
    label = "reduce"

    def __post_init__(self) -> None:
        _check_two_args("fn", self.fn, "fn(accumulated, contribution) -> value")

    @property
    def name(self) -> str:
        return f"reduce:{_fn_name(self.fn)}"

    def fold(self, before: Any, value: Any) -> Any:
        return self.fn(before, value)

    def __repr__(self) -> str:
        return f"Reduce({_fn_name(self.fn)})"


@dataclass(frozen=True, repr=False)
class Upsert(_Keyed):
    """Lists of keyed items (LangGraph's ``add_messages``): an item whose key is in the base
    replaces that item in place, new keys are appended in merge order, a key a branch removed is
    deleted. Two branches writing one key differently is a conflict row (the last in merge order
    wins).

    Parameters
    ----------
    key : str or callable, default "id"
        The item's key: ``key(item)``, or the attribute (or dict key) of that name.
    """

    key: str | Callable[[Any], Any] = "id"
    label = "upsert"
    kinds = frozenset({"list"})
    needs = "a list of keyed items"

    def key_of(self, item: Any) -> Any:
        """The key of ``item``; ``KeyError`` / ``AttributeError`` when it has none."""
        if isinstance(self.key, str):
            return item[self.key] if isinstance(item, dict) else getattr(item, self.key)
        return self.key(item)

    def fold(self, before: Any, value: Any) -> Any:
        out = list(before)
        where = {_key(self, item): i for i, item in enumerate(out)}
        for item in _items(value):
            k = _key(self, item)
            if k in where:
                out[where[k]] = item  # replaced in place
            else:
                where[k] = len(out)
                out.append(item)
        return out

    def __repr__(self) -> str:
        shown = repr(self.key) if isinstance(self.key, str) else _fn_name(self.key)
        return f"Upsert(key={shown})"


@dataclass(frozen=True, repr=False)
class Single(_Keyed):
    """At most one writer (LangGraph's ``LastValue``): two branches writing the field raise
    :class:`~flowlab.errors.MergeConflict`, even with equal values."""

    label = "single"


def decide(
    merger: _Merger,
    rule: Rule,
    node: ChangeNode,
    before: Any,
    keys: tuple[Hashable, ...],
    label: str,
) -> Any:
    """The merged value of a field under ``Single``, ``Upsert`` or ``Reduce``."""
    values = merger.values_of(node, before)
    names = merger.names
    path = dotted(keys)
    if isinstance(rule, Single):
        if len(values) > 1:
            merger.conflicts.append((path, {names[i]: v for i, v in values.items()}))
            merger.row(keys, label, node, None, before, None, conflict=True)
            return before
        ((i, after),) = values.items()
        merger.row(keys, label, node, i, before, after)
        return after
    try:
        if isinstance(rule, Upsert):
            after, conflict, dropped = _upsert(rule, before, values, names)
        else:
            assert isinstance(rule, Reduce)
            after, conflict = _reduce(rule, before, list(values.values()))
            dropped = ()
    except Exception as err:
        raise MergeValidationError(
            f"the rule {rule!r} at {path!r} (writers {', '.join(names[i] for i in values)}) "
            f"raised {type(err).__name__}: {err}; nothing was merged.",
            report=merger.rows,
        ) from err
    winner = next(iter(values)) if len(values) == 1 else None
    merger.row(keys, label, node, winner, before, after, conflict=conflict, dropped=dropped)
    if conflict and merger.strict:  # under error_on_conflict a collision raises
        merger.conflicts.append((path, {names[i]: v for i, v in values.items()}))
    return after


def _upsert(
    rule: Upsert, before: Any, values: dict[int, Any], names: list[str]
) -> tuple[list[Any], bool, tuple[str, ...]]:
    base = list(before) if isinstance(before, list) else []
    order = [_key(rule, item) for item in base]
    kept: dict[Any, Any] = dict(zip(order, base, strict=True))
    deleted: set[Any] = set()
    written: dict[Any, tuple[int, Any]] = {}  # key -> (writer, item) for replaced and new keys
    new_keys: list[Any] = []
    conflict = False
    losers: list[str] = []
    for i, value in values.items():
        items = {_key(rule, item): item for item in (value if isinstance(value, list) else [])}
        deleted.update(k for k in order if k not in items)
        for k, item in items.items():
            if k in kept and same(kept[k], item):
                continue  # untouched
            if k in written and not same(written[k][1], item):
                conflict = True  # two branches wrote one key differently: the last one wins
                losers.append(names[written[k][0]])
            if k not in kept and k not in written:
                new_keys.append(k)
            written[k] = (i, item)
    if deleted & written.keys():
        conflict = True  # one branch deleted what another one wrote: the deletion wins
    out = [written[k][1] if k in written else kept[k] for k in order if k not in deleted]
    out.extend(written[k][1] for k in new_keys)
    return out, conflict, tuple(dict.fromkeys(losers))


def _key(rule: Upsert, item: Any) -> Any:
    try:
        return rule.key_of(item)
    except (KeyError, AttributeError, TypeError) as err:
        raise ValueError(f"item {item!r} has no key {rule.key!r}") from err


def contribution(before: Any, value: Any) -> tuple[Any, bool]:
    """What a writer added to ``before`` (see :class:`~flowlab.core.merge.Reduce`), and whether it
    could only be taken whole although an addition was expected (a string not appended to)."""
    if isinstance(before, list) and isinstance(value, list):
        start, end_old, end_new = list_slice(before, value)
        hunks = lists.align(before, start, end_old, list(value[start:end_new]))
        return [item for hunk in hunks for item in hunk.added], False
    if _number(before) and _number(value):
        return value - before, False
    if isinstance(before, str) and isinstance(value, str):
        if value.startswith(before):
            return value[len(before) :], False
        return value, True
    return value, False


def _reduce(rule: Reduce, before: Any, values: list[Any]) -> tuple[Any, bool]:
    acc: Any = before
    if isinstance(before, list):  # items any writer removed are gone before the fold
        removed: set[int] = set()
        for value in values:
            if isinstance(value, list):
                start, end_old, end_new = list_slice(before, value)
                for hunk in lists.align(before, start, end_old, list(value[start:end_new])):
                    removed.update(range(hunk.start, hunk.end))
        acc = [item for k, item in enumerate(before) if k not in removed]
    conflict = False
    for value in values:
        part, whole = contribution(before, value)
        conflict |= whole
        acc = value if acc is MISSING else rule.fn(acc, part)
    return acc, conflict


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
