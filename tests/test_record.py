"""The recorder's copies of recorded values (``snapshot``)."""

from __future__ import annotations

from collections import OrderedDict

from pydantic import BaseModel

from flowlab.results.records import snapshot


class Doc(BaseModel):
    tags: list[str] = []


def test_snapshot_copies_flat_and_nested_plain_data_so_later_mutation_does_not_show() -> None:
    flat_list, flat_dict = [1, "a", None], OrderedDict(a=1, b=2.5)
    nested = {"docs": [Doc(tags=["x"])], "pairs": ({"k": [1]},)}
    copies = [snapshot(v) for v in (flat_list, flat_dict, nested)]
    flat_list.append(2)
    flat_dict["c"] = 3
    nested["docs"][0].tags.append("y")  # type: ignore[attr-defined]
    nested["pairs"][0]["k"].append(2)  # type: ignore[index]
    assert copies[0] == [1, "a", None]
    assert copies[1] == {"a": 1, "b": 2.5} and type(copies[1]) is dict
    assert copies[2]["docs"][0].tags == ["x"]
    assert copies[2]["pairs"][0]["k"] == [1]


def test_snapshot_keeps_other_objects_as_they_are() -> None:
    class Opaque:
        pass

    thing = Opaque()
    assert snapshot([thing])[0] is thing
    assert snapshot(thing) is thing


def test_the_limits_frame_names_its_times_time_s_like_every_frame() -> None:
    import asyncio

    from pydantic import BaseModel

    import flowlab as fl

    class C(BaseModel):
        n: int = 0

    async def step(data: object, ctx: C) -> None:
        await asyncio.sleep(1.0)

    cap = fl.limits.AIMD(1, 4, latency_target_s=2.0)
    result = fl.run(fl.Pipeline(fl.Parallel({f"b{i}": step for i in range(6)},
                                            max_concurrency=cap)), C(), clock="virtual")  # fmt: skip
    limits = result.limits
    assert list(limits.columns) == ["time_s", "step", "limit", "in_flight", "time", "limiter",
                                    "event", "key", "wait_s"]  # fmt: skip
    assert len(limits) > 1 and limits["time_s"].is_monotonic_increasing
    assert limits["time"].equals(limits["time_s"])  # the contract's name, kept
