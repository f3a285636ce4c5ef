"""Running the feature definitions in batch: features, labels and training frames, as pandas or Parquet.

Batch jobs read Parquet (files or folders of files) or CSV out of core with a DuckDB memory limit
and spill directory (:mod:`churnclv.features.sources`); the in-memory path
(:func:`churnclv.features.frames.compute_features_frames`) runs the very same SQL.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import ibis
import ibis.expr.types as ir
import pandas as pd
import pyarrow as pa

from churnclv.features.catalogue import FEATURES, LABELS, Feature
from churnclv.features.checks import check_covered, check_known, check_values, last_transaction_day
from churnclv.features.config import FeatureConfig
from churnclv.features.daily import build_daily_purchases
from churnclv.features.dates import AsOf, as_of_date
from churnclv.features.definitions import build_features, feature_columns, known_customers
from churnclv.features.errors import FeatureError
from churnclv.features.inputs import FeatureTables, sample_customers
from churnclv.features.labels import build_labels, build_training_frame, training_cutoffs
from churnclv.features.results import to_pandas
from churnclv.features.sources import Source, connect, load_tables, release_memory
from churnclv.names import MAX_DAYS_AFTER_DATA
from churnclv.schema import TABLES

__all__ = [
    "compute_daily_purchases",
    "compute_features",
    "compute_label_totals",
    "compute_labels",
    "compute_training_frame",
    "count_customers",
    "write_features",
    "write_training_frame",
]

log = logging.getLogger(__name__)

_SAMPLE_IDS = itertools.count()  # unique names for the temporary tables of samples


@contextlib.contextmanager
def _opened(
    source: Source,
    con: ibis.BaseBackend | None,
    memory_limit: str | None,
    threads: int | None,
    temp_directory: str | Path | None,
    *,
    check: bool = True,
) -> Iterator[tuple[ibis.BaseBackend, FeatureTables]]:
    """The connection (``con``, else a new one with these settings) and the clean tables of one job,
    their values checked unless ``check`` is False. A connection made here is closed when the job is
    done and the memory it passed through handed back (:func:`~churnclv.features.sources.
    release_memory`): an open DuckDB database keeps its buffers, ~0.9 GB of RSS after a training frame
    at 1M customers."""
    own = con is None
    con = con or connect(memory_limit=memory_limit, threads=threads, temp_directory=temp_directory)
    try:
        tables = load_tables(source, con)
        if check:  # one scan of the columns the features read: cheap next to the feature job itself
            check_values(tables, con)
        yield con, tables
    finally:
        if own:
            con.disconnect()
            release_memory()


def _features_query(con: ibis.BaseBackend, tables: FeatureTables, day: dt.date, config: FeatureConfig) -> ir.Table:
    """The features as of ``day`` sorted by ``customer_id`` (not yet run)."""
    check_known(con, tables, day)
    last = last_transaction_day(con, tables)  # the Parquet statistics: milliseconds
    if last is not None and (day - last).days > MAX_DAYS_AFTER_DATA:
        log.warning(
            "features as of %s, %s days after the last transaction line (%s): recency, T and every window "
            "count the days without data as days without a purchase; check the as-of (the batch and "
            "training refuse an as-of more than %s days after the data)",
            day,
            f"{(day - last).days:,}",
            last,
            MAX_DAYS_AFTER_DATA,
        )
    return build_features(tables, day, config=config).order_by("customer_id")


def compute_features(
    source: Source,
    as_of: AsOf,
    *,
    config: FeatureConfig = FeatureConfig(),
    con: ibis.BaseBackend | None = None,
    memory_limit: str | None = None,
    threads: int | None = None,
    temp_directory: str | Path | None = None,
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Features as of ``as_of`` for every known customer, as pandas (sorted by ``customer_id``).

    Parameters
    ----------
    source
        A directory of clean tables or a dict of clean frames (see :func:`load_tables`).
    as_of
        The as-of calendar date: rows with ``ts < as_of + 1 day`` count.
    config
        Windows and event types.
    con
        An Ibis backend to reuse; default a new DuckDB connection with the limits below.
    memory_limit, threads, temp_directory
        DuckDB settings (see :func:`connect`) when ``con`` is not given.
    columns
        Only these feature columns (``customer_id`` always), in this order: DuckDB then computes only
        what they read (training's level window needs 6 of ~60 columns: 3x faster, a tenth of the
        memory at a million customers).

    Raises
    ------
    FeatureError
        A ``ValueError``: when no transaction and no signup is on or before ``as_of``.
    """
    with _opened(source, con, memory_limit, threads, temp_directory) as (con, tables):
        expr = _features_query(con, tables, as_of_date(as_of), config)
        spec = feature_columns(tables, config)
        if columns is not None:
            known = {f.name: f for f in spec}
            unknown = [c for c in columns if c not in known]
            if unknown:
                raise FeatureError(f"columns {unknown} are not features; choose from {sorted(known)}")
            spec = [known["customer_id"], *(known[c] for c in columns if c != "customer_id")]
            expr = expr.select([f.name for f in spec])
        frame = to_pandas(con.to_pyarrow(expr), spec)
    frame.attrs["as_of"] = as_of_date(as_of).isoformat()  # ChurnCLV.fit checks it against its as_of
    return frame


