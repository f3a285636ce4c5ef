"""The feature jobs' errors for bad input: an as-of, cutoff or window the data cannot answer, and a
frame of the wrong types. A folder or table that cannot be read is :class:`churnclv.tables.DataError`.

Each keeps its built-in base (``ValueError``, ``TypeError``), so ``except ValueError`` still works.
"""

from __future__ import annotations

from churnclv.errors import ChurnclvError

__all__ = ["FeatureError", "FrameTypeError"]


class FeatureError(ChurnclvError, ValueError):
    """A date, window or argument the feature jobs cannot use; the message names it and the fix."""


class FrameTypeError(ChurnclvError, TypeError):
    """A frame column of the wrong dtype; the message names the column, its dtype and the conversion."""
