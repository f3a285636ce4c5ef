"""The batch job's database sink against SQLite and a real PostgreSQL server: the table always holds
the published partitions, row for row (re-runs after customers left, killed runs, resumed runs).

The PostgreSQL server is the session fixture ``postgres_url`` of ``tests/conftest.py`` (Debian's
``postgresql`` package); the tests skip, saying so, only when its binaries are absent (CI installs them).
"""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
import sqlalchemy as sa

from churnclv.models.marketing import MARKETING_COLUMNS
from churnclv.serving import publication
from churnclv.serving.batch import run_batch
from churnclv.serving.batch_errors import BatchError
from churnclv.serving.sinks import Replacement, ScoreSink, SinkError, normalize_url
from churnclv.serving.snapshots import OUTPUT_SCHEMA, partition_dirs, read_scores, scores_dir

pytestmark = pytest.mark.integration

AS_OF = pd.Timestamp("2025-10-02")
REMOVED = 10  # customers who leave the data between two runs of the same as-of
_tables = itertools.count(1)


def _unique_table() -> str:
    """A table name of its own: the PostgreSQL server is shared by the whole session."""
    return f"scores_{os.getpid()}_{next(_tables)}"


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


def _run(world: Path, out: Path, store: dict, db_url: str, table: str, **kwargs) -> dict:
    kwargs.setdefault("chunk_size", 600)
    return run_batch(
        clean=world,
        as_of=AS_OF,
        out=out,
        model_uri=store["model_uri"],
        tracking_uri=store["tracking_uri"],
        db=db_url,
        db_table=table,
        echo=lambda _m: None,
        progress=False,
        **kwargs,
    )


def _assert_table_equals_partition(db_url: str, table: str, out: Path) -> None:
    """The table's rows of the as-of are exactly the published partition's, value for value."""
    rows = _table(db_url, table)
    rows = rows[[str(pd.Timestamp(d).date()) == "2025-10-02" for d in rows["as_of"]]]
    parquet = read_scores(out, AS_OF)
    assert sorted(rows["customer_id"]) == sorted(parquet["customer_id"])
    rows = rows.set_index("customer_id").loc[parquet["customer_id"]]
    for col in ("p_churn", "tier", "tier_level", "expected_next_purchase_days", *MARKETING_COLUMNS):
        got = rows[col].reset_index(drop=True)
        if parquet[col].dtype.kind == "f":  # a column of NULLs only reads back as None objects
            got = got.astype(float)
        pd.testing.assert_series_equal(got, parquet[col].reset_index(drop=True), check_dtype=False, obj=col)


