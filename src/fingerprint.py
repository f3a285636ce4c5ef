"""The data fingerprints: what a job read, recorded so that a later run can tell whether the data changed.

One module, one algorithm per purpose:

- :func:`clean_fingerprint`, the *content* fingerprint (training: MLflow's ``data_fingerprint.json``
  and the ``data.<table>.sha256`` parameters). Per table: rows, customers, time range and a hash
  of the rows' content that does not depend on their order or on how they are split into files
  (``fingerprint_version`` 2). It reads every value of every row: a training run reads them all
  anyway.
- :func:`file_fingerprint`, the *input* fingerprint (the batch job: its manifest's ``input`` and,
  through :func:`resume_identity`, what a resumed run must find unchanged). Per table: the files
  read with their sizes and modification times, rows and time range, and a SHA-256 of the files'
  bytes when they hold at most :data:`HASH_MAX_BYTES` together. It costs file metadata and one
  count/min/max query per table, seconds at a million customers, where the content hash would
  scan the text of every row of the weekly job's input again.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import duckdb
import ibis

__all__ = [
    "FINGERPRINT_VERSION",
    "HASH_MAX_BYTES",
    "TIME_COLUMN",
    "BackgroundFingerprint",
    "clean_fingerprint",
    "file_fingerprint",
    "fingerprint_memory_limit",
    "last_date",
    "resume_identity",
    "table_files",
    "table_scan",
]

# the time column of each clean table: its range is part of both fingerprints
TIME_COLUMN = {"transactions": "ts", "events": "ts", "customers": "signup_ts"}
FINGERPRINT_VERSION = 2  # of clean_fingerprint's content hash (version 1 hashed every table in pandas)
# input files up to this size together are hashed by file_fingerprint (SHA-256 runs at ~1 GB/s);
# bigger ones are identified by their sizes and modification times
HASH_MAX_BYTES = 512 * 2**20
# DuckDB's memory for the content fingerprint beside a training: it spills past it (10M customers,
# 486M rows: 441 s and 0.55 GB RSS on one thread at 400MB), where the training's own limit (or 80 %
# of RAM without one) stacked a second one on the training's peak
_FINGERPRINT_MEMORY_BYTES = 512 * 10**6
FINGERPRINT_MEMORY_LIMIT = f"{_FINGERPRINT_MEMORY_BYTES // 10**6}MB"
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}
_UNITS |= {"kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _quote(column: str) -> str:
    return '"' + column.replace('"', '""') + '"'


def table_files(path: Path) -> list[Path]:
    """The files of a table: ``path`` itself, or the ``.parquet`` and ``.csv`` files under a folder, sorted."""
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in (".parquet", ".csv"))
    return [path]


def table_scan(path: Path) -> str:
    """A DuckDB table function reading the table at ``path`` (CSV as text, so ids keep their zeros)."""
    files = table_files(path)
    listed = ", ".join(_literal(str(f)) for f in files)
    if files and files[0].suffix == ".csv":
        return f"read_csv([{listed}], all_varchar=true, union_by_name=true, hive_partitioning=false)"
    return f"read_parquet([{listed}], union_by_name=true, hive_partitioning=false)"


def clean_fingerprint(clean: Path | str, *, memory_limit: str | None = None, con: Any = None) -> dict[str, Any]:
    r"""The content fingerprint of a folder of clean tables, computed in DuckDB.

    Per table: ``rows``, ``customers``, the time range (``ts_min``/``ts_max``, or
    ``signup_ts_min``/``signup_ts_max``) and ``sha256_16``. The content hash is order-independent
    and independent of the file layout: the sum over rows of the low 64 bits of ``md5`` of the row's
    text (columns in name order, ``\N`` for null), folded with the row count and the column names
    and types through SHA-256, first 16 hex digits (``fingerprint_version`` 2). The same rows give
    the same hash however they are split into files or sorted; any changed, added or removed row
    changes it.

    Parameters
    ----------
    clean
        The folder of clean tables (read with :func:`churnclv.features.load_tables`).
    memory_limit
        DuckDB's memory limit (default: :func:`churnclv.features.connect`'s).
    con
        A connection (Ibis DuckDB backend) to run on, left open; default a new one, closed at the end.
    """
    from churnclv.features import connect, load_tables

    own = con is None
    con = connect(memory_limit=memory_limit) if own else con
    try:
        tables = load_tables(clean, con)
        out: dict[str, Any] = {}
        for name in TIME_COLUMN:
            table = getattr(tables, name)
            if table is None:
                continue
            ts = TIME_COLUMN[name] if TIME_COLUMN[name] in table.columns else None
            row = " || chr(31) || ".join(
                f"coalesce(CAST({_quote(c)} AS VARCHAR), '\\N')" for c in sorted(table.columns)
            )
            span = f"min({_quote(ts)}), max({_quote(ts)})" if ts else "NULL, NULL"
            sql = (
                f"SELECT count(*), count(DISTINCT customer_id), {span}, "
                f"coalesce(sum(md5_number_lower({row})), 0) FROM ({ibis.to_sql(table, dialect='duckdb')})"
            )
            rows, customers, lo, hi, total = con.con.execute(sql).fetchall()[0]
            schema = ",".join(f"{c}:{table[c].type()}" for c in sorted(table.columns))
            fp: dict[str, Any] = {
                "rows": int(rows),
                "customers": int(customers),
                "sha256_16": hashlib.sha256(f"{schema}|{rows}:{total}".encode()).hexdigest()[:16],
                "fingerprint_version": FINGERPRINT_VERSION,
            }
            if ts and rows:
                fp[f"{ts}_min"], fp[f"{ts}_max"] = str(lo), str(hi)
            out[name] = fp
        return out
    finally:
        if own:
            con.disconnect()


def _size_bytes(limit: str) -> float | None:
    """A DuckDB size (``"2GB"``, ``"1.5 GiB"``, ``"512MB"``) in bytes; None when it is not one."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-z]*)\s*", limit.lower())
    if m is None or m.group(2) not in _UNITS:
        return None
    return float(m.group(1)) * _UNITS[m.group(2)]


