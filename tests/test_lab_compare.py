"""The Lab's Compare view without a browser: what it plots, in which order, and what it warns of."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel

import flowlab as fl


class Ctx(BaseModel):
    counter: int = 10


def _adder(n: int, seconds: float) -> Any:
    async def step(data: Any, ctx: Ctx) -> None:
        await asyncio.sleep(seconds)
        ctx.counter += n

    return step


def _lab() -> fl.Lab:
    """Branches a (+5, 1 s), b (+3, 2 s), c (+1, 1 s); no cap; virtual time."""
    branches = {"a": _adder(5, 1.0), "b": _adder(3, 2.0), "c": _adder(1, 1.0)}
    lab = fl.Lab(fl.Pipeline(fl.Parallel(branches, name="fanout"), name="demo"), Ctx())
    lab.show_plots = False
    return lab


def _set_cap(lab: fl.Lab, cap: int | None) -> None:
    c = lab.controls["fanout"]
    if cap is None:
        c.cap.value = "unlimited"
    else:
        c.max_concurrency.value = cap
        c.cap.value = "fixed"


def _html(out: Any) -> str:
    return "\n".join(
        o["data"]["text/html"] for o in out.outputs if "text/html" in o.get("data", {})
    )


def _ticks(fig: Any) -> list[str]:
    return [t.get_text() for t in fig.axes[0].get_xticklabels()]


def test_numeric_x_is_sorted_with_no_cap_last_whatever_the_run_order() -> None:
    lab = _lab()
    for cap in (2, 1, 3, None):
        _set_cap(lab, cap)
        lab.run()
    view = lab.compare_view
    assert view.scope.value == "all history"  # no sweep yet: the history is all there is
    fig = lab.compare("makespan_s", x="fanout.max_concurrency", hue="(none)")
    assert _ticks(fig) == ["1", "2", "3", "none"]
    (series,) = fig.axes[0].containers
    assert list(series.lines[0].get_ydata()) == [4.0, 2.0, 2.0, 2.0]


def test_compare_defaults_to_the_last_sweep_and_can_show_all_history() -> None:
    lab = _lab()
    lab.controls["fanout"].merge.value = "accumulate"
    _set_cap(lab, 1)
    lab.run()  # run 1: accumulate, cap 1 (4 s)
    lab.remerge_on_flip = False  # flipping the merge would add a re-merged row of run 1
    lab.controls["fanout"].merge.value = "overwrite"
    lab.sweep("fanout.max_concurrency")  # runs 2..5: caps 1, 2, 3, none
    view = lab.compare_view
    assert view.scope.value == "last sweep"
    assert view.frame()["run"].tolist() == [2, 3, 4, 5]
    fig = lab.compare("ctx.counter")
    assert _ticks(fig) == ["1", "2", "3", "none"]
    assert "flowlab-compare-mixed" not in _html(view.output)  # one setting per point
    view.scope.value = "all history"
    assert view.frame()["run"].tolist() == [1, 2, 3, 4, 5]
    fig = lab.compare("ctx.counter")
    (series,) = fig.axes[0].containers
    # cap 1 now pools run 1 (accumulate: 19) with run 2 (overwrite: 11): flagged, not hidden
    assert series.lines[0].get_ydata()[0] == 15.0
    note = _html(view.output)
    assert "flowlab-compare-mixed" in note
    assert "fanout.max_concurrency = 1" in note and "fanout.merge: accumulate, overwrite" in note


def test_scope_follows_the_latest_sweep_and_keeps_a_users_choice() -> None:
    lab = _lab()
    lab.sweep("fanout.max_concurrency")  # runs 1..4
    lab.sweep("fanout.order")  # runs 5, 6
    view = lab.compare_view
    assert view.frame()["run"].tolist() == [5, 6]
    assert view.x.value == "fanout.order"
    view.scope.value = "all history"
    lab.sweep("fanout.max_concurrency")  # runs 7..10
    assert view.scope.value == "all history"
    assert len(view.frame()) == 10


def test_groups_mixing_clocks_or_statuses_are_flagged() -> None:
    lab = _lab()
    lab.run()
    lab.run_controls.clock.value = "real"
    lab.controls["fanout"].branch_timeout.value = 0.001  # every branch times out
    lab.controls["fanout"].on_failure.value = "ignore"
    lab.run()
    lab.compare("makespan_s", x="fanout.merge", hue="(none)")
    note = _html(lab.compare_view.output)
    assert "clock: real, virtual" in note or "clock: virtual, real" in note
    assert "fanout.merge = " in note


def test_runs_are_labelled_by_what_differs() -> None:
    lab = _lab()
    lab.controls["fanout"].merge.value = "overwrite"
    _set_cap(lab, 2)
    lab.run()
    lab.remerge_on_flip = False
    lab.controls["fanout"].merge.value = "accumulate"
    lab.run()
    _set_cap(lab, None)
    lab.run()
    lab.controls["fanout"].max_concurrency.value = 3
    lab.controls["fanout"].cap.value = "aimd"
    lab.run()
    labels = [label for label, _ in lab.compare_view.run_a.options]
    assert labels == [
        "#1 overwrite · cap 2", "#2 accumulate · cap 2", "#3 accumulate · no cap",
        "#4 accumulate · aimd ≤ 3",
    ]  # fmt: skip


def test_a_single_run_is_labelled_by_its_outcome() -> None:
    lab = _lab()
    lab.run()
    ((label, run),) = lab.compare_view.run_a.options
    assert (label, run) == ("#1 · 2 s", 1)


def test_side_by_side_shares_one_time_range_and_tables_the_two_final_contexts() -> None:
    lab = _lab()
    lab.remerge_on_flip = False
    _set_cap(lab, 1)
    lab.run()  # 4 s, overwrite-style default: counter from the last writer
    lab.controls["fanout"].merge.value = "accumulate"
    _set_cap(lab, None)
    lab.run()  # 2 s, counter 19
    fig = lab.side_by_side(1, 2)
    panels = fig.axes[:2]
    assert [ax.get_xlim() for ax in panels] == [(0.0, 4.0), (0.0, 4.0)]  # not cut at 2 s
    assert len(fig.legends) == 1 and all(ax.get_legend() is None for ax in fig.axes)
    page = _html(lab.compare_view.output)
    assert "flowlab-context-ab" in page
    assert "1 of 1 fields differ" in page
    counter_row = page.split("<tr class='flowlab-differs'")[1].split("</tr>")[0]
    a_counter, b_counter = lab.results[0].context.counter, lab.results[1].context.counter
    assert (a_counter, b_counter) != (19, 19) and b_counter == 19
    assert f"<code>{a_counter}</code></td><td><code>{b_counter}</code>" in counter_row
    assert "#1 " in page and "cap 1" in page and "#2 accumulate · no cap" in page


def _points(page: str) -> list[list[str]]:
    """The rows of the Compare view's table of plotted points, as cell texts."""
    import re

    table = page.split("<table class='flowlab-compare-points'")[1].split("</table>")[0]
    body = table.split("<tbody>")[1]
    return [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in body.split("</tr>")[:-1]]


