"""The walk over the change tree (:mod:`flowlab.core.merge.nodes`) that decides each path by its rule.

Every branch's changes (its diff against the base) go into one tree of :class:`ChangeNode`, one node
per changed path, each knowing which branches (*writers*) changed it or below. :class:`_Merger`
walks that tree down from the root model, deciding each path by its rule and writing one report
row per decided path (a tuple in a :class:`~flowlab.core.merge.report.MergeReport`, made a dict
only when read). :func:`flowlab.core.merge.three_way.merge_branches` builds the tree and drives
the walk.

The walk is the merge's hot path: most paths of a real merge are dict keys that one branch wrote,
or plain values several branches wrote. :meth:`_Merger.keyed` dispatches those itself, per key,
once (not per writer), so they cost a few operations, not a chain of calls and ``isinstance``
checks; everything else goes through :meth:`_Merger.tree`.
"""

from __future__ import annotations

import copy
from collections.abc import Hashable
from collections.abc import Set as AbstractSet
from typing import Any, TypeVar

from pydantic import BaseModel

from flowlab.core.context.changes import MISSING, Change, diff_value, same
from flowlab.core.context.equality import plain_type as _kind
from flowlab.core.context.tracking import TrackedDict
from flowlab.core.merge import lists
from flowlab.core.merge.checks import field_rules
from flowlab.core.merge.nodes import (
    _NONE,
    ChangeNode,
    Dropped,
    branch_value,
    branch_values,
)
from flowlab.core.merge.report import MergeReport, dotted
from flowlab.core.merge.rules import Rule
from flowlab.core.merge.validate import validate
from flowlab.errors import MergeValidationError

__all__: list[str] = []  # internal: the walk; see three_way.merge_branches

M = TypeVar("M", bound=BaseModel)


_DICTS = (dict, TrackedDict)
_CONTAINERS = frozenset({dict, list})  # the only values expand() turns into per-key changes

_dotted = dotted


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _removes(node: ChangeNode) -> bool:
    """Whether a branch removed a key right under ``node`` (such a dict is copied, not written
    in place: putting a removed key back would move it to the end)."""
    return any(
        child.direct and any(v is MISSING for v in child.direct.values())
        for child in node.children.values()
    )


