"""Copy-on-write branch contexts: a branch pays for what it touches, not for what the context holds.

:func:`cow_isolator` plans, once per step, how to hand every branch a context that behaves like
an eager deep copy of the step's base context (its writes are its own; siblings and the caller
never see them) while sharing the base's data until the branch touches it.

The mechanism
-------------
* A branch's context is a new instance of the model whose field values are the branch's own:
  immutable values (``int``, ``str``, ... and tuples / frozensets of them) are the base's very
  objects, as a deep copy would share them; every ``list`` and ``dict`` is a :class:`CowList` /
  :class:`CowDict`, a real ``list`` / ``dict`` subclass holding a *shallow* copy of the base
  container (its item pointers: ~0.1 µs per item, no item is copied); a nested model is such a
  copy, one level at a time; anything else (a set, a tuple holding lists, a numpy array, an
  arbitrary object) is deep-copied.
* The items of a copy-on-write container stay the base's objects ("raw") until Python code asks
  for one (``x[i]``, iteration, ``.get``, ``.values()``, ``.pop``, slices, ``copy``, ``+``,
  ``|``, pickling ...): the item is then *adopted* — replaced in the container's storage by the
  branch's own object for it, made the same way (a list item becomes a :class:`CowList`, a model
  item a model copy, a numpy array a deep copy) — and that object is handed out. Python code
  therefore only ever holds the branch's own objects, and writing to one never reaches the base.
* One memo per branch (``id(base object) -> branch object``, the memo ``copy.deepcopy`` uses too)
  gives a base object met twice one branch object, so objects shared by two fields or two items
  stay shared in the branch, as in a deep copy.

Why it is sound
---------------
1. *The storage reads right.* C code that reads a container directly (``json.dumps``,
   ``list()``, ``sorted``, pydantic's ``model_dump``, ``==``) sees either the branch's adopted
   objects or raw base objects. A raw base object is one the branch never received, so it never
   wrote to it; the base does not change during a step; so its value is the value the branch
   sees. The one way this could fail is a base object reachable from two places (aliasing): the
   branch could adopt and change it through one place while the other still holds it raw. A
   container whose items may be referenced from elsewhere (``sys.getrefcount`` above that of a
   single reference, checked once per base container and step, before any branch copied it)
   adopts those items when its copy is made, so no raw item of a branch is ever shared. Nor can
   the branch store one raw item twice itself: the methods that could (``*=``, ``sort``, ``+=``
   / ``extend`` / slice assignment from the list itself) adopt the items first. A raw item may
   still *hold* a shared object (``ctx.handle = ctx.docs[0]["tags"]``, ``docs[0]`` unread):
   such objects are noted, and a branch that wrote to one is diffed, and its output and context
   detached, through its methods whole (:mod:`flowlab.core.context.cow_sharing`); a C reader
   of the storage inside that branch (``repr``/``print``, ``==``) still reads the base's object.
2. *Writes stay in the branch.* Every mutating method of the two classes writes only the
   branch's own storage; nested writes go to adopted objects, which are the branch's.
3. *Tracking falls out of it.* Every write marks where it wrote (a list: the lowest index
   written, as :class:`~flowlab.core.context.tracking.TrackedList`; a dict: the keys written) and, the first
   time, marks the container's place in each container that adopted it (its ``parents``), up to
   the field. An adopted object that cannot report its writes (a model copy, a deep copy) marks
   its place when it is handed out. So the diff (:mod:`flowlab.core.context.cow_diff`) reads only the touched
   places of touched fields, and compares what it reads by value.
4. *Nothing raw leaves the branch.* The values the diff reports as written are *detached*:
   plain containers and models rebuilt from the branch's view, raw base objects inside them
   deep-copied (:func:`flowlab.core.context.cow_diff.detach`) — what an eager copy would have handed the merge.

What is not lazy
----------------
A model has no hook on reading a field (its fields live in its ``__dict__``), so a branch's
top-level fields are made when the branch starts: the shallow copy of every list and dict field
(its pointers, not its items) and the deep copy of every other mutable field (a set, an array, an
object) are made then, not on first access. What is lazy is everything below them. So one write to
a 100,000-key dict field still costs that dict's shallow copy (~0.36 ms), read or not; and an
eager copy of the same field costs the same, which is why the engine only copies on write when
the context holds nested data worth sharing (:func:`copy_on_write_pays`), and why a Parallel
nested inside a branch copies eagerly (its base is a branch's context).

Hence opt-in (``isolation="cow"``; the default is eager). Not covered by the lazy path: C functions that take a
``list`` and hand its stored items to Python code without going through its methods
(``heapq``'s functions, ``numpy.array(list_of_dicts)``, pydantic validation of a ``list[Any]``
or ``dict[str, Any]`` built from a branch's container): they can hand out a raw base object,
and mutating *that* object reaches the base. The step catches it when its branches end
(:mod:`~flowlab.core.context.cow_guard`): it fails with ``IsolationBreach``, nothing merged, the
context put back. Writes around the methods are noticed before
the diff (:func:`~flowlab.core.context.cow_diff.check_notes`), as :mod:`~flowlab.core.context.tracking` says.
Contexts whose lists and dicts hold only immutable values (strings, numbers) have no raw mutable
item at all, so none of this applies to them.
"""

