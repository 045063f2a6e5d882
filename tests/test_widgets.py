"""The Lab without a browser or a kernel: set widget values, click buttons, read the outputs."""

from __future__ import annotations

import asyncio
import base64
import html
import threading
from typing import Any

import pytest
from pydantic import BaseModel

import flowlab as fl
import flowlab.ui.lab.views
from flowlab.core.merge import STRATEGIES
from flowlab.ui.lab.controls import limiter_for


class Ctx(BaseModel):
    counter: int = 10
    tags: list[str] = []


def _adder(name: str, n: int, seconds: float) -> Any:
    async def step(data: Any, ctx: Ctx) -> str:
        await asyncio.sleep(seconds)
        ctx.counter += n
        ctx.tags = [*ctx.tags, name]
        return name

    return step


def _pipe(**options: Any) -> fl.Pipeline:
    """Counter 10; branch a adds 5 in 1 s, branch b adds 3 in 2 s (virtual time)."""
    branches = {"a": _adder("a", 5, 1.0), "b": _adder("b", 3, 2.0)}
    return fl.Pipeline(fl.Parallel(branches, name="fanout", **options), name="demo")


def _lab(*, plots: bool = False, **options: Any) -> fl.Lab:
    lab = fl.Lab(_pipe(**options), Ctx())
    lab.show_plots = plots
    return lab


def _outputs(out: Any, mime: str) -> list[Any]:
    return [o["data"][mime] for o in out.outputs if mime in o.get("data", {})]


def _html(out: Any) -> str:
    return "\n".join(_outputs(out, "text/html"))


# ---- controls ------------------------------------------------------------------------------


def test_controls_are_made_from_the_pipeline() -> None:
    lab = _lab(merge="deep", order="completion", max_concurrency=2, on_failure="ignore",
               branch_timeout=1.5)  # fmt: skip
    c = lab.controls["fanout"]
    assert list(lab.controls) == ["fanout"]
    assert list(c.merge.options) == list(STRATEGIES)
    assert (c.merge.value, c.order.value, c.on_failure.value) == ("deep", "completion", "ignore")
    assert (c.cap.value, c.max_concurrency.value, c.max_concurrency.max) == ("fixed", 2, 2)
    assert c.branch_timeout.value == 1.5
    assert lab.parameters() == {
        "fanout.merge": "deep", "fanout.order": "completion", "fanout.cap": "fixed",
        "fanout.max_concurrency": 2, "fanout.on_failure": "ignore", "fanout.branch_timeout": 1.5,
        "clock": "virtual",
    }  # fmt: skip


def test_unlimited_pipeline_shows_unlimited_and_moving_the_slider_sets_a_fixed_cap() -> None:
    c = _lab().controls["fanout"]
    assert c.cap.value == "unlimited"
    assert c.options()["max_concurrency"] is None
    c.max_concurrency.value = 1
    assert c.cap.value == "fixed"
    assert repr(c.options()["max_concurrency"]) == "Fixed(1)"


def test_adaptive_choices_build_limiters_and_keep_the_pipelines_own() -> None:
    own = fl.limits.AIMD(min=1, max=2, latency_target_s=0.25)
    c = _lab(max_concurrency=own).controls["fanout"]
    assert (c.cap.value, c.max_concurrency.value) == ("aimd", 2)
    assert c.options()["max_concurrency"] is own
    c.cap.value = "adaptive"
    lim = c.options()["max_concurrency"]
    assert isinstance(lim, fl.limits.Adaptive)
    assert (lim.min, lim.max) == (1, 2)
    assert limiter_for("unlimited", 3) is None


def test_a_custom_merge_is_one_more_choice_and_is_passed_through() -> None:
    def pick_a(base: Ctx, branches: dict[str, Ctx]) -> Ctx:
        return branches["a"]

    c = _lab(merge=pick_a).controls["fanout"]
    assert c.merge.value == f"custom: {fl.Parallel({'a': print}, merge=pick_a).merge.name}"
    assert len(c.merge.options) == len(STRATEGIES) + 1
    assert c.options()["merge"] is pick_a
    c.merge.value = "overwrite"
    assert c.options()["merge"] == "overwrite"


