"""Small shared checks of numeric arguments: "an int, not a bool", "a real number, not a bool",
and :func:`check_int`, the argument check built on them.

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

from flowlab.errors import ConfigError

__all__ = ["check_int", "is_int", "is_number"]


def is_int(value: Any) -> TypeGuard[int]:
    """``value`` is an ``int`` and not a ``bool``."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> TypeGuard[int | float]:
    """``value`` is an ``int`` or a ``float`` (NaN included) and not a ``bool``."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_int(param: str, value: Any, *, minimum: int = 1, otherwise: str = "") -> int:
    """``value`` if it is an int (not a bool) >= ``minimum``, else a :class:`ConfigError`
    naming ``param``, the value and what is valid (``otherwise``: the other valid choices).

    Examples
    --------
    >>> check_int("min", 2)
    2
    >>> check_int("max", True, otherwise="None for no cap")
    Traceback (most recent call last):
    ...
    flowlab.errors.ConfigError: max=True is not valid; give an integer >= 1, or None for no cap.
    """
    if not is_int(value) or value < minimum:
        also = f", or {otherwise}" if otherwise else ""
        raise ConfigError(f"{param}={value!r} is not valid; give an integer >= {minimum}{also}.")
    return value
