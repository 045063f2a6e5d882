"""Merging branch contexts back: strategies, per-field rules and the three-way merge.

A merge is **three-way**: the *base* (the context before the step) and one context per successful
branch. Only what a branch changed relative to the base (its :func:`~flowlab.context.diff`) takes
part, so a branch that left a field alone never "writes" its old value over a sibling's change, and
the work is proportional to the changes, not to the size of the context.

Strategies by name (``fl.Parallel(..., merge="overwrite")``):

==================== ==========================================================================
``no_merge``          the branches' changes are dropped (field rules too); the result is the base
``overwrite``         every changed field: the last writer in merge order wins, value replaced whole
``keep_first``        every changed field: the first writer in merge order wins
``deep``              dicts merged key by key, lists get the items branches appended, other values:
                      last writer wins
``accumulate``        ``deep``, but numbers add their deltas (base + Σ(branch − base)) and lists are
                      de-duplicated in order
``error_on_conflict`` like ``deep``, but a path two branches wrote to *different* values raises
                      :class:`~flowlab.errors.MergeConflict` (one writer, or equal values, is fine)
==================== ==========================================================================

"Field" means a model field at any depth: strategies recurse into nested models, so a rule on a
nested model's field applies there. Per-field rules go in ``Annotated`` metadata and beat the
step's strategy::

    class Ctx(BaseModel):
        processed: Annotated[int, fl.merge.Sum()] = 0
        tags: Annotated[list[str], fl.merge.Union()] = []

A rule object as the step's ``merge`` applies to every field without its own rule. A callable
``fn(base_ctx, {branch: branch_ctx}) -> ctx`` replaces the whole merge.

Merges are **transactional**: the merged context is built aside and validated by the model; on a
conflict or a validation error nothing is applied and the error carries the merge report.
"""

from __future__ import annotations

import copy
import difflib
import inspect
import types
import typing
import weakref
from collections.abc import Callable, Collection, Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, time, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ValidationError

from flowlab.context import (
    MISSING,
    Change,
    Item,
    check_context,
    check_include_keys,
    diff,
    diff_value,
    get_path,
    isolate,
    same,
)
from flowlab.errors import ConfigError, MergeConflict, MergeValidationError, check_one_of

__all__ = [
    "STRATEGIES",
    "Append",
    "Custom",
    "DeepMerge",
    "ErrorOnConflict",
    "Ignore",
    "KeepFirst",
    "Max",
    "MergeFn",
    "MergeOutcome",
    "MergeSpec",
    "Min",
    "Overwrite",
    "Rule",
    "Sum",
    "Union",
    "check_model",
    "field_rules",
    "merge_branches",
    "resolve",
]

M = TypeVar("M", bound=BaseModel)
MergeFn = Callable[[BaseModel, dict[str, BaseModel]], BaseModel]
"""A whole-context merge: ``fn(base_ctx, {branch: branch_ctx}) -> merged ctx``."""

STRATEGIES: tuple[str, ...] = (
    "no_merge",
    "overwrite",
    "keep_first",
    "deep",
    "accumulate",
    "error_on_conflict",
)


# --------------------------------------------------------------------------- rules


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
class _Accumulate(Rule):
    """The ``accumulate`` strategy: deep, numbers add deltas, lists de-duplicated in order."""

    label = "accumulate"


_STRATEGY_RULES: dict[str, Rule | None] = {
    "no_merge": None,
    "overwrite": Overwrite(),
    "keep_first": KeepFirst(),
    "deep": DeepMerge(),
    "accumulate": _Accumulate(),
    "error_on_conflict": ErrorOnConflict(),
}


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


# --------------------------------------------------------------------------- specs


@dataclass(frozen=True)
class MergeSpec:
    """A validated merge choice for one step (made by :func:`resolve`).

    Attributes
    ----------
    name : str
        ``"overwrite"``, ``"sum"`` (a rule), ``"custom:<fn name>"``, ...
    rule : Rule or None
        The rule for every field without its own; ``None`` for ``no_merge`` and custom functions.
    fn : callable or None
        The whole-context merge function, for custom merges.
    """

    name: str
    rule: Rule | None = None
    fn: MergeFn | None = None


