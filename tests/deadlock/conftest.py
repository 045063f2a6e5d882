"""Deadlock-lab fixtures: a clean slate of learned wakers for every test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from flowlab.study.deadlock import forget


@pytest.fixture(autouse=True)
def _forget_learned() -> Iterator[None]:
    forget()
    yield
    forget()
