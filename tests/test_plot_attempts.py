"""fl.plot.attempts (and the retry ticks on fl.plot.timeline): artists, exact virtual times."""

from __future__ import annotations

import asyncio
from typing import Any

import matplotlib.pyplot as plt
import pytest
from matplotlib.colors import to_hex
from pydantic import BaseModel

import flowlab as fl
from flowlab.ui.plot import STATUS_COLORS


class Ctx(BaseModel):
    n: int = 0


class Flaky:
    """Fails its first ``fails`` calls, each after ``seconds``, then returns."""

    def __init__(self, fails: int, seconds: float = 1.0) -> None:
        self.fails, self.seconds, self.calls = fails, seconds, 0
        self.__name__ = "call"

    async def __call__(self, data: Any, ctx: Ctx) -> str:
        self.calls += 1
        await asyncio.sleep(self.seconds)
        if self.calls <= self.fails:
            raise ConnectionError(f"429 #{self.calls}")
        return "ok"


def patches(ax: Any, prefix: str) -> dict[str, tuple[float, float, float]]:
    """``{gid: (left, width, y centre)}`` of the bars whose gid starts with ``prefix``."""
    return {
        p.get_gid(): (float(p.get_x()), float(p.get_width()), float(p.get_y() + p.get_height() / 2))
        for p in ax.patches
        if str(p.get_gid()).startswith(prefix)
    }


def fanout() -> fl.RunResult:
    # a fails twice (1 s each), b once (2 s each), c never; backoff 1 s then 2 s, no jitter
    pipe = fl.Parallel(
        {"a": Flaky(2, 1.0), "b": Flaky(1, 2.0), "c": Flaky(0, 1.0)},
        retry=fl.Retry(attempts=3, backoff=1.0, factor=2.0, jitter=0),
        name="fan",
    )
    return fl.run(pipe, Ctx(), clock="virtual")


def test_one_bar_per_attempt_at_its_exact_times_coloured_by_status() -> None:
    ax = fl.plot.attempts(fanout())
    bars = patches(ax, "attempt:")
    # a: 0-1 failed, wait 1, 2-3 failed, wait 2, 5-6 ok; b: 0-2 failed, wait 1, 3-5 ok
    assert bars == {
        "attempt:fan:a/call#1": (0.0, 1.0, 0.0),
        "attempt:fan:a/call#2": (2.0, 1.0, 0.0),
        "attempt:fan:a/call#3": (5.0, 1.0, 0.0),
        "attempt:fan:b/call#1": (0.0, 2.0, 1.0),
        "attempt:fan:b/call#2": (3.0, 2.0, 1.0),
    }  # c succeeded at once: not a retried leaf, no row
    colour = {p.get_gid(): to_hex(p.get_facecolor()) for p in ax.patches}
    assert colour["attempt:fan:a/call#1"] == STATUS_COLORS["failed"]
    assert colour["attempt:fan:a/call#3"] == STATUS_COLORS["ok"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["fan:a/call", "fan:b/call"]
    numbers = {t.get_gid(): t.get_text() for t in ax.texts}
    assert numbers["number:fan:a/call#3"] == "3"
    assert "2 retried leaves, 5 attempts (3 not ok), 4 s of backoff" in ax.get_title()


def test_backoff_waits_are_hatched_gaps_between_attempts() -> None:
    ax = fl.plot.attempts(fanout())
    assert patches(ax, "backoff:") == {
        "backoff:fan:a/call#2": (1.0, 1.0, 0.0),
        "backoff:fan:a/call#3": (3.0, 2.0, 0.0),
        "backoff:fan:b/call#2": (2.0, 1.0, 1.0),
    }
    waits = [p for p in ax.patches if str(p.get_gid()).startswith("backoff:")]
    assert all(p.get_hatch() and not p.get_fill() for p in waits)
    assert patches(ax, "queued:") == {}  # nothing held them after the backoff
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["ok", "failed", "backoff"]


def test_a_wait_beyond_the_backoff_is_drawn_as_queued() -> None:
    # the run's rate lets one attempt start per 2 s: a's retry waits 1 s of backoff, then 1 more
    result = fl.run(
        fl.Step(Flaky(1, 0.0), retry=fl.Retry(2, backoff=1.0, jitter=0)),
        Ctx(),
        clock="virtual",
        rate=fl.limits.Rate(per_second=0.5),
    )
    ax = fl.plot.attempts(result)
    assert patches(ax, "attempt:") == {
        "attempt:call#1": (0.0, 0.0, 0.0),
        "attempt:call#2": (2.0, 0.0, 0.0),
    }
    assert patches(ax, "backoff:") == {"backoff:call#2": (0.0, 1.0, 0.0)}
    assert patches(ax, "queued:") == {"queued:call#2": (1.0, 1.0, 0.0)}
    assert not ax.texts  # instant attempts: no room for their numbers


def test_every_leaf_with_a_policy_when_asked_and_kwargs_reach_the_bars() -> None:
    _, given = plt.subplots()
    ax = fl.plot.attempts(fanout(), ax=given, retried_only=False, numbers=False, linewidth=2.5)
    assert ax is given
    bars = patches(ax, "attempt:")
    assert bars["attempt:fan:c/call#1"] == (0.0, 1.0, 2.0)
    assert len(bars) == 6
    assert {p.get_linewidth() for p in ax.patches if str(p.get_gid()).startswith("attempt:")} == {
        2.5
    }
    assert not [t for t in ax.texts if str(t.get_gid()).startswith("number:")]
    assert "3 leaves with a retry policy" in ax.get_title()


def test_without_retries_the_picture_says_so() -> None:
    no_policy = fl.run(fl.Step(Flaky(0)), Ctx(), clock="virtual")
    ax = fl.plot.attempts(no_policy)
    assert not ax.patches
    assert ax.get_title().endswith("no attempts recorded: no step has a retry policy")
    first_try = fl.run(fl.Step(Flaky(0), retry=fl.Retry(2)), Ctx(), clock="virtual")
    assert fl.plot.attempts(first_try).get_title().endswith("no leaf was retried")


def test_not_a_result_is_a_config_error() -> None:
    with pytest.raises(fl.ConfigError, match="is not a RunResult"):
        fl.plot.attempts(None)  # type: ignore[arg-type]


def test_timeline_ticks_each_failed_attempt_on_its_branch() -> None:
    result = fanout()
    ax = fl.plot.timeline(result)
    [ticks] = [c for c in ax.collections if c.get_gid() == "retries"]
    rows = {
        t.get_text(): float(y) for y, t in zip(ax.get_yticks(), ax.get_yticklabels(), strict=True)
    }
    offsets = sorted((float(x), float(y)) for x, y in ticks.get_offsets())
    assert offsets == sorted(
        [(1.0, rows["a"]), (3.0, rows["a"]), (2.0, rows["b"])]
    )  # where each failed attempt ended
    assert "failed attempt" in [t.get_text() for t in ax.get_legend().get_texts()]
    plain = fl.plot.timeline(result, retries=False)
    assert not [c for c in plain.collections if c.get_gid() == "retries"]