def resolve(merge: str | Rule | MergeFn | MergeSpec) -> MergeSpec:
    """Validate a step's ``merge=`` argument once, when the step is built.

    Raises
    ------
    ConfigError
        For an unknown strategy name (listing :data:`STRATEGIES`), a rule class instead of an
        instance, a function that does not take two arguments, or any other type.
    """
    if isinstance(merge, MergeSpec):
        return merge
    if isinstance(merge, str):
        close = difflib.get_close_matches(merge.lower(), STRATEGIES, n=1)
        hint = f"did you mean {close[0]!r}?" if close else ""
        check_one_of("merge", merge, STRATEGIES, hint=hint)
        return MergeSpec(merge, _STRATEGY_RULES[merge])
    if isinstance(merge, Rule):
        return MergeSpec(merge.name, merge)
    if isinstance(merge, type) and issubclass(merge, Rule):
        raise ConfigError(
            f"merge={merge.__name__} is a rule class, not a rule. "
            f"HINT: merge=fl.merge.{merge.__name__}()"
        )
    if callable(merge) and not isinstance(merge, type):
        _check_two_args("merge", merge, "fn(base_ctx, {branch: branch_ctx}) -> ctx")
        return MergeSpec(f"custom:{_fn_name(merge)}", fn=merge)
    listed = ", ".join(repr(s) for s in STRATEGIES)
    raise ConfigError(
        f"merge={merge!r} ({type(merge).__name__}) is not valid; choose one of {listed}, a rule "
        "such as fl.merge.Sum(), or a function fn(base_ctx, {branch: branch_ctx}) -> ctx."
    )


# --------------------------------------------------------------------------- model checks

_RULES: weakref.WeakKeyDictionary[type[BaseModel], dict[str, Rule]] = weakref.WeakKeyDictionary()
_CHECKED: weakref.WeakKeyDictionary[type[BaseModel], set[Any]] = weakref.WeakKeyDictionary()


def field_rules(model_cls: type[BaseModel]) -> dict[str, Rule]:
    """``{field: rule}`` for the fields of ``model_cls`` that carry a rule in their metadata."""
    cached = _RULES.get(model_cls)
    if cached is not None:
        return cached
    rules: dict[str, Rule] = {}
    for name, info in model_cls.model_fields.items():
        for meta in info.metadata:
            if isinstance(meta, type) and issubclass(meta, Rule):
                raise ConfigError(
                    f"{model_cls.__name__}.{name}: Annotated[..., {meta.__name__}] holds the rule "
                    f"class. HINT: Annotated[..., fl.merge.{meta.__name__}()]"
                )
        found = [meta for meta in info.metadata if isinstance(meta, Rule)]
        if len(found) > 1:
            raise ConfigError(
                f"{model_cls.__name__}.{name} has {len(found)} merge rules "
                f"({', '.join(map(repr, found))}); a field takes one."
            )
        if found:
            rules[name] = found[0]
    _RULES[model_cls] = rules
    return rules


def _members(tp: Any) -> list[Any]:
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _members(typing.get_args(tp)[0])
    if origin is typing.Union or origin is types.UnionType:
        return [m for arg in typing.get_args(tp) for m in _members(arg)]
    return [tp]


def _kind(tp: Any) -> str:
    if tp is Any or tp is object or isinstance(tp, TypeVar):
        return "any"
    if tp is None or tp is type(None):
        return "none"
    origin = typing.get_origin(tp) or tp
    if not isinstance(origin, type):
        return "any"  # forward references, Literal, ...: cannot tell
    checks: list[tuple[str, tuple[type, ...]]] = [
        ("other", (bool,)),
        ("model", (BaseModel,)),
        ("number", (int, float, Decimal, Fraction)),
        ("ordered", (str, bytes, date, time, timedelta)),
        ("list", (list,)),
        ("set", (set, frozenset)),
        ("dict", (Mapping,)),
    ]
    for kind, bases in checks:
        if issubclass(origin, bases):
            return kind
    return "other"


def _fit_reason(rule: Rule, tp: Any, seen: set[type]) -> str | None:
    """Why ``rule`` does not fit type ``tp`` (``None`` when it fits)."""
    if rule.kinds is None:
        return None
    for member in _members(tp):
        kind = _kind(member)
        if kind == "any" or kind in rule.kinds:
            continue
        if kind == "model":
            reason = _model_fit_reason(rule, member, seen)
        elif kind == "dict" and rule.per_key:
            args = typing.get_args(member)
            reason = _fit_reason(rule, args[1] if len(args) == 2 else Any, seen)
        else:
            reason = f"{rule.name} needs {rule.needs}"
        if reason:
            return reason
    return None


