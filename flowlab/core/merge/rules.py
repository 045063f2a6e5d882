"""The per-field merge rules: :class:`Rule` and its subclasses.

A rule goes in a field's ``Annotated`` metadata (``Annotated[int, fl.merge.Sum()]``) or is given
as a step's ``merge=``. A rule carries its behavior, as a plot mark carries its drawing:

* a *whole-value* rule (``whole = True``: ``Overwrite``, ``KeepFirst``, ``Custom``, ``Ignore``, and
  ``Single`` / ``Upsert`` / ``Reduce`` in :mod:`flowlab.core.merge.keyed`) decides a field at once in
  :meth:`Rule.decide`;
* a *combining* rule lets the walk (:mod:`flowlab.core.merge.tree`) go down dicts, nested models and
  lists, and decides each leaf several branches wrote in :meth:`Rule.combine`; its flags say how
  the walk treats it (``expands_alone``, ``compares``, ``strict``, :meth:`Rule.dedupe_key`).

:mod:`flowlab.core.merge.checks` checks that a rule fits its field's type before anything runs.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel

from flowlab.core.context.changes import MISSING
from flowlab.core.context.equality import repeat_key, same
from flowlab.core.context.paths import dotted
from flowlab.core.merge.combine import is_number, plain_total, sets, summable, total
from flowlab.core.merge.nodes import ChangeNode, Dropped
from flowlab.errors import ConfigError, MergeValidationError

if TYPE_CHECKING:
    from flowlab.core.merge.tree import _Merger

__all__ = [
    "Append",
    "Custom",
    "DeepMerge",
    "ErrorOnConflict",
    "Ignore",
    "KeepFirst",
    "Max",
    "Min",
    "Overwrite",
    "Rule",
    "Sum",
    "Union",
]

_NO_DEDUPE: tuple[bool, Callable[[Any], Any] | None] = (False, None)


@dataclass(frozen=True, repr=False)
class Rule:
    """Base of the per-field merge rules, used as ``Annotated[int, fl.merge.Sum()]`` metadata.

    A rule decides the merged value of one field from the base value and the values of the
    branches that changed it (its *writers*, in merge order). Rules that combine values (``Sum``,
    ``Max``, ``Min``, ``DeepMerge``, ``Append``, ``Union``) recurse into nested models and, where
    it makes sense, into dict keys; the others decide for the field as a whole.
    """

    label: ClassVar[str] = "rule"
    kinds: ClassVar[frozenset[str] | None] = None  # the value kinds it fits; None: any
    per_key: ClassVar[bool] = False  # applies per key inside dicts
    needs: ClassVar[str] = "any value"
    whole: ClassVar[bool] = False  # decides a field at once (decide), not path by path
    expands_alone: ClassVar[bool] = False  # splits even one writer's whole dict / list into keys
    compares: ClassVar[bool] = False  # looks at the base even for a path one branch wrote
    strict: ClassVar[bool] = False  # colliding writes are a MergeConflict

    @property
    def name(self) -> str:
        """Short name shown in merge reports: ``"sum"``, ``"union"``, ..."""
        return self.label

    def combine(self, before: Any, values: list[Any]) -> tuple[Any, int | None, bool]:
        """A leaf's merged value from its writers' ``values`` (in merge order): ``(after, the
        position of the writer whose value was taken or None, whether the others' writes were
        dropped)``. Default: the last writer wins."""
        return values[-1], len(values) - 1, True

    def dedupe_key(self) -> tuple[bool, Callable[[Any], Any] | None]:
        """Whether a merged list drops repeated inserted items, and the key it compares by."""
        return _NO_DEDUPE

    def fold(self, before: Any, value: Any) -> Any:
        """The field's new value when a step returns ``fl.Update(field=value)`` on one context
        (see :mod:`flowlab.core.update`): ``value`` itself, unless the rule accumulates, when
        ``value`` is the step's contribution (``Sum``: added; ``Append``: appended ...)."""
        return value

    def decide(
        self,
        merger: _Merger,
        node: ChangeNode,
        before: Any,
        keys: tuple[Hashable, ...],
        label: str,
        inherit: bool,
    ) -> Any:
        """A whole-value rule's merged value of a field (``whole = True`` rules only)."""
        raise NotImplementedError(f"{type(self).__name__} combines path by path")

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


