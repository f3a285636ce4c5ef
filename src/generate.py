"""Synthetic customer worlds with a known ground truth, in the canonical data contract.

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

Ground truth (:func:`truth_at`) is computed from the latent state at the as-of date, never from the
realised future, so it is the best any model could do.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from churnclv.schema import KNOWN_EVENT_TYPES

__all__ = [
    "Latent",
    "World",
    "WorldConfig",
    "default_truth_as_of",
    "generate_world",
    "generate_world_to_parquet",
    "truth_at",
    "write_world",
]

logger = logging.getLogger(__name__)

# Customers per generation block. Part of the algorithm, not a tuning knob: changing it changes the
# world a seed produces.
_BLOCK = 65_536
_ID_WIDTH = 8
_SECONDS_PER_DAY = 86_400
_US_PER_SECOND = 1_000_000

REGIONS: tuple[str, ...] = ("north", "south", "east", "west")
_REGION_P = np.array([0.3, 0.25, 0.25, 0.2])
# Regions differ in basket size, not in loyalty.
_REGION_VALUE = np.array([1.0, 0.85, 1.1, 1.25])

ACQUISITION_CHANNELS: tuple[str, ...] = (
    "organic",
    "paid_search",
    "social",
    "referral",
    "affiliate",
)
_ACQ_P = np.array([0.35, 0.25, 0.2, 0.1, 0.1])
# Shifts the latent satisfaction, so the attribute predicts churn.
_ACQ_Z_SHIFT = np.array([0.2, 0.0, -0.4, 0.5, -0.5])

ORDER_CHANNELS: tuple[str, ...] = ("web", "app", "store")
_ORDER_CHANNEL_P = np.array([0.5, 0.3, 0.2])
CATEGORIES: tuple[str, ...] = (
    "apparel",
    "beauty",
    "electronics",
    "grocery",
    "home",
    "sports",
    "toys",
)
_CATEGORY_P = np.array([0.22, 0.12, 0.1, 0.2, 0.16, 0.1, 0.1])
_LINES_P = np.array([0.6, 0.3, 0.1])  # 1, 2 or 3 lines per order
_MEAN_LINES = float(np.dot(_LINES_P, [1, 2, 3]))
# A return gives back the whole line with probability 0.7, else a uniform 20-90 % of it.
_RETURN_FULL_P = 0.7
_MEAN_RETURN_FRACTION = _RETURN_FULL_P + (1 - _RETURN_FULL_P) * 0.55

# the generator writes exactly the event types the features know by name, in this order
EVENT_TYPES: tuple[str, ...] = KNOWN_EVENT_TYPES
_LOGIN, _SESSION, _EMAIL_OPEN, _EMAIL_CLICK, _TICKET, _COMPLAINT = range(6)

# Activity by hour of day (quiet nights, lunch and evening peaks); only its shape matters.
_HOURLY = np.array(
    [0.25, 0.15, 0.1, 0.1, 0.1, 0.2, 0.4, 0.7, 1.0, 1.1, 1.2, 1.4,
     1.5, 1.3, 1.2, 1.2, 1.3, 1.5, 1.8, 2.0, 1.9, 1.5, 1.0, 0.5]
)  # fmt: skip
_HOUR_GRID = np.linspace(0.0, 1.0, 25)
_HOUR_CDF = np.concatenate([[0.0], np.cumsum(_HOURLY) / _HOURLY.sum()])


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
    """

    n_customers: int = 10_000
    seed: int = 0
    start: pd.Timestamp = pd.Timestamp("2023-01-01")
    end: pd.Timestamp = pd.Timestamp("2025-12-31")
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

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            value = pd.Timestamp(getattr(self, name))
            if value.tzinfo is not None or value != value.normalize():
                raise ValueError(
                    f"WorldConfig.{name} must be a naive date at midnight; got {value!r}. "
                    f"Pass a date such as '2023-01-01'."
                )
            object.__setattr__(self, name, value)
        if not 0 < self.n_customers <= 10**_ID_WIDTH:
            raise ValueError(f"WorldConfig.n_customers must be in 1..{10**_ID_WIDTH}; got {self.n_customers}.")
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

    @property
    def n_days(self) -> int:
        """Length of the world in days."""
        return int((self.end - self.start) / pd.Timedelta(days=1))


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


