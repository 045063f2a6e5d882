"""What the layers above plug into the engine: the deadlock watch, the progress bar, the live view.

The engine runs pipelines; it draws nothing and knows no study layer. Two run options need
those layers all the same: ``detect_deadlocks=True`` wraps the run in the deadlock lab's
:func:`~flowlab.study.deadlock.watch`, ``progress=True`` adds the UI's tqdm instrument, and ``live=True`` its live view.
Rather than importing them (an upward arrow), the engine asks this registry, and the package
facade (``flowlab/__init__.py``) registers a loader for each when ``flowlab`` is imported. The
loaders import lazily, so neither the study layer nor tqdm is loaded until a run asks for it.

Examples
--------
>>> from flowlab.engine import plugins
>>> sorted(plugins.names())
['deadlock_watch', 'live_view', 'progress_bar']
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flowlab.errors import FlowlabError

_LOADERS: dict[str, Callable[[], Any]] = {}


def register(name: str, loader: Callable[[], Any]) -> None:
    """Register ``loader``, a no-argument callable that returns the plug-in called ``name``."""
    _LOADERS[name] = loader


def names() -> list[str]:
    """The names registered so far."""
    return list(_LOADERS)


def load(name: str) -> Any:
    """The plug-in called ``name``, loaded by its registered loader.

    Raises
    ------
    FlowlabError
        Nothing registered under ``name`` (the engine was imported without the facade).
    """
    try:
        loader = _LOADERS[name]
    except KeyError:
        raise FlowlabError(
            f"no plug-in {name!r} is registered (registered: {sorted(_LOADERS)}); "
            "import flowlab (the package) rather than flowlab.engine alone"
        ) from None
    return loader()
