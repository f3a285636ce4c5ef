"""The batch output's layout: what the batch job publishes and its readers (HTTP, sinks, Spark, notebooks) expect.

One as-of is one partition ``dt=YYYY-MM-DD`` in each of three folders::

    OUT/scores/dt=YYYY-MM-DD/part-00000.parquet ...  the scores (OUTPUT_SCHEMA), in customer order
    OUT/scores/dt=YYYY-MM-DD/_manifest.json          published with the scores: a partition without it is not
    OUT/features/dt=YYYY-MM-DD/features.parquet      the feature snapshot, one row per customer
    OUT/reports/dt=YYYY-MM-DD/                       the tier report (optional)
    OUT/LATEST                                       the name of the latest partition by date

``OUT/scores`` holds nothing but scores, so pandas (``pd.read_parquet("OUT/scores")``), DuckDB
(``read_parquet('OUT/scores/*/*.parquet', hive_partitioning = true)``) and Spark
(``spark.read.parquet("OUT/scores")``) read it as it is; all three skip ``_``-prefixed files.

Partitions written with a targeting (``score-batch --targeting``) carry four more columns (``contact``,
``expected_incremental_revenue``, ``expected_profit``, ``targeting``, after ``model_version``); the
others are byte for byte as without one. Read several partitions by column name, or the extra columns
are lost or refused: plain ``pd.read_parquet("OUT/scores")`` takes the first file's schema and drops
them, plain DuckDB ``read_parquet`` refuses a query naming them ("column not found"). Unified::

    duckdb:   SELECT * FROM read_parquet('OUT/scores/*/*.parquet', union_by_name = true, hive_partitioning = true)
    pandas:   schema = pa.unify_schemas([pq.read_schema(f) for f in glob.glob("OUT/scores/*/*.parquet")])
              pd.read_parquet("OUT/scores", schema=schema)
    pyarrow:  pyarrow.dataset.dataset("OUT/scores", format="parquet", partitioning="hive", schema=schema)
    Spark:    spark.read.option("mergeSchema", "true").parquet("OUT/scores")

(a partition without a targeting reads as nulls in those columns). :func:`read_scores` reads one
partition, whose part files share one schema.

Why the folder key is ``dt`` and not ``as_of``: every row carries ``as_of`` (a date), so one file, one
partition folder and the whole folder read alike. A folder key named ``as_of`` clashes with that column
(pyarrow refuses to merge the key's strings with the column's dates), and a key alone reaches pandas as
strings and is missing from a single partition's rows. Spark only finds partitions in ``key=value``
folders. So the key is another name, ``dt`` (the Hive convention), equal to ``as_of``: filter on it to
read only some weeks.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from churnclv.errors import ChurnclvError

__all__ = [
    "FEATURES_DIR",
    "FEATURES_FILE",
    "HOLDOUT_COLUMNS",
    "LATEST",
    "MANIFEST_FILE",
    "NULLABLE_NUMBERS",
    "OUTPUT_COLUMNS",
    "OUTPUT_SCHEMA",
    "PART",
    "PARTITION_KEY",
    "REPORTS_DIR",
    "REPORT_DIR",
    "SCORES_DIR",
    "PartitionError",
    "features_path",
    "legacy_note",
    "legacy_partitions",
    "manifest_path",
    "misplaced_output",
    "parse_partition",
    "part_files",
    "partition_dirs",
    "partition_name",
    "partitions",
    "read_latest",
    "read_scores",
    "report_dir",
    "scores_dir",
]

# churnclv.models.intervals.INTERVAL_COLUMNS, spelled here to keep this module light (a test checks they agree)
_INTERVALS = ("spend_p10", "spend_p50", "spend_p90", "clv_p10", "clv_p50", "clv_p90")
# the HTTP answer's fields (churnclv.serving.schemas.CustomerScore) in its order, but rows_after_as_of,
# which only a request has
OUTPUT_SCHEMA = pa.schema(
    [
        pa.field("customer_id", pa.string(), nullable=False),
        pa.field("as_of", pa.date32(), nullable=False),
        pa.field("p_churn", pa.float64()),
        pa.field("p_alive", pa.float64()),
        pa.field("expected_purchases", pa.float64()),
        pa.field("expected_spend", pa.float64()),
        pa.field("clv", pa.float64()),
        # 10 %, 50 % and 90 % quantiles of the realised spend within the horizon and of the CLV (currency;
        # churnclv.models.intervals); clv_pXX null unless the scorer's clv_intervals is on
        *(pa.field(c, pa.float64()) for c in _INTERVALS),
        pa.field("expected_next_purchase_days", pa.float64()),  # null where undefined
        pa.field("expected_next_purchase_date", pa.date32()),  # null where undefined
        pa.field("next_purchase_days_p80", pa.float64()),  # null where undefined
        pa.field("next_purchase_date_p80", pa.date32()),  # null where undefined
        # the marketing fields (churnclv.models.marketing, with their units)
        pa.field("historic_clv", pa.float64()),
        pa.field("total_clv", pa.float64()),
        pa.field("avg_order_value", pa.float64()),  # null without a purchase
        pa.field("avg_days_between_orders", pa.float64()),  # null with fewer than 2 purchase days
        pa.field("risk_band", pa.string()),
        pa.field("clv_at_risk", pa.float64()),
        pa.field("acquisition_cost", pa.float64()),  # null when unknown
        pa.field("net_clv", pa.float64()),  # null when the acquisition cost is unknown
        pa.field("growth_score", pa.float64()),
        pa.field("tier", pa.string()),
        pa.field("tier_level", pa.int64()),  # 0 = bottom tier
        pa.field("stage", pa.string()),
        pa.field("action", pa.string()),
        pa.field("reasons", pa.list_(pa.string())),
        # the campaign whose holdout the run drew (null: none) and the customer's arm: true = control, not
        # contacted (null without a campaign; churnclv.serving.batch_holdout)
        pa.field("campaign", pa.string()),
        pa.field("holdout", pa.bool_()),
        pa.field("model_version", pa.string(), nullable=False),
    ]
)
OUTPUT_COLUMNS = tuple(OUTPUT_SCHEMA.names)
#: The columns the batch job fills once the whole base is scored (the chunks leave them null).
HOLDOUT_COLUMNS = ("campaign", "holdout")
# the number columns that are null where undefined or unknown (the others always hold a number)
NULLABLE_NUMBERS = (
    *_INTERVALS,
    "expected_next_purchase_days",
    "next_purchase_days_p80",
    "avg_order_value",
    "avg_days_between_orders",
    "acquisition_cost",
    "net_clv",
)

SCORES_DIR = "scores"
FEATURES_DIR = "features"
REPORTS_DIR = "reports"
PARTITION_KEY = "dt"
FEATURES_FILE = "features.parquet"
MANIFEST_FILE = "_manifest.json"
REPORT_DIR = "tier_report"  # the tier report's folder inside a run's temp folder
LATEST = "LATEST"
PART = "part-{:05d}.parquet"
_PARTITION = re.compile(rf"^{PARTITION_KEY}=(\d{{4}}-\d{{2}}-\d{{2}})$")
_LEGACY = re.compile(r"^as_of=\d{4}-\d{2}-\d{2}$")  # OUT/as_of=DATE/, the layout before the three folders
_LEGACY_MANIFEST = "manifest.json"


class PartitionError(ChurnclvError, FileNotFoundError):
    """No published partition of that as-of in the output folder (or one in the earlier layout)."""


def _day(value: dt.date | str) -> dt.date:
    if isinstance(value, dt.datetime):  # pandas.Timestamp too
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value))


def partition_name(day: dt.date | str) -> str:
    """``dt=YYYY-MM-DD``: the partition's folder name in each of the three folders (and in ``LATEST``)."""
    return f"{PARTITION_KEY}={_day(day).isoformat()}"