from __future__ import annotations

import copy
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel

from flowlab.core.context.cow_containers import IMMUTABLE, CowDict, CowList
from flowlab.core.context.cow_sharing import Plan, held_elsewhere
from flowlab.errors import ConfigError

__all__ = [
    "Branch",
    "CowDict",
    "CowList",
    "branch_of",
    "copy_on_write_pays",
    "cow_isolate",
    "cow_isolator",
]

M = TypeVar("M", bound=BaseModel)

_MISS: Any = object()
_setattr = object.__setattr__


def _deep_immutable(value: Any) -> bool:
    """Whether a tuple / frozenset holds only immutable values (at any depth)."""
    for item in value:
        kind = type(item)
        if kind in IMMUTABLE:
            continue
        if kind in (tuple, frozenset) and _deep_immutable(item):
            continue
        return False
    return True


class Branch:
    """One branch's copy-on-write state: its memo and the objects that are its own.

    Attributes
    ----------
    memo : dict
        ``id(base object) -> the branch's object for it`` (also ``copy.deepcopy``'s memo).
    owned : dict
        ``id(object) -> object`` for every mutable object the branch holds as its own: adopted
        objects, deep copies, and whatever the branch stored into a container.
    models : dict
        ``id(model copy) -> the base model it copies``.
    shared : dict
        ``id(own object) -> (base object, own object)`` for the objects made for base objects
        held in more than one place (:mod:`flowlab.core.context.cow_sharing`).
    """

    __slots__ = ("aliased", "memo", "models", "owned", "plan", "shared")

    def __init__(self, plan: Plan | None = None) -> None:
        self.memo: dict[int, Any] = {}
        self.owned: dict[int, Any] = {}
        self.models: dict[int, BaseModel] = {}
        self.shared: dict[int, tuple[Any, Any]] = {}
        self.aliased: bool | None = None  # see cow_sharing.wrote_shared
        self.plan = plan if plan is not None else Plan()

    # -- adoption ---------------------------------------------------------------------------
    def adopt(self, raw: Any, parent: Any, key: Any) -> Any:
        """The branch's object for ``raw``, found at ``key`` of ``parent`` (``None``: a field)."""
        ident = id(raw)
        if ident in self.owned:
            return raw
        got = self.memo.get(ident, _MISS)
        if got is _MISS:
            got = self._make(raw)
            if got is raw:  # deep-immutable: shared, as a deep copy shares it
                return raw
        else:
            self.owned[id(got)] = got  # e.g. made inside a deep copy of something else
        if parent is not None:
            kind = type(got)
            if kind is CowList or kind is CowDict:
                parents = got.parents
                if parents is None:
                    got.parents = [(parent, key)]
                else:
                    parents.append((parent, key))
                if got.dirty:
                    parent.mark(key)
            else:  # cannot report its writes: its place counts as written once handed out
                parent.mark(key)
        return got

    def _make(self, raw: Any) -> Any:
        kind = type(raw)
        new: Any
        # which items may be referenced from elsewhere: read before this copy adds a reference
        if kind is list:
            shared = self.plan.shared_items(raw, raw, lambda: range(len(raw)))
            new = CowList(raw)
            new.start(self, raw)
            self._own(raw, new)
            for index in shared:
                self.note_shared(raw[index], new._get(index))
            return new
        if kind is dict:
            shared = self.plan.shared_items(raw, raw.values(), raw.keys)
            new = CowDict(raw)
            new.start(self, raw)
            self._own(raw, new)
            for key in shared:
                self.note_shared(raw[key], new._get(key, raw[key]))
            return new
        if isinstance(raw, BaseModel):
            return self.copy_model(raw)
        if kind in (tuple, frozenset) and _deep_immutable(raw):
            return raw
        if kind is set and IMMUTABLE.issuperset(map(type, raw)):
            new = raw.copy()
        else:
            kept = len(self.memo.get(id(self.memo), ()))
            try:
                new = copy.deepcopy(raw, self.memo)
                if held_elsewhere(raw, self.memo, kept):  # something inside is held elsewhere
                    self.shared[id(new)] = (raw, new)
            except Exception as err:
                raise ConfigError(
                    f"cannot isolate a value of type {type(raw).__name__} in a branch's "
                    f"context: it cannot be deep-copied ({err}). HINT: keep a picklable handle "
                    "(a name, a factory) in the context instead of the live object."
                ) from err
        self._own(raw, new)
        return new

    def _own(self, raw: Any, new: Any) -> None:
        self.memo[id(raw)] = new
        self.owned[id(new)] = new

    def note_shared(self, raw: Any, own: Any) -> None:
        """Note ``own``, made for ``raw``, a base object held in more than one place."""
        if own is not raw:
            self.shared[id(own)] = (raw, own)

    def own(self, value: Any) -> None:
        """Note ``value`` (stored into a container by the branch) as the branch's own."""
        if type(value) not in IMMUTABLE:
            self.owned[id(value)] = value

    def field(self, value: Any) -> Any:
        """The branch's value for a model field holding ``value``."""
        return value if type(value) in IMMUTABLE else self.adopt(value, None, None)

    def copy_model(
        self, model: BaseModel, include_keys: Sequence[str] | None = None, *, root: bool = False
    ) -> Any:
        """A copy of ``model`` whose field values are the branch's (see the module docstring).

        ``root``: the branch's context itself, which the branch must not keep alive (the
        registry of :func:`branch_of` holds the branch while its context lives).
        """
        cls = type(model)
        new = cls.__new__(cls)
        if not root:
            self._own(model, new)
        self.models[id(new)] = model
        field = self.field
        fields_set = set(model.__pydantic_fields_set__)
        base = model.__dict__
        shared = self.plan.shared_items(base, base.values(), base.keys)
        if include_keys is None:
            values = {name: field(value) for name, value in base.items()}
        else:
            wanted = set(include_keys)
            values = {}
            for name, info in cls.model_fields.items():
                if name in wanted or info.is_required():
                    values[name] = field(model.__dict__[name])
                else:
                    values[name] = info.get_default(
                        call_default_factory=True, validated_data=values
                    )
            fields_set &= wanted
            shared = [name for name in shared if name in wanted]
        for name in shared:  # a field holding an object held elsewhere too
            self.note_shared(base[name], values[name])
        extra = base_extra = model.__pydantic_extra__
        if base_extra is not None:
            shared = self.plan.shared_items(base_extra, base_extra.values(), base_extra.keys)
            extra = {name: field(value) for name, value in base_extra.items()}
            for name in shared:
                self.note_shared(base_extra[name], extra[name])
        private = model.__pydantic_private__
        if private is not None:
            try:
                private = copy.deepcopy(private, self.memo)
            except Exception as err:
                raise ConfigError(
                    f"cannot isolate {cls.__name__}'s private attributes: they cannot be "
                    f"deep-copied ({err})."
                ) from err
        _setattr(new, "__dict__", values)
        _setattr(new, "__pydantic_extra__", extra)
        _setattr(new, "__pydantic_private__", private)
        _setattr(new, "__pydantic_fields_set__", fields_set)
        return new


