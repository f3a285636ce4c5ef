"""Database sink of the batch job: a table that always holds exactly the published Parquet partitions.

The table (default ``churnclv_scores``) has the Parquet columns with ``reasons`` stored as JSON text
and the primary key ``(customer_id, as_of)``. An as-of's rows are replaced at publish time, in one
transaction: :meth:`ScoreSink.replace` deletes that as-of's rows and inserts the partition's, and
the batch job commits it while it swaps the Parquet partition in (see
:func:`churnclv.serving.batch.run_batch`). A failed or killed run therefore leaves the table as it
was: a customer removed from the data since the last run of an as-of disappears from the table
when the as-of is published again, and a half-scored as-of is never visible.

A table written by an earlier version gains the columns added since (nullable ones, such as
``tier_level``, ``expected_next_purchase_days``, ``next_purchase_days_p80``, ``next_purchase_date_p80``
the marketing fields ``historic_clv`` ... ``net_clv``, and the campaign's ``campaign`` and ``holdout``)
when the sink opens it: its earlier rows hold NULL there until their as-of is scored again. The
marketing and campaign fields stay nullable in a new table too, so that every table can gain them.

Error messages never quote a password, a query string (``?password=...``) or a row of customer
data: URLs pass :func:`churnclv.redaction.redact_url`, database errors are reduced to their class,
their SQLSTATE and the first line of their message (PostgreSQL puts the failing row in the
``DETAIL`` lines).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.types import TypeEngine

from churnclv.errors import ChurnclvError
from churnclv.redaction import redact_text, redact_url
from churnclv.serving.batch_errors import BatchError
from churnclv.serving.snapshots import OUTPUT_SCHEMA

log = logging.getLogger(__name__)

DEFAULT_TABLE = "churnclv_scores"
KEY = ("customer_id", "as_of")
# NOT NULL in the table: every scored customer has them (the Parquet schema leaves them nullable)
_ALWAYS_SCORED = frozenset({"p_churn", "p_alive", "expected_purchases", "expected_spend", "clv"})
# rows per INSERT statement inside the as-of's transaction: bounds the Python row dicts held at once
ROWS_PER_STATEMENT = 10_000
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
# PostgreSQL keeps pg_* for its catalogs (pg_class is found before any table of the user's), SQLite
# keeps sqlite_* for its own
_RESERVED_PREFIXES = ("pg_", "sqlite_")
_SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")
_DIALECTS = ("postgresql", "sqlite")


class SinkError(ChurnclvError, ValueError):
    """A database URL, table or write the sink cannot use; the message names it, the rule and the fix."""


def _columns(extra: Sequence[pa.Field] = ()) -> list[sa.Column]:
    """The score table: the batch output's columns (OUTPUT_SCHEMA, then ``extra``) as SQL; reasons as a JSON
    array in text."""
    f = sa.Float(precision=53)  # DOUBLE PRECISION on PostgreSQL: keep every bit of the scores
    types: dict[pa.DataType, TypeEngine[Any] | type[TypeEngine[Any]]] = {
        pa.string(): sa.Text,
        pa.date32(): sa.Date,
        pa.float64(): f,
        pa.int64(): sa.BigInteger,
        pa.bool_(): sa.Boolean,
        pa.list_(pa.string()): sa.Text,
    }
    return [
        sa.Column(
            field.name,
            types[field.type],
            primary_key=field.name in KEY,
            nullable=field.nullable and field.name not in _ALWAYS_SCORED,
        )
        for field in [*OUTPUT_SCHEMA, *extra]
    ]


def normalize_url(url: str) -> URL:
    """A SQLAlchemy URL for PostgreSQL (psycopg 3) or SQLite; raises :class:`SinkError` otherwise."""
    try:
        parsed = make_url(url)
    except (sa.exc.ArgumentError, ValueError):
        # not quoted: where its password is cannot be told from a URL that does not parse
        raise SinkError(
            "--db is not a database URL (not shown: it may hold a password): use "
            "postgresql://user@host/db or sqlite:///scores.db"
        ) from None
    backend = parsed.drivername.partition("+")[0]
    if backend == "postgres":
        backend = "postgresql"
    if backend not in _DIALECTS:
        raise SinkError(
            f"--db {redact_url(url)}: the {backend!r} database is not supported (the sink is built and tested "
            f"on PostgreSQL and SQLite): use postgresql://... or sqlite:///..."
        )
    if backend == "postgresql" and "+" not in parsed.drivername:
        # psycopg 3 is the driver we ship; SQLAlchemy 2.0 would default to psycopg2
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def check_table_name(table: str) -> None:
    """Refuse a table name the sink must not write: not a plain identifier, or a system table's."""
    if not isinstance(table, str) or not _NAME.match(table):
        raise SinkError(
            f"database table {str(table)[:80]!r}: a name must match [A-Za-z_][A-Za-z0-9_]* (at most 63 characters): "
            "pick a plain name such as churnclv_scores"
        )
    if table.lower().startswith(_RESERVED_PREFIXES):
        raise SinkError(
            f"database table {table!r}: names starting with {' or '.join(_RESERVED_PREFIXES)} belong to the "
            "database's own catalogs: pick a plain name such as churnclv_scores"
        )


