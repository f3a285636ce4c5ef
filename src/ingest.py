"""Ingestion and validation: raw sources in, clean canonical tables and rejects out.

Validation runs as SQL in DuckDB, so a 50M-row file is checked out of core and the same rules
apply to a directory of files, a SQL database and pandas frames held in memory.

Every row read ends up either accepted (in the clean table) or rejected (in the rejects file with
its ``reason``); the report's counts reconcile: ``read == accepted + rejected``.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import logging
import math
import re
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow.parquet as pq

from churnclv import values
from churnclv.config import Mapping
from churnclv.redaction import redact_text, redact_url
from churnclv.schema import CUSTOMERS, EVENTS, TABLES, TRANSACTIONS, TableSpec

log = logging.getLogger(__name__)

SQL_SCHEMES = ("sqlite", "postgresql", "postgres", "mysql", "mssql", "oracle")
FILE_FORMATS = (".parquet", ".csv", ".csv.gz", ".tsv")
ROW = "_row"  # 1-based row number in the source, kept in the rejects file
# source types read as numbers (the rest is read as text and parsed)
_FLOAT_TYPES = ("DOUBLE", "FLOAT", "REAL")
_NUMBER_TYPES = (
    *_FLOAT_TYPES,
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "UHUGEINT",
)


class DataError(ValueError):
    """A whole-file problem (missing column, empty or unreadable file): names file, column, fix.

    Its message never holds customer data (row contents, ids): only the file, the line number, the
    column, the rule and the fix.
    """


@dataclass(frozen=True)
class _Raw:
    """A raw table registered as a DuckDB view: where it came from (for messages) and which of its
    text columns held floating-point numbers in the source (SQL tables and frames are read as text)."""

    view: str
    where: str
    float_columns: frozenset[str] = frozenset()


@dataclass
class TableReport:
    """Counts for one table; ``read == accepted + rejected`` always holds."""

    table: str
    source: str
    read: int = 0
    accepted: int = 0
    rejected: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    customers: int = 0
    ts_min: pd.Timestamp | None = None
    ts_max: pd.Timestamp | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "source": self.source,
            "read": self.read,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "reasons": dict(self.reasons),
            "customers": self.customers,
            "ts_min": None if self.ts_min is None else str(self.ts_min),
            "ts_max": None if self.ts_max is None else str(self.ts_max),
        }


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
        return sum(r.rejected for r in self.reports.values())


# --------------------------------------------------------------------------- sources


def is_sql_url(data: str | Path) -> bool:
    """True when ``data`` is a database URL such as ``sqlite:///x.db`` or ``postgresql://...``."""
    m = re.match(r"^([a-z][a-z0-9+]*)://", str(data))
    return bool(m) and m.group(1).split("+")[0] in SQL_SCHEMES


def _find_file(directory: Path, stem: str) -> Path | None:
    """The one file (or folder of files) holding table ``stem`` in ``directory``."""
    # the mapping refuses names with path separators; checked again so nothing outside is read
    if stem in ("", ".", "..") or any(c in stem for c in "/\\\0"):
        raise DataError(f"table name {stem!r} is not a plain name: tables are confined to the data folder")
    found = [directory / f"{stem}{ext}" for ext in FILE_FORMATS if (directory / f"{stem}{ext}").is_file()]
    folder = directory / stem
    if folder.is_dir():
        found.append(folder)
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise DataError(f"{directory}: table '{stem}' is found more than once ({names}): keep exactly one")
    if not found:
        other = sorted(p.name for p in directory.glob(f"{stem}.*") if p.is_file())
        if other:  # e.g. transactions.json or transactions.xlsx: say so instead of "no file"
            raise DataError(
                f"{directory / other[0]}: unknown format for table '{stem}': "
                f"use {', '.join(stem + e for e in FILE_FORMATS)} (convert the file)"
            )
    return found[0] if found else None


def _file_kind(path: Path) -> str | None:
    name = path.name.lower()
    if name.endswith(".parquet"):
        return "parquet"
    if name.endswith((".csv", ".csv.gz")):
        return "csv"
    if name.endswith(".tsv"):
        return "tsv"
    return None


