"""What a copy-on-write branch changed: the diff of :mod:`flowlab.core.context.cow` contexts, and detaching.

:func:`cow_diff_into` gives exactly the changes :func:`flowlab.core.context.isolation.diff` gives for an eager
deep copy on which the branch did the same things (same paths, ops, values and order), but reads
only what the branch touched: a field whose :class:`~flowlab.core.context.cow.CowList` /
:class:`~flowlab.core.context.cow.CowDict` was never written is skipped without a look; a written dict is read
at its written keys; a written list from its lowest written position; a model copy field by field.

The values it reports as written are *detached* (:func:`detach`): plain lists, dicts and models
rebuilt from the branch's view, raw base objects inside them deep-copied. A change's value may be
put into the merged context as it is, so it must not share anything with the base that an eager
copy would not have shared (see :mod:`flowlab.core.context.cow`, "Why it is sound", 4.).
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Hashable
from typing import Any

from pydantic import BaseModel

from flowlab.core.context.changes import (
    MISSING,
    Change,
    _change,
    _diff_extras,
    _diff_list,
    _diff_model,
    _item,
    _label,
    _make_change,
    diff_value,
)
from flowlab.core.context.cow import Branch, branch_of
from flowlab.core.context.cow_containers import IMMUTABLE, CowDict, CowList
from flowlab.core.context.cow_sharing import branches_in, view, view_context, wrote_shared
from flowlab.core.context.equality import same
from flowlab.core.context.paths import labels
from flowlab.core.context.tracking import notes_explain_size, unwritten_below

__all__ = ["cow_diff_into", "detach", "detach_context", "detach_output"]


class _Detacher:
    """Rebuilds values out of one branch (one memo for a whole diff: shared stays shared)."""

    __slots__ = ("branch", "memo")

    def __init__(self, branch: Branch) -> None:
        self.branch = branch
        self.memo: dict[int, Any] = {}

    def __call__(self, value: Any, base: bool = False) -> Any:
        """``value`` as plain data of its own; ``base``: it is a raw base object."""
        kind = type(value)
        if kind in IMMUTABLE:
            return value
        memo = self.memo
        got = memo.get(id(value), MISSING)
        if got is not MISSING:
            return got
        owned = self.branch.owned
        if kind is CowList or kind is CowDict:
            base = False
        elif not base and not _holds(value, self.branch):
            return value  # made by the branch and holding nothing of the base: its very object
        new: Any
        if kind is list or kind is CowList:
            new = memo[id(value)] = []
            for item in list.__iter__(value):
                new.append(self(item, base or _raw_item(item, owned)))
        elif kind is dict or kind is CowDict:
            new = memo[id(value)] = {}
            for key, item in dict.items(value):
                new[key] = self(item, base or _raw_item(item, owned))
        elif kind is tuple:
            items = [self(item, base) for item in value]
            new = value if all(a is b for a, b in zip(items, value, strict=True)) else tuple(items)
            memo[id(value)] = new
        elif kind is set or kind is frozenset:
            new = kind(self(item, base) for item in value)
            memo[id(value)] = new
        elif isinstance(value, BaseModel):
            new = self._model(value, base)
        elif base:
            new = copy.deepcopy(value, memo)
        else:
            new = value  # the branch's own object (made by it, or copied for it)
        return new

    def _model(self, value: BaseModel, base: bool) -> BaseModel:
        cls = type(value)
        new = cls.__new__(cls)
        self.memo[id(value)] = new
        values = {name: self(item, base) for name, item in value.__dict__.items()}
        extra = value.__pydantic_extra__
        if extra is not None:
            extra = {name: self(item, base) for name, item in extra.items()}
        private = value.__pydantic_private__
        if private is not None:
            private = {name: self(item, base) for name, item in private.items()}
        object.__setattr__(new, "__dict__", values)
        object.__setattr__(new, "__pydantic_extra__", extra)
        object.__setattr__(new, "__pydantic_private__", private)
        object.__setattr__(new, "__pydantic_fields_set__", set(value.__pydantic_fields_set__))
        return new


def _raw_item(item: Any, owned: dict[int, Any]) -> bool:
    """Whether an item read from a copy-on-write container's storage is a raw base object."""
    return type(item) not in IMMUTABLE and id(item) not in owned


def detach(value: Any, branch: Branch) -> Any:
    """``value`` (read from a branch of ``branch``) as plain data sharing nothing with the base.

    Examples
    --------
    >>> from flowlab.core.context.cow import Branch
    >>> branch = Branch()
    >>> base = [{"n": 1}]
    >>> items = branch.adopt(base, None, None)
    >>> items.append({"n": 2})
    >>> out = detach(items, branch)
    >>> type(out).__name__, out, out[0] is base[0]
    ('list', [{'n': 1}, {'n': 2}], False)
    """
    return _Detacher(branch)(value)