# ---- entry points ---------------------------------------------------------------------------
def cow_isolate(ctx: M, include_keys: Sequence[str] | None = None) -> M:
    """A copy-on-write branch context of ``ctx`` (see the module docstring).

    Examples
    --------
    >>> from pydantic import BaseModel
    >>> class Ctx(BaseModel):
    ...     history: list[dict[str, str]] = []
    >>> base = Ctx(history=[{"role": "user", "text": "hi"}])
    >>> branch = cow_isolate(base)
    >>> branch.history[0]["text"] = "hello"
    >>> branch.history.append({"role": "bot", "text": "yes?"})
    >>> base.history, len(branch.history), type(branch.history).__name__
    ([{'role': 'user', 'text': 'hi'}], 2, 'CowList')
    """
    return cow_isolator(ctx, include_keys)()


def cow_isolator(ctx: M, include_keys: Sequence[str] | None = None) -> Callable[[], M]:
    """A function returning a new copy-on-write branch context of ``ctx`` per call.

    Parameters
    ----------
    ctx : BaseModel
        The step's base context; it must not change while the function or its copies are in use
        (the engine guarantees it for a step's branches).
    include_keys : sequence of str, optional
        Give the branch only these fields; the others take their defaults, as
        :func:`flowlab.core.context.isolation.isolate` does.

    Returns
    -------
    callable
        ``copy()`` -> a new branch context; diff it with :func:`flowlab.core.context.cow_diff.cow_diff_into`.
    """
    if include_keys is not None:
        from flowlab.core.context.isolation import check_include_keys

        check_include_keys(type(ctx), include_keys)
    plan = Plan()

    def copy_ctx() -> M:
        branch = Branch(plan)
        new: M = branch.copy_model(ctx, include_keys, root=True)
        key = id(new)
        registry = _BRANCHES  # (still reachable from the callback at interpreter exit)
        registry[key] = (weakref.ref(new, lambda _: registry.pop(key, None)), branch)
        return new

    return copy_ctx