def _folder_files(folder: Path) -> tuple[str, list[Path]]:
    """The format and the data files of a table folder; refuses a folder that mixes formats or holds
    files of an unknown format, so no file is left unread."""
    files: list[Path] = []
    for p in sorted(folder.rglob("*")):
        parts = p.relative_to(folder).parts
        if not p.is_file() or any(part.startswith(".") for part in parts):
            continue  # hidden files and folders (.crc, .DS_Store, .spark-staging)
        if _file_kind(p) is None and p.name.startswith("_"):
            continue  # markers of Spark and Hadoop writers (_SUCCESS, _metadata)
        files.append(p)
    unknown = [p for p in files if _file_kind(p) is None]
    if unknown:
        raise DataError(
            f"{unknown[0]}: unknown format in the folder of table '{folder.name}': a table folder holds "
            ".parquet or .csv files only; convert the file or move it out of the folder"
        )
    kinds = Counter(_file_kind(p) for p in files)
    if len(kinds) > 1:
        counts = " and ".join(f"{n} .{k} file{'s' if n > 1 else ''}" for k, n in sorted(kinds.items()))
        raise DataError(
            f"{folder}: the folder mixes formats ({counts}): keep one format per table folder "
            "(convert the other files), so that no file is left unread"
        )
    if not files:
        raise DataError(f"{folder}: folder holds no .parquet or .csv files: add the table's files")
    return next(iter(kinds)), files


def _check_names(names: list[str], where: str) -> None:
    """Refuse a table with two columns of the same name (ignoring case, as SQL and DuckDB do): which
    one is meant would be a guess."""
    seen: dict[str, list[str]] = {}
    for name in names:
        seen.setdefault(name.lower(), []).append(name)
    for same in seen.values():
        if len(same) > 1:
            what = (
                f"column '{same[0]}' appears {len(same)} times"
                if len(set(same)) == 1
                else f"columns {sorted(set(same))} differ only in case"
            )
            raise DataError(f"{where}: {what}: rename or drop the copies, so that each column name has one meaning")


def _csv_header(path: Path, delim: str) -> list[str]:
    """The column names of a CSV file (its first record), read by the rules the data is read with."""
    opener: Any = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8-sig", newline="") as f:
            row = next(csv.reader(f, delimiter=delim, quotechar='"', doublequote=True, strict=True), None)
    except UnicodeDecodeError:
        raise DataError(f"{path}: line 1 (the header) is not UTF-8 text: save the file as UTF-8") from None
    except csv.Error:
        raise DataError(
            f"{path}: line 1 (the header) is not valid CSV: quote names that hold the delimiter "
            'or quotes ("a,b", doubled "" inside)'
        ) from None
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: unreadable ({exc.__class__.__name__}): check the file") from None
    if not row:
        raise DataError(f"{path}: file is empty: it needs a header row and data rows")
    # names trimmed, and blank ones numbered, as DuckDB's own CSV reader names them
    names = [name.strip() or f"column{i}" for i, name in enumerate(row)]
    _check_names(names, str(path))
    return names


def _csv_sql(files: list[Path], delim: str) -> str:
    """SQL reading CSV files as text with explicit options: nothing is sniffed, so a quote first seen
    after the sniffer's sample still quotes, and every value stays text (ids keep their zeros)."""
    groups: dict[tuple[str, ...], list[Path]] = {}
    for f in files:
        groups.setdefault(tuple(_csv_header(f, delim)), []).append(f)
    parts = []
    for names, paths in groups.items():
        columns = "{" + ", ".join(f"{_lit(n)}: 'VARCHAR'" for n in names) + "}"
        listed = "[" + ", ".join(_lit(str(p)) for p in paths) + "]"
        parts.append(
            f"SELECT * FROM read_csv({listed}, header=true, auto_detect=false, columns={columns}, "
            f"delim={_lit(delim)}, quote='\"', escape='\"', comment='', skip=0, strict_mode=true, "
            "null_padding=false, ignore_errors=false)"
        )
    # files with other headers are matched by column name, as union_by_name did
    return parts[0] if len(parts) == 1 else " UNION ALL BY NAME ".join(f"({q})" for q in parts)


def _parquet_sql(files: list[Path]) -> str:
    for f in files:
        try:
            names = pq.read_schema(f).names
        except Exception as exc:  # noqa: BLE001 - any reader failure: the file is not Parquet we can read
            why = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0][:200]  # the footer: no rows
            raise DataError(f"{f}: unreadable ({why}): check the file") from None
        _check_names(names, str(f))
    listed = "[" + ", ".join(_lit(str(p)) for p in files) + "]"
    return f"SELECT * FROM read_parquet({listed}, union_by_name=true)"