def test_bad_lab_arguments_name_the_parameter_and_the_choices() -> None:
    with pytest.raises(fl.ConfigError, match=r"ctx=.*BaseModel"):
        fl.Lab(_pipe(), {"counter": 1})  # type: ignore[arg-type]
    with pytest.raises(fl.ConfigError, match=r"Lab run option='progress'.*'usage'"):
        fl.Lab(_pipe(), Ctx(), progress=True)
    with pytest.raises(fl.ConfigError, match=r"clock='wall'.*'virtual', 'real'"):
        fl.Lab(_pipe(), Ctx(), clock="wall")


# ---- running without a loop ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("merge", "counter"), [("accumulate", 18), ("overwrite", 13), ("keep_first", 15)]
)
def test_run_button_adds_a_history_row_with_the_chosen_parameters(merge: str, counter: int) -> None:
    lab = _lab()
    c = lab.controls["fanout"]
    c.merge.value = merge
    c.max_concurrency.value = 1
    lab.run_button.click()
    h = lab.history
    assert len(h) == 1
    row = h.iloc[0]
    assert (row["run"], row["fanout.merge"], row["fanout.cap"]) == (1, merge, "fixed")
    assert row["fanout.max_concurrency"] == 1
    assert (row["status"], row["ctx.counter"]) == ("ok", counter)
    assert row["makespan_s"] == 3.0  # cap 1: 1 s then 2 s, on virtual time
    assert row["peak_concurrency"] == 1
    assert lab.result is not None and lab.result.context.counter == counter
    assert "flowlab-history" in _html(lab.history_output)
    assert (lab.progress.value, lab.progress.max) == (2, 2)
    assert lab.run_button.disabled is False and lab.stop_button.disabled is True


@pytest.mark.slow  # draws two figures (matplotlib's first use in a process takes ~1 s)
def test_a_run_shows_timeline_and_concurrency_figures_merges_and_context() -> None:
    lab = _lab(plots=True)
    lab.controls["fanout"].merge.value = "accumulate"
    lab.run_button.click()
    pngs = _outputs(lab.output, "image/png")
    assert len(pngs) == 2  # timeline and concurrency
    assert all(base64.b64decode(p).startswith(b"\x89PNG") for p in pngs)
    text = _html(lab.output)
    assert "timeline · run #1" in text and "concurrency · run #1" in text
    assert "flowlab-merges" in text and "flowlab-context" in text
    assert "<code>18</code>" in text  # the final counter


def test_repeat_runs_several_times_one_row_each() -> None:
    lab = _lab()
    lab.run_controls.repeat.value = 3
    result = lab.run()
    assert isinstance(result, fl.RunResult)
    assert lab.history["repeat"].tolist() == [0, 1, 2]
    assert lab.history["run"].tolist() == [1, 2, 3]
    assert (lab.progress.value, lab.progress.max) == (6, 6)


def test_changing_controls_between_runs_is_recorded_per_row() -> None:
    lab = _lab()
    lab.remerge_on_flip = False  # only Run adds rows
    lab.run()
    lab.controls["fanout"].merge.value = "accumulate"
    lab.run()
    h = lab.history
    assert h["fanout.merge"].tolist() == ["overwrite", "accumulate"]
    assert h["ctx.counter"].tolist() == [13, 18]
    assert h["ctx.tags.len"].tolist() == [1, 2]


# ---- errors --------------------------------------------------------------------------------


def test_a_merge_conflict_shows_as_a_message_not_a_traceback() -> None:
    lab = _lab()
    lab.controls["fanout"].merge.value = "error_on_conflict"
    lab.run_button.click()
    row = lab.history.iloc[-1]
    assert row["status"] == "failed"
    assert row["conflicts"] >= 1
    assert row["error"].startswith("MergeConflict")
    text = _html(lab.output)
    assert "flowlab-error" in text and "MergeConflict" in text and "counter" in text
    assert "Traceback" not in text
    assert "failed" in lab.status.value


def test_a_failing_branch_is_shown_escaped() -> None:
    async def bad(data: Any, ctx: Ctx) -> None:
        raise ValueError("<script>alert(1)</script>")

    lab = fl.Lab(
        fl.Pipeline(fl.Parallel({"ok": _adder("ok", 1, 1.0), "bad": bad}, name="p")), Ctx()
    )
    lab.show_plots = False
    lab.run()
    text = _html(lab.output)
    assert lab.history.iloc[0]["status"] == "failed"
    assert "&lt;script&gt;" in text and "<script>" not in text
    assert "branch 'bad' failed; first: ValueError: <script>" in html.unescape(text)


