"""The error of the campaign tools."""

from __future__ import annotations

from churnclv.errors import ChurnclvError

__all__ = ["CampaignError"]


class CampaignError(ChurnclvError, ValueError):
    """A campaign input breaks a rule (a missing column, a bad id or share, a window not yet closed)."""