class _Diff:
    """One branch's diff against its base (see the module docstring)."""

    __slots__ = ("branch", "detach", "out")

    def __init__(self, branch: Branch, out: list[Change]) -> None:
        self.branch = branch
        self.detach = _Detacher(branch)
        self.out = out

    def value(self, old: Any, new: Any, keys: tuple[Hashable, ...]) -> None:
        """The changes from ``old`` (the base's) to ``new`` (the branch's) at ``keys``."""
        if old is new:
            return
        kind = type(new)
        branch = self.branch
        if kind is CowDict and new.origin is old and new.branch is branch:
            if new.dirty:
                if new.written is None:
                    self.whole(old, new, keys)
                else:
                    self.dict(old, new, keys)
        elif kind is CowList and new.origin is old and new.branch is branch:
            if new.dirty and (new.low < len(old) or len(new) != len(old)):
                self.list(old, new, keys)
        elif branch.models.get(id(new), MISSING) is old:
            self.model(old, new, keys)
        else:
            self.whole(old, new, keys)

    def stored(self, value: Any) -> Any:
        """A value read from a copy-on-write container's storage, detached."""
        return self.detach(value, _raw_item(value, self.branch.owned))

    def whole(self, old: Any, new: Any, keys: tuple[Hashable, ...]) -> None:
        if not same(old, new):
            diff_value(old, self.detach(new), keys, self.out)

    def model(
        self,
        old: BaseModel,
        new: BaseModel,
        keys: tuple[Hashable, ...],
        fields: Collection[str] | None = None,
    ) -> None:
        """As :func:`flowlab.core.context.changes._diff_model`, field by field through :meth:`value`."""
        names = old.__dict__ if fields is None else fields
        old_values, new_values = old.__dict__, new.__dict__
        for name in names:
            self.value(old_values[name], new_values[name], (*keys, name))
        out = self.out
        extra_old, extra_new = old.__pydantic_extra__, new.__pydantic_extra__
        if extra_old or extra_new:
            _diff_extras(extra_old or {}, self.detach(extra_new or {}), keys, out, fields)
        private_old, private_new = old.__pydantic_private__, new.__pydantic_private__
        if private_old and private_new and private_old is not private_new:
            for name, value in private_new.items():
                before = private_old.get(name, MISSING)
                if before is not value and not same(before, value):
                    before = None if before is MISSING else before
                    out.append(_change((*keys, name), "change", before, self.detach(value)))

    def dict(self, old: dict[Any, Any], new: CowDict, keys: tuple[Hashable, ...]) -> None:
        """As :func:`flowlab.core.context.changes._diff_dict` (same order), over the written keys only."""
        assert new.written is not None
        changed: list[Hashable] = []
        removed: list[Hashable] = []
        added: list[Hashable] = []
        get, get_new = old.get, dict.get
        for key in new.written:
            before = get(key, MISSING)
            after = get_new(new, key, MISSING)
            if before is after:
                continue
            if after is MISSING:
                removed.append(key)
            elif before is MISSING:
                added.append(key)
            elif not same(before, after):
                changed.append(key)
        if len(changed) > 1:  # in the branch's dict order, as the full diff finds them
            wanted = set(changed)
            changed = [key for key in dict.__iter__(new) if key in wanted]
        if len(removed) > 1:  # in the base's order
            wanted = set(removed)
            removed = [key for key in old if key in wanted]
        out, stored = self.out, self.stored
        for key in changed:
            diff_value(old[key], stored(dict.__getitem__(new, key)), (*keys, key), out)
        for key in removed:
            out.append(_change((*keys, key), "remove", old[key], None))
        for key in added:
            out.append(_change((*keys, key), "add", None, stored(dict.__getitem__(new, key))))

    def list(self, old: list[Any], new: CowList, keys: tuple[Hashable, ...]) -> None:
        """As :func:`flowlab.core.context.changes._diff_list`, from the lowest written position."""
        out, stored = self.out, self.stored
        n_old, n_new = len(old), len(new)
        if new.low >= n_old and n_new >= n_old:
            # only appended (as _diff_list's first case): no copy of the whole list
            path = keys if len(keys) == 1 and type(keys[0]) is str else labels(keys)
            for j in range(n_old, n_new):
                after = stored(list.__getitem__(new, j))
                out.append(_make_change((*path, _label(j)), "add", None, after, (*keys, _item(j))))
            return
        found: list[Change] = []
        _diff_list(old, list.copy(new), keys, found, min(new.low, n_old))
        for change in found:
            if change.op == "add":
                after = stored(change.after)
                change = _make_change(change.path, "add", None, after, change.keys)
            out.append(change)


