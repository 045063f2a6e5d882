"""Pipelines as pure descriptions: :class:`Step`, :class:`Parallel` and :class:`Pipeline`.

Nothing here runs anything (the engine does). Every argument is checked when the object is built
(a :class:`~flowlab.errors.ConfigError` naming parameter, value and choices), and a built spec is
frozen: ``replace(...)`` makes a changed copy. Steps: :mod:`flowlab.core.step`; Map: :mod:`flowlab.core.map`.

Examples
--------
>>> import flowlab as fl
>>> def double(x):
...     return 2 * x
>>> fan = fl.Parallel({"a": double, "b": double}, max_concurrency=1, name="fan")
>>> fan
Parallel('fan', branches=['a', 'b'], merge='overwrite', max_concurrency=Fixed(1))
>>> fl.Pipeline(double, fan).names()
['double', 'fan']
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeAlias

import flowlab.core.merge as merge_mod
from flowlab.core.limits import Limiter, as_limiter
from flowlab.core.numbers import is_number
from flowlab.core.rate import Rate
from flowlab.core.rate import check_rate as _check_rate
from flowlab.core.retry import Retry, check_retry
from flowlab.core.step import Frozen, Step, _check_name, _check_timeout
from flowlab.errors import ConfigError, check_one_of

__all__ = ["ON_FAILURE", "ORDERS", "Node", "Parallel", "Pipeline", "Step", "as_node"]  # Step: core.step

ORDERS: tuple[str, ...] = ("declared", "completion")
ON_FAILURE: tuple[str, ...] = ("propagate", "fail_fast", "ignore")
ISOLATION: tuple[str, ...] = ("eager", "cow")
Branchlike: TypeAlias = "Callable[..., Any] | Step | Parallel | Pipeline"


class Parallel(Frozen):
    """Run branches side by side on isolated copies of the context, then merge their changes.

    Parameters
    ----------
    branches : mapping or sequence
        ``{name: branch}`` or a list of branches (named after their functions). A branch is a
        callable, a :class:`Step`, a :class:`Pipeline` or a nested :class:`Parallel`.
    merge : str, merge rule or callable, default "overwrite"
        One of :data:`flowlab.core.merge.STRATEGIES`, a :mod:`flowlab.core.merge` rule, or
        ``fn(base_ctx, {branch: branch_ctx}) -> ctx``. Field rules on the model beat it.
    order : {"declared", "completion"}, default "declared"
        Merge order: the declared order (deterministic) or the order branches finished in.
    max_concurrency : int, Limiter or None, default None
        At most this many branches of this step in flight (``None``: no cap).
    rate : fl.limits.Rate, optional
        At most this rate of branch starts (``Rate(per_second=10)``), or of tokens charged by
        its branches (``Rate(tokens_per_minute=90_000)``). ``None``: no rate limit.
    priority : mapping, optional
        ``{branch: number}``; higher starts first when queued, ties in declared order.
    timeout, branch_timeout : float, optional
        Seconds for the whole step / for each branch, from its start (``started_s``: under a
        run-wide cap, when its first leaf gets a slot). ``None`` means none.
    on_failure : {"propagate", "fail_fast", "ignore"}, default "propagate"
        ``propagate``: let siblings finish, then raise. ``fail_fast``: cancel siblings at once,
        then raise. ``ignore``: record the failure and merge the branches that succeeded.
    include_keys : sequence of str, optional
        Copy only these fields into branches, merge only these (others: NotMergedWarning).
    retry : Retry, optional
        A :class:`~flowlab.core.retry.Retry` for every leaf step inside that has none of its own.
    isolation : {"eager", "cow"}, default "eager"
        ``"eager"``: a deep copy per branch. ``"cow"`` (opt-in): copy on write
        (:mod:`flowlab.core.context.cow`; it lists C paths such as ``heapq`` that hand a branch
        a *shared* item, whose writes then reach siblings and the caller). Nested: eager.
    name : str, default "parallel"
        Left to the default, a Pipeline that holds two such Parallels at one level names the
        second ``parallel_2`` (then ``parallel_3``...), so branch paths stay unique.
    """

    kind = "parallel"

    def __init__(
        self,
        branches: Mapping[str, Branchlike] | Sequence[Branchlike],
        *,
        merge: Any = "overwrite",
        order: str = "declared",
        max_concurrency: int | Limiter | None = None,
        rate: Rate | None = None,
        priority: Mapping[str, float] | None = None,
        timeout: float | None = None,
        branch_timeout: float | None = None,
        on_failure: str = "propagate",
        include_keys: Sequence[str] | None = None,
        retry: Retry | None = None,
        isolation: str = "eager",
        name: str | None = None,
    ) -> None:
        self.branches = _named_branches(branches)
        self.priority = _check_priority(priority, self.branches)
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
        self._depth = 1 + max(_depth(b) for b in self.branches.values())
        _check_depth(self._depth)
        self._freeze()

    def _set_options(self, *, name: str | None, **options: Any) -> None:
        """Check and set the options every fan-out step shares (a Map's too); keep them for
        :meth:`options` and :meth:`replace`."""
        merge = options["merge"]
        self.merge = merge_mod.resolve(merge)
        self.merge_arg = merge
        check_one_of("order", options["order"], ORDERS)
        self.order = options["order"]
        self.max_concurrency = as_limiter(options["max_concurrency"], param="max_concurrency")
        self.rate = _check_rate(options["rate"])
        self.timeout = _check_timeout("timeout", options["timeout"])
        self.branch_timeout = _check_timeout("branch_timeout", options["branch_timeout"])
        check_one_of("on_failure", options["on_failure"], ON_FAILURE)
        self.on_failure = options["on_failure"]
        self.include_keys = _check_include_keys(options["include_keys"])
        self.retry = check_retry(options["retry"])
        check_one_of("isolation", options["isolation"], ISOLATION)
        self.isolation = options["isolation"]
        self.name = _check_name("name", name if name is not None else self.kind)
        self._default_name = name is None  # a Pipeline may rename it to keep paths unique
        self._options = {**options, "name": self.name}

    OPTIONS: tuple[str, ...] = (
        "merge", "order", "max_concurrency", "rate", "priority", "timeout", "branch_timeout",
        "on_failure", "include_keys", "retry", "isolation",
    )  # fmt: skip

    def options(self) -> dict[str, Any]:
        """The keyword arguments this step was built with."""
        return dict(self._options)

    def replace(self, **options: Any) -> Parallel:
        """A copy with some options changed (validated like the constructor).

        Examples
        --------
        >>> import flowlab as fl
        >>> p = fl.Parallel({"a": print}, name="fan")
        >>> p.replace(merge="deep").merge.name
        'deep'
        """
        unknown = sorted(set(options) - set(self.OPTIONS) - {"name"})
        if unknown:
            listed = ", ".join(repr(o) for o in self.OPTIONS)
            raise ConfigError(
                f"{unknown[0]!r} is not a {type(self).__name__} option; choose one of {listed}."
            )
        return self.rebuilt(lambda child: child, **options)

    def children(self) -> Iterable[Node]:
        """The nodes this step runs in its branches."""
        return self.branches.values()

    def rebuilt(self, child: Callable[[Node], Node], **options: Any) -> Parallel:
        """A copy with each branch node passed through ``child`` and some options changed."""
        branches = {k: child(b) for k, b in self.branches.items()}
        return Parallel(branches, **{**self._options, **options})

    def _repr_parts(self) -> list[str]:
        parts = [f"merge={self.merge.name!r}"]
        if self.order != "declared":
            parts.append(f"order={self.order!r}")
        if self.max_concurrency is not None:
            parts.append(f"max_concurrency={self.max_concurrency!r}")
        if self.rate is not None:
            parts.append(f"rate={self.rate!r}")
        if self.on_failure != "propagate":
            parts.append(f"on_failure={self.on_failure!r}")
        if self.retry is not None:
            parts.append(f"retry={self.retry!r}")
        if self.isolation != "eager":
            parts.append(f"isolation={self.isolation!r}")
        return parts

    def __repr__(self) -> str:
        parts = [repr(self.name), f"branches={list(self.branches)}", *self._repr_parts()]
        return f"Parallel({', '.join(parts)})"


class Pipeline(Frozen):
    """Steps run one after another; each gets the previous step's output as ``data``.

    Parameters
    ----------
    *steps
        Callables, :class:`Step`, :class:`Parallel` or nested :class:`Pipeline` objects.
    name : str, default "pipeline"
    """

    kind = "pipeline"

    def __init__(self, *steps: Branchlike, name: str | None = None) -> None:
        if len(steps) == 1 and isinstance(steps[0], list | tuple):
            steps = tuple(steps[0])
        if not steps:
            raise ConfigError("steps=() is not valid; a Pipeline needs at least one step.")
        self.steps: tuple[Node, ...] = _unique_default_names(
            [as_node(s, param=f"steps[{i}]") for i, s in enumerate(steps)]
        )
        self.name = _check_name("name", name if name is not None else "pipeline")
        self._depth = max(_depth(s) for s in self.steps)
        self._freeze()

    def names(self) -> list[str]:
        """Names of the top-level steps."""
        return [s.name for s in self.steps]

    def parallels(self) -> Iterator[Parallel]:
        """Every :class:`Parallel` in the pipeline, nested ones included, depth first."""
        yield from _walk_parallels(self)

    def replace(self, changes: Mapping[str, Mapping[str, Any]]) -> Pipeline:
        """A copy where the Parallel steps named in ``changes`` get new options.

        ``changes`` maps a Parallel's name (``"*"`` for every Parallel) to option overrides.
        """
        known = {p.name for p in self.parallels()}
        if not isinstance(changes, Mapping):
            raise ConfigError(
                f"changes={changes!r} is not valid; give a dict {{parallel name: {{option: value}}}}."
            )
        for key, options in changes.items():
            if key != "*" and key not in known:
                check_one_of("step", key, [*sorted(known), "*"])
            if not isinstance(options, Mapping):
                raise ConfigError(
                    f"changes[{key!r}]={options!r} is not valid; give a dict of Parallel options. "
                    f"HINT: {{{key!r}: {{'merge': {options!r}}}}}"
                )
            for option in options:
                if option not in Parallel.OPTIONS:
                    check_one_of(f"changes[{key!r}] option", option, Parallel.OPTIONS)
        return _replace(self, changes)  # type: ignore[return-value]

    def __repr__(self) -> str:
        return f"Pipeline({', '.join(repr(s) for s in self.steps)})"


Node: TypeAlias = Step | Parallel | Pipeline


def as_node(obj: Any, *, param: str = "step", name: str | None = None) -> Node:
    """Turn a callable into a :class:`Step`; pass Step/Parallel/Pipeline through."""
    if isinstance(obj, Step | Parallel | Pipeline):
        return obj
    if inspect.iscoroutine(obj):
        obj.close()
        raise ConfigError(
            f"{param} is a coroutine object, not a function. HINT: pass the function itself "
            "(`my_step`), not a call (`my_step(...)`)."
        )
    if not callable(obj):
        raise ConfigError(
            f"{param}={obj!r} is not valid; use a callable (data, ctx) -> output, "
            "a Step, a Parallel or a Pipeline."
        )
    return Step(obj, name=name)


def _named_branches(branches: Any) -> dict[str, Node]:
    if isinstance(branches, Mapping):
        items = list(branches.items())
    elif isinstance(branches, Sequence) and not isinstance(branches, str):
        items = []
        for i, b in enumerate(branches):
            node = as_node(b, param=f"branches[{i}]")
            items.append((node.name, node))
    else:
        raise ConfigError(
            f"branches={branches!r} is not valid; give a dict {{name: branch}} or a list of branches."
        )
    if not items:
        raise ConfigError("branches is empty; a Parallel needs at least one branch.")
    out: dict[str, Node] = {}
    for key, branch in items:
        _check_name("branch name", key)
        if key in out:
            raise ConfigError(
                f"branch name {key!r} is used twice; branch names must be unique. "
                "HINT: pass a dict {name: branch} to name them yourself."
            )
        out[key] = as_node(branch, param=f"branches[{key!r}]")
    return out


def _check_priority(
    priority: Mapping[str, float] | None, branches: Mapping[str, Any]
) -> dict[str, float]:
    if priority is None:
        return {}
    if not isinstance(priority, Mapping):
        raise ConfigError(f"priority={priority!r} is not valid; give a dict {{branch: number}}.")
    out: dict[str, float] = {}
    for key, value in priority.items():
        if key not in branches:
            check_one_of("priority key", key, list(branches))
        if not is_number(value) or math.isnan(value):
            raise ConfigError(f"priority[{key!r}]={value!r} is not valid; give a number.")
        out[key] = float(value)
    return out


def _check_include_keys(keys: Sequence[str] | None) -> tuple[str, ...] | None:
    if keys is None:
        return None
    if isinstance(keys, str) or not all(isinstance(k, str) for k in keys) or not keys:
        raise ConfigError(
            f"include_keys={keys!r} is not valid; give a non-empty list of field names, or None."
        )
    twice = sorted({k for k in keys if list(keys).count(k) > 1})
    if twice:
        raise ConfigError(
            f"include_keys={list(keys)!r} is not valid: {twice[0]!r} is named twice; "
            "name each field once."
        )
    return tuple(keys)


def _unique_default_names(steps: list[Node]) -> tuple[Node, ...]:
    """``steps`` with default-named Parallels that share a path level renamed ``parallel_2``,
    ``parallel_3``... (a nested Pipeline's steps share its level): every branch path stays unique,
    so frames, ``handle.cancel(path)`` and ``replace`` never confuse two steps."""
    used: set[str] = set()

    def visit(node: Node) -> Node:
        if isinstance(node, Parallel):
            if node._default_name and node.name in used:
                k = 2
                while f"{node.name}_{k}" in used:
                    k += 1
                node = node.replace(name=f"{node.name}_{k}")
            used.add(node.name)
        elif isinstance(node, Pipeline):
            inner = [visit(s) for s in node.steps]
            if any(a is not b for a, b in zip(inner, node.steps, strict=True)):
                node = Pipeline(*inner, name=node.name)
        return node

    return tuple(visit(s) for s in steps)


MAX_DEPTH = 200
"""How deeply Parallels may nest (one in a branch of another). Far beyond any real pipeline;
much deeper and walking the tree (checks, runs) would exhaust Python's recursion limit."""


def _depth(node: Node) -> int:
    """How many Parallels deep ``node`` nests (a Step: 0)."""
    return getattr(node, "_depth", 0)


def _check_depth(depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ConfigError(
            f"Parallels are nested {depth} deep, more than MAX_DEPTH={MAX_DEPTH}; a pipeline "
            "that deep cannot be checked or run without exhausting Python's recursion limit. "
            "HINT: fan out wider (more branches in one Parallel), not deeper."
        )


def _walk_parallels(node: Node) -> Iterator[Parallel]:
    if isinstance(node, Parallel):
        yield node
        children: Iterable[Node] = node.children()
    elif isinstance(node, Pipeline):
        children = node.steps
    else:
        return
    for child in children:
        if type(child) is not Step:  # a leaf holds no Parallel: no generator for it
            yield from _walk_parallels(child)


def _replace(node: Node, changes: Mapping[str, Mapping[str, Any]]) -> Node:
    if isinstance(node, Pipeline):
        return Pipeline(*[_replace(s, changes) for s in node.steps], name=node.name)
    if isinstance(node, Parallel):
        opts = {**changes.get("*", {}), **changes.get(node.name, {})}
        return node.rebuilt(lambda child: _replace(child, changes), **opts)
    return node
