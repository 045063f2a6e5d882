"""The examples in docstrings run: every ``>>>`` in the package is executed by doctest."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import flowlab

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _tests(name: str) -> list[doctest.DocTest]:
    module = importlib.import_module(name)
    found = doctest.DocTestFinder(exclude_empty=True).find(module, name)
    return [t for t in found if t.examples and t.name.startswith(name)]


MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(flowlab.__path__, prefix="flowlab.")
    if _tests(info.name)
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    # Examples that draw or run for long are marked ``# doctest: +SKIP``; the rest must pass.
    runner = doctest.DocTestRunner(optionflags=FLAGS, verbose=False)
    failed: list[str] = []
    for test in _tests(name):
        runner.run(test, out=failed.append)
    assert not failed, "".join(failed)


def test_most_modules_have_examples_that_run() -> None:
    runner = doctest.DocTestRunner(optionflags=FLAGS, verbose=False)
    ran = [
        name
        for name in MODULES
        if sum(runner.run(t, out=lambda _: None).attempted for t in _tests(name))
    ]
    assert len(ran) >= 10, ran