def test_a_step_name_is_escaped_in_the_panel() -> None:
    lab = fl.Lab(fl.Parallel({"a": _adder("a", 1, 1.0)}, name="<b>x</b>"), Ctx())
    assert "&lt;b&gt;x&lt;/b&gt;" in lab.panel.children[0].value
    assert "<b>x</b>" not in lab._repr_html_()


def test_an_unexpected_error_is_shown_with_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> list[Any]:
        raise RuntimeError("the plot broke")

    monkeypatch.setattr(flowlab.ui.lab.views, "result_displays", broken)
    lab = _lab()
    lab.run()
    text = _html(lab.output)
    assert "Could not draw this run" in text and "RuntimeError: the plot broke" in text
    assert "<summary>traceback</summary>" in text
    assert lab.history.iloc[0]["status"] == "ok"  # the run itself was fine and is recorded


# ---- running inside a loop -----------------------------------------------------------------


def test_inside_a_running_loop_run_schedules_a_task() -> None:
    async def main() -> None:
        lab = _lab()
        task = lab.run()
        assert isinstance(task, asyncio.Task)
        assert lab.history.empty  # nothing ran yet: the cell (or callback) returns at once
        result = await task
        assert isinstance(result, fl.RunResult)
        assert len(lab.history) == 1
        # virtual time inside a running loop runs in a helper thread: progress still arrives
        assert (lab.progress.value, lab.progress.max) == (2, 2)
        assert (await lab.arun()) is not None
        assert len(lab.history) == 2

    asyncio.run(main())


def test_run_while_running_does_not_start_a_second_run() -> None:
    async def main() -> None:
        lab = _lab()
        first = lab.run()
        assert lab.run() is first
        assert "already going" in _html(lab.output)
        assert (await lab.arun()) is None
        await first
        assert len(lab.history) == 1

    asyncio.run(main())


def test_stop_button_cancels_a_running_run() -> None:
    async def main() -> None:
        gate = asyncio.Event()  # never set: the branches wait until they are cancelled

        async def wait(data: Any, ctx: Ctx) -> None:
            await gate.wait()

        lab = fl.Lab(fl.Parallel({"a": wait, "b": wait}, name="fanout"), Ctx(), clock="real")
        lab.show_plots = False
        lab.run_button.click()
        task = lab.model.task
        assert task is not None
        for _ in range(100):
            await asyncio.sleep(0)
            handle = lab.model.handle
            if handle is not None and handle.progress["running"] == 2:
                break
        assert lab.running and not lab.stop_button.disabled
        lab.stop_button.click()
        result = await task
        assert result is not None and result.status == "cancelled"
        row = lab.history.iloc[-1]
        assert row["status"] == "cancelled" and row["cancelled_branches"] == 2
        assert not lab.running and lab.stop_button.disabled
        assert "stopped" in lab.status.value
        assert "cancelled" in _html(lab.output)

    asyncio.run(main())


# ---- sweep and compare ---------------------------------------------------------------------


def test_sweep_runs_fl_compare_over_every_strategy() -> None:
    lab = _lab()
    cmp = lab.sweep("fanout.merge")
    assert cmp is lab.last_comparison and len(cmp.results) == len(STRATEGIES)
    h = lab.history
    assert h["fanout.merge"].tolist() == list(STRATEGIES)
    counters = dict(zip(h["fanout.merge"], h["ctx.counter"], strict=True))
    assert counters == {"no_merge": 10, "overwrite": 13, "keep_first": 15, "deep": 13,
                        "accumulate": 18, "error_on_conflict": 10, "deep_keep_first": 15}  # fmt: skip
    assert h.set_index("fanout.merge").loc["error_on_conflict", "status"] == "failed"
    assert len(_outputs(lab.compare_view.output, "image/png")) == 1


def test_sweep_over_caps_records_the_cap_columns() -> None:
    lab = _lab()
    lab.sweep("fanout.max_concurrency")
    h = lab.history
    assert h["fanout.max_concurrency"].isna().tolist() == [False, False, True]  # None: no cap
    assert h["fanout.max_concurrency"].dropna().tolist() == [1, 2]
    assert h["fanout.cap"].tolist() == ["fixed", "fixed", "unlimited"]
    assert h["makespan_s"].tolist() == [3.0, 2.0, 2.0]