def write_features(
    source: Source,
    as_of: AsOf,
    out: str | Path,
    *,
    config: FeatureConfig = FeatureConfig(),
    con: ibis.BaseBackend | None = None,
    memory_limit: str | None = None,
    threads: int | None = None,
    temp_directory: str | Path | None = None,
) -> Path:
    """Write the features as of ``as_of`` to the Parquet file ``out``, streaming (out of core).

    Same parameters as :func:`compute_features`; returns ``out``.
    """
    day = as_of_date(as_of)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with _opened(source, con, memory_limit, threads, temp_directory) as (con, tables):
        expr = _features_query(con, tables, day, config)
        log.debug("writing features as of %s to %s", day, out)
        con.to_parquet(expr, out)
    return out


def compute_labels(
    source: Source,
    cutoff: AsOf,
    horizon_days: int,
    *,
    as_of: AsOf,
    config: FeatureConfig = FeatureConfig(),
    con: ibis.BaseBackend | None = None,
    memory_limit: str | None = None,
    threads: int | None = None,
    temp_directory: str | Path | None = None,
) -> pd.DataFrame:
    """Labels (``churned``, ``purchases``, ``spend``) of the customers known at ``cutoff``.

    See :func:`churnclv.features.build_labels`; raises :class:`~churnclv.features.errors.FeatureError`
    (a ``ValueError``) when the window ``(cutoff, cutoff + horizon_days]`` is not closed at ``as_of``.
    """
    c = as_of_date(cutoff, "cutoff")
    with _opened(source, con, memory_limit, threads, temp_directory) as (con, tables):
        expr = build_labels(tables, c, horizon_days, as_of=as_of, config=config)
        check_known(con, tables, c, "cutoff")
        check_covered(con, tables, c + dt.timedelta(days=horizon_days), "compute_labels")
        spec = [FEATURES[0]] + [f for f in LABELS if f.name != "cutoff"]
        return to_pandas(con.to_pyarrow(expr.order_by("customer_id")), spec)


def compute_label_totals(
    source: Source,
    cutoff: AsOf,
    horizon_days: int,
    *,
    as_of: AsOf,
    config: FeatureConfig = FeatureConfig(),
    con: ibis.BaseBackend | None = None,
    memory_limit: str | None = None,
) -> dict[str, float]:
    """:func:`compute_labels` summed over the customers known at ``cutoff``: ``customers``, ``churned``,
    ``purchases`` and ``spend``, as numbers.

    The same labels, added up by DuckDB: one row comes back instead of a frame of every customer
    (training's level factors read only the totals; ~0.4 GB and a sort saved at 10M customers).
    Raises :class:`~churnclv.features.errors.FeatureError` as :func:`compute_labels` does.
    """
    c = as_of_date(cutoff, "cutoff")
    with _opened(source, con, memory_limit, None, None) as (con, tables):
        labels = build_labels(tables, c, horizon_days, as_of=as_of, config=config)
        check_known(con, tables, c, "cutoff")
        check_covered(con, tables, c + dt.timedelta(days=horizon_days), "compute_label_totals")
        sums = labels.aggregate(
            customers=labels.count(),
            churned=labels.churned.cast("int64").sum().coalesce(0),
            purchases=labels.purchases.sum().coalesce(0),
            # each customer's spend to 1e-6 (as the models read labels), then summed exactly: a sum of
            # floats by several threads changed in its last bit from run to run, and with it the
            # level factor and every tier cut of two trainings of the same data
            spend=labels.spend.round(_TOTAL_DECIMALS).cast(_EXACT).sum().coalesce(0),
        )
        row = con.to_pyarrow(sums).to_pylist()[0]
    return {"customers": float(row["customers"]), **{k: float(row[k]) for k in ("churned", "purchases", "spend")}}


_TOTAL_DECIMALS = 6  # churnclv.models.inputs.FEATURE_DECIMALS: what the models round labels to
_EXACT = ibis.expr.datatypes.Decimal(38, _TOTAL_DECIMALS)


def count_customers(
    source: Source, as_of: AsOf, *, con: ibis.BaseBackend | None = None, memory_limit: str | None = None
) -> int:
    """How many customers are known at ``as_of`` (a transaction line or a signup on or before it).

    Rows after ``as_of`` never count: what is decided from this number (the training sample's
    share) is the same whether the data was read at ``as_of`` or later.
    """
    with _opened(source, con, memory_limit, None, None, check=False) as (con, tables):  # a count: no values read
        return int(con.to_pyarrow(known_customers(tables, as_of).count()).as_py())


