"""A leaf of a pipeline: :class:`Step`, a callable and how it is called.

A step is any callable taking ``(data, ctx)``, ``(data)``, ``(ctx)`` or nothing, sync or async.
Which one gets the context alone is decided by the *name* of its first parameter (``ctx`` or
``state``, LangGraph's spelling), never by its annotation; ``Step(fn, takes=...)`` overrides the
rule. Signatures that cannot be called so, generator functions and coroutine objects are refused
when the step is built, naming the step. Sync steps run in a worker thread so a blocking branch
cannot stall its siblings.

Examples
--------
>>> from flowlab.core.step import Step
>>> Step(lambda data, ctx: None, name="s").arity
2
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable
from typing import Any

from flowlab.core.numbers import is_number
from flowlab.core.retry import Retry, check_retry
from flowlab.errors import ConfigError, check_one_of

__all__ = ["CTX_NAMES", "TAKES", "Frozen", "Step"]


def _check_timeout(param: str, value: float | None) -> float | None:
    if value is None:
        return None
    if not is_number(value):
        raise ConfigError(
            f"{param}={value!r} is not valid; give seconds as a number > 0, or None for no timeout."
        )
    if math.isnan(value) or value <= 0:
        raise ConfigError(
            f"{param}={value!r} is not valid; give seconds as a number > 0, or None for no timeout."
        )
    return float(value)


def _is_async_callable(fn: Any) -> bool:
    while isinstance(fn, functools.partial):
        fn = fn.func
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(fn, "__call__", None)  # noqa: B004 - callable objects with async __call__
    return call is not None and inspect.iscoroutinefunction(call)


def _positional_arity(fn: Callable[..., Any]) -> int:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return 2
    count = 0
    for p in sig.parameters.values():
        if p.kind is p.VAR_POSITIONAL:
            return 2
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            count += 1
    return min(count, 2)


CTX_NAMES: frozenset[str] = frozenset({"ctx", "state"})
"""A step whose first parameter has one of these names gets the context alone: ``fn(ctx)``."""


TAKES: tuple[str, ...] = ("data", "ctx")


def _takes_ctx(fn: Callable[..., Any], takes: str | None) -> bool:
    """Whether ``fn`` is called ``fn(ctx)``: ``takes="ctx"``, or (``takes=None``) its first
    positional parameter is named ``ctx`` or ``state`` (LangGraph's ``def node(state)``)."""
    if takes is not None:
        check_one_of("takes", takes, TAKES, hint="None (the default) decides by the name.")
        return takes == "ctx"
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    first = next((p for p in params if p.kind in kinds), None)
    return first is not None and first.name in CTX_NAMES


def _check_callable_as_step(fn: Callable[..., Any], name: str, arity: int) -> None:
    """Raise :class:`ConfigError` for a function the engine could call but that cannot work as
    a step: a generator (calling it runs nothing) or a signature that ``(data, ctx)``,
    ``(data)`` or ``()`` cannot bind."""
    inner = fn
    while isinstance(inner, functools.partial):
        inner = inner.func
    kind = (
        "an async generator function"
        if inspect.isasyncgenfunction(inner)
        else "a generator function"
        if inspect.isgeneratorfunction(inner)
        else ""
    )
    if kind:
        raise ConfigError(
            f"step {name!r} is {kind}: calling it only makes a generator, so its body would "
            "never run. HINT: return the value instead of yielding it (or collect the items: "
            "return list(...))."
        )
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return  # a builtin without a signature: the call itself will tell
    try:
        sig.bind(*(None,) * arity)
    except TypeError:
        plain = [p.replace(annotation=p.empty) for p in sig.parameters.values()]
        sig = sig.replace(parameters=plain, return_annotation=sig.empty)
        raise ConfigError(
            f"step {name!r} has the signature {sig}, which cannot be called as a step; a step "
            "is called as fn(data, ctx), fn(data) or fn(), positionally (fn(ctx) when its first "
            "parameter is named ctx or state). HINT: take (data, ctx) and give any other "
            "parameter a default."
        ) from None


class Frozen:
    """A spec that cannot change once built: ``p.merge = "deep"`` raises; ``p.replace(...)``
    makes a changed copy, validated like the constructor (attrs' ``evolve``). The engine may run
    one spec many times, at once, so a spec it is running never changes under it."""

    _frozen = False

    def __setattr__(self, name: str, value: Any) -> None:
        if self._frozen:
            raise AttributeError(
                f"{type(self).__name__} is frozen: {name!r} cannot be set. "
                f"HINT: make a changed copy, spec = spec.replace({name}=...)."
            )
        object.__setattr__(self, name, value)

    def _freeze(self) -> None:
        object.__setattr__(self, "_frozen", True)


class Step(Frozen):
    """One unit of work: a callable run with the previous step's output and the context.

    How a step is called (``data`` is the previous step's output, ``ctx`` the context):

    * ``fn(data, ctx)`` — two positional parameters (or ``*args``);
    * ``fn(ctx)`` — LangGraph style: the first positional parameter is named ``ctx`` or
      ``state`` (``def node(state)``, ``async def node(ctx: Ctx)``), or ``takes="ctx"``;
    * ``fn(data)`` — any other one-parameter function (``def double(x)``);
    * ``fn()`` — no positional parameter.

    Only the *name* decides, never the annotation: ``def embed(doc: Doc)`` with ``Doc`` a pydantic
    model still gets its data. A step may write the context by returning
    :class:`~flowlab.core.update.Update` (``return fl.Update(status="done")``).

    Parameters
    ----------
    fn : callable
        ``async def`` or plain ``def`` (plain ones run in a worker thread).
    name : str, optional
        Defaults to the function's ``__name__``.
    timeout : float, optional
        Seconds on the run's clock; ``None`` (default) means no timeout. With ``retry``, each
        attempt has this long.
    takes : {"data", "ctx"}, optional
        Overrides the name rule for a one-argument call: ``"ctx"`` calls ``fn(ctx)`` whatever its
        parameter is named, ``"data"`` calls ``fn(data, ctx)``, ``fn(data)`` or ``fn()`` by
        arity even if the first parameter is named ``ctx`` or ``state``.
    retry : Retry, optional
        Try again on failure (:class:`~flowlab.core.retry.Retry`): each attempt on a fresh isolated
        copy of the context, each a row of ``result.attempts``. Beats a Parallel's or Map's.

    Examples
    --------
    >>> Step(lambda state: None).takes_ctx, Step(lambda x: x).takes_ctx
    (True, False)
    >>> Step(lambda s: None, takes="ctx").takes_ctx
    True
    >>> import flowlab as fl
    >>> fl.Step(print, retry=fl.Retry(attempts=2, jitter=0))
    Step('print', retry=Retry(attempts=2, backoff=1, factor=2, max_backoff=60, jitter=0))
    """

    kind = "step"

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        timeout: float | None = None,
        takes: str | None = None,
        retry: Retry | None = None,
    ) -> None:
        if inspect.iscoroutine(fn):
            fn.close()
            raise ConfigError(
                "fn is a coroutine object, not a function. HINT: pass the function itself "
                "(`my_step`), not a call (`my_step(...)`)."
            )
        if not callable(fn):
            raise ConfigError(
                f"fn={fn!r} is not valid; a step must be a callable (data, ctx) -> output, "
                "a Step, a Parallel or a Pipeline."
            )
        self.fn = fn
        self.name = _check_name("name", name if name is not None else _callable_name(fn))
        self.timeout = _check_timeout("timeout", timeout)
        self.retry = check_retry(retry)
        self.is_async = _is_async_callable(fn)
        self.takes_ctx = _takes_ctx(fn, takes)  # called fn(ctx)
        self.arity = 1 if self.takes_ctx else _positional_arity(fn)  # how many it is given
        # which of (data, ctx) it is given: engine and backends call fn(*(data, ctx)[wants])
        self.wants: slice = slice(1, 2) if self.takes_ctx else slice(0, self.arity)
        _check_callable_as_step(fn, self.name, self.arity)
        self._takes = takes
        self._freeze()

    def replace(self, **changes: Any) -> Step:
        """A copy with some of ``name``, ``timeout``, ``takes``, ``retry`` changed.

        Examples
        --------
        >>> Step(print, name="p").replace(timeout=2.0)
        Step('p', timeout=2)
        """
        given = {
            "name": self.name,
            "timeout": self.timeout,
            "takes": self._takes,
            "retry": self.retry,
        }
        unknown = sorted(set(changes) - set(given))
        if unknown:
            raise ConfigError(
                f"{unknown[0]!r} is not a Step option; choose one of {', '.join(map(repr, given))}."
            )
        return Step(self.fn, **{**given, **changes})

    def __repr__(self) -> str:
        extra = f", timeout={self.timeout:g}" if self.timeout is not None else ""
        extra += f", retry={self.retry!r}" if self.retry is not None else ""
        return f"Step({self.name!r}{extra})"


def _callable_name(fn: Any) -> str:
    while isinstance(fn, functools.partial):
        fn = fn.func
    name = getattr(fn, "__name__", None) or type(fn).__name__
    return "step" if name == "<lambda>" else str(name)


def _check_name(param: str, name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{param}={name!r} is not valid; a name must be a non-empty string.")
    return name