def fingerprint_memory_limit(limit: str | None) -> str:
    """DuckDB's limit for the fingerprint beside a job limited to ``limit``: that limit when it is a
    size below :data:`FINGERPRINT_MEMORY_LIMIT`, else that constant (the job's own connection judges
    a limit that is not a size)."""
    size = None if limit is None else _size_bytes(limit)
    if limit is None or size is None or size >= _FINGERPRINT_MEMORY_BYTES:
        return FINGERPRINT_MEMORY_LIMIT
    return limit


class BackgroundFingerprint:
    """:func:`clean_fingerprint` computed in a thread while the caller works: DuckDB runs without the
    GIL, on one thread at the lowest priority here, so it fills the time a training leaves a core
    idle (~20 s of a training at a million customers otherwise). :meth:`result` waits for it;
    :meth:`cancel` interrupts it (a training that failed does not wait for a fingerprint nobody will
    log); leaving its ``with`` block cancels it. Its DuckDB takes at most :data:`FINGERPRINT_MEMORY_LIMIT`
    (:func:`fingerprint_memory_limit` of the training's ``memory_limit``) and spills past it."""

    def __init__(self, clean: Path | str, *, memory_limit: str | None = None) -> None:
        from churnclv.features import connect

        self._con = connect(memory_limit=fingerprint_memory_limit(memory_limit), threads=1)
        self._out: dict[str, Any] | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(clean,), name="churnclv-fingerprint")
        self._thread.start()

    def _run(self, clean: Path | str) -> None:
        # the lowest priority (Linux sets it per thread): it takes the idle core time only, where at
        # normal priority it slowed the training's own steps by about what it saved (measured at 1M)
        with contextlib.suppress(AttributeError, OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        try:
            self._out = clean_fingerprint(clean, con=self._con)
        except BaseException as exc:  # noqa: BLE001 - handed to result(): raised in the caller's thread
            self._error = exc
        finally:
            self._con.disconnect()

    def result(self) -> dict[str, Any]:
        """The fingerprint (waits for it); the error it met, raised here."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._out is not None
        return self._out

    def __enter__(self) -> BackgroundFingerprint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cancel()

    def cancel(self) -> None:
        """Interrupt the query when it still runs, and wait for the thread to end."""
        if self._thread.is_alive():
            with contextlib.suppress(Exception):  # it may have finished in between: nothing to interrupt
                self._con.con.interrupt()
        self._thread.join()


def file_fingerprint(clean: Path, tables: Mapping[str, Path], con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """The input fingerprint of the clean tables a job reads.

    Per table: its ``path``, ``rows``, time range (``<time column>_min``/``_max``, timestamps as
    text, None when empty or absent) and ``files`` (``path`` relative to ``clean``, ``bytes``,
    ``mtime_ns``); in all: ``clean`` (resolved), ``bytes``, ``content_hash`` (``sha256:`` of every
    file's relative path and bytes in turn, when ``bytes`` is at most :data:`HASH_MAX_BYTES`, else
    None) and ``identity`` (``"content_hash"`` or ``"sizes_and_mtimes"``: what
    :func:`resume_identity` compares).

    Parameters
    ----------
    clean
        The folder of clean tables.
    tables
        Its tables, name -> file or folder (absent tables left out).
    con
        Where the counting queries run.
    """
    out: dict[str, Any] = {}
    all_files: list[Path] = []
    for name, path in tables.items():
        files = table_files(path)
        all_files += files
        col = TIME_COLUMN[name]
        scan = table_scan(path)
        cols = {r[0] for r in con.sql(f"DESCRIBE SELECT * FROM {scan}").fetchall()}
        cast = f"TRY_CAST({_quote(col)} AS TIMESTAMP)"
        span = f", min({cast}), max({cast})" if col in cols else ", NULL, NULL"
        rows, lo, hi = con.sql(f"SELECT count(*){span} FROM {scan}").fetchall()[0]
        out[name] = {
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
        "tables": out,
        "bytes": total,
        "content_hash": digest,
        "identity": "content_hash" if digest else "sizes_and_mtimes",
    }


def resume_identity(fp: Mapping[str, Any]) -> Any:
    """What must not change between an interrupted run and its resumption, from :func:`file_fingerprint`:
    the content hash when there is one, else every table's files with their sizes and modification times."""
    if fp.get("content_hash"):
        return fp["content_hash"]
    return {n: t["files"] for n, t in fp["tables"].items()}


def last_date(fp: Mapping[str, Any]) -> dt.date | None:
    """The last calendar day in the data: the latest transaction, event or sign-up of :func:`file_fingerprint`."""
    days = []
    for name, table in fp["tables"].items():
        value = table.get(f"{TIME_COLUMN[name]}_max")
        if value:
            try:
                days.append(dt.datetime.fromisoformat(str(value)).date())
            except ValueError:  # not a timestamp DuckDB could cast: no bound from this table
                continue
    return max(days) if days else None
