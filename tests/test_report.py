"""HTML reports: self-contained, every image a real PNG, every user string escaped."""

from __future__ import annotations

import asyncio
import base64
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

import flowlab as fl
from flowlab.ui import report

EVIL = "<script>alert(1)</script>"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class Ctx(BaseModel):
    note: str = ""
    n: int = 0


def work(seconds: float, note: str = "", fail: str = "") -> Any:
    async def step(data: Any, ctx: Ctx) -> None:
        await asyncio.sleep(seconds)
        ctx.n += 1
        if note:
            ctx.note = note
        if fail:
            raise ValueError(fail)

    return step


@pytest.fixture(scope="module")
def evil_result() -> fl.RunResult:
    fan = fl.Parallel(
        {EVIL: work(1, note=EVIL), "ok": work(2), "bad": work(1, fail=f"broke on {EVIL}")},
        max_concurrency=2, on_failure="ignore", name=f"fan{EVIL}",
    )  # fmt: skip
    return fl.run(fl.Pipeline(fan, name=f"pipe{EVIL}"), Ctx(), clock="virtual")


@pytest.fixture(scope="module")
def evil_page(evil_result: fl.RunResult) -> str:
    return report.result_html(evil_result)


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(page: str) -> _Collector:
    collector = _Collector()
    collector.feed(page)
    return collector


def images(page: str) -> list[tuple[str, bytes]]:
    out = []
    for tag, attrs in parse(page).tags:
        if tag == "img":
            src = attrs["src"] or ""
            assert src.startswith("data:image/png;base64,"), "images must be embedded"
            out.append((attrs["alt"] or "", base64.b64decode(src.split(",", 1)[1])))
    return out


def test_result_html_embeds_plots_and_tables(
    evil_result: fl.RunResult, evil_page: str, tmp_path: Path
) -> None:
    path = tmp_path / "out" / "run.html"
    with pytest.raises(fl.ConfigError, match=r"folder .*out' does not exist"):
        evil_result.to_html(path)  # no folder is created behind the user's back
    path.parent.mkdir()
    page = evil_result.to_html(path)
    assert path.read_text(encoding="utf-8") == page == evil_page
    assert page.startswith("<!DOCTYPE html>")
    imgs = images(page)
    assert [alt for alt, _ in imgs] == ["timeline", "concurrency", "merges"]
    assert all(data.startswith(PNG_MAGIC) and len(data) > 2000 for _, data in imgs)
    tags = [t for t, _ in parse(page).tags]
    assert tags.count("table") >= 4  # summary, branches, merges, diffs, steps
    assert "http://" not in page and "https://" not in page  # self-contained
    assert "<script" not in page.replace("&lt;script", "")


def test_every_user_string_renders_as_text(evil_page: str) -> None:
    page = evil_page
    assert EVIL not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    text = "".join(parse(page).text)
    assert f"pipe{EVIL}" in text  # the title/heading, as text
    assert f"fan{EVIL}:{EVIL}" in text  # the branch path in the branches table
    assert f"broke on {EVIL}" in text  # the error message
    assert not [t for t, _ in parse(page).tags if t == "script"]


def test_failed_run_shows_its_error(tmp_path: Path) -> None:
    res = fl.run(
        fl.Parallel({"a": work(1, fail="no <b>luck</b>")}),
        Ctx(),
        clock="virtual",
        raise_on_error=False,
    )
    page = report.result_html(res)
    assert '<p class="error"><b>BranchFailed</b>:' in page
    assert "no &lt;b&gt;luck&lt;/b&gt;" in page


def test_timeline_img_tag_is_a_sized_png(evil_result: fl.RunResult) -> None:
    tag = report.timeline_img_tag(evil_result, width=320)
    ((alt, data),) = images(tag)
    assert data.startswith(PNG_MAGIC)
    assert re.search(r'width="320"', tag)
    assert alt == f"timeline of pipe{EVIL}"
    assert EVIL not in tag


def test_run_result_repr_html_shows_summary_and_timeline(evil_result: fl.RunResult) -> None:
    shown = evil_result._repr_html_()
    ((alt, data),) = images(shown)
    assert alt.startswith("timeline of") and data.startswith(PNG_MAGIC)
    assert "makespan_s" in shown and EVIL not in shown


def test_reports_leave_no_pyplot_figure_open(evil_result: fl.RunResult, evil_page: str) -> None:
    import matplotlib.pyplot as plt

    assert evil_page  # made through the object API
    report.timeline_img_tag(evil_result)
    assert plt.get_fignums() == []