def _register_file(con: duckdb.DuckDBPyConnection, path: Path, view: str) -> _Raw:
    """Expose a raw file as a view with every column as read (CSV: all text, so ids keep zeros)."""
    if path.is_dir():
        kind, files = _folder_files(path)
    else:
        kind, files = _file_kind(path), [path]
        if kind is None:
            raise DataError(f"{path}: unknown format: use .parquet, .csv, .csv.gz or .tsv")
        if path.stat().st_size == 0:
            raise DataError(f"{path}: file is empty: it needs a header row and data rows")
    src = _parquet_sql(files) if kind == "parquet" else _csv_sql(files, "\t" if kind == "tsv" else ",")
    try:
        con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS {src}")
        con.execute(f"SELECT * FROM {view} LIMIT 0")
    except duckdb.Error as exc:
        raise _read_error(str(path), exc) from None
    return _Raw(view=view, where=str(path))


def _read_error(where: str, exc: duckdb.Error) -> DataError:
    """A reader's error as one line naming the file, the line and the fix, without the line's
    contents (DuckDB quotes the offending row, which is customer data)."""
    text = str(exc)
    file = re.search(r"^\s*file = (.+)$", text, re.MULTILINE)
    line = re.search(r"CSV Error on Line: (\d+)", text)
    at = f"{file.group(1).strip() if file else where}" + (f": line {line.group(1)}" if line else "")
    fields = re.search(r"Expected Number of Columns: (\d+) Found: (\d+)", text)
    if fields:
        what = (
            f"{fields.group(2)} fields where the header has {fields.group(1)}: quote a field that holds the "
            'delimiter ("1,5"), and give every row as many fields as the header'
        )
    elif "unicode" in text.lower() or "utf-8" in text.lower():
        what = "not UTF-8 text: save the file as UTF-8"
    elif "unterminated quote" in text:
        what = 'a quoted field is never closed: close it, and double quotes inside a quoted field ("")'
    elif line or "CSV" in text:
        what = (
            "not valid CSV (RFC 4180): quote fields that hold the delimiter, quotes or line breaks, and "
            "double quotes inside them"
        )
    else:
        what = f"unreadable ({exc.__class__.__name__})"
    return DataError(f"{at}: {what}. Nothing was validated: fix the file and run again")


def _engine_url(url: str) -> Any:
    """The SQLAlchemy URL for ``url``: ``postgres://`` (an alias SQLAlchemy does not know) and a bare
    ``postgresql://`` use psycopg 3, the PostgreSQL driver churnclv ships (SQLAlchemy 2.0 would pick
    psycopg2, which is not installed); an explicit ``+driver`` is kept."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    backend, _, driver = parsed.drivername.partition("+")
    if backend in ("postgres", "postgresql"):
        parsed = parsed.set(drivername=f"postgresql+{driver or 'psycopg'}")
    return parsed


def _check_sqlite_file(url: str) -> None:
    """Refuse a SQLite URL whose database file does not exist: connecting would create an empty one."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:  # noqa: BLE001 - reported by create_engine with the fix
        return
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:" or database.startswith("file:"):
        return
    if not Path(database).is_file():
        raise DataError(
            f"{redact_url(url)}: database file {database} does not exist (nothing was created): "
            "check the path; sqlite:///shop.db is relative to the current folder, "
            "sqlite:////data/shop.db absolute"
        )


