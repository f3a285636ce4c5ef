"""Publishing a partition: the temp folder a run writes, swapped in whole, and ``LATEST``.

A run of partition ``dt=DATE`` holds the as-of's lock (:func:`lock`) and writes its files into
``OUT/.dt=DATE.tmp-<id>/`` (:func:`temp_dirs` finds those a killed run left), outside the folders
readers glob. :func:`publish` writes the manifest, removes everything the manifest does not name
(:func:`seal`), checks every part file reads whole, moves the files into one folder per destination,
and swaps each in with one rename (:func:`swap_in`): ``features/dt=DATE``, ``reports/dt=DATE``,
then ``scores/dt=DATE`` with the manifest, which publishes the partition. With a database, the
as-of's rows are committed right after, and a failed commit swaps the old folders back
(:func:`swap_back`). Last, :func:`update_latest` points ``LATEST`` at the latest partition by date.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import datetime as dt
import errno
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from churnclv.serving.atomic_files import fsync_dir, write_json, write_text
from churnclv.serving.batch_errors import BatchError, first_line
from churnclv.serving.sinks import Replacement, SinkError
from churnclv.serving.snapshots import (
    FEATURES_DIR,
    FEATURES_FILE,
    LATEST,
    MANIFEST_FILE,
    REPORT_DIR,
    REPORTS_DIR,
    SCORES_DIR,
    features_path,
    partition_name,
    partitions,
    report_dir,
    scores_dir,
)

__all__ = ["lock", "publish", "seal", "swap_back", "swap_in", "temp_dirs", "update_latest"]

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


def swap_in(staged: Path | None, final: Path, parking: Path) -> Path | None:
    """Make ``staged`` the folder ``final`` (``staged`` None: remove ``final``) without ever showing a
    half-written one; returns where the old ``final`` now is (to drop, or to swap back with
    :func:`swap_back`), None if there was none. ``parking`` is a free path in the run's temp folder,
    where the old folder goes when it cannot be exchanged (never beside ``final``, where readers glob)."""
    if not final.exists():
        if staged is not None:
            os.rename(staged, final)
            fsync_dir(final.parent)
        return None
    if staged is not None and _exchange(staged, final):  # readers see the old or the new folder, never none
        fsync_dir(final.parent)
        return staged
    os.rename(final, parking)  # a reader can miss the folder for this instant, never see a mix
    if staged is not None:
        try:
            os.rename(staged, final)
        except OSError:
            os.rename(parking, final)
            raise
    fsync_dir(final.parent)
    return parking


def swap_back(staged: Path | None, final: Path, old: Path | None) -> None:
    """Undo :func:`swap_in`: the new folder goes back to ``staged``, the old one (if any) to ``final``."""
    if old is not None and old == staged:
        if not _exchange(staged, final):
            raise OSError(errno.EIO, "cannot swap the previous partition back", str(final))
    else:
        if staged is not None:
            os.rename(final, staged)
        if old is not None:
            os.rename(old, final)
    fsync_dir(final.parent)


def seal(tmp: Path, manifest: dict[str, Any]) -> None:
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
                f"{tmp / name}: a part file does not read back ({first_line(exc)}); nothing was "
                "published: check the disk and run again without --resume"
            ) from None
    if rows != manifest["counts"]["rows_written"]:
        raise BatchError(
            f"{tmp}: the part files hold {rows:,} rows, {manifest['counts']['rows_written']:,} were "
            "written; nothing was published: run again without --resume"
        )
    fsync_dir(tmp)


def _arrange(tmp: Path, manifest: dict[str, Any]) -> dict[str, Path | None]:
    """Move the sealed temp folder's files into one folder per destination (renames inside ``tmp``):
    scores and manifest, the feature snapshot, the tier report (None when the run has none)."""
    scores, features, reports = tmp / SCORES_DIR, tmp / FEATURES_DIR, None
    scores.mkdir()
    features.mkdir()
    for name in (*manifest["outputs"]["scores"], MANIFEST_FILE):
        os.rename(tmp / name, scores / name)
    os.rename(tmp / FEATURES_FILE, features / FEATURES_FILE)
    if manifest["outputs"].get("tier_report"):
        reports = tmp / REPORTS_DIR
        os.rename(tmp / REPORT_DIR, reports)
    staged = {SCORES_DIR: scores, FEATURES_DIR: features, REPORTS_DIR: reports}
    for folder in (tmp, *(p for p in staged.values() if p is not None)):
        fsync_dir(folder)
    return staged


def publish(
    tmp: Path, out: Path, day: dt.date, manifest: dict[str, Any], replacement: Replacement | None = None
) -> None:
    """Write the manifest into ``tmp``, :func:`seal` it and swap its folders in as the partition of
    ``day``: the feature snapshot and the tier report first, the scores (with the manifest, which
    makes the partition published) last.

    With ``replacement`` (the as-of's rows replaced in a database transaction left open), the
    transaction is committed right after the swap; when the commit fails, the previous partition
    is swapped back and nothing is published.
    """
    write_json(tmp / MANIFEST_FILE, manifest)
    seal(tmp, manifest)  # drops the progress file too: from here on the run is complete
    staged = _arrange(tmp, manifest)
    finals = {
        FEATURES_DIR: features_path(out, day).parent,
        REPORTS_DIR: report_dir(out, day),
        SCORES_DIR: scores_dir(out, day),
    }
    done: list[tuple[Path | None, Path, Path | None]] = []
    try:
        for tree, final in finals.items():
            final.parent.mkdir(parents=True, exist_ok=True)
            done.append((staged[tree], final, swap_in(staged[tree], final, tmp / f"old-{tree}")))
        if replacement is not None:
            replacement.commit()
    except (OSError, SinkError) as exc:
        for swap in reversed(done):
            swap_back(*swap)
        if isinstance(exc, OSError):
            raise
        raise BatchError(
            f"{exc}; nothing was published for {partition_name(day)} (its previous partition and rows are "
            "back): fix the database and run again"
        ) from None
    shutil.rmtree(tmp, ignore_errors=True)  # the previous partition's folders, swapped out into it


@contextlib.contextmanager
def lock(out: Path, name: str) -> Iterator[None]:
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
                f"{name} in {out}: another run of this as-of is writing it (lock {path}): wait for it to finish"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def temp_dirs(out: Path, name: str) -> list[Path]:
    """The temp folders of partition ``name`` left in ``out`` (by killed runs), oldest first."""
    return sorted((p for p in out.glob(f".{name}.tmp-*") if p.is_dir()), key=lambda p: p.stat().st_mtime_ns)


def update_latest(out: Path, name: str) -> str:
    """Point ``LATEST`` at the latest partition by date (last: readers follow it to a whole partition);
    returns that partition's name (``name`` was just published)."""
    newest = partitions(out)[-1][1].name
    try:
        write_text(out / LATEST, newest)
    except OSError as exc:
        raise BatchError(
            f"{name} was published, but {out / LATEST} could not be updated "
            f"({exc.strerror or first_line(exc)}): free space or fix the permissions, then write "
            f"{newest} into it (or run again)"
        ) from None
    return newest
