"""The validation of one raw table, as SQL in DuckDB: parse every column, apply the value rules
(:mod:`churnclv.values`) in order, judge duplicates, and split the rows into clean and rejected."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pandas as pd

from churnclv import values
from churnclv.ingestion.raw import RawTable, literal, other_separator
from churnclv.mapping import Mapping, TableMapping
from churnclv.schema import CUSTOMERS, EVENTS, TRANSACTIONS, TableSpec
from churnclv.tables import DataError

__all__ = ["ROW", "TableReport", "validate_table"]

log = logging.getLogger(__name__)
ROW = "_row"  # 1-based row number in the source, kept in the rejects file

# source types read as numbers (the rest is read as text and parsed)
_FLOAT_TYPES = ("DOUBLE", "FLOAT", "REAL")
_NUMBER_TYPES = (
    *_FLOAT_TYPES,
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "UHUGEINT",
)


@dataclass
class TableReport:
    """Counts for one table; ``read == accepted + rejected`` always holds."""

    table: str
    source: str
    read: int = 0
    accepted: int = 0
    rejected: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    dropped_columns: list[str] = field(default_factory=list)  # read but not in the contract: not kept
    customers: int = 0
    ts_min: pd.Timestamp | None = None
    ts_max: pd.Timestamp | None = None

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready values (timestamps as text)."""
        return {
            "table": self.table,
            "source": self.source,
            "read": self.read,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "reasons": dict(self.reasons),
            "dropped_columns": list(self.dropped_columns),
            "customers": self.customers,
            "ts_min": None if self.ts_min is None else str(self.ts_min),
            "ts_max": None if self.ts_max is None else str(self.ts_max),
        }


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _row(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[Any, ...]:
    """The one row of an aggregate query."""
    row = con.execute(sql).fetchone()
    assert row is not None, "an aggregate without GROUP BY returns one row"
    return row


def _column_types(con: duckdb.DuckDBPyConnection, view: str) -> dict[str, str]:
    return {r[0]: r[1] for r in con.execute(f"DESCRIBE {view}").fetchall()}


def _is_float_type(src_type: str) -> bool:
    return src_type in _FLOAT_TYPES or src_type.startswith("DECIMAL")


def _text(col: str, src_type: str) -> str:
    """SQL for a column as trimmed text (NULL when blank). Integral floats lose their '.0'."""
    cast = values.sql_id_text(col) if _is_float_type(src_type) else f"CAST({col} AS VARCHAR)"
    return f"NULLIF(TRIM({cast}), '')"


def _timestamp(col: str, src_type: str) -> str:
    """SQL for a column as a naive UTC timestamp (NULL when it does not parse)."""
    if src_type.startswith("TIMESTAMP WITH TIME ZONE"):
        return f"CAST({col} AS TIMESTAMP)"  # session time zone is UTC
    if src_type.startswith("TIMESTAMP") or src_type == "DATE":
        return f"CAST({col} AS TIMESTAMP)"
    return f"CAST(TRY_CAST(NULLIF(TRIM(CAST({col} AS VARCHAR)), '') AS TIMESTAMPTZ) AS TIMESTAMP)"


def _float(col: str, src_type: str) -> str:
    if src_type in _NUMBER_TYPES or src_type.startswith("DECIMAL"):
        return f"CAST({col} AS DOUBLE)"  # a number as it is: no detour through text
    return f"TRY_CAST(NULLIF(TRIM(CAST({col} AS VARCHAR)), '') AS DOUBLE)"


def _rules(
    spec: TableSpec, present: dict[str, str], types: dict[str, str], raw: RawTable, has_customers: bool
) -> list[tuple[str, str]]:
    """(reason, SQL condition on the parsed row) in the order they are checked; first match wins.

    The value rules (and their reasons) are those of :mod:`churnclv.values`."""
    rules: list[tuple[str, str]] = []
    for col, actual in present.items():
        kind = spec.types[col]
        src_type = types[actual]
        r, p = f"r_{col}", f"p_{col}"
        if col in spec.required:
            rules.append((values.reason("missing", col), f"{r} IS NULL"))
        if col == "customer_id":
            rules.append(values.sql_id_length_rule(col, r))
        if col in values.ID_COLUMNS and (_is_float_type(src_type) or actual in raw.float_columns):
            rules += values.sql_id_rules(col, r)
        if kind == "timestamp":
            rules += values.sql_timestamp_rules(col, r, p, text_source=src_type == "VARCHAR")
        elif kind == "float":
            rules += values.sql_number_rules(col, r, p)
    if spec is EVENTS and has_customers:
        rules.append(
            (
                "unknown customer_id: not in the customers table",
                "p_customer_id IS NOT NULL AND p_customer_id NOT IN (SELECT customer_id FROM clean_customers)",
            )
        )
    return rules


def _resolve(tmap: TableMapping, table: str, canonical: str, types: dict[str, str], source: str) -> str | None:
    """The source column of ``canonical``: its exact name, else the one column equal ignoring case."""
    wanted = tmap.source_column(canonical)
    if wanted in types:
        return wanted
    same = [c for c in types if c.lower() == wanted.lower()]
    if len(same) > 1:
        raise DataError(
            f"{source}: columns {same} all match '{wanted}' (canonical '{canonical}') ignoring case: rename "
            f'the others, or map the exact name ([{table}] columns = {{ {canonical} = "{same[0]}" }})'
        )
    return same[0] if same else None


def validate_table(
    con: duckdb.DuckDBPyConnection, spec: TableSpec, raw: RawTable, mapping: Mapping, has_customers: bool
) -> TableReport:
    """Build ``clean_<table>`` and ``rejects_<table>`` temp tables in ``con`` from the raw view."""
    tmap = mapping.table(spec.name)
    view, source = raw.view, raw.where
    types = _column_types(con, view)
    if not types:
        raise DataError(f"{source}: no columns found: the file needs a header row")

    present: dict[str, str] = {}
    for col in spec.columns:
        actual = _resolve(tmap, spec.name, col, types, source)
        if actual is not None:
            present[col] = actual
        elif col in spec.required:
            wanted = tmap.source_column(col)
            if other_separator(list(types)):
                raise DataError(
                    f"{source}: required column '{wanted}' (canonical '{col}') is missing: the header was read as "
                    f"one column {list(types)}, so the file is not comma-separated. Fix: export it with commas "
                    "as the separator (CSV files are read comma-separated), or as Parquet"
                )
            raise DataError(
                f"{source}: required column '{wanted}' (canonical '{col}') is missing; columns found: "
                f"{list(types)}. Fix: rename the column or map it in a mapping file "
                f'([{spec.name}] columns = {{ {col} = "your_column" }})'
            )
    extras = [c for c in types if spec.keep_extra and c not in present.values()]
    # read but not kept: said, not dropped in silence (a currency column: amounts are summed as one)
    report_dropped = [] if spec.keep_extra else [c for c in types if c not in present.values()]

    select = [f"row_number() OVER () AS {ROW}"]
    for col, actual in present.items():
        qc, t = _q(actual), types[actual]
        select.append(f"{_text(qc, t)} AS r_{col}")
        kind = spec.types[col]
        parsed = _text(qc, t) if kind == "string" else _timestamp(qc, t) if kind == "timestamp" else _float(qc, t)
        select.append(f"{parsed} AS p_{col}")
    for i, actual in enumerate(extras):
        select.append(f"{_text(_q(actual), types[actual])} AS x_{i}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE parsed_{spec.name} AS SELECT {', '.join(select)} FROM {view}")

    rules = _rules(spec, present, types, raw, has_customers)
    case = "CASE " + " ".join(f"WHEN {cond} THEN {literal(reason)}" for reason, cond in rules) + " END"
    # duplicates are judged among otherwise valid rows, on every canonical column
    if spec is TRANSACTIONS and "order_id" in present:
        dup_key = ", ".join(f"p_{c}" for c in present)
        dup = (
            f"CASE WHEN reason IS NULL AND p_order_id IS NOT NULL AND row_number() OVER "
            f"(PARTITION BY reason, {dup_key} ORDER BY {ROW}) > 1 "
            "THEN 'duplicate line: same order_id and identical values as an earlier line' ELSE reason END"
        )
    elif spec is CUSTOMERS:
        dup = (
            "CASE WHEN reason IS NULL AND row_number() OVER (PARTITION BY reason, p_customer_id "
            f"ORDER BY {ROW}) > 1 THEN 'duplicate customer_id: an earlier row has it' ELSE reason END"
        )
    else:
        dup = "reason"
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE checked_{spec.name} AS "
        f"SELECT *, {dup} AS final_reason FROM (SELECT *, {case} AS reason FROM parsed_{spec.name})"
    )

    clean_cols = [f"p_{c} AS {c}" for c in present]
    clean_cols += [f"x_{i} AS {_q(a)}" for i, a in enumerate(extras)]
    order = ", ".join(c for c in ("p_customer_id", "p_ts") if c.removeprefix("p_") in present)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE clean_{spec.name} AS SELECT {', '.join(clean_cols)} "
        f"FROM checked_{spec.name} WHERE final_reason IS NULL ORDER BY {order}, {ROW}"
    )
    raw_cols = [f"r_{c} AS {_q(present[c])}" for c in present]
    raw_cols += [f"x_{i} AS {_q(a)}" for i, a in enumerate(extras)]
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE rejects_{spec.name} AS SELECT {ROW}, final_reason AS reason, "
        f"{', '.join(raw_cols)} FROM checked_{spec.name} WHERE final_reason IS NOT NULL ORDER BY {ROW}"
    )

    report = TableReport(table=spec.name, source=source, dropped_columns=report_dropped)
    report.read = _row(con, f"SELECT count(*) FROM parsed_{spec.name}")[0]
    if report.read == 0:
        if spec.name == "transactions":
            raise DataError(
                f"{source}: empty: the transactions table has a header but no rows; export the "
                "transactions again (nothing can be scored without them)"
            )
        log.warning("%s (%s) has no rows", spec.name, source)
    report.accepted = _row(con, f"SELECT count(*) FROM clean_{spec.name}")[0]
    report.reasons = dict(
        con.execute(
            f"SELECT reason, count(*) FROM rejects_{spec.name} GROUP BY reason ORDER BY count(*) DESC, reason"
        ).fetchall()
    )
    report.rejected = sum(report.reasons.values())
    report.customers = _row(con, f"SELECT count(DISTINCT customer_id) FROM clean_{spec.name}")[0]
    ts_col = "ts" if "ts" in present else "signup_ts" if "signup_ts" in present else None
    if ts_col:
        lo, hi = _row(con, f"SELECT min({ts_col}), max({ts_col}) FROM clean_{spec.name}")
        report.ts_min = None if lo is None else pd.Timestamp(lo)
        report.ts_max = None if hi is None else pd.Timestamp(hi)
    assert report.read == report.accepted + report.rejected, "validation lost rows"
    if report.rejected:
        log.warning("%s: %d of %d rows rejected: %s", spec.name, report.rejected, report.read, report.reasons)
    return report