def _register_sql(con: duckdb.DuckDBPyConnection, url: str, table: str, view: str) -> _Raw | None:
    """Copy a SQL table into DuckDB as text columns, in chunks. None when the table is absent."""
    import sqlalchemy as sa

    where = redact_url(url)
    try:
        engine = sa.create_engine(_engine_url(url))
    except (sa.exc.SQLAlchemyError, ImportError, ValueError) as exc:
        raise DataError(
            redact_text(
                f"{where}: not a usable database URL ({exc.__class__.__name__}: {exc}): use e.g. "
                "sqlite:///shop.db or postgresql://user@host/db, and install the database's driver"
            )
        ) from None
    floats: set[str] = set()
    try:
        if not sa.inspect(engine).has_table(table):
            return None
        first = True
        quoted = engine.dialect.identifier_preparer.quote(table)
        with engine.connect() as conn:
            result = conn.execution_options(stream_results=True).execute(sa.text(f"SELECT * FROM {quoted}"))
            keys = list(map(str, result.keys()))
            _check_names(keys, f"{where} table {table}")
            for rows in result.partitions(250_000):
                chunk, chunk_floats = _rows_as_text(keys, rows, f"{where} table {table}")
                floats |= chunk_floats
                con.register("_chunk", chunk)
                if first:
                    con.execute(f"CREATE OR REPLACE TEMP TABLE {view} AS SELECT * FROM _chunk")
                    first = False
                else:
                    con.execute(f"INSERT INTO {view} BY NAME SELECT * FROM _chunk")
                con.unregister("_chunk")
            if first:  # empty table: keep the columns
                cols = [c["name"] for c in sa.inspect(engine).get_columns(table)]
                _register_frame(
                    con, pd.DataFrame({c: pd.Series(dtype="string") for c in cols}), view, f"{where} table {table}"
                )
    except sa.exc.OperationalError as exc:
        raise DataError(
            redact_text(
                f"{where}: cannot read table {table} ({str(exc.orig or exc).strip().splitlines()[0]}): "
                "check the host, port, database name and credentials"
            )
        ) from None
    except sa.exc.SQLAlchemyError as exc:
        first_line = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise DataError(
            redact_text(f"{where} table {table}: unreadable ({exc.__class__.__name__}: {first_line})")
        ) from None
    finally:
        engine.dispose()
    return _Raw(view=view, where=f"{where} table {table}", float_columns=frozenset(floats))


_BINARY = (bytes, bytearray, memoryview)


def _rows_as_text(keys: list[str], rows: list[Any], where: str) -> tuple[pd.DataFrame, set[str]]:
    """Rows of a SQL result as nullable text, value by value, by the rules of :func:`_as_text`:
    an integer stays ``12`` (a NULL beside it does not make it 12.0), a float is marked as one
    (the numeric id rule), a BLOB is decoded as UTF-8, a timestamp keeps its offset."""
    out, floats = {}, set()
    for i, name in enumerate(keys):
        texts: list[str | None] = []
        for row in rows:
            v = row[i]
            if v is None or isinstance(v, str):
                texts.append(v)
            elif isinstance(v, float):
                floats.add(name)
                texts.append(None if math.isnan(v) else values.id_text(v))  # NaN: a missing number
            elif isinstance(v, _BINARY):
                texts.append(_decode(v, name, where))
            elif isinstance(v, dt.datetime):
                texts.append(v.isoformat(sep=" "))  # four-digit years, and the offset when it has one
            else:
                texts.append(str(v))
        out[name] = pd.Series(texts, dtype="string")
    return pd.DataFrame(out), floats


def _decode(v: Any, name: str, where: str) -> str:
    try:
        return bytes(v).decode("utf-8")
    except UnicodeDecodeError:
        raise DataError(
            f"{where}: column '{name}' holds binary values (BLOB) that are not UTF-8 text: store "
            "it as text, or map a view that converts it (e.g. hex(column))"
        ) from None


def _as_text(frame: pd.DataFrame, where: str) -> tuple[pd.DataFrame, set[str]]:
    """Every column as nullable text, so SQL and in-memory sources follow the CSV rules exactly;
    also the names of the columns that held floating-point numbers (for the numeric id rule)."""
    names = [str(c) for c in frame.columns]
    _check_names(names, where)
    out, floats = {}, set()
    for name, c in zip(names, frame.columns):
        s = frame[c]
        if pd.api.types.is_datetime64_any_dtype(s):
            text = (
                s.dt.strftime("%Y-%m-%dT%H:%M:%S.%f%z")
                if s.dt.tz is not None
                else s.dt.strftime("%Y-%m-%d %H:%M:%S.%f")
            )
            out[name] = text.astype("string")
        elif pd.api.types.is_float_dtype(s):
            # whole numbers without '.0' (ids 12, not 12.0), repr otherwise: full precision, and inf
            # spelt so the numeric rules see it; NaN is how pandas writes a missing number, so it
            # stays missing (a required column rejects it as such)
            floats.add(name)
            out[name] = pd.Series(
                [None if pd.isna(v) else values.id_text(float(v)) for v in s], index=s.index, dtype="string"
            )
        elif s.dtype == object and s.map(lambda v: isinstance(v, _BINARY)).any():
            out[name] = s.map(lambda v, n=name: _decode(v, n, where) if isinstance(v, _BINARY) else v).astype("string")
        else:
            out[name] = s.astype("string")
    return pd.DataFrame(out, index=frame.index), floats


