"""What a branch changed: :class:`Change` at field paths, and the diff that finds them.

A branch's changes are a list of :class:`Change` objects at **field paths**:

* a field of a model is one path element (``"status"``); a nested model recurses into its fields
  (``"settings.retries"``);
* a dict recurses into its keys (``"scores.alice"``); a key only in the branch is an ``add``, a key
  only in the base a ``remove``;
* a list is described by the slice that differs: after the longest common prefix and the longest
  common suffix, the base's remaining items are ``remove`` changes at ``list[i]`` (``i`` indexes the
  base) and the branch's remaining items are ``add`` changes at ``list[j]`` (``j`` indexes the
  branch). Appending ``x`` to ``['w']`` is one change, ``add tags[1] -> 'x'``;
* anything else (numbers, strings, tuples, sets, a value whose type changed) is one ``change`` with
  the whole before and after values.

Top-level values are compared with :func:`flowlab.core.context.equality.same` first (``==`` at C speed for
plain data, type- and array-aware), so an unchanged context costs one comparison per field; a model's
extras (``extra="allow"``) diff like fields, and its private attributes are recorded whole; inside a changed dict, values that are the very objects of the base are skipped without
``==`` (copies of immutable values are the same objects), so a 10,000-key dict costs one pass.
A branch made by ``isolate(ctx, track=True)`` (as the engine makes them) costs less still: its
dicts and lists of scalars note where they were written (:mod:`flowlab.core.context.tracking`), and the diff
reads only those keys, so one changed key of a 10,000-key dict costs one key, not one pass.

Change values are references into the compared contexts, not copies (the run's recorder copies
the mutable ones when it records them, so `result.diffs` keeps what the branch wrote).

The checked entry point is :func:`flowlab.core.context.isolation.diff`; :func:`diff_into` is the engine's.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Collection, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel

from flowlab.core.context.cow_containers import CowDict, CowList
from flowlab.core.context.equality import _SCALARS, same, signs_agree
from flowlab.core.context.paths import Item, join, labels
from flowlab.core.context.tracking import (
    TrackedDict,
    TrackedList,
    notes_explain_size,
    unwritten_below,
)

__all__ = ["MISSING", "Change", "Item", "diff_into", "diff_value", "list_slice", "same"]

# a copy-on-write branch context (flowlab.core.context.cow) is diffed by flowlab.core.context.cow_diff; its containers are
# still a dict / list where they meet this diff (a Parallel nested in such a branch)
_DICTS: frozenset[type] = frozenset({dict, TrackedDict, CowDict})
_LISTS: frozenset[type] = frozenset({list, TrackedList, CowList})


class _Missing:
    """The value at a path that does not exist (a removed or never-added dict key)."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "<missing>"

    def __bool__(self) -> bool:
        return False

    def __copy__(self) -> _Missing:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> _Missing:
        return self


MISSING: Any = _Missing()
"""Sentinel for "no value at this path" (used by the merge; ``Change`` uses ``None``)."""


@dataclass(frozen=True, slots=True)
class Change:
    """One thing a branch changed, at a field path.

    Attributes
    ----------
    path : tuple of str
        Field names, dict keys and list positions (``"[i]"``) from the context down, each as
        :func:`flowlab.core.context.paths.label` writes it (``"alice"``, ``'["a.b"]'``, ``"[1]"``).
    op : {"add", "change", "remove"}
        ``add``: the path is new (a dict key, or a list item); ``remove``: it is gone;
        ``change``: its value was replaced.
    before, after : Any
        The value before (``None`` for ``add``) and after (``None`` for ``remove``).
    keys : tuple
        The same path with the real dict keys and :class:`Item` positions (not compared, not shown);
        empty when the change was built by hand, in which case ``path`` is used.
    """

    path: tuple[str, ...]
    op: Literal["add", "change", "remove"]
    before: Any
    after: Any
    keys: tuple[Hashable, ...] = field(default=(), compare=False, repr=False)

    @property
    def dotted(self) -> str:
        """The path as one string: ``"scores.alice"``, ``"tags[1]"``, ``'counts["a.b"]'``
        (:mod:`flowlab.core.context.paths`)."""
        return join(self.path)

    @property
    def key_path(self) -> tuple[Hashable, ...]:
        """The real keys of the path (``keys`` when set, else ``path``)."""
        return self.keys or self.path


def _diff_dict(
    old: dict[Any, Any], new: dict[Any, Any], keys: tuple[Hashable, ...], out: list[Change]
) -> None:
    """Changed keys in the branch's order, then removed keys, then added keys.

    One pass over ``new``; a value that is the very object of the base (a copy of an immutable
    value, or an untouched one) is skipped without ``==``.
    """
    get = old.get
    changed: list[Hashable] = []
    added: list[Hashable] = []
    for key, value in new.items():
        before = get(key, MISSING)
        if before is value:
            continue
        if before is MISSING:
            added.append(key)
        elif not same(before, value):
            changed.append(key)
    for key in changed:
        diff_value(old[key], new[key], (*keys, key), out)
    if len(old) + len(added) != len(new):
        for key, value in old.items():
            if key not in new:
                out.append(_change((*keys, key), "remove", value, None))
    for key in added:
        out.append(_change((*keys, key), "add", None, new[key]))


