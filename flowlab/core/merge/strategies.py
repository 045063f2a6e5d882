"""Merge strategies by name, and the validated merge choice of one step.

:data:`STRATEGIES` are the names a step's ``merge=`` accepts (the table is in
:mod:`flowlab.core.merge`); :func:`resolve` turns any ``merge=`` argument (a name, a rule or a
function) into a :class:`MergeSpec`, once, when the step is built. The two strategies that are
no public rule (``accumulate``, ``deep_keep_first``) have their rules here.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from flowlab.core.merge.combine import plain_total, sets, summable, total
from flowlab.core.merge.rules import (
    DeepMerge,
    ErrorOnConflict,
    KeepFirst,
    Overwrite,
    Rule,
    _check_two_args,
    _fn_name,
)
from flowlab.errors import ConfigError, check_one_of

__all__ = ["STRATEGIES", "MergeFn", "MergeSpec", "resolve"]

MergeFn = Callable[[BaseModel, dict[str, BaseModel]], BaseModel]
"""A whole-context merge: ``fn(base_ctx, {branch: branch_ctx}) -> merged ctx``."""

STRATEGIES: tuple[str, ...] = (
    "no_merge",
    "overwrite",
    "keep_first",
    "deep",
    "accumulate",
    "error_on_conflict",
    "deep_keep_first",
)


@dataclass(frozen=True, repr=False)
class _DeepKeepFirst(DeepMerge):
    """The ``deep_keep_first`` strategy: ``deep``, but a leaf takes its first writer's value
    (flujo's per-key keep-first)."""

    label = "deep_keep_first"

    def combine(self, before: Any, values: list[Any]) -> tuple[Any, int | None, bool]:
        merged = sets(before, values)
        return merged if merged is not None else (values[0], 0, True)


@dataclass(frozen=True, repr=False)
class _Accumulate(Rule):
    """The ``accumulate`` strategy: deep, numbers add deltas, lists de-duplicated in order."""

    label = "accumulate"
    expands_alone = True

    def combine(self, before: Any, values: list[Any]) -> tuple[Any, int | None, bool]:
        after = plain_total(before, values)
        if after is not None:  # plain ints and floats, the common case
            return after, (0 if len(values) == 1 else None), False
        if summable(before, values, removals_count=False):
            return total(before, values), (0 if len(values) == 1 else None), False
        merged = sets(before, values)
        return merged if merged is not None else (values[-1], len(values) - 1, True)

    def dedupe_key(self) -> tuple[bool, Callable[[Any], Any] | None]:
        return True, None


_STRATEGY_RULES: dict[str, Rule | None] = {
    "no_merge": None,
    "overwrite": Overwrite(),
    "keep_first": KeepFirst(),
    "deep": DeepMerge(),
    "accumulate": _Accumulate(),
    "error_on_conflict": ErrorOnConflict(),
    "deep_keep_first": _DeepKeepFirst(),
}


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