def _register_frame(con: duckdb.DuckDBPyConnection, frame: pd.DataFrame, view: str, where: str) -> _Raw:
    text, floats = _as_text(frame, where)
    con.register(f"{view}_df", text)
    con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT * FROM {view}_df")
    return _Raw(view=view, where=where, float_columns=frozenset(floats))


# --------------------------------------------------------------------------- rules


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _column_types(con: duckdb.DuckDBPyConnection, view: str) -> dict[str, str]:
    return {r[0]: r[1] for r in con.execute(f"DESCRIBE {view}").fetchall()}


def _is_float_type(src_type: str) -> bool:
    return src_type in _FLOAT_TYPES or src_type.startswith("DECIMAL")


def _text(col: str, src_type: str) -> str:
    """SQL for a column as trimmed text (NULL when blank). Integral floats lose their '.0'."""
    cast = values.sql_id_text(col) if _is_float_type(src_type) else f"CAST({col} AS VARCHAR)"
    return f"NULLIF(TRIM({cast}), '')"


def _timestamp(col: str, src_type: str) -> str:
    """SQL for a column as a naive UTC timestamp (NULL when it does not parse)."""
    if src_type.startswith("TIMESTAMP WITH TIME ZONE"):
        return f"CAST({col} AS TIMESTAMP)"  # session time zone is UTC
    if src_type.startswith("TIMESTAMP") or src_type == "DATE":
        return f"CAST({col} AS TIMESTAMP)"
    return f"CAST(TRY_CAST(NULLIF(TRIM(CAST({col} AS VARCHAR)), '') AS TIMESTAMPTZ) AS TIMESTAMP)"


def _float(col: str, src_type: str) -> str:
    if src_type in _NUMBER_TYPES or src_type.startswith("DECIMAL"):
        return f"CAST({col} AS DOUBLE)"  # a number as it is: no detour through text
    return f"TRY_CAST(NULLIF(TRIM(CAST({col} AS VARCHAR)), '') AS DOUBLE)"


def _rules(
    spec: TableSpec, present: dict[str, str], types: dict[str, str], raw: _Raw, has_customers: bool
) -> list[tuple[str, str]]:
    """(reason, SQL condition on the parsed row) in the order they are checked; first match wins.

    The value rules (and their reasons) are those of :mod:`churnclv.values`."""
    rules: list[tuple[str, str]] = []
    for col, actual in present.items():
        kind = spec.types[col]
        src_type = types[actual]
        r, p = f"r_{col}", f"p_{col}"
        if col in spec.required:
            rules.append((values.reason("missing", col), f"{r} IS NULL"))
        if col in values.ID_COLUMNS and (_is_float_type(src_type) or actual in raw.float_columns):
            rules += values.sql_id_rules(col, r)
        if kind == "timestamp":
            rules += values.sql_timestamp_rules(col, r, p, text_source=src_type == "VARCHAR")
        elif kind == "float":
            rules += values.sql_number_rules(col, r, p)
    if spec is EVENTS and has_customers:
        rules.append(
            (
                "unknown customer_id: not in the customers table",
                "p_customer_id IS NOT NULL AND p_customer_id NOT IN (SELECT customer_id FROM clean_customers)",
            )
        )
    return rules


def _resolve(tmap: Any, table: str, canonical: str, types: dict[str, str], source: str) -> str | None:
    """The source column of ``canonical``: its exact name, else the one column equal ignoring case."""
    wanted = tmap.source_column(canonical)
    if wanted in types:
        return wanted
    same = [c for c in types if c.lower() == wanted.lower()]
    if len(same) > 1:
        raise DataError(
            f"{source}: columns {same} all match '{wanted}' (canonical '{canonical}') ignoring case: rename "
            f'the others, or map the exact name ([{table}] columns = {{ {canonical} = "{same[0]}" }})'
        )
    return same[0] if same else None


