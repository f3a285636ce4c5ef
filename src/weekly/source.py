"""What the weekly job's data folder held when it was validated: a digest of its files' names, sizes and
modification times, so a rerun of an as-of notices data exported again after a failure."""

from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["source_identity"]


def source_identity(data: str) -> str | None:
    """The digest of the files under the folder ``data`` (None: a database URL or no folder; not compared).

    Contents are not read (a landing folder can hold gigabytes): a file written again counts as changed.
    """
    folder = Path(data)
    if not folder.is_dir():
        return None
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        stat = path.stat()
        digest.update(f"{path.relative_to(folder)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()