class _Merger:
    """Walks the change tree of one merge, deciding each path by its rule, writing report rows."""

    def __init__(self, names: list[str], *, reuse_base: bool = False) -> None:
        self.names = names
        # With reuse_base, base dicts are written in place; (dict, key, old value) per write,
        # replayed backwards by undo_writes() if the merge fails.
        self.undo: list[tuple[dict[Any, Any], Hashable, Any]] | None = [] if reuse_base else None
        self.rows = MergeReport(names)  # a row per decided path, made a dict when read
        self.overrides: dict[str, Rule] = {}  # field rules of the root model, replaced
        # the step's strategy is error_on_conflict: a field rule's recorded conflicts raise too
        self.strict = False
        self.conflicts: list[tuple[str, dict[str, Any]]] = []
        # every dict built from its base by writing some keys: validated at those keys only
        self.written: dict[int, tuple[dict[Any, Any], AbstractSet[Any]]] = {}

    def value_of(self, i: int, node: ChangeNode, before: Any) -> Any:
        """Branch ``i``'s value at ``node``'s path, whose base value is ``before``."""
        return node.direct[i] if i in node.direct else branch_value(node, i, before)

    def values_of(self, node: ChangeNode, before: Any) -> dict[int, Any]:
        """:meth:`value_of` for every writer of ``node``, in writer order."""
        return branch_values(node, node.writers, before)

    def row(
        self,
        keys: tuple[Hashable, ...],
        rule: str,
        node: ChangeNode,
        winner: int | None,
        before: Any,
        after: Any,
        *,
        conflict: bool = False,
        dropped: tuple[str, ...] | Dropped = (),
    ) -> None:
        """Report one decided path (a tuple now; a dict when the report is read)."""
        entry = (keys, rule, node.writers, winner, before, after, conflict, dropped)
        self.rows.entries.append(entry)

    def model(
        self,
        node: ChangeNode,
        before: BaseModel,
        keys: tuple[Hashable, ...],
        rule: Rule,
        label: str,
        inherit: bool,
    ) -> BaseModel:
        cls = type(before)
        own = field_rules(cls)
        if self.overrides and not keys:
            own = {**own, **self.overrides}
        data = dict(before.__dict__)
        changed = [name for name in cls.model_fields if name in node.children]
        for name in changed:
            child, sub = node.children[name], own.get(name)
            if sub is None:
                data[name] = self.field(rule, label, inherit, child, data[name], (*keys, name))
            else:
                data[name] = self.field(sub, sub.name, False, child, data[name], (*keys, name))
        extras = self.extras(node, before, keys, rule, label, inherit)
        new = validate(cls, data, before, changed, _dotted(keys), self.rows, self.written)
        if extras is not None:
            object.__setattr__(new, "__pydantic_extra__", extras)
        return new

    def extras(
        self,
        node: ChangeNode,
        before: BaseModel,
        keys: tuple[Hashable, ...],
        rule: Rule,
        label: str,
        inherit: bool,
    ) -> dict[str, Any] | None:
        """A model's merged extras (``extra="allow"``), decided by the step's rule like fields;
        None when no branch changed one."""
        cls = type(before)
        fields, private = cls.model_fields, cls.__private_attributes__
        if not private and before.__pydantic_extra__ is None:
            return None  # no extras allowed, no private attributes: every child is a field
        names = [name for name in node.children if name not in fields and name not in private]
        for name in node.children:
            if name in private:  # a branch's private attribute is not merged: shown as dropped
                child = node.children[name]
                old = (before.__pydantic_private__ or {}).get(name, MISSING)
                dropped = tuple(self.names[i] for i in child.writers)
                self.row(
                    (*keys, name), "private (not merged)", child, None, old, old, dropped=dropped
                )
        if not names:
            return None
        out: dict[Any, Any] = dict(before.__pydantic_extra__ or {})
        for name in names:
            old = out.get(name, MISSING)
            value = self.field(rule, label, inherit, node.children[name], old, (*keys, name))
            if value is MISSING:
                out.pop(name, None)
            else:
                out[name] = value
        return out

    def field(
        self,
        rule: Rule,
        label: str,
        inherit: bool,
        node: ChangeNode,
        before: Any,
        keys: tuple[Hashable, ...],
    ) -> Any:
        """Decide a model field: a whole-value rule decides it at once (:meth:`Rule.decide`),
        a combining rule path by path (:meth:`tree`)."""
        if rule.whole:
            return rule.decide(self, node, before, keys, label, inherit)
        return self.tree(node, before, keys, rule, label, inherit)

    def tree(
        self,
        node: ChangeNode,
        before: Any,
        keys: tuple[Hashable, ...],
        rule: Rule,
        label: str,
        inherit: bool,
    ) -> Any:
        if rule.strict:
            # dicts (lists) written whole are compared key by key (by position), as edits under
            # an existing key (of an existing list) are: a list new in two branches merges over []
            if node.direct and not (
                len(node.writers) > 1
                and _kind(next(iter(node.direct.values()))) in _CONTAINERS
                and self.expand(node, before, keys, rule)
            ):
                return self.agreed(node, before, keys, label)
            if node.items:
                return self.list_merge(node, before, keys, rule, label)
        direct = node.direct
        if direct and (
            _kind(next(iter(direct.values()))) not in _CONTAINERS  # nothing to expand
            or not self.expand(node, before, keys, rule)
        ):
            return self.leaf(node, before, keys, rule, label)
        if node.items:
            return self.list_merge(node, before, keys, rule, label)
        if type(before) not in _DICTS and isinstance(before, BaseModel):
            return self.model(node, before, keys, rule, label, inherit)
        return self.keyed(node, before, keys, rule, label, inherit)

    def keyed(
        self,
        node: ChangeNode,
        before: Any,
        keys: tuple[Hashable, ...],
        rule: Rule,
        label: str,
        inherit: bool,
        field: bool = True,
    ) -> Any:
        """A dict (or nothing yet) that branches changed below: each changed key decided by the
        rule, into a copy of ``before`` or, with ``reuse_base``, into ``before`` itself. The
        keys written are noted for :func:`validate` unless ``field`` is False (a dict inside a
        dict, which no model field holds)."""
        undo = self.undo
        if undo is not None and type(before) in _DICTS and not _removes(node):
            out = before  # written in place, each write logged (see undo_writes)
        else:
            # a plain copy of a (tracked) dict; a Counter / OrderedDict / defaultdict keeps its type
            if type(before) in _DICTS:
                out = dict(before)
            else:
                out = copy.copy(before) if isinstance(before, dict) else {}
            undo = None
        # tree() for each key, its dispatch done here for the common cases: a key written whole
        # to a plain value (nothing to expand) is a leaf (leaf()), and one that a single branch
        # wrote takes its value under every rule but the comparing ones, without even that
        # call; a dict changed below is keyed(). (Strict rules compare every path in tree().)
        entries = self.rows.entries
        leaves, lone = not rule.strict, not rule.compares
        for key, child in node.children.items():
            old = out.get(key, MISSING)
            direct = child.direct
            if direct and leaves:
                writers = child.writers
                if len(writers) > 1:  # is the first writer's value a container to go into?
                    plain = _kind(next(iter(direct.values()))) not in _CONTAINERS
                    value = (
                        self.leaf(child, old, (*keys, key), rule, label)
                        if plain
                        else self.tree(child, old, (*keys, key), rule, label, inherit)
                    )
                else:
                    i = writers[0]
                    value = direct[i]  # (its only writer wrote it whole)
                    if _kind(value) in _CONTAINERS:
                        value = self.tree(child, old, (*keys, key), rule, label, inherit)
                    elif lone:
                        entries.append(((*keys, key), label, writers, i, old, value, False, ()))
                    else:
                        value = self.leaf(child, old, (*keys, key), rule, label)
            elif not direct and not child.items and type(old) in _DICTS:
                value = self.keyed(child, old, (*keys, key), rule, label, inherit, False)
            else:
                value = self.tree(child, old, (*keys, key), rule, label, inherit)
            if undo is not None:
                undo.append((out, key, old))
            if value is MISSING:
                out.pop(key, None)
            else:
                out[key] = value
        if field:  # (validate() looks a dict up only where a model field holds it)
            self.written[id(out)] = (out, node.children.keys())
        return out

    def undo_writes(self) -> None:
        """Put back every value written in place into a base dict (the merge failed)."""
        if self.undo:
            for target, key, old in reversed(self.undo):
                if old is MISSING:  # only keys the merge added: re-adding nothing, order kept
                    dict.pop(target, key, None)
                else:
                    dict.__setitem__(target, key, old)
            self.undo.clear()

    def expand(self, node: ChangeNode, before: Any, keys: tuple[Hashable, ...], rule: Rule) -> bool:
        """Turn whole-value writes of dicts (lists) into per-key (per-item) changes, so several
        writers combine instead of the last one winning. False when the values do not allow it."""
        values = list(node.direct.values())
        kind = _kind(values[0])
        if kind is not dict and kind is not list:
            return False
        if len(node.writers) < 2 and not rule.expands_alone:
            return False
        empty = before is MISSING or before is None
        if not (empty or _kind(before) is kind) or any(_kind(v) is not kind for v in values):
            return False
        base: Any = kind() if empty else before
        if all(same(base, v) for v in values):
            return False  # nothing to combine (e.g. an empty list new in every writer): a leaf
        direct, node.direct = node.direct, _NONE
        node.replaced = direct  # still each branch's value here (see branch_value)
        for i, value in direct.items():
            if not same(base, value):
                out: list[Change] = []
                diff_value(base, value, keys, out)
                for change in out:
                    node.insert(i, change.key_path[len(keys) :], change)
        return True

    def agreed(self, node: ChangeNode, before: Any, keys: tuple[Hashable, ...], label: str) -> Any:
        values = list(self.values_of(node, before).values())
        if all(same(values[0], v) for v in values[1:]):
            self.row(keys, label, node, node.writers[-1], before, values[-1])
            return values[-1]
        self.conflicts.append(
            (_dotted(keys), {self.names[i]: v for i, v in zip(node.writers, values, strict=True)})
        )
        self.row(keys, label, node, None, before, None, conflict=True)
        return before

    def leaf(
        self, node: ChangeNode, before: Any, keys: tuple[Hashable, ...], rule: Rule, label: str
    ) -> Any:
        """A path written whole (not a container to go into): the rule combines its writers'
        values (:meth:`Rule.combine`)."""
        writers = node.writers
        direct = node.direct
        if len(writers) == 1 and not rule.compares:
            # one writer: every other rule takes its value as it is (the common case of a
            # per-key merge: each key written by one branch)
            i = writers[0]
            after = direct[i] if i in direct else self.value_of(i, node, before)
            self.rows.entries.append((keys, label, writers, i, before, after, False, ()))
            return after
        if len(direct) == len(writers):  # every writer wrote this very path
            # filed in writer order (unless expand() filed some later): then taken in one go
            ordered = list(direct) == writers
            values = list(direct.values()) if ordered else [direct[i] for i in writers]
        else:
            values = list(self.values_of(node, before).values())
        after, at, picked = rule.combine(before, values)
        winner = None if at is None else writers[at]
        if picked and winner is not None and len(writers) > 1:  # who lost: worked out when read
            dropped: Any = Dropped.by_values(values, writers, winner, self.names)
        else:
            dropped = ()
        self.rows.entries.append((keys, label, writers, winner, before, after, False, dropped))
        return after

    def list_merge(
        self, node: ChangeNode, before: Any, keys: tuple[Hashable, ...], rule: Rule, label: str
    ) -> list[Any]:
        """Combine every writer's edit of a list by position (see :mod:`flowlab.core.merge.lists`),
        de-duplicated as the rule asks, and report it; colliding edits are a conflict."""
        base = before if isinstance(before, list) else []
        if rule.strict and len(node.writers) > 1:
            agreed = list(self.values_of(node, before).values())
            if all(same(agreed[0], v) for v in agreed[1:]):  # equal values never conflict
                self.row(keys, label, node, node.writers[-1], before, agreed[-1])
                return agreed[-1]  # type: ignore[no-any-return]
        merged = lists.combine_edits(node.items, node.writers, base)
        out = merged.items
        dedupe, key = rule.dedupe_key()
        if dedupe:
            try:
                out = lists.dedupe(out, key, merged.inserted)
            except (KeyError, AttributeError, TypeError) as err:  # an item without the key
                raise MergeValidationError(
                    f"the rule {rule!r} at {_dotted(keys)!r} (writers "
                    f"{', '.join(self.names[i] for i in node.writers)}) could not read the key of "
                    f"an item: {type(err).__name__}: {err}; nothing was merged. Items: "
                    f"{_short(out)}",
                    report=self.rows,
                ) from err
        if merged.conflict and rule.strict:
            values = self.values_of(node, before)
            self.conflicts.append((_dotted(keys), {self.names[i]: v for i, v in values.items()}))
        winner = node.writers[0] if len(node.writers) == 1 else None
        self.row(keys, label, node, winner, before, out, conflict=merged.conflict)
        return out
