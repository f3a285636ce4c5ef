"""A change in customer behaviour on a given day: from ``WorldConfig.shift_date`` on, every purchase
rate is multiplied by ``shift_purchase_rate`` and every dropout hazard by ``shift_hazard``.

Both are step changes at midnight of the shift date, so the truth's daily grid integrates them
exactly. The dropout change is applied to the death times drawn with the base hazard: the remaining
life after ``max(signup, shift)`` is exponential (memoryless), so dividing it by the multiplier
gives the death time under the piecewise hazard, with no extra random draw. A world without a
shift takes none of these paths and is identical to one generated before the knob existed.
"""

from __future__ import annotations

import numpy as np

from churnclv.generator.world import WorldConfig

__all__ = ["hazard_factors", "max_rate_factor", "rate_factors", "shifted_death"]


def _factors(config: WorldConfig, day: np.ndarray, multiplier: float) -> np.ndarray:
    after = day >= config.shift_day if config.shift_day is not None else np.zeros(day.shape, dtype=bool)
    factors: np.ndarray = np.where(after, multiplier, 1.0)
    return factors


def rate_factors(config: WorldConfig, day: np.ndarray) -> np.ndarray:
    """The purchase-rate multiplier of whole days since ``config.start`` (1 before the shift)."""
    return _factors(config, day, config.shift_purchase_rate)


def hazard_factors(config: WorldConfig, day: np.ndarray) -> np.ndarray:
    """The dropout-hazard multiplier of whole days since ``config.start`` (1 before the shift)."""
    return _factors(config, day, config.shift_hazard)


def max_rate_factor(config: WorldConfig) -> float:
    """The largest purchase-rate multiplier on any day: the thinning's proposal must bound the rate."""
    return max(1.0, config.shift_purchase_rate)


def shifted_death(config: WorldConfig, signup: np.ndarray, death: np.ndarray) -> np.ndarray:
    """Death times (days) under the hazard multiplied by ``shift_hazard`` from the shift day on,
    from ``death`` drawn with the base hazard."""
    if config.shift_day is None or config.shift_hazard == 1.0:
        return death
    since = np.maximum(signup, config.shift_day)
    shifted: np.ndarray = np.where(death > since, since + (death - since) / config.shift_hazard, death)
    return shifted
