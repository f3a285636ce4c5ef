"""Checks before a feature job: the value rules of :mod:`churnclv.values` on trusted tables, and an
as-of date that is not before every row of the data."""

from __future__ import annotations

import datetime as dt

import duckdb
import ibis
import ibis.expr.types as ir
import pandas as pd

from churnclv import values
from churnclv.features.dates import DAY, ts_literal
from churnclv.features.errors import FeatureError, FrameTypeError
from churnclv.features.inputs import FeatureTables
from churnclv.features.sources import Source, connect, load_tables
from churnclv.names import MAX_DAYS_AFTER_DATA
from churnclv.schema import TABLES

__all__ = ["check_covered", "check_frame_values", "check_known", "check_values", "last_transaction_day"]


def check_frame_values(frame: pd.DataFrame, name: str) -> None:
    """:func:`check_values` for a small in-memory frame (microseconds: numpy, no query)."""
    for col, rule, n in values.frame_violations(frame, name, ("amount", "ts", "signup_ts")):  # as check_values
        raise values.ValueRuleError(
            f"{name}.{col}: {n:,} row(s) break the rule '{rule}', so the features would "
            "not be finite numbers; validate the rows first (churnclv.ingest.validate_frames)"
        )


def check_known(con: ibis.BaseBackend, tables: FeatureTables, day: dt.date, what: str = "as_of") -> None:
    """Raise when no transaction line and no signup falls on or before ``day``."""
    end = ts_literal(day + DAY)
    tx = tables.transactions
    if con.to_pyarrow(tx.filter(tx.ts < end).select("customer_id").limit(1)).num_rows:
        return
    cust = tables.customers
    if (
        cust is not None
        and "signup_ts" in cust.columns
        and con.to_pyarrow(cust.filter(cust.signup_ts < end).select("customer_id").limit(1)).num_rows
    ):
        return
    first = con.to_pyarrow(tx.ts.min()).as_py()
    raise FeatureError(
        f"{what} {day} is before any data (the first transaction is on {pd.Timestamp(first).date()}"
        " and no signup is on or before it): pick a later date"
    )


def last_transaction_day(con: ibis.BaseBackend, tables: FeatureTables) -> dt.date | None:
    """The day of the last transaction line (None without any): the data's end, whatever the as-of."""
    last = con.to_pyarrow(tables.transactions.ts.max()).as_py()
    return None if last is None else pd.Timestamp(last).date()


def check_covered(con: ibis.BaseBackend, tables: FeatureTables, window_end: dt.date, what: str) -> None:
    """Raise when a label window ends more than :data:`~churnclv.names.MAX_DAYS_AFTER_DATA` days after
    the last transaction: the days without data would count as days without a purchase (every
    customer churned). The same allowance as the CLI's as-of."""
    last_day = last_transaction_day(con, tables)
    if last_day is None:
        return
    late = (window_end - last_day).days
    if late > MAX_DAYS_AFTER_DATA:
        raise FeatureError(
            f"{what}: the label window ends on {window_end}, {late:,} days after the last transaction "
            f"({last_day}): its days without data would count as days without a purchase (every customer "
            f"churned); use an as_of (or cutoff and horizon) whose windows close within "
            f"{MAX_DAYS_AFTER_DATA} days of {last_day}"
        )


_TRUSTED_FIX = (
    "the tables were not validated: validate them with `churnclv validate --data <folder> --out <work>` "
    "and use <work>/clean (a command: or leave out --trusted; frames in Python: "
    "churnclv.ingest.validate_frames)"
)


