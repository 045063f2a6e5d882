"""Fan out over data: :class:`Map` runs one branch per item, the items known only at run time.

A :class:`Map` is a :class:`~flowlab.core.pipeline.Parallel` whose branches are made when it runs:
:meth:`Map.expand` reads the items (a context field, a function of the step's input and context,
or the input itself), names one branch per item (``str(key(item))``, or its index) and returns a
:class:`BranchPlan` — the branch names, the node each runs, its input and its priority. The
Parallel machinery (:func:`flowlab.engine.parallel.run_parallel`) runs that plan exactly as it runs a
Parallel's declared branches: every branch is first a small queued record and gets a task only when
a slot is free, so 10,000 items are 10,000 records, not 10,000 tasks; every Parallel option works
(merge, order, caps, priority, timeouts, on_failure, include_keys, retry), and the frames, plots,
the Lab, ``fl.compare`` and the deadlock watch see a Map's branches as a Parallel's.

The step is called ``step(item, ctx)`` (or ``step(item)``), each on its own copy of the context and
of its item. The Map's output is the list of the branches' outputs in the items' order; a branch
that did not succeed (possible under ``on_failure="ignore"``) leaves ``None`` in its place, and
its row in ``result.branches`` says why.

Examples
--------
>>> from pydantic import BaseModel
>>> import flowlab as fl
>>> class Ctx(BaseModel):
...     docs: list[str] = ["a", "bb", "ccc"]
>>> def size(doc, ctx):
...     return len(doc)
>>> result = fl.run(fl.Map(size, over="docs", key=lambda d: d, name="sizes"), Ctx(),
...                 clock="virtual")
>>> result.output, list(result.branches["branch"])
([1, 2, 3], ['a', 'bb', 'ccc'])
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flowlab.core.numbers import is_number
from flowlab.core.pipeline import (
    Branchlike,
    Node,
    Parallel,
    _check_depth,
    _depth,
    as_node,
)
from flowlab.errors import ConfigError, FlowlabError, StepFailed

if TYPE_CHECKING:
    from pydantic import BaseModel

    from flowlab.core.limits import Limiter
    from flowlab.core.rate import Rate
    from flowlab.core.retry import Retry

__all__ = ["BranchPlan", "Map"]


@dataclass(slots=True)
class BranchPlan:
    """The branches one fan-out step runs: names in declared order, the node of each, the
    priorities that are not 0, and (for a Map) each branch's own input."""

    names: list[str]
    nodes: Mapping[str, Node]
    priority: Mapping[str, float]
    inputs: Mapping[str, Any] | None = None

    @classmethod
    def of(cls, par: Parallel) -> BranchPlan:
        """A Parallel's declared branches (every branch gets the step's input)."""
        return cls(list(par.branches), par.branches, par.priority)

    def output(self, outputs: Mapping[str, Any]) -> Any:
        """The step's output: ``{branch: output}`` of the branches that succeeded, in declared
        order, for a Parallel; the list of outputs in item order (``None`` where a branch did
        not succeed) for a Map."""
        if self.inputs is None:
            return {n: outputs[n] for n in self.names if n in outputs}
        return [outputs.get(n) for n in self.names]


def _check_function(param: str, fn: Any, arity: int, shape: str) -> Any:
    if fn is None:
        return None
    if not callable(fn) or isinstance(fn, type):
        raise ConfigError(f"{param}={fn!r} is not valid; give a function {shape}, or None.")
    try:
        inspect.signature(fn).bind(*(None,) * arity)
    except TypeError:
        raise ConfigError(
            f"{param}={fn!r} is not valid: it cannot be called with {arity} argument"
            f"{'s' if arity > 1 else ''}; give a function {shape}, or None."
        ) from None
    except ValueError:  # a builtin without a signature: the call will tell
        pass
    return fn


