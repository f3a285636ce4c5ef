"""SQL databases: a table of a database URL copied into DuckDB as text columns, in chunks.

URLs reach messages only through :func:`churnclv.redaction.redact_url`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from churnclv.ingestion.frames import register_frame, rows_as_text
from churnclv.ingestion.raw import RawTable, check_names
from churnclv.redaction import redact_text, redact_url
from churnclv.tables import DataError

__all__ = ["SQL_SCHEMES", "check_sqlite_file", "engine_url", "is_sql_url", "register_sql"]
SQL_SCHEMES = ("sqlite", "postgresql", "postgres", "mysql", "mssql", "oracle")


def is_sql_url(data: str | Path) -> bool:
    """True when ``data`` is a database URL such as ``sqlite:///x.db`` or ``postgresql://...``."""
    m = re.match(r"^([a-z][a-z0-9+]*)://", str(data))
    return m is not None and m.group(1).split("+")[0] in SQL_SCHEMES


def engine_url(url: str) -> Any:
    """The SQLAlchemy URL for ``url``: ``postgres://`` (an alias SQLAlchemy does not know) and a bare
    ``postgresql://`` use psycopg 3, the PostgreSQL driver churnclv ships (SQLAlchemy 2.0 would pick
    psycopg2, which is not installed); an explicit ``+driver`` is kept."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    backend, _, driver = parsed.drivername.partition("+")
    if backend in ("postgres", "postgresql"):
        parsed = parsed.set(drivername=f"postgresql+{driver or 'psycopg'}")
    return parsed


def check_sqlite_file(url: str) -> None:
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


def register_sql(con: duckdb.DuckDBPyConnection, url: str, table: str, view: str) -> RawTable | None:
    """Copy a SQL table into DuckDB as text columns, in chunks. None when the table is absent."""
    import sqlalchemy as sa

    where = redact_url(url)
    try:
        engine = sa.create_engine(engine_url(url))
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
            check_names(keys, f"{where} table {table}")
            for rows in result.partitions(250_000):
                chunk, chunk_floats = rows_as_text(keys, rows, f"{where} table {table}")
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
                register_frame(
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
    return RawTable(view=view, where=f"{where} table {table}", float_columns=frozenset(floats))
