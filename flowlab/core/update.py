"""LangGraph-style steps: a step returns :class:`Update` to write context fields.

A step may write the context by mutating it (``ctx.status = "done"``) or by returning
``fl.Update(status="done")``. The update is applied to the context the step ran on — in a branch,
the branch's own copy — right after the step returns, as assignments, so diffs, merges, field rules
and reducers see exactly what they would have seen had the step assigned the fields itself.

How each field is written depends on the field's own merge rule (its ``Annotated`` metadata), as a
LangGraph channel's reducer decides how a node's update lands:

=============================================  ==================================================
field rule                                      ``Update(field=value)`` writes
=============================================  ==================================================
none, ``Overwrite``, ``KeepFirst``, ``Max``,     ``ctx.field = value``
``Min``, ``DeepMerge``, ``Single``, ``Custom``,
``ErrorOnConflict``, ``Ignore``
``Sum``                                          ``ctx.field + value`` (per key for dict counters)
``Append``                                       ``ctx.field + list(value)``
``Union``                                        the items of ``value`` not already there, appended
``Reduce(fn)`` (``Annotated[..., operator.add]``) ``fn(ctx.field, value)``
``Upsert(key=...)``                              items of ``value`` replace those with their key,
                                                 new keys appended (``add_messages``)
=============================================  ==================================================

So ``value`` is the step's *contribution* to an accumulating field (``Update(tags=["x"])`` adds
``"x"``; it does not drop the tags already there), and the new value of any other field. To set an
accumulating field outright, assign it (``ctx.tags = ["x"]``). A name that is not a field of the
context is a :class:`~flowlab.errors.ConfigError` naming it and the valid fields, raised as the
step's own error before anything is written.

The step's output (the next step's ``data``; a branch's entry in a Parallel's output and in
``result.outputs``) is the :class:`Update` itself. An assigned value is the object the Update holds,
as with ``ctx.field = value``: a later step that mutates it in place changes what the Update shows
too (accumulating rules build new values, so theirs never do).

A step that gets the context alone (``def node(state)``, see :class:`~flowlab.core.pipeline.Step`) and
returns a plain ``dict`` whose keys all name context fields, with values the context does not hold,
gets a :class:`~flowlab.errors.DictReturnWarning` pointing to :class:`Update`: the dict is its
output, never applied silently.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from flowlab.core.context.changes import same
from flowlab.errors import ConfigError, DictReturnWarning

if TYPE_CHECKING:
    from pydantic import BaseModel

    from flowlab.core.pipeline import Step

__all__ = ["Update", "apply_update", "settle"]


class Update:
    """Context fields a step writes by returning them: ``return fl.Update(status="done", n=2)``.

    Parameters
    ----------
    **fields
        ``field=value`` for top-level fields of the context. A field with an accumulating merge
        rule (``Sum``, ``Append``, ``Union``, ``Reduce``/``operator.add``, ``Upsert``) takes
        ``value`` as the step's contribution; any other field is assigned ``value``.

    Attributes
    ----------
    fields : Mapping[str, Any]
        The fields and values, read-only.

    Examples
    --------
    >>> from typing import Annotated
    >>> from pydantic import BaseModel
    >>> import flowlab as fl
    >>> class Ctx(BaseModel):
    ...     status: str = "new"
    ...     seen: Annotated[list[str], fl.merge.Append()] = []
    >>> async def node(state: Ctx):
    ...     return fl.Update(status="done", seen=["node"])
    >>> r = fl.run(fl.Pipeline(node), Ctx(seen=["start"]), clock="virtual")
    >>> r.context.status, r.context.seen, r.output
    ('done', ['start', 'node'], Update(status='done', seen=['node']))
    """

    __slots__ = ("_fields",)

    def __init__(self, **fields: Any) -> None:
        self._fields = fields  # a plain dict: an Update pickles (Dask) and deep-copies (as data)

    @property
    def fields(self) -> Mapping[str, Any]:
        return MappingProxyType(self._fields)

    def __repr__(self) -> str:
        return f"Update({', '.join(f'{k}={v!r}' for k, v in self._fields.items())})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Update):
            return NotImplemented
        return self._fields == other._fields

    __hash__ = None  # type: ignore[assignment]  # holds arbitrary values, like a dict


def settle(step: Step, out: Any, ctx: BaseModel) -> Any:
    """What the engine does with a step's output that is an :class:`Update` (apply it to
    ``ctx``) or, from a context-only step, a plain ``dict`` (warn if it looks like an update).
    Returns the step's output."""
    if type(out) is Update:
        apply_update(out, ctx, step=step.name)
    elif type(out) is dict:
        _warn_dict(step, out, ctx)
    return out


def apply_update(update: Update, ctx: BaseModel, *, step: str = "") -> None:
    """Write ``update`` into ``ctx`` (see the module docstring for how each field is written).

    Every name is checked, and every new value computed, before the first is written: an
    update that cannot be applied leaves ``ctx`` as it was.

    Raises
    ------
    ConfigError
        A name that is not a field of the context (naming the valid fields), or a value a field's
        rule cannot take (``Update(tags="x")`` on an ``Append`` field).
    """
    from flowlab.core.merge.checks import field_rules

    model = type(ctx)
    fields = model.model_fields
    extras = model.model_config.get("extra") == "allow"
    who = f"step {step!r} returned {update!r}: " if step else f"{update!r}: "
    for name in update.fields:
        if name not in fields and not (extras and name.isidentifier()):
            listed = ", ".join(repr(f) for f in fields) or "none"
            raise ConfigError(
                f"{who}{model.__name__} has no field {name!r}; valid fields: {listed}."
            )
    rules = field_rules(model)
    new: dict[str, Any] = {}
    for name, value in update.fields.items():
        rule = rules.get(name)
        if rule is None:
            new[name] = value
            continue
        try:
            new[name] = rule.fold(getattr(ctx, name, None), value)
        except Exception as err:
            raise ConfigError(
                f"{who}field {name!r} has the merge rule {rule!r}, which takes the step's "
                f"contribution ({rule.needs}) and cannot fold {value!r} into "
                f"{getattr(ctx, name, None)!r} ({type(err).__name__}: {err}). HINT: assign "
                f"ctx.{name} = ... in the step to set it outright."
            ) from err
    for name, value in new.items():
        setattr(ctx, name, value)


def _warn_dict(step: Step, out: dict[Any, Any], ctx: BaseModel) -> None:
    fields = type(ctx).model_fields
    if not out or not all(isinstance(k, str) and k in fields for k in out):
        return
    if all(same(getattr(ctx, k), v) for k, v in out.items()):
        return  # the step wrote these values itself: nothing is lost
    shown = ", ".join(f"{k}=..." for k in out)
    message = (
        f"step {step.name!r} returned a dict whose keys all name fields of "
        f"{type(ctx).__name__} ({', '.join(map(repr, out))}) and did not write them to the "
        "context: a returned dict is the step's output, not an update, so the context keeps its "
        f"values. HINT: return fl.Update({shown}) to write them (or assign ctx.<field> = ...)."
    )
    code = getattr(step.fn, "__code__", None)
    if code is None:
        warnings.warn(message, DictReturnWarning, stacklevel=2)
        return
    registry = getattr(step.fn, "__globals__", {}).setdefault("__warningregistry__", {})
    warnings.warn_explicit(  # pointing at the step itself, once per step as warnings.warn would
        message,
        DictReturnWarning,
        code.co_filename,
        code.co_firstlineno,
        module=getattr(step.fn, "__module__", None) or "flowlab",
        registry=registry,
    )