def test_compare_plots_the_chosen_metric_across_the_history() -> None:
    lab = _lab()
    for merge in ("overwrite", "accumulate"):
        lab.controls["fanout"].merge.value = merge
        lab.run()
    assert lab.compare_view.x.value == "fanout.merge"  # the parameter that varies
    fig = lab.compare("ctx.counter")
    assert fig is not None
    ax = fig.axes[0]
    means = {c.get_label(): list(c.lines[0].get_ydata()) for c in ax.containers}
    assert means == {"ctx.counter": [13.0, 18.0]}  # one line: overwrite 13, accumulate 18
    assert ax.get_ylabel() == "ctx.counter"
    assert len(_outputs(lab.compare_view.output, "image/png")) == 1
    with pytest.raises(fl.ConfigError, match="metric='nope'"):
        lab.compare("nope")


@pytest.mark.slow  # draws two side-by-side figures
def test_side_by_side_draws_two_timelines() -> None:
    lab = _lab()
    lab.run()
    lab.controls["fanout"].max_concurrency.value = 1
    lab.run()
    assert (lab.compare_view.run_a.value, lab.compare_view.run_b.value) == (1, 2)
    lab.compare_view.side_button.click()
    pngs = _outputs(lab.compare_view.output, "image/png")
    assert len(pngs) == 1
    fig = lab.side_by_side(1, 2)
    assert [ax.get_title() for ax in fig.axes[:2]] == ["run #1: ok", "run #2: ok"]
    with pytest.raises(fl.ConfigError, match="a=3"):
        lab.side_by_side(3, 1)


def test_compare_with_no_history_says_so() -> None:
    lab = _lab()
    assert lab.compare() is None
    assert "No runs yet" in _html(lab.compare_view.output)
    assert "No runs yet" in _html(lab.history_output)


def test_repr_and_static_html() -> None:
    lab = _lab()
    lab.run()
    assert repr(lab) == "<Lab 'demo' steps=['fanout'] runs=1 idle>"
    assert "flowlab-history" in lab._repr_html_() and "fanout.merge" in lab._repr_html_()


def test_stop_cancels_a_sweep_and_the_runs_after_it() -> None:
    started = threading.Event()

    async def wait(data: Any, ctx: Ctx) -> None:
        started.set()
        await asyncio.sleep(3600)  # real clock: ends only when cancelled

    lab = fl.Lab(fl.Parallel({"a": wait}, name="fanout"), Ctx(), clock="real")
    lab.show_plots = False

    async def main() -> Any:
        task = lab.sweep("fanout.merge")
        assert await asyncio.to_thread(started.wait, 30)  # the sweep's worker thread started a
        lab.stop_button.click()
        return await asyncio.wait_for(task, 30)

    cmp = asyncio.run(main())
    assert cmp.frame["status"].tolist() == ["cancelled"] * len(STRATEGIES)
    h = lab.history
    assert h["status"].tolist() == ["cancelled"]  # one row says it; the rest never ran
    assert h["fanout.merge"].tolist() == ["no_merge"]
    assert "stopped" in lab.status.value


def test_a_pipeline_without_parallel_steps_still_runs() -> None:
    def double(data: int) -> int:
        return 2 * data

    lab = fl.Lab(double, Ctx(), input=21)
    lab.show_plots = False
    assert lab.controls == {} and lab.sweep_keys() == [] and lab.sweep_button.disabled
    result = lab.run()
    assert result is not None and result.output == 42
    assert lab.history.iloc[0]["status"] == "ok"
    assert "No merges" in _html(lab.output)
    assert lab.sweep() is None
    assert "Nothing to sweep" in _html(lab.output)


def test_flipping_a_merge_strategy_remerges_the_latest_run_without_running_it() -> None:
    lab = _lab()
    lab.run()
    lab.controls["fanout"].merge.value = "accumulate"  # no Run pressed
    h = lab.history
    assert h["fanout.merge"].tolist() == ["overwrite", "accumulate"]
    assert h["remerged"].tolist() == [False, True]
    real = fl.run(_pipe(merge="accumulate"), Ctx(), clock="virtual")
    assert lab.result is not None and lab.result.context == real.context
    assert h["ctx.counter"].tolist() == [13, 18]
    lab.remerge_on_flip = False
    lab.controls["fanout"].merge.value = "deep"
    assert len(lab.history) == 2  # switched off: only Run adds rows
    lab.controls["fanout"].max_concurrency.value = 1
    assert lab.remerge() is None  # another option changed: that needs a real run