def cow_diff_into(
    base: BaseModel,
    branch_ctx: BaseModel,
    out: list[Change],
    fields: Collection[str] | None = None,
) -> None:
    """Append what ``branch_ctx`` (made by :func:`flowlab.core.context.cow.cow_isolator` from ``base``)
    changed to ``out``: the changes :func:`flowlab.core.context.isolation.diff` finds for an eager copy.

    Examples
    --------
    >>> from pydantic import BaseModel
    >>> from flowlab.core.context.cow import cow_isolate
    >>> class Ctx(BaseModel):
    ...     scores: dict[str, int] = {}
    ...     log: list[str] = []
    >>> base = Ctx(scores={"a": 1}, log=["x"])
    >>> branch = cow_isolate(base)
    >>> branch.scores["b"] = 2; branch.log.append("y")
    >>> out = []
    >>> cow_diff_into(base, branch, out)
    >>> [(c.dotted, c.op, c.after) for c in out]
    [('scores.b', 'add', 2), ('log[1]', 'add', 'y')]
    """
    owner = branch_of(branch_ctx)
    if owner is None:
        raise ValueError("not a copy-on-write branch context (make it with cow_isolator)")
    owners = branches_in(branch_ctx, owner)
    for branch in owners:
        check_notes(branch)
    if any(map(wrote_shared, owners)):  # its storage may hide the write: diffed whole,
        _diff_model(base, view(branch_ctx), (), out, fields)  # as the branch sees itself
        return
    _Diff(owner, out).model(base, branch_ctx, (), fields)


def check_notes(branch: Branch) -> None:
    """Check the write notes of every container of ``branch`` before a diff trusts them.

    C code (``heapq``'s functions) and base-class calls (``list.append(xs, x)``) write to a
    container's storage without its methods, so without a note. A list whose items below its
    lowest noted write are not the base's, or a dict whose size its notes do not explain
    (:mod:`flowlab.core.context.tracking`), is marked written anywhere: the diff then reads it
    whole, and the containers holding it know it changed.
    """
    for obj in list(branch.owned.values()):
        kind = type(obj)
        if kind is CowList:
            origin, low, size = obj.origin, obj.low, list.__len__(obj)
            known = min(low, len(origin), size)
            if (not obj.dirty and size != len(origin)) or unwritten_below(origin, obj, low) < known:
                obj.mark(0)
        elif kind is CowDict:
            written = obj.written
            if written is not None and not notes_explain_size(obj.origin, obj, written):
                obj.written = None
                obj.touch()


def detach_context(ctx: BaseModel) -> BaseModel:
    """A plain deep copy of a copy-on-write branch context, as the branch sees it (for a merge
    function, which is handed whole branch contexts)."""
    branch = branch_of(ctx)
    if branch is None:
        return ctx
    if any(map(wrote_shared, branches_in(ctx, branch))):
        return view_context(ctx)
    detached: BaseModel = _Detacher(branch)(ctx)
    return detached


def detach_output(value: Any, ctx: BaseModel) -> Any:
    """A branch's output, detached (:func:`detach`) if it holds any of the branch's
    copy-on-write objects (``return ctx.history``); otherwise the very object returned."""
    branch = branch_of(ctx)
    if branch is None or type(value) in IMMUTABLE or not _holds(value, branch):
        return value
    if any(map(wrote_shared, branches_in(ctx, branch))):
        return view(value)
    return _Detacher(branch)(value)


def _holds(value: Any, branch: Branch) -> bool:
    """Whether ``value`` holds (or is) a copy-on-write object of ``branch``."""
    todo, seen = [value], set()
    models = branch.models
    while todo:
        item = todo.pop()
        kind = type(item)
        if kind in IMMUTABLE or id(item) in seen:
            continue
        seen.add(id(item))
        if kind is CowList or kind is CowDict:
            if item.branch is branch:
                return True
        elif id(item) in models:
            return True
        if isinstance(item, list):
            todo.extend(list.__iter__(item))
        elif isinstance(item, dict):
            todo.extend(dict.values(item))
        elif isinstance(item, (tuple, set, frozenset)):
            todo.extend(item)
        elif isinstance(item, BaseModel):
            todo.extend(item.__dict__.values())
    return False