def list_slice(old: Sequence[Any], new: Sequence[Any], same_below: int = 0) -> tuple[int, int, int]:
    """``(start, old_end, new_end)``: ``old[start:old_end]`` became ``new[start:new_end]``.

    ``same_below``: the first items known to be the base's (a tracked list's ``low``).
    """
    n_old, n_new = len(old), len(new)
    if same_below >= n_old and n_new >= n_old:  # known pure append
        return n_old, n_old, n_new
    if not same_below and n_new >= n_old and _same_prefix(old, new):  # pure append
        return n_old, n_old, n_new
    start = min(same_below, n_old, n_new)
    limit = min(n_old, n_new)
    while start < limit and same(old[start], new[start]):
        start += 1
    end_old, end_new = n_old, n_new
    while end_old > start and end_new > start and same(old[end_old - 1], new[end_new - 1]):
        end_old -= 1
        end_new -= 1
    return start, end_old, end_new


def _same_prefix(old: Sequence[Any], new: Sequence[Any]) -> bool:
    """Whether ``new`` starts with the items of ``old`` (as :func:`same` sees them)."""
    head = new[: len(old)]
    try:  # plain values: one C-level comparison, then the types (``[True] == [1]``)
        if list(head) == list(old):
            kinds = list(map(type, head))
            # equal scalars of equal types are the same; equal containers may still differ
            # inside (``[[True]] == [[1]]``), so they are compared as same() does
            if kinds == list(map(type, old)) and _SCALARS.issuperset(kinds):
                return signs_agree(list(head), list(old), kinds)  # 0.0 == -0.0
            return all(same(a, b) for a, b in zip(old, head, strict=True))
    except Exception:
        pass
    return all(same(a, b) for a, b in zip(old, head, strict=True))


def _diff_list(
    old: list[Any],
    new: list[Any],
    keys: tuple[Hashable, ...],
    out: list[Change],
    same_below: int = 0,
) -> None:
    n_old, end_new = len(old), len(new)
    if same_below >= n_old and end_new >= n_old:  # only appended (a tracked list says so)
        start = end_old = n_old
    else:
        start, end_old, end_new = list_slice(old, new, same_below)
    # a path of one field name is all str already
    path = keys if len(keys) == 1 and type(keys[0]) is str else labels(keys)
    for i in range(start, end_old):
        out.append(_make_change((*path, _label(i)), "remove", old[i], None, (*keys, _item(i))))
    for j in range(start, end_new):
        if j < _SHARED:  # _label(j), _item(j) inlined: most appends land at small positions
            label, item = _LABELS[j], _ITEMS[j]
        else:
            label, item = f"[{j}]", _new_item(j)
        out.append(_make_change((*path, label), "add", None, new[j], (*keys, item)))


_list_eq = list.__eq__  # a tracked list holds immutable scalars: == is a bool, never raises


def _diff_model(
    old: BaseModel,
    new: BaseModel,
    keys: tuple[Hashable, ...],
    out: list[Change],
    fields: Collection[str] | None = None,
) -> None:
    names = old.__dict__ if fields is None else fields  # a model's __dict__ holds its fields
    old_values, new_values = old.__dict__, new.__dict__
    for name in names:
        a, b = old_values[name], new_values[name]
        if a is b:  # an immutable value the branch kept (isolate shares them)
            continue
        kind = type(b)
        if kind is TrackedDict and b.origin is a and b.written is not None:
            # its notes, if its size bears them out (a write around its methods breaks it)
            written = b.written
            if written and notes_explain_size(a, b, written):
                _diff_tracked_dict(a, b, (*keys, name), out)
            elif written or len(b) != len(a):
                _diff_dict(a, b, (*keys, name), out)
        elif kind is TrackedList and b.origin is a:
            low = b.low
            if low < len(a) or len(b) != len(a):
                if low and a:  # the notes say its first `low` items are the base's: checked
                    low = unwritten_below(a, b, low)
                _diff_list(a, b, (*keys, name), out, low)
            elif a and _list_eq(b, a) is not True:  # nothing noted, yet changed: written
                _diff_list(a, b, (*keys, name), out)  # around its methods (heapq.heapify)
        elif not same(a, b):
            diff_value(a, b, (*keys, name), out)
    extra_old, extra_new = old.__pydantic_extra__, new.__pydantic_extra__
    if extra_old or extra_new:  # a model with extra="allow": its extras diff like fields
        _diff_extras(extra_old or {}, extra_new or {}, keys, out, fields)
    private_old, private_new = old.__pydantic_private__, new.__pydantic_private__
    if private_old and private_new and private_old is not private_new:
        # private attributes: recorded whole (the merge reports them, never applies them)
        for name, value in private_new.items():
            before = private_old.get(name, MISSING)
            if before is not value and not same(before, value):
                out.append(
                    _change((*keys, name), "change", None if before is MISSING else before, value)
                )