def _model_fit_reason(rule: Rule, model_cls: type[BaseModel], seen: set[type]) -> str | None:
    if model_cls in seen:
        return None
    seen = seen | {model_cls}
    own = field_rules(model_cls)
    for name, info in model_cls.model_fields.items():
        if name not in own:
            reason = _fit_reason(rule, info.annotation, seen)
            if reason:
                return f"{reason}, and {model_cls.__name__}.{name} is {_type_name(info.annotation)}"
    return None


def _type_name(tp: Any) -> str:
    if isinstance(tp, type) and not typing.get_args(tp):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _check_own_rules(model_cls: type[BaseModel], seen: set[type]) -> None:
    seen.add(model_cls)
    own = field_rules(model_cls)
    for name, info in model_cls.model_fields.items():
        rule = own.get(name)
        if rule is not None:
            reason = _fit_reason(rule, info.annotation, {model_cls})
            if reason:
                raise ConfigError(
                    f"{model_cls.__name__}.{name}: rule {rule!r} does not fit type "
                    f"{_type_name(info.annotation)}: {reason}. HINT: pick a rule for "
                    "that type (Overwrite, KeepFirst, DeepMerge, ErrorOnConflict, Custom, Ignore "
                    "fit any)."
                )
        for member in _members(info.annotation):
            if _kind(member) == "model" and member not in seen:
                _check_own_rules(member, seen)


def check_model(
    model_cls: type[BaseModel], *, merge: str | Rule | MergeFn | MergeSpec | None = None
) -> None:
    """Check that every field rule of ``model_cls`` (nested models included) fits its field.

    Parameters
    ----------
    model_cls : type[BaseModel]
        The context model.
    merge : optional
        A step's merge; when it is a rule, also check it fits every field without its own rule.

    Raises
    ------
    ConfigError
        Naming the model, the field, the rule and the field's type (e.g. ``Sum`` on a ``str``).
    """
    if not (isinstance(model_cls, type) and issubclass(model_cls, BaseModel)):
        raise ConfigError(f"model_cls={model_cls!r} must be a pydantic BaseModel subclass.")
    spec = None if merge is None else resolve(merge)
    token: Any = spec.rule if spec is not None else None
    try:
        if token in _CHECKED.get(model_cls, ()):
            return
    except TypeError:  # an unhashable rule: check every time
        token = object()
    _check_own_rules(model_cls, set())
    if spec is not None and spec.rule is not None:
        own = field_rules(model_cls)
        for name, info in model_cls.model_fields.items():
            reason = None if name in own else _fit_reason(spec.rule, info.annotation, {model_cls})
            if reason:
                raise ConfigError(
                    f"merge={spec.rule!r} applies to every field without its own rule, but "
                    f"{model_cls.__name__}.{name} is {_type_name(info.annotation)}: {reason}. "
                    f"HINT: put the rule on the fields it fits, e.g. "
                    f"Annotated[int, fl.merge.{type(spec.rule).__name__}()], and give the step a "
                    "strategy such as merge='accumulate'."
                )
    _CHECKED.setdefault(model_cls, set()).add(token)


# --------------------------------------------------------------------------- three-way merge


@dataclass
class MergeOutcome:
    """What a merge produced.

    Attributes
    ----------
    context : BaseModel
        A new, validated context; the base is never mutated.
    rows : list of dict
        One per merged path: ``path`` (dotted), ``rule``, ``writers`` (branches in merge order),
        ``winner`` (the branch whose value was taken, ``None`` when values were combined),
        ``before``, ``after`` (``None`` for a missing path) and ``conflict``.
    """

    context: BaseModel
    rows: list[dict[str, Any]]