@dataclass(frozen=True, repr=False)
class Overwrite(Rule):
    """The last writer in merge order wins; its value replaces the field whole."""

    label = "overwrite"
    whole = True
    first: ClassVar[bool] = False

    def decide(
        self,
        merger: _Merger,
        node: ChangeNode,
        before: Any,
        keys: tuple[Hashable, ...],
        label: str,
        inherit: bool,
    ) -> Any:
        if inherit and isinstance(before, BaseModel) and node.children and not node.direct:
            return merger.model(node, before, keys, self, label, inherit)  # per nested field
        i = node.writers[0] if self.first else node.writers[-1]
        after = merger.value_of(i, node, before)
        if len(node.writers) == 1:
            merger.row(keys, label, node, i, before, after)
        else:  # who lost is worked out when the report is read
            merger.row(
                keys,
                label,
                node,
                i,
                before,
                after,
                dropped=Dropped.by_changes(node, i, merger.names),
            )
        return after


@dataclass(frozen=True, repr=False)
class KeepFirst(Overwrite):
    """The first writer in merge order wins; its value replaces the field whole."""

    label = "keep_first"
    first = True


@dataclass(frozen=True, repr=False)
class DeepMerge(Rule):
    """Dicts merged key by key recursively, lists get the items branches appended, sets get the
    items branches added (minus those removed), other values: last writer wins."""

    label = "deep"

    def combine(self, before: Any, values: list[Any]) -> tuple[Any, int | None, bool]:
        merged = sets(before, values)
        return merged if merged is not None else (values[-1], len(values) - 1, True)


@dataclass(frozen=True, repr=False)
class Append(Rule):
    """Lists: every branch's edit is applied to the base; items appended by several branches are
    all kept, in merge order (``['w'] + [x, y] + [y, z] -> [w, x, y, y, z]``)."""

    label = "append"
    kinds = frozenset({"list"})
    needs = "a list"

    def fold(self, before: Any, value: Any) -> Any:
        return [*before, *_items(value)]


@dataclass(frozen=True, repr=False)
class Union(Rule):
    """Like :class:`Append`, then de-duplicated in order (first occurrence kept).

    Parameters
    ----------
    key : str or callable, optional
        Compare items by ``key(item)``, or by an attribute (or dict key) of that name.
    """

    key: str | Callable[[Any], Any] | None = None
    label = "union"
    kinds = frozenset({"list", "set"})
    needs = "a list or a set"
    expands_alone = True

    def combine(self, before: Any, values: list[Any]) -> tuple[Any, int | None, bool]:
        merged = sets(before, values)
        return merged if merged is not None else (values[-1], len(values) - 1, True)

    def dedupe_key(self) -> tuple[bool, Callable[[Any], Any] | None]:
        return True, None if self.key is None else self.key_of  # None: by repeat_key, in C

    def fold(self, before: Any, value: Any) -> Any:
        items = _items(value)
        if isinstance(before, set | frozenset):
            return type(before)(before | set(items))
        out, seen = list(before), [self.key_of(item) for item in before]
        for item in items:
            key = self.key_of(item)
            if key not in seen:  # (by equality: keys need not hash)
                out.append(item)
                seen.append(key)
        return out

    def key_of(self, item: Any) -> Any:
        """The value ``item`` is de-duplicated by (itself, as :func:`repeat_key` tells
        repeats: ``True`` is not a repeat of ``1``)."""
        if self.key is None:
            return repeat_key(item)
        if isinstance(self.key, str):
            return item[self.key] if isinstance(item, dict) else getattr(item, self.key)
        return self.key(item)

    def __repr__(self) -> str:
        if self.key is None:
            return "Union()"
        shown = repr(self.key) if isinstance(self.key, str) else _fn_name(self.key)
        return f"Union(key={shown})"


@dataclass(frozen=True, repr=False)
class Sum(Rule):
    """Numbers add the branches' deltas: ``base + Σ(branch − base)``; per key for dict counters."""

    label = "sum"
    kinds = frozenset({"number"})
    per_key = True
    needs = "numbers (or a dict of numbers)"

    def combine(self, before: Any, values: list[Any]) -> tuple[Any, int | None, bool]:
        after = plain_total(before, values)
        if after is not None:  # plain ints and floats, the common case
            return after, (0 if len(values) == 1 else None), False
        if summable(before, values, removals_count=True):
            return total(before, values), (0 if len(values) == 1 else None), False
        return values[-1], len(values) - 1, True

    def fold(self, before: Any, value: Any) -> Any:
        if isinstance(before, dict) and isinstance(value, dict):  # a counter: per key
            return {**before, **{k: before.get(k, 0) + v for k, v in value.items()}}
        if not (is_number(before) and is_number(value)):
            raise TypeError("Sum adds numbers (or dicts of numbers) to numbers")
        return before + value


