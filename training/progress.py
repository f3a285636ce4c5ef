"""How far the backtest is and how long the rest will take, from the fits already done.

Every candidate is fitted on every fold (folds x candidates fits). A fit's time grows with its
fold's training rows, so the time left is, per fit still to do, the seconds per training row its
candidate took on the folds already done times that fold's rows, shared by the fits that run side by
side. Until every candidate has been timed once (the first fold) there is no estimate: a guess would
be a made-up constant.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence

__all__ = ["BacktestProgress", "format_seconds"]


def format_seconds(seconds: float) -> str:
    """A duration in words a person reads at a glance: ``45 s``, ``3 min 05 s``, ``1 h 02 min``."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


class BacktestProgress:
    """The fits of a backtest: which are done, how long each took, and the time left.

    Parameters
    ----------
    fold_rows
        Training rows per fold index (what a fit's time scales with).
    candidates
        The candidates fitted on every fold, in order.
    clock
        Seconds (default :func:`time.perf_counter`; tests pass a fake clock).
    workers
        Fits that run side by side (the time left is shared among them).
    """

    def __init__(
        self,
        fold_rows: Mapping[int, int],
        candidates: Sequence[str],
        clock: Callable[[], float] | None = None,
        workers: int = 1,
    ) -> None:
        self.fold_rows = dict(fold_rows)
        self.candidates = tuple(candidates)
        self.clock = clock or time.perf_counter
        self.workers = max(1, int(workers))
        self.seconds: dict[tuple[int, str], float] = {}
        self._started: dict[tuple[int, str], float] = {}  # the fits running, by (fold, candidate)
        self._lock = threading.Lock()

    @property
    def total(self) -> int:
        """Fits in the backtest: folds x candidates."""
        return len(self.fold_rows) * len(self.candidates)

    @property
    def done(self) -> int:
        """Fits done (a fit that failed counts: its time was spent)."""
        return len(self.seconds)

    def start(self, fold: int, candidate: str) -> None:
        """A fit starts now."""
        with self._lock:
            self._started[(fold, candidate)] = self.clock()

    def finish(self, fold: int | None = None, candidate: str | None = None) -> float:
        """That fit (default: the one started last) is done, fitted or failed; returns its seconds."""
        with self._lock:
            if not self._started:
                raise RuntimeError("BacktestProgress.finish without start")
            key = (fold, candidate) if fold is not None and candidate is not None else list(self._started)[-1]
            started = self._started.pop(key)
            self.seconds[key] = seconds = self.clock() - started
            return seconds

    def seconds_left(self) -> float | None:
        """Estimated seconds for the fits not done yet; None until every candidate has been timed."""
        left = 0.0
        with self._lock:
            seconds = dict(self.seconds)
        for fold, rows in self.fold_rows.items():
            for candidate in self.candidates:
                if (fold, candidate) in seconds:
                    continue
                timed = [(s, self.fold_rows[f]) for (f, c), s in seconds.items() if c == candidate]
                if not timed:
                    return None
                per_row = sum(s for s, _ in timed) / max(1, sum(r for _, r in timed))
                left += per_row * rows
        return left / self.workers

    def status(self) -> str:
        """``7/15 fits, about 40 s left`` (``time left after fold 1`` until every candidate was timed)."""
        left = self.seconds_left()
        when = "time left after fold 1" if left is None else f"about {format_seconds(left)} left"
        return f"{self.done}/{self.total} fits, {when}"
