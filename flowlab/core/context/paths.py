"""How a path into a context is written: one string per path, and no two paths share one.

A path is a field name, then dict keys and list positions. It is written as Python would reach
it, with a dot before a plain key: ``scores.alice``, ``tags[1]``, ``docs.d1.words``. A key that
a dot could not show apart from a nested path is written in brackets, as Python writes it:

* a ``str`` key that holds ``.`` or ``[``, or is empty: ``counts["data.csv"]``, ``d[""]``
  (quoted as JSON quotes it);
* a key that is not a ``str``: ``by_id[1]``, ``pairs[(1, 2)]``, ``flags[None]`` (its ``repr``).

So ``counts["a.b"]`` (one key) and ``counts.a.b`` (two), ``d[1]`` (the int) and ``d.1`` (the
string ``"1"``) are different paths, and each frame row names exactly one place. List positions
are ``[i]``, as always.

:func:`split` takes a written path apart again (for plots that group paths by their parents).
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass

__all__ = ["Item", "dotted", "join", "label", "labels", "split"]


@dataclass(frozen=True, slots=True)
class Item:
    """A list position inside a change's key path (``Item(2)`` renders as ``[2]``)."""

    index: int

    def __str__(self) -> str:
        return f"[{self.index}]"


def label(key: Hashable) -> str:
    """How one key of a path is written (see the module docstring).

    Examples
    --------
    >>> label("alice"), label("data.csv"), label(""), label(1), label("1"), label((1, 2))
    ('alice', '["data.csv"]', '[""]', '[1]', '1', '[(1, 2)]')
    """
    if type(key) is str:
        if key and "." not in key and "[" not in key:
            return key
        return f"[{json.dumps(key, ensure_ascii=False)}]"
    if type(key) is Item:  # a list position
        return f"[{key.index}]"
    return f"[{key!r}]"


def labels(keys: Iterable[Hashable]) -> tuple[str, ...]:
    """Every key of a path written (:func:`label`).

    Examples
    --------
    >>> labels(("counts", "a.b"))
    ('counts', '["a.b"]')
    """
    return tuple(map(label, keys))


def join(parts: Sequence[str]) -> str:
    """Written keys (:func:`label`) as one path: a dot before each plain key.

    Examples
    --------
    >>> join(("docs", "d1", "words")), join(("tags", "[1]")), join(("counts", '["a.b"]'))
    ('docs.d1.words', 'tags[1]', 'counts["a.b"]')
    """
    out = ""
    for part in parts:
        if part.startswith("[") or not out:
            out += part
        else:
            out += "." + part
    return out


def dotted(keys: Sequence[Hashable]) -> str:
    """A path's real keys as one string (:func:`label` each, then :func:`join`).

    Examples
    --------
    >>> dotted(("docs", "d1", "words")), dotted(("counts", 3)), dotted(("counts", "a.b"))
    ('docs.d1.words', 'counts[3]', 'counts["a.b"]')
    """
    if all(type(k) is str for k in keys):
        text = ".".join(keys)  # type: ignore[arg-type]
        # plain keys only (no key holds a dot or a bracket, none is empty): written as they are
        if text.count(".") == len(keys) - 1 and "[" not in text and all(keys):
            return text
    return join(labels(keys))


def split(path: str) -> list[str]:
    """A written path's parts, each as :func:`label` wrote it (the inverse of :func:`join`).

    Examples
    --------
    >>> split('counts["a.b"].n'), split("docs[0].tags[1]"), split("d[(1, 'x]')]")
    (['counts', '["a.b"]', 'n'], ['docs', '[0]', 'tags', '[1]'], ['d', "[(1, 'x]')]"])
    """
    parts: list[str] = []
    i, n = 0, len(path)
    while i < n:
        if path[i] == ".":
            i += 1
        if i < n and path[i] == "[":
            end = _closing(path, i)
            parts.append(path[i : end + 1])
            i = end + 1
            continue
        j = i
        while j < n and path[j] not in ".[":
            j += 1
        parts.append(path[i:j])
        i = j
    return parts


def _closing(path: str, start: int) -> int:
    """The index of the ``]`` that closes the bracket at ``start`` (quotes and nesting skipped)."""
    depth, quote, i = 0, "", start
    while i < len(path):
        ch = path[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return len(path) - 1