@pytest.fixture(scope="module")
def fewer_customers(small_frames: dict[str, pd.DataFrame], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """small_world without REMOVED of its customers (every row of theirs gone: erased on request)."""
    out = tmp_path_factory.mktemp("fewer_customers")
    gone = set(small_frames["customers"]["customer_id"].iloc[100 : 100 + REMOVED])
    for name, frame in small_frames.items():
        frame[~frame["customer_id"].isin(gone)].to_parquet(out / f"{name}.parquet", index=False)
    return out


def test_sink_replaces_each_customer_once_and_updates_values(
    db_url: str, small_world: Path, trained_store: dict, tmp_path: Path
) -> None:
    table = _unique_table()

    def run() -> dict:
        return run_batch(
            clean=small_world,
            as_of=AS_OF,
            out=tmp_path / "out",
            model_uri=trained_store["model_uri"],
            tracking_uri=trained_store["tracking_uri"],
            db=db_url,
            db_table=table,
            chunk_size=600,
            echo=lambda _m: None,
            progress=False,
        )

    first = run()
    n = first["counts"]["rows_written"]
    engine = sa.create_engine(normalize_url(db_url))
    with engine.begin() as conn:  # corrupt a few values: the re-run must overwrite them
        conn.execute(sa.text(f"UPDATE {table} SET p_churn = -1, tier = 'stale' WHERE customer_id < '00000100'"))
    engine.dispose()
    second = run()
    assert second["db"]["rows_written"] == n and second["db"]["rows_for_as_of"] == n
    assert second["db"]["rows_removed"] == n  # the first run's rows of the as-of, replaced

    rows = _table(db_url, table)
    assert len(rows) == n == rows["customer_id"].nunique()
    assert not (rows["p_churn"] < 0).any() and not (rows["tier"] == "stale").any()
    parquet = read_scores(tmp_path / "out", AS_OF).set_index("customer_id")
    rows = rows.set_index("customer_id").loc[parquet.index]
    assert (rows["p_churn"].to_numpy() == parquet["p_churn"].to_numpy()).all()  # every bit kept
    assert (rows["tier"] == parquet["tier"]).all() and (rows["model_version"] == "1").all()
    assert [json.loads(r) for r in rows["reasons"].iloc[:20]] == [list(r) for r in parquet["reasons"].iloc[:20]]
    assert {str(pd.Timestamp(d).date()) for d in rows["as_of"]} == {"2025-10-02"}


def test_rerun_after_customers_left_removes_their_rows(
    db_url: str, small_world: Path, fewer_customers: Path, trained_store: dict, tmp_path: Path
) -> None:
    """Regression: re-running an as-of after customers were removed from the data left their rows in
    the table (upserts never delete): 1,500 rows against 1,490 in the partition."""
    table = _unique_table()
    first = _run(small_world, tmp_path / "out", trained_store, db_url, table)
    second = _run(fewer_customers, tmp_path / "out", trained_store, db_url, table)
    n = first["counts"]["rows_written"]
    assert second["counts"]["rows_written"] == n - REMOVED
    assert second["db"] == {
        **second["db"],
        "rows_written": n - REMOVED,
        "rows_removed": n,
        "rows_for_as_of": n - REMOVED,
    }
    _assert_table_equals_partition(db_url, table, tmp_path / "out")


class KilledError(RuntimeError):
    pass


def _kill_after(chunk: int):
    def hook(i: int) -> None:
        if i == chunk:
            raise KilledError

    return hook


def test_killed_run_leaves_the_table_as_last_published(
    db_url: str, small_world: Path, fewer_customers: Path, trained_store: dict, tmp_path: Path
) -> None:
    """Regression: after a kill the table showed the scored chunks of the as-of (a partial as-of)
    until --resume. Rows reach the table only when the partition is published."""
    table, out = _unique_table(), tmp_path / "out"
    with pytest.raises(KilledError):  # first run of the as-of, killed after two of three chunks
        _run(small_world, out, trained_store, db_url, table, after_chunk=_kill_after(1))
    assert _table(db_url, table).empty and not scores_dir(out, AS_OF).exists()

    _run(small_world, out, trained_store, db_url, table)  # a complete run
    published = read_scores(out, AS_OF)
    with pytest.raises(KilledError):  # a re-run (ten customers fewer), killed: the complete run's rows stay
        _run(fewer_customers, out, trained_store, db_url, table, after_chunk=_kill_after(1))
    _assert_table_equals_partition(db_url, table, out)
    assert len(read_scores(out, AS_OF)) == len(published)

    resumed = _run(fewer_customers, out, trained_store, db_url, table, resume=True)
    assert resumed["resumed_chunks"] == 2 and resumed["counts"]["rows_written"] == len(published) - REMOVED
    _assert_table_equals_partition(db_url, table, out)


def test_failed_database_write_publishes_nothing(small_world: Path, trained_store: dict, tmp_path: Path) -> None:
    """A write the database refuses (here a CHECK constraint) rolls back; the partition is not
    published, so Parquet and table stay equal, and the message holds no row of customer data."""
    db = tmp_path / "scores.db"
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        ScoreSink(f"sqlite:///{db}").table.create(conn)
        conn.execute(
            sa.text(
                "CREATE TRIGGER refuse BEFORE INSERT ON churnclv_scores "
                "BEGIN SELECT RAISE(ABORT, 'refused by a trigger'); END"
            )
        )
    engine.dispose()
    with pytest.raises(BatchError) as info:
        _run(small_world, tmp_path / "out", trained_store, f"sqlite:///{db}", "churnclv_scores")
    message = str(info.value)
    assert "refused by a trigger" in message and "nothing was published" in message
    assert "\n" not in message and "[SQL" not in message and "parameters" not in message
    assert not scores_dir(tmp_path / "out", AS_OF).exists() and not (tmp_path / "out" / "LATEST").exists()
    assert _table(f"sqlite:///{db}", "churnclv_scores").empty


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "two-renames"])
def test_failed_commit_swaps_the_previous_partition_back(
    exchange: bool,
    small_world: Path,
    fewer_customers: Path,
    trained_store: dict,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A commit that fails after the partition's folders were swapped in puts the previous folders back
    (scores, feature snapshot and tier report, the very same ones) and keeps the table's rows; also
    where directories cannot be exchanged in one step."""
    if not exchange:
        monkeypatch.setattr(publication, "_exchange", lambda _a, _b: False)
    db, out = f"sqlite:///{tmp_path / 'scores.db'}", tmp_path / "out"
    _run(small_world, out, trained_store, db, "churnclv_scores")
    folders = {p: p.stat().st_ino for p in partition_dirs(out, AS_OF)}
    published = read_scores(out, AS_OF)

    def refuse(self: Replacement) -> None:
        self.close()
        raise SinkError("database here: the commit failed (refused)")

    monkeypatch.setattr(Replacement, "commit", refuse)
    with pytest.raises(BatchError, match=r"commit failed.*nothing was published for dt=2025-10-02 \(its previous"):
        _run(fewer_customers, out, trained_store, db, "churnclv_scores")
    assert {p: p.stat().st_ino for p in partition_dirs(out, AS_OF)} == folders
    pd.testing.assert_frame_equal(read_scores(out, AS_OF), published)
    _assert_table_equals_partition(db, "churnclv_scores", out)
    assert (out / "LATEST").read_text() == "dt=2025-10-02"


def test_sink_refuses_unsupported_databases_and_bad_names(tmp_path: Path) -> None:
    with pytest.raises(SinkError, match=r"not supported.*postgresql://"):
        ScoreSink("mysql://u@h/db")
    with pytest.raises(SinkError, match="a name must match"):
        ScoreSink(f"sqlite:///{tmp_path / 'x.db'}", table="scores; DROP TABLE x")
    for system in ("pg_class", "PG_authid", "sqlite_master"):
        with pytest.raises(SinkError, match="belong to the database's own catalogs"):
            ScoreSink(f"sqlite:///{tmp_path / 'x.db'}", table=system)
    assert normalize_url("postgresql://u:p@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("postgres://u:p@h/db").drivername == "postgresql+psycopg"
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE churnclv_scores (customer_id TEXT PRIMARY KEY, score REAL)"))
    engine.dispose()
    with pytest.raises(SinkError, match=r"exists with other columns.*drop it, or pass another table name"):
        ScoreSink(f"sqlite:///{tmp_path / 'x.db'}").prepare()


def test_a_table_of_an_earlier_version_gains_the_new_columns(db_url: str) -> None:
    """A table created before ``tier_level``, ``expected_next_purchase_days`` and the marketing fields
    joined the batch rows gets them (nullable) when the sink opens it: its old rows keep their values
    with NULL there, and the next as-of written carries them."""
    table = _unique_table()
    new = {"tier_level", "expected_next_purchase_days", *MARKETING_COLUMNS}
    old_sink = ScoreSink(db_url, table=table)
    old_columns = [
        sa.Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable)
        for c in old_sink.table.columns
        if c.name not in new
    ]
    engine = sa.create_engine(normalize_url(db_url))
    old_row = {
        "customer_id": "00000001",
        "as_of": pd.Timestamp("2025-09-25").date(),
        "p_churn": 0.25,
        "p_alive": 0.9,
        "expected_purchases": 1.5,
        "expected_spend": 40.0,
        "clv": 120.0,
        "tier": "Gold",
        "reasons": "[]",
        "model_version": "1",
    }
    with engine.begin() as conn:
        earlier = sa.Table(table, sa.MetaData(), *old_columns)
        earlier.create(conn)
        conn.execute(sa.insert(earlier), [old_row])
    old_sink.close()

    sink = ScoreSink(db_url, table=table)
    try:
        sink.prepare()
        sink.prepare()  # once added, nothing more to do
        have = {c["name"] for c in sa.inspect(engine).get_columns(table)}
        assert new <= have
        rows = pa.Table.from_pylist(
            [
                {**old_row, "customer_id": cid, "as_of": AS_OF.date(), "reasons": [], **extra}
                for cid, extra in (
                    ("00000001", {"tier_level": 2, "expected_next_purchase_days": 12.5, "risk_band": "low"}),
                    ("00000002", {"tier_level": 0, "expected_next_purchase_days": None, "net_clv": -3.5}),
                )
            ],
            schema=OUTPUT_SCHEMA,
        )
        sink.replace(AS_OF.date(), [rows]).commit()
    finally:
        sink.close()
    got = _table(db_url, table).sort_values(["as_of", "customer_id"]).reset_index(drop=True)
    assert len(got) == 3 and got.loc[0, "p_churn"] == 0.25  # the old row is kept
    assert pd.isna(got.loc[0, "tier_level"]) and pd.isna(got.loc[0, "expected_next_purchase_days"])
    assert got.loc[1:, "tier_level"].tolist() == [2, 0]
    assert got.loc[1, "expected_next_purchase_days"] == 12.5 and pd.isna(got.loc[2, "expected_next_purchase_days"])
    assert pd.isna(got.loc[0, "risk_band"]) and got.loc[1, "risk_band"] == "low" and got.loc[2, "net_clv"] == -3.5
    engine.dispose()
