"""What the batch job read: a fingerprint of the clean tables, the customers known at as-of, rejects.

The fingerprint goes into the manifest (row counts, date ranges, files with sizes and modification
times, and a SHA-256 of the content when the inputs are small enough to hash quickly). A resumed
run compares it with the interrupted run's, so it never mixes chunks scored from different data.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from pathlib import Path
from typing import Any

import duckdb

log = logging.getLogger(__name__)

TABLES = ("transactions", "events", "customers")
TIME_COLUMN = {"transactions": "ts", "events": "ts", "customers": "signup_ts"}
# inputs up to this size are hashed (SHA-256 runs at ~1 GB/s); bigger ones are identified by
# sizes and modification times
HASH_MAX_BYTES = 512 * 2**20


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


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in (".parquet", ".csv"))
    return [path]


def _scan(path: Path) -> str:
    """A DuckDB table function reading the table at ``path`` (CSV as text, so ids keep zeros)."""
    files = _files(path)
    if files and files[0].suffix == ".csv":
        return f"read_csv([{', '.join(_lit(str(f)) for f in files)}], all_varchar=true, union_by_name=true)"
    return f"read_parquet([{', '.join(_lit(str(f)) for f in files)}], union_by_name=true)"


def _ts(expr: str) -> str:
    return f"TRY_CAST({expr} AS TIMESTAMP)"


def fingerprint(clean: Path, con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """Row counts, time ranges and files (size, mtime) per table, and a content hash when small.

    Parameters
    ----------
    clean : Path
        The folder of clean tables.
    con : duckdb.DuckDBPyConnection
        Where the counting queries run.
    """
    tables: dict[str, Any] = {}
    all_files: list[Path] = []
    for name, path in table_paths(clean).items():
        files = _files(path)
        all_files += files
        col = TIME_COLUMN[name]
        cols = {r[0] for r in con.sql(f"DESCRIBE SELECT * FROM {_scan(path)}").fetchall()}
        rng = f", min({_ts(col)}), max({_ts(col)})" if col in cols else ", NULL, NULL"
        rows, lo, hi = con.sql(f"SELECT count(*){rng} FROM {_scan(path)}").fetchall()[0]
        tables[name] = {
            "path": str(path),
            "rows": int(rows),
            f"{col}_min": None if lo is None else str(lo),
            f"{col}_max": None if hi is None else str(hi),
            "files": [
                {"path": str(f.relative_to(clean)), "bytes": f.stat().st_size, "mtime_ns": f.stat().st_mtime_ns}
                for f in files
            ],
        }
    total = sum(f.stat().st_size for f in all_files)
    digest = None
    if total <= HASH_MAX_BYTES:
        h = hashlib.sha256()
        for f in all_files:
            h.update(str(f.relative_to(clean)).encode())
            with f.open("rb") as fh:
                for block in iter(lambda: fh.read(2**20), b""):
                    h.update(block)
        digest = "sha256:" + h.hexdigest()
    return {
        "clean": str(clean.resolve()),
        "tables": tables,
        "bytes": total,
        "content_hash": digest,
        "identity": "content_hash" if digest else "sizes_and_mtimes",
    }


def last_date(fp: dict[str, Any]) -> dt.date | None:
    """The last calendar day in the data: the latest transaction, event or sign-up of :func:`fingerprint`."""
    days = []
    for name, table in fp["tables"].items():
        value = table.get(f"{TIME_COLUMN[name]}_max")
        if value:
            try:
                days.append(dt.datetime.fromisoformat(str(value)).date())
            except ValueError:  # not a timestamp DuckDB could cast: no bound from this table
                continue
    return max(days) if days else None


def identity(fp: dict[str, Any]) -> Any:
    """What must not change between an interrupted run and its resumption."""
    if fp.get("content_hash"):
        return fp["content_hash"]
    return {n: t["files"] for n, t in fp["tables"].items()}


def known_customers(clean: Path, day: dt.date, con: duckdb.DuckDBPyConnection) -> int:
    """Customers known at ``day``: a transaction line, or a signup, before the next midnight.

    Counted straight from the clean tables (not from the features), so the manifest reconciles two
    independent counts.
    """
    paths = table_paths(clean)
    end = _lit(str(dt.datetime.combine(day + dt.timedelta(days=1), dt.time())))
    parts = [f"SELECT customer_id FROM {_scan(paths['transactions'])} WHERE {_ts('ts')} < {end}::TIMESTAMP"]
    if "customers" in paths:
        scan = _scan(paths["customers"])
        cols = {r[0] for r in con.sql(f"DESCRIBE SELECT * FROM {scan}").fetchall()}
        if "signup_ts" in cols:
            parts.append(f"SELECT customer_id FROM {scan} WHERE {_ts('signup_ts')} < {end}::TIMESTAMP")
    # DISTINCT: a customer has many lines (a bare count counted lines when there is no customers table)
    sql = f"SELECT count(DISTINCT customer_id) FROM ({' UNION '.join(parts)})"
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
        Its :func:`fingerprint` (the accepted row counts).
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
        current = rej_file.is_file() and rej_file.stat().st_mtime_ns >= max(f.stat().st_mtime_ns for f in _files(path))
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