@dataclass
class _Block:
    latent: Latent
    customers: pa.Table
    transactions: pa.Table
    events: pa.Table


# ------------------------------------------------------------------------------------------------
# small vectorised helpers


def _digits(values: np.ndarray, width: int) -> np.ndarray:
    """ASCII digits of non-negative ints, zero-padded, as a ``(n, width)`` uint8 matrix."""
    out = np.empty((values.size, width), dtype=np.uint8)
    x = values.astype(np.int64, copy=True)
    for j in range(width - 1, -1, -1):
        out[:, j] = x % 10 + 48
        x //= 10
    return out


def _fixed_strings(mat: np.ndarray) -> pa.Array:
    """Rows of a uint8 matrix as an Arrow ``large_string`` array, without Python objects."""
    n, width = mat.shape
    offsets = np.arange(0, n * width + 1, width, dtype=np.int64)
    data = np.ascontiguousarray(mat).reshape(-1)
    return pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))


def _labels(codes: np.ndarray, names: Sequence[str]) -> pa.Array:
    dictionary = pa.array(list(names), type=pa.large_string())
    return pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32)), dictionary).cast(pa.large_string())


def _ts_array(start: pd.Timestamp, seconds: np.ndarray) -> pa.Array:
    start_us = start.value // 1_000  # .value is in ns
    return pa.array(start_us + seconds * _US_PER_SECOND, type=pa.timestamp("us"))


def _to_op(t: np.ndarray) -> np.ndarray:
    """Real time (days) to 'operational' time in which the hour-of-day profile is flat."""
    day = np.floor(t)
    return day + np.interp(t - day, _HOUR_GRID, _HOUR_CDF)


def _from_op(u: np.ndarray) -> np.ndarray:
    day = np.floor(u)
    return day + np.interp(u - day, _HOUR_CDF, _HOUR_GRID)