@dataclass(frozen=True, repr=False)
class Max(Rule):
    """The largest of the base value and the writers' values; per key for dicts."""

    label = "max"
    kinds = frozenset({"number", "ordered"})
    per_key = True
    needs = "orderable values: numbers, str, dates (or a dict of them)"
    expands_alone = True
    compares = True
    pick: ClassVar[Callable[..., Any]] = max

    def combine(self, before: Any, values: list[Any]) -> tuple[Any, int | None, bool]:
        candidates = [v for v in [before, *values] if v is not MISSING]
        after = type(self).pick(candidates) if candidates else MISSING
        if same(before, after):
            return after, None, False
        return after, next(n for n, v in enumerate(values) if same(v, after)), False


@dataclass(frozen=True, repr=False)
class Min(Max):
    """The smallest of the base value and the writers' values; per key for dicts."""

    label = "min"
    pick = min


@dataclass(frozen=True, repr=False)
class ErrorOnConflict(Rule):
    """Raise :class:`~flowlab.errors.MergeConflict` when two branches wrote one path to
    different values. One writer, or equal values, is never a conflict; dicts are compared key
    by key, lists by position (edits that collide are a conflict; items inserted at one place
    by several branches are all kept), as ``deep`` merges them."""

    label = "error_on_conflict"
    compares = True
    strict = True


@dataclass(frozen=True, repr=False)
class Custom(Rule):
    """Decide the field with ``fn(base_value, {branch: value}) -> value`` (writers only)."""

    fn: Callable[[Any, dict[str, Any]], Any]
    label = "custom"
    whole = True

    def __post_init__(self) -> None:
        _check_two_args("fn", self.fn, "fn(base_value, {branch: value}) -> value")

    def decide(
        self,
        merger: _Merger,
        node: ChangeNode,
        before: Any,
        keys: tuple[Hashable, ...],
        label: str,
        inherit: bool,
    ) -> Any:
        """The user's function decides. It gets a copy of the base value (what it does to it
        never reaches the parent); an error it raises names the path, the writers and the rule,
        with the rows decided so far."""
        values = {merger.names[i]: v for i, v in merger.values_of(node, before).items()}
        try:
            own = copy.deepcopy(before)
        except Exception:  # a value deepcopy refuses is given as it is
            own = before
        try:
            after = self.fn(own, values)
        except Exception as err:
            raise MergeValidationError(
                f"the rule {self!r} at {dotted(keys)!r} (writers "
                f"{', '.join(values)}) raised {type(err).__name__}: {err}; nothing was merged.",
                report=merger.rows,
            ) from err
        merger.row(keys, label, node, None, before, after)
        return after

    @property
    def name(self) -> str:
        return f"custom:{_fn_name(self.fn)}"

    def __repr__(self) -> str:
        return f"Custom({_fn_name(self.fn)})"


@dataclass(frozen=True, repr=False)
class Ignore(Rule):
    """The field keeps its base value, whatever the branches did."""

    label = "ignore"
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
        merger.row(keys, label, node, None, before, before)
        return before


def _fn_name(fn: object) -> str:
    return str(getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn))


def _check_two_args(param: str, fn: object, shape: str) -> None:
    if not callable(fn):
        raise ConfigError(f"{param}={fn!r} is not callable; expected {shape}.")
    try:
        inspect.signature(fn).bind(None, None)
    except TypeError as err:
        raise ConfigError(
            f"{param}={_fn_name(fn)} must accept two arguments: {shape} ({err})."
        ) from err
    except ValueError:  # no signature (some builtins): trust it
        pass


def _items(value: Any) -> list[Any]:
    """The items a step contributes to a list field (``fl.Update(tags=[...])``)."""
    if isinstance(value, str | bytes | dict) or not hasattr(value, "__iter__"):
        raise TypeError(f"give the items to add as a list, not {type(value).__name__}")
    return list(value)
