"""Every frame row names exactly one place in the context.

Paths were written by joining ``str(key)`` with dots, so the dict key ``"a.b"`` and the nested
path ``a`` → ``b`` were both ``counts.a.b``, and the int key ``1`` and the string key ``"1"`` were
both ``d.1``: two rows of ``result.diffs`` / ``result.merges`` that looked like one place (or one
that looked like two). Now a key a dot cannot show apart is bracketed, as Python writes it
(:mod:`flowlab.core.context.paths`).
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

import flowlab as fl
from flowlab.core.context.paths import Item, dotted, join, labels, split

KEYS = st.one_of(
    st.text(alphabet="ab.[]\"' 1", max_size=4),
    st.integers(-3, 3),
    st.tuples(st.integers(0, 2), st.text(alphabet="a]'", max_size=2)),
    st.none(),
)


@given(st.lists(KEYS, min_size=1, max_size=4), st.lists(KEYS, min_size=1, max_size=4))
def test_two_different_key_paths_are_written_differently(a: list[Any], b: list[Any]) -> None:
    # paths as a dict reaches them: keys equal as dict keys (1 and True) are one key
    if [(type(k) is str, k) for k in a] != [(type(k) is str, k) for k in b]:
        assert dotted(["f", *a]) != dotted(["f", *b])


@given(st.lists(KEYS, min_size=1, max_size=4))
def test_a_written_path_splits_into_its_keys(keys: list[Any]) -> None:
    parts = labels(["f", *keys])
    assert split(join(parts)) == list(parts)


def test_plain_paths_are_written_as_before() -> None:
    assert dotted(("scores", "alice")) == "scores.alice"
    assert dotted(("docs", "d1", "words")) == "docs.d1.words"
    assert dotted(("scores", "user-1")) == "scores.user-1"
    assert join(labels(("docs", Item(0), "tags"))) == "docs[0].tags"
    assert dotted(("docs", Item(0), "tags")) == "docs[0].tags"  # the merge report's path too


class Ctx(BaseModel):
    by_id: dict[Any, int] = {1: 0, "1": 0}
    files: dict[str, int] = {"data.csv": 0, "data": 0}
    nested: dict[str, dict[str, int]] = {"data": {"csv": 0}}


def edit_int(data: Any, ctx: Ctx) -> None:
    ctx.by_id[1] += 1
    ctx.files["data.csv"] += 1


def edit_str(data: Any, ctx: Ctx) -> None:
    ctx.by_id["1"] += 1
    ctx.nested["data"]["csv"] += 1


def test_frames_name_each_place_once() -> None:
    par = fl.Parallel({"a": edit_int, "b": edit_str}, merge="accumulate", name="fan")
    result = fl.run(fl.Pipeline(par), Ctx(), clock="virtual")
    diffs = dict(zip(result.diffs.path, result.diffs.branch, strict=True))
    assert diffs == {
        "by_id[1]": "a",
        'files["data.csv"]': "a",
        "by_id.1": "b",
        "nested.data.csv": "b",
    }
    merged = result.merges.set_index("path")
    assert merged.loc["by_id[1]", "writers"] == ("a",)
    assert merged.loc["by_id.1", "writers"] == ("b",)
    assert merged.loc['files["data.csv"]', "after"] == 1
    assert merged.loc["nested.data.csv", "after"] == 1
    assert result.context.by_id == {1: 1, "1": 1}


def test_the_merge_grid_keeps_a_dotted_key_one_column() -> None:
    import matplotlib

    matplotlib.use("Agg")
    par = fl.Parallel({"a": edit_int, "b": edit_str}, merge="accumulate", name="fan")
    result = fl.run(fl.Pipeline(par), Ctx(), clock="virtual")
    ax = fl.plot.merges(result)
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert 'files["data.csv"]' in ticks and "nested.data.csv" in ticks
    cells = {p.get_gid() for p in ax.patches if (p.get_gid() or "").startswith("cell:")}
    assert 'cell:a|files["data.csv"]' in cells and "cell:b|nested.data.csv" in cells


def test_compare_reads_fields_written_as_the_frames_write_them() -> None:
    pipe = fl.Pipeline(fl.Parallel({"a": edit_int, "b": edit_str}, name="fan"))
    fields = ['files["data.csv"]', "by_id[1]", "by_id.1", "nested.data.csv", 'files["nope"]']
    cmp = fl.compare(pipe, Ctx(), grid={"merge": ["deep"]}, fields=fields, progress=False)
    row = cmp.frame.iloc[0]
    assert [row[f"ctx.{f}"] for f in fields[:4]] == [1, 1, 1, 1]
    assert row['ctx.files["nope"]'] is None or row['ctx.files["nope"]'] != row['ctx.files["nope"]']
