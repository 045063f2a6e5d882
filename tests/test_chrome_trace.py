"""RunResult.to_chrome_trace validates against the Trace Event Format (Chrome / Perfetto).

The format (https://docs.google.com/document/d/1CvAClvFfyA5R-PhYUmn5OOQtYMH4h6I0nSsKchNAySU):
a JSON object with a ``traceEvents`` list; every event has ``ph`` (phase, a one-letter string),
``pid`` and ``tid`` (integers), ``name`` (string); a complete event (``ph == "X"``) has ``ts`` and
``dur`` in microseconds (numbers, ``dur >= 0``); a metadata event (``ph == "M"``) names a process
or thread in ``args.name``.
"""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

import flowlab as fl

PHASES = set("BEXiICbnestfPONDMVvRc()")  # every phase the format defines


class Ctx(BaseModel):
    n: int = 0


def work(seconds: float, fail: bool = False) -> Any:
    async def step(data: Any, ctx: Ctx) -> None:
        await asyncio.sleep(seconds)
        if fail:
            raise RuntimeError("boom")

    return step


def validate(trace: Any) -> list[dict[str, Any]]:
    """Assert ``trace`` is a valid JSON-object trace; return its events."""
    assert isinstance(trace, dict)
    events = trace["traceEvents"]
    assert isinstance(events, list) and events
    assert trace.get("displayTimeUnit", "ms") in ("ms", "ns")
    for ev in events:
        assert isinstance(ev, dict)
        assert isinstance(ev["ph"], str) and len(ev["ph"]) == 1 and ev["ph"] in PHASES, ev
        assert isinstance(ev["name"], str) and ev["name"], ev
        for key in ("pid", "tid"):
            assert isinstance(ev[key], int) and not isinstance(ev[key], bool), ev
        if "args" in ev:
            assert isinstance(ev["args"], dict)
        if ev["ph"] == "X":
            for key in ("ts", "dur"):
                assert isinstance(ev[key], int | float) and not isinstance(ev[key], bool), ev
                assert math.isfinite(ev[key]) and ev[key] >= 0, ev
        if ev["ph"] == "M":
            assert ev["name"] in (
                "process_name",
                "thread_name",
                "process_sort_index",
                "thread_sort_index",
            )
            assert isinstance(ev["args"]["name"], str) or "sort_index" in ev["args"]
    return events


@pytest.fixture(scope="module")
def result() -> fl.RunResult:
    inner = fl.Parallel({"x": work(0.5), "y": work(0.25)}, name="inner")
    fan = fl.Parallel(
        {"a": work(1), "b": work(2, fail=True), "n": fl.Pipeline(inner), "d": work(1)},
        max_concurrency=2, on_failure="ignore", name="fan",
    )  # fmt: skip
    return fl.run(fl.Pipeline(fan, name="traced"), Ctx(), clock="virtual")


def test_trace_is_valid_and_round_trips_through_json(result: fl.RunResult, tmp_path: Path) -> None:
    path = tmp_path / "trace.json"
    trace = result.to_chrome_trace(path)
    loaded = json.loads(path.read_text(encoding="utf-8"))
    assert loaded == json.loads(json.dumps(trace, default=str))
    validate(loaded)


def test_one_named_track_per_branch(result: fl.RunResult) -> None:
    events = validate(result.to_chrome_trace())
    threads = {
        ev["tid"]: ev["args"]["name"]
        for ev in events
        if ev["ph"] == "M" and ev["name"] == "thread_name"
    }
    assert sorted(threads.values()) == sorted(result.branches["path"])
    assert len(set(threads)) == len(threads)
    (process,) = [ev for ev in events if ev["ph"] == "M" and ev["name"] == "process_name"]
    assert process["args"]["name"] == "traced"


def test_complete_events_match_the_branches_frame(result: fl.RunResult) -> None:
    events = validate(result.to_chrome_trace())
    tracks = {
        ev["args"]["name"]: ev["tid"]
        for ev in events
        if ev["ph"] == "M" and ev["name"] == "thread_name"
    }
    for row in result.branches.itertuples():
        on_track = [ev for ev in events if ev["ph"] == "X" and ev["tid"] == tracks[row.path]]
        (run,) = [ev for ev in on_track if ev["cat"] not in ("queue", "step")]
        assert run["ts"] == pytest.approx(row.started_s * 1e6)
        assert run["dur"] == pytest.approx(row.duration_s * 1e6)
        assert run["args"]["status"] == str(row.status)
        queued = [ev for ev in on_track if ev["cat"] == "queue"]
        if row.wait_s > 0:
            (wait,) = queued
            assert wait["ts"] == pytest.approx(row.queued_s * 1e6)
            assert wait["dur"] == pytest.approx(row.wait_s * 1e6)
        else:
            assert queued == []


def test_top_level_steps_are_on_track_zero(result: fl.RunResult) -> None:
    events = validate(result.to_chrome_trace())
    top = [ev for ev in events if ev["ph"] == "X" and ev["tid"] == 0]
    assert [ev["name"] for ev in top] == ["fan"]
    assert top[0]["dur"] == pytest.approx(result.makespan_s * 1e6)


def test_a_failed_run_still_traces() -> None:
    res = fl.run(fl.Parallel({"a": work(1, fail=True), "b": work(3)}, on_failure="fail_fast"), Ctx(),
                 clock="virtual", raise_on_error=False)  # fmt: skip
    assert res.status == "failed"
    events = validate(res.to_chrome_trace())
    runs = [ev for ev in events if ev["ph"] == "X" and ev["tid"] > 0 and ev["cat"] != "step"]
    assert sorted(ev["args"]["status"] for ev in runs) == ["cancelled", "failed"]
    steps = [ev for ev in events if ev["ph"] == "X" and ev["cat"] == "step"]
    assert sorted(ev["args"]["status"] for ev in steps) == ["cancelled", "failed"]


def test_a_branchs_steps_are_nested_in_its_run_on_its_track() -> None:
    class C(BaseModel):
        n: int = 0

    async def first(data: object, ctx: C) -> None:
        await asyncio.sleep(1)

    async def second(data: object, ctx: C) -> None:
        await asyncio.sleep(2)

    pipe = fl.Pipeline(fl.Parallel({"a": fl.Pipeline(first, second), "b": first}, name="fan"))
    events = validate(fl.run(pipe, C(), clock="virtual").to_chrome_trace())
    tid = next(e["tid"] for e in events if e["ph"] == "M" and e["args"].get("name") == "fan:a")
    on_a = [e for e in events if e["ph"] == "X" and e["tid"] == tid]
    (run,) = [e for e in on_a if e["cat"] not in ("queue", "step")]
    steps = [(e["name"], e["ts"], e["dur"]) for e in on_a if e["cat"] == "step"]
    assert steps == [("first", 0.0, 1e6), ("second", 1e6, 2e6)]
    assert all(run["ts"] <= ts and ts + dur <= run["ts"] + run["dur"] for _, ts, dur in steps)
