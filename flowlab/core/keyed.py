"""Caps per key: :class:`Keyed` (per model, per host) and its per-run :class:`KeyedState`.

``fl.limits.Keyed(key=lambda b: b.name.split("-")[0], limits={"gpt": 5, "*": 2})`` goes where a
cap goes, ``max_concurrency=`` on a Parallel: each branch gets a key from ``key(branch)``, and at
most ``limits[key]`` branches of one key run at once; ``"*"`` is the cap of *each* key not listed
(each such key on its own, not all of them together). A key that is not listed, with no ``"*"``,
fails the step before any branch starts, naming the key, the branch and the keys there are.

What ``key`` receives
---------------------
Under a ``fl.Map``, the branch's **item** (``Keyed(key=lambda item: item.model, ...)``, as one
writes it for the data). Under a ``fl.Parallel``, whose branches have no item, a
:class:`BranchInfo`: ``.name`` (the branch name), ``.index`` (its declared position) and
``.step`` (the Parallel's path). The queue lets a
branch whose key has room start ahead of a better-placed branch whose key is full: a full ``gpt``
never holds up ``claude``.

Examples
--------
>>> from flowlab.core.keyed import BranchInfo, Keyed
>>> lim = Keyed(key=lambda b: b.name.split("-")[0], limits={"gpt": 2, "*": 1})
>>> state = lim.new_state()
>>> k = state.key_of(BranchInfo("gpt-1", 0, "fan"))
>>> [state.try_acquire_key(k), state.try_acquire_key(k), state.try_acquire_key(k)]
[True, True, False]
>>> state
<Keyed in_flight={'gpt': 2} waiting=0 peak=2>
"""

from __future__ import annotations

import heapq
import inspect
from collections.abc import Callable, Container, Hashable, Mapping
from dataclasses import dataclass
from typing import Any

from flowlab.core.limiter_stats import KeyedStatistics
from flowlab.core.limits import Limiter, LimiterState, LimitListener
from flowlab.core.numbers import is_int
from flowlab.errors import BookkeepingError, ConfigError

__all__ = ["BranchInfo", "Keyed", "KeyedQueue", "KeyedState"]


@dataclass(frozen=True, slots=True)
class BranchInfo:
    """What a :class:`Keyed` key callable receives for one branch.

    Attributes
    ----------
    name : str
        The branch name.
    index : int
        Its declared position in the step.
    step : str
        The step's path.
    item : Any
        The item of a ``fl.Map`` branch; ``None`` for a Parallel's branch.
    mapped : bool
        A ``fl.Map`` branch: ``key`` is given its item rather than this object.
    """

    name: str
    index: int
    step: str
    item: Any = None
    mapped: bool = False


def _check_limits(limits: Any) -> dict[Hashable, int]:
    if not isinstance(limits, Mapping) or not limits:
        raise ConfigError(
            f"Keyed: limits={limits!r} is not valid; give a non-empty dict {{key: cap}}, "
            "e.g. {'gpt': 5, '*': 2} ('*': the cap of each key not listed)."
        )
    out: dict[Hashable, int] = {}
    for key, cap in limits.items():
        if not is_int(cap) or cap < 1:
            raise ConfigError(
                f"Keyed: limits[{key!r}]={cap!r} is not valid; a cap is an integer >= 1."
            )
        out[key] = cap
    return out


