"""A progress bar instrument (tqdm.auto: a widget in Jupyter, text in a terminal)."""

from __future__ import annotations

from typing import Any

from flowlab.results.recorder import Instrument
from flowlab.results.records import BranchRecord

__all__ = ["ProgressBar"]


class ProgressBar(Instrument):
    """Shows finished branches out of the declared total while a run goes.

    Parameters
    ----------
    desc : str, default "branches"
    **tqdm_kwargs
        Passed to ``tqdm.auto.tqdm``.
    """

    def __init__(self, desc: str = "branches", **tqdm_kwargs: Any) -> None:
        self.desc = desc
        self.kwargs = tqdm_kwargs
        self.bar: Any = None

    def run_started(self, total_branches: int | None) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total_branches or None, desc=self.desc, leave=False, **self.kwargs)

    def branch_finished(self, record: BranchRecord) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def run_finished(self, status: str) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(status)
            self.bar.close()

    def __repr__(self) -> str:
        n = getattr(self.bar, "n", 0)
        return f"<ProgressBar {self.desc} done={n}>"
