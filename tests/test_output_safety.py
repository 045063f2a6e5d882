"""Output safety: user strings shown as HTML are escaped; traces and reports are data, never code.

Branch, step and pipeline names, error messages and context values reach the notebook as HTML
(``RunResult._repr_html_``, reports, the comparison display, the Lab). Each is checked two ways:
parsed with :class:`html.parser.HTMLParser`, the markup holds no ``<script>`` element, no ``on*``
event attribute, no ``javascript:`` URL and no image that is not inline PNG data; and the hostile
text itself is present as *text* (the parser's decoded character data contains it verbatim).
"""

from __future__ import annotations

import ast
import asyncio
import json
from html.parser import HTMLParser
from pathlib import Path
from typing import Annotated, Any

import pytest
from pydantic import BaseModel

import flowlab as fl

SCRIPT = "<script>alert(1)</script>"
IMG = '<img src=x onerror="alert(2)">'
ERROR = "bad <script>alert('err')</script> & <b>bold</b>"
VALUE = "</td><script>alert(3)</script>"
STEP = "<i onmouseover=alert(4)>fan</i>"


class Ctx(BaseModel):
    n: Annotated[int, fl.merge.Sum()] = 0
    label: str = "start"


async def evil_ok(data: Any, ctx: Ctx) -> str:
    await asyncio.sleep(1)
    ctx.n += 1
    ctx.label = VALUE
    return VALUE


async def evil_fails(data: Any, ctx: Ctx) -> None:
    await asyncio.sleep(0.5)
    raise RuntimeError(ERROR)


def hostile_pipeline(*, fail: bool) -> fl.Pipeline:
    branches: dict[str, Any] = {SCRIPT: evil_ok, "plain": evil_ok}
    if fail:
        branches[IMG] = evil_fails
    return fl.Pipeline(
        fl.Parallel(branches, merge="overwrite", on_failure="ignore", name=STEP),
        name=IMG,
    )


