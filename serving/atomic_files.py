"""Files that appear whole or not at all: written to a temp name, flushed to disk, then renamed."""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["atomic_file", "fsync_dir", "write_json", "write_parquet", "write_text"]


@contextlib.contextmanager
def atomic_file(path: Path, mode: str = "w") -> Iterator[Any]:
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


def write_json(path: Path, doc: dict[str, Any]) -> None:
    """Write JSON atomically (temp file, fsync, rename)."""
    with atomic_file(path) as fh:
        json.dump(doc, fh, indent=1, default=str)


def write_text(path: Path, text: str) -> None:
    """Write text atomically."""
    with atomic_file(path) as fh:
        fh.write(text)


def write_parquet(table: pa.Table, path: Path) -> None:
    """Write a Parquet file atomically."""
    with atomic_file(path, "wb") as fh:
        pq.write_table(table, fh)


def fsync_dir(path: Path) -> None:
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
