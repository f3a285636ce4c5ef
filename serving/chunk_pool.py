"""Scoring the batch's chunks on every core: worker processes, each with the scorer loaded once.

Most of a chunk's scoring is single-threaded Python and numpy (the interval draws, the reasons'
words, pandas), so one process keeps one core busy. :class:`ChunkScorer` cuts each chunk into one
slice per worker, scores the slices at once and joins them in order: the part file is the one the
chunk scored in one piece gives, as a customer's scores never depend on who else is in the frame
(the intervals draw common random numbers; tiers, actions and reasons are per row).

Workers are spawned, never forked (LightGBM's OpenMP and DuckDB's threads do not survive a fork),
load the scorer from the model folder the batch downloaded, and run numba's TreeSHAP on one thread
each (the other workers hold the other cores). Slices travel as Arrow IPC buffers (a pickled slice
carries its whole parent buffer) and scores come back as Arrow tables.
"""

from __future__ import annotations

import datetime as dt
import gc
import multiprocessing
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import fields
from pathlib import Path
from typing import Any

import numba
import numpy as np
import pandas as pd
import pyarrow as pa

from churnclv.models.gbm_base import set_lightgbm_threads
from churnclv.models.scorer import Scorer
from churnclv.serving.batch_errors import BatchError
from churnclv.serving.chunks import score_chunk
from churnclv.serving.model import LoadedModel

__all__ = ["MIN_PARALLEL_ROWS", "ChunkScorer"]

#: Below this many customers in the snapshot, chunks are scored in the batch's own process:
#: starting a worker (imports, the scorer, numba's cache) costs a few seconds.
MIN_PARALLEL_ROWS = 100_000

_worker: dict[str, LoadedModel] = {}  # the scorer of a worker process, loaded once by _start


def _scorer_folder(model: LoadedModel) -> Path | None:
    """The saved scorer inside the downloaded model folder (None: no folder, or not exactly one scorer)."""
    if model.path is None:
        return None
    found = list(Path(model.path).rglob("scorer.json"))
    return found[0].parent if len(found) == 1 else None


def _start(folder: str, fields: dict[str, Any]) -> None:
    numba.set_num_threads(1)
    # LightGBM's predictions on one thread too: on all cores each, the workers' OpenMP threads
    # outnumber the cores (the tasks run in this thread, so the setting holds for all of them)
    set_lightgbm_threads(1)
    # numpy asks the kernel for huge pages for every large array; where the kernel then compacts
    # memory to find them (THP "defrag" on madvise), each slice's fresh arrays cost more system time
    # than they save: measured on 300k customers in one process, 1.6 s against 1.9-2.3 s
    hugepages = getattr(getattr(getattr(np, "_core", None), "multiarray", None), "_set_madvise_hugepage", None)
    if hugepages is not None:  # numpy's own switch (NUMPY_MADVISE_HUGEPAGE=0 at its import)
        hugepages(False)
    # Arrow's buffers (each slice's IPC read, its pandas columns, the output arrays) from the C
    # heap, not Arrow's default mimalloc pool: there the kernel zeroed huge pages for fresh buffers
    # again and again (perf: 17 % of the workers' samples). 1M customers through the pool: system
    # time 21-25 s -> 8-10 s, scoring 22.8-24.6 s -> 19.6-20.9 s, the same scores
    pa.set_memory_pool(pa.system_memory_pool())
    _worker["model"] = LoadedModel(scorer=Scorer.load(folder), **fields)


def _score(buf: pa.Buffer, schema: pa.Schema, as_of: dt.date, prev: pd.Series | None, reasons: bool) -> pa.Table:
    # no garbage collection while a slice is scored: its reasons are millions of short-lived
    # objects, and the collector's passes over them cost ~10 % of the CPU time (measured on 300k
    # customers, 8.0-8.2 s of user time against 9.0-9.2 s); what cycles a slice leaves are
    # collected once the collector is back on
    gc.disable()
    try:
        frame = pa.ipc.read_record_batch(buf, schema).to_pandas()
        return score_chunk(_worker["model"], frame, as_of=as_of, prev=prev, reasons=reasons)
    finally:
        gc.enable()


class ChunkScorer:
    """Score chunks (Arrow record batches of the feature snapshot) into the batch's output schema.

    With ``workers`` > 1 and a model folder, each chunk is split over that many spawned processes
    (:meth:`submit` returns at once, the callable it returns waits); otherwise chunks are scored in
    this process when their result is asked for. Use as a context manager.
    """

    def __init__(self, model: LoadedModel, *, as_of: dt.date, reasons: bool, workers: int) -> None:
        self.model, self.as_of, self.reasons = model, as_of, reasons
        folder = _scorer_folder(model)
        self.workers = workers if folder is not None else 1
        self._pool: ProcessPoolExecutor | None = None
        if self.workers > 1:
            self._pool = ProcessPoolExecutor(
                self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start,
                initargs=(str(folder), {f.name: getattr(model, f.name) for f in fields(model) if f.name != "scorer"}),
            )

    def __enter__(self) -> ChunkScorer:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def submit(self, batch: pa.RecordBatch, prev: pd.Series | None) -> Callable[[], pa.Table]:
        """Start scoring ``batch`` (hysteresis against ``prev``); the returned callable gives its table."""
        if self._pool is None:
            return lambda: score_chunk(self.model, batch.to_pandas(), as_of=self.as_of, prev=prev, reasons=self.reasons)
        step = -(-batch.num_rows // self.workers)
        futures: list[Future[pa.Table]] = [
            self._pool.submit(_score, batch.slice(at, step).serialize(), batch.schema, self.as_of, prev, self.reasons)
            for at in range(0, max(batch.num_rows, 1), step or 1)
        ]

        def result() -> pa.Table:
            try:
                return pa.concat_tables([f.result() for f in futures]).combine_chunks()
            except BrokenProcessPool:
                raise BatchError(
                    "a scoring worker process died (killed for memory?): run again with --resume and a smaller "
                    "--chunk-size"
                ) from None

        return result
