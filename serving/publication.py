"""Publishing a partition: the temp folder a run writes, swapped in whole, and ``LATEST``.

A run of ``as_of=DATE`` holds the as-of's lock (:func:`lock`) and writes ``OUT/.as_of=DATE.tmp-<id>/``
(:func:`temp_dirs` finds those a killed run left). :func:`publish` writes the manifest, removes
everything the manifest does not name (:func:`seal`), checks every part file reads whole, and swaps
the folder in with one rename (:func:`swap_in`); with a database, the as-of's rows are committed in
that step, and a failed commit swaps the old partition back (:func:`swap_back`). Last,
:func:`update_latest` points ``LATEST`` at the latest partition by date.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from churnclv.serving.atomic_files import fsync_dir, write_json, write_text
from churnclv.serving.batch_errors import BatchError, first_line
from churnclv.serving.sinks import Replacement, SinkError
from churnclv.serving.snapshots import FEATURES_FILE, LATEST, MANIFEST_FILE, REPORT_DIR, partitions

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


def swap_in(tmp: Path, final: Path) -> Path | None:
    """Make ``tmp`` the partition ``final`` without ever showing a half-written one; returns where
    the old partition now is (to drop, or to swap back with :func:`swap_back`), None if none."""
    if not final.exists():
        os.rename(tmp, final)
        fsync_dir(final.parent)
        return None
    if _exchange(tmp, final):  # readers see the old or the new partition, never none
        fsync_dir(final.parent)
        return tmp
    old = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
    os.rename(final, old)  # a reader can miss the partition for this instant, never see a mix
    os.rename(tmp, final)
    fsync_dir(final.parent)
    return old


def swap_back(tmp: Path, final: Path, old: Path | None) -> None:
    """Undo :func:`swap_in`: the new partition goes back to ``tmp``, the old one (if any) to ``final``."""
    if old is None:
        os.rename(final, tmp)
    elif old == tmp:
        if not _exchange(tmp, final):
            raise OSError(errno.EIO, "cannot swap the previous partition back", str(final))
    else:
        os.rename(final, tmp)
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


def publish(tmp: Path, final: Path, manifest: dict[str, Any], replacement: Replacement | None = None) -> None:
    """Write the manifest into ``tmp``, :func:`seal` it and swap it in as ``final``.

    With ``replacement`` (the as-of's rows replaced in a database transaction left open), the
    transaction is committed right after the swap; when the commit fails, the previous partition
    is swapped back and nothing is published.
    """
    write_json(tmp / MANIFEST_FILE, manifest)
    seal(tmp, manifest)  # drops the progress file too: from here on the run is complete
    old = swap_in(tmp, final)
    if replacement is not None:
        try:
            replacement.commit()
        except SinkError as exc:
            swap_back(tmp, final, old)
            raise BatchError(
                f"{exc}; nothing was published for {final.name} (its previous partition and rows are "
                "back): fix the database and run again"
            ) from None
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


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
                f"{out / name}: another run of this as-of is writing it (lock {path}): wait for it to finish"
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
