"""The per-field merge rules: :class:`Rule` and its subclasses.

A rule goes in a field's ``Annotated`` metadata (``Annotated[int, fl.merge.Sum()]``) or is given
as a step's ``merge=``. It only names how values combine: :mod:`flowlab.merge.checks` checks that
it fits its field's type, and :mod:`flowlab.merge.tree` applies it during a merge.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from flowlab.errors import ConfigError

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
    "Reduce",
    "Rule",
    "Single",
    "Sum",
    "Union",
    "Upsert",
]


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

    @property
    def name(self) -> str:
        """Short name shown in merge reports: ``"sum"``, ``"union"``, ..."""
        return self.label

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


@dataclass(frozen=True, repr=False)
class Overwrite(Rule):
    """The last writer in merge order wins; its value replaces the field whole."""

    label = "overwrite"


@dataclass(frozen=True, repr=False)
class KeepFirst(Rule):
    """The first writer in merge order wins; its value replaces the field whole."""

    label = "keep_first"


@dataclass(frozen=True, repr=False)
class DeepMerge(Rule):
    """Dicts merged key by key recursively, lists get the items branches appended, sets get the
    items branches added (minus those removed), other values: last writer wins."""

    label = "deep"


@dataclass(frozen=True, repr=False)
class Append(Rule):
    """Lists: every branch's edit is applied to the base; items appended by several branches are
    all kept, in merge order (``['w'] + [x, y] + [y, z] -> [w, x, y, y, z]``)."""

    label = "append"
    kinds = frozenset({"list"})
    needs = "a list"


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

    def key_of(self, item: Any) -> Any:
        """The value ``item`` is de-duplicated by."""
        if self.key is None:
            return item
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


@dataclass(frozen=True, repr=False)
class Max(Rule):
    """The largest of the base value and the writers' values; per key for dicts."""

    label = "max"
    kinds = frozenset({"number", "ordered"})
    per_key = True
    needs = "orderable values: numbers, str, dates (or a dict of them)"


@dataclass(frozen=True, repr=False)
class Min(Rule):
    """The smallest of the base value and the writers' values; per key for dicts."""

    label = "min"
    kinds = frozenset({"number", "ordered"})
    per_key = True
    needs = "orderable values: numbers, str, dates (or a dict of them)"


@dataclass(frozen=True, repr=False)
class ErrorOnConflict(Rule):
    """Raise :class:`~flowlab.errors.MergeConflict` when two branches wrote one path to
    different values. One writer, or equal values, is never a conflict; dicts are compared key
    by key, lists as whole values."""

    label = "error_on_conflict"


@dataclass(frozen=True, repr=False)
class Custom(Rule):
    """Decide the field with ``fn(base_value, {branch: value}) -> value`` (writers only)."""

    fn: Callable[[Any, dict[str, Any]], Any]
    label = "custom"

    def __post_init__(self) -> None:
        _check_two_args("fn", self.fn, "fn(base_value, {branch: value}) -> value")

    @property
    def name(self) -> str:
        return f"custom:{_fn_name(self.fn)}"

    def __repr__(self) -> str:
        return f"Custom({_fn_name(self.fn)})"


@dataclass(frozen=True, repr=False)
class Ignore(Rule):
    """The field keeps its base value, whatever the branches did."""

    label = "ignore"


@dataclass(frozen=True, repr=False)
class Reduce(Rule):
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

    def __repr__(self) -> str:
        return f"Reduce({_fn_name(self.fn)})"


@dataclass(frozen=True, repr=False)
class Upsert(Rule):
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

    def __repr__(self) -> str:
        shown = repr(self.key) if isinstance(self.key, str) else _fn_name(self.key)
        return f"Upsert(key={shown})"


@dataclass(frozen=True, repr=False)
class Single(Rule):
    """At most one writer (LangGraph's ``LastValue``): two branches writing the field raise
    :class:`~flowlab.errors.MergeConflict`, even with equal values."""

    label = "single"


@dataclass(frozen=True, repr=False)
class _DeepKeepFirst(DeepMerge):
    """The ``deep_keep_first`` strategy: ``deep``, but a leaf takes its first writer's value
    (flujo's per-key keep-first)."""

    label = "deep_keep_first"


@dataclass(frozen=True, repr=False)
class _Accumulate(Rule):
    """The ``accumulate`` strategy: deep, numbers add deltas, lists de-duplicated in order."""

    label = "accumulate"


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