def db_reason(exc: BaseException) -> str:
    """A database error in one line without data: the driver's class, SQLSTATE and first line.

    SQLAlchemy's own text carries the statement and its parameters (customer rows); PostgreSQL puts
    the failing row in the DETAIL lines. Both are left out; URLs in what is left are redacted.
    """
    orig = getattr(exc, "orig", None) or exc
    name = type(orig).__name__
    code = getattr(orig, "sqlstate", None) or getattr(orig, "sqlite_errorname", None)
    first = (str(orig).strip().splitlines() or [""])[0][:200]
    head = f"{name}, {code}" if code else name
    return redact_text(f"{head}: {first}" if first else head)


class Replacement:
    """An as-of's rows replaced inside one open transaction; :meth:`commit` makes them visible.

    ``rows_removed`` (that as-of's rows before), ``rows_written`` and ``rows_for_as_of`` (counted
    inside the transaction) are known before the commit, so the manifest can carry them.
    """

    def __init__(
        self,
        sink: ScoreSink,
        conn: Connection,
        trans: sa.RootTransaction,
        rows_removed: int,
        rows_written: int,
        rows_for_as_of: int,
    ) -> None:
        self.sink = sink
        self.rows_removed = rows_removed
        self.rows_written = rows_written
        self.rows_for_as_of = rows_for_as_of
        self._conn: Connection | None = conn
        self._trans = trans

    def commit(self) -> None:
        """Commit; raises :class:`SinkError` (and the rows of the as-of stay as they were)."""
        try:
            self._trans.commit()
        except sa.exc.SQLAlchemyError as exc:
            raise SinkError(f"database {self.sink.where}: the commit failed ({db_reason(exc)})") from None
        finally:
            self.close()

    def close(self) -> None:
        """Roll back when not committed and give the connection back (safe to call twice)."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            if self._trans.is_active:
                self._trans.rollback()
        except sa.exc.SQLAlchemyError as exc:  # the server went away: it rolls back on its own
            log.warning("database %s: rollback failed (%s)", self.sink.where, db_reason(exc))
        finally:
            conn.close()


class ScoreSink:
    """Writes the score rows of an as-of (Arrow tables with the batch columns) into ``table`` at ``url``.

    Parameters
    ----------
    url : str
        ``postgresql://...`` (driven by psycopg 3) or ``sqlite:///path.db``.
    table : str
        Table name (created when missing, with the primary key ``(customer_id, as_of)``); not a
        system table's (``pg_*``, ``sqlite_*``).
    extra : sequence of pyarrow.Field
        Nullable columns the rows carry after the batch output's (a targeting's), added to an existing table.
    """

    def __init__(self, url: str, *, table: str = DEFAULT_TABLE, extra: Sequence[pa.Field] = ()) -> None:
        check_table_name(table)
        self.url = normalize_url(url)
        self.where = redact_url(url)
        self.table_name = table
        try:
            self.engine: Engine = sa.create_engine(self.url, future=True)
        except (sa.exc.SQLAlchemyError, ImportError) as exc:
            raise SinkError(f"database {self.where}: cannot use it ({db_reason(exc)}): check the URL") from None
        self.table = sa.Table(table, sa.MetaData(), *_columns(extra))

    def prepare(self) -> None:
        """Create the table when missing; check an existing one has the columns and the key, and add
        the nullable columns it lacks (added to the batch output since the table was created)."""
        try:
            with self.engine.begin() as conn:
                schema = self._schema_of(conn)
                if schema in _SYSTEM_SCHEMAS:  # before CREATE: it would create the table there
                    raise SinkError(
                        f"database table {self.table_name!r} resolves to the system schema {schema} (see the "
                        "URL's search_path): pick a plain name such as churnclv_scores, in a schema of yours"
                    )
                self.table.create(conn, checkfirst=True)
                inspector = sa.inspect(conn)
                have = {c["name"] for c in inspector.get_columns(self.table_name)}
                pk = set(inspector.get_pk_constraint(self.table_name).get("constrained_columns") or ())
                missing = [c for c in self.table.columns if c.name not in have]
                if not any(c.primary_key or not c.nullable for c in missing) and pk == set(KEY):
                    self._add_columns(conn, missing)
                    missing = []
        except sa.exc.SQLAlchemyError as exc:
            raise SinkError(
                f"database {self.where}: cannot connect, create or upgrade table {self.table_name!r} "
                f"({db_reason(exc)}): check the URL, that the server runs and the user's rights"
            ) from None
        if missing or pk != set(KEY):
            raise SinkError(
                f"database table {self.table_name!r} exists with other columns (missing "
                f"{[c.name for c in missing]}, primary key {sorted(pk)}; needed primary key {list(KEY)}): "
                "drop it, or pass another table name"
            )

    def _add_columns(self, conn: Connection, columns: list[sa.Column]) -> None:
        """``ALTER TABLE ... ADD COLUMN`` each of ``columns`` (nullable: the rows already there get NULL)."""
        quoted = self.engine.dialect.identifier_preparer.quote(self.table_name)
        # PostgreSQL: a concurrent run (another as-of) may add them first
        guard = "IF NOT EXISTS " if self.engine.dialect.name == "postgresql" else ""
        for column in columns:
            spec = sa.schema.CreateColumn(column).compile(dialect=self.engine.dialect)
            conn.execute(sa.text(f"ALTER TABLE {quoted} ADD COLUMN {guard}{spec}"))
            log.info("database table %s: added column %s", self.table_name, column.name)

    def _schema_of(self, conn: Connection) -> str | None:
        """PostgreSQL: the schema the unqualified ``table_name`` resolves to, or the one it would be
        created in when it does not exist; None elsewhere."""
        if self.engine.dialect.name != "postgresql":
            return None
        return conn.execute(
            sa.text(
                "SELECT coalesce((SELECT n.nspname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n "
                "ON n.oid = c.relnamespace WHERE c.oid = to_regclass(:t)), current_schema())"
            ),
            {"t": f'"{self.table_name}"'},
        ).scalar_one_or_none()

    @staticmethod
    def rows(chunk: pa.Table) -> Iterator[list[dict[str, Any]]]:
        """The chunk as lists of row dicts (``reasons`` as JSON text), ``ROWS_PER_STATEMENT`` at a time."""
        for batch in chunk.to_batches(max_chunksize=ROWS_PER_STATEMENT):
            records = batch.to_pylist()
            for r in records:
                r["reasons"] = json.dumps(r["reasons"] or [], ensure_ascii=False)
            yield records

    def replace(self, as_of: Any, chunks: Iterable[pa.Table]) -> Replacement:
        """Delete the rows of ``as_of`` and insert ``chunks`` in one transaction, left open.

        Returns the open :class:`Replacement`: the caller commits it (or closes it, which rolls
        back). Raises :class:`SinkError` after rolling back.
        """
        conn: Connection | None = None
        try:
            conn = self.engine.connect()
            trans = conn.begin()
            removed = conn.execute(sa.delete(self.table).where(self.table.c.as_of == as_of)).rowcount
            written = 0
            insert = sa.insert(self.table)
            for chunk in chunks:
                for records in self.rows(chunk):
                    conn.execute(insert, records)
                    written += len(records)
            q = sa.select(sa.func.count()).select_from(self.table).where(self.table.c.as_of == as_of)
            count = int(conn.execute(q).scalar_one())
        except sa.exc.SQLAlchemyError as exc:
            if conn is not None:
                conn.close()  # rolls back
            raise SinkError(
                f"database {self.where}: writing the rows of as-of {as_of} into {self.table_name!r} failed "
                f"({db_reason(exc)}); the table keeps its rows of that as-of: fix the database and run again"
            ) from None
        except BaseException:
            if conn is not None:
                conn.close()
            raise
        return Replacement(self, conn, trans, removed if removed is not None and removed >= 0 else 0, written, count)

    def count(self, as_of: Any) -> int:
        """Rows of ``as_of`` in the table."""
        with self.engine.connect() as conn:
            q = sa.select(sa.func.count()).select_from(self.table).where(self.table.c.as_of == as_of)
            return int(conn.execute(q).scalar_one())

    def close(self) -> None:
        """Release the database connections."""
        self.engine.dispose()


def open_sink(db: str | None, table: str, extra: Sequence[pa.Field] = ()) -> ScoreSink | None:
    """The batch job's sink at ``db``, prepared (None without a database); its problems as a :class:`BatchError`."""
    if db is None:
        return None
    try:
        sink = ScoreSink(db, table=table, extra=extra)
        sink.prepare()
    except SinkError as exc:
        raise BatchError(str(exc)) from None
    return sink


def replace_partition(sink: ScoreSink, as_of: Any, files: Sequence[Path]) -> Replacement:
    """The as-of's rows replaced by the part ``files``' in a transaction left open for the publish."""
    chunks = (pq.read_table(f) for f in files)  # one part file in memory at a time
    try:
        return sink.replace(as_of, chunks)
    except SinkError as exc:
        raise BatchError(f"{exc}; nothing was published") from None
