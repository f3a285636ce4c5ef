"""Simple baselines the real models must beat on the same backtest folds.

- :class:`RecencyBaseline`: churn rate, purchases and spend by bins of days since the last purchase
  (the single strongest classic churn signal).
- :class:`RFMBaseline`: the classic RFM cell rule (Hughes 1994): recency, frequency and monetary
  quintile scores, with each cell's observed rates shrunk towards its recency bin's rates.

Both learn lookup tables from a training frame of rolling cutoffs (features plus the labels
``churned``, ``purchases``, ``spend``) and predict ``p_churn``, ``expected_purchases`` and
``expected_spend`` for a feature frame.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.exceptions import NotFittedError

TARGETS = ("churned", "purchases", "spend")
OUTPUTS = {"churned": "p_churn", "purchases": "expected_purchases", "spend": "expected_spend"}


def _days_silent(frame: pd.DataFrame) -> np.ndarray:
    """Days since the last purchase; for customers who never bought, days since they became known."""
    since = frame["days_since_last_purchase"].astype("float64").to_numpy()
    tenure = frame["tenure_days"].astype("float64").to_numpy()
    silent: np.ndarray = np.where(np.isnan(since), tenure, since)
    return silent


def _edges(values: np.ndarray, n_bins: int) -> np.ndarray:
    return np.unique(np.quantile(values, np.linspace(0, 1, n_bins + 1)[1:-1]))


def _bin(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    return np.searchsorted(edges, values, side="right")


class RecencyBaseline:
    """Observed churn rate, purchases and spend per bin of days silent (quantile bins)."""

    def __init__(self, *, n_bins: int = 20) -> None:
        self.n_bins = n_bins

    def fit(self, train: pd.DataFrame) -> RecencyBaseline:
        """Learn the bins and each bin's rates from a labelled training frame."""
        silent = _days_silent(train)
        self.edges_ = _edges(silent, self.n_bins)
        bins = _bin(silent, self.edges_)
        n = len(self.edges_) + 1
        counts = np.bincount(bins, minlength=n).astype(float)
        self.table_ = {}
        for target in TARGETS:
            y = train[target].astype("float64").to_numpy()
            sums = np.bincount(bins, weights=y, minlength=n)
            overall = y.mean()
            self.table_[target] = np.where(counts > 0, sums / np.maximum(counts, 1), overall)
        return self

    def predict(self, features: pd.DataFrame) -> pd.DataFrame:
        """``p_churn``, ``expected_purchases`` and ``expected_spend`` of each row's bin."""
        if not hasattr(self, "table_"):
            raise NotFittedError("RecencyBaseline is not fitted yet: call fit(train) first")
        bins = _bin(_days_silent(features), self.edges_)
        return pd.DataFrame({OUTPUTS[t]: self.table_[t][bins] for t in TARGETS}, index=features.index)


class RFMBaseline:
    """RFM cell rates with shrinkage: ``(n * cell_mean + k * recency_mean) / (n + k)``."""

    def __init__(self, *, n_quantiles: int = 5, shrinkage: float = 30.0) -> None:
        self.n_quantiles = n_quantiles
        self.shrinkage = shrinkage

    def _cells(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        r = _bin(_days_silent(frame), self.edges_["r"])
        f = _bin(frame["n_purchase_days"].astype("float64").to_numpy(), self.edges_["f"])
        m = _bin(frame["net_spend"].astype("float64").to_numpy(), self.edges_["m"])
        q = self.n_quantiles + 1
        return r, (r * q + f) * q + m

    def fit(self, train: pd.DataFrame) -> RFMBaseline:
        """Learn the quantile edges and each cell's shrunk rates from a labelled training frame."""
        q = self.n_quantiles
        self.edges_ = {
            "r": _edges(_days_silent(train), q),
            "f": _edges(train["n_purchase_days"].astype("float64").to_numpy(), q),
            "m": _edges(train["net_spend"].astype("float64").to_numpy(), q),
        }
        r, cell = self._cells(train)
        n_cells, n_r = (q + 1) ** 3, q + 1
        cell_n = np.bincount(cell, minlength=n_cells).astype(float)
        r_n = np.bincount(r, minlength=n_r).astype(float)
        self.cell_table_, self.r_table_ = {}, {}
        for target in TARGETS:
            y = train[target].astype("float64").to_numpy()
            r_mean = np.where(r_n > 0, np.bincount(r, weights=y, minlength=n_r) / np.maximum(r_n, 1), y.mean())
            cell_sum = np.bincount(cell, weights=y, minlength=n_cells)
            r_of_cell = np.arange(n_cells) // ((q + 1) ** 2)
            prior = r_mean[r_of_cell]
            self.cell_table_[target] = (cell_sum + self.shrinkage * prior) / (cell_n + self.shrinkage)
            self.r_table_[target] = r_mean
        return self

    def predict(self, features: pd.DataFrame) -> pd.DataFrame:
        """``p_churn``, ``expected_purchases`` and ``expected_spend`` of each row's RFM cell."""
        if not hasattr(self, "cell_table_"):
            raise NotFittedError("RFMBaseline is not fitted yet: call fit(train) first")
        _, cell = self._cells(features)
        return pd.DataFrame({OUTPUTS[t]: self.cell_table_[t][cell] for t in TARGETS}, index=features.index)
