"""A memo of deterministic fits, keyed by the content of their inputs.

Training fits BTYD many times on the same customers: every backtest candidate fits it on the fold's
evaluation snapshot, and the hybrid fits one per training cutoff, where the folds share all but one
of their cutoffs. The fits are deterministic (fixed starts, no randomness), so a fit of the same
arrays with the same settings is looked up instead of run again: at a million customers ~40 of the
~60 BTYD fits of a training run. Keys are a BLAKE2b digest of every argument (an array's dtype, shape
and bytes; anything else by ``repr``), so a changed value, order or setting is a new fit. Results are
copied in and out: a caller that edits what it got cannot change the memo.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import numpy as np

__all__ = ["MAX_ENTRIES", "clear", "memo"]

MAX_ENTRIES = 256  # results are parameter sets: a few hundred bytes each

P = ParamSpec("P")
R = TypeVar("R")

_entries: OrderedDict[bytes, Any] = OrderedDict()
_running: dict[bytes, threading.Lock] = {}  # the fits being computed, by key
_lock = threading.Lock()


def _digest(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
    h = hashlib.blake2b(name.encode(), digest_size=20)
    for key, value in [*enumerate(args), *sorted(kwargs.items())]:
        h.update(f"|{key}=".encode())
        if isinstance(value, np.ndarray):
            h.update(f"{value.dtype.str}{value.shape}".encode())
            h.update(np.ascontiguousarray(value).data)
        else:
            h.update(repr(value).encode())
    return h.digest()


def memo(fn: Callable[P, R]) -> Callable[P, R]:
    """``fn`` looked up by its arguments' content; only results are kept (an error is raised again)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        key = _digest(fn.__qualname__, args, kwargs)
        with _lock:
            if key in _entries:
                _entries.move_to_end(key)
                return copy.deepcopy(_entries[key])  # type: ignore[no-any-return]
            mine = _running.setdefault(key, threading.Lock())
        with mine:  # the same fit asked for by two threads at once runs once; the second reads it
            with _lock:
                if key in _entries:
                    return copy.deepcopy(_entries[key])  # type: ignore[no-any-return]
            try:
                out = fn(*args, **kwargs)
                with _lock:
                    _entries[key] = copy.deepcopy(out)
                    while len(_entries) > MAX_ENTRIES:
                        _entries.popitem(last=False)
            finally:
                with _lock:
                    _running.pop(key, None)
        return out

    return wrapper


def clear() -> None:
    """Forget every memoised result (tests, and whoever needs a fit to run again)."""
    with _lock:
        _entries.clear()
