"""The batch output's layout: what the batch job publishes and its readers (HTTP, sinks, Spark) expect.

- ``OUT/as_of=YYYY-MM-DD/part-00000.parquet`` ...: the scores (:data:`OUTPUT_SCHEMA`), in customer order;
- ``OUT/as_of=YYYY-MM-DD/features.parquet``: the feature snapshot, one row per customer;
- ``OUT/as_of=YYYY-MM-DD/manifest.json``: written last, a partition without it is not published;
- ``OUT/as_of=YYYY-MM-DD/tier_report/``: optional;
- ``OUT/LATEST``: the name of the latest partition by date.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = [
    "FEATURES_FILE",
    "LATEST",
    "MANIFEST_FILE",
    "OUTPUT_COLUMNS",
    "OUTPUT_SCHEMA",
    "PART",
    "REPORT_DIR",
    "parse_partition",
    "part_files",
    "partition_name",
    "partitions",
    "read_latest",
    "read_scores",
]

OUTPUT_SCHEMA = pa.schema(
    [
        pa.field("customer_id", pa.string(), nullable=False),
        pa.field("as_of", pa.date32(), nullable=False),
        pa.field("p_churn", pa.float64()),
        pa.field("p_alive", pa.float64()),
        pa.field("expected_purchases", pa.float64()),
        pa.field("expected_spend", pa.float64()),
        pa.field("clv", pa.float64()),
        pa.field("expected_next_purchase_date", pa.date32()),  # null where undefined
        pa.field("growth_score", pa.float64()),
        pa.field("tier", pa.string()),
        pa.field("stage", pa.string()),
        pa.field("reasons", pa.list_(pa.string())),
        pa.field("action", pa.string()),
        pa.field("model_version", pa.string(), nullable=False),
    ]
)
OUTPUT_COLUMNS = tuple(OUTPUT_SCHEMA.names)

FEATURES_FILE = "features.parquet"
MANIFEST_FILE = "manifest.json"
REPORT_DIR = "tier_report"
LATEST = "LATEST"
PART = "part-{:05d}.parquet"
_PARTITION = re.compile(r"^as_of=(\d{4}-\d{2}-\d{2})$")


def partition_name(day: dt.date) -> str:
    """``as_of=YYYY-MM-DD``."""
    return f"as_of={day.isoformat()}"


def parse_partition(name: str) -> dt.date | None:
    """The as-of date of a partition name ``as_of=YYYY-MM-DD``; None when ``name`` is not one."""
    m = _PARTITION.match(name)
    if m is None:
        return None
    try:
        return dt.date.fromisoformat(m.group(1))
    except ValueError:
        return None


def partitions(out: str | Path) -> list[tuple[dt.date, Path]]:
    """Published partitions of ``out`` (folders ``as_of=DATE`` holding a manifest), oldest first."""
    out = Path(out)
    found = []
    if out.is_dir():
        for p in out.iterdir():
            day = parse_partition(p.name)
            if day is not None and p.is_dir() and (p / MANIFEST_FILE).is_file():
                found.append((day, p))
    return sorted(found)


def part_files(partition: Path) -> list[Path]:
    """The score files of a partition, in customer order."""
    return sorted(partition.glob("part-*.parquet"))


def read_scores(partition: str | Path, columns: list[str] | None = None) -> pd.DataFrame:
    """A published partition's scores as pandas (for notebooks and tests; loads it all)."""
    files = part_files(Path(partition))
    if not files:
        return OUTPUT_SCHEMA.empty_table().to_pandas()
    return pa.concat_tables(pq.read_table(f, columns=columns) for f in files).to_pandas()


def read_latest(out: str | Path) -> str:
    """The partition name held in ``out/LATEST`` (not checked: see :func:`parse_partition`).

    Raises
    ------
    OSError
        ``LATEST`` cannot be read.
    """
    return (Path(out) / LATEST).read_text().strip()