class _Node:
    """The changes under one path, per branch index: written whole, as list items, or deeper."""

    __slots__ = ("children", "direct", "items", "writers")

    def __init__(self) -> None:
        self.children: dict[Hashable, _Node] = {}
        self.direct: dict[int, Any] = {}
        self.items: dict[int, list[Change]] = {}
        self.writers: list[int] = []  # every branch that changed this path or below, sorted

    def touch(self, i: int) -> None:
        writers = self.writers
        if not writers or writers[-1] < i:
            writers.append(i)
        elif i not in writers:
            writers.append(i)
            writers.sort()

    def insert(self, i: int, keys: Sequence[Hashable], change: Change) -> None:
        is_item = bool(keys) and isinstance(keys[-1], Item)
        node = self
        node.touch(i)
        for key in keys[:-1] if is_item else keys:
            child = node.children.get(key)
            if child is None:
                child = node.children[key] = _Node()
            node = child
            node.touch(i)
        if is_item:
            node.items.setdefault(i, []).append(change)
        else:
            node.direct[i] = MISSING if change.op == "remove" else change.after


_EXPAND_ALONE = (Union, _Accumulate, Max, Min)  # rules that change even a lone writer's dict/list


def _dotted(keys: Sequence[Hashable]) -> str:
    return ".".join(str(k) for k in keys)


def _plain(value: Any) -> Any:
    return None if value is MISSING else value


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def is_number(value: Any) -> bool:
    """A number whose deltas add up (``bool`` is not one)."""
    return isinstance(value, (int, float, Decimal, Fraction, complex)) and not isinstance(
        value, bool
    )


def _dedupe(items: list[Any], key: Callable[[Any], Any]) -> list[Any]:
    seen: set[Any] = set()
    seen_unhashable: list[Any] = []
    out = []
    for item in items:
        k = key(item)
        try:
            if k in seen:
                continue
            seen.add(k)
        except TypeError:
            if any(same(k, s) for s in seen_unhashable):
                continue
            seen_unhashable.append(k)
        out.append(item)
    return out


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> bool:
    (s1, e1), (s2, e2) = a, b
    if s1 == e1 and s2 == e2:  # two insertions never overlap: both go in, in merge order
        return False
    if s1 == e1:
        return s2 < s1 < e2
    if s2 == e2:
        return s1 < s2 < e1
    return s1 < e2 and s2 < e1


def _validate(
    cls: type[M],
    data: dict[str, Any],
    template: BaseModel,
    changed: Collection[str],
    where: str,
    rows: list[dict[str, Any]],
) -> M:
    """Validate ``data`` as a new ``cls``; ``template`` gives extras, privates and fields set."""
    payload = {**template.__pydantic_extra__, **data} if template.__pydantic_extra__ else data
    try:
        new = cls.model_validate(payload, by_alias=False, by_name=True)
    except ValidationError as err:
        at = f" at {where!r}" if where else ""
        raise MergeValidationError(
            f"the merged context failed {cls.__name__} validation{at}; nothing was applied "
            f"(.report lists what each rule wrote).\n{err}",
            report=rows,
        ) from err
    object.__setattr__(
        new, "__pydantic_fields_set__", set(template.__pydantic_fields_set__) | set(changed)
    )
    if template.__pydantic_private__ is not None:
        object.__setattr__(new, "__pydantic_private__", dict(template.__pydantic_private__))
    return new


