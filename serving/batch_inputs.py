"""What the batch job reads: the clean tables, the customers known at as-of, the rejected rows.

The input fingerprint of the manifest (and of a resumed run's check) is
:func:`churnclv.fingerprint.file_fingerprint`.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

import duckdb

from churnclv.fingerprint import table_files, table_scan

log = logging.getLogger(__name__)

TABLES = ("transactions", "events", "customers")


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def table_paths(clean: Path) -> dict[str, Path]:
    """The clean folder's tables: ``<name>.parquet``, ``<name>.csv`` or a folder ``<name>/``."""
    found: dict[str, Path] = {}
    for name in TABLES:
        for p in (clean / f"{name}.parquet", clean / f"{name}.csv", clean / name):
            if p.exists():
                found[name] = p
                break
    return found


def _ts(expr: str) -> str:
    return f"TRY_CAST({expr} AS TIMESTAMP)"


def known_customers(clean: Path, day: dt.date, con: duckdb.DuckDBPyConnection) -> int:
    """Customers known at ``day``: a transaction line, or a signup, before the next midnight.

    Counted straight from the clean tables (not from the features), so the manifest reconciles two
    independent counts.
    """
    paths = table_paths(clean)
    end = _lit(str(dt.datetime.combine(day + dt.timedelta(days=1), dt.time())))
    parts = [f"SELECT customer_id FROM {table_scan(paths['transactions'])} WHERE {_ts('ts')} < {end}::TIMESTAMP"]
    if "customers" in paths:
        scan = table_scan(paths["customers"])
        if _has_signup(con, scan):
            parts.append(f"SELECT customer_id FROM {scan} WHERE {_ts('signup_ts')} < {end}::TIMESTAMP")
    # DISTINCT: a customer has many lines (a bare count counted lines when there is no customers table)
    sql = f"SELECT count(DISTINCT customer_id) FROM ({' UNION '.join(parts)})"
    return int(con.sql(sql).fetchall()[0][0])


def _has_signup(con: duckdb.DuckDBPyConnection, scan: str) -> bool:
    """Whether the customers table read by ``scan`` has a ``signup_ts`` column."""
    return "signup_ts" in {r[0] for r in con.sql(f"DESCRIBE SELECT * FROM {scan}").fetchall()}


def undated_customers(clean: Path, con: duckdb.DuckDBPyConnection) -> int:
    """Rows of the customers table with neither a ``signup_ts`` nor any transaction line: known at no
    as-of, so never scored (said in the manifest, not lost in silence)."""
    paths = table_paths(clean)
    if "customers" not in paths:
        return 0
    scan = table_scan(paths["customers"])
    undated = "signup_ts IS NULL" if _has_signup(con, scan) else "TRUE"
    sql = (
        f"SELECT count(DISTINCT customer_id) FROM {scan} WHERE {undated} AND customer_id NOT IN "
        f"(SELECT customer_id FROM {table_scan(paths['transactions'])})"
    )
    return int(con.sql(sql).fetchall()[0][0])


def rejected_rows(clean: Path, fp: dict[str, Any], con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """Rows the validation rejected, when ``clean`` came from ``churnclv.ingest.validate_source``.

    The validation writes ``<work>/clean/<table>.parquet`` and, for tables with rejects,
    ``<work>/rejects/<table>.csv`` right after. A rejects file older than its clean table is left
    from an earlier validation and is not counted.

    Parameters
    ----------
    clean : Path
        The folder of clean tables.
    fp : dict
        Its :func:`churnclv.fingerprint.file_fingerprint` (the accepted row counts).
    con : duckdb.DuckDBPyConnection
        Where the counting queries run.

    Returns
    -------
    dict
        ``{"validated": bool, "tables": {table: {"accepted", "rejected", "read", "rejects_file"}}}``;
        ``validated`` is False when ``clean`` has no sibling ``rejects`` folder (trusted input).
    """
    rejects_dir = clean.parent / "rejects"
    if clean.name != "clean" or not rejects_dir.is_dir():
        return {"validated": False, "tables": {}}
    out: dict[str, Any] = {}
    for name, path in table_paths(clean).items():
        accepted = fp["tables"][name]["rows"]
        rej_file = rejects_dir / f"{name}.csv"
        rejected = 0
        current = rej_file.is_file() and rej_file.stat().st_mtime_ns >= max(
            f.stat().st_mtime_ns for f in table_files(path)
        )
        if current:
            rejected = int(
                con.sql(
                    f"SELECT count(*) FROM read_csv({_lit(str(rej_file))}, all_varchar=true, header=true)"
                ).fetchall()[0][0]
            )
        out[name] = {
            "read": accepted + rejected,
            "accepted": accepted,
            "rejected": rejected,
            "rejects_file": str(rej_file) if current else None,
        }
    return {"validated": True, "tables": out}
