"""Chunks scored by worker processes: the same part files as scored in the batch's own process.

The reference is ``batch_out`` (tests/serving/conftest.py): the batch job on the 1,500-customer
``small_world``, scored in its own process (a base that small never starts workers).
"""

from __future__ import annotations

import contextvars
import datetime as dt
from dataclasses import replace
from pathlib import Path

import duckdb
import numba
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from churnclv.models import gbm_base
from churnclv.serving import chunk_pool
from churnclv.serving.chunk_pool import ChunkScorer
from churnclv.serving.model import load_model
from churnclv.serving.snapshots import FEATURES_FILE, features_path, part_files, scores_dir
from churnclv.serving.stages import StageTimer, score_chunks

pytestmark = pytest.mark.integration

AS_OF = dt.date(2025, 10, 2)
HOLDOUT = ["campaign", "holdout"]  # filled by the holdout stage after the chunks (batch_out runs a campaign)


@pytest.mark.slow
def test_workers_write_the_parts_the_batch_process_writes(serving_store: dict, batch_out: Path, tmp_path: Path) -> None:
    model = load_model(serving_store["model_uri"], serving_store["tracking_uri"], dst=tmp_path / "model")
    tmp = tmp_path / "partition"
    tmp.mkdir()
    (tmp / FEATURES_FILE).write_bytes(features_path(batch_out, AS_OF).read_bytes())
    reference = part_files(scores_dir(batch_out, AS_OF))
    chunk = pq.ParquetFile(reference[0]).metadata.num_rows  # the reference's chunks, so the files compare one to one
    prog: dict = {"chunks": {}}
    committed: list[int] = []
    timer = StageTimer()
    with duckdb.connect() as con:
        written = score_chunks(
            tmp, prog, model, AS_OF, chunk, None, con, timer, False, True, committed.append, workers=2
        )
    got = part_files(tmp)
    assert written == sum(pq.ParquetFile(p).metadata.num_rows for p in reference)
    assert [p.name for p in got] == [p.name for p in reference]
    assert committed == list(range(len(reference)))  # committed in order
    assert sorted(prog["chunks"]) == sorted(str(i) for i in range(len(reference)))
    for mine, theirs in zip(got, reference, strict=True):
        a, b = pq.read_table(mine), pq.read_table(theirs)
        assert a.column_names == b.column_names
        differ = [c for c in a.column_names if not a.column(c).equals(b.column(c))]
        assert differ == HOLDOUT, mine.name
    assert timer.seconds["score"] > 0 and timer.seconds["write"] > 0


def test_a_model_without_a_folder_scores_in_this_process(serving_store: dict) -> None:
    model = load_model(serving_store["model_uri"], serving_store["tracking_uri"])
    assert model.path is None
    with ChunkScorer(model, as_of=AS_OF, reasons=True, workers=4) as scorer:
        assert scorer.workers == 1
    with ChunkScorer(replace(model, path="/nonexistent"), as_of=AS_OF, reasons=True, workers=4) as scorer:
        assert scorer.workers == 1  # no scorer in the folder: nothing a worker could load


def test_a_worker_predicts_on_one_thread(serving_store: dict, tmp_path: Path) -> None:
    """Each worker holds one core: LightGBM and numba on one thread each; numpy asks for no huge
    pages and Arrow allocates from the C heap (what the worker's start sets)."""
    model = load_model(serving_store["model_uri"], serving_store["tracking_uri"], dst=tmp_path / "model")
    folder = chunk_pool._scorer_folder(model)
    assert folder is not None
    numba_threads = numba.get_num_threads()
    hugepages = np._core.multiarray._set_madvise_hugepage  # returns the setting it replaces
    huge = hugepages(True)

    pool = pa.default_memory_pool()

    def start() -> tuple[int, int, bool, str]:
        chunk_pool._start(str(folder), {"name": model.name, "version": model.version, "alias": None, "model_uri": "m"})
        return gbm_base._THREADS.get(), numba.get_num_threads(), hugepages(False), pa.default_memory_pool().backend_name

    try:
        assert contextvars.copy_context().run(start) == (1, 1, False, "system")
    finally:
        numba.set_num_threads(numba_threads)
        hugepages(huge)
        pa.set_memory_pool(pool)
    assert gbm_base._THREADS.get() == 0  # set in the worker's context only
