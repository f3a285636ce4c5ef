"""Synthetic customer worlds with a known ground truth, in the canonical data contract.

The model (a latent-state world in the spirit of Pareto/NBD and BG/NBD) is described in
:mod:`churnclv.generator.world`; its ground truth is :func:`churnclv.generator.truth.truth_at`.
Worlds are generated in fixed blocks of customers (:mod:`churnclv.generator.blocks`), so a world
depends only on its :class:`~churnclv.generator.world.WorldConfig` (not on ``n_jobs``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from churnclv.generator.blocks import generate_blocks, n_blocks
from churnclv.generator.truth import check_truth_args, default_truth_as_of, truth_at, truth_rows
from churnclv.generator.world import Latent, World, WorldConfig
from churnclv.schema import TABLES

__all__ = ["generate_world", "generate_world_to_parquet", "write_world"]

logger = logging.getLogger(__name__)


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
    blocks = list(generate_blocks(config, n_jobs))
    frames = {name: pa.concat_tables([getattr(b, name) for b in blocks]).to_pandas() for name in TABLES}
    world = World(config=config, latent=Latent.concat([b.latent for b in blocks]), **frames)
    logger.info(
        "generated %d customers, %d transaction lines, %d events",
        config.n_customers,
        len(world.transactions),
        len(world.events),
    )
    return world


_TABLE_NAMES = (*TABLES, "truth")


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
    dates = check_truth_args(
        default_truth_as_of(config, horizon_days) if truth_as_of is None else truth_as_of,
        horizon_days,
    )
    paths = {name: out_dir / f"{name}.parquet" for name in _TABLE_NAMES}
    writers: dict[str, pq.ParquetWriter] = {}
    try:
        for b, block in enumerate(generate_blocks(config, n_jobs)):
            tables = {
                "transactions": block.transactions,
                "events": block.events,
                "customers": block.customers,
                "truth": truth_rows(config, block.latent, block.first, dates, horizon_days),
            }
            for name, table in tables.items():
                if name not in writers:
                    writers[name] = pq.ParquetWriter(paths[name], table.schema)
                writers[name].write_table(table)
            logger.info("wrote block %d of %d", b + 1, n_blocks(config))
    finally:
        for writer in writers.values():
            writer.close()
    return paths
