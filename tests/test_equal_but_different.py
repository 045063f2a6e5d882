"""Writes of a value that another value's ``==`` calls equal to the old one are merged.

``Decimal("5") == Decimal("5.00")``, an aware date-time equals the same instant in another time
zone, and ``Counter(a=1) == Counter(a=1, z=0)``, yet they are different values: they print,
serialise, iterate and compute differently (``quantize`` to cents, ``astimezone`` to show local
time, ``Counter.subtract`` / ``+counter`` are ordinary steps). And an ``OrderedDict`` whose keys
were reordered (``move_to_end``: an LRU cache) is *unequal* to the old one by its own ``==``. A
branch that writes one must get its write merged and recorded exactly as plain Python would leave
the context; these writes once vanished (no diff, no merge row) because "did the branch change
it?" trusted ``==`` (or, for ``OrderedDict``, compared key by key).
"""

from __future__ import annotations

from collections import Counter, OrderedDict
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


class Store(BaseModel):
    lru: OrderedDict[str, int] = OrderedDict(a=1, b=2, c=3)
    caches: dict[str, OrderedDict[str, int]] = {"x": OrderedDict(a=1, b=2)}
    counts: Counter[str] = Counter(a=1, b=0)
    pad: list[list[int]] = [[i] for i in range(70)]


def touch(store: Store) -> None:
    store.lru.move_to_end("a")  # b, c, a
    store.caches["x"].move_to_end("b", last=False)  # b, a
    store.counts.subtract(["z"])
    store.counts.update(["z"])  # z: 0
    store.counts = +store.counts  # drops the zero counts: b and z


def add_in_front(store: Store) -> None:
    store.lru["new"] = 0
    store.lru.move_to_end("new", last=False)  # new, a, b, c


@pytest.mark.parametrize("isolation", ["eager", "cow"])
@pytest.mark.parametrize("step", [touch, add_in_front])
def test_reordered_and_recounted_dicts_are_merged_as_plain_python_leaves_them(
    isolation: str, step: Any
) -> None:
    def branch(data: Any, ctx: Store) -> None:
        step(ctx)

    result = fl.run(
        fl.Pipeline(fl.Parallel({"a": branch}, isolation=isolation)), Store(), clock="virtual"
    )
    expected = Store()
    step(expected)
    got = result.context
    assert list(got.lru.items()) == list(expected.lru.items())
    assert list(got.caches["x"].items()) == list(expected.caches["x"].items())
    assert dict(got.counts) == dict(expected.counts)


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


def test_same_is_no_looser_than_a_dicts_own_equality_nor_than_a_plain_dicts() -> None:
    assert not same(OrderedDict(a=1, b=2), OrderedDict(b=2, a=1))  # its == says so too
    assert same(OrderedDict(a=1, b=2), OrderedDict(a=1, b=2))
    nan = float("nan")
    assert same(OrderedDict(a=nan), OrderedDict(a=float("nan")))
    assert not same(Counter(a=1), Counter(a=1, z=0))  # == calls them equal
    assert not same(Counter(a=1, z=0), Counter(a=1))
    assert same(Counter(a=1, z=0), Counter(a=1, z=0))
    assert same({"a": 1, "b": 2}, {"b": 2, "a": 1})  # a plain dict: order is not its value


class Signed(BaseModel):
    x: float = 0.0
    xs: list[float] = [0.0, 1.0]
    by: dict[str, float] = {"a": 0.0}
    z: complex = 0j
    tags: list[float] = [0.0]
    pad: list[list[int]] = [[i] for i in range(70)]


def flip_signs(ctx: Signed) -> None:
    ctx.x = -0.0
    ctx.xs[0] = -0.0
    ctx.by["a"] = -0.0
    ctx.z = complex(0.0, -0.0)
    ctx.tags += [-0.0]  # not a repeat of 0.0: it prints, divides and rounds differently


def test_same_tells_signed_zeros_apart() -> None:
    assert not same(0.0, -0.0)
    assert not same([0.0, 1.0], [-0.0, 1.0])  # inside containers == calls equal too
    assert not same({"a": [0.0]}, {"a": [-0.0]})
    assert not same((0.0,), (-0.0,))
    assert not same(complex(0.0, 0.0), complex(0.0, -0.0))
    assert same(-0.0, -0.0) and same([1.5, -0.0], [1.5, -0.0])
    assert same(float("nan"), float("-nan"))  # NaN stays NaN, whatever its sign bit
    assert not same([0.0, 0.0], [0.0, -0.0])


@pytest.mark.parametrize("isolation", ["eager", "cow"])
@pytest.mark.parametrize("merge", ["overwrite", "deep", "accumulate", "error_on_conflict"])
def test_a_signed_zero_written_over_zero_is_merged(isolation: str, merge: str) -> None:
    def branch(data: Any, ctx: Signed) -> None:
        flip_signs(ctx)

    par = fl.Parallel({"a": branch}, isolation=isolation, merge=merge, name="fan")
    result = fl.run(fl.Pipeline(par), Signed(), clock="virtual")
    expected = Signed()
    flip_signs(expected)
    got = result.context
    assert repr((got.x, got.xs, got.by, got.z, got.tags)) == repr(
        (expected.x, expected.xs, expected.by, expected.z, expected.tags)
    )
    assert {"x", "xs[0]", "by.a", "z", "tags[1]"} <= set(result.diffs.path)
