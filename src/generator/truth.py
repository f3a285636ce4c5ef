"""A world's ground truth, from the latent state at the as-of date (never from the realised future),
so it is the best any model could do."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from churnclv.generator.arrays import digits, fixed_strings
from churnclv.generator.blocks import BLOCK
from churnclv.generator.clock import seasonal_factor
from churnclv.generator.shift import hazard_factors, rate_factors
from churnclv.generator.transactions import MEAN_LINES_PER_ORDER, MEAN_RETURN_FRACTION
from churnclv.generator.world import ID_WIDTH, Latent, World, WorldConfig

__all__ = ["check_truth_args", "default_truth_as_of", "truth_at", "truth_rows"]


def default_truth_as_of(config: WorldConfig, horizon_days: int = 90) -> list[pd.Timestamp]:
    """As-of dates whose label windows close within the data.

    ``end - horizon_days`` and the two 30-day steps before it, oldest first.
    """
    last = config.end - pd.Timedelta(days=horizon_days)
    return [last - pd.Timedelta(days=30 * k) for k in (2, 1, 0)]


def truth_rows(
    config: WorldConfig,
    latent: Latent,
    first_id: int,
    as_of_dates: Sequence[pd.Timestamp],
    horizon_days: int,
) -> pa.Table:
    """Truth for one stretch of customers, sorted by (customer_id, as_of)."""
    day = pd.Timedelta(days=1)
    offsets = [(a - config.start) / day for a in as_of_dates]
    pieces = []
    for j, a in enumerate(offsets):
        known = np.flatnonzero(latent.signup_day <= a)
        alive = latent.death_day[known] > a
        h = latent.hazard[known]
        lam = latent.purchase_rate[known] * alive
        # Piecewise-constant rate and hazard on whole days of the window: the remaining life is
        # memoryless, so every day's contribution integrates in closed form.
        days = np.floor(a + np.arange(horizon_days) + 0.5)
        season = seasonal_factor(config, days) * rate_factors(config, days)  # x 1.0 without a shift: exact
        cum = np.zeros(known.size)  # integrated purchase rate since as_of
        surv = np.ones(known.size)  # P(still alive k days after as_of)
        p_none = np.zeros(known.size)
        expected = np.zeros(known.size)
        for s, k in zip(season, hazard_factors(config, days), strict=True):
            mu = lam * s
            hk = h * k  # the day's hazard
            # death during this day with no purchase before it
            p_none += surv * np.exp(-cum) * hk * -np.expm1(-(hk + mu)) / (hk + mu)
            expected += surv * mu * -np.expm1(-hk) / hk
            cum += mu
            surv *= np.exp(-hk)
        p_none += surv * np.exp(-cum)
        p_none = np.where(alive, np.minimum(p_none, 1.0), 1.0)
        net_line = latent.mean_line_value[known] * (1 - latent.return_prob[known] * MEAN_RETURN_FRACTION)
        pieces.append(
            pd.DataFrame(
                {
                    "_i": known,
                    "_j": j,
                    "alive": alive,
                    "p_no_purchase": p_none,
                    "expected_purchases": expected,
                    "expected_spend": expected * MEAN_LINES_PER_ORDER * net_line,
                    "satisfaction": latent.satisfaction[known],
                }
            )
        )
    df = pd.concat(pieces, ignore_index=True).sort_values(["_i", "_j"], kind="stable")
    i = df["_i"].to_numpy()
    as_of_us = np.array([a.value // 1_000 for a in as_of_dates], dtype=np.int64)
    return pa.table(
        {
            "customer_id": fixed_strings(digits(first_id + i, ID_WIDTH)),
            "as_of": pa.array(as_of_us[df["_j"].to_numpy()], type=pa.timestamp("us")),
            "horizon_days": pa.array(np.full(i.size, horizon_days, dtype=np.int64)),
            "alive": pa.array(df["alive"].to_numpy()),
            "p_no_purchase": pa.array(df["p_no_purchase"].to_numpy()),
            "expected_purchases": pa.array(df["expected_purchases"].to_numpy()),
            "expected_spend": pa.array(df["expected_spend"].to_numpy()),
            "satisfaction": pa.array(df["satisfaction"].to_numpy()),
        }
    )


def check_truth_args(as_of_dates: Sequence, horizon_days: int) -> list[pd.Timestamp]:
    """The truth's as-of dates as naive timestamps; refuses a bad horizon, no dates or aware dates."""
    if isinstance(horizon_days, bool) or not isinstance(horizon_days, (int, np.integer)):
        raise TypeError(f"horizon_days must be an int number of days; got {horizon_days!r}.")
    if horizon_days <= 0:
        raise ValueError(f"horizon_days must be > 0; got {horizon_days}.")
    dates = [pd.Timestamp(a) for a in as_of_dates]
    if not dates:
        raise ValueError("as_of_dates is empty; pass at least one as-of timestamp.")
    for a in dates:
        if a.tzinfo is not None:
            raise ValueError(f"as_of {a} is timezone-aware; pass naive UTC timestamps (a.tz_convert(None)).")
    return dates


def truth_at(world: World, as_of_dates: Sequence[pd.Timestamp], horizon_days: int) -> pd.DataFrame:
    """Ground truth per customer known at each as-of date, from the latent state (not the future).

    Parameters
    ----------
    world : World
        A world from :func:`generate_world`.
    as_of_dates : sequence of pd.Timestamp
        Naive as-of timestamps; a customer is included when ``signup_ts <= as_of``.
    horizon_days : int
        The window is ``(as_of, as_of + horizon_days]``.

    Returns
    -------
    pd.DataFrame
        Sorted by customer_id, as_of, with columns ``customer_id``, ``as_of``, ``horizon_days``,
        ``alive`` (not yet dead at as_of), ``p_no_purchase`` (probability of no order in the window:
        1 when dead; else integrated over the exponential death time and the seasonal Poisson rate),
        ``expected_purchases`` (expected orders in the window), ``expected_spend`` (expected net
        spend: expected orders x mean lines per order x the customer's mean line value x
        (1 - return probability x mean returned fraction)) and ``satisfaction`` (latent ``z``).

    Notes
    -----
    Approximations: the rate is integrated on whole days of the window, exact for midnight as-of
    dates except that within a day the hour-of-day profile is treated as flat against the death
    time. Returns are charged to the window of their order, although a return lands 1-30 days later
    (and returns after ``end`` are not written): returns flowing into the window from earlier
    orders roughly balance those flowing out, and a dead customer may still return an earlier order
    (realised net spend slightly below 0 while ``expected_spend`` is 0).
    """
    dates = check_truth_args(as_of_dates, horizon_days)
    config = world.config
    tables = []
    for first in range(0, config.n_customers, BLOCK):
        part = Latent(
            **{name: getattr(world.latent, name)[first : first + BLOCK] for name in Latent.__dataclass_fields__}
        )
        tables.append(truth_rows(config, part, first, dates, horizon_days))
    return pa.concat_tables(tables).to_pandas()
