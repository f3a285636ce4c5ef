"""Ingestion and validation: raw sources in, clean canonical tables and rejects out.

Validation runs as SQL in DuckDB, so a 50M-row file is checked out of core and the same rules
apply to a directory of files, a SQL database and pandas frames held in memory.

Every row read ends up either accepted (in the clean table) or rejected (in the rejects file with
its ``reason``); the report's counts reconcile: ``read == accepted + rejected``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from churnclv.config import Mapping
from churnclv.schema import CUSTOMERS, EVENTS, TABLES, TRANSACTIONS, TableSpec

log = logging.getLogger(__name__)

SQL_SCHEMES = ("sqlite", "postgresql", "postgres", "mysql", "mssql", "oracle")
FILE_FORMATS = (".parquet", ".csv", ".csv.gz", ".tsv")
# timestamps outside these years are rejected as implausible (typos such as 0202-01-01)
MIN_YEAR, MAX_YEAR = 1900, 2200
ROW = "_row"  # 1-based row number in the source, kept in the rejects file


class DataError(ValueError):
    """A whole-file problem (missing column, empty or unreadable file): names file, column, fix."""


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
    """The one file (or Parquet folder) holding table ``stem`` in ``directory``."""
    found = [directory / f"{stem}{ext}" for ext in FILE_FORMATS if (directory / f"{stem}{ext}").is_file()]
    folder = directory / stem
    if folder.is_dir():
        found.append(folder)
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise DataError(
            f"{directory}: table '{stem}' is found more than once ({names}): keep exactly one"
        )
    if not found:
        other = sorted(p.name for p in directory.glob(f"{stem}.*") if p.is_file())
        if other:  # e.g. transactions.json or transactions.xlsx: say so instead of "no file"
            raise DataError(f"{directory / other[0]}: unknown format for table '{stem}': "
                            f"use {', '.join(stem + e for e in FILE_FORMATS)} (convert the file)")
    return found[0] if found else None


def _register_file(con: duckdb.DuckDBPyConnection, path: Path, view: str) -> None:
    """Expose a raw file as a view with every column as read (CSV: all text, so ids keep zeros)."""
    p = str(path).replace("'", "''")
    if path.is_dir():
        parquet = list(path.rglob("*.parquet"))
        csv = list(path.rglob("*.csv"))
        if parquet:
            src = f"read_parquet('{p}/**/*.parquet', union_by_name=true)"
        elif csv:
            src = f"read_csv('{p}/**/*.csv', all_varchar=true, header=true, union_by_name=true)"
        else:
            raise DataError(f"{path}: folder holds no .parquet or .csv files: add the table's files")
    elif path.name.endswith(".parquet"):
        src = f"read_parquet('{p}')"
    elif path.name.endswith((".csv", ".csv.gz", ".tsv")):
        if path.stat().st_size == 0:
            raise DataError(f"{path}: file is empty: it needs a header row and data rows")
        delim = "\\t" if path.name.endswith(".tsv") else ","
        src = f"read_csv('{p}', all_varchar=true, header=true, delim=E'{delim}')"
    else:
        raise DataError(f"{path}: unknown format: use .parquet, .csv, .csv.gz or .tsv")
    try:
        con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT * FROM {src}")
        con.execute(f"SELECT * FROM {view} LIMIT 0")
    except duckdb.Error as exc:
        raise DataError(f"{path}: unreadable ({str(exc).splitlines()[0]}): check the file") from None


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


def _redacted(url: str) -> str:
    """``url`` without its password and query string (which may hold one), for messages."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).set(query={}).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - unparseable: say nothing of it
        return "the database URL"


