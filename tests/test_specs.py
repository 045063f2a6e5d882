"""Specs are frozen: a Parallel, a Step, a Pipeline or a Map never changes once built."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

import flowlab as fl


class Ctx(BaseModel):
    items: list[int] = [1, 2]


async def step(data: object, ctx: Ctx) -> None:
    return None


@pytest.mark.parametrize(
    ("spec", "field", "value"),
    [
        (fl.Parallel({"a": step}, name="fan"), "merge", "deep"),
        (fl.Step(step), "timeout", 1.0),
        (fl.Pipeline(step, name="p"), "name", "q"),
        (fl.Map(step, over="items"), "max_concurrency", 2),
    ],
)
def test_setting_a_field_of_a_built_spec_raises_and_points_to_replace(
    spec: object, field: str, value: object
) -> None:
    before = repr(spec)
    with pytest.raises(AttributeError, match=rf"frozen: '{field}' cannot be set.*replace\("):
        setattr(spec, field, value)
    assert repr(spec) == before  # nothing changed, and it still shows itself


def test_replace_makes_a_changed_copy_and_leaves_the_original() -> None:
    fan = fl.Parallel({"a": step}, name="fan")
    deep = fan.replace(merge="deep")
    assert (fan.merge.name, deep.merge.name) == ("overwrite", "deep")
    s = fl.Step(step, name="s")
    assert (s.replace(timeout=2.0).timeout, s.timeout) == (2.0, None)
    with pytest.raises(fl.ConfigError, match="'bogus' is not a Step option"):
        s.replace(bogus=1)
    result = fl.run(fl.Pipeline(deep), Ctx(), clock="virtual")
    assert result.status == "ok"
