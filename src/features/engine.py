"""Running the feature definitions: DuckDB connections, sources, pandas and Parquet outputs.

Batch jobs read Parquet (files or folders of files) or CSV out of core with a DuckDB memory limit
and spill directory; the in-memory path (:func:`compute_features_frames`) runs the very same SQL,
compiled once per (as-of, configuration, columns) and cached, on frames registered with a reused
per-thread DuckDB connection.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import itertools
import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Union

import duckdb
import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd
import pyarrow as pa

from churnclv import values
from churnclv.features.catalogue import FEATURES, LABELS, Feature
from churnclv.features.definitions import (
    AsOf,
    FeatureConfig,
    FeatureTables,
    as_of_date,
    build_features,
    build_labels,
    build_training_frame,
    feature_columns,
    known_customers,
    sample_customers,
)

__all__ = [
    "Source",
    "check_values",
    "compute_features",
    "compute_features_frames",
    "compute_labels",
    "compute_training_frame",
    "connect",
    "count_customers",
    "load_tables",
    "to_pandas",
    "write_features",
    "write_training_frame",
]

log = logging.getLogger(__name__)

Source = Union[str, Path, Mapping[str, "pd.DataFrame | None"]]

_TABLES = ("transactions", "events", "customers")
# clean types of the contract; any other column is a string (see churnclv.schema)
_TYPES = {
    "customer_id": "string",
    "ts": "timestamp",
    "amount": "float64",
    "value": "float64",
    "signup_ts": "timestamp",
    "event_type": "string",
}
_DAY = dt.timedelta(days=1)
_SAMPLE_IDS = itertools.count()  # unique names for the temporary tables of samples


def connect(
    *,
    memory_limit: str | None = None,
    threads: int | None = None,
    temp_directory: str | Path | None = None,
) -> ibis.BaseBackend:
    """A DuckDB connection (Ibis backend) for the feature jobs.

    Parameters
    ----------
    memory_limit
        DuckDB memory limit, e.g. ``"1GB"``; past it DuckDB spills to ``temp_directory``.
    threads
        Worker threads (default: all cores).
    temp_directory
        Where DuckDB spills (default: DuckDB's own, ``.tmp`` next to the database or in the cwd).
    """
    config: dict[str, Any] = {}
    if memory_limit is not None:
        config["memory_limit"] = memory_limit
    if threads is not None:
        config["threads"] = int(threads)
    if temp_directory is not None:
        config["temp_directory"] = str(temp_directory)
    con = ibis.duckdb.connect(**config)
    # insertion order is irrelevant here (outputs are sorted by customer_id); keeping it costs memory
    con.raw_sql("SET preserve_insertion_order = false")
    return con


def _find(directory: Path, stem: str) -> Path | None:
    found = [p for p in (directory / f"{stem}.parquet", directory / f"{stem}.csv") if p.is_file()]
    if (directory / stem).is_dir():
        found.append(directory / stem)
    if len(found) > 1:
        raise ValueError(
            f"{directory}: table '{stem}' is found more than once ({', '.join(p.name for p in found)}): "
            "keep exactly one"
        )
    return found[0] if found else None


def _typed(table: ir.Table) -> ir.Table:
    """Cast text columns read from CSV to the contract's types."""
    casts = {}
    for col in table.columns:
        want = _TYPES.get(col, "string")
        if table[col].type().is_string() and want != "string":
            casts[col] = table[col].cast(want)
        elif not table[col].type().is_string() and want == "string":
            casts[col] = table[col].cast("string")
    return table.mutate(**casts) if casts else table


def _read(con: ibis.BaseBackend, path: Path, name: str) -> ir.Table:
    p = str(path)
    if path.is_dir():
        if any(path.rglob("*.parquet")):
            return con.read_parquet(f"{p}/**/*.parquet", table_name=name, union_by_name=True)
        if any(path.rglob("*.csv")):
            table = con.read_csv(f"{p}/**/*.csv", table_name=name, all_varchar=True, union_by_name=True)
            return _typed(table)
        raise ValueError(f"{path}: folder holds no .parquet or .csv files: add the table's files")
    if path.suffix == ".parquet":
        return con.read_parquet(p, table_name=name)
    # all text first, so ids keep their leading zeros
    return _typed(con.read_csv(p, table_name=name, all_varchar=True))


def _check_frame_values(frame: pd.DataFrame, name: str) -> None:
    """:func:`check_values` for a small in-memory frame (microseconds: numpy, no query)."""
    for col, rule, n in values.frame_violations(frame, name, ("amount", "ts", "signup_ts")):  # as check_values
        raise values.ValueRuleError(
            f"{name}.{col}: {n:,} row(s) break the rule '{rule}', so the features would "
            "not be finite numbers; validate the rows first (churnclv.ingest.validate_frames)"
        )


def _check_frame(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    for col in ("ts", "signup_ts"):
        if col in frame.columns:
            if not pd.api.types.is_datetime64_any_dtype(frame[col]):
                raise TypeError(
                    f"{name}.{col} has dtype {frame[col].dtype}: it must be datetime64 (naive UTC); "
                    "convert with pd.to_datetime"
                )
            if getattr(frame[col].dt, "tz", None) is not None:
                raise TypeError(
                    f"{name}.{col} is time-zone aware ({frame[col].dt.tz}): convert to naive UTC with "
                    f".dt.tz_convert('UTC').dt.tz_localize(None)"
                )
    if "customer_id" in frame.columns and not pd.api.types.is_string_dtype(frame["customer_id"]):
        raise TypeError(
            f"{name}.customer_id has dtype {frame['customer_id'].dtype}: it must be a string "
            "(ids keep leading zeros); convert with .astype(str)"
        )
    return frame


def load_tables(source: Source, con: ibis.BaseBackend) -> FeatureTables:
    """The clean tables of ``source`` as Ibis tables on ``con``.

    Parameters
    ----------
    source
        A directory holding ``transactions`` and optionally ``events`` and ``customers``, each as
        ``<name>.parquet``, ``<name>.csv`` or a folder ``<name>/`` of Parquet (or CSV) files; or a
        mapping ``{"transactions": df, "events": df | None, "customers": df | None}`` of clean
        pandas frames.
    con
        The Ibis backend (see :func:`connect`).
    """
    tables: dict[str, ir.Table | None] = {}
    if isinstance(source, Mapping):
        unknown = set(source) - set(_TABLES)
        if unknown:
            raise ValueError(f"source: unknown table(s) {sorted(unknown)}: use the keys {list(_TABLES)}")
        if source.get("transactions") is None:
            raise ValueError("source: the 'transactions' frame is required")
        for name in _TABLES:
            frame = source.get(name)
            if frame is not None:
                # via Arrow: ibis' own pandas conversion is slower and warns under pandas 3
                frame = pa.Table.from_pandas(_check_frame(frame, name), preserve_index=False)
            tables[name] = None if frame is None else ibis.memtable(frame)
        return FeatureTables(**tables)
    directory = Path(source)
    if not directory.is_dir():
        raise ValueError(f"source {directory}: not a directory: pass the folder of clean tables or a dict of frames")
    for name in _TABLES:
        path = _find(directory, name)
        if path is None and name == "transactions":
            raise ValueError(
                f"{directory}: no transactions table (transactions.parquet, transactions.csv or a folder "
                "transactions/): run the ingestion first or point at the clean folder"
            )
        tables[name] = None if path is None else _read(con, path, f"churnclv_{name}")
    return FeatureTables(**tables)


def _check_known(con: ibis.BaseBackend, tables: FeatureTables, day: dt.date, what: str = "as_of") -> None:
    """Raise when no transaction line and no signup falls on or before ``day``."""
    end = ibis.literal(dt.datetime.combine(day + _DAY, dt.time()), type="timestamp")
    tx = tables.transactions
    if con.to_pyarrow(tx.filter(tx.ts < end).select("customer_id").limit(1)).num_rows:
        return
    cust = tables.customers
    if cust is not None and "signup_ts" in cust.columns:
        if con.to_pyarrow(cust.filter(cust.signup_ts < end).select("customer_id").limit(1)).num_rows:
            return
    first = con.to_pyarrow(tx.ts.min()).as_py()
    raise ValueError(
        f"{what} {day} is before any data (the first transaction is on {pd.Timestamp(first).date()}"
        " and no signup is on or before it): pick a later date"
    )


_TRUSTED_FIX = (
    "the tables were not validated: validate them with `churnclv validate --data <folder> --out <work>` "
    "(or run the command without --trusted), then use <work>/clean"
)


def check_values(source: Source | FeatureTables, con: ibis.BaseBackend | None = None) -> None:
    """Check the value rules (:mod:`churnclv.values`) the features depend on, in one pass per table.

    Validated tables keep them; tables passed as trusted (``--trusted``, a folder written by other
    tools, frames built by hand) may not, and an infinite amount or timestamp would make the
    features non-finite or the job fail halfway. Checked: ``transactions.amount`` (finite,
    ``|amount| <= 1e9``), ``transactions.ts``, ``events.ts`` and ``customers.signup_ts`` (finite,
    years 1900-2200). ``events.value`` is not read by any feature, so it is not checked here.

    Raises
    ------
    ValueError
        :class:`churnclv.values.ValueRuleError` naming the table, the column, the rule, the number
        of rows and the fix.
    """
    if isinstance(source, FeatureTables):
        tables = source
        if con is None:
            raise ValueError("check_values: pass the backend the tables live on (con=...)")
    else:
        con = con or connect()
        tables = load_tables(source, con)
    for name in _TABLES:
        table = getattr(tables, name)
        if table is None:
            continue
        checks: dict[str, tuple[str, str, ir.BooleanValue]] = {}
        for col in values.NUMBER_COLUMNS.get(name, ()):
            if col in table.columns and col == "amount":  # events.value: read by no feature
                checks[f"_bad_{col}"] = (col, "number", values.ibis_number_violation(table[col]))
        for col in values.TIMESTAMP_COLUMNS.get(name, ()):
            if col in table.columns and table[col].type().is_timestamp():
                checks[f"_bad_{col}"] = (col, "timestamp", values.ibis_timestamp_violation(table[col]))
        if not checks:
            continue
        counts = con.to_pyarrow(
            table.aggregate(**{key: table.count(where=cond) for key, (_, _, cond) in checks.items()})
        ).to_pylist()[0]
        for key, (col, rule, _) in checks.items():
            if counts[key]:
                raise values.ValueRuleError(
                    f"{name}.{col}: {counts[key]:,} row(s) break the rule '{values.describe(col, rule)}', so the "
                    f"features would not be finite numbers; {_TRUSTED_FIX}"
                )


def _arrow_type(f: Feature) -> pa.DataType:
    return {
        "string": pa.string(),
        "int64": pa.int64(),
        "float64": pa.float64(),
        "bool": pa.bool_(),
        "date": pa.date32(),
    }[f.dtype]


def to_pandas(table: pa.Table, spec: Sequence[Feature]) -> pd.DataFrame:
    """An Arrow result as pandas with the catalogue's dtypes, in catalogue order.

    ``string`` columns become pandas strings, ``int64`` columns ``int64`` (``Int64`` when nullable),
    ``float64`` columns ``float64`` (NaN for null), ``date`` columns ``datetime64[ns]``.
    """
    out: dict[str, pd.Series] = {}
    for f in spec:
        col = table.column(f.name)
        if col.type != _arrow_type(f):
            col = col.cast(_arrow_type(f))
        if f.dtype == "int64":
            values = col.fill_null(0).to_numpy().astype(np.int64, copy=False)
            if f.nullable:
                mask = col.is_null().to_numpy(zero_copy_only=False)
                out[f.name] = pd.Series(pd.arrays.IntegerArray(values, mask), copy=False)
            else:
                out[f.name] = pd.Series(values, copy=False)
        elif f.dtype == "date":
            out[f.name] = pd.Series(col.to_numpy()).astype("datetime64[ns]")
        elif f.dtype == "string":
            out[f.name] = pd.Series(col.to_pandas(), dtype="str")
        else:  # float64 (null -> NaN), bool
            values = col.to_numpy(zero_copy_only=False).astype(f.dtype, copy=False)
            out[f.name] = pd.Series(values, copy=False)
    return pd.DataFrame(out, columns=[f.name for f in spec])


def _open(
    source: Source,
    con: ibis.BaseBackend | None,
    memory_limit: str | None,
    threads: int | None,
    temp_directory: str | Path | None,
    *,
    check: bool = True,
) -> tuple[ibis.BaseBackend, FeatureTables]:
    con = con or connect(memory_limit=memory_limit, threads=threads, temp_directory=temp_directory)
    tables = load_tables(source, con)
    if check:  # one scan of the columns the features read: cheap next to the feature job itself
        check_values(tables, con)
    return con, tables


def compute_features(
    source: Source,
    as_of: AsOf,
    *,
    config: FeatureConfig = FeatureConfig(),
    con: ibis.BaseBackend | None = None,
    memory_limit: str | None = None,
    threads: int | None = None,
    temp_directory: str | Path | None = None,
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

    Raises
    ------
    ValueError
        When no transaction and no signup is on or before ``as_of``.
    """
    day = as_of_date(as_of)
    con, tables = _open(source, con, memory_limit, threads, temp_directory)
    _check_known(con, tables, day)
    expr = build_features(tables, day, config=config).order_by("customer_id")
    return to_pandas(con.to_pyarrow(expr), feature_columns(tables, config))


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
    con, tables = _open(source, con, memory_limit, threads, temp_directory)
    _check_known(con, tables, day)
    expr = build_features(tables, day, config=config).order_by("customer_id")
    log.info("writing features as of %s to %s", day, out)
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

    See :func:`churnclv.features.build_labels`; raises ``ValueError`` when the window
    ``(cutoff, cutoff + horizon_days]`` is not closed at ``as_of``.
    """
    c = as_of_date(cutoff, "cutoff")
    con, tables = _open(source, con, memory_limit, threads, temp_directory)
    expr = build_labels(tables, c, horizon_days, as_of=as_of, config=config)
    _check_known(con, tables, c, "cutoff")
    spec = [FEATURES[0]] + [f for f in LABELS if f.name != "cutoff"]
    return to_pandas(con.to_pyarrow(expr.order_by("customer_id")), spec)


def count_customers(
    source: Source, as_of: AsOf, *, con: ibis.BaseBackend | None = None, memory_limit: str | None = None
) -> int:
    """How many customers are known at ``as_of`` (a transaction line or a signup on or before it).

    Rows after ``as_of`` never count: what is decided from this number (the training sample's
    share) is the same whether the data was read at ``as_of`` or later.
    """
    con, tables = _open(source, con, memory_limit, None, None, check=False)  # a count, no feature values
    return int(con.to_pyarrow(known_customers(tables, as_of).count()).as_py())


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
    created: dict[str, ir.Table | None] = dict.fromkeys(_TABLES)
    try:
        for name in _TABLES:
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
    closed at ``as_of`` (``ValueError`` otherwise). ``sample`` (a fraction in (0, 1]) keeps only the
    customers of :func:`churnclv.features.sample_customers`, with their whole histories.
    """
    con, tables = _open(source, con, memory_limit, threads, temp_directory)
    with _materialized_sample(con, tables, sample) as sampled:
        expr = build_training_frame(
            sampled, as_of, horizon_days, cutoffs=cutoffs, step_days=step_days, n_cutoffs=n_cutoffs, config=config
        )
        result = con.to_pyarrow(expr.order_by(["cutoff", "customer_id"]))
    frame = to_pandas(result, _training_spec(tables, config))
    if frame.empty:
        raise ValueError(
            "no customer is known at any cutoff (every cutoff is before the first transaction and "
            "signup): use a later as_of, a shorter horizon or fewer cutoffs"
        )
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
    con, tables = _open(source, con, memory_limit, threads, temp_directory)
    expr = build_training_frame(
        tables, as_of, horizon_days, cutoffs=cutoffs, step_days=step_days, n_cutoffs=n_cutoffs, config=config
    )
    con.to_parquet(expr.order_by(["cutoff", "customer_id"]), out)
    return out


# --------------------------------------------------------------------------- in-memory path

_FRAME_NAMES = {"transactions": "churnclv_frame_tx", "events": "churnclv_frame_ev", "customers": "churnclv_frame_cu"}
_local = threading.local()


def _frame_connection() -> tuple[duckdb.DuckDBPyConnection, dict[str, Any]]:
    """This thread's DuckDB connection and its cache of parsed statements."""
    # DuckDB connections are not safe to share between threads: one per thread, reused across calls
    con = getattr(_local, "con", None)
    if con is None:
        con = _local.con = duckdb.connect(config={"threads": 1})
        _local.statements = {}
    return con, _local.statements


def _masked_to_arrow(values: Any) -> pa.Array:
    if isinstance(values, np.ma.MaskedArray):
        mask = np.ma.getmaskarray(values)
        return pa.array(values.data, mask=mask if mask.any() else None)
    return pa.array(values)


def _schema(columns: tuple[str, ...]) -> ibis.Schema:
    return ibis.schema({c: _TYPES.get(c, "string") for c in columns})


@functools.lru_cache(maxsize=256)
def _frames_sql(
    day: dt.date,
    config: FeatureConfig,
    tx_cols: tuple[str, ...],
    ev_cols: tuple[str, ...] | None,
    cu_cols: tuple[str, ...] | None,
) -> tuple[str, tuple[Feature, ...]]:
    """The DuckDB SQL of :func:`build_features` over the frame placeholders, and its columns."""
    tables = FeatureTables(
        transactions=ibis.table(_schema(tx_cols), name=_FRAME_NAMES["transactions"]),
        events=None if ev_cols is None else ibis.table(_schema(ev_cols), name=_FRAME_NAMES["events"]),
        customers=None if cu_cols is None else ibis.table(_schema(cu_cols), name=_FRAME_NAMES["customers"]),
    )
    expr = build_features(tables, day, config=config).order_by("customer_id")
    return ibis.to_sql(expr, dialect="duckdb"), tuple(feature_columns(tables, config))


def compute_features_frames(
    transactions: pd.DataFrame,
    events: pd.DataFrame | None = None,
    customers: pd.DataFrame | None = None,
    *,
    as_of: AsOf,
    config: FeatureConfig = FeatureConfig(),
) -> pd.DataFrame:
    """Features as of ``as_of`` for the customers in small in-memory frames (the HTTP path).

    Runs the same definitions as :func:`compute_features` (identical results for the same customers'
    rows). The SQL is compiled once per (as-of, configuration, columns) and cached; each call only
    registers the frames with a reused DuckDB connection.

    Parameters
    ----------
    transactions, events, customers
        Clean frames (see :mod:`churnclv.schema`): ``customer_id`` strings, naive UTC timestamps.
    as_of
        The as-of calendar date.
    config
        Windows and event types.

    Raises
    ------
    ValueError
        When no row of the frames is on or before ``as_of``.
    TypeError
        When ``customer_id`` is not a string or a timestamp is not a naive ``datetime64``.
    """
    day = as_of_date(as_of)
    frames = {"transactions": transactions, "events": events, "customers": customers}
    for name, frame in frames.items():
        if frame is not None:
            _check_frame(frame, name)
            _check_frame_values(frame, name)
    cols = {n: None if f is None else tuple(str(c) for c in f.columns) for n, f in frames.items()}
    sql, spec = _frames_sql(day, config, cols["transactions"], cols["events"], cols["customers"])
    con, statements = _frame_connection()
    statement = statements.get(sql)
    if statement is None:  # parsing a statement this size costs a few ms: once per thread and query
        statement = statements[sql] = con.extract_statements(sql)[0]
    for name, frame in frames.items():
        if frame is not None:
            con.register(_FRAME_NAMES[name], frame)
    try:
        # fetchnumpy: DB-API results give Arrow only through an extra copy (and a warning)
        arrays = con.execute(statement).fetchnumpy()
    finally:
        for name, frame in frames.items():
            if frame is not None:
                con.unregister(_FRAME_NAMES[name])
    result = pa.table({f.name: _masked_to_arrow(arrays[f.name]) for f in spec})
    if result.num_rows == 0:
        raise ValueError(
            f"as_of {day} is before any data: no transaction line or signup in the frames is on or before it"
        )
    return to_pandas(result, spec)
