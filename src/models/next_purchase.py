"""The expected date of a customer's next purchase, from the model's median waiting time."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np

__all__ = ["next_purchase_dates"]


def next_purchase_dates(days: Any, as_of: dt.date) -> np.ndarray:
    """The expected date of the next purchase: ``as_of`` plus the median waiting time
    (``expected_next_purchase_days``) rounded up to whole days, at least the day after as-of;
    NaT where no date is defined (the customer is more likely than not never to buy again).

    Parameters
    ----------
    days : array-like of float
        ``expected_next_purchase_days`` from :meth:`Scorer.score` (NaN where undefined).
    as_of : datetime.date
        The scoring date.

    Returns
    -------
    numpy.ndarray
        ``datetime64[D]`` dates, ``NaT`` where ``days`` is NaN.
    """
    d = np.asarray(days, dtype=np.float64)
    out = np.full(d.shape, np.datetime64("NaT"), dtype="datetime64[D]")
    ok = np.isfinite(d)
    out[ok] = np.datetime64(as_of, "D") + np.maximum(np.ceil(d[ok]), 1).astype(np.int64)
    return out
