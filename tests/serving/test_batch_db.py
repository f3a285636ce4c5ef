"""The batch job's database sink against SQLite and a real PostgreSQL server.

The PostgreSQL server is the session fixture ``postgres_url`` of ``tests/conftest.py`` (Debian's
``postgresql`` package); the tests skip, saying so, only when its binaries are absent (CI installs them).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from churnclv.serving.batch import read_scores, run_batch
from churnclv.serving.sinks import ScoreSink, SinkError, normalize_url

pytestmark = pytest.mark.integration

AS_OF = pd.Timestamp("2025-10-02")


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'scores.db'}"
    return request.getfixturevalue("postgres_url")


def _table(url: str, table: str) -> pd.DataFrame:
    engine = sa.create_engine(normalize_url(url))
    try:
        with engine.connect() as conn:
            return pd.read_sql(sa.text(f"SELECT * FROM {table}"), conn)
    finally:
        engine.dispose()


def test_sink_upserts_each_customer_once_and_updates_values(db_url: str, small_world: Path,
                                                             trained_store: dict, tmp_path: Path) -> None:
    table = f"scores_{int(time.time() * 1e6) % 10**9}"  # the PostgreSQL server is shared by the session

    def run() -> dict:
        return run_batch(clean=small_world, as_of=AS_OF, out=tmp_path / "out", model_uri=trained_store["model_uri"],
                         tracking_uri=trained_store["tracking_uri"], db=db_url, db_table=table, chunk_size=600,
                         echo=lambda _m: None, progress=False)

    first = run()
    n = first["counts"]["rows_written"]
    engine = sa.create_engine(normalize_url(db_url))
    with engine.begin() as conn:  # corrupt a few values: the re-run must overwrite them
        conn.execute(sa.text(f"UPDATE {table} SET p_churn = -1, tier = 'stale' WHERE customer_id < '00000100'"))
    engine.dispose()
    second = run()
    assert second["db"]["rows_upserted"] == n and second["db"]["rows_for_as_of"] == n

    rows = _table(db_url, table)
    assert len(rows) == n == rows["customer_id"].nunique()
    assert not (rows["p_churn"] < 0).any() and not (rows["tier"] == "stale").any()
    parquet = read_scores(tmp_path / "out" / "as_of=2025-10-02").set_index("customer_id")
    rows = rows.set_index("customer_id").loc[parquet.index]
    assert (rows["p_churn"].to_numpy() == parquet["p_churn"].to_numpy()).all()  # every bit kept
    assert (rows["tier"] == parquet["tier"]).all() and (rows["model_version"] == "1").all()
    assert [json.loads(r) for r in rows["reasons"].iloc[:20]] == [list(r) for r in parquet["reasons"].iloc[:20]]
    assert {str(pd.Timestamp(d).date()) for d in rows["as_of"]} == {"2025-10-02"}


def test_sink_refuses_unsupported_databases_and_bad_names(tmp_path: Path) -> None:
    with pytest.raises(SinkError, match="not supported.*postgresql://"):
        ScoreSink("mysql://u@h/db")
    with pytest.raises(SinkError, match="a name must match"):
        ScoreSink(f"sqlite:///{tmp_path / 'x.db'}", table="scores; DROP TABLE x")
    assert normalize_url("postgresql://u:p@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("postgres://u:p@h/db").drivername == "postgresql+psycopg"
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE churnclv_scores (customer_id TEXT PRIMARY KEY, score REAL)"))
    engine.dispose()
    with pytest.raises(SinkError, match="exists with other columns.*drop it, or pass another table name"):
        ScoreSink(f"sqlite:///{tmp_path / 'x.db'}").prepare()
