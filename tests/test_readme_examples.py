"""The README's merge example runs and prints what the README says it prints."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_merge_section_example_prints_its_comment() -> None:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Merge strategies") : text.index("## LangGraph-style steps")]
    (code,) = re.findall(r"```python\n(.*?)```", section, re.S)
    expected = [line.removeprefix("# ") for line in code.splitlines() if line.startswith("# [")]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
    assert out.getvalue().splitlines() == expected


def test_langgraph_section_example_prints_its_comment() -> None:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## LangGraph-style steps") : text.index("## Real pipelines")]
    (code,) = re.findall(r"```python\n(.*?)```", section, re.S)
    expected = [line.removeprefix("# ") for line in code.splitlines() if line.startswith("# [")]
    expected += [line.removeprefix("# ") for line in code.splitlines() if line.startswith("# {")]
    assert len(expected) == 2
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
    assert out.getvalue().splitlines() == expected


def test_real_pipelines_section_example_prints_its_comment() -> None:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Real pipelines") : text.index("## Notebooks")]
    (code,) = re.findall(r"```python\n(.*?)```", section, re.S)
    expected = [line.removeprefix("# ") for line in code.splitlines() if line.startswith("# [")]
    assert len(expected) == 2
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
    assert out.getvalue().splitlines() == expected
