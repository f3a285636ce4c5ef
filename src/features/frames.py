"""The in-memory feature path: features of a few customers held in pandas frames (the HTTP path).

It runs the very same SQL as the batch jobs, compiled once per (as-of, configuration, columns) and
cached, on frames registered with a reused per-thread DuckDB connection.
"""

from __future__ import annotations

import datetime as dt
import functools
import threading
from typing import Any

import duckdb
import ibis
import numpy as np
import pandas as pd
import pyarrow as pa

from churnclv.features.catalogue import Feature
from churnclv.features.checks import check_frame_values
from churnclv.features.config import FeatureConfig
from churnclv.features.dates import AsOf, as_of_date
from churnclv.features.definitions import build_features, feature_columns
from churnclv.features.errors import FeatureError
from churnclv.features.inputs import FeatureTables
from churnclv.features.results import to_pandas
from churnclv.features.sources import CLEAN_TYPES, check_frame, text_columns, trim_text

__all__ = ["compute_features_frames"]

_FRAME_NAMES = {"transactions": "churnclv_frame_tx", "events": "churnclv_frame_ev", "customers": "churnclv_frame_cu"}
_local = threading.local()


def _frame_connection() -> tuple[duckdb.DuckDBPyConnection, dict[str, Any]]:
    """The calling thread's DuckDB connection and its cache of parsed statements."""
    # DuckDB connections are not safe to share between threads: one per thread, reused across calls
    con = getattr(_local, "con", None)
    if con is None:
        # the join-order search costs ~2 ms a query and has nothing to gain here: a chain of left joins
        # on the customer id over a request's few rows (measured for 1 and 100 customers)
        con = _local.con = duckdb.connect(config={"threads": 1, "disabled_optimizers": "join_order"})
        _local.statements = {}
    return con, _local.statements


_ARROW_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError)


def _scannable(frame: pd.DataFrame, name: str) -> pa.Table | pd.DataFrame:
    """``frame`` (table ``name``) as an Arrow table (zero-copy for Arrow strings and NumPy numbers),
    which DuckDB binds faster than a pandas frame: it inspects a pandas frame's columns at every
    reference in the query (about 4 ms of a one-customer request). A column Arrow cannot type (mixed
    objects) keeps the pandas frame, and DuckDB's pandas scan decides as before. Either way the
    spaces around text values are dropped (:func:`~churnclv.features.sources.trim_text`)."""
    try:
        return trim_text(pa.table({str(c): pa.array(frame[c], from_pandas=True) for c in frame.columns}), name)
    except _ARROW_ERRORS:
        pass
    trimmed: dict[str, pd.Series] = {}
    for col in text_columns(name, [c for c in frame.columns if isinstance(c, str)]):  # as the contract names them
        try:
            texts = pa.table({col: pa.array(frame[col], from_pandas=True)})
        except _ARROW_ERRORS:
            continue  # mixed objects: no text to trim
        done = trim_text(texts, name)
        if done is not texts:
            trimmed[col] = done[col].to_pandas().set_axis(frame.index)
    return frame.assign(**trimmed) if trimmed else frame


def _masked_to_arrow(values: Any) -> pa.Array:
    if isinstance(values, np.ma.MaskedArray):
        mask = np.ma.getmaskarray(values)
        return pa.array(values.data, mask=mask if mask.any() else None)
    return pa.array(values)


def _schema(columns: tuple[str, ...]) -> ibis.Schema:
    return ibis.schema({c: CLEAN_TYPES.get(c, "string") for c in columns})


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
    FeatureError
        A ``ValueError``: when no row of the frames is on or before ``as_of``.
    FrameTypeError
        A ``TypeError``: when ``customer_id`` is not a string or a timestamp is not a naive ``datetime64``.
    ValueRuleError
        A ``ValueError``: when a ``customer_id`` or ``event_type`` is blank (the spaces around text values are
        dropped first).
    """
    day = as_of_date(as_of)
    frames = {"transactions": transactions, "events": events, "customers": customers}
    scans: dict[str, pa.Table | pd.DataFrame] = {}
    for name, frame in frames.items():
        if frame is not None:
            check_frame(frame, name)
            check_frame_values(frame, name)
            scans[name] = _scannable(frame, name)
    cols = {n: None if f is None else tuple(str(c) for c in f.columns) for n, f in frames.items()}
    sql, spec = _frames_sql(day, config, cols["transactions"], cols["events"], cols["customers"])
    con, statements = _frame_connection()
    statement = statements.get(sql)
    if statement is None:  # parsing a statement this size costs a few ms: once per thread and query
        statement = statements[sql] = con.extract_statements(sql)[0]
    for name, scan in scans.items():
        con.register(_FRAME_NAMES[name], scan)
    try:
        # fetchnumpy: DB-API results give Arrow only through an extra copy (and a warning)
        arrays = con.execute(statement).fetchnumpy()
    finally:
        for name in scans:
            con.unregister(_FRAME_NAMES[name])
    result = pa.table({f.name: _masked_to_arrow(arrays[f.name]) for f in spec})
    if result.num_rows == 0:
        raise FeatureError(
            f"as_of {day} is before any data: no transaction line or signup in the frames is on or before it"
        )
    return to_pandas(result, spec)