def copy_on_write_pays(ctx: BaseModel, *, budget: int = 64) -> bool:
    """Whether copying ``ctx`` on write saves work over an eager copy.

    Both behave as a deep copy; they differ in cost. Immutable fields are shared by both, and a
    list or dict of immutable values is one shallow copy in both (the eager copy of
    :func:`flowlab.core.context.isolator.isolator`), so only the rest — nested containers, models, other
    objects — can be saved. Below ``budget`` items there, the eager copy is cheaper than the
    copy-on-write bookkeeping (a few microseconds per branch).

    Examples
    --------
    >>> from pydantic import BaseModel
    >>> class Ctx(BaseModel):
    ...     tags: list[str] = []
    ...     docs: list[dict[str, str]] = []
    >>> copy_on_write_pays(Ctx(tags=["x"] * 1000)), copy_on_write_pays(Ctx(docs=[{}] * 100))
    (False, True)
    """
    todo: list[Any] = []
    extra = ctx.__pydantic_extra__
    for value in [*ctx.__dict__.values(), *(extra.values() if extra else ())]:
        kind = type(value)
        if kind in IMMUTABLE:
            continue
        if (kind is dict and IMMUTABLE.issuperset(map(type, value.values()))) or (
            kind is list and IMMUTABLE.issuperset(map(type, value))
        ):
            continue
        todo.append(value)
    seen = 0
    while todo:
        value = todo.pop()
        if isinstance(value, BaseModel):
            items: Iterable[Any] = value.__dict__.values()
        elif isinstance(value, dict):
            items = value.values()
        elif isinstance(value, (list, tuple, set, frozenset)):
            items = value
        else:
            items = ()
        seen += 1
        for item in items:
            seen += 1
            if seen >= budget:
                return True
            if type(item) not in IMMUTABLE:
                todo.append(item)
    return seen >= budget


# A branch context's Branch, while the context lives (models are not hashable: by id).
_BRANCHES: dict[int, tuple[weakref.ref[BaseModel], Branch]] = {}


def branch_of(ctx: BaseModel) -> Branch | None:
    """The :class:`Branch` of a context made by :func:`cow_isolator`, else ``None``."""
    entry = _BRANCHES.get(id(ctx))
    if entry is None or entry[0]() is not ctx:
        return None
    return entry[1]
