"""When things happen in a world: Poisson arrivals shaped by an hour-of-day profile, and the yearly
season of purchase rates."""

from __future__ import annotations

import numpy as np

from churnclv.generator.world import WorldConfig

__all__ = ["poisson_points", "seasonal_factor"]

# Activity by hour of day (quiet nights, lunch and evening peaks); only its shape matters.
_HOURLY = np.array(
    [0.25, 0.15, 0.1, 0.1, 0.1, 0.2, 0.4, 0.7, 1.0, 1.1, 1.2, 1.4,
     1.5, 1.3, 1.2, 1.2, 1.3, 1.5, 1.8, 2.0, 1.9, 1.5, 1.0, 0.5]
)  # fmt: skip
_HOUR_GRID = np.linspace(0.0, 1.0, 25)
_HOUR_CDF = np.concatenate([[0.0], np.cumsum(_HOURLY) / _HOURLY.sum()])


def _to_op(t: np.ndarray) -> np.ndarray:
    """Real time (days) to 'operational' time in which the hour-of-day profile is flat."""
    day = np.floor(t)
    op: np.ndarray = day + np.interp(t - day, _HOUR_GRID, _HOUR_CDF)
    return op


def _from_op(u: np.ndarray) -> np.ndarray:
    day = np.floor(u)
    real: np.ndarray = day + np.interp(u - day, _HOUR_CDF, _HOUR_GRID)
    return real


def poisson_points(
    rng: np.random.Generator, seg_start: np.ndarray, seg_end: np.ndarray, rate: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Points of a Poisson process with a per-customer rate on ``[seg_start, seg_end)``.

    The rate follows the hour-of-day profile (a time change: uniform points in operational time,
    mapped back), so a day still gets ``rate`` points on average. Returns (customer, time in days).
    """
    lo = _to_op(seg_start)
    length = np.maximum(_to_op(seg_end) - lo, 0.0)
    n = rng.poisson(rate * length)
    cust = np.repeat(np.arange(rate.size), n)
    u = lo[cust] + rng.random(cust.size) * length[cust]
    return cust, _from_op(u)


def seasonal_factor(config: WorldConfig, day: np.ndarray) -> np.ndarray:
    """Seasonal multiplier of the purchase rate for whole days since ``config.start``."""
    dates = np.datetime64(config.start.date(), "D") + day.astype(np.int64).astype("timedelta64[D]")
    doy = (dates - dates.astype("datetime64[Y]")).astype(np.int64) + 1
    angle = 2 * np.pi * (doy - config.season_peak_day_of_year) / 365.25
    factor: np.ndarray = 1.0 + config.seasonality_amplitude * np.cos(angle)
    return factor
