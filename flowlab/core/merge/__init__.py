"""Merging branch contexts back: strategies, per-field rules and the three-way merge.

A merge is **three-way**: the *base* (the context before the step) and one context per successful
branch. Only what a branch changed relative to the base (its :func:`~flowlab.core.context.isolation.diff`) takes
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

Layout (each module imports only from the ones above it):

* ``rules.py`` — :class:`Rule` and the field rules (``Sum``, ``Union``, ``Custom``, ...)
* ``strategies.py`` — :data:`STRATEGIES`, :class:`MergeSpec` and :func:`resolve`, which validates
  a step's ``merge=`` once
* ``checks.py`` — :func:`field_rules` and :func:`check_model`: does each rule fit its field's type
* ``report.py`` — :class:`~flowlab.core.merge.report.MergeReport`: a row per decided path, kept
  as a tuple during the merge and made a dict when read
* ``tree.py`` — the change tree of one merge and the walk that decides each path by its rule
* ``three_way.py`` — :func:`merge_branches` (three-way, transactional) and :class:`MergeOutcome`
"""

from __future__ import annotations

from flowlab.core.context.isolation import diff as diff  # importable here as before
from flowlab.core.merge.checks import check_model, field_rules
from flowlab.core.merge.combine import (
    is_number as is_number,  # importable as before; not in __all__
)
from flowlab.core.merge.keyed import Reduce, Single, Upsert
from flowlab.core.merge.rules import (
    Append,
    Custom,
    DeepMerge,
    ErrorOnConflict,
    Ignore,
    KeepFirst,
    Max,
    Min,
    Overwrite,
    Rule,
    Sum,
    Union,
)
from flowlab.core.merge.strategies import STRATEGIES, MergeFn, MergeSpec, resolve
from flowlab.core.merge.three_way import MergeOutcome, merge_branches

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
    "Reduce",
    "Rule",
    "Single",
    "Sum",
    "Union",
    "Upsert",
    "check_model",
    "field_rules",
    "merge_branches",
    "resolve",
]
