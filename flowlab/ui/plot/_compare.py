"""Comparison plots: an outcome against a grid value, one series per another grid value.

How ``x`` is drawn depends on what it holds:

* numbers (``max_concurrency`` 1, 2, 4): a line per series, at the numbers; integers get a tick at
  each value (never ``1.25``);
* numbers and "no value" (caps ``1, 2, None``): a line per series over the sorted numbers with
  ``none`` last, evenly spaced;
* names (merge strategies): points only, since nothing lies *between* ``overwrite`` and ``deep``.

Series that would hide each other (the same mean at the same ``x``) are dodged sideways, and every
series has its own marker, so the legend never lists a series the eye cannot find.
"""

from __future__ import annotations

import numbers
from itertools import pairwise
from typing import TYPE_CHECKING, Any, Literal

from flowlab.errors import ConfigError, check_one_of
from flowlab.ui.plot._style import new_axes, text

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes

    from flowlab.study.experiment import Comparison

__all__ = ["compare", "levels"]

_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h")
_NONE = "none"
_MAX_TICKS = 12


def compare(
    comparison: Comparison | pd.DataFrame,
    x: str | None = None,
    y: str = "makespan_s",
    hue: str | Literal[False] | None = None,
    ax: Axes | None = None,
    *,
    dodge: bool | None = None,
    **kwargs: Any,
) -> Axes:
    """The mean of ``y`` against ``x``, one series per ``hue`` level, error bars over repeats.

    Examples
    --------
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"merge": ["deep", "deep", "overwrite", "overwrite"],
    ...                       "max_concurrency": [1, 2, 1, 2], "makespan_s": [4.0, 2.0, 4.0, 2.5]})
    >>> ax = compare(frame, x="max_concurrency", hue="merge")
    >>> [c.get_label() for c in ax.containers], [t.get_text() for t in ax.get_xticklabels()]
    (['deep', 'overwrite'], ['1', '2'])
    >>> ax = compare(frame, x="max_concurrency", hue=False)
    >>> [c.get_label() for c in ax.containers], list(ax.containers[0].lines[0].get_ydata())
    (['makespan_s'], [4.0, 2.25])
    >>> ax = compare(frame, x="merge", hue=False)       # names: points, no line between them
    >>> ax.containers[0].lines[0].get_linestyle()
    'None'

    Parameters
    ----------
    comparison : Comparison or DataFrame
        ``fl.compare(...)``'s result or its ``.frame`` (or a Lab's history).
    x : str, optional
        A column; default the first grid key with numbers (else the first grid key).
    y : str, default "makespan_s"
    hue : str, False or None, default None
        A column, one series per level; ``None`` picks the first other grid key; ``False`` draws
        one series over every row (each ``x`` pools all the other grid values).
    ax : matplotlib Axes, optional
    dodge : bool, optional
        Shift each ``hue`` level's points sideways a little. By default only when two series
        would otherwise hide each other (or ``x`` holds names, where points share a column).
    **kwargs
        Passed to ``Axes.errorbar`` (``capsize``, ``marker``, ...).

    Returns
    -------
    matplotlib.axes.Axes
        Error bars are one standard deviation over the rows that share ``(hue, x)``.
    """
    import pandas as pd

    frame = comparison if isinstance(comparison, pd.DataFrame) else comparison.frame
    keys = list(getattr(comparison, "grid", {})) or [c for c in frame.columns if c != "repeat"][:2]
    columns = [str(c) for c in frame.columns]
    if x is None:
        numeric = [k for k in keys if k in columns and pd.api.types.is_numeric_dtype(frame[k])]
        x = (numeric or keys or columns)[0]
    if hue is False:
        hue = None
    elif hue is None:
        others = [k for k in keys if k != x]
        hue = others[0] if others else None
    elif not isinstance(hue, str):
        raise ConfigError(
            f"hue={hue!r} is not valid; give a column name (one of "
            f"{', '.join(map(repr, columns))}), None (pick a grid key) or False (one line)."
        )
    for param, value in (("x", x), ("y", y), ("hue", hue)):
        if value is not None:
            check_one_of(param, value, columns)
    ax = new_axes(ax, (6.0, 4.0))

    x_levels, x_kind = levels(frame[x])
    position = {v: (float(v) if x_kind == "numeric" else float(i)) for i, v in enumerate(x_levels)}
    hue_levels = levels(frame[hue])[0] if hue else [None]
    xs_of = [_level(v) for v in frame[x].tolist()]
    hue_of = [_level(v) for v in frame[hue].tolist()] if hue else [None] * len(frame)
    ys = pd.to_numeric(frame[y], errors="coerce").tolist()
    series: list[tuple[Any, list[Any], list[float], list[float]]] = []
    for level in hue_levels:
        at, means, errs = [], [], []
        for xv in x_levels:
            vals = pd.Series(
                [v for v, a, h in zip(ys, xs_of, hue_of, strict=True) if a == xv and h == level],
                dtype="float64",
            ).dropna()
            if len(vals):
                at.append(xv)
                means.append(float(vals.mean()))
                errs.append(float(vals.std(ddof=1)) if len(vals) > 1 else 0.0)
        series.append((level, at, means, errs))

    if dodge is None:
        dodge = len(series) > 1 and (x_kind == "names" or _coincide(series))
    spots = sorted(position.values())
    gap = min((b - a for a, b in pairwise(spots)), default=1.0)
    step = 0.4 * gap / max(len(series), 1) if dodge else 0.0
    for n, (level, at, means, errs) in enumerate(series):
        shift = (n - (len(series) - 1) / 2) * step
        eb_kwargs: dict[str, Any] = {
            "marker": _MARKERS[n % len(_MARKERS)] if len(series) > 1 else "o",
            "capsize": 3,
            **({"linestyle": "none"} if x_kind == "names" else {}),
            **kwargs,
        }
        ax.errorbar(
            [position[v] + shift for v in at], means, yerr=errs,
            label=text(level) if hue else text(y), **eb_kwargs,
        )  # fmt: skip
    _x_ticks(ax, x_levels, x_kind, position)
    if _is_integer(frame[y]):
        from matplotlib.ticker import MaxNLocator

        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(text(x))
    ax.set_ylabel(text(y))
    ax.grid(alpha=0.3)
    if hue:
        # beside the plot: inside, "best" still covers points at the top of a column
        ax.legend(title=text(hue), fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return ax


def levels(column: pd.Series) -> tuple[list[Any], Literal["numeric", "ordinal", "names"]]:
    """The distinct values of a column in the order to draw them, and how to draw them.

    Numbers come sorted (``"numeric"``); numbers with missing values come sorted with ``"none"``
    last (``"ordinal"``: evenly spaced); anything else keeps its categories' or first-seen order
    (``"names"``).

    Examples
    --------
    >>> import pandas as pd
    >>> levels(pd.Series([2, 1, 3, None, 5], dtype="Int64"))
    ([1, 2, 3, 5, 'none'], 'ordinal')
    >>> levels(pd.Series(["deep", "overwrite", "deep"]))
    (['deep', 'overwrite'], 'names')
    """
    import pandas as pd

    seen = list(dict.fromkeys(_level(v) for v in column.tolist()))
    if isinstance(column.dtype, pd.CategoricalDtype):
        order = {_level(c): i for i, c in enumerate(column.cat.categories.tolist())}
        seen.sort(key=lambda v: order.get(v, len(order)))
    nums = [v for v in seen if v != _NONE]
    if not nums or not all(_is_number(v) for v in nums):
        return seen, "names"
    nums.sort()
    if len(nums) < len(seen):
        return [*nums, _NONE], "ordinal"
    return nums, "numeric"


def _x_ticks(ax: Axes, x_levels: list[Any], kind: str, position: dict[Any, float]) -> None:
    """A labelled tick per level, except for many non-integer numbers (left to matplotlib)."""
    integral = kind != "names" and all(v == _NONE or float(v).is_integer() for v in x_levels)
    if kind == "numeric" and not (integral and len(x_levels) <= _MAX_TICKS):
        if integral:
            from matplotlib.ticker import MaxNLocator

            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        return
    names = [
        str(int(v)) if integral and v != _NONE and _is_number(v) else text(v) for v in x_levels
    ]
    ax.set_xticks([position[v] for v in x_levels], names)
    if kind != "numeric":
        ax.set_xlim(-0.5, len(x_levels) - 0.5)


def _coincide(series: list[tuple[Any, list[Any], list[float], list[float]]]) -> bool:
    """Whether two series have (nearly) the same mean at some ``x``: one would hide the other."""
    means = [m for _, _, ms, _ in series for m in ms]
    tol = 0.01 * ((max(means) - min(means)) if means else 0.0) or 1e-9
    seen: dict[Any, list[float]] = {}
    for _, at, ms, _ in series:
        for xv, m in zip(at, ms, strict=True):
            if any(abs(m - other) <= tol for other in seen.get(xv, [])):
                return True
            seen.setdefault(xv, []).append(m)
    return False


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_integer(column: pd.Series) -> bool:
    import pandas as pd

    return bool(pd.api.types.is_integer_dtype(column)) and not pd.api.types.is_bool_dtype(column)


def _level(value: Any) -> Any:
    """Group key: missing values (``None`` = no cap) become the label ``"none"``."""
    try:
        import pandas as pd

        if value is None or (not isinstance(value, str) and bool(pd.isna(value))):
            return _NONE
    except (TypeError, ValueError):
        pass
    return value