def _diff_extras(
    old: dict[str, Any],
    new: dict[str, Any],
    keys: tuple[Hashable, ...],
    out: list[Change],
    fields: Collection[str] | None,
) -> None:
    for name, value in new.items():
        if fields is not None and name not in fields:
            continue
        before = old.get(name, MISSING)
        if before is MISSING:
            out.append(_change((*keys, name), "add", None, value))
        elif not same(before, value):
            diff_value(before, value, (*keys, name), out)
    for name, value in old.items():
        if name not in new and (fields is None or name in fields):
            out.append(_change((*keys, name), "remove", value, None))


def _diff_tracked_dict(
    old: dict[Any, Any], new: TrackedDict, keys: tuple[Hashable, ...], out: list[Change]
) -> None:
    """:func:`_diff_dict` over the written keys only (changed, then removed, then added)."""
    assert new.written is not None
    get = old.get
    removed: list[Hashable] = []
    added: list[Hashable] = []
    for key in new.written:
        before = get(key, MISSING)
        after = dict.get(new, key, MISSING)
        if before is after:
            continue
        if after is MISSING:
            removed.append(key)
        elif before is MISSING:
            added.append(key)
        elif not same(before, after):
            diff_value(before, after, (*keys, key), out)
    for key in removed:
        out.append(_change((*keys, key), "remove", old[key], None))
    for key in added:
        out.append(_change((*keys, key), "add", None, new[key]))


def diff_value(old: Any, new: Any, keys: tuple[Hashable, ...], out: list[Change]) -> None:
    """Append the changes from ``old`` to ``new`` (known to differ) at ``keys``."""
    if (type(old) in _DICTS and type(new) in _DICTS) or (
        type(old) is type(new) and isinstance(old, dict) and _keys_in_place(old, new)
    ):  # (Counter, OrderedDict, defaultdict: key by key too)
        _diff_dict(old, new, keys, out)
    elif type(old) in _LISTS and type(new) in _LISTS:
        _diff_list(old, new, keys, out)
    elif isinstance(old, BaseModel) and type(new) is type(old):
        _diff_model(old, new, keys, out)
    else:
        out.append(_change(keys, "change", old, new))


def _keys_in_place(old: dict[Any, Any], new: dict[Any, Any]) -> bool:
    """Whether ``new``'s keys are where a key-by-key diff puts them (always, but for an
    ``OrderedDict`` whose kept keys moved, or whose new keys are not all at the end: its order
    is part of its value, so such a change is one of the whole dict)."""
    if not isinstance(old, OrderedDict):
        return True
    return list(new) == [k for k in old if k in new] + [k for k in new if k not in old]


def _slot_setters(cls: type, names: Sequence[str]) -> list[Callable[[Any, Any], None]]:
    return [cls.__dict__[name].__set__ for name in names]


# A frozen dataclass sets each field through ``object.__setattr__`` in ``__init__``; a diff
# makes one Change (and one Item per list position) for everything a branch wrote, so the diff
# builds them by setting the slots directly (the same objects, about 2.5x cheaper).
_set_path, _set_op, _set_before, _set_after, _set_keys = _slot_setters(
    Change, ("path", "op", "before", "after", "keys")
)
(_set_index,) = _slot_setters(Item, ("index",))
_new = object.__new__


def _new_item(index: int) -> Item:
    item = _new(Item)
    _set_index(item, index)
    return item


# Items are immutable: the first positions' Items and "[i]" labels are made once and shared.
_SHARED = 1024
_ITEMS = [_new_item(i) for i in range(_SHARED)]
_LABELS = [f"[{i}]" for i in range(_SHARED)]


def _item(index: int) -> Item:
    return _ITEMS[index] if 0 <= index < _SHARED else _new_item(index)


def _label(index: int) -> str:
    return _LABELS[index] if 0 <= index < _SHARED else f"[{index}]"


def _make_change(
    path: tuple[str, ...], op: str, before: Any, after: Any, keys: tuple[Hashable, ...]
) -> Change:
    change = _new(Change)
    _set_path(change, path)
    _set_op(change, op)
    _set_before(change, before)
    _set_after(change, after)
    _set_keys(change, keys)
    return change


def _change(
    keys: tuple[Hashable, ...], op: Literal["add", "change", "remove"], before: Any, after: Any
) -> Change:
    return _make_change(labels(keys), op, before, after, keys)


def diff_into(
    base: BaseModel, branch: BaseModel, out: list[Change], fields: Collection[str] | None = None
) -> None:
    """:func:`diff` without its argument checks, appending to ``out``: for the engine, whose
    branch contexts are copies of ``base`` and whose ``fields`` were checked when the step was
    built."""
    _diff_model(base, branch, (), out, fields)