def _validate_table(
    con: duckdb.DuckDBPyConnection, spec: TableSpec, raw: _Raw, mapping: Mapping, has_customers: bool
) -> TableReport:
    """Build ``clean_<table>`` and ``rejects_<table>`` temp tables in ``con`` from the raw view."""
    tmap = mapping.table(spec.name)
    view, source = raw.view, raw.where
    types = _column_types(con, view)
    if not types:
        raise DataError(f"{source}: no columns found: the file needs a header row")

    present: dict[str, str] = {}
    for col in spec.columns:
        actual = _resolve(tmap, spec.name, col, types, source)
        if actual is not None:
            present[col] = actual
        elif col in spec.required:
            wanted = tmap.source_column(col)
            raise DataError(
                f"{source}: required column '{wanted}' (canonical '{col}') is missing; columns found: "
                f"{list(types)}. Fix: rename the column or map it in a mapping file "
                f'([{spec.name}] columns = {{ {col} = "your_column" }})'
            )
    extras = [c for c in types if spec.keep_extra and c not in present.values()]

    select = [f"row_number() OVER () AS {ROW}"]
    for col, actual in present.items():
        qc, t = _q(actual), types[actual]
        select.append(f"{_text(qc, t)} AS r_{col}")
        kind = spec.types[col]
        parsed = _text(qc, t) if kind == "string" else _timestamp(qc, t) if kind == "timestamp" else _float(qc, t)
        select.append(f"{parsed} AS p_{col}")
    for i, actual in enumerate(extras):
        select.append(f"{_text(_q(actual), types[actual])} AS x_{i}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE parsed_{spec.name} AS SELECT {', '.join(select)} FROM {view}")

    rules = _rules(spec, present, types, raw, has_customers)
    case = "CASE " + " ".join(f"WHEN {cond} THEN {_lit(reason)}" for reason, cond in rules) + " END"
    # duplicates are judged among otherwise valid rows, on every canonical column
    if spec is TRANSACTIONS and "order_id" in present:
        dup_key = ", ".join(f"p_{c}" for c in present)
        dup = (
            f"CASE WHEN reason IS NULL AND p_order_id IS NOT NULL AND row_number() OVER "
            f"(PARTITION BY reason, {dup_key} ORDER BY {ROW}) > 1 "
            "THEN 'duplicate line: same order_id and identical values as an earlier line' ELSE reason END"
        )
    elif spec is CUSTOMERS:
        dup = (
            "CASE WHEN reason IS NULL AND row_number() OVER (PARTITION BY reason, p_customer_id "
            f"ORDER BY {ROW}) > 1 THEN 'duplicate customer_id: an earlier row has it' ELSE reason END"
        )
    else:
        dup = "reason"
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE checked_{spec.name} AS "
        f"SELECT *, {dup} AS final_reason FROM (SELECT *, {case} AS reason FROM parsed_{spec.name})"
    )

    clean_cols = [f"p_{c} AS {c}" for c in present]
    clean_cols += [f"x_{i} AS {_q(a)}" for i, a in enumerate(extras)]
    order = ", ".join(c for c in ("p_customer_id", "p_ts") if c.removeprefix("p_") in present)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE clean_{spec.name} AS SELECT {', '.join(clean_cols)} "
        f"FROM checked_{spec.name} WHERE final_reason IS NULL ORDER BY {order}, {ROW}"
    )
    raw_cols = [f"r_{c} AS {_q(present[c])}" for c in present]
    raw_cols += [f"x_{i} AS {_q(a)}" for i, a in enumerate(extras)]
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE rejects_{spec.name} AS SELECT {ROW}, final_reason AS reason, "
        f"{', '.join(raw_cols)} FROM checked_{spec.name} WHERE final_reason IS NOT NULL ORDER BY {ROW}"
    )

    report = TableReport(table=spec.name, source=source)
    report.read = con.execute(f"SELECT count(*) FROM parsed_{spec.name}").fetchone()[0]
    if report.read == 0:
        if spec.name == "transactions":
            raise DataError(
                f"{source}: empty: the transactions table has a header but no rows; export the "
                "transactions again (nothing can be scored without them)"
            )
        log.warning("%s (%s) has no rows", spec.name, source)
    report.accepted = con.execute(f"SELECT count(*) FROM clean_{spec.name}").fetchone()[0]
    report.reasons = dict(
        con.execute(
            f"SELECT reason, count(*) FROM rejects_{spec.name} GROUP BY reason ORDER BY count(*) DESC, reason"
        ).fetchall()
    )
    report.rejected = sum(report.reasons.values())
    report.customers = con.execute(f"SELECT count(DISTINCT customer_id) FROM clean_{spec.name}").fetchone()[0]
    ts_col = "ts" if "ts" in present else "signup_ts" if "signup_ts" in present else None
    if ts_col:
        lo, hi = con.execute(f"SELECT min({ts_col}), max({ts_col}) FROM clean_{spec.name}").fetchone()
        report.ts_min = None if lo is None else pd.Timestamp(lo)
        report.ts_max = None if hi is None else pd.Timestamp(hi)
    assert report.read == report.accepted + report.rejected, "validation lost rows"
    if report.rejected:
        log.warning("%s: %d of %d rows rejected: %s", spec.name, report.rejected, report.read, report.reasons)
    return report