class Keyed(Limiter):
    """At most ``limits[key(branch)]`` branches of each key in flight.

    Parameters
    ----------
    key : callable
        ``key(branch) -> hashable``, called once per branch when it is queued, with a
        :class:`BranchInfo` (``.name``, ``.index``, ``.step``, ``.item``).
    limits : mapping
        ``{key: cap}``; the entry ``"*"`` is the cap of each key not listed.

    Raises
    ------
    ConfigError
        For a ``key`` that is not a one-argument callable, or bad ``limits``.
    """

    name = "keyed"

    def __init__(self, key: Callable[[BranchInfo], Hashable], limits: Mapping[Any, int]) -> None:
        if not callable(key) or inspect.isclass(key):
            raise ConfigError(
                f"Keyed: key={key!r} is not valid; give a callable branch -> key, e.g. "
                "lambda b: b.name.split('-')[0] (b is a fl.limits.BranchInfo: .name .index "
                ".step .item)."
            )
        self.key = key
        self.limits = _check_limits(limits)

    def initial(self) -> int:
        return max(self.limits.values())

    def new_state(self, on_change: LimitListener | None = None) -> KeyedState:
        return KeyedState(self, on_change)

    def cap(self, key: Hashable, branch: str = "?") -> int:
        """The cap of ``key``.

        Raises
        ------
        ConfigError
            For a key that is not listed when there is no ``"*"``.
        """
        cap = self.limits.get(key)
        if cap is None:
            cap = self.limits.get("*")
        if cap is None:
            listed = ", ".join(repr(k) for k in self.limits)
            raise ConfigError(
                f"Keyed: key {key!r} (of branch {branch!r}) is not valid; choose one of "
                f"{listed}, or add a '*' entry for every other key."
            )
        return cap

    def __repr__(self) -> str:
        fn = getattr(self.key, "__qualname__", repr(self.key))
        return f"Keyed(key={fn}, limits={self.limits!r})"


class KeyedState(LimiterState):
    """Per-run state of :class:`Keyed`: one count per key. Its owner (a Parallel's queue) asks
    :meth:`try_acquire_key` / :meth:`release_key`; the plain ``acquire`` is not used."""

    limiter: Keyed

    def __init__(self, limiter: Keyed, on_change: LimitListener | None = None) -> None:
        super().__init__(limiter, on_change)
        self.per_key: dict[Hashable, int] = {}
        self.caps: dict[Hashable, int] = {}
        self.peak_per_key: dict[Hashable, int] = {}

    def key_of(self, info: BranchInfo) -> Hashable:
        """The branch's key (its cap checked).

        Raises
        ------
        ConfigError
            When the key callable raises, returns something unhashable, or a key with no cap.
        """
        try:
            key = self.limiter.key(info.item if info.mapped else info)
            hash(key)
        except Exception as err:
            raise ConfigError(
                f"Keyed: key={getattr(self.limiter.key, '__qualname__', self.limiter.key)} "
                f"raised {type(err).__name__}: {err} for branch {info.name!r}; it must return a "
                "hashable key (it is given a Map branch's item, or a Parallel branch's "
                "fl.limits.BranchInfo: .name .index .step)."
            ) from err
        if key not in self.caps:
            self.caps[key] = self.limiter.cap(key, info.name)
            self.per_key[key] = 0
        return key

    def has_room(self, key: Hashable) -> bool:
        """Whether a branch of ``key`` could start now."""
        return self.per_key[key] < self.caps[key]

    def try_acquire_key(self, key: Hashable) -> bool:
        """Take a slot of ``key`` if it has one."""
        n = self.per_key[key]
        if n >= self.caps[key]:
            return False
        self.per_key[key] = n + 1
        if n + 1 > self.peak_per_key.get(key, 0):
            self.peak_per_key[key] = n + 1
        self._take()
        return True

    def release_key(self, key: Hashable) -> None:
        """Give a slot of ``key`` back.

        Raises
        ------
        BookkeepingError
            No slot of ``key`` is out: a release without its acquire would make the key's count
            negative and let one branch of that key too many run. The counts are left as they
            were.
        """
        if self.per_key.get(key, 0) <= 0:
            raise BookkeepingError(
                f"{self!r}: release_key({key!r}) without a matching try_acquire_key (no slot of "
                f"key {key!r} is out); the limiter's counts are left as they were."
            )
        self.per_key[key] -= 1
        self.in_flight -= 1

    def statistics(self) -> KeyedStatistics:
        """A frozen snapshot: the totals, and copies of the counts, caps and peaks per key."""
        return KeyedStatistics(
            limiter=self.limiter.name, limit=self.limit, in_flight=self.in_flight,
            waiting=self.waiting, peak=self.peak, granted=self.granted, moves=self.moves,
            per_key=dict(self.per_key), caps=dict(self.caps),
            peak_per_key=dict(self.peak_per_key),
        )  # fmt: skip

    def __repr__(self) -> str:
        busy = {k: v for k, v in self.per_key.items() if v}
        return f"<Keyed in_flight={busy} waiting={self.waiting} peak={self.peak}>"


