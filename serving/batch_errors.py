"""The batch job's error: one line a user can act on, never a password, a query string or customer data."""

from __future__ import annotations

import errno
from pathlib import Path

from churnclv.errors import ChurnclvError
from churnclv.redaction import redact_text

__all__ = ["BatchError", "first_line", "os_problem"]


class BatchError(ChurnclvError, ValueError):
    """A problem the user can fix (model, horizon, input, output folder, resume); the message names
    the thing, the rule and the fix."""


def first_line(exc: BaseException) -> str:
    """An exception in one line, at most 200 characters, URLs redacted."""
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    return redact_text(text)


def os_problem(exc: OSError, out: Path, name: str) -> str:
    """One line for a file-system error of the run of partition ``name`` into ``out``: where, what, and the fix."""
    where = exc.filename if exc.filename is not None else out
    what = exc.strerror or first_line(exc)
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
