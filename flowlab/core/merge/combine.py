"""How several branches' values of one leaf combine: numbers add their deltas, sets unite.

Used by the combining rules' :meth:`~flowlab.core.merge.rules.Rule.combine` (``Sum``, ``accumulate``,
``DeepMerge``, ``Union``).
"""

from __future__ import annotations

from decimal import Decimal
from enum import Enum
from fractions import Fraction
from typing import Any

from flowlab.core.context.changes import MISSING

__all__ = ["is_number", "plain_total", "sets", "summable", "total"]

_PLAIN_NUMBERS = frozenset({int, float})
_INT = {int}


def is_number(value: Any) -> bool:
    """A number whose deltas add up (``bool`` is not one, nor an ``IntEnum`` / ``IntFlag``
    member: a label, whose sum would be another label no branch chose)."""
    return isinstance(value, (int, float, Decimal, Fraction, complex)) and not isinstance(
        value, (bool, Enum)
    )


def summable(before: Any, values: list[Any], removals_count: bool) -> bool:
    """Numbers whose deltas add up (a removal counts as 0 for ``Sum``)."""
    plain = _PLAIN_NUMBERS
    if (before is MISSING or type(before) in plain) and plain.issuperset(map(type, values)):
        return True  # the common case, without the general checks
    return (before is MISSING or is_number(before)) and all(
        is_number(v) or (removals_count and v is MISSING) for v in values
    )


def plain_total(before: Any, values: list[Any]) -> Any:
    """:func:`total` when ``before`` (or nothing) and every one of ``values`` are plain ``int``
    or ``float`` (the common case, for ``Sum`` and ``accumulate`` alike), else None.

    The same additions in the same order as :func:`total`; ints only (exact) are summed in C.

    Examples
    --------
    >>> plain_total(10, [15, 13]), plain_total(0.5, [1.0]), plain_total(1, ["a"])
    (18, 1.0, None)
    """
    plain = _PLAIN_NUMBERS
    kinds = set(map(type, values))
    if not (values and kinds <= plain and (before is MISSING or type(before) in plain)):
        return None
    start = 0 if before is MISSING else before
    if type(start) is int and kinds == _INT:
        return sum(values) - (len(values) - 1) * start  # exact, so the same as the loop
    after = start
    for v in values:
        after += v - start
    return after


def total(before: Any, values: list[Any]) -> Any:
    """``before + Σ(value − before)``; a removal adds nothing; every writer removing: removed."""
    start = 0 if before is MISSING else before
    after = start
    gone = True  # every writer removed it (so far)
    for v in values:
        if v is MISSING:
            after += 0 - start
        else:
            after += v - start
            gone = False
    return MISSING if gone else after


def sets(before: Any, values: list[Any]) -> tuple[Any, None, bool] | None:
    """Sets several writers changed: the base minus every removed item plus every added one."""
    if (
        len(values) > 1
        and isinstance(before, (set, frozenset))
        and all(isinstance(v, (set, frozenset)) for v in values)
    ):
        removed = set().union(*(before - v for v in values))
        added = set().union(*(v - before for v in values))
        return type(before)((before - removed) | added), None, False
    return None
