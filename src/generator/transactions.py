"""A block's transaction lines: orders of 1-3 lines over the customers' lives, with seasonality by
thinning, order channels, categories and lognormal amounts, and returns as later negative lines."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa

from churnclv.generator.arrays import code_names, digits, fixed_strings, sort_rows, ts_array
from churnclv.generator.clock import poisson_points, seasonal_factor
from churnclv.generator.shift import max_rate_factor, rate_factors
from churnclv.generator.world import ID_WIDTH, WorldConfig

__all__ = ["CATEGORIES", "MEAN_LINES_PER_ORDER", "MEAN_RETURN_FRACTION", "ORDER_CHANNELS", "block_transactions"]

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
MEAN_LINES_PER_ORDER = float(np.dot(_LINES_P, [1, 2, 3]))

# A return gives back the whole line with probability 0.7, else a uniform 20-90 % of it.
_RETURN_FULL_P = 0.7
MEAN_RETURN_FRACTION = _RETURN_FULL_P + (1 - _RETURN_FULL_P) * 0.55


def block_transactions(
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
    """The transaction lines of one block's customers, sorted by (customer_id, ts).

    ``ids`` and ``seconds`` turn customer indexes and times in days into the block's ids and
    timestamps; customers buy from ``signup`` to ``alive_end`` at ``purchase_rate`` (times the season).
    """
    n_days = config.n_days
    bound = (1 + config.seasonality_amplitude) * max_rate_factor(config)  # the largest daily multiplier
    cust, t = poisson_points(rng, signup, alive_end, purchase_rate * bound)
    # seasonality (and a behaviour shift) by thinning on whole days, so the truth can integrate it
    # exactly on a daily grid
    days = np.arange(n_days + 1)
    season = seasonal_factor(config, days)
    if config.shift_purchase_rate != 1.0:
        season = season * rate_factors(config, days)
    keep = rng.random(t.size) * bound < season[t.astype(np.int64)]
    cust, t = cust[keep], t[keep]
    sec = seconds(cust, t)
    order = sort_rows(cust, sec, n_days)
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
    idx = sort_rows(row_cust, row_sec, n_days)
    row_order, row_cust, row_sec = row_order[idx], row_cust[idx], row_sec[idx]

    seq_width = max(5, len(str(int(seq.max())))) if seq.size else 5
    oid = np.empty((row_order.size, ID_WIDTH + 1 + seq_width), dtype=np.uint8)
    oid[:, :ID_WIDTH] = id_mat[row_cust]
    oid[:, ID_WIDTH] = ord("-")
    oid[:, ID_WIDTH + 1 :] = digits(seq[row_order], seq_width)
    return pa.table(
        {
            "customer_id": ids(row_cust),
            "ts": ts_array(config.start, row_sec),
            "amount": pa.array(row_amount[idx], type=pa.float64()),
            "order_id": fixed_strings(oid),
            "channel": code_names(order_channel[row_order], ORDER_CHANNELS),
            "category": code_names(row_category[idx], CATEGORIES),
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
