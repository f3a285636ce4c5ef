"""One weekly run per output folder at a time: an advisory lock (``fcntl.flock``) on
``OUT/.locks/weekly.lock``, released by the operating system when the process ends, even killed."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from churnclv.weekly.errors import WeeklyBusyError, WeeklyError

__all__ = ["LOCK_FILE", "lock_path", "run_lock"]

LOCK_FILE = "weekly.lock"


def lock_path(out: Path) -> Path:
    """The lock file of the weekly job writing into ``out``."""
    return Path(out) / ".locks" / LOCK_FILE


def _holder(path: Path) -> str:
    try:
        text = path.read_text().strip()
    except OSError:
        return ""
    return f" (process {text})" if text.isdigit() else ""


@contextlib.contextmanager
def run_lock(out: Path, *, wait: bool, on_wait: Callable[[str], object]) -> Iterator[Path]:
    """Hold the weekly lock of ``out`` for the body.

    Busy: with ``wait``, call ``on_wait`` with a message once and block until the other run ends;
    without it, raise :class:`~churnclv.weekly.errors.WeeklyBusyError` at once. The holder's process
    id is written into the lock file for the message. A lock that cannot be created is a
    :class:`~churnclv.weekly.errors.WeeklyError` naming the file.
    """
    path = lock_path(out)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        opened = path.open("a+")
    except OSError as exc:  # --out is a file, on a read-only disk, or another user's
        raise WeeklyError(
            f"cannot create the weekly lock {path} ({exc.strerror or type(exc).__name__}): --out must be a folder "
            "this user can write, or a path where one can be created; nothing was changed"
        ) from None
    with opened as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            busy = f"another churnclv weekly run is writing into {out}{_holder(path)}, lock {path}"
            if not wait:
                raise WeeklyBusyError(
                    f"{busy}: let it finish (or rerun with --wait to queue behind it); nothing was changed"
                ) from None
            on_wait(f"{busy}: waiting for it to finish")
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            fh.seek(0)
            fh.truncate()
            fh.write(str(os.getpid()))
            fh.flush()
            yield path
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
