"""Small shared checks of numeric arguments: "an int, not a bool", "a real number, not a bool".

``True`` is an ``int`` in Python, so ``isinstance(x, int)`` lets ``max_concurrency=True`` through;
every argument check in flowlab asks these instead, so the rule is written once.

Examples
--------
>>> from flowlab.core.numbers import is_int, is_number
>>> is_int(3), is_int(True), is_int(3.0)
(True, False, False)
>>> is_number(2.5), is_number(False), is_number(float("nan"))
(True, False, True)
"""

from __future__ import annotations

from typing import Any, TypeGuard

__all__ = ["is_int", "is_number"]


def is_int(value: Any) -> TypeGuard[int]:
    """``value`` is an ``int`` and not a ``bool``."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> TypeGuard[int | float]:
    """``value`` is an ``int`` or a ``float`` (NaN included) and not a ``bool``."""
    return isinstance(value, int | float) and not isinstance(value, bool)
