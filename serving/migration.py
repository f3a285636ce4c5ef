"""The previous partition: whether it reads whole, its tiers (hysteresis), and the tier report
(this partition's tier mix and the migration from the previous one).

Not a database migration: the database table gains new columns in :meth:`churnclv.serving.sinks.ScoreSink.prepare`.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from churnclv.serving.batch_errors import BatchError, first_line
from churnclv.serving.snapshots import (
    FEATURES_FILE,
    MANIFEST_FILE,
    REPORT_DIR,
    parse_partition,
    part_files,
    partitions,
    report_dir,
)

log = logging.getLogger(__name__)

__all__ = ["PAST_SPEND", "batch_tier_report", "prev_tiers", "previous", "previous_problem"]

PAST_SPEND = "net_spend_365d"  # the tier report's realized revenue column (from the feature snapshot)


def _files_sql(partition: Path) -> str:
    """The part files of a partition as a DuckDB list literal."""
    return "[" + ", ".join("'" + str(f).replace("'", "''") + "'" for f in part_files(partition)) + "]"


def previous_problem(prev: Path) -> str | None:
    """Why the previous partition cannot be read whole (naming the file), or None when it can.

    Reads its manifest and the ``customer_id`` and ``tier`` columns of every part file (what the
    migration report and hysteresis read), batch by batch: a few seconds for millions of rows, and
    a truncated or damaged file is found before scoring rather than after.
    """
    manifest_path = prev / MANIFEST_FILE
    try:
        manifest = json.loads(manifest_path.read_text())
        listed = manifest["outputs"]["scores"]
        expected = int(manifest["counts"]["rows_written"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"{manifest_path} cannot be read ({type(exc).__name__})"
    files = part_files(prev)
    missing = sorted(set(listed) - {f.name for f in files})
    if missing:
        return f"{prev / missing[0]} is missing ({len(missing)} part file(s) its manifest names)"
    rows = 0
    for f in files:
        if f.name not in listed:
            return f"{f} is not in its manifest (left by something else)"
        try:
            for batch in pq.ParquetFile(f).iter_batches(batch_size=65_536, columns=["customer_id", "tier"]):
                rows += batch.num_rows
        except (OSError, pa.ArrowException, ValueError, KeyError) as exc:
            return f"{f} cannot be read ({first_line(exc)})"
    if rows != expected:
        return f"{prev}: its part files hold {rows:,} rows, its manifest {expected:,}"
    return None


def previous(out: Path, day: dt.date, hysteresis: bool) -> tuple[Path | None, str | None]:
    """The partition before ``day`` and, when it cannot be read whole, why (checked before scoring)."""
    earlier = [p for d, p in partitions(out) if d < day]
    if not earlier:
        return None, None
    prev = earlier[-1]
    problem = previous_problem(prev)
    if problem is None:
        return prev, None
    rebuild = f"run that as-of again (score-batch --as-of {parse_partition(prev.name)}) to rebuild it"
    if hysteresis:
        raise BatchError(
            f"--hysteresis keeps the tiers of the previous partition {prev.name}, but {problem}: "
            f"{rebuild}, or run without --hysteresis; nothing was scored"
        )
    # a warning (stderr under the CLI) now, before scoring; the summary repeats it as "migration skipped"
    log.warning(
        "no tier migration from %s: %s; the scores are not affected. To get the migration report, %s",
        prev.name,
        problem,
        rebuild,
    )
    return None, problem


def prev_tiers(con: duckdb.DuckDBPyConnection, prev: Path, first: str, last: str) -> pd.Series:
    """Last partition's tiers of the customers in ``[first, last]`` (partitions are sorted by id)."""
    rows = con.sql(
        f"SELECT customer_id, tier FROM read_parquet({_files_sql(prev)}) WHERE customer_id BETWEEN ? AND ?",
        params=[first, last],
    ).to_arrow_table()
    return pd.Series(rows.column("tier").to_pylist(), index=rows.column("customer_id").to_pylist(), dtype=object)


def batch_tier_report(
    tmp: Path, prev: Path | None, tier_names: tuple[str, ...], con: duckdb.DuckDBPyConnection, day: dt.date
) -> dict[str, Any]:
    """Tier mix of the partition of ``day`` in ``tmp`` and migration from ``prev``
    (:func:`churnclv.models.tier_report.tier_report`; the files and plots by
    :func:`churnclv.plotting.write_report`, into ``tmp``'s report folder); returns the manifest's
    ``tier_report`` entry, which names the files where they are published (relative to the output folder).

    Customer ids are replaced by join positions before pandas sees them, so the report costs a few
    numbers per customer, not a string.
    """
    # imported here: plotting loads matplotlib (0.7 s), which only a model with tiers needs
    from churnclv.models.tier_report import tier_report
    from churnclv.plotting import write_report

    # realized revenue per tier: the snapshot's net spend of the last 365 days, next to predicted CLV
    feats_path = tmp / FEATURES_FILE  # a file (DuckDB engine) or a folder of parts (Spark)
    feats = "'" + str(feats_path / "*.parquet" if feats_path.is_dir() else feats_path).replace("'", "''") + "'"
    spend = f"LEFT JOIN (SELECT customer_id, {PAST_SPEND} FROM read_parquet({feats})) f USING (customer_id)"
    current = f"read_parquet({_files_sql(tmp)}) c {spend}"
    if prev is None:
        sql = f"SELECT c.tier, c.clv, c.expected_spend, c.p_churn, f.{PAST_SPEND} FROM {current}"
    else:
        sql = (
            f"SELECT c.customer_id IS NOT NULL AS _curr, c.tier, c.clv, c.expected_spend, c.p_churn, f.{PAST_SPEND}, "
            f"p.tier AS prev_tier FROM {current} "
            f"FULL OUTER JOIN (SELECT customer_id, tier FROM read_parquet({_files_sql(prev)})) p USING (customer_id)"
        )
    table = con.sql(sql).to_arrow_table()
    for name in ("tier", "prev_tier"):
        if name in table.column_names:
            i = table.column_names.index(name)
            table = table.set_column(i, name, pc.dictionary_encode(table.column(name)))
    frame = table.to_pandas()
    order = list(tier_names) or None
    if prev is None:
        report = tier_report(frame, tiers=order, spend_col=PAST_SPEND)
    else:
        frame["customer_id"] = np.arange(len(frame))
        previous_tiers = frame.loc[frame["prev_tier"].notna(), ["customer_id", "prev_tier"]]
        previous_tiers = previous_tiers.rename(columns={"prev_tier": "tier"})
        report = tier_report(frame.loc[frame["_curr"]], prev=previous_tiers, tiers=order, spend_col=PAST_SPEND)
    shutil.rmtree(tmp / REPORT_DIR, ignore_errors=True)  # a resumed run's earlier attempt
    paths = write_report(report, tmp / REPORT_DIR)
    summary = report.summary[
        ["tier", "customers", "customer_share", "clv", "clv_share", "past_spend", "past_spend_share"]
    ]
    doc: dict[str, Any] = {
        "previous": None if prev is None else prev.name,
        "files": {k: (report_dir("", day) / p.name).as_posix() for k, p in paths.items()},
        "summary": json.loads(summary.to_json(orient="records")),
    }
    if report.migration is not None:
        m = report.migration
        doc["migration"] = {
            "customers_both": int(m.counts.to_numpy().sum()),
            "only_previous": int(m.n_only_prev),
            "only_current": int(m.n_only_curr),
            "changed_tier": int(m.counts.to_numpy().sum() - np.trace(m.counts.to_numpy())),
        }
    return doc