def parse_partition(name: str) -> dt.date | None:
    """The as-of date of a partition name ``dt=YYYY-MM-DD``; None when ``name`` is not one."""
    m = _PARTITION.match(name)
    if m is None:
        return None
    try:
        return dt.date.fromisoformat(m.group(1))
    except ValueError:
        return None


def misplaced_output(folder: str | Path) -> str | None:
    """Why ``folder``, given as a batch output folder, is a folder inside one (``OUT/scores``,
    ``OUT/features/dt=DATE``, ...), naming the output folder to give instead; None when it is not one
    (an output folder, or any other folder).

    A partition folder is told by its name alone; ``OUT/scores``, ``OUT/features`` and ``OUT/reports`` by
    their parent's ``LATEST``.
    """
    folder = Path(folder)
    if (folder / LATEST).exists():
        return None
    parts = (SCORES_DIR, FEATURES_DIR, REPORTS_DIR)
    if parse_partition(folder.name) is not None and folder.parent.name in parts:
        out = folder.parent.parent
    elif folder.name in parts and (folder.parent / LATEST).is_file():
        out = folder.parent
    else:
        return None
    return (
        f"{folder} is a folder inside the batch job's output {out}: give {out} itself (the folder of "
        f"churnclv score-batch --out, the one holding {LATEST})"
    )