class _Merger:
    """Walks the change tree of one merge, deciding each path by its rule, writing report rows."""

    def __init__(self, names: list[str], ctxs: list[BaseModel]) -> None:
        self.names = names
        self.ctxs = ctxs
        self.rows: list[dict[str, Any]] = []
        self.conflicts: list[tuple[str, dict[str, Any]]] = []

    def value_of(self, i: int, node: _Node, keys: tuple[Hashable, ...]) -> Any:
        return node.direct[i] if i in node.direct else get_path(self.ctxs[i], keys)

    def row(
        self,
        keys: tuple[Hashable, ...],
        rule: str,
        node: _Node,
        winner: int | None,
        before: Any,
        after: Any,
        *,
        conflict: bool = False,
    ) -> None:
        self.rows.append(
            {
                "path": _dotted(keys),
                "rule": rule,
                "writers": tuple(self.names[i] for i in node.writers),
                "winner": None if winner is None else self.names[winner],
                "before": _plain(before),
                "after": _plain(after),
                "conflict": conflict,
            }
        )

    def model(
        self,
        node: _Node,
        before: BaseModel,
        keys: tuple[Hashable, ...],
        rule: Rule,
        label: str,
        inherit: bool,
    ) -> BaseModel:
        cls = type(before)
        own = field_rules(cls)
        data = dict(before.__dict__)
        changed = [name for name in cls.model_fields if name in node.children]
        for name in changed:
            child, sub = node.children[name], own.get(name)
            if sub is None:
                data[name] = self.field(rule, label, inherit, child, data[name], (*keys, name))
            else:
                data[name] = self.field(sub, sub.name, False, child, data[name], (*keys, name))
        return _validate(cls, data, before, changed, _dotted(keys), self.rows)

    def field(
        self,
        rule: Rule,
        label: str,
        inherit: bool,
        node: _Node,
        before: Any,
        keys: tuple[Hashable, ...],
    ) -> Any:
        """Decide a model field: whole-value rules here, combining rules in :meth:`tree`."""
        if isinstance(rule, Ignore):
            self.row(keys, label, node, None, before, before)
            return before
        if isinstance(rule, Custom):
            values = {self.names[i]: self.value_of(i, node, keys) for i in node.writers}
            after = rule.fn(before, values)
            self.row(keys, label, node, None, before, after)
            return after
        if isinstance(rule, (Overwrite, KeepFirst)):
            if inherit and isinstance(before, BaseModel) and node.children and not node.direct:
                return self.model(node, before, keys, rule, label, inherit)
            i = node.writers[-1] if isinstance(rule, Overwrite) else node.writers[0]
            after = self.value_of(i, node, keys)
            self.row(keys, label, node, i, before, after)
            return after
        return self.tree(node, before, keys, rule, label, inherit)

    def tree(
        self,
        node: _Node,
        before: Any,
        keys: tuple[Hashable, ...],
        rule: Rule,
        label: str,
        inherit: bool,
    ) -> Any:
        if isinstance(rule, ErrorOnConflict) and (node.direct or node.items):
            return self.agreed(node, before, keys, label)
        if node.direct and not self.expand(node, before, keys, rule):
            return self.leaf(node, before, keys, rule, label)
        if node.items:
            return self.list_merge(node, before, keys, rule, label)
        if isinstance(before, BaseModel):
            return self.model(node, before, keys, rule, label, inherit)
        out = dict(before) if isinstance(before, dict) else {}
        for key, child in node.children.items():
            value = self.tree(child, out.get(key, MISSING), (*keys, key), rule, label, inherit)
            if value is MISSING:
                out.pop(key, None)
            else:
                out[key] = value
        return out

    def expand(self, node: _Node, before: Any, keys: tuple[Hashable, ...], rule: Rule) -> bool:
        """Turn whole-value writes of dicts (lists) into per-key (per-item) changes, so several
        writers combine instead of the last one winning. False when the values do not allow it."""
        values = list(node.direct.values())
        kind = type(values[0])
        if kind is not dict and kind is not list:
            return False
        if len(node.writers) < 2 and not isinstance(rule, _EXPAND_ALONE):
            return False
        empty = before is MISSING or before is None
        if not (empty or type(before) is kind) or any(type(v) is not kind for v in values):
            return False
        base: Any = kind() if empty else before
        direct, node.direct = node.direct, {}
        for i, value in direct.items():
            if not same(base, value):
                out: list[Change] = []
                diff_value(base, value, keys, out)
                for change in out:
                    node.insert(i, change.key_path[len(keys) :], change)
        return True

    def agreed(self, node: _Node, before: Any, keys: tuple[Hashable, ...], label: str) -> Any:
        values = [self.value_of(i, node, keys) for i in node.writers]
        if all(same(values[0], v) for v in values[1:]):
            self.row(keys, label, node, node.writers[-1], before, values[-1])
            return values[-1]
        self.conflicts.append(
            (_dotted(keys), {self.names[i]: v for i, v in zip(node.writers, values, strict=True)})
        )
        self.row(keys, label, node, None, before, None, conflict=True)
        return before

    def leaf(
        self, node: _Node, before: Any, keys: tuple[Hashable, ...], rule: Rule, label: str
    ) -> Any:
        writers = node.writers
        values = [self.value_of(i, node, keys) for i in writers]
        winner: int | None = None
        removals_count = isinstance(rule, Sum)  # Sum: a removed key counts as 0
        if (
            isinstance(rule, (Sum, _Accumulate))
            and (before is MISSING or is_number(before))
            and all(is_number(v) or (removals_count and v is MISSING) for v in values)
        ):
            start = 0 if before is MISSING else before
            if all(v is MISSING for v in values):
                after: Any = MISSING
            else:
                after = start
                for v in values:
                    after += (0 if v is MISSING else v) - start
            winner = writers[0] if len(writers) == 1 else None
        elif isinstance(rule, (Max, Min)):
            candidates = [v for v in [before, *values] if v is not MISSING]
            pick = max if isinstance(rule, Max) else min
            after = pick(candidates) if candidates else MISSING
            if not same(before, after):
                winner = next(i for i, v in zip(writers, values, strict=True) if same(v, after))
        elif (
            isinstance(rule, (DeepMerge, _Accumulate, Union))
            and len(writers) > 1
            and isinstance(before, (set, frozenset))
            and all(isinstance(v, (set, frozenset)) for v in values)
        ):
            removed = set().union(*(before - v for v in values))
            added = set().union(*(v - before for v in values))
            after = type(before)((before - removed) | added)
        else:
            winner = writers[-1]
            after = values[-1]
        self.row(keys, label, node, winner, before, after)
        return after

    def list_merge(
        self, node: _Node, before: Any, keys: tuple[Hashable, ...], rule: Rule, label: str
    ) -> list[Any]:
        """Apply every writer's list edit (one slice of the base each) to the base.

        Insertions at one point all go in, in merge order; an edit overlapping an earlier one
        replaces it (later writer wins); an identical removal/replacement is applied once.
        """
        base: list[Any] = before if isinstance(before, list) else []
        edits: list[tuple[int, int, list[Any], int]] = []
        for order, i in enumerate(node.writers):
            changes = node.items.get(i)
            if not changes:
                continue
            start = min(c.key_path[-1].index for c in changes)  # type: ignore[attr-defined]
            removed = sum(1 for c in changes if c.op == "remove")
            added = [c.after for c in changes if c.op == "add"]
            edit = (start, start + removed, added, order)
            if any(e[:2] == edit[:2] and e[0] != e[1] and same(e[2], added) for e in edits):
                continue
            edits = [e for e in edits if not _overlap(e[:2], edit[:2])]
            edits.append(edit)
        edits.sort(key=lambda e: (e[0], e[0] != e[1], e[3]))
        out: list[Any] = []
        cursor = 0
        for start, end, added, _ in edits:
            out.extend(base[cursor:start])
            out.extend(added)
            cursor = max(cursor, end)
        out.extend(base[cursor:])
        if isinstance(rule, Union):
            out = _dedupe(out, rule.key_of)
        elif isinstance(rule, _Accumulate):
            out = _dedupe(out, lambda item: item)
        winner = node.writers[0] if len(node.writers) == 1 else None
        self.row(keys, label, node, winner, before, out)
        return out