def check_values(source: Source | FeatureTables, con: ibis.BaseBackend | None = None) -> None:
    """Check the value rules (:mod:`churnclv.values`) the features depend on, one count per column.

    Validated tables keep them; tables passed as trusted (``--trusted``, a folder written by other
    tools, frames built by hand) may not, and an infinite amount or timestamp would make the
    features non-finite or the job fail halfway. Checked: ``transactions.amount`` (finite,
    ``|amount| <= 1e9``), ``transactions.ts``, ``events.ts`` and ``customers.signup_ts`` (finite,
    years 1900-2200), every required value present, one ``customers`` row per ``customer_id``.
    ``events.value`` is not read by any feature, so it is not checked here. Those columns must be
    numbers and timestamps in the first place.

    Raises
    ------
    ValueError
        :class:`churnclv.values.ValueRuleError` naming the table, the column, the rule, the number
        of rows and the fix.
    TypeError
        :class:`churnclv.features.errors.FrameTypeError` naming the table, the column, its type and the fix.
    """
    if isinstance(source, FeatureTables):
        tables = source
        if con is None:
            raise ValueError("check_values: pass the backend the tables live on (con=...)")
    else:
        con = con or connect()
        tables = load_tables(source, con)
    for name in TABLES:
        table = getattr(tables, name)
        if table is None:
            continue
        checks: list[tuple[str, str, ir.BooleanValue]] = []
        for col in values.NUMBER_COLUMNS.get(name, ()):
            if col in table.columns and col == "amount":  # events.value: read by no feature
                _check_type(table, name, col, "number")
                checks.append((col, "number", values.ibis_number_violation(table[col])))
        for col in values.TIMESTAMP_COLUMNS.get(name, ()):
            if col in table.columns:
                _check_type(table, name, col, "timestamp")
                checks.append((col, "timestamp", values.ibis_timestamp_violation(table[col])))
        # a missing required value (None, NaN, NaT in a frame) would drop the row from every sum
        # without a word, or make a customer of the id None
        for col in TABLES[name].required:
            if col in table.columns:
                missing = table[col].isnull()  # noqa: PD003 - an Ibis column: it has no isna()
                n = _count(con, table.filter(missing), name, col)
                if n:
                    raise values.ValueRuleError(
                        f"{name}.{col}: {n:,} row(s) have no value (None, NaN or NaT), but every row needs "
                        f"one: drop or complete those rows; {_TRUSTED_FIX}"
                    )
        if name == "customers" and "customer_id" in table.columns:  # a repeated id: its feature row repeated
            counts = con.to_pyarrow(table.aggregate(rows=table.count(), ids=table["customer_id"].nunique()))
            n = counts["rows"][0].as_py() - counts["ids"][0].as_py()
            if n:
                raise values.ValueRuleError(
                    f"customers.customer_id: {n:,} row(s) repeat the id of an earlier row, but the customers "
                    "table holds one row per customer (each would get its features and scores twice): keep one "
                    f"row per customer; {_TRUSTED_FIX}"
                )
        # one count per column, the rule as a filter: DuckDB then reads only the Parquet row groups
        # whose statistics do not rule a violation out (for timestamps, usually none)
        for col, rule, cond in checks:
            n = _count(con, table.filter(cond), name, col)
            if n:
                raise values.ValueRuleError(
                    f"{name}.{col}: {n:,} row(s) break the rule '{values.describe(col, rule)}', so the "
                    f"features would not be finite numbers; {_TRUSTED_FIX}"
                )


# what a text column of a CSV read as trusted must look like to convert to the contract's type
_TEXT_FORMS = {
    "ts": "timestamps written YYYY-MM-DD or YYYY-MM-DD HH:MM:SS",
    "signup_ts": "timestamps written YYYY-MM-DD or YYYY-MM-DD HH:MM:SS",
    "amount": "numbers with a '.' as the decimal point and no thousands separator",
}


def _count(con: ibis.BaseBackend, rows: ir.Table, name: str, col: str) -> int:
    """The number of ``rows``; a text value of ``col`` that does not convert to the contract's type
    (a CSV read as trusted: dates written 05/01/2024, amounts written 10,5) is a
    :class:`~churnclv.values.ValueRuleError` naming the column, never DuckDB's error, which quotes
    the value."""
    try:
        return int(con.to_pyarrow(rows.count()).as_py())
    except (duckdb.ConversionException, duckdb.InvalidInputException):
        form = _TEXT_FORMS.get(col, "values of the contract's type")
        raise values.ValueRuleError(
            f"{name}.{col}: a value does not convert; the column must hold {form}; {_TRUSTED_FIX} "
            "(validation rejects such rows, each with its reason)"
        ) from None


def _check_type(table: ir.Table, name: str, col: str, rule: str) -> None:
    """Raise unless ``col`` has the type its value rule (``number`` or ``timestamp``) reads."""
    dtype = table[col].type()
    if dtype.is_timestamp() if rule == "timestamp" else dtype.is_numeric():  # a boolean is not numeric
        return
    want = "a timestamp" if rule == "timestamp" else "a number"
    raise FrameTypeError(f"{name}.{col} has type {dtype}: the features read it as {want}; {_TRUSTED_FIX}")
