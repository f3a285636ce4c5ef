"""Blocks of customers: each block's latent state, customers, transactions and events, generated
from its own seed (``SeedSequence(seed, spawn_key=(block,))``), in threads."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from churnclv.generator.arrays import SECONDS_PER_DAY, code_names, digits, fixed_strings, to_seconds, ts_array
from churnclv.generator.events import block_events
from churnclv.generator.shift import shifted_death
from churnclv.generator.transactions import block_transactions
from churnclv.generator.world import ID_WIDTH, Latent, WorldConfig

__all__ = ["ACQUISITION_CHANNELS", "BLOCK", "REGIONS", "Block", "generate_blocks", "n_blocks"]

# Customers per generation block. Part of the algorithm, not a tuning knob: changing it changes the
# world a seed produces.
BLOCK = 65_536

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


@dataclass
class Block:
    """One block of customers: ids ``first`` onwards, their latent state and their three tables."""

    first: int
    latent: Latent
    customers: pa.Table
    transactions: pa.Table
    events: pa.Table


def _generate_block(config: WorldConfig, block: int) -> Block:
    first = block * BLOCK
    n = min(BLOCK, config.n_customers - first)
    rng = np.random.default_rng(np.random.SeedSequence(config.seed, spawn_key=(block,)))
    n_days = config.n_days

    # --- customers and their latent state
    acq = rng.choice(len(ACQUISITION_CHANNELS), size=n, p=_ACQ_P)
    region = rng.choice(len(REGIONS), size=n, p=_REGION_P)
    z = _ACQ_Z_SHIFT[acq] + rng.standard_normal(n)
    # whole seconds, so the float signup and the written signup_ts agree exactly
    signup_sec = np.floor(rng.random(n) * config.signup_days * SECONDS_PER_DAY).astype(np.int64)
    signup = signup_sec / SECONDS_PER_DAY
    hazard = config.base_hazard * np.exp(-config.hazard_beta * z)
    death = shifted_death(config, signup, signup + rng.standard_exponential(n) / hazard)
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

    id_mat = digits(np.arange(first, first + n), ID_WIDTH)
    id_words = id_mat.view(np.uint64).reshape(-1)  # one 8-byte word per id: fast row gathers

    def ids(cust: np.ndarray) -> pa.Array:
        return fixed_strings(id_words[cust].view(np.uint8).reshape(-1, ID_WIDTH))

    customers = pa.table(
        {
            "customer_id": fixed_strings(id_mat),
            "signup_ts": ts_array(config.start, signup_sec),
            "region": code_names(region, REGIONS),
            "acquisition_channel": code_names(acq, ACQUISITION_CHANNELS),
        }
    )

    alive_end = np.minimum(death, n_days)

    def seconds(cust: np.ndarray, t: np.ndarray) -> np.ndarray:
        # float round trips must not put a row a second before its signup or after `end`
        clipped: np.ndarray = np.clip(to_seconds(t), signup_sec[cust], n_days * SECONDS_PER_DAY)
        return clipped

    transactions = block_transactions(
        config, rng, ids, seconds, id_mat, signup, alive_end, purchase_rate, mean_value, return_prob
    )
    events = block_events(config, rng, ids, seconds, signup, death, alive_end, z, engagement)
    return Block(first, latent, customers, transactions, events)


def n_blocks(config: WorldConfig) -> int:
    """How many blocks the world's customers fill."""
    return -(-config.n_customers // BLOCK)


def generate_blocks(config: WorldConfig, n_jobs: int) -> Iterator[Block]:
    """Blocks in customer order; ``n_jobs`` threads (numpy and Arrow release the GIL)."""
    ids = range(n_blocks(config))
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