class Markup(HTMLParser):
    """Collects tags, attributes and decoded text of an HTML string."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def assert_safe(markup: str, *, shows: tuple[str, ...]) -> None:
    """No active content in ``markup``, and every string of ``shows`` appears as plain text."""
    parser = Markup()
    parser.feed(markup)
    parser.close()
    tags = [t for t, _ in parser.tags]
    assert "script" not in tags, "a <script> element made it into the HTML"
    assert "iframe" not in tags and "object" not in tags and "embed" not in tags
    for tag, attrs in parser.tags:
        for name, value in attrs:
            assert not name.lower().startswith("on"), f"<{tag} {name}=...> event handler in HTML"
            text = value or ""
            assert "javascript:" not in text.lower(), (tag, name, text)
            if tag == "img" and name == "src":
                assert text.startswith("data:image/png;base64,"), text[:40]
        if tag == "i":
            assert not attrs, f"<i> with attributes {attrs}: a user string was not escaped"
    text = "".join(parser.text)
    for s in shows:
        assert s in text, f"{s!r} is not shown as text"


@pytest.fixture(scope="module")
def failed_result() -> fl.RunResult:
    result = fl.run(hostile_pipeline(fail=True), Ctx(), clock="virtual", raise_on_error=False)
    assert result.status == "ok"  # on_failure="ignore": the failing branch is recorded, not raised
    return result


@pytest.fixture(scope="module")
def raised_result() -> fl.RunResult:
    pipe = fl.Pipeline(
        fl.Parallel({SCRIPT: evil_ok, IMG: evil_fails}, name=STEP),
        name=IMG,
    )
    result = fl.run(pipe, Ctx(), clock="virtual", raise_on_error=False)
    assert result.status == "failed"
    assert ERROR in str(result.error)
    return result


@pytest.mark.slow
def test_run_result_repr_html_escapes_names_and_errors(raised_result: fl.RunResult) -> None:
    markup = raised_result._repr_html_()
    assert_safe(markup, shows=(IMG, ERROR))


@pytest.mark.slow
def test_report_html_escapes_branch_names_errors_and_values(
    failed_result: fl.RunResult, raised_result: fl.RunResult, tmp_path: Path
) -> None:
    page = failed_result.to_html(tmp_path / "run.html")
    assert (tmp_path / "run.html").read_text(encoding="utf-8") == page
    assert_safe(page, shows=(SCRIPT, IMG, STEP, ERROR, VALUE))
    page = raised_result.to_html()
    assert_safe(page, shows=(SCRIPT, IMG, ERROR))


@pytest.mark.slow
def test_comparison_display_and_report_escape_user_strings(tmp_path: Path) -> None:
    cmp = fl.compare(
        hostile_pipeline(fail=True),
        Ctx(),
        grid={f"{STEP}.merge": ["overwrite", "deep"], "max_concurrency": [1, 2]},
        clock="virtual",
        progress=False,
    )
    assert len(cmp.frame) == 4
    assert_safe(cmp._repr_html_(), shows=(STEP,))
    assert_safe(cmp.to_html(tmp_path / "cmp.html"), shows=(STEP, VALUE))


def _widget_html(widget: Any) -> list[str]:
    """Every HTML string a widget tree shows: HTML widgets' values and Output areas' HTML."""
    out: list[str] = []
    value = getattr(widget, "value", None)
    if type(widget).__name__ in ("HTML", "HTMLMath") and isinstance(value, str):
        out.append(value)
    for item in getattr(widget, "outputs", ()) or ():
        data = item.get("data", {})
        if "text/html" in data:
            out.append(data["text/html"])
    for child in getattr(widget, "children", ()) or ():
        out.extend(_widget_html(child))
    return out


@pytest.mark.slow
def test_lab_panel_escapes_names_errors_and_context_values() -> None:
    pipe = fl.Pipeline(
        fl.Parallel({SCRIPT: evil_ok, IMG: evil_fails}, name=STEP),
        name=IMG,
    )
    lab = fl.Lab(pipe, Ctx(), clock="virtual")
    lab.run()  # fails: the error is shown in the panel, never raised
    assert lab.result is not None and lab.result.status == "failed"
    lab.controls[STEP].on_failure.value = "ignore"
    lab.run()
    assert lab.result is not None and lab.result.status == "ok"
    shown = _widget_html(lab.panel)
    assert shown, "the Lab showed no HTML at all"
    joined = "\n".join(shown)
    assert_safe(joined, shows=(SCRIPT, IMG, STEP, VALUE))
    # the history shortens long errors (issue 23); the whole error is its cell's hover text
    parser = Markup()
    parser.feed(joined)
    titles = [v or "" for _, attrs in parser.tags for n, v in attrs if n == "title"]
    assert any(ERROR in t for t in titles), "the whole error is not in any cell's hover text"
    assert_safe(lab._repr_html_(), shows=(IMG,))


def test_deadlock_report_escapes_task_and_primitive_names() -> None:
    from flowlab.engine.clock import run_virtual

    async def main() -> Any:
        first, second = fl.deadlock.Lock(name=SCRIPT), fl.deadlock.Lock(name=IMG)

        async def one() -> None:
            async with first:
                await asyncio.sleep(0.1)
                async with second:
                    pass

        async def two() -> None:
            async with second:
                await asyncio.sleep(0.1)
                async with first:
                    pass

        with pytest.raises(fl.DeadlockDetected) as info:
            await fl.deadlock.watch(one(), two(), names=[STEP, "<b>two</b>"])
        return info.value.report

    report = run_virtual(main())
    assert report.deadlocked
    assert_safe(report._repr_html_(), shows=(SCRIPT, IMG, STEP, "<b>two</b>"))


# ---- traces and reports are data, never code --------------------------------------------------


class Exploit:
    """An object that would run code if a trace or report ever unpickled it."""

    fired: list[str] = []

    def __reduce__(self) -> Any:
        return (Exploit.fired.append, ("unpickled!",))

    def __repr__(self) -> str:
        return "<Exploit>"


def _json_only(value: Any) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            assert isinstance(k, str)
            _json_only(v)
    elif isinstance(value, list):
        for v in value:
            _json_only(v)
    else:
        assert value is None or isinstance(value, str | int | float | bool), type(value)


def test_chrome_trace_is_plain_json(failed_result: fl.RunResult, tmp_path: Path) -> None:
    path = tmp_path / "trace.json"
    returned = failed_result.to_chrome_trace(path)
    raw = path.read_bytes()
    assert not raw.startswith(b"\x80"), "the trace looks like a pickle"
    loaded = json.loads(raw.decode("utf-8"))
    _json_only(loaded)
    assert loaded == json.loads(json.dumps(returned, default=str))
    names = {e["args"]["name"] for e in loaded["traceEvents"] if e["ph"] == "M"}
    assert f"{STEP}:{SCRIPT}" in names  # hostile names travel as plain strings


def test_objects_in_a_run_reach_traces_and_reports_as_text_not_pickles(tmp_path: Path) -> None:
    class Holder(BaseModel):
        model_config = {"arbitrary_types_allowed": True}
        thing: Any = None

    async def keep(data: Any, ctx: Holder) -> Exploit:
        ctx.thing = Exploit()
        raise RuntimeError(Exploit())

    pipe = fl.Pipeline(fl.Parallel({"a": keep}, on_failure="ignore", name="fan"))
    result = fl.run(pipe, Holder(), clock="virtual", raise_on_error=False)
    trace_path, page_path = tmp_path / "t.json", tmp_path / "r.html"
    result.to_chrome_trace(trace_path)
    result.to_html(page_path)
    _json_only(json.loads(trace_path.read_text(encoding="utf-8")))
    assert "<Exploit>" in trace_path.read_text(encoding="utf-8")
    assert "&lt;Exploit&gt;" in page_path.read_text(encoding="utf-8")
    assert Exploit.fired == []


TRACE_AND_REPORT_MODULES = (
    "results/record.py",
    "results/frames.py",
    "results/trace.py",
    "ui/report.py",
    "ui/plot/__init__.py",
    "study/experiment.py",
)
FORBIDDEN_CALLS = {"eval", "exec", "compile", "__import__"}
FORBIDDEN_MODULES = {"pickle", "cPickle", "dill", "cloudpickle", "marshal", "shelve", "yaml"}


@pytest.mark.parametrize("module", TRACE_AND_REPORT_MODULES)
def test_trace_and_report_code_never_pickles_or_evals(module: str) -> None:
    path = Path(fl.__file__).parent / module
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id not in FORBIDDEN_CALLS, (
                f"{module}:{node.lineno} calls {node.func.id}"
            )
        if isinstance(node, ast.Import):
            for alias in node.names:
                assert alias.name.split(".")[0] not in FORBIDDEN_MODULES, (module, node.lineno)
        if isinstance(node, ast.ImportFrom) and node.module:
            assert node.module.split(".")[0] not in FORBIDDEN_MODULES, (module, node.lineno)
