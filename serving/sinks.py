"""Database sink of the batch job: the score rows upserted into a table, one transaction per chunk.

The table (default ``churnclv_scores``) has the Parquet columns with ``reasons`` stored as JSON text
and the primary key ``(customer_id, as_of)``. Rows are written with ``INSERT ... ON CONFLICT
(customer_id, as_of) DO UPDATE`` (PostgreSQL and SQLite), so re-running an as-of updates its rows
and never duplicates them.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url

log = logging.getLogger(__name__)

DEFAULT_TABLE = "churnclv_scores"
KEY = ("customer_id", "as_of")
# rows per INSERT statement inside a chunk's transaction: bounds the Python row dicts held at once
ROWS_PER_STATEMENT = 10_000
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_DIALECTS = ("postgresql", "sqlite")


class SinkError(ValueError):
    """A database URL or table the sink cannot use; the message names it, the rule and the fix."""


def _columns() -> list[sa.Column]:
    f = sa.Float(precision=53)  # DOUBLE PRECISION on PostgreSQL: keep every bit of the scores
    return [
        sa.Column("customer_id", sa.Text, primary_key=True),
        sa.Column("as_of", sa.Date, primary_key=True),
        sa.Column("p_churn", f, nullable=False),
        sa.Column("p_alive", f, nullable=False),
        sa.Column("expected_purchases", f, nullable=False),
        sa.Column("expected_spend", f, nullable=False),
        sa.Column("clv", f, nullable=False),
        sa.Column("expected_next_purchase_date", sa.Date),
        sa.Column("growth_score", f),
        sa.Column("tier", sa.Text),
        sa.Column("stage", sa.Text),
        sa.Column("reasons", sa.Text),  # JSON array of strings
        sa.Column("action", sa.Text),
        sa.Column("model_version", sa.Text, nullable=False),
    ]


def normalize_url(url: str) -> URL:
    """A SQLAlchemy URL for PostgreSQL (psycopg 3) or SQLite; raises :class:`SinkError` otherwise."""
    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError:
        raise SinkError(
            f"--db {url!r} is not a database URL: use postgresql://user:pass@host/db or sqlite:///scores.db"
        ) from None
    backend = parsed.drivername.partition("+")[0]
    if backend == "postgres":
        backend = "postgresql"
    if backend not in _DIALECTS:
        raise SinkError(
            f"--db {parsed.render_as_string(hide_password=True)}: the {backend!r} database is not supported "
            f"(upserts need ON CONFLICT): use postgresql://... or sqlite:///..."
        )
    if backend == "postgresql" and "+" not in parsed.drivername:
        # psycopg 3 is the driver we ship; SQLAlchemy 2.0 would default to psycopg2
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def redact(url: str) -> str:
    """The URL without its password, for logs and the manifest."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<invalid url>"


class ScoreSink:
    """Upserts score chunks (Arrow tables with the batch columns) into ``table`` at ``url``.

    Parameters
    ----------
    url : str
        ``postgresql://...`` (driven by psycopg 3) or ``sqlite:///path.db``.
    table : str
        Table name (created when missing, with the primary key ``(customer_id, as_of)``).
    """

    def __init__(self, url: str, *, table: str = DEFAULT_TABLE) -> None:
        if not _NAME.match(table):
            raise SinkError(
                f"database table {table!r}: a name must match [A-Za-z_][A-Za-z0-9_]* (at most 63 characters): "
                "pick a plain name such as churnclv_scores"
            )
        self.url = normalize_url(url)
        self.table_name = table
        self.engine: Engine = sa.create_engine(self.url, future=True)
        self.table = sa.Table(table, sa.MetaData(), *_columns())
        self._stmt = self._upsert_statement()

    def _upsert_statement(self) -> Any:
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        stmt = insert(self.table)
        update = {c.name: stmt.excluded[c.name] for c in self.table.columns if c.name not in KEY}
        return stmt.on_conflict_do_update(index_elements=list(KEY), set_=update)

    def prepare(self) -> None:
        """Create the table when missing; check an existing one has the columns and the key."""
        try:
            with self.engine.begin() as conn:
                self.table.create(conn, checkfirst=True)
                inspector = sa.inspect(conn)
                have = {c["name"] for c in inspector.get_columns(self.table_name)}
                pk = set(inspector.get_pk_constraint(self.table_name).get("constrained_columns") or ())
        except sa.exc.OperationalError as exc:
            raise SinkError(
                f"database {self.url.render_as_string(hide_password=True)}: cannot connect or create table "
                f"{self.table_name!r} ({exc.orig}): check the URL, that the server runs and the user's rights"
            ) from None
        missing = [c.name for c in self.table.columns if c.name not in have]
        if missing or pk != set(KEY):
            raise SinkError(
                f"database table {self.table_name!r} exists with other columns (missing {missing}, primary key "
                f"{sorted(pk)}; needed primary key {list(KEY)}): drop it, or pass another table name"
            )

    @staticmethod
    def rows(chunk: pa.Table) -> Iterator[list[dict[str, Any]]]:
        """The chunk as lists of row dicts (``reasons`` as JSON text), ``ROWS_PER_STATEMENT`` at a time."""
        for batch in chunk.to_batches(max_chunksize=ROWS_PER_STATEMENT):
            records = batch.to_pylist()
            for r in records:
                r["reasons"] = json.dumps(r["reasons"] or [], ensure_ascii=False)
            yield records

    def write(self, chunk: pa.Table) -> int:
        """Upsert one chunk in one transaction; returns the rows written."""
        n = 0
        with self.engine.begin() as conn:
            for records in self.rows(chunk):
                conn.execute(self._stmt, records)
                n += len(records)
        return n

    def count(self, as_of: Any) -> int:
        """Rows of ``as_of`` in the table."""
        with self.engine.connect() as conn:
            q = sa.select(sa.func.count()).select_from(self.table).where(self.table.c.as_of == as_of)
            return int(conn.execute(q).scalar_one())

    def close(self) -> None:
        self.engine.dispose()
