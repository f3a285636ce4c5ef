"""Ingestion and validation: raw sources in, clean canonical tables and rejects out.

Validation runs as SQL in DuckDB, so a 50M-row file is checked out of core and the same rules
apply to a directory of files, a SQL database and pandas frames held in memory. The sources are
read by :mod:`churnclv.ingestion.files`, :mod:`~churnclv.ingestion.databases` and
:mod:`~churnclv.ingestion.frames`; one table is validated by :mod:`churnclv.ingestion.validation`.

Every row read ends up either accepted (in the clean table) or rejected (in the rejects file with
its ``reason``); the report's counts reconcile: ``read == accepted + rejected``.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from churnclv.ingestion.databases import check_sqlite_file, is_sql_url, register_sql
from churnclv.ingestion.files import find_source, read_error, register_file
from churnclv.ingestion.frames import register_frame
from churnclv.ingestion.raw import RawTable, literal
from churnclv.ingestion.validation import TableReport, validate_table
from churnclv.mapping import Mapping
from churnclv.redaction import redact_url
from churnclv.schema import CUSTOMERS, TABLES, TableSpec
from churnclv.tables import DataError

__all__ = [
    "SOURCE_RECORD",
    "ValidationResult",
    "read_clean",
    "source_identity",
    "validate_frames",
    "validate_source",
    "validated_counts",
    "validated_source",
]

#: The file in a validation's output folder naming the source its tables came from (redacted).
SOURCE_RECORD = "source.json"

# customers first: the events' customer_id is checked against the clean customers
_ORDER = sorted(TABLES, key=lambda name: name != CUSTOMERS.name)


@dataclass
class ValidationResult:
    """Clean tables (pandas or Parquet paths) with their rejects and reports."""

    reports: dict[str, TableReport]
    clean: dict[str, pd.DataFrame] = field(default_factory=dict)
    rejects: dict[str, pd.DataFrame] = field(default_factory=dict)
    clean_paths: dict[str, Path] = field(default_factory=dict)
    rejects_paths: dict[str, Path] = field(default_factory=dict)

    @property
    def n_rejected(self) -> int:
        """Rows rejected over every table."""
        return sum(r.rejected for r in self.reports.values())


def _connect(memory_limit: str | None = None) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET preserve_insertion_order = true")
    if memory_limit:
        con.execute(f"SET memory_limit = {literal(memory_limit)}")
    return con


def _check_data(data: str | Path) -> None:
    """Refuse a source that is neither a folder nor a database URL (or a SQLite file that is missing)."""
    if is_sql_url(data):
        check_sqlite_file(str(data))
    elif not Path(data).is_dir():
        raise DataError(f"{data}: not a directory or database URL: pass a data folder or sqlite:///file.db")


def _register_sources(con: duckdb.DuckDBPyConnection, data: str | Path, mapping: Mapping) -> dict[str, RawTable]:
    """Register each available raw table as ``raw_<name>``."""
    _check_data(data)
    found: dict[str, RawTable] = {}
    if is_sql_url(data):
        url = str(data)
        for name in _ORDER:
            raw = register_sql(con, url, mapping.table(name).source, f"raw_{name}")
            if raw is not None:
                found[name] = raw
        if "transactions" not in found:
            raise DataError(
                f"{redact_url(url)}: table '{mapping.table('transactions').source}' not found: "
                'create it or map your table with [transactions] table = "..." in a mapping file'
            )
        return found
    directory = Path(data)
    for name in _ORDER:
        stem = mapping.table(name).source
        path = find_source(directory, stem)
        if path is None:
            if name == "transactions":
                raise DataError(
                    f"{directory}: no transactions file ({stem}.parquet or {stem}.csv): add one or map "
                    'yours with [transactions] table = "..." in a mapping file'
                )
            continue
        found[name] = register_file(con, path, f"raw_{name}")
    return found


def _run(con: duckdb.DuckDBPyConnection, found: dict[str, RawTable], mapping: Mapping) -> dict[str, TableReport]:
    reports: dict[str, TableReport] = {}
    has_customers = CUSTOMERS.name in found
    for name in _ORDER:
        if name in found:
            try:
                reports[name] = validate_table(con, TABLES[name], found[name], mapping, has_customers)
            except duckdb.Error as exc:  # a file that breaks the format after its first lines
                raise read_error(found[name].where, exc) from None
    return reports


def _staging(out_dir: Path) -> Path:
    """A new, empty folder inside ``out_dir`` (same file system: the results are moved, not copied)."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=".validating-", dir=out_dir))
    except OSError as exc:
        raise _unwritable(out_dir, exc) from None


def _unwritable(out_dir: Path, exc: BaseException) -> DataError:
    why = getattr(exc, "strerror", None) or exc.__class__.__name__
    return DataError(
        f"{out_dir}: cannot write the validated tables there ({why}): pass --out a folder you can "
        "write to (it is created when missing)"
    )


def _publish(staging: Path, out_dir: Path, source: str, counts: dict[str, dict[str, Any]]) -> None:
    """Replace ``out_dir/clean`` and ``out_dir/rejects`` as a whole by the staged ones, so tables of
    an earlier validation (another data set) never stay beside the new ones; then record the source
    and each table's rows read, accepted and rejected and its last time (:func:`validated_counts`)."""
    for sub in ("clean", "rejects"):
        final = out_dir / sub
        if final.exists() or final.is_symlink():
            final.rename(staging / f"previous-{sub}")
        (staging / sub).rename(final)
    (out_dir / SOURCE_RECORD).write_text(json.dumps({"source": source, "tables": counts}) + "\n")