def _poisson_points(
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


def _season(config: WorldConfig, day: np.ndarray) -> np.ndarray:
    """Seasonal multiplier of the purchase rate for whole days since ``config.start``."""
    dates = np.datetime64(config.start.date(), "D") + day.astype(np.int64).astype("timedelta64[D]")
    doy = (dates - dates.astype("datetime64[Y]")).astype(np.int64) + 1
    angle = 2 * np.pi * (doy - config.season_peak_day_of_year) / 365.25
    return 1.0 + config.seasonality_amplitude * np.cos(angle)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _to_seconds(t: np.ndarray) -> np.ndarray:
    return np.floor(t * _SECONDS_PER_DAY).astype(np.int64)


def _sort_rows(cust: np.ndarray, seconds: np.ndarray, n_days: int) -> np.ndarray:
    """Stable order by (customer, ts): ties keep generation order (lines of one order)."""
    key = cust.astype(np.int64) * (n_days * _SECONDS_PER_DAY + 1) + seconds
    return np.argsort(key, kind="stable")


# ------------------------------------------------------------------------------------------------
# one block of customers


def _generate_block(config: WorldConfig, block: int) -> _Block:
    first = block * _BLOCK
    n = min(_BLOCK, config.n_customers - first)
    rng = np.random.default_rng(np.random.SeedSequence(config.seed, spawn_key=(block,)))
    n_days = config.n_days

    # --- customers and their latent state
    acq = rng.choice(len(ACQUISITION_CHANNELS), size=n, p=_ACQ_P)
    region = rng.choice(len(REGIONS), size=n, p=_REGION_P)
    z = _ACQ_Z_SHIFT[acq] + rng.standard_normal(n)
    # whole seconds, so the float signup and the written signup_ts agree exactly
    signup_sec = np.floor(rng.random(n) * config.signup_days * _SECONDS_PER_DAY).astype(np.int64)
    signup = signup_sec / _SECONDS_PER_DAY
    hazard = config.base_hazard * np.exp(-config.hazard_beta * z)
    death = signup + rng.standard_exponential(n) / hazard
    buyer = rng.random(n) >= config.never_buyer_share
    shape = config.purchase_rate_shape
    purchase_rate = (
        config.mean_purchase_rate
        * config.purchase_rate_scale
        * rng.gamma(shape, 1.0 / shape, size=n)
        * np.exp(config.satisfaction_rate_effect * z)
        * buyer
    )
    sigma_c = config.customer_value_sigma
    mean_value = (
        config.mean_line_value * _REGION_VALUE[region] * np.exp(sigma_c * rng.standard_normal(n) - sigma_c**2 / 2)
    )
    return_prob = np.clip(config.return_prob * np.exp(-0.4 * z), 0.0, 0.5)
    engagement = rng.gamma(2.0, 0.5, size=n)  # per-customer taste for the app and e-mails
    latent = Latent(signup, death, z, hazard, purchase_rate, mean_value, return_prob)

    id_mat = _digits(np.arange(first, first + n), _ID_WIDTH)
    id_words = id_mat.view(np.uint64).reshape(-1)  # one 8-byte word per id: fast row gathers

    def ids(cust: np.ndarray) -> pa.Array:
        return _fixed_strings(id_words[cust].view(np.uint8).reshape(-1, _ID_WIDTH))

    customers = pa.table(
        {
            "customer_id": _fixed_strings(id_mat),
            "signup_ts": _ts_array(config.start, signup_sec),
            "region": _labels(region, REGIONS),
            "acquisition_channel": _labels(acq, ACQUISITION_CHANNELS),
        }
    )

    alive_end = np.minimum(death, n_days)

    def seconds(cust: np.ndarray, t: np.ndarray) -> np.ndarray:
        # float round trips must not put a row a second before its signup or after `end`
        return np.clip(_to_seconds(t), signup_sec[cust], n_days * _SECONDS_PER_DAY)

    transactions = _block_transactions(
        config, rng, ids, seconds, id_mat, signup, alive_end, purchase_rate, mean_value, return_prob
    )
    events = _block_events(config, rng, ids, seconds, signup, death, alive_end, z, engagement)
    return _Block(latent, customers, transactions, events)


def _block_transactions(
    config: WorldConfig,
    rng: np.random.Generator,
    ids: Callable[[np.ndarray], pa.Array],
    seconds: Callable[[np.ndarray, np.ndarray], np.ndarray],
    id_mat: np.ndarray,
    signup: np.ndarray,
    alive_end: np.ndarray,
    purchase_rate: np.ndarray,
    mean_value: np.ndarray,
    return_prob: np.ndarray,
) -> pa.Table:
    n_days = config.n_days
    amp = config.seasonality_amplitude
    cust, t = _poisson_points(rng, signup, alive_end, purchase_rate * (1 + amp))
    # seasonality by thinning on whole days, so the truth can integrate it exactly on a daily grid
    season = _season(config, np.arange(n_days + 1))
    keep = rng.random(t.size) * (1 + amp) < season[t.astype(np.int64)]
    cust, t = cust[keep], t[keep]
    sec = seconds(cust, t)
    order = _sort_rows(cust, sec, n_days)
    cust, t, sec = cust[order], t[order], sec[order]
    # order number within the customer, in time order
    counts = np.bincount(cust, minlength=signup.size)
    seq = np.arange(cust.size) - np.repeat(np.cumsum(counts) - counts, counts)
    order_channel = rng.choice(len(ORDER_CHANNELS), size=cust.size, p=_ORDER_CHANNEL_P)

    n_lines = rng.choice(3, size=cust.size, p=_LINES_P) + 1
    line_order = np.repeat(np.arange(cust.size), n_lines)
    line_cust = cust[line_order]
    sigma_l = config.line_value_sigma
    noise = np.exp(sigma_l * rng.standard_normal(line_order.size) - sigma_l**2 / 2)
    amount = np.maximum(np.round(mean_value[line_cust] * noise, 2), 0.01)
    category = rng.choice(len(CATEGORIES), size=line_order.size, p=_CATEGORY_P)
    amount = _distinct_lines(line_order, category, amount)

    # returns: a later negative line of the same order; dropped when they would fall after `end`
    returned = rng.random(line_order.size) < return_prob[line_cust]
    full = rng.random(line_order.size) < _RETURN_FULL_P
    fraction = np.where(full, 1.0, rng.uniform(0.2, 0.9, size=line_order.size))
    delay = 1.0 + rng.gamma(2.0, 4.0, size=line_order.size)
    t_ret = t[line_order] + delay
    returned &= t_ret < n_days
    ret_amount = -np.maximum(np.round(amount * fraction, 2), 0.01)

    row_order = np.concatenate([line_order, line_order[returned]])
    row_cust = cust[row_order]
    row_sec = np.concatenate([sec[line_order], seconds(line_cust[returned], t_ret[returned])])
    row_amount = np.concatenate([amount, ret_amount[returned]])
    row_category = np.concatenate([category, category[returned]])
    idx = _sort_rows(row_cust, row_sec, n_days)
    row_order, row_cust, row_sec = row_order[idx], row_cust[idx], row_sec[idx]

    seq_width = max(5, len(str(int(seq.max())))) if seq.size else 5
    oid = np.empty((row_order.size, _ID_WIDTH + 1 + seq_width), dtype=np.uint8)
    oid[:, :_ID_WIDTH] = id_mat[row_cust]
    oid[:, _ID_WIDTH] = ord("-")
    oid[:, _ID_WIDTH + 1 :] = _digits(seq[row_order], seq_width)
    return pa.table(
        {
            "customer_id": ids(row_cust),
            "ts": _ts_array(config.start, row_sec),
            "amount": pa.array(row_amount[idx], type=pa.float64()),
            "order_id": _fixed_strings(oid),
            "channel": _labels(order_channel[row_order], ORDER_CHANNELS),
            "category": _labels(row_category[idx], CATEGORIES),
        }
    )


def _distinct_lines(line_order: np.ndarray, category: np.ndarray, amount: np.ndarray) -> np.ndarray:
    """Make two lines of one order never identical (same category and amount): the k-th repeat gets
    k cents more. Identical lines of one order are what validation rejects as duplicates, so a
    generated world must not contain them (a real shop would write one line with quantity 2)."""
    cents = np.round(amount * 100).astype(np.int64)
    key = (line_order.astype(np.int64) * 64 + category) * 1_000_000_000 + cents
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    starts = np.r_[True, sorted_key[1:] != sorted_key[:-1]]
    run = np.cumsum(starts) - 1
    repeat = np.empty_like(run)
    repeat[order] = np.arange(key.size) - np.flatnonzero(starts)[run]
    return np.round(amount + repeat * 0.01, 2)


def _decaying_after_death(
    rng: np.random.Generator,
    death: np.ndarray,
    n_days: int,
    rate: np.ndarray,
    decay_days: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Residual activity after the silent death, fading as ``exp(-(t - death) / decay_days)``."""
    end = np.minimum(death + 5 * decay_days, n_days)
    cust, t = _poisson_points(rng, death, end, rate)
    keep = rng.random(t.size) < np.exp(-(t - death[cust]) / decay_days)
    return cust[keep], t[keep]


def _block_events(
    config: WorldConfig,
    rng: np.random.Generator,
    ids: Callable[[np.ndarray], pa.Array],
    seconds: Callable[[np.ndarray, np.ndarray], np.ndarray],
    signup: np.ndarray,
    death: np.ndarray,
    alive_end: np.ndarray,
    z: np.ndarray,
    engagement: np.ndarray,
) -> pa.Table:
    n_days = config.n_days
    scale = config.event_rate_scale
    parts: list[tuple[int, np.ndarray, np.ndarray]] = []

    # (type, alive rate, share of it left right after death, decay of the rest in days)
    app = scale * engagement * np.exp(0.4 * z)
    mail = scale * engagement * _sigmoid(-1.0 + 0.8 * z)
    specs = [
        (_LOGIN, 0.022 * app, 0.15, 30.0),
        (_SESSION, 0.015 * app, 0.15, 30.0),
        (_EMAIL_OPEN, 0.05 * mail, 0.3, 90.0),
        (_TICKET, 0.002 * scale * np.exp(-0.7 * z), 0.0, 0.0),
        (_COMPLAINT, 0.0007 * scale * np.exp(-1.2 * z), 0.0, 0.0),
    ]
    for kind, rate, after, decay in specs:
        parts.append((kind, *_poisson_points(rng, signup, alive_end, rate)))
        if after > 0:
            parts.append((kind, *_decaying_after_death(rng, death, n_days, after * rate, decay)))

    # clicks follow opens within minutes; satisfied, living customers click more
    opens = [(c, t) for k, c, t in parts if k == _EMAIL_OPEN]
    o_cust = np.concatenate([c for c, _ in opens])
    o_t = np.concatenate([t for _, t in opens])
    p_click = _sigmoid(-1.0 + 0.5 * z[o_cust]) * np.where(o_t < death[o_cust], 1.0, 0.3)
    clicked = rng.random(o_t.size) < p_click
    c_t = o_t[clicked] + rng.exponential(3.0, size=int(clicked.sum())) / (24 * 60)
    inside = c_t < n_days
    parts.append((_EMAIL_CLICK, o_cust[clicked][inside], c_t[inside]))

    kind = np.concatenate([np.full(c.size, k, dtype=np.int8) for k, c, _ in parts])
    cust = np.concatenate([c for _, c, _ in parts])
    sec = seconds(cust, np.concatenate([t for _, _, t in parts]))
    value = np.full(cust.size, np.nan)
    is_session = kind == _SESSION
    minutes = 6.0 * np.exp(0.3 * z[cust[is_session]] + 0.8 * rng.standard_normal(is_session.sum()))
    value[is_session] = np.maximum(np.round(minutes, 1), 0.1)

    idx = _sort_rows(cust, sec, n_days)
    return pa.table(
        {
            "customer_id": ids(cust[idx]),
            "ts": _ts_array(config.start, sec[idx]),
            "event_type": _labels(kind[idx], EVENT_TYPES),
            "value": pa.array(value[idx], type=pa.float64(), from_pandas=True),
        }
    )


# ------------------------------------------------------------------------------------------------
# public API


def _n_blocks(config: WorldConfig) -> int:
    return -(-config.n_customers // _BLOCK)


def _blocks(config: WorldConfig, n_jobs: int) -> Iterator[_Block]:
    """Blocks in customer order; ``n_jobs`` threads (numpy and Arrow release the GIL)."""
    ids = range(_n_blocks(config))
    if n_jobs <= 1:
        for b in ids:
            yield _generate_block(config, b)
        return
    with ThreadPoolExecutor(max_workers=n_jobs) as pool:
        # bounded look-ahead: memory stays at about n_jobs blocks when the caller streams
        pending = [pool.submit(_generate_block, config, b) for b in ids[:n_jobs]]
        for b in ids[n_jobs:]:
            done = pending.pop(0).result()
            pending.append(pool.submit(_generate_block, config, b))
            yield done
        for fut in pending:
            yield fut.result()


def _check_n_jobs(n_jobs: int) -> None:
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs < 1:
        raise ValueError(f"n_jobs must be an int >= 1 (threads); got {n_jobs!r}.")


def generate_world(config: WorldConfig, *, n_jobs: int = 1) -> World:
    """Generate a synthetic world in the canonical contract.

    Parameters
    ----------
    config : WorldConfig
        The world's parameters; the same config always gives identical frames.
    n_jobs : int
        Threads generating blocks of customers in parallel; does not change the result.
        One million customers at default rates take about 10-15 s and 4 GB; at benchmark rates
        (50 lines, 100 events per customer) prefer :func:`generate_world_to_parquet`.

    Returns
    -------
    World
        ``transactions`` (customer_id, ts, amount, order_id, channel, category), ``events``
        (customer_id, ts, event_type, value), ``customers`` (customer_id, signup_ts, region,
        acquisition_channel), each sorted by customer_id and ts, plus the config and latent state.
    """
    _check_n_jobs(n_jobs)
    blocks = list(_blocks(config, n_jobs))
    frames = {
        name: pa.concat_tables([getattr(b, name) for b in blocks]).to_pandas()
        for name in ("transactions", "events", "customers")
    }
    world = World(config=config, latent=Latent.concat([b.latent for b in blocks]), **frames)
    logger.info(
        "generated %d customers, %d transaction lines, %d events",
        config.n_customers,
        len(world.transactions),
        len(world.events),
    )
    return world


def default_truth_as_of(config: WorldConfig, horizon_days: int = 90) -> list[pd.Timestamp]:
    """As-of dates whose label windows close within the data.

    ``end - horizon_days`` and the two 30-day steps before it, oldest first.
    """
    last = config.end - pd.Timedelta(days=horizon_days)
    return [last - pd.Timedelta(days=30 * k) for k in (2, 1, 0)]


def _truth_rows(
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
        # Piecewise-constant rate on whole days of the window: the remaining life is Exp(h)
        # (memoryless), so every day's contribution integrates in closed form.
        season = _season(config, np.floor(a + np.arange(horizon_days) + 0.5))
        cum = np.zeros(known.size)  # integrated purchase rate since as_of
        surv = np.ones(known.size)  # P(still alive k days after as_of)
        p_none = np.zeros(known.size)
        expected = np.zeros(known.size)
        one_day_survival = np.exp(-h)
        for s in season:
            mu = lam * s
            # death during this day with no purchase before it
            p_none += surv * np.exp(-cum) * h * -np.expm1(-(h + mu)) / (h + mu)
            expected += surv * mu * -np.expm1(-h) / h
            cum += mu
            surv *= one_day_survival
        p_none += surv * np.exp(-cum)
        p_none = np.where(alive, np.minimum(p_none, 1.0), 1.0)
        net_line = latent.mean_line_value[known] * (1 - latent.return_prob[known] * _MEAN_RETURN_FRACTION)
        pieces.append(
            pd.DataFrame(
                {
                    "_i": known,
                    "_j": j,
                    "alive": alive,
                    "p_no_purchase": p_none,
                    "expected_purchases": expected,
                    "expected_spend": expected * _MEAN_LINES * net_line,
                    "satisfaction": latent.satisfaction[known],
                }
            )
        )
    df = pd.concat(pieces, ignore_index=True).sort_values(["_i", "_j"], kind="stable")
    i = df["_i"].to_numpy()
    as_of_us = np.array([a.value // 1_000 for a in as_of_dates], dtype=np.int64)
    return pa.table(
        {
            "customer_id": _fixed_strings(_digits(first_id + i, _ID_WIDTH)),
            "as_of": pa.array(as_of_us[df["_j"].to_numpy()], type=pa.timestamp("us")),
            "horizon_days": pa.array(np.full(i.size, horizon_days, dtype=np.int64)),
            "alive": pa.array(df["alive"].to_numpy()),
            "p_no_purchase": pa.array(df["p_no_purchase"].to_numpy()),
            "expected_purchases": pa.array(df["expected_purchases"].to_numpy()),
            "expected_spend": pa.array(df["expected_spend"].to_numpy()),
            "satisfaction": pa.array(df["satisfaction"].to_numpy()),
        }
    )


def _check_truth_args(as_of_dates: Sequence, horizon_days: int) -> list[pd.Timestamp]:
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
    dates = _check_truth_args(as_of_dates, horizon_days)
    config = world.config
    tables = []
    for first in range(0, config.n_customers, _BLOCK):
        part = Latent(
            **{name: getattr(world.latent, name)[first : first + _BLOCK] for name in Latent.__dataclass_fields__}
        )
        tables.append(_truth_rows(config, part, first, dates, horizon_days))
    return pa.concat_tables(tables).to_pandas()


_TABLE_NAMES = ("transactions", "events", "customers", "truth")


def write_world(
    world: World,
    out_dir: Path,
    *,
    truth_as_of: Sequence | None = None,
    horizon_days: int = 90,
) -> dict[str, Path]:
    """Write the world's tables and its truth as Parquet files.

    Parameters
    ----------
    world : World
        A world from :func:`generate_world`.
    out_dir : Path
        Created if missing; gets ``transactions.parquet``, ``events.parquet``,
        ``customers.parquet`` and ``truth.parquet``.
    truth_as_of : sequence of timestamps, optional
        As-of dates for the truth; default :func:`default_truth_as_of` (``end - horizon_days`` and
        the two 30-day steps before it, so every label window closes within the data).
    horizon_days : int
        Horizon of the truth window.

    Returns
    -------
    dict of str to Path
        Table name to file path.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dates = default_truth_as_of(world.config, horizon_days) if truth_as_of is None else truth_as_of
    frames = {
        "transactions": world.transactions,
        "events": world.events,
        "customers": world.customers,
        "truth": truth_at(world, dates, horizon_days),
    }
    paths = {}
    for name in _TABLE_NAMES:
        paths[name] = out_dir / f"{name}.parquet"
        table = pa.Table.from_pandas(frames[name], preserve_index=False).replace_schema_metadata()
        pq.write_table(table, paths[name])
    return paths


def generate_world_to_parquet(
    config: WorldConfig,
    out_dir: Path,
    *,
    truth_as_of: Sequence | None = None,
    horizon_days: int = 90,
    n_jobs: int = 1,
) -> dict[str, Path]:
    """Generate a world straight into Parquet files, one block of customers at a time.

    Same rows as ``write_world(generate_world(config), ...)``, but memory stays at a few blocks
    (about 65k customers each), so it suits benchmark worlds of millions of customers.
    Parameters are those of :func:`generate_world` and :func:`write_world`.
    """
    _check_n_jobs(n_jobs)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dates = _check_truth_args(
        default_truth_as_of(config, horizon_days) if truth_as_of is None else truth_as_of,
        horizon_days,
    )
    paths = {name: out_dir / f"{name}.parquet" for name in _TABLE_NAMES}
    writers: dict[str, pq.ParquetWriter] = {}
    try:
        for b, block in enumerate(_blocks(config, n_jobs)):
            tables = {
                "transactions": block.transactions,
                "events": block.events,
                "customers": block.customers,
                "truth": _truth_rows(config, block.latent, b * _BLOCK, dates, horizon_days),
            }
            for name, table in tables.items():
                if name not in writers:
                    writers[name] = pq.ParquetWriter(paths[name], table.schema)
                writers[name].write_table(table)
            logger.info("wrote block %d of %d", b + 1, _n_blocks(config))
    finally:
        for writer in writers.values():
            writer.close()
    return paths
