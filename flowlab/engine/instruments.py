"""Who hears what the engine reports: instruments, dispatched per hook.

An :class:`~flowlab.results.recorder.Instrument` overrides the hooks it cares about (``branch_started``,
``merge_applied``, ...); the rest are inherited no-ops. :class:`Hooks` keeps one list per hook of the
instruments that *override* it, so an instrument costs only the hooks it overrides (trio's per-hook
dispatch): a progress bar that listens to ``branch_finished`` does not make every leaf step report
``step_started``, and the engine's inline fast path for one-step branches survives it.

An instrument whose hook raises is disabled for the rest of the run, and the run goes on. That is
logged (``logging.getLogger("flowlab")``) and recorded as an ``instrument_disabled`` row of
``result.events`` naming the instrument, the hook and the error — never a Python warning, which a
``filterwarnings = error`` setting would turn into a failed run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from flowlab.errors import ConfigError
from flowlab.results.recorder import Instrument

__all__ = ["HOOKS", "Hooks", "check_instruments"]

HOOKS: tuple[str, ...] = tuple(name for name in vars(Instrument) if not name.startswith("_"))
"""Every hook an instrument may override, in declaration order."""

logger = logging.getLogger("flowlab")


def check_instruments(instruments: Any) -> list[Instrument]:
    """``instruments`` as a list, each checked to be an :class:`Instrument` (or to have some of
    its hooks); :class:`ConfigError` otherwise."""
    if isinstance(instruments, str | bytes) or not isinstance(instruments, Iterable):
        raise ConfigError(
            f"instruments={instruments!r} is not valid; give a list of fl.Instrument objects "
            "(or objects with its hook methods), or () for none."
        )
    out = list(instruments)
    for i, inst in enumerate(out):
        if not isinstance(inst, Instrument) and not any(hasattr(inst, h) for h in HOOKS):
            raise ConfigError(
                f"instruments[{i}]={inst!r} is not valid; an instrument is an fl.Instrument "
                f"(or has some of its hooks: {', '.join(HOOKS)})."
            )
    return out


def overridden(inst: Any) -> list[str]:
    """The hooks ``inst`` implements itself (all it has, for an object that is no Instrument)."""
    if not isinstance(inst, Instrument):
        return [h for h in HOOKS if callable(getattr(inst, h, None))]
    cls = type(inst)
    return [h for h in HOOKS if getattr(cls, h, None) is not getattr(Instrument, h)]


class Hooks:
    """The instruments of one run, one list per hook of those that override it.

    ``hook in hooks`` says whether anyone listens to ``hook``; :meth:`emit` calls them in the
    order the instruments were given. ``on_disable(instrument, hook, error)`` is told when an
    instrument is disabled (the run records it).
    """

    __slots__ = ("_by_hook", "instruments", "on_disable")

    def __init__(
        self,
        instruments: Iterable[Any] = (),
        on_disable: Callable[[Any, str, BaseException], None] | None = None,
    ) -> None:
        self.instruments: list[Any] = []
        self._by_hook: dict[str, list[Any]] = {}
        self.on_disable = on_disable
        for inst in instruments:
            self.add(inst)

    def add(self, inst: Any) -> None:
        """Start reporting to ``inst`` (a backend adds its own instrument when it opens)."""
        self.instruments.append(inst)
        for hook in overridden(inst):
            self._by_hook.setdefault(hook, []).append(inst)

    def __contains__(self, hook: object) -> bool:
        return bool(self._by_hook.get(hook))  # type: ignore[call-overload]

    def __bool__(self) -> bool:
        return bool(self._by_hook)

    def emit(self, hook: str, *args: Any) -> None:
        """Call ``hook(*args)`` on every instrument that overrides it; disable one that raises."""
        listeners = self._by_hook.get(hook)
        if not listeners:
            return
        for inst in list(listeners):
            try:
                getattr(inst, hook)(*args)
            except Exception as err:
                self.disable(inst, hook, err)

    def disable(self, inst: Any, hook: str, err: BaseException) -> None:
        """Stop reporting to ``inst``: log it and tell ``on_disable``."""
        if inst not in self.instruments:
            return
        self.instruments.remove(inst)
        for listeners in self._by_hook.values():
            if inst in listeners:
                listeners.remove(inst)
        self._by_hook = {h: ls for h, ls in self._by_hook.items() if ls}
        logger.warning(
            "instrument %r raised %s: %s in %s(); it is disabled for the rest of this run",
            inst, type(err).__name__, err, hook,
        )  # fmt: skip
        if self.on_disable is not None:
            self.on_disable(inst, hook, err)