def _branch_changes(
    base: BaseModel,
    name: str,
    ctx: BaseModel,
    diffs: Mapping[str, list[Change]] | None,
    fields: Collection[str] | None,
) -> list[Change]:
    if diffs is not None and name in diffs:
        return diffs[name]
    return diff(base, ctx, fields=fields)


def merge_branches(
    base: M,
    branches: Sequence[tuple[str, M]],
    spec: MergeSpec,
    *,
    diffs: Mapping[str, list[Change]] | None = None,
    fields: Collection[str] | None = None,
    step: str = "",
) -> MergeOutcome:
    """Merge the successful branches' contexts into a new context (three-way, transactional).

    Parameters
    ----------
    base : BaseModel
        The context before the step; never mutated.
    branches : sequence of (name, context)
        The successful branches, in merge order (last writer wins for ``overwrite``).
    spec : MergeSpec
        From :func:`resolve`.
    diffs : mapping, optional
        ``{name: diff(base, context)}`` already computed; missing ones are computed.
    fields : collection of str, optional
        Merge only these top-level fields (``include_keys``); the others keep the base value.
    step : str, optional
        The step's name, to start error messages with (``step 'fan': merge conflict at ...``).

    Returns
    -------
    MergeOutcome
        The merged, validated context and one report row per merged path.

    Raises
    ------
    MergeConflict
        Two branches wrote one path to different values under ``error_on_conflict``.
    MergeValidationError
        The merged context (or a custom function's result) is not a valid instance of the model.
    """
    try:
        return _merge(base, branches, spec, diffs, fields)
    except (MergeConflict, MergeValidationError) as err:
        if step and err.args:
            err.args = (f"step {step!r}: {err.args[0]}", *err.args[1:])
        raise