# --------------------------------------------------------------------------- entry points


def _connect(memory_limit: str | None = None) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET preserve_insertion_order = true")
    if memory_limit:
        con.execute(f"SET memory_limit = {_lit(memory_limit)}")
    return con


def _check_data(data: str | Path) -> None:
    """Refuse a source that is neither a folder nor a database URL (or a SQLite file that is missing)."""
    if is_sql_url(data):
        _check_sqlite_file(str(data))
    elif not Path(data).is_dir():
        raise DataError(f"{data}: not a directory or database URL: pass a data folder or sqlite:///file.db")


def _register_sources(con: duckdb.DuckDBPyConnection, data: str | Path, mapping: Mapping) -> dict[str, _Raw]:
    """Register each available raw table as ``raw_<name>``."""
    _check_data(data)
    found: dict[str, _Raw] = {}
    if is_sql_url(data):
        url = str(data)
        for name in ("customers", "transactions", "events"):
            raw = _register_sql(con, url, mapping.table(name).source, f"raw_{name}")
            if raw is not None:
                found[name] = raw
        if "transactions" not in found:
            raise DataError(
                f"{redact_url(url)}: table '{mapping.table('transactions').source}' not found: "
                'create it or map your table with [transactions] table = "..." in a mapping file'
            )
        return found
    directory = Path(data)
    for name in ("customers", "transactions", "events"):
        stem = mapping.table(name).source
        path = _find_file(directory, stem)
        if path is None:
            if name == "transactions":
                raise DataError(
                    f"{directory}: no transactions file ({stem}.parquet or {stem}.csv): add one or map "
                    'yours with [transactions] table = "..." in a mapping file'
                )
            continue
        found[name] = _register_file(con, path, f"raw_{name}")
    return found


def _run(con: duckdb.DuckDBPyConnection, found: dict[str, _Raw], mapping: Mapping) -> dict[str, TableReport]:
    reports: dict[str, TableReport] = {}
    has_customers = "customers" in found
    for name in ("customers", "transactions", "events"):  # customers first: events check against it
        if name in found:
            try:
                reports[name] = _validate_table(con, TABLES[name], found[name], mapping, has_customers)
            except duckdb.Error as exc:  # a file that breaks the format after its first lines
                raise _read_error(found[name].where, exc) from None
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


def _publish(staging: Path, out_dir: Path) -> None:
    """Replace ``out_dir/clean`` and ``out_dir/rejects`` as a whole by the staged ones, so tables of
    an earlier validation (another data set) never stay beside the new ones."""
    for sub in ("clean", "rejects"):
        final = out_dir / sub
        if final.exists() or final.is_symlink():
            final.rename(staging / f"previous-{sub}")
        (staging / sub).rename(final)


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
            _write(con, result, staging, out_dir)
        except (OSError, duckdb.IOException) as exc:
            raise _unwritable(out_dir, exc) from None
        return result
    finally:
        con.close()
        shutil.rmtree(staging, ignore_errors=True)


def _write(con: duckdb.DuckDBPyConnection, result: ValidationResult, staging: Path, out_dir: Path) -> None:
    """Write the clean tables and rejects into ``staging``, then publish them into ``out_dir``."""
    (staging / "clean").mkdir()
    (staging / "rejects").mkdir()
    for name in result.reports:
        con.execute(f"COPY clean_{name} TO {_lit(str(staging / 'clean' / f'{name}.parquet'))} (FORMAT parquet)")
        result.clean_paths[name] = out_dir / "clean" / f"{name}.parquet"
        if result.reports[name].rejected:
            con.execute(f"COPY rejects_{name} TO {_lit(str(staging / 'rejects' / f'{name}.csv'))} (FORMAT csv, HEADER)")
            result.rejects_paths[name] = out_dir / "rejects" / f"{name}.csv"
    _publish(staging, out_dir)


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
        found: dict[str, _Raw] = {}
        for name, frame in (("customers", customers), ("transactions", transactions), ("events", events)):
            if frame is not None:
                found[name] = _register_frame(con, frame, f"raw_{name}", f"<{name} frame>")
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
