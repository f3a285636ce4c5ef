"""What the diagnostics read, checked once: time units, the BTYD model behind a scorer, the columns a
frame must have, two arrays that must line up, and each customer's purchase days from transactions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from churnclv.errors import ChurnclvError
from churnclv.features import FeatureConfig
from churnclv.models.btyd import BTYDModel

__all__ = [
    "TIME_UNITS",
    "DiagnosticsError",
    "aligned",
    "as_btyd",
    "purchase_days",
    "require_columns",
    "unit_days",
]

#: The time units a diagnostic can show BTYD quantities in, as days.
TIME_UNITS: dict[str, float] = {"days": 1.0, "weeks": 7.0}


class DiagnosticsError(ChurnclvError, ValueError):
    """A diagnostic was given input it cannot use; the message names the argument, the rule and the fix."""


def unit_days(time_unit: str) -> float:
    """Days in one ``time_unit`` (``"days"`` or ``"weeks"``)."""
    if time_unit not in TIME_UNITS:
        raise DiagnosticsError(f"time_unit={time_unit!r} is not one of {sorted(TIME_UNITS)}; pass 'days' or 'weeks'.")
    return TIME_UNITS[time_unit]


def as_btyd(model: Any) -> BTYDModel:
    """The fitted :class:`~churnclv.models.btyd.BTYDModel` itself, or the one a fitted scorer holds (``btyd_``)."""
    btyd = model if isinstance(model, BTYDModel) else getattr(model, "btyd_", None)
    if not isinstance(btyd, BTYDModel) or not hasattr(btyd, "params_"):
        raise DiagnosticsError(
            f"model: expected a fitted BTYDModel or a fitted Scorer (with btyd_), got {type(model).__name__}; "
            "fit it first (BTYDModel().fit(features) or Scorer().fit(...))."
        )
    return btyd


def require_columns(frame: Any, columns: Sequence[str], where: str, fix: str) -> pd.DataFrame:
    """``frame`` itself when it is a DataFrame holding ``columns``; else an error naming the missing ones."""
    if not isinstance(frame, pd.DataFrame):
        raise DiagnosticsError(f"{where}: expected a pandas DataFrame, got {type(frame).__name__}; {fix}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DiagnosticsError(f"{where}: the frame is missing column(s) {missing}; {fix}")
    return frame


def aligned(actual: Any, score: Any, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Two equally long float arrays (a realised outcome and a model's score); scores must be finite."""
    a = np.asarray(actual, dtype=float).ravel()
    s = np.asarray(score, dtype=float).ravel()
    if a.shape != s.shape:
        raise DiagnosticsError(
            f"{where}: actual has {a.size} values but score has {s.size}; pass one value of each per customer, "
            "in the same order (e.g. labels and scores merged on customer_id)."
        )
    if a.size == 0:
        raise DiagnosticsError(f"{where}: no customers; pass at least one (actual, score) pair.")
    if not (np.isfinite(s).all() and np.isfinite(a).all()):
        raise DiagnosticsError(f"{where}: actual and score must be finite; drop or fill the NaN/inf values first.")
    return a, s


def purchase_days(transactions: pd.DataFrame, config: FeatureConfig = FeatureConfig()) -> pd.DataFrame:
    """Each customer's purchase days: ``customer_id``, ``day`` (midnight), ``first_day``, one row per day.

    A purchase day is a calendar day whose largest line counts as a purchase (``amount > 0``, or ``>= 0``
    with ``config.zero_amount_is_purchase``): the feature job's rule, so ``frequency`` is the number of
    a customer's days minus one.
    """
    tx = require_columns(
        transactions,
        ("customer_id", "ts", "amount"),
        "transactions",
        "pass transactions in the data contract (customer_id, ts, amount), e.g. churnclv.datasets.load_cdnow().",
    )
    day = pd.to_datetime(tx["ts"]).dt.normalize()
    top = tx["amount"].astype(float).groupby([tx["customer_id"].astype(str), day]).max()
    bought = top[(top >= 0) if config.zero_amount_is_purchase else (top > 0)]
    out = bought.index.to_frame(index=False, name=["customer_id", "day"])
    out["first_day"] = out.groupby("customer_id")["day"].transform("min")
    return out.sort_values(["customer_id", "day"], ignore_index=True)
