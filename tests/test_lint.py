"""Static checks as tests: ruff over the code, mypy --strict over the package, import layers.

Both run as subprocesses of this interpreter (the project venv), from the repository root so
that the configuration in pyproject.toml applies; on failure the tools' own report is shown.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[1]
RUFF_PATHS = ("flowlab", "tests", "bench")


def _run_tool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def _report(done: subprocess.CompletedProcess[str]) -> str:
    command = " ".join(str(arg) for arg in done.args[2:])
    return f"`{command}` exited with {done.returncode}:\n{done.stdout}{done.stderr}"


def test_ruff_check_is_clean() -> None:
    # bench/ is linted once it exists; the package and the tests always exist.
    paths = [path for path in RUFF_PATHS if (REPO_ROOT / path).exists()]
    assert {"flowlab", "tests"} <= set(paths)
    done = _run_tool("ruff", "check", "--no-fix", "--output-format=concise", *paths)
    if done.returncode != 0:
        pytest.fail(_report(done), pytrace=False)


def test_mypy_strict_is_clean() -> None:
    # bench/ too: its profiling tool once called a helper whose signature had changed
    done = _run_tool("mypy", "--strict", "flowlab", "bench")
    if done.returncode != 0 or "Success: no issues found" not in done.stdout:
        pytest.fail(_report(done), pytrace=False)


def test_import_layers_point_down() -> None:
    # the contract lives in pyproject.toml ([tool.importlinter]): ui > study > backends > engine
    # > results > core, with the draw-on-call convenience edges listed there one by one
    lint_imports = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run(
        [str(lint_imports), "--no-cache"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    if done.returncode != 0 or "0 broken" not in done.stdout:
        pytest.fail(f"lint-imports exited with {done.returncode}:\n{done.stdout}{done.stderr}")


PACKAGE = REPO_ROOT / "flowlab"


def _function_lengths() -> list[tuple[int, str]]:
    """Each function's length in lines, its own docstring not counted."""
    import ast

    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                body = node.body
                has_doc = (
                    isinstance(body[0], ast.Expr)
                    and isinstance(body[0].value, ast.Constant)
                    and isinstance(body[0].value.value, str)
                )
                start = body[1].lineno if has_doc and len(body) > 1 else node.lineno
                assert node.end_lineno is not None
                out.append((node.end_lineno - start + 1, f"{path.relative_to(REPO_ROOT)}:{node.name}"))
    return out


def test_the_house_keeps_its_size_rules() -> None:
    # issue 20: one concept per module (at most 400 lines), functions a reader can hold (at
    # most 80 lines besides their docstring), and a package root that is the face only
    too_long = {
        str(p.relative_to(REPO_ROOT)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > 400
    }
    assert too_long == {}
    assert [name for n, name in _function_lengths() if n > 80] == []
    assert len(list(PACKAGE.glob("*.py"))) <= 12


def test_no_import_cycle_but_the_documented_lazy_html_edge() -> None:
    # a cycle among runtime imports would mean two modules that are one concept, or an arrow
    # pointing up; the one allowed is results -> ui for RunResult's HTML, imported on call
    import itertools

    import grimp

    graph = grimp.build_graph("flowlab", exclude_type_checking_imports=True)
    lazy_html = ("flowlab.results.record", "flowlab.ui.report")
    cyclic = []
    for module in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(module):
            if (module, imported) == lazy_html:
                continue
            back = graph.find_shortest_chain(importer=imported, imported=module)
            if back is not None and lazy_html not in itertools.pairwise(back):
                cyclic.append(f"{module} -> {imported} -> ... -> {module}")
    assert cyclic == []