# ---- the history view --------------------------------------------------------------------------


def _history_table(lab: fl.Lab) -> tuple[list[str], list[list[str]], str]:
    """Header texts, rows of cell texts and the caption of the Lab's history table."""
    import re

    page = _html(lab.history_output)
    table = page.split("<table class='flowlab-history'")[1].split("</table>")[0]
    header = re.findall(r"<th>(.*?)</th>", table.split("</thead>")[0])
    body = table.split("<tbody>")[1]
    rows = [re.findall(r"<td[^>]*>(.*?)</td>", r) for r in body.split("</tr>")[:-1]]
    caption = re.findall(r"<caption[^>]*>(.*?)</caption>", table, flags=re.S)
    return header, rows, html.unescape(caption[0]) if caption else ""


def test_the_history_view_leads_with_outcomes_and_hides_what_never_changed() -> None:
    lab = _lab()
    lab.remerge_on_flip = False
    lab.run()
    lab.controls["fanout"].merge.value = "accumulate"
    lab.controls["fanout"].max_concurrency.value = 1
    lab.run()
    header, rows, caption = _history_table(lab)
    lead = ["run", "status", "makespan_s", "ctx.counter", "ctx.tags.len", "fanout.merge"]
    assert header[:6] == lead
    assert header.index("fanout.max_concurrency") < header.index("peak_concurrency")
    assert header[-1] == "wall_s"
    for same in ("fanout.order", "fanout.on_failure", "clock", "repeat", "tokens", "error"):
        assert same not in header  # one value in every run: said once, in the caption
    assert caption.startswith("same in every run: ")
    assert "fanout.order = declared" in caption and "clock = virtual" in caption
    assert "tokens = 0" in caption and "error" not in caption  # no error: nothing to say
    # overwrite: the last writer b (10 + 3, tags [b]); accumulate: 10 + 5 + 3, tags [a, b]
    assert [r[:5] for r in rows] == [["1", "ok", "2", "13", "1"], ["2", "ok", "3", "18", "2"]]
    assert set(lab.history.columns) >= {"fanout.order", "clock", "error"}  # the frame keeps all


def test_a_single_run_shows_every_column() -> None:
    lab = _lab()
    lab.run()
    header, rows, caption = _history_table(lab)
    assert header[:3] == ["run", "status", "makespan_s"]
    assert {"fanout.merge", "fanout.max_concurrency", "clock"} <= set(header)
    assert caption == "" and len(rows) == 1


def test_the_history_view_shortens_errors_and_keeps_them_whole_on_hover() -> None:
    lab = _lab()
    lab.remerge_on_flip = False
    lab.run()
    lab.controls["fanout"].merge.value = "error_on_conflict"
    lab.run()  # a and b both change counter: MergeConflict
    header, rows, _ = _history_table(lab)
    full = lab.history["error"].iloc[1]
    assert full.startswith("MergeConflict: ") and len(full) > 60
    cell = html.unescape(rows[1][header.index("error")])
    assert len(cell) <= 60 and cell.endswith("…") and cell.startswith("MergeConflict: ")
    page = _html(lab.history_output)
    assert f"title='{html.escape(full, quote=True)}'" in page
    assert rows[0][header.index("error")] == ""
    assert rows[1][header.index("status")] == "failed"


def test_the_panel_draws_each_run_live_into_its_live_area() -> None:
    lab = _lab()
    assert lab.view.live in lab.panel.children  # shown between the status line and the output
    lab.run()
    assert "branches done" in lab.view.live.value and "<svg" in lab.view.live.value
    first = lab.view.live.value
    lab.run()  # a new run redraws the same area from zero
    assert lab.view.live.value.count("branches done") == 1 and lab.view.live.value == first


def test_a_bad_run_option_fails_the_lab_at_construction_as_a_run_would() -> None:
    with pytest.raises(fl.ConfigError, match=r"timeout=-1 is not valid"):
        fl.Lab(fl.Parallel({"a": _adder("a", 1, 1.0)}), Ctx(), timeout=-1)
    with pytest.raises(fl.ConfigError, match=r"max_concurrency=0 is not valid"):
        fl.Lab(fl.Parallel({"a": _adder("a", 1, 1.0)}), Ctx(), max_concurrency=0)
