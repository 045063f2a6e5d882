"""Model checks: does each merge rule fit the type of the field it applies to?

:func:`field_rules` reads the rules in a model's ``Annotated`` metadata; :func:`check_model`
checks them, and a step's rule, against the fields' types (nested models included), so that
``Sum`` on a ``str`` fails when the step is built, not halfway through a run. Both cache their
answer per model class.
"""

from __future__ import annotations

import functools
import inspect
import operator
import types
import typing
import weakref
from collections.abc import Mapping
from datetime import date, time, timedelta
from decimal import Decimal
from enum import Enum
from fractions import Fraction
from typing import Any, TypeVar

from pydantic import BaseModel

from flowlab.core.merge.keyed import Reduce
from flowlab.core.merge.rules import Rule
from flowlab.core.merge.strategies import MergeFn, MergeSpec, resolve
from flowlab.errors import ConfigError

__all__ = ["check_model", "check_rules", "field_rules"]

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
        found = [r for r in (_as_rule(model_cls, name, m) for m in info.metadata) if r is not None]
        if len(found) > 1:
            raise ConfigError(
                f"{model_cls.__name__}.{name} has {len(found)} merge rules "
                f"({', '.join(map(repr, found))}); a field takes one."
            )
        if found:
            rules[name] = found[0]
    _RULES[model_cls] = rules
    return rules


def _as_rule(model_cls: type[BaseModel], name: str, meta: Any) -> Rule | None:
    """The merge rule a piece of ``Annotated`` metadata stands for: a rule, or a reducer
    function (``operator.add`` and friends, as in LangGraph); None for other metadata. A plain
    function that is not a known reducer is refused: pydantic ignores it, so would the merge."""
    if isinstance(meta, Rule):
        return meta
    if meta is operator.add or meta is operator.iadd:
        return Reduce(operator.add)
    if inspect.isfunction(meta) or inspect.isbuiltin(meta) or isinstance(meta, functools.partial):
        shown = getattr(meta, "__qualname__", None) or repr(meta)
        raise ConfigError(
            f"{model_cls.__name__}.{name}: Annotated[..., {shown}] looks like a reducer, but "
            "flowlab only knows operator.add there. HINT: Annotated[..., fl.merge.Reduce(fn)] "
            "folds fn(acc, contribution) over the branches; fl.merge.Custom(fn) decides the "
            "field from fn(base_value, {branch: value})."
        )
    return None


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
    if issubclass(origin, Enum):  # labels (an IntEnum too): ordered at best, never summed
        return "ordered" if issubclass(origin, (int, float, str)) else "other"
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


def check_rules(model_cls: type[BaseModel], rules: Mapping[str, Rule]) -> None:
    """Check rules given for ``model_cls``'s top-level fields (``rules=`` of a re-merge).

    Raises
    ------
    ConfigError
        For a name that is not a field, a value that is not a rule, or a rule that does not fit
        its field's type.
    """
    fields = model_cls.model_fields
    for name, rule in rules.items():
        if name not in fields:
            raise ConfigError(
                f"rules: {model_cls.__name__} has no field {name!r}; fields: {', '.join(fields)}."
            )
        if not isinstance(rule, Rule):
            raise ConfigError(
                f"rules[{name!r}]={rule!r} is not a rule. HINT: fl.merge.Sum(), fl.merge.Union()"
            )
        reason = _fit_reason(rule, fields[name].annotation, {model_cls})
        if reason:
            raise ConfigError(
                f"rules[{name!r}]={rule!r} does not fit {model_cls.__name__}.{name} "
                f"({_type_name(fields[name].annotation)}): {reason}."
            )
