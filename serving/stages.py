"""The stages that fill a batch run's temp partition: the feature snapshot, then the scored chunks
(DuckDB, chunk by chunk, resumable), or both on Spark; and the timer of every stage."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import shutil
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from churnclv.features import FeatureConfig, connect, write_features
from churnclv.models.gbm_base import usable_cores
from churnclv.redaction import redact_text
from churnclv.serving.atomic_files import write_json, write_parquet
from churnclv.serving.batch_errors import BatchError
from churnclv.serving.checkpoints import PROGRESS_FILE
from churnclv.serving.chunk_pool import MIN_PARALLEL_ROWS, ChunkScorer
from churnclv.serving.chunks import check_order
from churnclv.serving.migration import prev_tiers
from churnclv.serving.model import LoadedModel
from churnclv.serving.snapshots import FEATURES_FILE, OUTPUT_SCHEMA, PART

log = logging.getLogger(__name__)

__all__ = ["StageTimer", "features_duckdb", "score_chunks", "spark_run"]


class StageTimer:
    """Seconds per stage (``with timer("score"): ...``; a stage timed twice adds up)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        """Time the body as ``stage``."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - start


def _progress_bar(enabled: bool) -> Any:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("customers"),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not enabled,
        transient=False,
    )


def features_duckdb(
    tmp: Path,
    prog: dict[str, Any],
    clean: Path,
    day: dt.date,
    memory_limit: str,
    progress: bool,
    config: FeatureConfig,
) -> None:
    """Write the feature snapshot into the temp partition (skipped when a resumed run has it)."""
    if prog["features"] and (tmp / FEATURES_FILE).is_file():
        return
    staging = tmp / f".{FEATURES_FILE}.tmp"
    con = connect(memory_limit=memory_limit, temp_directory=tmp / ".spill")
    # DuckDB's own bar is the only sign of life during the feature stage; in a log file it is noise
    con.raw_sql(f"SET enable_progress_bar = {str(progress and sys.stderr.isatty()).lower()}")
    try:
        write_features(clean, day, staging, con=con, config=config)  # the model's feature configuration
    except ValueError as exc:
        raise BatchError(f"features as of {day}: {redact_text(str(exc))}") from None
    finally:
        con.disconnect()
    shutil.rmtree(tmp / ".spill", ignore_errors=True)
    os.replace(staging, tmp / FEATURES_FILE)
    prog["features"] = True
    write_json(tmp / PROGRESS_FILE, prog)


def score_chunks(
    tmp: Path,
    prog: dict[str, Any],
    model: LoadedModel,
    day: dt.date,
    chunk_size: int,
    prev: Path | None,
    con: duckdb.DuckDBPyConnection,
    timer: StageTimer,
    progress: bool,
    reasons: bool,
    after_chunk: Callable[[int], None] | None,
    workers: int | None = None,
) -> int:
    """Score the feature snapshot chunk by chunk into ``part-NNNNN.parquet`` files; returns the rows.

    A chunk the progress file lists (a resumed run) is kept; ``prev`` (hysteresis) is the previous
    partition, whose tiers each chunk's customers keep unless their score clears the margin.
    ``workers`` processes share each chunk (:class:`~churnclv.serving.chunk_pool.ChunkScorer`;
    default: one per core, none for a snapshot under :data:`~churnclv.serving.chunk_pool.MIN_PARALLEL_ROWS`
    customers); the next chunk is read and sent while one is being scored, and chunks are written
    and committed in order.
    """
    snapshot = pq.ParquetFile(tmp / FEATURES_FILE)
    total = snapshot.metadata.num_rows
    if workers is None:
        workers = usable_cores() if total >= MIN_PARALLEL_ROWS else 1
    written = 0
    last: str | None = None
    pending: deque[tuple[int, int, Callable[[], pa.Table]]] = deque()  # chunks sent, not yet written

    def commit() -> None:
        nonlocal written
        i, rows, result = pending.popleft()
        with timer("score"):
            table = result()
        if table.num_rows != rows:
            raise BatchError(f"chunk {i}: {rows} customers in, {table.num_rows} scores out (a bug)")
        part = tmp / PART.format(i)
        with timer("write"):
            write_parquet(table, part)
            prog["chunks"][str(i)] = {"rows": table.num_rows, "file": part.name}
            write_json(tmp / PROGRESS_FILE, prog)
        written += table.num_rows
        bar.advance(task, rows)
        log.debug("chunk %d: %d customers", i, table.num_rows)
        if after_chunk is not None:
            after_chunk(i)

    with _progress_bar(progress) as bar, ChunkScorer(model, as_of=day, reasons=reasons, workers=workers) as scorer:
        task = bar.add_task(f"scoring {day}", total=total)
        batches = snapshot.iter_batches(batch_size=chunk_size)
        for i, batch in enumerate(batches):
            part = tmp / PART.format(i)
            last = check_order(batch.column("customer_id"), last, i)
            done = prog["chunks"].get(str(i))
            if done is not None and part.is_file() and done["rows"] == batch.num_rows:
                written += done["rows"]
                bar.advance(task, batch.num_rows)
                continue
            with timer("score"):
                chunk_prev = None
                if prev is not None and last is not None:
                    chunk_prev = prev_tiers(con, prev, batch.column("customer_id")[0].as_py(), last)
                pending.append((i, batch.num_rows, scorer.submit(batch, chunk_prev)))
            if len(pending) > 1 or scorer.workers == 1:  # one chunk in the workers while the last is written
                commit()
        while pending:
            commit()
    return written


def spark_run(tmp: Path, prog: dict[str, Any], model: LoadedModel, clean: Path, day: dt.date, timer: StageTimer) -> int:
    """Features and scores on Spark; the partition gets the same files as with DuckDB. Returns the rows."""
    from churnclv.serving import spark as spark_engine

    if model.path is None:
        raise BatchError("engine spark scores the downloaded MLflow model: load the model with a folder (a bug)")
    work = tmp / "_spark"
    shutil.rmtree(work, ignore_errors=True)
    with timer("spark_session"):
        spark = spark_engine.session()
    with timer("features"):
        try:
            spark_engine.write_features(spark, clean, day, work / "features", model.scorer.feature_config())
        except ValueError as exc:
            raise BatchError(f"features as of {day}: {exc}") from None
        _concat_parquet(sorted((work / "features").glob("part-*.parquet")), tmp / FEATURES_FILE)
    with timer("score"):
        spark_engine.write_scores(
            spark, work / "features", model.path, work / "scores", as_of=day, model_version=model.version
        )
    written = 0
    last: str | None = None
    with timer("write"):
        for i, src in enumerate(sorted((work / "scores").glob("part-*.parquet"))):
            table = pq.read_table(src).cast(OUTPUT_SCHEMA)
            last = check_order(table.column("customer_id"), last, i)
            write_parquet(table, tmp / PART.format(i))
            written += table.num_rows
    shutil.rmtree(work, ignore_errors=True)
    prog["features"] = True
    return written


def _concat_parquet(files: list[Path], dest: Path) -> None:
    """Stream Parquet files (same schema) into one file, row group by row group."""
    staging = dest.with_name(f".{dest.name}.tmp")
    writer = None
    try:
        for f in files:
            pf = pq.ParquetFile(f)
            for g in range(pf.num_row_groups):
                t = pf.read_row_group(g)
                if writer is None:
                    writer = pq.ParquetWriter(staging, t.schema)
                writer.write_table(t.cast(writer.schema))
        if writer is None:
            raise BatchError(f"{dest}: the feature job wrote no rows (a bug)")
    finally:
        if writer is not None:
            writer.close()
    os.replace(staging, dest)