Row = tuple[float, str, int, int, str, str, str, float]  # a result.limits row


class KeyedQueue:
    """A Parallel's queue of branches under a :class:`Keyed` cap: one heap per key.

    Entries are ``(-priority, declared index, name)``. :meth:`pop_ready` starts the best-placed
    branch among the keys that have room, so a full key never holds up another key. Each key's
    first appearance is a ``start`` row, and each branch it held back a ``wait`` row of
    ``result.limits`` (handed to ``log``) when it starts: from the moment its key was full with
    it queued, with the key's branches in flight then, for as long as it waited.
    """

    def __init__(self, state: KeyedState, step: str, log: Callable[[Row], None]) -> None:
        self.state = state
        self.step = step
        self._log = log
        self.queues: dict[Hashable, list[tuple[float, int, str]]] = {}
        self.key_of: dict[str, Hashable] = {}
        self.holding: dict[str, Hashable] = {}  # branch -> the key whose slot it holds
        self.size = 0  # entries, cancelled ones included until they are popped
        # key -> (since when it holds branches back, its branches in flight then)
        self._held: dict[Hashable, tuple[float, int]] = {}

    def push(self, entry: tuple[float, int, str], key: Hashable, t: float) -> None:
        """Queue a branch (its ``key`` from :meth:`KeyedState.key_of`)."""
        if key not in self.queues:
            self.queues[key] = []
            cap = self.state.caps[key]
            self._log((t, self.step, cap, self.state.per_key[key], "keyed", "start", str(key), 0.0))
        heapq.heappush(self.queues[key], entry)
        self.key_of[entry[2]] = key
        self.size += 1

    def __bool__(self) -> bool:
        return self.size > 0

    def pop_ready(self, alive: Container[str], t: float) -> str | None:
        """Take a slot for the best-placed live branch whose key has room and return its name;
        ``None`` when no such branch is queued."""
        best: tuple[tuple[float, int, str], Hashable] | None = None
        for key, queue in self.queues.items():
            while queue and queue[0][2] not in alive:  # cancelled while queued
                heapq.heappop(queue)
                self.size -= 1
            if not queue:
                continue
            if not self.state.has_room(key):
                self._held.setdefault(key, (t, self.state.per_key[key]))
            elif best is None or queue[0] < best[0]:
                best = (queue[0], key)
        if best is None:
            return None
        entry, key = best
        heapq.heappop(self.queues[key])
        self.size -= 1
        self.state.try_acquire_key(key)
        self.holding[entry[2]] = key
        held = self._held.get(key)
        if held is not None:
            since, running = held
            if not self.queues[key]:  # none of the key's branches waits any more
                del self._held[key]
            if t > since:  # this branch waited since the key was full (the rest still wait)
                cap = self.state.caps[key]
                self._log((since, self.step, cap, running, "keyed", "wait", str(key), t - since))
        return entry[2]

    def release(self, name: str) -> None:
        """Give back the slot of branch ``name``'s key.

        Raises
        ------
        BookkeepingError
            Branch ``name`` holds no slot (never started, or released already): giving one back
            would take the slot of a sibling of its key. The counts are left as they were.
        """
        if name not in self.holding:
            raise BookkeepingError(
                f"KeyedQueue of step {self.step!r}: release({name!r}) without a slot (branch "
                f"{name!r} holds none); the limiter's counts are left as they were."
            )
        self.state.release_key(self.holding.pop(name))