class Map(Parallel):
    """Run ``step`` once per item, each on an isolated copy of the context; merge like a Parallel.

    Parameters
    ----------
    step : callable, Step, Parallel or Pipeline
        Called as ``step(item, ctx)`` (or ``step(item)``) for each item.
    over : str or callable, optional
        Where the items come from: the name of a context field (``over="docs"``), a function
        ``(data, ctx) -> iterable``, or ``None`` (default) for the step's input ``data``. Read
        once, when the step starts, from the step's own context (a function should only read
        it: the branches' changes come back through the merge). A string is not taken as a
        list of characters. The items are read into a list before any branch starts.
    key : callable, optional
        ``key(item)`` names the item's branch (as ``str(key(item))``); default: its index
        (``"0"``, ``"1"``, ...). Two items with one name are a :class:`ConfigError`.
    priority : callable, optional
        ``priority(item) -> number``: higher starts first when queued, ties in item order.
    merge, order, max_concurrency, rate, timeout, branch_timeout, on_failure, include_keys, retry, isolation
        As for :class:`~flowlab.core.pipeline.Parallel`.
    name : str, default "map"

    Examples
    --------
    >>> from pydantic import BaseModel
    >>> import flowlab as fl
    >>> fl.Map(len, max_concurrency=8)
    Map('map', step='len', over=<input>, merge='overwrite', max_concurrency=Fixed(8))
    >>> class Empty(BaseModel):
    ...     pass
    >>> pipe = fl.Pipeline(lambda: [3, 1, 2], fl.Map(lambda n: n * 10))
    >>> fl.run(pipe, Empty(), clock="virtual").output
    [30, 10, 20]
    """

    kind = "map"
    OPTIONS: tuple[str, ...] = (*Parallel.OPTIONS, "over", "key")

    def __init__(
        self,
        step: Branchlike,
        *,
        over: str | Callable[[Any, Any], Iterable[Any]] | None = None,
        key: Callable[[Any], Any] | None = None,
        merge: Any = "overwrite",
        order: str = "declared",
        max_concurrency: int | Limiter | None = None,
        rate: Rate | None = None,
        priority: Callable[[Any], float] | None = None,
        timeout: float | None = None,
        branch_timeout: float | None = None,
        on_failure: str = "propagate",
        include_keys: Sequence[str] | None = None,
        retry: Retry | None = None,
        isolation: str = "eager",
        name: str | None = None,
    ) -> None:
        self.step = as_node(step, param="step")
        if over is not None and not isinstance(over, str):
            _check_function("over", over, 2, "(data, ctx) -> iterable, a context field name")
        elif isinstance(over, str) and not over:
            raise ConfigError("over='' is not valid; give a context field name, a function "
                              "(data, ctx) -> iterable, or None for the step's input.")  # fmt: skip
        self.over = over
        self.key = _check_function("key", key, 1, "(item) -> name")
        self.item_priority = _check_function("priority", priority, 1, "(item) -> number")
        self.branches: dict[str, Node] = {}  # made when it runs (see expand)
        self.priority: dict[str, float] = {}
        self._set_options(
            merge=merge,
            order=order,
            max_concurrency=max_concurrency,
            rate=rate,
            priority=priority,
            timeout=timeout,
            branch_timeout=branch_timeout,
            on_failure=on_failure,
            include_keys=include_keys,
            retry=retry,
            isolation=isolation,
            name=name,
        )
        self._options.update(over=over, key=key)
        self._depth = 1 + _depth(self.step)
        _check_depth(self._depth)
        self._freeze()

    def children(self) -> Iterable[Node]:
        """The node each branch runs: the step."""
        return (self.step,)

    def rebuilt(self, child: Callable[[Node], Node], **options: Any) -> Map:
        """A copy with the step passed through ``child`` and some options changed."""
        return Map(child(self.step), **{**self._options, **options})

    def check_context(self, model: type[BaseModel]) -> None:
        """:class:`ConfigError` when ``over`` names a field that ``model`` does not have."""
        if not isinstance(self.over, str) or self.over in model.model_fields:
            return
        if model.model_config.get("extra") == "allow":
            return  # it may be an extra, set at run time
        fields = ", ".join(repr(f) for f in model.model_fields) or "none"
        raise ConfigError(
            f"over={self.over!r} is not valid for step {self.name!r}: {model.__name__} has no "
            f"such field; choose one of {fields}, or give a function (data, ctx) -> iterable."
        )

    def expand(self, data: Any, ctx: BaseModel, path: str) -> BranchPlan:
        """One branch per item of ``over`` (see the class docstring), for the step at ``path``.

        Raises
        ------
        ConfigError
            For items that are not iterable (or a string), two items with one name, an empty
            name, a priority that is not a number.
        StepFailed
            When ``over``, ``key`` or ``priority`` itself raised (chained: ``__cause__``).
        """
        stage = "over"
        try:
            source = self._source(data, ctx)
            if isinstance(source, str | bytes) or not isinstance(source, Iterable):
                what = "a string" if isinstance(source, str | bytes) else "not iterable"
                raise ConfigError(
                    f"step {path!r}: over={self._over_text()} gave {source!r} "
                    f"({type(source).__name__}), which is {what}; a Map needs a list, tuple or "
                    "other iterable of items. HINT: wrap a single item in a list: [item]."
                )
            items = list(source)
            stage = "key"
            names = [self._name(i, item, path) for i, item in enumerate(items)]
            stage = "priority"
            priority: dict[str, float] = {}
            if self.item_priority is not None:
                for name, item in zip(names, items, strict=True):
                    priority[name] = self._priority(name, item, path)
        except FlowlabError:
            raise
        except Exception as err:
            raise StepFailed(
                f"step {path!r}: {stage} raised {type(err).__name__}: {err} while the Map was "
                f"reading its items (over={self._over_text()}); no branch started.",
                step=path,
                errors={path: err},
            ) from err
        self._check_unique(names, path)
        return BranchPlan(
            names, dict.fromkeys(names, self.step), priority, dict(zip(names, items, strict=True))
        )

    @staticmethod
    def _check_unique(names: list[str], path: str) -> None:
        if len(set(names)) != len(names):
            seen: dict[str, list[int]] = {}
            for i, n in enumerate(names):
                seen.setdefault(n, []).append(i)
            twice = {n: idx for n, idx in seen.items() if len(idx) > 1}
            shown = "; ".join(f"{n!r} (items {idx[:5]})" for n, idx in list(twice.items())[:5])
            raise ConfigError(
                f"step {path!r}: key gave the same branch name to several items: {shown}. "
                "Branch names must be unique. HINT: use a key that is unique per item "
                "(an id), or no key (branches are then named by index)."
            )

    def _source(self, data: Any, ctx: BaseModel) -> Any:
        if self.over is None:
            return data
        if isinstance(self.over, str):
            try:
                return getattr(ctx, self.over)
            except AttributeError:
                self.check_context(type(ctx))
                raise ConfigError(
                    f"over={self.over!r} is not valid for step {self.name!r}: the context has "
                    "no such field or extra."
                ) from None
        return self.over(data, ctx)

    def _over_text(self) -> str:
        if self.over is None:
            return "None (the step's input)"
        return (
            repr(self.over)
            if isinstance(self.over, str)
            else getattr(self.over, "__name__", repr(self.over))
        )

    def _name(self, index: int, item: Any, path: str) -> str:
        if self.key is None:
            return str(index)
        name = str(self.key(item))
        if not name:
            raise ConfigError(
                f"step {path!r}: key({item!r}) gave an empty name (item {index}); a branch "
                "name must be a non-empty string."
            )
        return name

    def _priority(self, name: str, item: Any, path: str) -> float:
        value = self.item_priority(item)
        if not is_number(value) or math.isnan(value):
            raise ConfigError(
                f"step {path!r}: priority({item!r}) gave {value!r} for branch {name!r}; "
                "give a function (item) -> number."
            )
        return float(value)

    def __repr__(self) -> str:
        step = f"step={self.step.name!r}"
        over = "over=<input>" if self.over is None else f"over={self._over_text()}"
        return f"Map({self.name!r}, {step}, {over}, {', '.join(self._repr_parts())})"
