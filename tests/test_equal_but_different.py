"""Writes of a value that ``==`` calls equal to the old one, but that is another value, are merged.

``Decimal("5") == Decimal("5.00")`` and an aware date-time equals the same instant in another
time zone, yet they are different values: they print, serialise and compute differently
(``quantize`` to cents, ``astimezone`` to show local time are ordinary steps). A branch that
writes one must get its write merged and recorded exactly as plain Python would leave the
context; it once vanished (no diff, no merge row) because "did the branch change it?" trusted
``==``.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel

import flowlab as fl
from flowlab.core.context.equality import same

PLUS2 = timezone(timedelta(hours=2))


class Line(BaseModel):
    price: Decimal = Decimal("5")


class Ctx(BaseModel):
    price: Decimal = Decimal("5")
    when: datetime = datetime(2020, 1, 1, 12, tzinfo=UTC)
    opens: time = time(9, tzinfo=UTC)
    prices: dict[str, Decimal] = {"a": Decimal("5")}
    times: list[datetime] = [datetime(2020, 1, 1, 12, tzinfo=UTC)]
    line: Line = Line()
    pad: list[list[int]] = [[i] for i in range(70)]  # nested data: copy on write engages


def rewrite(ctx: Ctx) -> None:
    cents = Decimal("0.01")
    ctx.price = ctx.price.quantize(cents)
    ctx.when = ctx.when.astimezone(PLUS2)
    ctx.opens = ctx.opens.replace(tzinfo=UTC)  # the same time and zone: no change
    ctx.prices["a"] = ctx.prices["a"].quantize(cents)
    ctx.times[0] = ctx.times[0].astimezone(PLUS2)
    ctx.line.price = ctx.line.price.quantize(cents)


@pytest.mark.parametrize("isolation", ["eager", "cow"])
def test_a_rewritten_representation_is_merged_as_plain_python_leaves_it(isolation: str) -> None:
    def branch(data: Any, ctx: Ctx) -> None:
        rewrite(ctx)

    par = fl.Parallel({"a": branch}, isolation=isolation, name="fan")
    result = fl.run(fl.Pipeline(par), Ctx(), clock="virtual")
    expected = Ctx()
    rewrite(expected)
    assert result.context.model_dump_json() == expected.model_dump_json()
    assert '"price":"5.00"' in result.context.model_dump_json()
    assert set(result.diffs.path) == {"line.price", "price", "prices.a", "times[0]", "when"}
    assert sorted(result.merges.path) == ["line.price", "price", "prices", "times", "when"]


def test_same_tells_representations_apart() -> None:
    assert not same(Decimal("5"), Decimal("5.00"))
    assert not same(Decimal("-0"), Decimal("0"))
    assert same(Decimal("5.00"), Decimal("5.00"))
    assert same(Decimal("NaN"), Decimal("NaN"))  # as float NaN: an untouched value is no change
    noon = datetime(2020, 1, 1, 12, tzinfo=UTC)
    assert not same(noon, noon.astimezone(PLUS2))
    assert same(noon, datetime(2020, 1, 1, 12, tzinfo=timezone(timedelta(0))))
    assert not same(datetime(2020, 1, 1), noon.replace(tzinfo=None, hour=0).replace(fold=1))
    assert not same(time(9, tzinfo=UTC), time(11, tzinfo=PLUS2))
    assert same(time(9), time(9))
    assert not same({"p": [Decimal("1.0")]}, {"p": [Decimal("1")]})  # inside containers too
    assert same({"p": [Decimal("1.0")]}, {"p": [Decimal("1.0")]})