def _register_sql(con: duckdb.DuckDBPyConnection, url: str, table: str, view: str) -> bool:
    """Copy a SQL table into DuckDB as text columns, in chunks. False when the table is absent."""
    import sqlalchemy as sa

    where = _redacted(url)
    try:
        engine = sa.create_engine(_engine_url(url))
    except (sa.exc.SQLAlchemyError, ImportError, ValueError) as exc:
        raise DataError(
            f"{where}: not a usable database URL ({exc.__class__.__name__}: {exc}): use e.g. "
            "sqlite:///shop.db or postgresql://user@host/db, and install the database's driver"
        ) from None
    try:
        if not sa.inspect(engine).has_table(table):
            return False
        first = True
        quoted = engine.dialect.identifier_preparer.quote(table)
        with engine.connect() as conn:
            # nullable dtypes: an integer column with a NULL stays integer (ids 12, not 12.0)
            for chunk in pd.read_sql_query(f"SELECT * FROM {quoted}", conn, chunksize=250_000,
                                           dtype_backend="numpy_nullable"):
                chunk = _as_text(chunk)
                con.register("_chunk", chunk)
                if first:
                    con.execute(f"CREATE OR REPLACE TEMP TABLE {view} AS SELECT * FROM _chunk")
                    first = False
                else:
                    con.execute(f"INSERT INTO {view} SELECT * FROM _chunk")
                con.unregister("_chunk")
            if first:  # empty table: keep the columns
                cols = [c["name"] for c in sa.inspect(engine).get_columns(table)]
                _register_frame(con, pd.DataFrame({c: pd.Series(dtype="string") for c in cols}), view)
    except sa.exc.OperationalError as exc:
        raise DataError(f"{where}: cannot read table {table} ({str(exc.orig or exc).strip().splitlines()[0]}): "
                        "check the host, port, database name and credentials") from None
    except sa.exc.SQLAlchemyError as exc:
        raise DataError(f"{where} table {table}: unreadable ({exc.__class__.__name__}: {exc})") from None
    finally:
        engine.dispose()
    return True