def _merge(
    base: BaseModel,
    branches: Sequence[tuple[str, BaseModel]],
    spec: MergeSpec,
    diffs: Mapping[str, list[Change]] | None,
    fields: Collection[str] | None,
) -> MergeOutcome:
    check_context(base, param="base")
    cls = type(base)
    names = [name for name, _ in branches]
    ctxs = [ctx for _, ctx in branches]
    for name, ctx in branches:
        if type(ctx) is not cls:
            raise MergeValidationError(
                f"branch {name!r} ended with a {type(ctx).__name__} context, not a "
                f"{cls.__name__}; a merge needs contexts of one model."
            )
    if fields is not None:
        check_include_keys(cls, list(fields))
        fields = frozenset(fields)
    if spec.fn is not None:
        return _merge_custom(base, names, ctxs, spec, diffs, fields)
    root = _Node()
    for i, (name, ctx) in enumerate(branches):
        for change in _branch_changes(base, name, ctx, diffs, fields):
            keys = change.key_path
            if fields is None or keys[0] in fields:
                root.insert(i, keys, change)
    merger = _Merger(names, list(ctxs))
    if spec.rule is None:  # no_merge: report what was dropped
        for name in cls.model_fields:
            if name in root.children:
                value = base.__dict__[name]
                merger.row((name,), spec.name, root.children[name], None, value, value)
        return MergeOutcome(copy.copy(base), merger.rows)
    check_model(cls, merge=spec)
    if not root.children:
        return MergeOutcome(copy.copy(base), [])
    context = merger.model(root, base, (), spec.rule, spec.name, True)
    if merger.conflicts:
        path, values = merger.conflicts[0]
        shown = ", ".join(f"{b}={_short(v)}" for b, v in values.items())
        message = (
            f"merge conflict at {path!r}: branches {', '.join(map(repr, values))} wrote "
            f"different values ({shown}); nothing was merged."
        )
        if len(merger.conflicts) > 1:
            more = ", ".join(repr(p) for p, _ in merger.conflicts[1:])
            message += f" Also conflicting: {more}."
        message += (
            " HINT: give the field a rule that combines values (e.g. "
            "Annotated[int, fl.merge.Sum()]) or choose another merge strategy."
        )
        raise MergeConflict(message, path=path, values=values, report=merger.rows)
    return MergeOutcome(context, merger.rows)


def _merge_custom(
    base: BaseModel,
    names: list[str],
    ctxs: Sequence[BaseModel],
    spec: MergeSpec,
    diffs: Mapping[str, list[Change]] | None,
    fields: Collection[str] | None,
) -> MergeOutcome:
    assert spec.fn is not None
    cls = type(base)
    result = spec.fn(isolate(base), dict(zip(names, ctxs, strict=True)))
    if not isinstance(result, cls):
        raise MergeValidationError(
            f"merge function {spec.name.removeprefix('custom:')} returned "
            f"{type(result).__name__} {_short(result)}, not a {cls.__name__}. HINT: return the "
            f"base context after changing it, or a new {cls.__name__}(...)."
        )
    changed = [
        name
        for name in cls.model_fields
        if (fields is None or name in fields)
        and not same(base.__dict__[name], result.__dict__[name])
    ]
    touched = [
        {c.key_path[0] for c in _branch_changes(base, n, ctx, diffs, fields)}
        for n, ctx in zip(names, ctxs, strict=True)
    ]
    rows = [
        {
            "path": name,
            "rule": spec.name,
            "writers": tuple(n for n, t in zip(names, touched, strict=True) if name in t),
            "winner": None,
            "before": base.__dict__[name],
            "after": result.__dict__[name],
            "conflict": False,
        }
        for name in changed
    ]
    if not changed:
        return MergeOutcome(copy.copy(base), rows)
    data = dict(base.__dict__)
    data.update({name: result.__dict__[name] for name in changed})
    return MergeOutcome(_validate(cls, data, base, changed, "", rows), rows)
