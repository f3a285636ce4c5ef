"""Weekly batch scoring of the whole customer base, as of a date.

:func:`run_batch` computes the features of every customer known at as-of (DuckDB, out of core, or
Spark), scores them in chunks with the registered MLflow model, and publishes one partition::

    OUT/as_of=YYYY-MM-DD/
        part-00000.parquet ...   scores: customer_id, as_of, p_churn, p_alive, expected_purchases,
                                 expected_spend, clv, growth_score, tier, stage, reasons
                                 (list<string>), action, model_version; sorted by customer_id
        features.parquet         the feature snapshot (the HTTP service's score-by-id reads it)
        manifest.json            input fingerprint, counts (known = written; rejected at
                                 validation), model URI and version, horizon, timings per stage
        tier_report/             tier mix and, when an earlier partition exists, the migration
    OUT/LATEST                   name of the newest partition by date, e.g. ``as_of=2025-10-02``

Guarantees
----------
- Every customer known at as-of gets exactly one row; the job fails (and publishes nothing) when
  the written rows do not reconcile with an independent count from the clean tables.
- A partition is never visible half-written: the job writes ``OUT/.as_of=DATE.tmp-<id>/``, removes
  from it everything its manifest does not name (temp files left by a failed write, progress,
  spill), checks every part file reads whole, and swaps it in with one rename; re-running an as-of
  replaces its partition, with no duplicates.
- With a database (``db``), the table's rows of the as-of are replaced (delete, then insert) in one
  transaction that is committed while the partition is swapped in; a failed commit swaps the old
  partition back. The table thus holds the published partitions, row for row: a failed or killed
  run leaves it as it was. (Only a kill between the rename and the commit, an instant, can leave
  the two apart; running the as-of again makes them equal.)
- A killed run continues from its completed chunks with ``resume=True`` and gives the same
  partition as an uninterrupted run (chunks are fixed slices of the sorted feature snapshot).
- Memory is bounded by ``chunk_size``, not by the size of the base.
- The as-of must be plausible (a year in 1900-2200, the rule of :mod:`churnclv.values`) and at most
  ``max_days_after_data`` days (default 31) after the last date in the data (transaction, event or
  sign-up): a typo such as 2262-04-12 is refused instead of becoming the newest partition.
- ``LATEST`` names the latest partition by date, so it never moves back when an older as-of is
  re-run. A partition published by mistake with a later date keeps ``LATEST`` (and the HTTP
  service's ``score_by_id``) on it until it is removed: ``rm -r OUT/as_of=DATE`` and run the newest
  correct as-of again (or write its name into ``OUT/LATEST``). Each run says when ``LATEST`` stays
  on a later partition than its own.
- The previous partition (the migration report, ``hysteresis``) is read whole before scoring: when
  it cannot be read, the run skips the migration with a warning naming the file, or, with
  ``hysteresis``, fails at once naming the file and the fix.
- Errors are one line (:class:`BatchError`): disk full, an unwritable output folder, a database
  problem. They never quote a password, a URL's query string or customer data.

Batch and HTTP scores are identical: both call the same model (the pyfunc's scorer, on
:func:`churnclv.models.scorer.model_input` of the features). Tier hysteresis (``hysteresis=True``:
a customer keeps last partition's tier until their score clears the cut point by the policy's
margin) is off by default because the HTTP service has no previous tiers; with it on, batch tiers
can differ from HTTP tiers for customers near a cut point.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import datetime as dt
import errno
import json
import logging
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from churnclv.redaction import redact_text, redact_url
from churnclv.serving import batch_inputs
from churnclv.serving.model import LoadedModel, ModelLoadError, load_model, resolve_version
from churnclv.serving.snapshots import (
    FEATURES_FILE,
    LATEST,
    MANIFEST_FILE,
    OUTPUT_COLUMNS,
    OUTPUT_SCHEMA,
    PART,
    REPORT_DIR,
    parse_partition,
    part_files,
    partition_name,
    partitions,
    read_scores,
)

log = logging.getLogger(__name__)

__all__ = [
    "OUTPUT_COLUMNS",
    "OUTPUT_SCHEMA",
    "BatchError",
    "part_files",
    "partition_name",
    "partitions",
    "read_scores",
    "run_batch",
    "score_chunk",
]

DEFAULT_MODEL_URI = "models:/churnclv@champion"
DEFAULT_TRACKING_URI = "sqlite:///mlruns/mlflow.db"  # same default as churnclv.training.tracking
# DuckDB's own default is 80% of RAM; the job promises a bounded footprint, so it sets one
DEFAULT_MEMORY_LIMIT = "2GB"
ENGINES = ("duckdb", "spark")
# how far past the last date in the data an as-of may lie: a weekly job runs a few days after the
# data's last load; a month covers a late load without letting a typo'd year through
DEFAULT_MAX_DAYS_AFTER_DATA = 31

PAST_SPEND = "net_spend_365d"  # the tier report's realized revenue column (from the feature snapshot)
PROGRESS_FILE = "_progress.json"
MANIFEST_FORMAT = "churnclv.batch"
MANIFEST_VERSION = 1


class BatchError(ValueError):
    """A problem the user can fix (model, horizon, input, output folder, resume); the message names
    the thing, the rule and the fix."""


# --------------------------------------------------------------------------- the model


def _load_model(model_uri: str, tracking_uri: str | None, dst: Path) -> LoadedModel:
    """:func:`churnclv.serving.model.load_model`, keeping the download in ``dst`` (``--engine spark``
    ships it to its executors), its errors as one redacted :class:`BatchError` line."""
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    try:
        number = resolve_version(model_uri, uri)  # an alias is pinned to its version first
    except ModelLoadError as exc:
        raise BatchError(redact_text(f"model {model_uri!r} not found: {exc}")) from None
    try:
        return load_model(model_uri, uri, version=number, dst=dst)
    except ModelLoadError as exc:
        raise BatchError(redact_text(f"model {model_uri!r} cannot be loaded: {exc}")) from None


# --------------------------------------------------------------------------- scoring a chunk


def score_chunk(
    model: LoadedModel, features: pd.DataFrame, *, as_of: dt.date, prev: pd.Series | None = None, reasons: bool = True
) -> pa.Table:
    """Score one chunk of features into the batch's Arrow schema.

    It runs the pyfunc's own scorer on :func:`~churnclv.models.scorer.model_input` of the features,
    exactly what the pyfunc's ``predict`` (and the HTTP service) runs, without MLflow's per-call
    schema check; reasons stay a list.
    """
    from churnclv.models.scorer import model_input, next_purchase_dates

    scores = model.scorer.score(model_input(features), prev=prev, reasons=reasons)
    n = len(scores)

    def col(name: str, dtype: pa.DataType) -> pa.Array:
        if name not in scores.columns:  # a model without a tier policy: no tiers, stages, actions
            return pa.nulls(n, dtype)
        values = scores[name]
        if dtype == pa.string():
            return pa.array(values.astype(object).where(values.notna(), None).tolist(), type=dtype)
        if dtype == pa.list_(pa.string()):
            return pa.array([list(r) for r in values], type=dtype)
        return pa.array(values.to_numpy(dtype=np.float64), type=dtype)

    arrays = []
    for f in OUTPUT_SCHEMA:
        if f.name == "as_of":
            arrays.append(pa.array(np.full(n, np.datetime64(as_of, "D")), type=pa.date32()))
        elif f.name == "model_version":
            arrays.append(pa.array([model.version] * n, type=pa.string()))
        elif f.name == "expected_next_purchase_date":
            dates = next_purchase_dates(scores["expected_next_purchase_days"].to_numpy(dtype=np.float64), as_of)
            arrays.append(pa.array(dates, type=pa.date32(), mask=np.isnat(dates)))
        else:
            arrays.append(col(f.name, f.type))
    return pa.Table.from_arrays(arrays, schema=OUTPUT_SCHEMA)


# --------------------------------------------------------------------------- files


@contextlib.contextmanager
def _atomic_file(path: Path, mode: str = "w") -> Iterator[Any]:
    """A file handle that becomes ``path`` (fsync, rename) only when the body succeeds; a failed
    write (disk full, a kill aside) leaves no temp file behind."""
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        with tmp.open(mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_json(path: Path, doc: dict[str, Any]) -> None:
    """Write JSON atomically (temp file, fsync, rename)."""
    with _atomic_file(path) as fh:
        json.dump(doc, fh, indent=1, default=str)


def _write_text(path: Path, text: str) -> None:
    with _atomic_file(path) as fh:
        fh.write(text)


def _write_parquet(table: pa.Table, path: Path) -> None:
    with _atomic_file(path, "wb") as fh:
        pq.write_table(table, fh)


def _fsync_dir(path: Path) -> None:
    """Make the renames inside ``path`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Swap two directories in one atomic step (Linux ``renameat2``); False when not supported."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError, TypeError):
        return False
    at_fdcwd = -100
    rc = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(a))


def _swap_in(tmp: Path, final: Path) -> Path | None:
    """Make ``tmp`` the partition ``final`` without ever showing a half-written one; returns where
    the old partition now is (to drop, or to swap back with :func:`_swap_back`), None if none."""
    if not final.exists():
        os.rename(tmp, final)
        _fsync_dir(final.parent)
        return None
    if _exchange(tmp, final):  # readers see the old or the new partition, never none
        _fsync_dir(final.parent)
        return tmp
    old = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
    os.rename(final, old)  # a reader can miss the partition for this instant, never see a mix
    os.rename(tmp, final)
    _fsync_dir(final.parent)
    return old


def _swap_back(tmp: Path, final: Path, old: Path | None) -> None:
    """Undo :func:`_swap_in`: the new partition goes back to ``tmp``, the old one (if any) to ``final``."""
    if old is None:
        os.rename(final, tmp)
    elif old == tmp:
        if not _exchange(tmp, final):
            raise OSError(errno.EIO, "cannot swap the previous partition back", str(final))
    else:
        os.rename(final, tmp)
        os.rename(old, final)
    _fsync_dir(final.parent)


def _seal(tmp: Path, manifest: dict[str, Any]) -> None:
    """Leave in ``tmp`` only what the manifest names and check each part file reads whole, so a
    published partition never holds a temp file, a progress file or a truncated part."""
    outputs = manifest["outputs"]
    keep = {MANIFEST_FILE, FEATURES_FILE, *outputs["scores"]}
    report = manifest.get("tier_report") or {}
    report_files = {Path(f).name for f in (report.get("files") or {}).values()}
    for entry in tmp.iterdir():
        if entry.name == REPORT_DIR and outputs.get("tier_report") and entry.is_dir():
            for f in entry.iterdir():
                if f.name not in report_files or not f.is_file():
                    shutil.rmtree(f) if f.is_dir() else f.unlink()
        elif entry.name not in keep or not entry.is_file():
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    rows = 0
    for name in outputs["scores"]:
        try:
            rows += pq.ParquetFile(tmp / name).metadata.num_rows
        except (OSError, pa.ArrowException) as exc:
            raise BatchError(
                f"{tmp / name}: a part file does not read back ({_first_line(exc)}); nothing was "
                "published: check the disk and run again without --resume"
            ) from None
    if rows != manifest["counts"]["rows_written"]:
        raise BatchError(
            f"{tmp}: the part files hold {rows:,} rows, {manifest['counts']['rows_written']:,} were "
            "written; nothing was published: run again without --resume"
        )
    _fsync_dir(tmp)


def _first_line(exc: BaseException) -> str:
    """An exception in one line, at most 200 characters, URLs redacted."""
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    return redact_text(text)


@contextlib.contextmanager
def _lock(out: Path, name: str) -> Iterator[None]:
    """One run per as-of at a time (an advisory lock, released when the process dies)."""
    import fcntl

    locks = out / ".locks"
    locks.mkdir(exist_ok=True)
    path = locks / f"{name}.lock"
    with path.open("a") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BatchError(
                f"{out / name}: another run of this as-of is writing it (lock {path}): wait for it to finish"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _temp_dirs(out: Path, name: str) -> list[Path]:
    return sorted((p for p in out.glob(f".{name}.tmp-*") if p.is_dir()), key=lambda p: p.stat().st_mtime_ns)


# --------------------------------------------------------------------------- the job


class _Timer:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - start


def _progress_bar(enabled: bool) -> Any:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("customers"),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not enabled,
        transient=False,
    )


def _as_of(value: Any) -> dt.date:
    from churnclv.features import as_of_date
    from churnclv.values import MAX_YEAR, MIN_YEAR

    try:
        day = as_of_date(value)
    except ValueError as exc:
        raise BatchError(f"as-of: {exc}") from None
    if not MIN_YEAR <= day.year <= MAX_YEAR:  # the validation's rule for every date in the data
        raise BatchError(
            f"as-of {day.isoformat()}: the year is outside {MIN_YEAR}-{MAX_YEAR}: pass the "
            "date the data runs to, e.g. 2025-10-02"
        )
    return day


def _check_args(engine: str, chunk_size: int, clean: Path, out: Path, max_days_after_data: int) -> None:
    if engine not in ENGINES:
        raise BatchError(f"engine {engine!r} is not known: use one of {list(ENGINES)}")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise BatchError(f"chunk size {chunk_size!r}: must be a positive number of customers, e.g. 200000")
    if isinstance(max_days_after_data, bool) or not isinstance(max_days_after_data, int) or max_days_after_data < 0:
        raise BatchError(
            f"max days after data {max_days_after_data!r}: must be a whole number of days >= 0, "
            f"e.g. {DEFAULT_MAX_DAYS_AFTER_DATA}"
        )
    if out.exists() and not out.is_dir():
        raise BatchError(
            f"--out {out} is a file: pass a folder (the run writes OUT/as_of=DATE/ and OUT/LATEST into it)"
        )
    if not clean.is_dir():
        raise BatchError(f"{clean}: not a folder of clean tables: pass the validated data folder (--data)")
    if "transactions" not in batch_inputs.table_paths(clean):
        raise BatchError(
            f"{clean}: no transactions table (transactions.parquet, .csv or a folder transactions/): "
            "validate the data first, or point --data at the folder of clean tables"
        )


def _resume_key(
    *,
    day: dt.date,
    engine: str,
    chunk_size: int,
    hysteresis: bool,
    reasons: bool,
    model: LoadedModel,
    fp: dict[str, Any],
    prev_name: str | None,
) -> dict[str, Any]:
    return {
        "as_of": day.isoformat(),
        "engine": engine,
        "chunk_size": chunk_size,
        "reasons": reasons,
        "hysteresis": hysteresis,
        "hysteresis_from": prev_name if hysteresis else None,
        "model_version": model.version,
        "model_uri": model.resolved_uri,
        "input": batch_inputs.identity(fp),
    }


def _open_temp(
    out: Path, name: str, key: dict[str, Any], resume: bool, echo: Callable[[str], Any]
) -> tuple[Path, dict[str, Any]]:
    """The temp partition to write into, with its progress (resumed or fresh)."""
    stale = _temp_dirs(out, name)
    if resume:
        for tmp in reversed(stale):
            progress_path = tmp / PROGRESS_FILE
            if not progress_path.is_file():
                continue
            progress = json.loads(progress_path.read_text())
            changed = [k for k in key if progress.get("key", {}).get(k) != key[k]]
            if changed:
                raise BatchError(
                    f"cannot resume {tmp}: {', '.join(changed)} changed since the interrupted run "
                    f"(was {', '.join(repr(progress.get('key', {}).get(k)) for k in changed)}): rerun without "
                    "--resume to start over, or run with the same data, model and settings"
                )
            for other in stale:
                if other != tmp:
                    shutil.rmtree(other, ignore_errors=True)
            done = len(progress.get("chunks", {}))
            echo(f"resuming {tmp.name}: {done} chunk(s) already scored")
            return tmp, progress
        echo(f"nothing to resume for {name}: starting a fresh run")
    for tmp in stale:  # left by killed runs; we hold the as-of's lock, so nobody writes them
        shutil.rmtree(tmp, ignore_errors=True)
    tmp = out / f".{name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    progress = {"key": key, "features": False, "chunks": {}}
    _write_json(tmp / PROGRESS_FILE, progress)
    return tmp, progress


def _prev_tiers(con: duckdb.DuckDBPyConnection, prev: Path, first: str, last: str) -> pd.Series:
    """Last partition's tiers of the customers in ``[first, last]`` (partitions are sorted by id)."""
    files = ", ".join("'" + str(f).replace("'", "''") + "'" for f in part_files(prev))
    rows = con.sql(
        f"SELECT customer_id, tier FROM read_parquet([{files}]) WHERE customer_id BETWEEN ? AND ?",
        params=[first, last],
    ).to_arrow_table()
    return pd.Series(rows.column("tier").to_pylist(), index=rows.column("customer_id").to_pylist(), dtype=object)


def _check_order(ids: pa.ChunkedArray | pa.Array, last: str | None, chunk: int) -> str | None:
    """Ids must rise strictly within and across chunks: one row per customer, nothing repeated."""
    if len(ids) == 0:
        return last
    if len(ids) > 1 and not pc.all(pc.greater(ids[1:], ids[:-1])).as_py():
        raise BatchError(
            f"chunk {chunk}: customer ids in the feature snapshot are repeated or unsorted: the feature job "
            "must give one row per customer sorted by customer_id (report this as a bug)"
        )
    first = ids[0].as_py()
    if last is not None and not first > last:  # no ids in the message: they are customer data
        raise BatchError(
            f"chunk {chunk}: its first customer id does not follow the last id of chunk {chunk - 1}: "
            "the feature snapshot repeats customers across chunks (report this as a bug)"
        )
    return ids[-1].as_py()


def _previous_problem(prev: Path) -> str | None:
    """Why the previous partition cannot be read whole (naming the file), or None when it can.

    Reads its manifest and the ``customer_id`` and ``tier`` columns of every part file (what the
    migration report and hysteresis read), batch by batch: a few seconds for millions of rows, and
    a truncated or damaged file is found before scoring rather than after.
    """
    manifest_path = prev / MANIFEST_FILE
    try:
        manifest = json.loads(manifest_path.read_text())
        listed = manifest["outputs"]["scores"]
        expected = int(manifest["counts"]["rows_written"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"{manifest_path} cannot be read ({type(exc).__name__})"
    files = part_files(prev)
    missing = sorted(set(listed) - {f.name for f in files})
    if missing:
        return f"{prev / missing[0]} is missing ({len(missing)} part file(s) its manifest names)"
    rows = 0
    for f in files:
        if f.name not in listed:
            return f"{f} is not in its manifest (left by something else)"
        try:
            for batch in pq.ParquetFile(f).iter_batches(batch_size=65_536, columns=["customer_id", "tier"]):
                rows += batch.num_rows
        except (OSError, pa.ArrowException, ValueError, KeyError) as exc:
            return f"{f} cannot be read ({_first_line(exc)})"
    if rows != expected:
        return f"{prev}: its part files hold {rows:,} rows, its manifest {expected:,}"
    return None


def _tier_report(
    tmp: Path, prev: Path | None, tier_names: tuple[str, ...], con: duckdb.DuckDBPyConnection
) -> dict[str, Any]:
    """Tier mix of this partition and migration from ``prev`` (churnclv.models.tier_report; the files and
    plots by churnclv.plotting.write_report).

    Customer ids are replaced by join positions before pandas sees them, so the report costs a few
    numbers per customer, not a string.
    """
    from churnclv.models.tier_report import tier_report
    from churnclv.plotting import write_report

    def files(p: Path) -> str:
        return "[" + ", ".join("'" + str(f).replace("'", "''") + "'" for f in part_files(p)) + "]"

    # realized revenue per tier: the snapshot's net spend of the last 365 days, next to predicted CLV
    feats_path = tmp / FEATURES_FILE  # a file (DuckDB engine) or a folder of parts (Spark)
    feats = "'" + str(feats_path / "*.parquet" if feats_path.is_dir() else feats_path).replace("'", "''") + "'"
    spend = f"LEFT JOIN (SELECT customer_id, {PAST_SPEND} FROM read_parquet({feats})) f USING (customer_id)"
    if prev is None:
        sql = f"SELECT c.tier, c.clv, c.expected_spend, c.p_churn, f.{PAST_SPEND} FROM read_parquet({files(tmp)}) c {spend}"
    else:
        sql = (
            f"SELECT c.customer_id IS NOT NULL AS _curr, c.tier, c.clv, c.expected_spend, c.p_churn, f.{PAST_SPEND}, "
            f"p.tier AS prev_tier FROM read_parquet({files(tmp)}) c {spend} "
            f"FULL OUTER JOIN (SELECT customer_id, tier FROM read_parquet({files(prev)})) p USING (customer_id)"
        )
    table = con.sql(sql).to_arrow_table()
    for name in ("tier", "prev_tier"):
        if name in table.column_names:
            i = table.column_names.index(name)
            table = table.set_column(i, name, pc.dictionary_encode(table.column(name)))
    frame = table.to_pandas()
    order = list(tier_names) or None
    if prev is None:
        report = tier_report(frame, tiers=order, spend_col=PAST_SPEND)
    else:
        frame["customer_id"] = np.arange(len(frame))
        prev_tiers = frame.loc[frame["prev_tier"].notna(), ["customer_id", "prev_tier"]]
        prev_tiers = prev_tiers.rename(columns={"prev_tier": "tier"})
        report = tier_report(frame.loc[frame["_curr"]], prev=prev_tiers, tiers=order, spend_col=PAST_SPEND)
    shutil.rmtree(tmp / REPORT_DIR, ignore_errors=True)  # a resumed run's earlier attempt
    paths = write_report(report, tmp / REPORT_DIR)
    summary = report.summary[
        ["tier", "customers", "customer_share", "clv", "clv_share", "past_spend", "past_spend_share"]
    ]
    doc: dict[str, Any] = {
        "previous": None if prev is None else prev.name,
        "files": {k: str(p.relative_to(tmp)) for k, p in paths.items()},
        "summary": json.loads(summary.to_json(orient="records")),
    }
    if report.migration is not None:
        m = report.migration
        doc["migration"] = {
            "customers_both": int(m.counts.to_numpy().sum()),
            "only_previous": int(m.n_only_prev),
            "only_current": int(m.n_only_curr),
            "changed_tier": int(m.counts.to_numpy().sum() - np.trace(m.counts.to_numpy())),
        }
    return doc


def run_batch(
    *,
    clean: str | Path,
    as_of: Any,
    out: str | Path,
    model_uri: str = DEFAULT_MODEL_URI,
    tracking_uri: str | None = None,
    horizon_days: int | None = None,
    db: str | None = None,
    engine: str = "duckdb",
    chunk_size: int = 200_000,
    resume: bool = False,
    memory_limit: str | None = None,
    echo: Callable[[str], Any] = print,
    hysteresis: bool = False,
    db_table: str = "churnclv_scores",
    progress: bool = True,
    reasons: bool = True,
    after_chunk: Callable[[int], None] | None = None,
    max_days_after_data: int = DEFAULT_MAX_DAYS_AFTER_DATA,
) -> dict[str, Any]:
    """Score every customer known at ``as_of`` and publish ``OUT/as_of=DATE/`` (see the module doc).

    Parameters
    ----------
    clean : path
        Folder of clean tables (``transactions``, optional ``events`` and ``customers``), e.g. the
        ``clean`` folder written by :func:`churnclv.ingest.validate_source`; its sibling
        ``rejects`` folder, when present, gives the rejected counts of the manifest.
    as_of : date-like
        The scoring date: rows with ``ts`` before the next midnight count.
    out : path
        Output folder; the run writes ``OUT/as_of=DATE/`` and ``OUT/LATEST``.
    model_uri : str
        MLflow model URI; an alias is pinned to its version at the start of the run.
    tracking_uri : str, optional
        The MLflow store (default ``$MLFLOW_TRACKING_URI``, else ``sqlite:///mlruns/mlflow.db``).
    horizon_days : int, optional
        Must equal the model's horizon when given (the model was trained for one horizon).
    db : str, optional
        Also write the rows into ``db_table`` at this database (``postgresql://...``,
        ``sqlite:///...``): the as-of's rows are replaced in one transaction committed with the
        partition's publication, so the table equals the published partitions.
    engine : {"duckdb", "spark"}
        Feature engine and scorer runtime. ``spark`` runs the same Ibis features on PySpark and
        scores with ``mlflow.pyfunc.spark_udf`` (needs the spark extra; not chunked: resume reruns).
    chunk_size : int
        Customers scored per chunk (memory is bounded by it).
    resume : bool
        Continue the interrupted run of this as-of from its completed chunks (it must use the same
        data, model version and settings).
    memory_limit : str, optional
        DuckDB memory limit (default ``2GB``; DuckDB spills past it).
    echo : callable
        Where the summary lines go (the CLI passes ``click.echo``).
    hysteresis : bool
        Tier hysteresis against the previous partition's tiers (off: batch tiers equal HTTP tiers).
    db_table : str
        Table of the database sink.
    progress : bool
        Show a progress bar on stderr.
    reasons : bool
        Compute the reasons (LightGBM TreeSHAP: about 85% of the scoring time). ``False`` writes empty
        reason lists; the numbers, tiers, stages and actions are unchanged. DuckDB engine only.
    after_chunk : callable, optional
        Called with the chunk number after each chunk is committed (a hook for tests and monitoring).
    max_days_after_data : int
        How many days after the last date in the data (transaction, event or sign-up) the as-of may
        lie (default 31); a later as-of is refused as a likely typo.

    Returns
    -------
    dict
        The manifest (also written to ``OUT/as_of=DATE/manifest.json``).

    Raises
    ------
    BatchError
        For a missing or unsuitable model, a horizon that differs from the model's, unreadable
        input, an as-of before any data or too far after it, an unreadable previous partition with
        ``hysteresis``, a resume that does not match, counts that do not reconcile, a database the
        sink cannot use, or an output folder that cannot be written (full, read-only, a file).
        The message is one line and never holds a password or customer data.
    """
    timer = _Timer()
    started = time.perf_counter()
    clean, out = Path(clean), Path(out)
    day = _as_of(as_of)
    _check_args(engine, chunk_size, clean, out, max_days_after_data)
    if engine == "spark":
        from churnclv.serving import spark as spark_engine

        if not reasons:
            raise BatchError("reasons=False is for the duckdb engine: the Spark scorer always computes reasons")
        if hysteresis:
            raise BatchError(
                "--hysteresis is for the duckdb engine: the Spark scorer does not read last "
                "as-of's tiers; run without --hysteresis or with --engine duckdb"
            )
        if not spark_engine.available():
            raise BatchError("engine spark needs pyspark and ibis' pyspark backend: pip install 'churnclv[spark]'")
    name = partition_name(day)
    sink = _open_sink(db, db_table)
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="churnclv-model-") as model_dir, _lock(out, name):
            manifest, final, latest = _run_locked(
                clean=clean,
                day=day,
                out=out,
                name=name,
                model_uri=model_uri,
                tracking_uri=tracking_uri,
                horizon_days=horizon_days,
                sink=sink,
                db=db,
                db_table=db_table,
                engine=engine,
                chunk_size=chunk_size,
                resume=resume,
                memory_limit=memory_limit or DEFAULT_MEMORY_LIMIT,
                echo=echo,
                hysteresis=hysteresis,
                progress=progress,
                reasons=reasons,
                after_chunk=after_chunk,
                model_dir=Path(model_dir),
                timer=timer,
                started=started,
                max_days_after_data=max_days_after_data,
            )
    except OSError as exc:
        raise BatchError(_os_problem(exc, out, name)) from None
    except duckdb.IOException as exc:
        raise BatchError(
            f"DuckDB could not read or write a file ({_first_line(exc)}); nothing was published for "
            f"{name}: free space or fix the permissions, then run again with --resume"
        ) from None
    finally:
        if sink is not None:
            sink.close()
    _summary(manifest, final, echo)
    if latest != name:
        echo(
            f"LATEST stays on {latest}, a later as-of than {name}; if {latest} is a mistake, remove it "
            f"(rm -r {out / latest}) and run the newest correct as-of again"
        )
    return manifest


def _os_problem(exc: OSError, out: Path, name: str) -> str:
    """One line for a file-system error of the run: where, what, and the fix."""
    where = exc.filename if exc.filename is not None else out
    what = exc.strerror or _first_line(exc)
    code = errno.errorcode.get(exc.errno or 0)
    what = f"{what} ({code})" if code else what
    in_out = str(where).startswith(str(out))
    if exc.errno == errno.ENOSPC:
        fix = (
            "free space there (or pass an --out on another file system) and run again with --resume: "
            "the completed chunks are kept"
        )
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        fix = (
            "make the output folder writable for this user, or pass another --out"
            if in_out
            else "make it readable for this user"
        )
    elif exc.errno in (errno.ENOTDIR, errno.EEXIST, errno.EISDIR):
        fix = "--out must be a folder, or a path where one can be created"
    else:
        fix = "check the path and run again"
    return f"{where}: {what}; nothing was published for {name}: {fix}"


def _open_sink(db: str | None, table: str) -> Any:
    if db is None:
        return None
    from churnclv.serving.sinks import ScoreSink, SinkError

    try:
        sink = ScoreSink(db, table=table)
        sink.prepare()
    except SinkError as exc:
        raise BatchError(str(exc)) from None
    return sink


def _features_duckdb(
    tmp: Path, prog: dict[str, Any], clean: Path, day: dt.date, memory_limit: str, progress: bool, config: Any
) -> None:
    """Write the feature snapshot into the temp partition (skipped when a resumed run has it)."""
    import sys

    from churnclv.features import connect, write_features

    if prog["features"] and (tmp / FEATURES_FILE).is_file():
        return
    staging = tmp / f".{FEATURES_FILE}.tmp"
    con = connect(memory_limit=memory_limit, temp_directory=tmp / ".spill")
    # DuckDB's own bar is the only sign of life during the feature stage; in a log file it is noise
    con.raw_sql(f"SET enable_progress_bar = {str(progress and sys.stderr.isatty()).lower()}")
    try:
        write_features(clean, day, staging, con=con, config=config)  # the model's feature configuration
    except ValueError as exc:
        raise BatchError(f"features as of {day}: {redact_text(str(exc))}") from None
    finally:
        con.disconnect()
    shutil.rmtree(tmp / ".spill", ignore_errors=True)
    os.replace(staging, tmp / FEATURES_FILE)
    prog["features"] = True
    _write_json(tmp / PROGRESS_FILE, prog)


def _check_not_after_data(day: dt.date, fp: dict[str, Any], clean: Path, max_days_after_data: int) -> None:
    """Refuse an as-of more than ``max_days_after_data`` days after the last date in the data: a typo
    (2262 for 2026) would otherwise become the newest partition and hold ``LATEST``."""
    end = batch_inputs.last_date(fp)
    if end is not None and (day - end).days > max_days_after_data:
        days = (day - end).days
        raise BatchError(
            f"as-of {day} is {days:,} days after the last date in the data ({end}: the latest transaction, event "
            f"or sign-up in {clean}), more than the {max_days_after_data} allowed: check the date (a later as-of "
            f"would become LATEST), or pass --max-days-after-data {days} if the data really ends that early"
        )


def _previous(out: Path, day: dt.date, hysteresis: bool) -> tuple[Path | None, str | None]:
    """The partition before ``day`` and, when it cannot be read whole, why (checked before scoring)."""
    earlier = [p for d, p in partitions(out) if d < day]
    if not earlier:
        return None, None
    prev = earlier[-1]
    problem = _previous_problem(prev)
    if problem is None:
        return prev, None
    rebuild = f"run that as-of again (score-batch --as-of {parse_partition(prev.name)}) to rebuild it"
    if hysteresis:
        raise BatchError(
            f"--hysteresis keeps the tiers of the previous partition {prev.name}, but {problem}: "
            f"{rebuild}, or run without --hysteresis; nothing was scored"
        )
    # a warning (stderr under the CLI) now, before scoring; the summary repeats it as "migration skipped"
    log.warning(
        "no tier migration from %s: %s; the scores are not affected. To get the migration report, %s",
        prev.name,
        problem,
        rebuild,
    )
    return None, problem


def _run_locked(
    *,
    clean: Path,
    day: dt.date,
    out: Path,
    name: str,
    model_uri: str,
    tracking_uri: str | None,
    horizon_days: int | None,
    sink: Any,
    db: str | None,
    db_table: str,
    engine: str,
    chunk_size: int,
    resume: bool,
    memory_limit: str,
    echo: Callable[[str], Any],
    hysteresis: bool,
    progress: bool,
    reasons: bool,
    after_chunk: Callable[[int], None] | None,
    model_dir: Path,
    timer: _Timer,
    started: float,
    max_days_after_data: int,
) -> tuple[dict[str, Any], Path, str]:
    """The job, holding the as-of's lock: check the inputs, score into a temp partition, then publish
    it (and, with a database, replace the as-of's rows in the same step)."""
    con = duckdb.connect(config={"memory_limit": memory_limit})
    try:
        # the checks that need no model first: a wrong date or a damaged last week fails in seconds
        with timer("fingerprint"):
            fp = batch_inputs.fingerprint(clean, con)
            rejected = batch_inputs.rejected_rows(clean, fp, con)
            _check_not_after_data(day, fp, clean, max_days_after_data)
            known = batch_inputs.known_customers(clean, day, con)
        if known == 0:
            first = fp["tables"]["transactions"].get("ts_min")
            raise BatchError(
                f"as-of {day} is before any data (no transaction and no signup on or before it; the first "
                f"transaction is at {first}): pick a later date"
            )
        prev, prev_problem = _previous(out, day, hysteresis)
        with timer("model"):
            model = _load_model(model_uri, tracking_uri, model_dir)
        if horizon_days is not None and int(horizon_days) != model.horizon_days:
            raise BatchError(
                f"horizon {horizon_days} days differs from the model's {model.horizon_days} days "
                f"({model.resolved_uri}): drop --horizon-days, or train a model with --horizon-days {horizon_days}"
            )
        key = _resume_key(
            day=day,
            engine=engine,
            chunk_size=chunk_size,
            hysteresis=hysteresis,
            reasons=reasons,
            model=model,
            fp=fp,
            prev_name=None if prev is None else prev.name,
        )
        tmp, prog = _open_temp(out, name, key, resume, echo)
        resumed_chunks = len(prog["chunks"])
        if engine == "duckdb":
            with timer("features"):
                _features_duckdb(tmp, prog, clean, day, memory_limit, progress, model.scorer.feature_config())
            written = _score_chunks(
                tmp,
                prog,
                model,
                day,
                chunk_size,
                prev if hysteresis else None,
                con,
                timer,
                progress,
                reasons,
                after_chunk,
            )
        else:
            written = _spark_run(tmp, prog, model, clean, day, timer)
        n_features = pq.ParquetFile(tmp / FEATURES_FILE).metadata.num_rows
        if not (known == n_features == written):
            raise BatchError(
                f"counts do not reconcile for {name}: {known:,} customers known at as-of in the clean tables, "
                f"{n_features:,} in the feature snapshot, {written:,} rows written; nothing was published "
                f"(the partial run stays in {tmp}): report this as a bug"
            )
        with timer("tier_report"):
            tiers = model.scorer.tiers_
            report = None if tiers is None else _tier_report(tmp, prev, tuple(tiers.tier_names), con)
            if report is not None and prev_problem is not None:
                report["migration_skipped"] = prev_problem
    finally:
        con.close()

    final = out / name
    replacement = None
    try:
        db_doc = None
        if sink is not None:
            replacement = _replace_rows(sink, day, tmp, timer)
            db_doc = {
                "url": redact_url(db or ""),
                "table": db_table,
                "rows_written": replacement.rows_written,
                "rows_removed": replacement.rows_removed,
                "rows_for_as_of": replacement.rows_for_as_of,
            }
            if replacement.rows_for_as_of != written:
                raise BatchError(
                    f"database {sink.where}: {replacement.rows_for_as_of:,} rows of as-of {day} in "
                    f"{db_table!r} after the write, {written:,} scored; nothing was published or "
                    "committed: report this as a bug"
                )
        files = [p.name for p in part_files(tmp)]
        timer.seconds["total"] = time.perf_counter() - started
        manifest = _manifest(
            day=day,
            name=name,
            engine=engine,
            chunk_size=chunk_size,
            files=files,
            resumed_chunks=resumed_chunks,
            hysteresis=hysteresis,
            key=key,
            reasons=reasons,
            model=model,
            fp=fp,
            known=known,
            n_features=n_features,
            written=written,
            rejected=rejected,
            report=report,
            db_doc=db_doc,
            timer=timer,
        )
        _write_json(tmp / MANIFEST_FILE, manifest)
        _seal(tmp, manifest)  # drops _progress.json too: from here on the run is complete
        old = _swap_in(tmp, final)
        if replacement is not None:
            from churnclv.serving.sinks import SinkError

            try:
                replacement.commit()
            except SinkError as exc:
                _swap_back(tmp, final, old)
                raise BatchError(
                    f"{exc}; nothing was published for {name} (its previous partition and rows are "
                    "back): fix the database and run again"
                ) from None
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if replacement is not None:
            replacement.close()
    return manifest, final, _update_latest(out, name)


def _replace_rows(sink: Any, day: dt.date, tmp: Path, timer: _Timer) -> Any:
    """The as-of's rows replaced by the partition's, in a transaction left open for the publish."""
    from churnclv.serving.sinks import SinkError

    chunks = (pq.read_table(f) for f in part_files(tmp))  # one part file in memory at a time
    try:
        with timer("db"):
            return sink.replace(day, chunks)
    except SinkError as exc:
        raise BatchError(f"{exc}; nothing was published") from None


def _manifest(
    *,
    day: dt.date,
    name: str,
    engine: str,
    chunk_size: int,
    files: list[str],
    resumed_chunks: int,
    hysteresis: bool,
    key: dict[str, Any],
    reasons: bool,
    model: LoadedModel,
    fp: dict[str, Any],
    known: int,
    n_features: int,
    written: int,
    rejected: dict[str, Any],
    report: dict[str, Any] | None,
    db_doc: dict[str, Any] | None,
    timer: _Timer,
) -> dict[str, Any]:
    return {
        "format": MANIFEST_FORMAT,
        "format_version": MANIFEST_VERSION,
        "as_of": day.isoformat(),
        "partition": name,
        "engine": engine,
        "chunk_size": chunk_size,
        "chunks": len(files),
        "resumed_chunks": resumed_chunks,
        "hysteresis": hysteresis,
        "hysteresis_from": key["hysteresis_from"],
        "reasons": reasons,
        "horizon_days": model.horizon_days,
        "model": {
            "uri": redact_url(model.model_uri),
            "resolved_uri": redact_url(model.resolved_uri),
            "version": model.version,
            "run_id": model.run_id,
            "trained_as_of": model.metadata.get("as_of"),
            "horizon_days": model.horizon_days,
        },
        "input": fp,
        "counts": {
            "customers_known": known,
            "features_rows": n_features,
            "rows_written": written,
            "reconciled": True,
            "validation": rejected,
            "rows_rejected": {t: r["rejected"] for t, r in rejected["tables"].items()},
        },
        "outputs": {"scores": files, "features": FEATURES_FILE, "tier_report": REPORT_DIR if report else None},
        "tier_report": report,
        "db": db_doc,
        "timings_s": {k: round(v, 3) for k, v in timer.seconds.items()},
    }


def _update_latest(out: Path, name: str) -> str:
    """Point ``LATEST`` at the latest partition by date (last: readers follow it to a whole partition);
    returns that partition's name."""
    newest = partitions(out)[-1][1].name
    try:
        _write_text(out / LATEST, newest)
    except OSError as exc:
        raise BatchError(
            f"{name} was published, but {out / LATEST} could not be updated "
            f"({exc.strerror or _first_line(exc)}): free space or fix the permissions, then write "
            f"{newest} into it (or run again)"
        ) from None
    return newest


def _score_chunks(
    tmp: Path,
    prog: dict[str, Any],
    model: LoadedModel,
    day: dt.date,
    chunk_size: int,
    prev: Path | None,
    con: duckdb.DuckDBPyConnection,
    timer: _Timer,
    progress: bool,
    reasons: bool,
    after_chunk: Callable[[int], None] | None,
) -> int:
    """Score the feature snapshot chunk by chunk into ``part-NNNNN.parquet`` files; returns the rows."""
    snapshot = pq.ParquetFile(tmp / FEATURES_FILE)
    total = snapshot.metadata.num_rows
    written = 0
    last: str | None = None
    with _progress_bar(progress) as bar:
        task = bar.add_task(f"scoring {day}", total=total)
        batches = snapshot.iter_batches(batch_size=chunk_size)
        for i, batch in enumerate(batches):
            part = tmp / PART.format(i)
            last = _check_order(batch.column("customer_id"), last, i)
            done = prog["chunks"].get(str(i))
            if done is not None and part.is_file() and done["rows"] == batch.num_rows:
                written += done["rows"]
                bar.advance(task, batch.num_rows)
                continue
            with timer("score"):
                frame = batch.to_pandas()
                prev_tiers = None
                if prev is not None:
                    prev_tiers = _prev_tiers(con, prev, batch.column("customer_id")[0].as_py(), last)
                table = score_chunk(model, frame, as_of=day, prev=prev_tiers, reasons=reasons)
            if table.num_rows != batch.num_rows:
                raise BatchError(f"chunk {i}: {batch.num_rows} customers in, {table.num_rows} scores out (a bug)")
            with timer("write"):
                _write_parquet(table, part)
            prog["chunks"][str(i)] = {"rows": table.num_rows, "file": part.name}
            with timer("write"):
                _write_json(tmp / PROGRESS_FILE, prog)
            written += table.num_rows
            bar.advance(task, batch.num_rows)
            log.debug("chunk %d: %d customers", i, table.num_rows)
            if after_chunk is not None:
                after_chunk(i)
    return written


def _spark_run(tmp: Path, prog: dict[str, Any], model: LoadedModel, clean: Path, day: dt.date, timer: _Timer) -> int:
    """Features and scores on Spark; the partition gets the same files as with DuckDB."""
    from churnclv.serving import spark as spark_engine

    work = tmp / "_spark"
    shutil.rmtree(work, ignore_errors=True)
    with timer("spark_session"):
        spark = spark_engine.session()
    with timer("features"):
        try:
            spark_engine.write_features(spark, clean, day, work / "features", model.scorer.feature_config())
        except ValueError as exc:
            raise BatchError(f"features as of {day}: {exc}") from None
        _concat_parquet(sorted((work / "features").glob("part-*.parquet")), tmp / FEATURES_FILE)
    with timer("score"):
        spark_engine.write_scores(
            spark, work / "features", model.path, work / "scores", as_of=day, model_version=model.version
        )
    written = 0
    last: str | None = None
    with timer("write"):
        for i, src in enumerate(sorted((work / "scores").glob("part-*.parquet"))):
            table = pq.read_table(src).cast(OUTPUT_SCHEMA)
            last = _check_order(table.column("customer_id"), last, i)
            _write_parquet(table, tmp / PART.format(i))
            written += table.num_rows
    shutil.rmtree(work, ignore_errors=True)
    prog["features"] = True
    return written


def _concat_parquet(files: list[Path], dest: Path) -> None:
    """Stream Parquet files (same schema) into one file, row group by row group."""
    staging = dest.with_name(f".{dest.name}.tmp")
    writer = None
    try:
        for f in files:
            pf = pq.ParquetFile(f)
            for g in range(pf.num_row_groups):
                t = pf.read_row_group(g)
                if writer is None:
                    writer = pq.ParquetWriter(staging, t.schema)
                writer.write_table(t.cast(writer.schema))
        if writer is None:
            raise BatchError(f"{dest}: the feature job wrote no rows (a bug)")
    finally:
        if writer is not None:
            writer.close()
    os.replace(staging, dest)


def _summary(manifest: dict[str, Any], final: Path, echo: Callable[[str], Any]) -> None:
    c = manifest["counts"]
    t = manifest["timings_s"]
    m = manifest["model"]
    echo(
        f"scored {c['rows_written']:,} customers as of {manifest['as_of']} with model version {m['version']} "
        f"({m['uri']}, horizon {manifest['horizon_days']} days) in {t['total']:.1f} s"
    )
    echo(f"  partition  {final} ({manifest['chunks']} part file(s), {FEATURES_FILE}, {MANIFEST_FILE})")
    rej = ", ".join(f"{k} {v:,}" for k, v in c["rows_rejected"].items()) or "none (input not validated here)"
    echo(
        f"  counts     known at as-of {c['customers_known']:,} = written {c['rows_written']:,}; "
        f"rejected at validation: {rej}"
    )
    report = manifest.get("tier_report")
    if report:
        mix = ", ".join(f"{r['tier']} {r['customer_share']:.0%}" for r in report["summary"])
        echo(f"  tiers      {mix}")
        if "migration" in report:
            mg = report["migration"]
            echo(
                f"  migration  vs {report['previous']}: {mg['changed_tier']:,} of {mg['customers_both']:,} "
                f"customers changed tier; {mg['only_current']:,} new, {mg['only_previous']:,} gone"
            )
        elif report.get("migration_skipped"):
            echo(f"  migration  skipped: {report['migration_skipped']}")
    if manifest.get("db"):
        d = manifest["db"]
        echo(
            f"  database   {d['url']} table {d['table']}: {d['rows_written']:,} rows of as-of "
            f"{manifest['as_of']} written, replacing {d['rows_removed']:,}"
        )
    stages = ", ".join(f"{k} {v:.1f}s" for k, v in t.items() if k != "total")
    echo(f"  timings    {stages}")
