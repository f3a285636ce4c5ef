"""What the tier policy reads from the scorer's frame: its columns by role (config ``[columns]``,
see :data:`~churnclv.models.tier_config.COLUMN_ROLES`), as numbers, and the raw components of the
growth score before they become percentiles."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from churnclv.models.tier_config import Score

__all__ = ["column", "growth", "numeric", "raw_components", "required_column"]


def numeric(frame: pd.DataFrame, column: str, role: str) -> np.ndarray:
    """The column as float64 (NaN for missing); a column that is not numeric is a ``ValueError``."""
    s = frame[column]
    if s.dtype.kind == "f":  # already float: skip to_numeric (~40 us a column on the one-row path)
        return np.asarray(s.to_numpy(dtype=np.float64))
    try:
        return np.asarray(pd.to_numeric(s).to_numpy(dtype=np.float64, na_value=np.nan))
    except (TypeError, ValueError):
        raise ValueError(
            f"column {column!r} ({role}) must be numeric, got dtype {frame[column].dtype}: "
            "pass numbers (the scorer's output or the feature job's column)"
        ) from None


def column(frame: pd.DataFrame, columns: Mapping[str, str], role: str) -> str | None:
    """The name of ``role``'s column when ``frame`` has it."""
    name = columns[role]
    return name if name in frame.columns else None


def required_column(frame: pd.DataFrame, columns: Mapping[str, str], role: str, purpose: str) -> str:
    """The name of ``role``'s column; a frame without it is a ``ValueError`` naming it and the fix."""
    name = column(frame, columns, role)
    if name is None:
        raise ValueError(
            f"TierPolicy needs column {columns[role]!r} ({role}) for {purpose}, but the frame has "
            f"{list(frame.columns)[:12]}{'...' if frame.shape[1] > 12 else ''}: join it to the "
            f'frame, or map your column with [columns] {role} = "<your column>"'
        )
    return name


def raw_components(frame: pd.DataFrame, columns: Mapping[str, str], score: Score) -> dict[str, np.ndarray]:
    """Per customer: ``clv``, ``retention`` (1 - p_churn), ``expected`` (spend over the horizon, at
    least 0), ``past_h`` (the past spend rate over the horizon) and ``past_spend``."""
    vals: dict[str, np.ndarray] = {}
    for role in ("p_churn", "expected_spend", "clv"):
        col = required_column(frame, columns, role, "the growth score")
        x = numeric(frame, col, role)
        bad = ~np.isfinite(x)
        if bad.any():
            raise ValueError(
                f"column {col!r} ({role}) has {int(bad.sum())} missing or infinite values: the tier "
                "score needs a number for every customer; score those customers first"
            )
        vals[role] = x
    p = vals["p_churn"]
    if ((p < 0) | (p > 1)).any():
        raise ValueError(
            f"column {columns['p_churn']!r} (p_churn) must lie in [0, 1], got values from {p.min():g} "
            f"to {p.max():g}: pass probabilities"
        )
    past_col = required_column(frame, columns, "past_spend", "the growth score")
    past = np.nan_to_num(numeric(frame, past_col, "past_spend"), nan=0.0)
    tenure_col = column(frame, columns, "tenure")
    if tenure_col is not None:
        tenure = numeric(frame, tenure_col, "tenure")
        days = np.where(np.isfinite(tenure), tenure, score.past_spend_days)
        days = np.clip(days, score.min_rate_days, score.past_spend_days)
    else:
        days = np.full(len(frame), score.past_spend_days)
    return {
        "clv": vals["clv"],
        "retention": 1.0 - p,
        "expected": np.maximum(vals["expected_spend"], 0.0),
        "past_h": np.maximum(past, 0.0) / days * score.horizon_days,
        "past_spend": past,
    }


def growth(raw: Mapping[str, np.ndarray], k: float) -> np.ndarray:
    """The growth ratio ``log((expected + k) / (past_h + k))``: above 0, the customer is expected to
    outgrow their past."""
    return np.asarray(np.log((raw["expected"] + k) / (raw["past_h"] + k)))
