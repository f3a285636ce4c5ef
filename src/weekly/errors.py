"""The errors of the weekly job."""

from __future__ import annotations

from churnclv.errors import ChurnclvError

__all__ = ["WeeklyBusyError", "WeeklyError", "WeeklyStepError"]


class WeeklyError(ChurnclvError, RuntimeError):
    """The weekly job cannot go on; the message says what to fix and how to continue."""


class WeeklyBusyError(WeeklyError):
    """Another weekly run holds the output folder's lock."""


class WeeklyStepError(WeeklyError):
    """One step's command failed; the steps completed before it are kept in the journal."""
