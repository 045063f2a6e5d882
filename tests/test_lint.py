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
