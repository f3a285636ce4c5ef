"""The stamp every saved model carries (its format, version and class) and the one check of it on load.

A saved model is a JSON-serialisable dict (never a pickle) whose stamp fields say what wrote it:
``format`` (a name), a version field and, where several classes share a format, ``class``. Reading
checks the stamp before anything else, so a dict from another model, another version or another
class fails with one message naming the field, what it holds and what this code reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from churnclv.errors import ChurnclvError

__all__ = ["SavedFormatError", "check_stamp"]


class SavedFormatError(ChurnclvError, ValueError):
    """A saved model that is not the format, version or class this code reads."""


def check_stamp(
    data: object,
    stamp: Mapping[str, object],
    *,
    reader: str,
    fix: str,
    error: type[SavedFormatError] = SavedFormatError,
) -> Mapping[str, Any]:
    """Return ``data`` when it is a mapping whose stamp fields equal ``stamp``; raise ``error`` if not.

    Parameters
    ----------
    data : object
        What was read (a dict after a JSON round trip, or anything a damaged file gave).
    stamp : Mapping
        The fields and values the writer put first, in the order they are checked.
    reader : str
        Who reads, first in the message (``"GBMChurnClassifier.from_dict"``, a file path).
    fix : str
        What the user can do, last in the message.
    error : type
        The error raised, :class:`SavedFormatError` or a subclass.
    """
    if not isinstance(data, Mapping):
        raise error(f"{reader}: expected a saved model (a JSON object), got {type(data).__name__}; {fix}")
    for key, expected in stamp.items():
        found = data.get(key)
        if found != expected:
            raise error(f"{reader}: field {key!r} is {found!r}, this code reads {expected!r}; {fix}")
    return data