def scores_dir(out: str | Path, day: dt.date | str) -> Path:
    """``OUT/scores/dt=DATE``: the partition's part files and its manifest."""
    return Path(out) / SCORES_DIR / partition_name(day)


def features_path(out: str | Path, day: dt.date | str) -> Path:
    """``OUT/features/dt=DATE/features.parquet``: the feature snapshot (what ``score_by_id`` reads)."""
    return Path(out) / FEATURES_DIR / partition_name(day) / FEATURES_FILE


def report_dir(out: str | Path, day: dt.date | str) -> Path:
    """``OUT/reports/dt=DATE``: the tier report."""
    return Path(out) / REPORTS_DIR / partition_name(day)


def manifest_path(out: str | Path, day: dt.date | str) -> Path:
    """``OUT/scores/dt=DATE/_manifest.json``."""
    return scores_dir(out, day) / MANIFEST_FILE


def partition_dirs(out: str | Path, day: dt.date | str) -> list[Path]:
    """The partition's folders, scores first (what removing the partition removes)."""
    return [scores_dir(out, day), features_path(out, day).parent, report_dir(out, day)]


def partitions(out: str | Path) -> list[tuple[dt.date, Path]]:
    """Published partitions of ``out`` (folders ``scores/dt=DATE`` holding a manifest), oldest first."""
    root = Path(out) / SCORES_DIR
    found = []
    if root.is_dir():
        for p in root.iterdir():
            day = parse_partition(p.name)
            if day is not None and p.is_dir() and (p / MANIFEST_FILE).is_file():
                found.append((day, p))
    return sorted(found)


def legacy_partitions(out: str | Path) -> list[Path]:
    """Partitions written in the earlier layout (``OUT/as_of=DATE/`` holding ``manifest.json``), by name."""
    out = Path(out)
    if not out.is_dir():
        return []
    return sorted(p for p in out.iterdir() if _LEGACY.match(p.name) and (p / _LEGACY_MANIFEST).is_file())


def part_files(partition: Path) -> list[Path]:
    """The score files of a partition folder, in customer order."""
    return sorted(partition.glob("part-*.parquet"))


def read_scores(out: str | Path, as_of: dt.date | str, columns: list[str] | None = None) -> pd.DataFrame:
    """The scores of ``as_of`` published in ``out`` (the batch job's ``--out``) as pandas; loads them all.

    Raises
    ------
    PartitionError
        ``out`` holds no published partition of ``as_of``; the message says how to write it (also
        when ``out`` holds it in the earlier layout ``OUT/as_of=DATE/``, which is not read).
    """
    folder = scores_dir(out, as_of)
    if not (folder / MANIFEST_FILE).is_file():
        raise PartitionError(_missing(Path(out), _day(as_of)))
    return pa.concat_tables(pq.read_table(f, columns=columns) for f in part_files(folder)).to_pandas()


def _missing(out: Path, day: dt.date) -> str:
    rerun = f"churnclv score-batch --as-of {day} --out {out}"
    if (out / f"as_of={day}" / _LEGACY_MANIFEST).is_file():
        return (
            f"{out / f'as_of={day}'} was written by an earlier churnclv (one folder per as-of); this version "
            f"reads {scores_dir(out, day)}: run {rerun} to write it (then remove the as_of=* folders)"
        )
    return f"{scores_dir(out, day)}: no published scores of as-of {day}: run {rerun}"


def legacy_note(out: Path, found: list[Path]) -> str:
    """What a run says when ``out`` holds partitions of the earlier layout (``found``, not empty)."""
    first = found[0].name.partition("=")[2]
    return (
        f"{out} holds {len(found)} partition(s) of the earlier layout ({found[0].name}, ...): they are not read "
        f"(no tier migration from them) nor changed; to keep them, run those as-ofs again "
        f"(churnclv score-batch --as-of {first} --out {out} ...), then remove the as_of=* folders"
    )


def read_latest(out: str | Path) -> str:
    """The partition name held in ``out/LATEST`` (not checked: see :func:`parse_partition`).

    Raises
    ------
    OSError
        ``LATEST`` cannot be read.
    """
    return (Path(out) / LATEST).read_text().strip()
