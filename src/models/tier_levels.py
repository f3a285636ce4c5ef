"""Tier levels from growth scores: the cut points, their hysteresis bounds and the levels held.

Level 0 is the bottom tier. ``cut_points[b]`` is the lowest score of level ``b + 1``; a customer who
held the tier on one side of a cut point last time crosses it only past its bound on the other side
(``upper[b]`` going up, ``lower[b]`` going down). A move of two levels or more is never held back.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from churnclv.models.quantile_grid import inverse, percentile
from churnclv.models.tier_config import TierSpec

__all__ = ["cut_points", "held_levels", "hysteresis_bounds"]

Grid = tuple[np.ndarray, np.ndarray]


def cut_points(score: np.ndarray, tiers: Sequence[TierSpec], score_grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """Ascending cut points and their positions (training percentiles): the score quantiles at the
    cumulated target shares, or the tiers' ``min_score`` thresholds (``tiers`` top first)."""
    if tiers[0].share is not None:
        shares_bottom_up = np.array([t.share for t in reversed(tiers)], dtype=np.float64)
        positions = np.cumsum(shares_bottom_up)[:-1]
        cuts = np.asarray(np.quantile(score, positions), dtype=np.float64)
        return cuts, positions
    cuts = np.array([t.min_score for t in reversed(tiers[:-1])], dtype=np.float64)
    return cuts, percentile(cuts, score_grid)


def hysteresis_bounds(
    cuts: np.ndarray, positions: np.ndarray, margin: float, unit: str, score_grid: Grid
) -> tuple[np.ndarray, np.ndarray]:
    """The scores to reach (upper) or fall below (lower) to cross each cut point: ``margin`` away in
    growth-score units (``unit="score"``) or in training-percentile points (``"quantile"``)."""
    if unit == "score":
        upper, lower = cuts + margin, cuts - margin
    else:
        upper = inverse(np.minimum(positions + margin, 1.0), score_grid)
        lower = inverse(np.maximum(positions - margin, 0.0), score_grid)
    return np.maximum(upper, cuts), np.minimum(lower, cuts)


def held_levels(
    score: np.ndarray, cuts: np.ndarray, upper: np.ndarray, lower: np.ndarray, prev_levels: np.ndarray | None
) -> np.ndarray:
    """The level of each score, where a customer with a previous level (``prev_levels``, NaN for
    none) keeps it unless the score passes the bound of the cut point between them."""
    raw = np.searchsorted(cuts, score, side="right")
    if prev_levels is None:
        return raw
    held = np.isfinite(prev_levels)
    prev = np.where(held, prev_levels, 0).astype(np.int64)
    m = len(cuts)
    up_idx = np.clip(prev, 0, m - 1)  # boundary above the previous tier
    down_idx = np.clip(prev - 1, 0, m - 1)  # boundary below it
    move_up = (raw == prev + 1) & (score >= upper[up_idx])
    move_down = (raw == prev - 1) & (score < lower[down_idx])
    big = np.abs(raw - prev) >= 2  # a large move is never held back
    keep = held & (raw != prev) & ~move_up & ~move_down & ~big
    return np.where(keep, prev, raw)