def _as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Every column as nullable text, so SQL and in-memory sources follow the CSV rules exactly."""
    out = {}
    for c in frame.columns:
        s = frame[c]
        if pd.api.types.is_datetime64_any_dtype(s):
            text = s.dt.strftime("%Y-%m-%dT%H:%M:%S.%f%z") if s.dt.tz is not None else s.dt.strftime(
                "%Y-%m-%d %H:%M:%S.%f"
            )
            out[str(c)] = text.astype("string")
        elif pd.api.types.is_float_dtype(s):
            # repr keeps full precision and spells inf so the numeric rules see it; NaN is how pandas
            # writes a missing number, so it stays missing (a required column rejects it as such)
            out[str(c)] = pd.Series([None if pd.isna(v) else repr(float(v)) for v in s],
                                    index=s.index, dtype="string")
        else:
            out[str(c)] = s.astype("string")
    return pd.DataFrame(out, index=frame.index)


def _register_frame(con: duckdb.DuckDBPyConnection, frame: pd.DataFrame, view: str) -> None:
    con.register(f"{view}_df", _as_text(frame))
    con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT * FROM {view}_df")


# --------------------------------------------------------------------------- rules


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _column_types(con: duckdb.DuckDBPyConnection, view: str) -> dict[str, str]:
    return {r[0]: r[1] for r in con.execute(f"DESCRIBE {view}").fetchall()}


def _text(col: str, src_type: str) -> str:
    """SQL for a column as trimmed text (NULL when blank). Integral floats lose their '.0'."""
    if src_type in ("DOUBLE", "FLOAT", "REAL") or src_type.startswith("DECIMAL"):
        cast = (
            f"CASE WHEN {col} = floor({col}) AND abs({col}) < 9e15 "
            f"THEN CAST(CAST({col} AS BIGINT) AS VARCHAR) ELSE CAST({col} AS VARCHAR) END"
        )
    else:
        cast = f"CAST({col} AS VARCHAR)"
    return f"NULLIF(TRIM({cast}), '')"


def _timestamp(col: str, src_type: str) -> str:
    """SQL for a column as a naive UTC timestamp (NULL when it does not parse)."""
    if src_type.startswith("TIMESTAMP WITH TIME ZONE"):
        return f"CAST({col} AS TIMESTAMP)"  # session time zone is UTC
    if src_type.startswith("TIMESTAMP") or src_type == "DATE":
        return f"CAST({col} AS TIMESTAMP)"
    return f"CAST(TRY_CAST(NULLIF(TRIM(CAST({col} AS VARCHAR)), '') AS TIMESTAMPTZ) AS TIMESTAMP)"


def _float(col: str, src_type: str) -> str:
    return f"TRY_CAST(NULLIF(TRIM(CAST({col} AS VARCHAR)), '') AS DOUBLE)"


def _rules(spec: TableSpec, present: set[str], has_customers: bool) -> list[tuple[str, str]]:
    """(reason, SQL condition on the parsed row) in the order they are checked; first match wins."""
    rules: list[tuple[str, str]] = []
    for col in spec.columns:
        if col not in present:
            continue
        kind = spec.types[col]
        required = col in spec.required
        raw, parsed = f"r_{col}", f"p_{col}"
        if required:
            rules.append((f"missing {col}", f"{raw} IS NULL"))
        if kind == "timestamp":
            rules.append(
                (f"unparseable {col}: use ISO 8601 (YYYY-MM-DD[ HH:MM:SS][+HH:MM])",
                 f"{raw} IS NOT NULL AND {parsed} IS NULL")
            )
            rules.append(
                (f"implausible {col}: year outside {MIN_YEAR}-{MAX_YEAR}",
                 f"{parsed} IS NOT NULL AND (year({parsed}) < {MIN_YEAR} OR year({parsed}) > {MAX_YEAR})")
            )
        elif kind == "float":
            rules.append((f"non-numeric {col}", f"{raw} IS NOT NULL AND {parsed} IS NULL"))
            rules.append((f"non-finite {col} (NaN or infinity)", f"{parsed} IS NOT NULL AND NOT isfinite({parsed})"))
    if spec is EVENTS and has_customers:
        rules.append(
            ("unknown customer_id: not in the customers table",
             "p_customer_id IS NOT NULL AND p_customer_id NOT IN (SELECT customer_id FROM clean_customers)")
        )
    return rules


def _validate_table(
    con: duckdb.DuckDBPyConnection, spec: TableSpec, view: str, source: str, mapping: Mapping, has_customers: bool
) -> TableReport:
    """Build ``clean_<table>`` and ``rejects_<table>`` temp tables in ``con`` from raw ``view``."""
    tmap = mapping.table(spec.name)
    types = _column_types(con, view)
    if not types:
        raise DataError(f"{source}: no columns found: the file needs a header row")
    by_lower = {c.lower(): c for c in types}

    def resolve(canonical: str) -> str | None:
        wanted = tmap.source_column(canonical)
        return wanted if wanted in types else by_lower.get(wanted.lower())

    present: dict[str, str] = {}
    for col in spec.columns:
        actual = resolve(col)
        if actual is not None:
            present[col] = actual
        elif col in spec.required:
            wanted = tmap.source_column(col)
            raise DataError(
                f"{source}: required column '{wanted}' (canonical '{col}') is missing; columns found: "
                f"{list(types)}. Fix: rename the column or map it in a mapping file "
                f"([{spec.name}] columns = {{ {col} = \"your_column\" }})"
            )
    extras = [c for c in types if spec.keep_extra and c not in present.values()]

    select = [f"row_number() OVER () AS {ROW}"]
    for col, actual in present.items():
        qc, t = _q(actual), types[actual]
        select.append(f"{_text(qc, t)} AS r_{col}")
        kind = spec.types[col]
        parsed = _text(qc, t) if kind == "string" else _timestamp(qc, t) if kind == "timestamp" else _float(qc, t)
        if kind == "float" and col not in spec.required:
            parsed = f"CASE WHEN isnan({parsed}) THEN NULL ELSE {parsed} END"  # NaN: a missing optional value
        select.append(f"{parsed} AS p_{col}")
    for i, actual in enumerate(extras):
        select.append(f"{_text(_q(actual), types[actual])} AS x_{i}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE parsed_{spec.name} AS SELECT {', '.join(select)} FROM {view}")

    rules = _rules(spec, set(present), has_customers)
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
            raise DataError(f"{source}: empty: the transactions table has a header but no rows; export the "
                            "transactions again (nothing can be scored without them)")
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


def _register_sources(
    con: duckdb.DuckDBPyConnection, data: str | Path, mapping: Mapping
) -> dict[str, str]:
    """Register each available raw table as ``raw_<name>``; returns table -> source description."""
    found: dict[str, str] = {}
    if is_sql_url(data):
        url = str(data)
        for name in ("customers", "transactions", "events"):
            table = mapping.table(name).source
            if _register_sql(con, url, table, f"raw_{name}"):
                found[name] = f"{_redacted(url)} table {table}"
        if "transactions" not in found:
            raise DataError(
                f"{_redacted(url)}: table '{mapping.table('transactions').source}' not found: "
                "create it or map your table with [transactions] table = \"...\" in a mapping file"
            )
        return found
    directory = Path(data)
    if not directory.is_dir():
        raise DataError(f"{directory}: not a directory or database URL: pass a data folder or sqlite:///file.db")
    for name in ("customers", "transactions", "events"):
        stem = mapping.table(name).source
        path = _find_file(directory, stem)
        if path is None:
            if name == "transactions":
                raise DataError(
                    f"{directory}: no transactions file ({stem}.parquet or {stem}.csv): add one or map "
                    "yours with [transactions] table = \"...\" in a mapping file"
                )
            continue
        _register_file(con, path, f"raw_{name}")
        found[name] = str(path)
    return found


def _run(con: duckdb.DuckDBPyConnection, found: dict[str, str], mapping: Mapping) -> dict[str, TableReport]:
    reports: dict[str, TableReport] = {}
    has_customers = "customers" in found
    for name in ("customers", "transactions", "events"):  # customers first: events check against it
        if name in found:
            reports[name] = _validate_table(con, TABLES[name], f"raw_{name}", found[name], mapping, has_customers)
    return reports


def validate_source(
    data: str | Path,
    out_dir: Path | str,
    *,
    mapping: Mapping | None = None,
    memory_limit: str | None = None,
) -> ValidationResult:
    """Validate a data directory or SQL URL; write clean Parquet and rejects CSV under ``out_dir``.

    Writes ``out_dir/clean/<table>.parquet`` and ``out_dir/rejects/<table>.csv`` (only for tables
    with rejects). Raises :class:`DataError` for whole-file problems.
    """
    mapping = mapping or Mapping()
    out_dir = Path(out_dir)
    (out_dir / "clean").mkdir(parents=True, exist_ok=True)
    (out_dir / "rejects").mkdir(parents=True, exist_ok=True)
    con = _connect(memory_limit)
    try:
        found = _register_sources(con, data, mapping)
        result = ValidationResult(reports=_run(con, found, mapping))
        for name in result.reports:
            clean = out_dir / "clean" / f"{name}.parquet"
            con.execute(f"COPY clean_{name} TO {_lit(str(clean))} (FORMAT parquet)")
            result.clean_paths[name] = clean
            rejects = out_dir / "rejects" / f"{name}.csv"
            rejects.unlink(missing_ok=True)
            if result.reports[name].rejected:
                con.execute(f"COPY rejects_{name} TO {_lit(str(rejects))} (FORMAT csv, HEADER)")
                result.rejects_paths[name] = rejects
        return result
    finally:
        con.close()


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
        found: dict[str, str] = {}
        for name, frame in (("customers", customers), ("transactions", transactions), ("events", events)):
            if frame is not None:
                _register_frame(con, frame, f"raw_{name}")
                found[name] = f"<{name} frame>"
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
