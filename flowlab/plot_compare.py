"""Comparison plots: an outcome against a grid value, one line per another grid value."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from flowlab.errors import ConfigError, check_one_of
from flowlab.plot_style import new_axes, text

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes

    from flowlab.experiment import Comparison

__all__ = ["compare"]


def compare(
    comparison: Comparison | pd.DataFrame,
    x: str | None = None,
    y: str = "makespan_s",
    hue: str | Literal[False] | None = None,
    ax: Axes | None = None,
    *,
    dodge: bool = False,
    **kwargs: Any,
) -> Axes:
    """One line per ``hue`` level: the mean of ``y`` against ``x``, error bars over repeats.

    Examples
    --------
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"merge": ["deep", "deep", "overwrite", "overwrite"],
    ...                       "max_concurrency": [1, 2, 1, 2], "makespan_s": [4.0, 2.0, 4.0, 2.5]})
    >>> ax = compare(frame, x="max_concurrency", hue="merge")
    >>> [c.get_label() for c in ax.containers]
    ['deep', 'overwrite']
    >>> ax = compare(frame, x="max_concurrency", hue=False)
    >>> [c.get_label() for c in ax.containers], list(ax.containers[0].lines[0].get_ydata())
    (['makespan_s'], [4.0, 2.25])

    Parameters
    ----------
    comparison : Comparison or DataFrame
        ``fl.compare(...)``'s result or its ``.frame``.
    x : str, optional
        A column; default the first grid key with numbers (else the first grid key).
    y : str, default "makespan_s"
    hue : str, False or None, default None
        A column, one line per level; ``None`` picks the first other grid key; ``False`` draws
        one line over every row (each ``x`` pools all the other grid values).
    ax : matplotlib Axes, optional
    dodge : bool, default False
        Shift each ``hue`` level's points sideways a little, so lines that coincide stay visible.
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
    numeric_x = pd.api.types.is_numeric_dtype(frame[x]) and not frame[x].isna().any()
    x_levels = list(dict.fromkeys(_level(v) for v in frame[x].tolist()))
    if numeric_x:
        x_levels.sort()
    position = {v: (float(v) if numeric_x else float(i)) for i, v in enumerate(x_levels)}
    hue_levels = list(dict.fromkeys(_level(v) for v in frame[hue].tolist())) if hue else [None]
    eb_kwargs: dict[str, Any] = {"marker": "o", "capsize": 3, **kwargs}
    gaps = [
        b - a
        for a, b in zip(sorted(position.values()), sorted(position.values())[1:], strict=False)
    ]
    step = 0.3 * min(gaps, default=1.0) / max(len(hue_levels), 1) if dodge else 0.0
    for n, level in enumerate(hue_levels):
        shift = (n - (len(hue_levels) - 1) / 2) * step
        sub = frame if hue is None else frame.loc[[_level(v) == level for v in frame[hue].tolist()]]
        xs, means, errs = [], [], []
        for xv in x_levels:
            vals = pd.to_numeric(
                sub.loc[[_level(v) == xv for v in sub[x].tolist()], y], errors="coerce"
            ).dropna()
            if len(vals):
                xs.append(position[xv] + shift)
                means.append(float(vals.mean()))
                errs.append(float(vals.std(ddof=1)) if len(vals) > 1 else 0.0)
        ax.errorbar(xs, means, yerr=errs, label=text(level) if hue else text(y), **eb_kwargs)
    if not numeric_x:
        ax.set_xticks([position[v] for v in x_levels], [text(v) for v in x_levels])
    ax.set_xlabel(text(x))
    ax.set_ylabel(text(y))
    ax.grid(alpha=0.3)
    if hue:
        ax.legend(title=text(hue), fontsize="small")
    return ax


def _level(value: Any) -> Any:
    """Group key: missing values (``None`` = no cap) become the label ``"none"``."""
    try:
        import pandas as pd

        if value is None or (not isinstance(value, str) and bool(pd.isna(value))):
            return "none"
    except (TypeError, ValueError):
        pass
    return value
