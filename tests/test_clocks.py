"""The Clock protocol (issue 20): what the engine asks of a clock, and the two clocks it has.

``clock="real"`` / ``"virtual"`` are mapped to a clock object in one place; a run asks that
object for its loop and whether the caller's running loop will do.
"""

from __future__ import annotations

import asyncio

import pytest
from pydantic import BaseModel

import flowlab as fl
from flowlab.engine.clock import (
    REAL,
    VIRTUAL,
    RealClock,
    VirtualClock,
    VirtualTimeLoop,
    as_clock,
    new_loop,
    run_virtual,
)
from flowlab.engine.options import RunOptions
from flowlab.engine.protocols import Clock


class Ctx(BaseModel):
    n: int = 0


def test_both_clocks_satisfy_the_protocol() -> None:
    assert isinstance(REAL, Clock) and isinstance(VIRTUAL, Clock)
    assert (REAL.name, VIRTUAL.name) == ("real", "virtual")
    assert isinstance(RealClock(), Clock) and isinstance(VirtualClock(), Clock)
    assert not isinstance("virtual", Clock)


def test_each_clock_makes_its_own_kind_of_loop() -> None:
    real, virtual = REAL.new_loop(), VIRTUAL.new_loop()
    try:
        assert isinstance(virtual, VirtualTimeLoop) and not isinstance(real, VirtualTimeLoop)
        # a run may use the caller's running loop when it keeps the clock's time; real time
        # takes any loop (on a virtual one it follows that loop's time, as it always has)
        assert VIRTUAL.runs_on(virtual) and not VIRTUAL.runs_on(real)
        assert REAL.runs_on(real) and REAL.runs_on(virtual)
    finally:
        real.close()
        virtual.close()


def test_names_map_to_clocks_in_one_place() -> None:
    assert as_clock("real") is REAL and as_clock("virtual") is VIRTUAL
    assert as_clock(VIRTUAL) is VIRTUAL
    assert RunOptions(clock="virtual").timekeeper is VIRTUAL
    assert RunOptions().timekeeper is REAL
    loop = new_loop("virtual")  # the name still works wherever it did
    assert isinstance(loop, VirtualTimeLoop)
    loop.close()
    for bad in ("wall", None, 1):
        with pytest.raises(fl.ConfigError, match=r"clock=.*'real', 'virtual'"):
            as_clock(bad)  # type: ignore[arg-type]
        with pytest.raises(fl.ConfigError, match=r"clock=.*'real', 'virtual'"):
            fl.run(fl.Pipeline(lambda d: d), Ctx(), clock=bad)  # type: ignore[arg-type]


def _pipe() -> fl.Pipeline:
    def nap(seconds: float):  # type: ignore[no-untyped-def]
        async def step(data: object, ctx: Ctx) -> float:
            await asyncio.sleep(seconds)
            ctx.n += 1
            return seconds

        return step

    return fl.Pipeline(fl.Parallel({"a": nap(2.0), "b": nap(1.0)}, merge="accumulate", name="fan"))


def _timings(result: fl.RunResult) -> list[tuple[str, float, float]]:
    rows = result.branches
    return list(zip(rows["branch"], rows["started_s"], rows["finished_s"], strict=True))


def test_a_virtual_run_has_the_same_frames_wherever_it_is_started() -> None:
    expected = [("a", 0.0, 2.0), ("b", 0.0, 1.0)]
    script = fl.run(_pipe(), Ctx(), clock="virtual")  # no loop running: a loop of its own
    in_plain_loop = asyncio.run(fl.arun(_pipe(), Ctx(), clock="virtual"))  # a helper thread
    in_virtual_loop = run_virtual(fl.arun(_pipe(), Ctx(), clock="virtual"))  # that loop
    for result in (script, in_plain_loop, in_virtual_loop):
        assert result.clock == "virtual" and result.context.n == 2
        assert _timings(result) == expected


def test_a_real_run_uses_the_loop_it_is_given() -> None:
    # on a virtual loop, a real-clock run follows that loop's time (exact timings)
    result = run_virtual(fl.arun(_pipe(), Ctx()))
    assert result.clock == "real" and _timings(result) == [("a", 0.0, 2.0), ("b", 0.0, 1.0)]

    async def instant(data: object, ctx: Ctx) -> None:
        ctx.n += 1

    # on its own (real) loop: no sleeps here, so only the shape is checked, not the times
    result = fl.run(fl.Parallel({"a": instant, "b": instant}, merge="accumulate"), Ctx())
    assert result.clock == "real" and result.status == "ok" and result.context.n == 2
    assert list(result.branches["status"]) == ["ok", "ok"]
