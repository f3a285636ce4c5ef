"""How far an answer's as-of lies from the as-of the model was trained at, and the warning past a limit.

A model learns the customer base as it was at its training as-of. Scores for a date long after
that extrapolate a base that may have moved on (new products, prices, seasons); scores for a date
long before it come from a model that learned from what happened later. Both are still given, with
a warning the CRM can show or act on (``CHURNCLV_AS_OF_WARNING_DAYS``, :mod:`churnclv.serving.settings`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, Final

from churnclv.serving.schemas import ServiceWarning

__all__ = ["AS_OF_FAR", "as_of_warnings", "trained_as_of"]

AS_OF_FAR: Final = "as_of_far_from_training"


def trained_as_of(metadata: Mapping[str, Any]) -> dt.date | None:
    """The training as-of recorded in a scorer's metadata (``LoadedModel.metadata``); None when the
    model does not record one."""
    raw = metadata.get("as_of")
    if raw is None:
        return None
    try:
        return dt.date.fromisoformat(str(raw)[:10])
    except ValueError:
        return None


def as_of_warnings(as_of: dt.date, trained: dt.date | None, max_days: int) -> list[ServiceWarning]:
    """The warning for scores as of ``as_of`` from a model trained as of ``trained``, when the two are
    more than ``max_days`` apart (either way); none when they are not, when ``max_days`` is 0 (off)
    or when the training as-of is unknown."""
    if trained is None or max_days <= 0:
        return []
    days = (as_of - trained).days
    if abs(days) <= max_days:
        return []
    limit = f"more than the {max_days} days of CHURNCLV_AS_OF_WARNING_DAYS"
    if days > 0:
        message = (
            f"as_of {as_of} is {days} days after the model's training as-of {trained} ({limit}): the customer base "
            "may have changed since the model learned it; retrain the model (churnclv train) or check as_of"
        )
    else:
        message = (
            f"as_of {as_of} is {-days} days before the model's training as-of {trained} ({limit}): the model "
            "learned from what customers did after that date; score a past date with a model trained then "
            "(--model models:/churnclv/VERSION) or check as_of"
        )
    return [ServiceWarning(code=AS_OF_FAR, message=message)]
