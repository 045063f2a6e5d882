"""Validate a merged context by validating what the merge changed, not the whole model.

A merge builds the merged context aside (:mod:`flowlab.core.merge.tree`) and must validate it before
anything is applied. Re-validating the whole model would make every merge cost as much as the
context is big: 16 ms for a 100,000-key ``dict[str, int]`` whichever single key changed. So
:func:`validate` validates field by field, through the model's own validator
(``__pydantic_validator__.validate_assignment``: the field's exact schema, the model's config),
and only the fields the merge changed. Inside a plain ``dict[K, V]`` field it validates only the
keys the merge wrote; a plain ``list[T]`` field the merge only appended to (its first items are
the very objects of the base's list) is validated past them. The unchanged fields, keys and items
come from the base, which was valid already.

A model that can see more than one field at a time (a model validator, a custom
``model_post_init``, a frozen model or field, a root model) is validated whole, as pydantic would;
so is a dict or list field with constraints or field validators of its own.
"""

from __future__ import annotations

import operator
import typing
import weakref
from collections.abc import Collection, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, RootModel, ValidationError

from flowlab.core.context.tracking import untrack
from flowlab.core.merge.rules import Rule
from flowlab.errors import MergeValidationError

__all__ = ["validate"]

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class _Plan:
    """How a model class can be validated: field by field (``fieldwise``), which of its dict
    fields key by key (``by_key``), and which of its list fields only past the base's items
    when the merge appended to them (``by_tail``)."""

    fieldwise: bool
    by_key: frozenset[str]
    by_tail: frozenset[str] = frozenset()


_plans: weakref.WeakKeyDictionary[type[BaseModel], _Plan] = weakref.WeakKeyDictionary()


def _plan(cls: type[BaseModel]) -> _Plan:
    plan = _plans.get(cls)
    if plan is None:
        plan = _plans[cls] = _make_plan(cls)
    return plan


def _make_plan(cls: type[BaseModel]) -> _Plan:
    decorators = cls.__pydantic_decorators__
    fieldwise = not (
        decorators.model_validators
        or decorators.root_validators
        or cls.model_config.get("frozen")
        or issubclass(cls, RootModel)
        or cls.model_post_init is not BaseModel.model_post_init
        or any(info.frozen for info in cls.model_fields.values())
    )
    validated: set[str] = set()
    for field_dec in decorators.field_validators.values():
        validated.update(field_dec.info.fields)
    for old_dec in decorators.validators.values():
        validated.update(old_dec.info.fields)
    plain = {  # no constraint or validator sees the field's value as a whole
        name: typing.get_origin(info.annotation)
        for name, info in cls.model_fields.items()
        if not any(not isinstance(m, Rule) for m in info.metadata)  # a merge rule is no check
        and name not in validated
        and "*" not in validated
    }
    if not fieldwise:
        return _Plan(False, frozenset())
    by_key = frozenset(name for name, origin in plain.items() if origin is dict)
    return _Plan(True, by_key, frozenset(name for name, origin in plain.items() if origin is list))


def _appended(base: Any, value: Any) -> int:
    """How many leading items of ``value`` are the very items of ``base`` (a list that was
    valid): all of ``base``'s, when ``value`` only appended to it; else 0."""
    if not isinstance(base, list) or not base or not isinstance(value, list) or value is base:
        return 0  # (the base's own list, written in place, has no items known valid)
    if len(value) < len(base):
        return 0
    return len(base) if all(map(operator.is_, base, value)) else 0


def _failed(
    cls: type[BaseModel], err: ValidationError, where: str, rows: Sequence[dict[str, Any]]
) -> MergeValidationError:
    at = f" at {where!r}" if where else ""
    return MergeValidationError(
        f"the merged context failed {cls.__name__} validation{at}; nothing was applied "
        f"(.report lists what each rule wrote).\n{err}",
        report=rows,
    )


def validate(
    cls: type[M],
    data: dict[str, Any],
    template: BaseModel,
    changed: Collection[str],
    where: str,
    rows: Sequence[dict[str, Any]],
    written: Mapping[int, tuple[dict[Any, Any], AbstractSet[Any]]] | None = None,
) -> M:
    """A new, validated ``cls`` holding ``data``, validating only the ``changed`` fields.

    Parameters
    ----------
    cls : type
        The model.
    data : dict
        Every field's value: the template's, except for the ``changed`` fields.
    template : BaseModel
        The valid context the merge started from; gives the extras, the private attributes and
        the fields set.
    changed : collection of str
        The fields the merge wrote.
    where : str
        The dotted path of this model inside the context (``""`` for the context itself).
    rows : sequence of dict
        The merge report, carried by the error.
    written : mapping, optional
        ``{id(d): (d, keys)}`` for every dict ``d`` the merge built from its base by writing only
        ``keys``; such a dict in a plain ``dict[K, V]`` field is validated at those keys only.

    Raises
    ------
    MergeValidationError
        The merged values are not valid; the message carries pydantic's.
    """
    plan = _plan(cls)
    if not plan.fieldwise:
        return _whole(cls, data, template, changed, where, rows)
    new = cls.__new__(cls)
    object.__setattr__(new, "__dict__", dict(template.__dict__))
    extra = template.__pydantic_extra__
    object.__setattr__(new, "__pydantic_extra__", None if extra is None else dict(extra))
    object.__setattr__(new, "__pydantic_fields_set__", set(template.__pydantic_fields_set__))
    private = template.__pydantic_private__
    object.__setattr__(new, "__pydantic_private__", None if private is None else dict(private))
    assign = cls.__pydantic_validator__.validate_assignment
    try:
        for name in changed:
            value = data[name]
            entry = written.get(id(value)) if written and name in plan.by_key else None
            if entry is not None and entry[0] is value:
                keys = entry[1]
                if value.keys() >= keys:  # (no written key removed: the pairs made in C)
                    part = dict(zip(keys, map(value.__getitem__, keys), strict=True))
                else:
                    part = {key: value[key] for key in keys if key in value}
                assign(new, name, part)
                checked = new.__dict__[name]
                if checked.keys() == part.keys():
                    value.update(checked)
                    new.__dict__[name] = value
                    continue
            kept = _appended(template.__dict__[name], value) if name in plan.by_tail else 0
            if kept:  # the base's items were valid: only the appended ones are validated
                try:
                    assign(new, name, value[kept:])
                except ValidationError:
                    assign(new, name, value)  # whole, so that the error names the right index
                else:
                    new.__dict__[name] = value[:kept] + new.__dict__[name]
                    continue
            assign(new, name, value)
            new.__dict__[name] = untrack(new.__dict__[name])
    except ValidationError as err:
        raise _failed(cls, err, where, rows) from err
    return new  # validate_assignment added each changed field to the copied fields set


def _whole(
    cls: type[M],
    data: dict[str, Any],
    template: BaseModel,
    changed: Collection[str],
    where: str,
    rows: Sequence[dict[str, Any]],
) -> M:
    """Validate every field at once (``model_validate``), for models that need it."""
    data = {name: untrack(value) for name, value in data.items()}
    payload = {**template.__pydantic_extra__, **data} if template.__pydantic_extra__ else data
    try:
        new = cls.model_validate(payload, by_alias=False, by_name=True)
    except ValidationError as err:
        raise _failed(cls, err, where, rows) from err
    object.__setattr__(
        new, "__pydantic_fields_set__", set(template.__pydantic_fields_set__) | set(changed)
    )
    if template.__pydantic_private__ is not None:
        object.__setattr__(new, "__pydantic_private__", dict(template.__pydantic_private__))
    return new
