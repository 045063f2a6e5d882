"""How a run runs: :class:`RunOptions`, every keyword ``run`` / ``arun`` / ``start`` take, checked once.

The entry points, :func:`flowlab.compare` and the Lab all take the same run keywords. They are
spelled once, here: :class:`RunKwargs` types them for ``**options`` (so a type checker checks a
call to ``fl.run``), and :class:`RunOptions` holds them, frozen, each validated when the options
are made — a bad value is a :class:`~flowlab.errors.ConfigError` naming the parameter, the value
and the choices, before anything runs; an unknown keyword names the closest valid one.

Examples
--------
>>> from flowlab.engine.options import RunOptions
>>> opts = RunOptions(clock="virtual", max_concurrency=4)
>>> opts.replace(timeout=10.0).timeout
10.0
>>> RunOptions.of({"clokc": "virtual"}, where="fl.run")
Traceback (most recent call last):
...
flowlab.errors.ConfigError: fl.run() got an unknown keyword 'clokc'; did you mean 'clock'? ...
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypedDict

from flowlab.core.keyed import Keyed
from flowlab.core.limits import Limiter, as_limiter
from flowlab.core.rate import Rate, check_rate
from flowlab.core.step import _check_timeout
from flowlab.core.usage import UsageLimits
from flowlab.engine.clock import CLOCKS, REAL, as_clock
from flowlab.engine.instruments import check_instruments
from flowlab.engine.protocols import Backend, Clock
from flowlab.engine.streaming import check_on_branch
from flowlab.errors import ConfigError, check_one_of

if TYPE_CHECKING:
    from flowlab.engine.streaming import Outcome
    from flowlab.results.recorder import Instrument

__all__ = ["RunKwargs", "RunOptions"]


class RunKwargs(TypedDict, total=False):
    """The run keywords, for ``**options: Unpack[RunKwargs]`` (see :class:`RunOptions`)."""

    input: Any
    usage: UsageLimits | None
    clock: str
    max_concurrency: Any
    rate: Rate | None
    timeout: float | None
    instruments: Sequence[Instrument]
    progress: bool
    record: bool
    backend: Backend | None
    detect_deadlocks: bool
    on_branch: Callable[[Outcome], Any] | None
    live: bool


@dataclass(frozen=True, slots=True)
class RunOptions:
    """The options of one run (frozen; :meth:`replace` makes a changed copy).

    Parameters
    ----------
    input : Any
        ``data`` for the first step.
    usage : UsageLimits, optional
        One shared budget for the whole run.
    clock : {"real", "virtual"}
        ``"virtual"``: sleeps take no wall time; timings are exact and repeatable.
    max_concurrency : int or Limiter, optional
        Run-wide cap on leaf steps in flight (nested Parallels included). Cannot deadlock.
    rate : fl.limits.Rate, optional
        Run-wide rate of leaf-step starts (nested Parallels included), and/or of the tokens
        that :func:`flowlab.charge` reports (``Rate(tokens_per_minute=...)``). A leaf takes its
        run-wide slot first, then waits for the rate. ``None``: no rate limit.
    timeout : float, optional
        Seconds for the whole run. ``None`` (default): no timeout, hidden or otherwise.
    instruments : sequence of Instrument
        Extra observers (the recorder is always on); each hears only the hooks it overrides.
    progress : bool, default False
        Show a progress bar (tqdm.auto) of finished branches.
    record : bool, default True
        Record the event log and diffs (branch and step rows are always kept).
    backend : optional
        Where leaf steps of branches run, e.g. ``fl.backends.Dask(...)``. Default: this process.
    detect_deadlocks : bool, default False
        Watch the run with ``fl.deadlock.watch``: if branches deadlock on traced primitives
        (``fl.deadlock.Lock`` ...), the run fails at once with
        :class:`~flowlab.errors.DeadlockDetected` whose ``.report`` explains the cycle.
    on_branch : callable, optional
        ``on_branch(outcome)`` as each branch ends (``.path .branch .status .output .error``),
        called on the run's loop thread. One that raises is disabled (logged, and an
        ``instrument_disabled`` row of ``result.events``); the run goes on.
    live : bool, default False
        Draw the run while it goes: in a notebook a widget whose timeline grows as branches
        end, in a terminal a tqdm bar.
    """

    input: Any = None
    usage: UsageLimits | None = None
    clock: str = "real"
    max_concurrency: Any = None
    rate: Rate | None = None
    timeout: float | None = None
    instruments: Sequence[Instrument] = ()
    progress: bool = False
    record: bool = True
    backend: Backend | None = None
    detect_deadlocks: bool = False
    on_branch: Callable[[Outcome], Any] | None = None
    live: bool = False
    limiter: Limiter | None = field(init=False, repr=False, compare=False, default=None)
    """``max_concurrency`` as a limiter (``None``: no run-wide cap)."""
    timekeeper: Clock = field(init=False, repr=False, compare=False, default=REAL)
    """``clock`` as the :class:`~flowlab.engine.protocols.Clock` the engine asks (its loops)."""

    def __post_init__(self) -> None:
        check_one_of("clock", self.clock, CLOCKS)  # a name, as result.clock records it
        object.__setattr__(self, "timekeeper", as_clock(self.clock))
        if self.usage is not None and not isinstance(self.usage, UsageLimits):
            raise ConfigError(
                f"usage={self.usage!r} is not valid; give fl.UsageLimits(cost=..., tokens=...) "
                "or None."
            )
        limiter = as_limiter(self.max_concurrency, param="max_concurrency")
        if isinstance(limiter, Keyed):
            raise ConfigError(
                f"max_concurrency={self.max_concurrency!r} is not valid for a whole run: a Keyed "
                "cap keys the branches of one step. HINT: give it to the Parallel "
                "(fl.Parallel(..., max_concurrency=fl.limits.Keyed(...))), and an int or a "
                "Fixed/Adaptive/AIMD limiter to fl.run."
            )
        object.__setattr__(self, "limiter", limiter)
        check_rate(self.rate)
        object.__setattr__(self, "timeout", _check_timeout("timeout", self.timeout))
        object.__setattr__(self, "instruments", tuple(check_instruments(self.instruments)))
        for name in ("progress", "record", "detect_deadlocks", "live"):
            value = getattr(self, name)
            if not isinstance(value, bool):
                raise ConfigError(f"{name}={value!r} is not valid; give True or False.")
        if self.backend is not None and not isinstance(self.backend, Backend):
            raise ConfigError(
                f"backend={self.backend!r} is not valid; give a backend object such as "
                "fl.backends.Dask(...) (anything with async call(run, step, args, ctx)), or None "
                "to run steps in this process."
            )
        check_on_branch(self.on_branch)

    @classmethod
    def of(cls, options: Mapping[str, Any], *, where: str) -> RunOptions:
        """Options from keywords given to ``where`` (``"fl.run"``, ...); an unknown keyword is a
        :class:`ConfigError` naming the closest valid one."""
        valid = [f.name for f in dataclasses.fields(cls) if f.init]
        for name in options:
            if name not in valid:
                close = difflib.get_close_matches(name, valid, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ConfigError(
                    f"{where}() got an unknown keyword {name!r}{hint} "
                    f"(the run options are: {', '.join(valid)})."
                )
        return cls(**options)

    def replace(self, **changes: Any) -> RunOptions:
        """A copy with ``changes`` applied (validated like the constructor)."""
        return RunOptions.of({**self.as_kwargs(), **changes}, where="RunOptions.replace")

    def as_kwargs(self) -> dict[str, Any]:
        """The options as keywords (what :meth:`of` takes)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}
