"""Hardening of the weekly batch job (``churnclv score-batch``): what an attacker or a bad week found.

1. A ``--db`` password (in the user-info or in ``?password=``) never reaches the manifest, the
   summary, a file of the partition, a log or an error.
2. A typo'd as-of (2262-04-12, 9999-12-31, '') is one line, never a partition that pins ``LATEST``;
   ``LATEST`` is the latest partition by date and never moves back.
3. A damaged part file of last week is found before scoring: the migration report is skipped with
   a warning naming the file, or (``--hysteresis``) the run fails at once naming it and the fix.
5. Disk full, a read-only output folder, ``--out`` on a file, ``--db-table pg_class``: one line and
   exit 1; nothing partial is ever inside a published partition.
6. No customer data in an error message, the summary or a log.

The database sink's equality with the published partitions (item 4) is tested in
``tests/serving/test_batch_db.py``. Runs use the session's ``small_world`` and ``trained_store``
(``tests/conftest.py``) and the real PostgreSQL server of ``postgres_url``.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import socket
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result

from churnclv.cli import cli
from churnclv.serving.batch import run_batch
from churnclv.serving.batch_errors import BatchError
from churnclv.serving.batch_options import DEFAULT_MAX_DAYS_AFTER_DATA
from churnclv.serving.chunks import check_order
from churnclv.serving.sinks import SinkError, normalize_url
from churnclv.serving.snapshots import read_scores

pytestmark = pytest.mark.integration

AS_OF = "2025-10-02"
NEXT = "2025-10-09"
USERINFO_SECRET = "Us3rInf0S3cret"
QUERY_SECRET = "Qu3ryS3cret"
_ID = re.compile(r"(?<!\d)\d{8}(?!\d)")  # the small world's customer ids: eight digits


def _batch(world: Path, out: Path, store: dict, as_of: str = AS_OF, lines: list[str] | None = None, **kwargs) -> dict:
    kwargs.setdefault("chunk_size", 400)
    echo = lines.append if lines is not None else lambda _m: None
    return run_batch(
        clean=world,
        as_of=as_of,
        out=out,
        model_uri=store["model_uri"],
        tracking_uri=store["tracking_uri"],
        echo=echo,
        progress=False,
        **kwargs,
    )


def _cli(world: Path, out: Path, store: dict, *args: str, as_of: str = AS_OF) -> Result:
    return CliRunner().invoke(
        cli,
        [
            "score-batch",
            "--data",
            str(world),
            "--trusted",
            "--as-of",
            as_of,
            "--out",
            str(out),
            "--tracking-uri",
            store["tracking_uri"],
            *args,
        ],
    )


def _one_line_error(result: Result, code: int = 1) -> str:
    """The run ended with exit ``code`` and a one-line message, not a traceback; returns the line."""
    assert result.exit_code == code, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)  # no exception escaped
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    return errors[0]


@pytest.fixture(scope="module")
def customer_ids(small_frames: dict[str, pd.DataFrame]) -> set[str]:
    return set(small_frames["customers"]["customer_id"]) | set(small_frames["transactions"]["customer_id"])


def _no_customer_data(text: str, ids: set[str]) -> None:
    leaked = set(_ID.findall(text)) & ids
    assert not leaked, f"customer ids in the text: {sorted(leaked)[:5]}"


def _closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- 1. secrets


def _with_secrets(url: str) -> str:
    """``url`` with a password in the user-info and another one in ``?password=`` (libpq takes both;
    the query's wins)."""
    return url.replace("://postgres@", f"://postgres:{USERINFO_SECRET}@", 1) + f"?password={QUERY_SECRET}"


def test_db_password_never_reaches_manifest_summary_files_logs_or_errors(
    postgres_url: str, small_world: Path, trained_store: dict, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Regression: ``--db postgresql://u@h/shop?password=S3cret`` wrote the password into
    manifest.json and the summary (the old redaction kept the query string)."""
    url = _with_secrets(postgres_url)
    assert normalize_url(url).query["password"] == QUERY_SECRET  # the secret really travels to libpq
    out, lines = tmp_path / "out", []
    caplog.set_level(logging.DEBUG)
    manifest = _batch(small_world, out, trained_store, lines=lines, db=url, db_table="scores_secrets", chunk_size=2_000)
    assert manifest["db"]["rows_for_as_of"] == manifest["counts"]["rows_written"]  # it did connect and write
    assert manifest["db"]["url"] == postgres_url.replace("://postgres@", "://postgres:***@", 1)

    texts = {"manifest": json.dumps(manifest), "summary": "\n".join(lines), "logs": caplog.text}
    for path in sorted(out.rglob("*")):
        if path.is_file():
            texts[str(path.relative_to(out))] = path.read_bytes().decode("latin-1")
    assert "scores/dt=2025-10-02/_manifest.json" in texts and "features/dt=2025-10-02/features.parquet" in texts

    # errors: a server that does not answer, a URL that does not parse, an unsupported database, no scheme
    dead = _with_secrets(f"postgresql://postgres@127.0.0.1:{_closed_port()}/postgres")
    bad_urls = (
        dead,
        f"postgresql://postgres:{USERINFO_SECRET}@h:port/db?password={QUERY_SECRET}",
        f"mysql://u:{USERINFO_SECRET}@h/db?password={QUERY_SECRET}",
        f"u:{USERINFO_SECRET}@h/db",
    )
    for i, bad in enumerate(bad_urls):
        with pytest.raises(BatchError) as info:
            _batch(small_world, tmp_path / "failed", trained_store, db=bad)
        texts[f"error {i}"] = str(info.value)
        result = _cli(small_world, tmp_path / "failed", trained_store, "--db", bad)
        texts[f"cli {i}"] = _one_line_error(result) + result.output
    assert "cannot connect" in texts["error 0"] and "127.0.0.1" in texts["error 0"]
    assert "not a database URL" in texts["error 1"] and "not a database URL" in texts["error 3"]
    assert "'mysql' database is not supported" in texts["error 2"]
    for where, text in texts.items():
        assert USERINFO_SECRET not in text and QUERY_SECRET not in text, where
    assert not (tmp_path / "failed").exists()  # refused before any output


# --------------------------------------------------------------------------- 2. the as-of


@pytest.mark.parametrize(
    ("as_of", "says"),
    [
        ("", "'' is not a date"),
        ("soon", "'soon' is not a date"),
        ("9999-12-31", "the year is outside 1900-2200"),
        ("2262-04-12", "the year is outside 1900-2200"),
        ("0202-01-01", "the year is outside 1900-2200"),
    ],
)
def test_unparseable_or_implausible_as_of_is_one_line(
    small_world: Path, trained_store: dict, tmp_path: Path, as_of: str, says: str
) -> None:
    line = _one_line_error(_cli(small_world, tmp_path / "out", trained_store, as_of=as_of), code=2)
    assert "--as-of" in line and says in line and "YYYY-MM-DD" in line
    assert not (tmp_path / "out").exists()


def test_as_of_far_after_the_data_is_refused_before_anything_is_written(
    small_world: Path, small_frames: dict[str, pd.DataFrame], trained_store: dict, tmp_path: Path
) -> None:
    """Regression: ``--as-of 2262-04-12`` was scored and published; later correct weeks left LATEST
    (and ``/score_by_id``) on it. An as-of is now bounded by the data: the last transaction, event
    or sign-up plus ``--max-days-after-data`` (31)."""
    end = max(
        small_frames["transactions"]["ts"].max(),
        small_frames["events"]["ts"].max(),
        small_frames["customers"]["signup_ts"].max(),
    ).normalize()
    out = tmp_path / "out"
    too_late = end + pd.Timedelta(days=32)
    line = _one_line_error(_cli(small_world, out, trained_store, as_of=f"{too_late:%Y-%m-%d}"))
    assert f"32 days after the last date in the data ({end:%Y-%m-%d}" in line
    assert "more than the 31 allowed" in line and "--max-days-after-data 32" in line
    next_day = f"{end + pd.Timedelta(days=1):%Y-%m-%d}"
    with pytest.raises(BatchError, match=rf"as-of {next_day} is 1 days after .* more than the 0 allowed"):
        _batch(small_world, out, trained_store, as_of=next_day, max_days_after_data=0)
    with pytest.raises(BatchError, match="the year is outside 1900-2200"):  # the library refuses it too
        _batch(small_world, out, trained_store, as_of="2262-04-12", max_days_after_data=10**6)
    with pytest.raises(BatchError, match="whole number of days"):
        _batch(small_world, out, trained_store, max_days_after_data=-1)
    assert not list(out.glob("scores/dt=*")) and not (out / "LATEST").exists()
    assert not list(out.glob(".dt=*"))  # not even a temp partition


def test_cli_default_of_max_days_after_data_is_the_jobs() -> None:
    import click

    command = cli.get_command(click.Context(cli), "score-batch")  # loaded from its entry point
    (option,) = [p for p in command.params if p.name == "max_days_after_data"]
    assert option.default == DEFAULT_MAX_DAYS_AFTER_DATA


def test_latest_is_the_latest_partition_by_date_and_never_moves_back(
    small_world: Path, trained_store: dict, tmp_path: Path
) -> None:
    out, lines = tmp_path / "out", []
    _batch(small_world, out, trained_store, as_of=NEXT, chunk_size=2_000)
    assert (out / "LATEST").read_text().strip() == "dt=2025-10-09"
    _batch(small_world, out, trained_store, as_of=AS_OF, chunk_size=2_000, lines=lines)  # a backfill
    assert (out / "LATEST").read_text().strip() == "dt=2025-10-09"
    note = next(line for line in lines if line.startswith("LATEST stays on dt=2025-10-09"))
    assert f"rm -r {out / 'scores' / 'dt=2025-10-09'} " in note  # how to drop a partition published by mistake


# --------------------------------------------------------------------------- 3. last week damaged


@pytest.fixture
def damaged_last_week(small_world: Path, trained_store: dict, tmp_path: Path) -> tuple[Path, Path]:
    """An output folder whose as-of 2025-10-02 has a truncated second part file."""
    out = tmp_path / "out"
    _batch(small_world, out, trained_store)
    part = out / "scores" / "dt=2025-10-02" / "part-00001.parquet"
    data = part.read_bytes()
    part.write_bytes(data[: len(data) // 2])
    return out, part


def test_damaged_previous_partition_with_hysteresis_fails_before_scoring(
    damaged_last_week: tuple[Path, Path], small_world: Path, trained_store: dict
) -> None:
    """Regression: the next run failed after all the scoring with DuckDB's 'No magic bytes found'
    traceback, naming neither the file nor the fix."""
    out, part = damaged_last_week
    line = _one_line_error(_cli(small_world, out, trained_store, "--hysteresis", as_of=NEXT))
    assert str(part) in line and "cannot be read" in line
    assert "score-batch --as-of 2025-10-02" in line and "without --hysteresis" in line
    scored: list[int] = []
    with pytest.raises(BatchError, match=r"part-00001\.parquet cannot be read"):
        _batch(small_world, out, trained_store, as_of=NEXT, hysteresis=True, after_chunk=scored.append)
    assert scored == [] and not list(out.glob(".dt=2025-10-09.tmp-*"))  # failed fast: nothing scored
    assert (out / "LATEST").read_text().strip() == "dt=2025-10-02"


def test_damaged_previous_partition_skips_only_the_migration(
    damaged_last_week: tuple[Path, Path], small_world: Path, trained_store: dict, caplog: pytest.LogCaptureFixture
) -> None:
    out, part = damaged_last_week
    lines: list[str] = []
    manifest = _batch(small_world, out, trained_store, as_of=NEXT, lines=lines, chunk_size=2_000)
    report = manifest["tier_report"]
    assert report["previous"] is None and "migration" not in report
    assert str(part) in report["migration_skipped"]
    assert any(line.startswith("  migration  skipped:") and str(part) in line for line in lines)
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.startswith("no tier migration from dt=2025-10-02") and str(part) in warning
    assert "score-batch --as-of 2025-10-02" in warning
    assert (out / "LATEST").read_text().strip() == "dt=2025-10-09"
    assert len(read_scores(out, "2025-10-09")) == manifest["counts"]["customers_known"]


# --------------------------------------------------------------------------- 5. the output folder


def _fill_disk_at(monkeypatch: pytest.MonkeyPatch, part_name: str) -> None:
    """``pq.write_table`` writes a few bytes of ``part_name`` and then finds the disk full."""
    real = pq.write_table

    def write_table(table, where, *args, **kwargs):
        if part_name in str(getattr(where, "name", where)):
            where.write(b"PAR1 half a row group")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(table, where, *args, **kwargs)

    monkeypatch.setattr(pq, "write_table", write_table)


def test_disk_full_is_one_line_and_never_publishes_a_partial_file(
    small_world: Path, trained_store: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, customer_ids: set[str]
) -> None:
    """Regression: disk full gave a traceback and left a temp file that a resumed run published
    inside the partition."""
    out = tmp_path / "out"
    with monkeypatch.context() as m:
        _fill_disk_at(m, "part-00002.parquet")
        line = _one_line_error(_cli(small_world, out, trained_store, "--chunk-size", "400"))
    assert "No space left on device (ENOSPC)" in line and "--resume" in line and "nothing was published" in line
    _no_customer_data(line, customer_ids)
    assert not (out / "scores" / "dt=2025-10-02").exists() and not (out / "LATEST").exists()
    (tmp,) = out.glob(".dt=2025-10-02.tmp-*")
    assert sorted(p.name for p in tmp.iterdir() if p.name.startswith(".")) == []  # the failed write cleaned up
    # what a kill in the middle of a write leaves (no handler runs): it must not be published either
    (tmp / ".part-00002.parquet.tmp-deadbeef").write_bytes(b"PAR1 half")
    (tmp / "tier_report").mkdir()
    (tmp / "tier_report" / "stale.csv").write_text("x\n")

    manifest = _batch(small_world, out, trained_store, resume=True)
    assert manifest["resumed_chunks"] == 2
    final = out / "scores" / "dt=2025-10-02"
    assert sorted(p.name for p in final.iterdir()) == sorted(
        ["_manifest.json", *(f"part-0000{i}.parquet" for i in range(4))]
    )
    assert [p.name for p in (out / "features" / "dt=2025-10-02").iterdir()] == ["features.parquet"]
    assert sorted(p.name for p in (out / "reports" / "dt=2025-10-02").iterdir()) == sorted(
        Path(f).name for f in manifest["tier_report"]["files"].values()
    )
    for f in final.glob("part-*.parquet"):
        pq.read_table(f)  # every part reads whole
    assert len(read_scores(out, "2025-10-02")) == manifest["counts"]["customers_known"]


def _make_read_only(out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``out`` cannot be written: chmod when that binds us, else (root ignores modes) a mkdir refused
    with EACCES, what a read-only folder gives."""
    out.mkdir()
    if os.geteuid() != 0:
        out.chmod(0o555)
        return
    real = Path.mkdir

    def mkdir(self: Path, *args, **kwargs):
        if self.is_relative_to(out) and self != out:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)


def test_read_only_output_is_one_line(
    small_world: Path, trained_store: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "read-only"
    _make_read_only(out, monkeypatch)
    try:
        line = _one_line_error(_cli(small_world, out, trained_store))
        assert "Permission denied (EACCES)" in line and "writable" in line and "--out" in line
        with pytest.raises(BatchError, match="Permission denied"):
            _batch(small_world, out, trained_store)
    finally:
        out.chmod(0o755)
    assert not list(out.iterdir())


def test_out_on_a_file_is_one_line(small_world: Path, trained_store: dict, tmp_path: Path) -> None:
    a_file = tmp_path / "scores.txt"
    a_file.write_text("not a folder\n")
    line = _one_line_error(_cli(small_world, a_file, trained_store))
    assert "is a file: pass a folder" in line
    line = _one_line_error(_cli(small_world, a_file / "scores", trained_store))
    assert "Not a directory (ENOTDIR)" in line and "--out must be a folder" in line
    assert a_file.read_text() == "not a folder\n"


@pytest.mark.parametrize("table", ["pg_class", "pg_catalog", "sqlite_master", "scores; DROP TABLE x"])
def test_system_or_invalid_table_is_refused(
    postgres_url: str, small_world: Path, trained_store: dict, tmp_path: Path, table: str
) -> None:
    """Regression: ``--db-table pg_class`` went on to PostgreSQL's catalog and ended in a traceback
    (or advice to drop it)."""
    line = _one_line_error(
        _cli(small_world, tmp_path / "out", trained_store, "--db", postgres_url, "--db-table", table)
    )
    assert "churnclv_scores" in line  # the fix: a plain name
    assert not (tmp_path / "out").exists()


def test_a_table_resolving_to_a_system_schema_is_refused(postgres_url: str) -> None:
    """A plain name that the URL's search_path sends to a system schema (``information_schema.tables``)
    is refused before anything is created there."""
    from churnclv.serving.sinks import ScoreSink

    for table in ("tables", "churnclv_scores_nowhere"):  # an existing view there, and a table it would create
        sink = ScoreSink(postgres_url + "?options=-csearch_path%3Dinformation_schema", table=table)
        try:
            with pytest.raises(SinkError, match="resolves to the system schema information_schema"):
                sink.prepare()
        finally:
            sink.close()


# --------------------------------------------------------------------------- 6. no customer data


def test_no_customer_data_in_logs_or_summary(
    small_world: Path, trained_store: dict, tmp_path: Path, caplog: pytest.LogCaptureFixture, customer_ids: set[str]
) -> None:
    lines: list[str] = []
    caplog.set_level(logging.DEBUG)
    out = tmp_path / "out"
    _batch(small_world, out, trained_store, lines=lines)
    _batch(small_world, out, trained_store, as_of=NEXT, lines=lines, hysteresis=True)
    assert lines and caplog.records
    _no_customer_data("\n".join(lines), customer_ids)
    _no_customer_data("\n".join(r.getMessage() for r in caplog.records), customer_ids)


def test_check_order_names_no_customer(customer_ids: set[str]) -> None:
    import pyarrow as pa

    with pytest.raises(BatchError) as info:
        check_order(pa.array(["00000005", "00000006"]), "00000007", 3)
    _no_customer_data(str(info.value), customer_ids)
    with pytest.raises(BatchError) as info:
        check_order(pa.array(["00000009", "00000008"]), None, 0)
    _no_customer_data(str(info.value), customer_ids)


def test_database_errors_hold_no_row(
    postgres_url: str, small_world: Path, trained_store: dict, tmp_path: Path, customer_ids: set[str]
) -> None:
    """PostgreSQL names the failing row in its DETAIL line and SQLAlchemy adds the statement's
    parameters: neither reaches the message."""
    import sqlalchemy as sa

    from churnclv.serving.sinks import ScoreSink

    table = f"scores_check_{os.getpid()}"
    engine = sa.create_engine(normalize_url(postgres_url))
    with engine.begin() as conn:
        ScoreSink(postgres_url, table=table).table.create(conn)
        conn.execute(sa.text(f"ALTER TABLE {table} ADD CONSTRAINT no_scores CHECK (p_churn < 0)"))
    engine.dispose()
    with pytest.raises(BatchError) as info:
        _batch(small_world, tmp_path / "out", trained_store, db=postgres_url, db_table=table, chunk_size=2_000)
    message = str(info.value)
    assert "CheckViolation, 23514" in message and "no_scores" in message
    assert "Failing row" not in message and "[SQL" not in message and "\n" not in message
    _no_customer_data(message, customer_ids)
    assert not (tmp_path / "out" / "scores" / "dt=2025-10-02").exists()
