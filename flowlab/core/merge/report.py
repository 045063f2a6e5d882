"""One merge's report: a row per decided path, kept compact while the merge runs.

The merge (:mod:`flowlab.core.merge.tree`) decides every changed path and reports it: which rule
decided it, which branches wrote it, which one won, the value before and after. A merge of N
branches decides hundreds of paths, and a report row spelled out as a dict (its dotted path
joined, its writers' names looked up) costs more than deciding the path itself. So
:class:`MergeReport` keeps one tuple per row, holding what the merge already has at hand (the
path's keys, the writers' branch indices), and spells a row out as a dict only when it is read.

Why a row read later is still the row of the merge: everything a tuple holds is either immutable
(the keys, the rule's name, the flags), or what an eagerly built dict would have held as well (the
same ``before`` / ``after`` objects, the same :class:`~flowlab.core.merge.nodes.Dropped`), or
the list of writer indices of a change-tree node, which the merge never touches again once the node
is decided. Values a caller could mutate after the merge are the caller's business, as they were
with eager dicts; the run's frames read :meth:`MergeReport.snapshot`, which copies them at merge
time (as :mod:`flowlab.results.recorder` did for eager rows).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Sequence
from typing import Any, overload

from flowlab.core.context.changes import MISSING
from flowlab.core.context.copying import ATOMIC, snapshot
from flowlab.core.context.paths import dotted as _dotted

__all__ = ["COLUMNS", "Entry", "MergeReport", "dotted"]

COLUMNS = ("path", "rule", "writers", "winner", "before", "after", "conflict", "dropped")
"""The keys of a report row, in order."""

Entry = tuple[
    tuple[Hashable, ...],  # keys: the path from the context down
    str,  # rule: the name of what decided it
    Sequence[int],  # writers: branch indices, in merge order
    "int | None",  # winner: the index of the branch whose value was taken, or None
    Any,  # before (MISSING: the path did not exist)
    Any,  # after (MISSING: the path is gone)
    bool,  # conflict
    Any,  # dropped: a tuple of branch names, or a Dropped worked out when read
]


def dotted(keys: Sequence[Hashable]) -> str:
    """A path's keys as one string, as the diffs show it: ``("scores", "alice") -> "scores.alice"``
    (:func:`flowlab.core.context.paths.dotted`: a key a dot could not show apart is bracketed).

    Examples
    --------
    >>> dotted(("docs", "d1", "words")), dotted(("counts", 3)), dotted(("counts", "a.b"))
    ('docs.d1.words', 'counts[3]', 'counts["a.b"]')
    """
    return _dotted(keys)


class MergeReport(Sequence[dict[str, Any]]):
    """The rows of one merge, in the order the paths were decided: a sequence of dicts.

    Each row is a dict with the keys of :data:`COLUMNS`: ``path`` (dotted), ``rule``, ``writers``
    (branch names in merge order), ``winner`` (``None`` when values were combined), ``before``,
    ``after`` (``None`` for a missing path), ``conflict`` and ``dropped``. Rows are stored as
    tuples (:meth:`add`) and made into dicts each time they are read.

    Parameters
    ----------
    names : sequence of str
        The merged branches' names, in merge order: what the writer indices stand for.

    Examples
    --------
    >>> report = MergeReport(["a", "b"])
    >>> report.add(("n",), "sum", [0, 1], None, 1, 4)
    >>> report[0]["path"], report[0]["writers"], len(report)
    ('n', ('a', 'b'), 1)
    >>> report == [dict(report[0])]
    True
    """

    __slots__ = ("entries", "names")

    def __init__(self, names: Sequence[str]) -> None:
        self.names = names
        self.entries: list[Entry] = []

    def add(
        self,
        keys: tuple[Hashable, ...],
        rule: str,
        writers: Sequence[int],
        winner: int | None,
        before: Any,
        after: Any,
        conflict: bool = False,
        dropped: Any = (),
    ) -> None:
        """Report one decided path (``writers`` and ``winner`` are branch indices)."""
        self.entries.append((keys, rule, writers, winner, before, after, conflict, dropped))

    def row(self, entry: Entry) -> dict[str, Any]:
        """One entry spelled out as a report row."""
        keys, rule, writers, winner, before, after, conflict, dropped = entry
        names = self.names
        return {
            "path": dotted(keys),
            "rule": rule,
            "writers": tuple([names[i] for i in writers]),
            "winner": None if winner is None else names[winner],
            "before": None if before is MISSING else before,
            "after": None if after is MISSING else after,
            "conflict": conflict,
            "dropped": dropped,
        }

    def snapshot(self) -> MergeReport:
        """This report with its values copied as they are now
        (:func:`~flowlab.core.context.copying.snapshot`, one memo for the whole report: a merged
        list's ``after`` that holds its ``before``'s items shares their copies, as in the context).

        Raises
        ------
        RecursionError
            A value holds itself (see :func:`~flowlab.core.context.copying.snapshot`).
        """
        out = MergeReport(self.names)
        copied = out.entries
        memo: dict[int, Any] = {}
        atomic = ATOMIC
        for entry in self.entries:
            before, after = entry[4], entry[5]
            if (before is MISSING or type(before) in atomic) and (
                after is MISSING or type(after) in atomic
            ):
                copied.append(entry)
                continue
            keys, rule, writers, winner, _, _, conflict, dropped = entry
            if before is not MISSING:
                before = snapshot(before, memo)
            if after is not MISSING:
                after = snapshot(after, memo)
            copied.append((keys, rule, writers, winner, before, after, conflict, dropped))
        return out

    def __len__(self) -> int:
        return len(self.entries)

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...

    @overload
    def __getitem__(self, index: slice) -> list[dict[str, Any]]: ...

    def __getitem__(self, index: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        if isinstance(index, slice):
            return [self.row(e) for e in self.entries[index]]
        return self.row(self.entries[index])

    def __iter__(self) -> Iterator[dict[str, Any]]:
        row = self.row
        for entry in self.entries:
            yield row(entry)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, MergeReport | list | tuple):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # compared by value, like a list

    def __repr__(self) -> str:
        return repr(list(self))
