"""LightGBM calls of different thread counts never run at the same time (:class:`ThreadSettingGate`).

LightGBM keeps one thread setting for the whole process (``LGBM_DEFAULT_NUM_THREADS``): every call
that takes ``num_threads`` sets it (0: all cores), and a call sizes its per-thread buffers from it
when it builds a Dataset or a predictor, then reads it again when its parallel loop starts. Two
calls of the same count may overlap (the backtest's fits, one thread each); a call at another
count changes the setting between those two reads and the loop writes past the buffers (seen as
segfaults in ``SparseBin::Push`` in the backtest, whatever else it overwrote silently). In the service
the precomputed answers predict a snapshot at all cores on the scoring thread while a reload
scores its probe customer at one thread on another.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["LIGHTGBM_CALLS", "ThreadSettingGate"]


class ThreadSettingGate:
    """Admits any number of callers asking for one thread count, and no caller asking for another
    until they are all out."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._threads = 0  # the count of the callers inside (read only while any is)
        self._inside = 0

    def _admit(self, threads: int) -> bool:
        if self._inside and self._threads != threads:
            return False
        self._threads, self._inside = threads, self._inside + 1
        return True

    def try_enter(self, threads: int) -> bool:
        """Enter at ``threads`` if no caller of another count is inside; pair a True with :meth:`leave`."""
        with self._cond:
            return self._admit(threads)

    def leave(self) -> None:
        """Leave after :meth:`try_enter` returned True (what :meth:`calls` does on exit)."""
        with self._cond:
            if self._inside == 0:
                raise RuntimeError("ThreadSettingGate.leave: nobody is inside")
            self._inside -= 1
            self._cond.notify_all()

    @contextmanager
    def calls(self, threads: int) -> Iterator[None]:
        """Wait until no caller of another thread count is inside, then run the block inside."""
        with self._cond:
            self._cond.wait_for(lambda: self._admit(threads))
        try:
            yield
        finally:
            self.leave()


#: The one gate of every LightGBM call of churnclv (fits, predictions, explanations).
LIGHTGBM_CALLS = ThreadSettingGate()
