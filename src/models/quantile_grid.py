"""Quantile grids: a population's distribution stored as (values, mid-rank probabilities).

A percentile read off a stored grid (linear interpolation between grid points) does not depend on
the batch it is computed in, so one customer scored alone gets the batch's percentile.
"""

from __future__ import annotations

import numpy as np

__all__ = ["fit_grid", "inverse", "percentile"]


def fit_grid(x: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Quantile grid of ``x``: distinct values and their mid-rank cumulative probabilities."""
    x = np.sort(x[np.isfinite(x)])
    probs = np.linspace(0.0, 1.0, max(2, min(size, len(x))))
    q = np.quantile(x, probs)
    values, inverse = np.unique(q, return_inverse=True)
    # tied grid values (a mass point, e.g. CLV 0) get the mean of their probabilities: mid-ranks
    mid = np.bincount(inverse, weights=probs) / np.bincount(inverse)
    return values, mid


def percentile(x: np.ndarray, grid: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Mid-rank probability of each ``x`` read off ``grid`` (linear between grid points)."""
    values, probs = grid
    out: np.ndarray = np.interp(x, values, probs)
    return out


def inverse(p: np.ndarray | float, grid: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """The value at probability ``p`` of ``grid``: :func:`percentile` inverted (the one value of a
    one-point grid)."""
    values, probs = grid
    if len(values) == 1:
        return np.full(np.shape(p), values[0])
    out: np.ndarray = np.interp(p, probs, values)
    return out
