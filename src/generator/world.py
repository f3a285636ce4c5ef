"""A synthetic world's parameters (:class:`WorldConfig`), its hidden state and its tables.

The world is a latent-state model in the spirit of Pareto/NBD and BG/NBD (Schmittlein, Morrison
and Colombo 1987, "Counting your customers"; Fader, Hardie and Lee 2005, "Counting your customers
the easy way"), extended so that the engagement events and the customer attributes carry signal:

- each customer has a latent satisfaction ``z ~ N(shift[acquisition_channel], 1)``;
- a customer signs up uniformly over the first ``signup_days`` of the world and from then on is
  alive until an exponential death time with hazard ``h = base_hazard * exp(-hazard_beta * z)``;
  death is never observed;
- while alive, orders arrive as a Poisson process with a gamma-distributed per-customer daily rate
  (times ``exp(satisfaction_rate_effect * z)``) multiplied by a yearly sinusoid (by thinning) and
  spread over the day by an hour-of-day profile; a share of customers never buys at all;
- an order has 1-3 lines (same ``order_id`` and ``ts``) with lognormal amounts around a per-customer
  mean, a ``channel`` and a ``category`` per line; a share of lines is returned days later as a
  negative line of the same order;
- engagement events (``login``, ``session``, ``email_open``, ``email_click``, ``support_ticket``,
  ``complaint``) follow the same latent state: logins, sessions and e-mail activity rise with
  ``z`` and collapse after the silent death; tickets and complaints are more frequent for low ``z``.

Time runs over ``[start, end]``: no row has a timestamp after ``end``. Everything is vectorised
numpy, generated in fixed blocks of customers, each seeded from
``SeedSequence(seed, spawn_key=(block,))``, so a world depends only on its :class:`WorldConfig`
(not on ``n_jobs``).

Ground truth (:func:`churnclv.generator.truth.truth_at`) is computed from the latent state at the
as-of date, never from the realised future, so it is the best any model could do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["ID_WIDTH", "Latent", "World", "WorldConfig"]

ID_WIDTH = 8  # ids are zero-padded to 8 digits
# the default time span (pd.Timestamp is immutable: one shared default is safe)
_DEFAULT_START = pd.Timestamp("2023-01-01")
_DEFAULT_END = pd.Timestamp("2025-12-31")


@dataclass(frozen=True)
class WorldConfig:
    """Parameters of a synthetic world. Rates are per day.

    Parameters
    ----------
    n_customers : int
        Number of customers (at most 10**8: ids are 8-digit zero-padded strings).
    seed : int
        Seed; the same config always gives the same world.
    start, end : pd.Timestamp
        The world covers ``[start, end]``; both must be dates at midnight. No row is after ``end``.
    signup_days : int
        Customers sign up uniformly over the first ``signup_days`` days.
    purchase_rate_scale, event_rate_scale : float
        Multiply every purchase rate and every engagement-event rate. Defaults give about 15
        transaction lines and 33 events per customer; ``3.3`` and ``3.0`` give about 50 and 100.
    mean_purchase_rate : float
        Mean orders per day of a buying customer at ``z = 0``, before ``purchase_rate_scale``.
    purchase_rate_shape : float
        Gamma shape of the per-customer purchase rate (smaller = more heterogeneous).
    satisfaction_rate_effect : float
        The purchase rate is multiplied by ``exp(satisfaction_rate_effect * z)``.
    never_buyer_share : float
        Share of customers whose purchase rate is zero (sign-ups who never buy).
    base_hazard, hazard_beta : float
        Death hazard ``base_hazard * exp(-hazard_beta * z)`` per day.
    seasonality_amplitude, season_peak_day_of_year : float, int
        Purchase rates are multiplied by ``1 + A cos(2 pi (doy - peak) / 365.25)``.
    mean_line_value, customer_value_sigma, line_value_sigma : float
        Line amounts are lognormal with a per-customer mean, itself lognormal around
        ``mean_line_value`` (times a region factor).
    return_prob : float
        Probability that a line is returned, at ``z = 0`` (rises as ``z`` falls).
    shift_date : pd.Timestamp, optional
        A change in behaviour (:mod:`churnclv.generator.shift`): from this date on (midnight, after
        ``start``, at most ``end``) purchase rates are multiplied by ``shift_purchase_rate`` and
        dropout hazards by ``shift_hazard``. None (default): no change, the world of old.
    shift_purchase_rate, shift_hazard : float
        The multipliers (> 0; 1 = unchanged); either needs ``shift_date``.
    """

    n_customers: int = 10_000
    seed: int = 0
    start: pd.Timestamp = _DEFAULT_START
    end: pd.Timestamp = _DEFAULT_END
    signup_days: int = 730
    purchase_rate_scale: float = 1.0
    event_rate_scale: float = 1.0
    mean_purchase_rate: float = 0.02
    purchase_rate_shape: float = 1.0
    satisfaction_rate_effect: float = 0.3
    never_buyer_share: float = 0.1
    base_hazard: float = 1.0 / 900.0
    hazard_beta: float = 0.8
    seasonality_amplitude: float = 0.25
    season_peak_day_of_year: int = 335
    mean_line_value: float = 40.0
    customer_value_sigma: float = 0.5
    line_value_sigma: float = 0.6
    return_prob: float = 0.08
    shift_date: pd.Timestamp | None = None
    shift_purchase_rate: float = 1.0
    shift_hazard: float = 1.0

    def __post_init__(self) -> None:
        for name in ("start", "end") if self.shift_date is None else ("start", "end", "shift_date"):
            value = pd.Timestamp(getattr(self, name))
            if value.tzinfo is not None or value != value.normalize():
                raise ValueError(
                    f"WorldConfig.{name} must be a naive date at midnight; got {value!r}. "
                    f"Pass a date such as '2023-01-01'."
                )
            object.__setattr__(self, name, value)
        if not 0 < self.n_customers <= 10**ID_WIDTH:
            raise ValueError(f"WorldConfig.n_customers must be in 1..{10**ID_WIDTH}; got {self.n_customers}.")
        if self.end <= self.start:
            raise ValueError(f"WorldConfig.end ({self.end.date()}) must be after start ({self.start.date()}).")
        if not 0 < self.signup_days <= self.n_days:
            raise ValueError(
                f"WorldConfig.signup_days must be in 1..{self.n_days} (the world's length in "
                f"days); got {self.signup_days}."
            )
        positive = (
            "purchase_rate_scale",
            "event_rate_scale",
            "mean_purchase_rate",
            "purchase_rate_shape",
            "base_hazard",
            "mean_line_value",
        )
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"WorldConfig.{name} must be > 0; got {getattr(self, name)}.")
        for name in ("never_buyer_share", "return_prob", "seasonality_amplitude"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"WorldConfig.{name} must be in [0, 1); got {getattr(self, name)}.")
        self._check_shift()

    def _check_shift(self) -> None:
        for name in ("shift_purchase_rate", "shift_hazard"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise ValueError(f"WorldConfig.{name} must be a finite number > 0 (1 = unchanged); got {value}.")
            if value != 1.0 and self.shift_date is None:
                raise ValueError(
                    f"WorldConfig.{name} = {value} needs shift_date, the day the change starts; "
                    "pass e.g. shift_date='2025-07-01'."
                )
        if self.shift_date is not None and not self.start < self.shift_date <= self.end:
            raise ValueError(
                f"WorldConfig.shift_date ({self.shift_date.date()}) must be after start ({self.start.date()}) "
                f"and at most end ({self.end.date()}); pass a date within the world."
            )

    @property
    def n_days(self) -> int:
        """Length of the world in days."""
        return int((self.end - self.start) / pd.Timedelta(days=1))

    @property
    def shift_day(self) -> int | None:
        """The shift date in whole days since ``start`` (None: no shift)."""
        return None if self.shift_date is None else int((self.shift_date - self.start) / pd.Timedelta(days=1))


@dataclass
class Latent:
    """The hidden state of every customer (index ``i`` is customer id ``f"{i:08d}"``).

    Times are in days since ``config.start``; rates are per day.
    """

    signup_day: np.ndarray
    death_day: np.ndarray
    satisfaction: np.ndarray
    hazard: np.ndarray
    purchase_rate: np.ndarray
    mean_line_value: np.ndarray
    return_prob: np.ndarray

    def death_ts(self, start: pd.Timestamp) -> pd.DatetimeIndex:
        """Death times as timestamps (may lie after the world's end)."""
        return pd.DatetimeIndex(start + pd.to_timedelta(self.death_day, unit="D"))

    @staticmethod
    def concat(parts: Sequence[Latent]) -> Latent:
        """Stack the latent state of consecutive blocks of customers."""
        names = Latent.__dataclass_fields__
        return Latent(**{n: np.concatenate([getattr(p, n) for p in parts]) for n in names})


@dataclass
class World:
    """A generated world: the three clean tables, the config and the latent state behind them."""

    config: WorldConfig
    transactions: pd.DataFrame
    events: pd.DataFrame
    customers: pd.DataFrame
    latent: Latent
