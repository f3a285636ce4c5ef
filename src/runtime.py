"""Process-wide settings of a churnclv job, set once where the process starts (the CLI).

Exit: Python's finalization runs the garbage collector over every object still alive, the imported
libraries' included (MLflow, scikit-learn, pandas, ...): 1.25-1.28 s after a 1M batch, most of it in
the collector's passes (``perf``: ``gc_collect_main`` and its traversals). :func:`freeze_at_exit`
moves them out of the collector's reach at exit (``gc.freeze``), and the exit takes 0.13 s. Nothing
is lost: files are closed by the jobs themselves, ``atexit`` handlers and ``weakref.finalize``
callbacks still run, and memory goes back to the system with the process.

Transparent huge pages: DuckDB (``Allocator::TryAllocateHuge``), numpy (arrays of 4 MB and more)
and Arrow's mimalloc pool ask the kernel for huge pages for their large buffers (``madvise``).
Where the kernel then compacts memory to find them (``/sys/kernel/mm/transparent_hugepage/defrag``
on ``madvise``, the default of many distributions), every fresh buffer costs a 2 MB zeroing in the
kernel, again each time the allocator gives memory back and takes it anew. Measured on this
project's 2-core machine, 1M customers as of one date, the feature stage of the batch:
12.2-13.8 s and 3.6-3.9 s of system time without huge pages, 14.5-17.2 s and 7.5-9.4 s with them
(three runs each, alternating); the whole 1M batch 45.1 against 51.9 s (medians of three), training
at 1M 256-262 s against 299-309 s (peak memory 2.90-3.03 GB against 2.76-2.77 GB); the scores are
the same. ``CHURNCLV_HUGE_PAGES=on`` keeps the kernel's default. The HTTP service (``churnclv serve``)
keeps it too: its BentoML server, which allocates no large buffers, served fewer requests a second
without huge pages (``churnclv.cli.KEEPS_HUGE_PAGES``).
"""

from __future__ import annotations

import atexit
import ctypes
import functools
import gc
import logging
import os
import sys

log = logging.getLogger(__name__)

__all__ = ["HUGE_PAGES_ENV", "disable_huge_pages", "freeze_at_exit", "huge_pages_enabled"]

#: ``on`` (or ``1``, ``true``, ``yes``) keeps transparent huge pages for a churnclv process.
HUGE_PAGES_ENV = "CHURNCLV_HUGE_PAGES"

_PR_SET_THP_DISABLE = 41  # <linux/prctl.h>
_PR_GET_THP_DISABLE = 42


def _prctl(option: int, arg: int) -> int | None:
    """``prctl(option, arg, 0, 0, 0)`` through the C library, or None off Linux."""
    if not sys.platform.startswith("linux"):
        return None
    return int(ctypes.CDLL(None, use_errno=True).prctl(option, arg, 0, 0, 0))


def disable_huge_pages() -> bool:
    """Stop the kernel backing this process with transparent huge pages (Linux; elsewhere nothing).

    The setting (``prctl(PR_SET_THP_DISABLE)``) holds for the whole process and is inherited by the
    processes it starts, spawned ones included (the batch's scoring workers). Returns whether huge
    pages are now off for this process; ``False`` when ``CHURNCLV_HUGE_PAGES=on`` or the kernel refuses.
    """
    if os.environ.get(HUGE_PAGES_ENV, "").strip().lower() in {"on", "1", "true", "yes"}:
        return False
    status = _prctl(_PR_SET_THP_DISABLE, 1)
    if status is None:
        return False
    if status != 0:
        log.debug("transparent huge pages stay on: prctl failed (errno %d)", ctypes.get_errno())
        return False
    return True


def huge_pages_enabled() -> bool:
    """Whether the kernel may back this process with transparent huge pages (``False``: off by
    :func:`disable_huge_pages` or a parent that set it; always ``True`` off Linux)."""
    return _prctl(_PR_GET_THP_DISABLE, 0) != 1


@functools.cache
def freeze_at_exit() -> None:
    """At exit, freeze every object still alive out of the garbage collector (``gc.freeze``) before
    Python's finalization collects them all (registered once per process; see the module doc)."""
    atexit.register(gc.freeze)
