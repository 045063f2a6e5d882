"""Shared machinery of the suite: figures, metrics, targets, timing helpers, the table and the JSON.

A :class:`Figure` is one numbered figure of issue 8 (engine overhead, merge cost, ...). It holds
:class:`Metric` rows; a metric may carry a *target* (a predicate on the measured value with a
human-readable form such as ``"<= 1.5x"``), in which case the table shows PASS or MISS next to it.
A figure (or one metric of it, e.g. one peer) that could not be measured carries an explicit
``skipped`` reason instead of a number — never a silent gap.

Timing: every figure is a ratio against a baseline measured in the same process run. Timed
workloads are run alternately (baseline, flowlab, baseline, flowlab, ...) so that drift in the
machine's speed hits both sides alike; CPU-bound figures report the best of the repeats (timeit's
advice: the minimum is the least disturbed run), latency figures report median and p99 of samples.
CPU-bound figures are timed in **CPU seconds of this process** (``time.process_time``): the
workloads never wait for anything real, so CPU time is their cost, and other jobs on a shared
machine do not inflate one side of a ratio more than the other. Wall-clock figures (latencies, the
virtual-time run, import time) say so.
"""

from __future__ import annotations

import gc
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = [
    "Figure",
    "Metric",
    "Settings",
    "best",
    "median",
    "percentile",
    "samples",
    "timed",
]


@dataclass(frozen=True)
class Settings:
    """How hard to push: ``quick`` is the smoke-test size (whole suite well under a minute)."""

    quick: bool = False

    def pick(self, quick: T, full: T) -> T:
        """``quick`` in a quick run, else ``full``."""
        return quick if self.quick else full


@dataclass
class Metric:
    """One measured number (or an explicit skip), with an optional target.

    Parameters
    ----------
    name : str
        Short key, unique inside its figure (``"ratio_10k"``).
    value : float or None
        The measurement; ``None`` only when ``skipped`` says why.
    unit : str
        ``"x"`` for ratios, ``"us/branch"``, ``"ms"``, ``"s"``, ``"B/branch"``, ``"MB"``.
    label : str
        What a reader sees in the table.
    target : str
        The issue's target in words (``"<= 1.5x"``), empty when the metric has none.
    check : callable, optional
        ``check(value) -> bool``: whether the target is met.
    skipped : str, optional
        Why there is no value.
    """

    name: str
    value: float | None
    unit: str
    label: str = ""
    target: str = ""
    check: Callable[[float], bool] | None = field(default=None, repr=False)
    skipped: str | None = None
    verdict: str | None = field(default=None, repr=False)  # the status, read back from JSON

    @property
    def status(self) -> str:
        """``"PASS"``, ``"MISS"``, ``"skipped"`` or ``""`` (no target)."""
        if self.verdict is not None:
            return self.verdict
        if self.skipped is not None or self.value is None:
            return "skipped" if self.target else ""
        if self.check is None:
            return ""
        return "PASS" if self.check(self.value) else "MISS"

    @classmethod
    def from_json(cls, name: str, data: dict[str, Any]) -> Metric:
        """The metric :meth:`to_json` wrote (its check is gone; its status is kept)."""
        return cls(
            name, data["value"], data["unit"], data["label"], target=data.get("target", ""),
            skipped=data.get("skipped"), verdict=data.get("status", ""),
        )  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "label": self.label or self.name,
            "value": None if self.value is None else _round(self.value),
            "unit": self.unit,
        }
        if self.target:
            out["target"] = self.target
            out["status"] = self.status
        if self.skipped is not None:
            out["skipped"] = self.skipped
        return out


@dataclass
class Figure:
    """One figure of the suite: a title, metrics, notes, or a reason it was skipped."""

    key: str
    number: int
    title: str
    metrics: list[Metric] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    skipped: str | None = None
    seconds: float = 0.0

    def add(self, name: str, value: float | None, unit: str, label: str = "", **kw: Any) -> Metric:
        """Append a metric and return it."""
        m = Metric(name, value, unit, label or name, **kw)
        self.metrics.append(m)
        return m

    def skip_metric(
        self, name: str, unit: str, label: str, reason: str, target: str = ""
    ) -> Metric:
        """Append a metric that could not be measured, with the reason."""
        m = Metric(name, None, unit, label, target=target, skipped=reason)
        self.metrics.append(m)
        return m

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "title": self.title,
            "skipped": self.skipped,
            "seconds": round(self.seconds, 3),
            "metrics": {m.name: m.to_json() for m in self.metrics},
            "notes": list(self.notes),
        }

    @classmethod
    def from_json(cls, key: str, data: dict[str, Any]) -> Figure:
        """The figure :meth:`to_json` wrote (as a worker process sends it back)."""
        return cls(
            key, data["number"], data["title"],
            metrics=[Metric.from_json(k, m) for k, m in data["metrics"].items()],
            notes=list(data["notes"]), skipped=data["skipped"], seconds=data["seconds"],
        )  # fmt: skip


def _round(v: float) -> float:
    if v == 0 or not math.isfinite(v):
        return v
    digits = max(3, 4 - math.floor(math.log10(abs(v))))
    return round(v, digits)


CLOCKS: dict[str, Callable[[], float]] = {"cpu": time.process_time, "wall": time.perf_counter}


def forget_last_result() -> None:
    """Drop the result flowlab keeps of its most recent run (``fl.last_result()``).

    Otherwise the previous run's records stay alive during the next timed call — of flowlab *or*
    of the baseline — and make the garbage collector's passes slower for both (measured apart in
    figure 1 as "previous result alive").
    """
    import sys

    engine = sys.modules.get("flowlab.engine.coordinator")
    last = getattr(engine, "_last", None)
    if isinstance(last, list):
        last.clear()


def timed(fn: Callable[[], Any], clock: str = "cpu") -> float:
    """Seconds of one call of ``fn`` on ``clock`` (``"cpu"`` or ``"wall"``), from a clean heap:
    flowlab's last result dropped and a collection done first."""
    now = CLOCKS[clock]
    forget_last_result()
    gc.collect()
    t0 = now()
    fn()
    return now() - t0


def best(fns: Sequence[Callable[[], Any]], repeat: int, **options: Any) -> list[float]:
    """Each callable's best time (s) over :func:`samples` (same arguments)."""
    return [min(t) for t in samples(fns, repeat, **options)]


def samples(
    fns: Sequence[Callable[[], Any]],
    repeat: int,
    *,
    warmup: bool = True,
    clock: str = "cpu",
    freeze: bool = True,
) -> list[list[float]]:
    """Run the callables alternately ``repeat`` times; return every time (s), per callable,
    round by round (``out[i][r]`` is callable ``i`` in round ``r``).

    After the warm-up (one untimed call of each, which also does their lazy imports), what the
    set-up and the warm-up left on the heap is frozen out of the garbage collector's scans, as
    the harness does before each figure: the timed calls then pay for their own objects, not for
    a peer library's freshly imported modules (which would tax whichever side runs with them).
    ``freeze=False`` leaves the heap as it is (figure 8 reports both).
    """
    if warmup:
        for fn in fns:
            fn()
        if freeze:
            forget_last_result()
            gc.collect()
            gc.freeze()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            times[i].append(timed(fn, clock))
    return times


def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation (numpy's default method)."""
    data = sorted(samples)
    if not data:
        raise ValueError("percentile of no samples")
    pos = (len(data) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def median(samples: Sequence[float]) -> float:
    """The median of ``samples``."""
    return statistics.median(samples)
