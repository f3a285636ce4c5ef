"""Scores of a past as-of checked against what the customers then did in ``(as_of, as_of + horizon]``.

The realised outcomes are the training labels (:func:`churnclv.features.compute_labels`, the same
Ibis expressions, point in time): ``churned`` (no purchase day in the window), ``purchases`` (purchase
days) and ``spend`` (net amount). The metrics are the backtest's (:mod:`churnclv.metrics`), so a
model's production figures compare with the figures it was selected on.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from churnclv.features import FeatureConfig, compute_labels, connect, load_tables
from churnclv.features.checks import last_transaction_day as _last_day
from churnclv.metrics import churn_metrics, purchases_metrics, spend_metrics
from churnclv.models.inputs import stable_floats

__all__ = [
    "SCORE_COLUMNS",
    "calibration_deciles",
    "group_outcomes",
    "last_transaction_day",
    "partition_quality",
    "realised_labels",
]

#: The score columns the quality reads from a partition.
SCORE_COLUMNS = ["customer_id", "p_churn", "expected_purchases", "expected_spend", "tier", "tier_level", "action"]


def realised_labels(
    source: str | Path | dict[str, pd.DataFrame],
    day: dt.date,
    horizon_days: int,
    *,
    as_of: dt.date,
    config: FeatureConfig = FeatureConfig(),
    memory_limit: str | None = None,
) -> pd.DataFrame:
    """``customer_id``, ``churned``, ``purchases``, ``spend`` in ``(day, day + horizon_days]`` of every
    customer known at ``day``; the window must be closed at ``as_of`` (else a ``FeatureError``). Spend is
    rounded to 1e-6 (:func:`churnclv.models.inputs.stable_floats`)."""
    labels = compute_labels(source, day, horizon_days, as_of=as_of, config=config, memory_limit=memory_limit)
    return stable_floats(labels)  # DuckDB's parallel sums vary in the last bits: a rerun must write the same figures


def last_transaction_day(
    source: str | Path | dict[str, pd.DataFrame], memory_limit: str | None = None
) -> dt.date | None:
    """The day of the last transaction line in ``source`` (None without any): a window ending after it
    is not yet in the data, whatever the date."""
    con = connect(memory_limit=memory_limit)
    try:
        return _last_day(con, load_tables(source, con))
    finally:
        con.disconnect()


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def calibration_deciles(churned: np.ndarray, p_churn: np.ndarray, n: int = 10) -> list[dict[str, Any]]:
    """Customers in ``n`` groups of equal size by ``p_churn`` (ties kept in one order: stable rank):
    each group's size, mean predicted churn and realised churn rate."""
    order = np.argsort(p_churn, kind="stable")
    groups = np.empty(len(order), dtype=int)
    groups[order] = np.arange(len(order)) * n // max(len(order), 1)
    out = []
    for g in range(n):
        mask = groups == g
        if mask.any():
            out.append(
                {
                    "decile": g + 1,
                    "customers": int(mask.sum()),
                    "mean_p_churn": float(p_churn[mask].mean()),
                    "realized_churn": float(churned[mask].mean()),
                }
            )
    return out


def group_outcomes(frame: pd.DataFrame, by: str, later: pd.DataFrame | None = None) -> list[dict[str, Any]]:
    """Per value of ``by`` (``tier`` or ``action``): customers, their share, mean ``p_churn``, realised
    churn, expected spend, realised revenue and its share of the base's; with ``later`` (the tiers of a
    partition at the window's end: ``customer_id``, ``tier_level``), the customers who moved up, down,
    stayed or were gone by then."""
    total_revenue = float(frame["spend"].sum())
    groups = list(frame.groupby(by, sort=True, dropna=False))
    if "tier_level" in frame.columns:  # tiers (and actions) from the bottom tier up
        groups.sort(key=lambda kv: float(kv[1]["tier_level"].min()))
    rows = []
    for name, part in groups:
        revenue = float(part["spend"].sum())
        row: dict[str, Any] = {
            by: None if pd.isna(name) else str(name),
            "customers": len(part),
            "share": len(part) / len(frame),
            "mean_p_churn": float(part["p_churn"].mean()),
            "realized_churn": float(part["churned"].mean()),
            "expected_spend": float(part["expected_spend"].sum()),
            "revenue": revenue,
            "revenue_share": _finite(revenue / total_revenue) if total_revenue else None,
        }
        if later is not None:
            then = part[["customer_id", "tier_level"]].merge(
                later, on="customer_id", how="left", suffixes=("", "_then")
            )
            step = then["tier_level_then"] - then["tier_level"]
            row.update(
                moved_up=int((step > 0).sum()),
                moved_down=int((step < 0).sum()),
                stayed=int((step == 0).sum()),
                gone=int(then["tier_level_then"].isna().sum()),
            )
        rows.append(row)
    return rows


def partition_quality(scores: pd.DataFrame, labels: pd.DataFrame, later: pd.DataFrame | None = None) -> dict[str, Any]:
    """The quality of one partition's scores (columns :data:`SCORE_COLUMNS`) against its realised
    ``labels`` (:func:`realised_labels`), joined on ``customer_id``; ``later``: see :func:`group_outcomes`.

    Returns a JSON-ready dict: ``customers`` (scored), ``customers_labelled`` (scored and in the labels:
    the figures are over them), ``metrics`` (the backtest's churn, purchases and spend metrics plus the
    realised and predicted totals), ``calibration`` (by decile of ``p_churn``), ``tiers`` and ``actions``
    (:func:`group_outcomes`).
    """
    frame = scores.merge(labels, on="customer_id", how="inner", validate="one_to_one")
    churned = frame["churned"].to_numpy(dtype=float)
    p = frame["p_churn"].to_numpy(dtype=float)
    metrics: dict[str, Any] = {}
    if len(frame):
        metrics.update(churn_metrics(churned, p))
        metrics.update(purchases_metrics(frame["purchases"], frame["expected_purchases"]))
        metrics.update(spend_metrics(frame["spend"], frame["expected_spend"]))
        metrics.update(
            realized_churn_rate=float(churned.mean()),
            predicted_churn_rate=float(p.mean()),
            realized_purchases=float(frame["purchases"].sum()),
            expected_purchases=float(frame["expected_purchases"].sum()),
            realized_revenue=float(frame["spend"].sum()),
            expected_revenue=float(frame["expected_spend"].sum()),
        )
    return {
        "customers": len(scores),
        "customers_labelled": len(frame),
        "metrics": {k: _finite(float(v)) for k, v in metrics.items()},
        "calibration": calibration_deciles(churned, p) if len(frame) else [],
        "tiers": group_outcomes(frame, "tier", later) if len(frame) else [],
        "actions": group_outcomes(frame, "action") if len(frame) else [],
    }