def compute_daily_purchases(
    source: Source,
    as_of: AsOf,
    *,
    con: ibis.BaseBackend | None = None,
    memory_limit: str | None = None,
    config: FeatureConfig | None = None,
) -> pd.DataFrame:
    """The base's purchases per calendar day up to ``as_of`` (:func:`~churnclv.features.daily.
    build_daily_purchases`) as pandas: ``day`` (datetime64), ``purchase_days``, ``first_purchases``,
    ``net_spend``; one row per day with a purchase, oldest first."""
    with _opened(source, con, memory_limit, None, None, check=False) as (con, tables):  # sums only: no values
        out = con.to_pandas(build_daily_purchases(tables, as_of, config or FeatureConfig()))
    out["day"] = pd.to_datetime(out["day"])
    return out.reset_index(drop=True)


@contextlib.contextmanager
def _materialized_sample(
    con: ibis.BaseBackend, tables: FeatureTables, fraction: float | None
) -> Iterator[FeatureTables]:
    """``tables`` restricted to a customer sample, held as temporary DuckDB tables while in use.

    Materialized once: the training frame reads each table once per cutoff, and the sample's
    hash would otherwise be computed on every read. Dropped afterwards, so a connection the caller
    passes in keeps no copy.
    """
    sampled = tables if fraction is None else sample_customers(tables, fraction)
    if sampled is tables:  # no sample, or fraction 1: everyone
        yield tables
        return
    created: dict[str, ir.Table | None] = dict.fromkeys(TABLES)
    try:
        for name in TABLES:
            t = getattr(sampled, name)
            if t is not None:
                created[name] = con.create_table(f"churnclv_sample_{name}_{next(_SAMPLE_IDS)}", t, temp=True)
        yield FeatureTables(**created)
    finally:
        for t in created.values():
            if t is not None:  # ibis' drop_table fails on temporary tables; get_name() is "temp.main.<name>"
                con.raw_sql(f'DROP TABLE IF EXISTS temp.main."{t.get_name().rsplit(".", 1)[-1]}"')


def _training_spec(tables: FeatureTables, config: FeatureConfig) -> list[Feature]:
    cutoff, *labels = LABELS
    return [cutoff, *feature_columns(tables, config), *labels]


def compute_training_frame(
    source: Source,
    as_of: AsOf,
    horizon_days: int,
    *,
    cutoffs: Sequence[AsOf] | None = None,
    step_days: int = 30,
    n_cutoffs: int = 12,
    config: FeatureConfig = FeatureConfig(),
    sample: float | None = None,
    con: ibis.BaseBackend | None = None,
    memory_limit: str | None = None,
    threads: int | None = None,
    temp_directory: str | Path | None = None,
) -> pd.DataFrame:
    """Features at rolling cutoffs joined with their labels, sorted by ``cutoff, customer_id``.

    See :func:`churnclv.features.build_training_frame` for the cutoffs; every label window must be
    closed at ``as_of`` (:class:`~churnclv.features.errors.FeatureError` otherwise). ``sample`` (a
    fraction in (0, 1]) keeps only the customers of :func:`churnclv.features.sample_customers`, with
    their whole histories.
    """
    days = training_cutoffs(as_of, horizon_days, cutoffs=cutoffs, step_days=step_days, n_cutoffs=n_cutoffs)
    with _opened(source, con, memory_limit, threads, temp_directory) as (con, tables):
        if days:
            check_covered(con, tables, max(days) + dt.timedelta(days=horizon_days), "compute_training_frame")
        with _materialized_sample(con, tables, sample) as sampled:
            # one query per cutoff, in cutoff order: the union of all of them in one query held every
            # cutoff's aggregates at once (+2.2 GB of RSS for 17 cutoffs at 1M customers, and out of
            # memory at a 1 GB limit); one at a time +1.5 GB, in the same time
            parts = [
                con.to_pyarrow(
                    build_training_frame(sampled, as_of, horizon_days, cutoffs=[day], config=config).order_by(
                        "customer_id"
                    )
                )
                for day in days
            ]
        result = pa.concat_tables(parts)
        del parts
        frame = to_pandas(result, _training_spec(tables, config))
        del result
    if frame.empty:
        raise FeatureError(
            "no customer is known at any cutoff (every cutoff is before the first transaction and "
            "signup): use a later as_of, a shorter horizon or fewer cutoffs"
        )
    # what the labels are: ChurnCLV.fit checks them against its horizon and as_of
    frame.attrs.update(as_of=as_of_date(as_of).isoformat(), horizon_days=int(horizon_days))
    return frame


def write_training_frame(
    source: Source,
    as_of: AsOf,
    horizon_days: int,
    out: str | Path,
    *,
    cutoffs: Sequence[AsOf] | None = None,
    step_days: int = 30,
    n_cutoffs: int = 12,
    config: FeatureConfig = FeatureConfig(),
    con: ibis.BaseBackend | None = None,
    memory_limit: str | None = None,
    threads: int | None = None,
    temp_directory: str | Path | None = None,
) -> Path:
    """Write :func:`compute_training_frame`'s result to the Parquet file ``out``, streaming."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with _opened(source, con, memory_limit, threads, temp_directory) as (con, tables):
        expr = build_training_frame(
            tables, as_of, horizon_days, cutoffs=cutoffs, step_days=step_days, n_cutoffs=n_cutoffs, config=config
        )
        con.to_parquet(expr.order_by(["cutoff", "customer_id"]), out)
    return out
