"""Evaluation metrics for churn probabilities, purchase counts and spend.

Every function takes plain arrays (truth first, prediction second) and returns a float, so the
backtest, the notebooks and the benchmarks report the same numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

from churnclv.errors import ChurnclvError

ArrayLike: TypeAlias = np.ndarray | pd.Series | Sequence[float]


def _arrays(y_true: ArrayLike, y_pred: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true, dtype=float)
    p = np.asarray(y_pred, dtype=float)
    if t.shape != p.shape:
        raise MetricsInputError(f"y_true has shape {t.shape} but y_pred has shape {p.shape}: pass aligned arrays")
    if not np.isfinite(p).all():
        raise MetricsInputError("y_pred holds NaN or infinite values: a model produced non-finite scores")
    return t, p


class MetricsInputError(ChurnclvError, ValueError):
    """Labels and predictions a metric cannot pair: other shapes, non-finite predictions, or frames of other
    customers or order."""


def _same_customers(labels: pd.DataFrame, scores: pd.DataFrame, where: str) -> None:
    """Refuse frames that both carry ``customer_id`` but not the same ids in the same order: the metrics
    pair rows by position, so a shuffled or filtered side would score each customer with another's."""
    if "customer_id" not in labels.columns or "customer_id" not in scores.columns or len(labels) != len(scores):
        return  # nothing to compare by; a length mismatch is refused with the shapes below
    ours, theirs = labels["customer_id"].astype(str).to_numpy(), scores["customer_id"].astype(str).to_numpy()
    differ = np.flatnonzero(ours != theirs)
    if differ.size:
        raise MetricsInputError(
            f"{where}: labels and scores hold other customers or another order ({differ.size:,} of {len(ours):,} "
            f"rows differ, the first at row {int(differ[0]):,}), and the metrics pair rows by position; align them "
            "first, e.g. pairs = labels.merge(scores, on='customer_id'), then pass pairs for both"
        )


def expected_calibration_error(y_true: ArrayLike, p: ArrayLike, n_bins: int = 10) -> float:
    """Weighted mean |observed rate - mean predicted| over equal-width probability bins."""
    t, p = _arrays(y_true, p)
    bins = np.clip((p * n_bins).astype(int), 0, n_bins - 1)
    total = 0.0
    for b in range(n_bins):
        mask = bins == b
        if mask.any():
            total += mask.sum() * abs(t[mask].mean() - p[mask].mean())
    return float(total / len(t))


def churn_metrics(churned: ArrayLike, p_churn: ArrayLike) -> dict[str, float]:
    """ROC AUC, PR-AUC, Brier score, log loss and expected calibration error of churn probabilities."""
    t, p = _arrays(churned, p_churn)
    both = len(np.unique(t)) == 2
    pc = np.clip(p, 1e-6, 1 - 1e-6)
    return {
        "churn_auc": float(roc_auc_score(t, p)) if both else float("nan"),
        "churn_pr_auc": float(average_precision_score(t, p)) if both else float("nan"),
        "churn_brier": float(brier_score_loss(t, p)),
        "churn_log_loss": float(log_loss(t, pc, labels=[0, 1])),
        "churn_ece": expected_calibration_error(t, p),
    }


def aggregate_pct_error(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """(sum predicted - sum actual) / sum actual, in percent: the bias of the whole base."""
    t, p = _arrays(y_true, y_pred)
    denom = t.sum()
    return float(100.0 * (p.sum() - denom) / denom) if denom != 0 else float("nan")


def normalized_gini(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Gini of the actual values ordered by prediction, divided by the Gini of the perfect order.

    1 is a perfect ranking, 0 a random one. Ties in the prediction are broken pessimistically
    (actual ascending), so a constant prediction scores at most 0. NaN when the actuals sum
    to zero or are all equal (the perfect order has no Gini to divide by).
    """
    t, p = _arrays(y_true, y_pred)

    def gini(order_key: np.ndarray) -> float:
        order = np.lexsort((t, -order_key))  # by prediction descending, ties: actual ascending
        cum = np.cumsum(t[order]) / t.sum()
        n = len(t)
        return float(cum.sum() / n - (n + 1) / (2 * n))

    if t.sum() == 0:
        return float("nan")
    perfect = gini(t)
    if abs(perfect) <= 1e-12:  # every actual equal: no ranking exists to be right or wrong about
        return float("nan")
    return gini(p) / perfect


def top_decile_capture(y_true: ArrayLike, y_pred: ArrayLike, share: float = 0.10) -> float:
    """Share of the actual total held by the customers in the predicted top ``share``."""
    t, p = _arrays(y_true, y_pred)
    k = max(1, round(share * len(t)))
    top = np.argsort(-p, kind="stable")[:k]
    total = t.sum()
    return float(t[top].sum() / total) if total != 0 else float("nan")


def purchases_metrics(purchases: ArrayLike, expected: ArrayLike) -> dict[str, float]:
    """MAE and aggregate % error of expected purchase counts."""
    t, p = _arrays(purchases, expected)
    return {"purchases_mae": float(np.abs(t - p).mean()), "purchases_agg_pct_error": aggregate_pct_error(t, p)}


def spend_metrics(spend: ArrayLike, expected: ArrayLike) -> dict[str, float]:
    """Normalized Gini, Spearman, top-decile revenue capture and aggregate % error of spend."""
    t, p = _arrays(spend, expected)
    rho = spearmanr(t, p).statistic if np.ptp(p) > 0 and np.ptp(t) > 0 else float("nan")
    return {
        "spend_gini": normalized_gini(t, p),
        "spend_spearman": float(rho),
        "spend_top_decile_capture": top_decile_capture(t, p),
        "spend_agg_pct_error": aggregate_pct_error(t, p),
        "spend_mae": float(np.abs(t - p).mean()),
    }


def order_value_metrics(labels: pd.DataFrame, scores: pd.DataFrame) -> dict[str, float]:
    """How far a model's spend per purchase is from what the window's buyers spent per purchase.

    ``spend_value_ratio``: the realised spend per purchase (total spend over total purchases) over
    the predicted one (expected spend over expected purchases); 1 when the model's order values are
    right on the whole, whatever its purchase count. ``spend_value_ratio_se``: its standard error (a
    ratio estimator: the customers' residuals ``spend - value * purchases``, delta method). Both NaN
    when either side has no positive total.
    """
    _same_customers(labels, scores, "order_value_metrics")
    n, s = _arrays(labels["purchases"], labels["spend"])
    n_hat, s_hat = _arrays(scores["expected_purchases"], scores["expected_spend"])
    totals = (n.sum(), s.sum(), n_hat.sum(), s_hat.sum())
    if not min(totals) > 0:
        return {"spend_value_ratio": float("nan"), "spend_value_ratio_se": float("nan")}
    value, predicted = totals[1] / totals[0], totals[3] / totals[2]
    se = float(np.sqrt(np.sum((s - value * n) ** 2))) / totals[0]
    return {"spend_value_ratio": float(value / predicted), "spend_value_ratio_se": se / predicted}


def all_metrics(labels: pd.DataFrame, scores: pd.DataFrame) -> dict[str, float]:
    """Every metric from a labels frame (churned, purchases, spend) and a scores frame, row-aligned: when
    both have ``customer_id``, the same customers in the same order (:class:`MetricsInputError` otherwise)."""
    _same_customers(labels, scores, "all_metrics")
    out = churn_metrics(labels["churned"], scores["p_churn"])
    out.update(purchases_metrics(labels["purchases"], scores["expected_purchases"]))
    out.update(spend_metrics(labels["spend"], scores["expected_spend"]))
    return out