@pytest.mark.slow
def test_comparison_html_has_plots_summary_and_every_run(tmp_path: Path) -> None:
    fan = fl.Parallel({"a": work(1, note="a"), "b": work(1, note="b")}, name="fan")
    cmp = fl.compare(fan, Ctx(), grid={"merge": ["overwrite", "keep_first"], "max_concurrency": [1, 2]},
                     progress=False)  # fmt: skip
    page = cmp.to_html(tmp_path / "cmp.html")
    assert [alt for alt, _ in images(page)] == [
        "makespan_s by grid value",
        "utilization by grid value",
    ]
    assert "Summary (mean over repeats)" in page and "Every run (4 rows)" in page
    custom = report.comparison_html(cmp)
    assert custom == page
    one = report.render(comparison=cmp, comparison_plots=[{"x": "merge", "y": "ctx.n"}], title="t")
    assert [alt for alt, _ in images(one)] == ["ctx.n by grid value"]


@pytest.mark.slow
def test_render_combines_a_comparison_and_a_run() -> None:
    fan = fl.Parallel({"a": work(1), "b": work(2)}, name="fan")
    cmp = fl.compare(fan, Ctx(), grid={"max_concurrency": [1, 2]}, progress=False)
    page = report.render(result=cmp.results[0], comparison=cmp, title="both <ok>", intro="a & b",
                         result_heading="Detail")  # fmt: skip
    assert "<title>both &lt;ok&gt;</title>" in page and "<p>a &amp; b</p>" in page
    alts = [alt for alt, _ in images(page)]
    assert alts == [
        "makespan_s by grid value",
        "utilization by grid value",
        "timeline",
        "concurrency",
        "merges",
    ]
    assert page.index("<h2>Comparison</h2>") < page.index("<h2>Detail: pipeline</h2>")


@pytest.mark.slow
def test_concurrency_panel_per_capped_step_with_nested_branches() -> None:
    inner = fl.Parallel({"x": work(1), "y": work(1)}, name="inner")
    outer = fl.Parallel({"a": work(1), "n": fl.Pipeline(inner)}, max_concurrency=1, name="outer")
    res = fl.run(outer, Ctx(), clock="virtual")
    page = report.result_html(res)
    (conc,) = [data for alt, data in images(page) if alt == "concurrency"]
    import io

    from matplotlib.image import imread

    tall = imread(io.BytesIO(conc)).shape[0]
    flat = fl.run(fl.Parallel({"a": work(1)}, max_concurrency=1), Ctx(), clock="virtual")
    (single,) = [data for alt, data in images(report.result_html(flat)) if alt == "concurrency"]
    assert tall == 2 * imread(io.BytesIO(single)).shape[0]  # leaves + the outer step's own panel


def test_long_frames_are_cut_in_the_middle() -> None:
    import pandas as pd

    frame = pd.DataFrame({"i": range(500), "s": [f"<{i}>" for i in range(500)]})
    html = report._table(frame, max_rows=10)
    assert "500 rows; showing the first and last 5." in html
    assert "&lt;0&gt;" in html and "&lt;499&gt;" in html and "&lt;250&gt;" not in html


def test_summary_reads_as_words_and_wide_tables_scroll() -> None:
    from pydantic import BaseModel

    import flowlab as fl
    from flowlab import report

    class C(BaseModel):
        scores: dict[str, float] = {}

    def a(data: object, ctx: C) -> None:
        ctx.scores["a-very-long-key-name-" * 6] = 0.5

    result = fl.run(fl.Pipeline(fl.Parallel({"a": a}, name="fan")), C(), clock="virtual")
    html = report.result_fragment(result)
    assert "<th>utilization</th><td>" in html
    utilization = html.split("<th>utilization</th><td>")[1].split("</td>")[0]
    assert utilization.endswith("%")  # 60.5%, not 0.604934
    assert "fl.charge(tokens=...); not a context field" in html
    tables = html.count("<table")
    assert html.count('<div class="scroll"><table') == tables - 1  # all but the summary


def test_a_run_without_any_parallel_step_has_a_report() -> None:
    from pydantic import BaseModel

    import flowlab as fl

    class C(BaseModel):
        n: int = 0

    def add(data: object, ctx: C) -> None:
        ctx.n += 1

    page = fl.run(fl.Pipeline(add), C(), clock="virtual").to_html()
    assert page.startswith("<!DOCTYPE html>")
    assert "<th>status</th><td>ok</td>" in page


def test_the_inline_timeline_is_shown_at_the_size_it_was_laid_out_for() -> None:
    import base64
    import re
    import struct

    from pydantic import BaseModel

    import flowlab as fl

    class C(BaseModel):
        n: int = 0

    def add(data: object, ctx: C) -> None:
        ctx.n += 1

    page = fl.run(fl.Pipeline(fl.Parallel({"a": add, "b": add})), C(), clock="virtual")
    html = page._repr_html_()
    shown = int(re.search(r'<img alt="timeline[^"]*" width="(\d+)"', html).group(1))  # type: ignore[union-attr]
    data = base64.b64decode(re.search(r"base64,([^\"]+)", html).group(1))  # type: ignore[union-attr]
    png_width = struct.unpack(">I", data[16:20])[0]
    assert png_width == 2 * shown  # laid out at the shown width, drawn at 2x: text not shrunk