def source_identity(data: str | Path) -> str:
    """How a source is named in :data:`SOURCE_RECORD`: a folder's absolute path, a URL redacted."""
    text = str(data)
    return redact_url(text) if is_sql_url(text) else str(Path(text).resolve())


def _record(out_dir: Path | str) -> dict[str, Any]:
    """The :data:`SOURCE_RECORD` of ``out_dir`` (empty when missing or unreadable)."""
    try:
        doc = json.loads((Path(out_dir) / SOURCE_RECORD).read_text())
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def validated_counts(out_dir: Path | str) -> dict[str, dict[str, Any]]:
    """Rows ``read``, ``accepted`` and ``rejected`` and the last time ``ts_max`` (ISO text) per table
    of the validation in ``out_dir`` (empty when not recorded)."""
    tables = _record(out_dir).get("tables")
    return tables if isinstance(tables, dict) else {}


def validated_source(out_dir: Path | str) -> str | None:
    """The source whose tables ``out_dir`` holds (:data:`SOURCE_RECORD`), None when not recorded."""
    source = _record(out_dir).get("source")
    return source if isinstance(source, str) else None


def validate_source(
    data: str | Path,
    out_dir: Path | str,
    *,
    mapping: Mapping | None = None,
    memory_limit: str | None = None,
) -> ValidationResult:
    """Validate a data directory or SQL URL; write clean Parquet and rejects CSV under ``out_dir``.

    Writes ``out_dir/clean/<table>.parquet`` and ``out_dir/rejects/<table>.csv`` (only for tables
    with rejects). Both folders are replaced as a whole when the validation succeeds, and left as
    they were when it fails: they always hold the tables of one validation. Raises
    :class:`DataError` for whole-file problems.
    """
    mapping = mapping or Mapping()
    out_dir = Path(out_dir)
    _check_data(data)  # before anything is created
    staging = _staging(out_dir)
    con = _connect(memory_limit)
    try:
        found = _register_sources(con, data, mapping)
        result = ValidationResult(reports=_run(con, found, mapping))
        try:
            _write(con, result, staging, out_dir, source_identity(data))
        except (OSError, duckdb.IOException) as exc:
            raise _unwritable(out_dir, exc) from None
        return result
    finally:
        con.close()
        shutil.rmtree(staging, ignore_errors=True)


def _write(con: duckdb.DuckDBPyConnection, result: ValidationResult, staging: Path, out_dir: Path, source: str) -> None:
    """Write the clean tables and rejects into ``staging``, then publish them into ``out_dir``."""
    (staging / "clean").mkdir()
    (staging / "rejects").mkdir()
    for name in result.reports:
        con.execute(f"COPY clean_{name} TO {literal(str(staging / 'clean' / f'{name}.parquet'))} (FORMAT parquet)")
        result.clean_paths[name] = out_dir / "clean" / f"{name}.parquet"
        if result.reports[name].rejected:
            con.execute(
                f"COPY rejects_{name} TO {literal(str(staging / 'rejects' / f'{name}.csv'))} (FORMAT csv, HEADER)"
            )
            result.rejects_paths[name] = out_dir / "rejects" / f"{name}.csv"
    counts = {
        name: {k: r.to_dict()[k] for k in ("read", "accepted", "rejected", "ts_max")}
        for name, r in result.reports.items()
    }
    _publish(staging, out_dir, source, counts)


def validate_frames(
    transactions: pd.DataFrame,
    events: pd.DataFrame | None = None,
    customers: pd.DataFrame | None = None,
    *,
    mapping: Mapping | None = None,
) -> ValidationResult:
    """Validate pandas frames by the same rules; clean tables and rejects come back as frames."""
    mapping = mapping or Mapping()
    con = _connect()
    try:
        frames = {"transactions": transactions, "events": events, "customers": customers}
        found: dict[str, RawTable] = {}
        for name in _ORDER:
            frame = frames[name]
            if frame is not None:
                found[name] = register_frame(con, frame, f"raw_{name}", f"<{name} frame>")
        result = ValidationResult(reports=_run(con, found, mapping))
        for name in result.reports:
            result.clean[name] = _clean_frame(con.execute(f"SELECT * FROM clean_{name}").df(), TABLES[name])
            result.rejects[name] = con.execute(f"SELECT * FROM rejects_{name}").df()
        return result
    finally:
        con.close()


def _clean_frame(frame: pd.DataFrame, spec: TableSpec) -> pd.DataFrame:
    """Give a clean frame the contract's pandas dtypes (str ids, datetime64, float64)."""
    for col in frame.columns:
        kind = spec.types.get(col, "string")
        if kind == "string":
            frame[col] = frame[col].astype("str").where(frame[col].notna(), None)
        elif kind == "timestamp":
            frame[col] = pd.to_datetime(frame[col])
        else:
            frame[col] = frame[col].astype("float64")
    return frame


def read_clean(result: ValidationResult, name: str) -> pd.DataFrame | None:
    """A clean table as pandas, from memory or from its Parquet file; None when absent."""
    if name in result.clean:
        return result.clean[name]
    if name in result.clean_paths:
        return _clean_frame(pd.read_parquet(result.clean_paths[name]), TABLES[name])
    return None