def test_the_plotted_points_are_tabled_in_the_order_they_are_drawn() -> None:
    lab = _lab()
    for cap in (2, None, 1, 3, 2):
        _set_cap(lab, cap)
        lab.run()
    fig = lab.compare("makespan_s", x="fanout.max_concurrency", hue="(none)")
    rows = _points(_html(lab.compare_view.output))
    assert [r[0] for r in rows] == _ticks(fig) == ["1", "2", "3", "none"]
    assert [r[1] for r in rows] == ["1", "2", "1", "1"]  # runs pooled per point: cap 2 ran twice
    assert [r[2] for r in rows] == ["4", "2", "2", "2"]  # mean makespan_s (virtual seconds)
    assert "<th>fanout.max_concurrency</th>" in _html(lab.compare_view.output)


def test_the_points_table_has_a_column_for_the_color() -> None:
    lab = _lab()
    lab.remerge_on_flip = False
    for merge in ("overwrite", "accumulate"):
        lab.controls["fanout"].merge.value = merge
        for cap in (1, None):
            _set_cap(lab, cap)
            lab.run()
    lab.compare("ctx.counter", x="fanout.max_concurrency", hue="fanout.merge")
    rows = _points(_html(lab.compare_view.output))
    assert [r[:2] for r in rows] == [
        ["1", "overwrite"], ["1", "accumulate"], ["none", "overwrite"], ["none", "accumulate"]
    ]  # fmt: skip
    assert [r[3] for r in rows] == ["11", "19", "11", "19"]  # last writer c (+1) vs the sum
