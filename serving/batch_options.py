"""The options of one batch run (:func:`churnclv.serving.batch.run_batch`), checked before anything runs."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from churnclv.features import as_of_date
from churnclv.names import MAX_DAYS_AFTER_DATA
from churnclv.serving import batch_inputs
from churnclv.serving.batch_errors import BatchError
from churnclv.serving.batch_holdout import HoldoutOptions
from churnclv.serving.batch_targeting import TargetingOptions
from churnclv.serving.snapshots import partition_name
from churnclv.values import MAX_YEAR, MIN_YEAR

__all__ = [
    "DEFAULT_MAX_DAYS_AFTER_DATA",
    "DEFAULT_MEMORY_LIMIT",
    "ENGINES",
    "BatchOptions",
    "as_of_day",
]

# DuckDB's own default is 80% of RAM; the job promises a bounded footprint, so it sets one
DEFAULT_MEMORY_LIMIT = "2GB"
ENGINES = ("duckdb", "spark")
# how far past the last date in the data an as-of may lie: a weekly job runs a few days after the
# data's last load; a month covers a late load without letting a typo'd year through
DEFAULT_MAX_DAYS_AFTER_DATA = MAX_DAYS_AFTER_DATA


def as_of_day(value: Any) -> dt.date:
    """The as-of date of ``value`` (date-like), with a plausible year."""
    try:
        day = as_of_date(value)
    except ValueError as exc:
        raise BatchError(f"as-of: {exc}") from None
    if not MIN_YEAR <= day.year <= MAX_YEAR:  # the validation's rule for every date in the data
        raise BatchError(
            f"as-of {day.isoformat()}: the year is outside {MIN_YEAR}-{MAX_YEAR}: pass the "
            "date the data runs to, e.g. 2025-10-02"
        )
    return day


@dataclass(frozen=True)
class BatchOptions:
    """The options of one run (see :func:`churnclv.serving.batch.run_batch`), checked when made.

    Raises
    ------
    BatchError
        An unknown engine, a chunk size or a day limit that is not a whole number, an output path
        that is a file, a data folder without a transactions table, or an option the Spark engine
        does not support.
    """

    clean: Path
    day: dt.date
    out: Path
    model_uri: str
    tracking_uri: str | None
    horizon_days: int | None
    db: str | None
    db_table: str
    engine: str
    chunk_size: int
    resume: bool
    memory_limit: str
    echo: Callable[[str], Any]
    hysteresis: bool
    progress: bool
    reasons: bool
    after_chunk: Callable[[int], None] | None
    max_days_after_data: int
    holdout: HoldoutOptions | None = None  # the campaign whose holdout the run writes (None: no campaign)
    targeting: TargetingOptions | None = None  # who to contact, decided per customer (None: no columns added)

    def __post_init__(self) -> None:
        self._check_args()
        if self.engine == "spark":
            self._check_spark()

    @property
    def name(self) -> str:
        """The partition's name, ``dt=YYYY-MM-DD``."""
        return partition_name(self.day)

    def _check_args(self) -> None:
        engine, chunk_size, out, clean = self.engine, self.chunk_size, self.out, self.clean
        if engine not in ENGINES:
            raise BatchError(f"engine {engine!r} is not known: use one of {list(ENGINES)}")
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise BatchError(f"chunk size {chunk_size!r}: must be a positive number of customers, e.g. 200000")
        days = self.max_days_after_data
        if isinstance(days, bool) or not isinstance(days, int) or days < 0:
            raise BatchError(
                f"max days after data {days!r}: must be a whole number of days >= 0, e.g. {DEFAULT_MAX_DAYS_AFTER_DATA}"
            )
        if out.exists() and not out.is_dir():
            raise BatchError(
                f"--out {out} is a file: pass a folder (the run writes OUT/scores/, OUT/features/, OUT/reports/ "
                "and OUT/LATEST into it)"
            )
        if not clean.is_dir():
            raise BatchError(f"{clean}: not a folder of clean tables: pass the validated data folder (--data)")
        if "transactions" not in batch_inputs.table_paths(clean):
            raise BatchError(
                f"{clean}: no transactions table (transactions.parquet, .csv or a folder transactions/): "
                "validate the data first, or point --data at the folder of clean tables"
            )

    def _check_spark(self) -> None:
        from churnclv.serving import spark as spark_engine

        if not self.reasons:
            raise BatchError("reasons=False is for the duckdb engine: the Spark scorer always computes reasons")
        if self.hysteresis:
            raise BatchError(
                "--hysteresis is for the duckdb engine: the Spark scorer does not read last "
                "as-of's tiers; run without --hysteresis or with --engine duckdb"
            )
        if not spark_engine.available():
            raise BatchError("engine spark needs pyspark and ibis' pyspark backend: pip install 'churnclv[spark]'")

    def check_data_end(self, end: dt.date | None) -> None:
        """Refuse an as-of more than ``max_days_after_data`` days after ``end``, the last date in the
        data: a typo (2262 for 2026) would otherwise become the newest partition and hold ``LATEST``."""
        if end is not None and (self.day - end).days > self.max_days_after_data:
            days = (self.day - end).days
            raise BatchError(
                f"as-of {self.day} is {days:,} days after the last date in the data ({end}: the latest "
                f"transaction, event or sign-up in {self.clean}), more than the {self.max_days_after_data} "
                f"allowed: check the date (a later as-of would become LATEST), or pass --max-days-after-data "
                f"{days} if the data really ends that early"
            )
