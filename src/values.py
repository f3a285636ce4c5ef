"""The value rules: what a valid amount, event value, timestamp and numeric id is, defined once.

Ingestion (:mod:`churnclv.ingestion.validation`, as DuckDB SQL), the HTTP schema (:mod:`churnclv.serving.schemas`,
as Python checks) and the feature engine (:mod:`churnclv.features.checks`, as Ibis expressions on
tables it is told to trust) read these rules from here, so what validation accepts can never break
a job (design decision 7). Each rule has one reason text, used in the rejects files, in HTTP answers
and in the engine's errors.

The rules:

- **amounts** (``transactions.amount``) and **event values** (``events.value``): finite numbers, 0 or
  with ``MIN_ABS_AMOUNT <= |x| <= MAX_ABS_AMOUNT`` (1e-9 to 1e9). Sums of up to 1e299 such lines stay
  finite, and so does a ratio of two sums (the share of spend returned: at most lines x 1e18), so no
  feature can overflow; real line amounts are far inside the range, so a value outside it is a unit
  or parsing error (a return of 1e9 against a purchase of 1e-320 made the share returned infinite).
  Each rule is written here in Python (HTTP, pandas frames), DuckDB SQL (ingestion) and Ibis (the
  feature engine), next to each other so that they cannot drift.
- **timestamps** (``ts``, ``signup_ts``): finite, with a year in ``MIN_YEAR``-``MAX_YEAR``
  (1900-2200) once converted to UTC (a typo such as 0202-01-01 is refused, and the conversion of
  year 1 or 9999 with an offset cannot overflow anything downstream). Text must be ISO 8601 and
  start with its date (``YYYY-MM-DD``): the words databases turn into timestamps
  (:data:`SPECIAL_TIMESTAMPS`: ``infinity``, ``-infinity``, ``epoch``, ``now``, ``today``,
  ``allballs``, ...) are refused by name.
- **ids** (``customer_id``, ``order_id``) are text, with the spaces around them dropped
  (:data:`ID_PADDING`: ``" 00004 "`` is the id ``00004``, leading zeros kept; a tab or a newline is
  kept, as DuckDB's ``TRIM`` keeps it) by ingestion (``TRIM``), the HTTP schema and the pandas frames
  of the Python API (:func:`churnclv.features.sources.trim_text`); a ``customer_id`` that is then
  blank is missing. Ingestion and the pandas frames drop them around every other text value too
  (``channel``, ``category``, ``event_type``, customer attributes); blank, such a value is missing.
- **numeric ids** (``customer_id``, ``order_id`` stored as floating-point numbers): whole numbers
  with ``|id| < MAX_EXACT_ID`` (2**53, the largest range in which a float holds every integer), so
  ``12.0`` is the id ``12``, and ``NaN``, ``inf``, ``12.5`` or ``1e20`` are refused instead of
  becoming the ids ``nan``, ``inf``, ``12.5`` or ``1e+20``.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd

from churnclv.errors import ChurnclvError

__all__ = [
    "BAD_OFFSET",
    "ID_COLUMNS",
    "ID_PADDING",
    "ISO_DATE_START",
    "MAX_ABS_AMOUNT",
    "MAX_EXACT_ID",
    "MAX_ID_LENGTH",
    "MAX_YEAR",
    "MIN_ABS_AMOUNT",
    "MIN_YEAR",
    "NUMBER_COLUMNS",
    "SPECIAL_TIMESTAMPS",
    "TIMESTAMP_COLUMNS",
    "ValueRuleError",
    "describe",
    "frame_violations",
    "ibis_number_violation",
    "ibis_timestamp_violation",
    "id_text",
    "number_problem",
    "plausible_date",
    "reason",
    "sql_id_length_rule",
    "sql_id_rules",
    "sql_id_text",
    "sql_number_rules",
    "sql_timestamp_rules",
    "utc_naive",
]

# |amount| and |value| bounds (the upper one is the HTTP schema's cap since its first version; see the
# module docstring); 0 itself is a valid amount (a free item)
MAX_ABS_AMOUNT = 1e9
MIN_ABS_AMOUNT = 1e-9
# calendar years a timestamp may have, after conversion to UTC
MIN_YEAR, MAX_YEAR = 1900, 2200
# floats hold every integer below 2**53 exactly; a float id beyond it may stand for several ids
MAX_EXACT_ID = 2**53
# the longest customer id, in characters: the HTTP API's limit, so that every customer the batch
# scores can be asked for by id
MAX_ID_LENGTH = 128
# words that PostgreSQL, DuckDB and others accept as timestamps; none is a date of a customer's life
SPECIAL_TIMESTAMPS = (
    "infinity",
    "-infinity",
    "+infinity",
    "epoch",
    "now",
    "today",
    "tomorrow",
    "yesterday",
    "allballs",
)
# a timestamp's text starts with its date, year first with four digits: ISO 8601, and the forms the
# ingestion always took (2024-1-1, 2024/01/31: year first, so never ambiguous)
ISO_DATE_START = r"^[0-9]{4}[-/][0-9]{1,2}[-/][0-9]{1,2}"
# a time's UTC offset of 24 hours or more, of 60 minutes or more, or with seconds (ISO 8601 has
# none; DuckDB reads +25:00 and +05:99:00 and shifts the time)
BAD_OFFSET = (
    r":[0-9]{2}(\.[0-9]+)? ?[+-]([0-9]{2}:?[6-9][0-9]|(2[4-9]|[3-9][0-9])(:?[0-9]{2})?|[0-9]{2}:?[0-9]{2}:[0-9]{2})$"
)

# the columns each rule applies to, per canonical table
NUMBER_COLUMNS: dict[str, tuple[str, ...]] = {"transactions": ("amount",), "events": ("value",)}
TIMESTAMP_COLUMNS: dict[str, tuple[str, ...]] = {
    "transactions": ("ts",),
    "events": ("ts",),
    "customers": ("signup_ts",),
}
ID_COLUMNS = ("customer_id", "order_id")
# what is dropped around an id and every other text value (ingestion's TRIM, the frames): spaces only
ID_PADDING = " "

ISO_HINT = "use ISO 8601 (YYYY-MM-DD[ HH:MM:SS][+HH:MM])"


def _bound(x: float) -> str:
    """1e9 as ``1e9`` (not ``1000000000.0``)."""
    mantissa, exponent = f"{x:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


class ValueRuleError(ChurnclvError, ValueError):
    """A value breaks one of the value rules; the message names the column, the rule and the fix."""


def reason(rule: str, column: str) -> str:
    """The reason text of ``rule`` for ``column``: what a rejects file, an HTTP answer or an
    engine error says. Every text starts with the rule's name (the README's table of reasons).

    Rules: ``missing``, ``unparseable``, ``special``, ``implausible_ts``, ``non_numeric``,
    ``non_finite``, ``implausible_number``, ``tiny_number``, ``long_id``, ``non_integral_id``.
    """
    texts = {
        "missing": f"missing {column}",
        "unparseable": f"unparseable {column}: {ISO_HINT}",
        "special": f"unparseable {column}: a special word such as infinity, epoch or now is not a date: {ISO_HINT}",
        "implausible_ts": f"implausible {column}: year outside {MIN_YEAR}-{MAX_YEAR}",
        "non_numeric": f"non-numeric {column}",
        "non_finite": f"non-finite {column} (NaN or infinity)",
        "implausible_number": f"implausible {column}: |{column}| above {_bound(MAX_ABS_AMOUNT)}",
        "tiny_number": f"implausible {column}: |{column}| below {_bound(MIN_ABS_AMOUNT)} and not 0",
        "long_id": (
            f"long {column}: more than {MAX_ID_LENGTH} characters, the longest id the HTTP API takes; "
            "map the ids to shorter keys"
        ),
        "non_integral_id": (
            f"non-integral {column}: a numeric id must be a whole number below "
            f"2^53 (12.0 is read as 12; NaN, infinity, 12.5 or 1e20 are not ids)"
        ),
    }
    return texts[rule]


def number_problem(x: float, column: str) -> str | None:
    """The reason ``x`` breaks the number rules of ``column``, or None when it keeps them."""
    if not math.isfinite(x):
        return reason("non_finite", column)
    if abs(x) > MAX_ABS_AMOUNT:
        return reason("implausible_number", column)
    if x != 0 and abs(x) < MIN_ABS_AMOUNT:
        return reason("tiny_number", column)
    return None


def utc_naive(value: dt.datetime, column: str = "ts") -> dt.datetime:
    """``value`` as a naive UTC datetime, checked against the timestamp rules.

    Raises
    ------
    ValueRuleError
        When the year in UTC is outside ``MIN_YEAR``-``MAX_YEAR``, including when the conversion
        itself leaves the range Python can hold (year 1 with a positive offset, 9999 with a negative
        one: ``OverflowError``).
    """
    if value.tzinfo is not None:
        try:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        except OverflowError:
            raise ValueRuleError(reason("implausible_ts", column)) from None
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise ValueRuleError(reason("implausible_ts", column))
    return value


_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def iso_day(text: str) -> dt.date:
    """The calendar day ``text`` writes as ``YYYY-MM-DD``, nothing else (an as-of on the command line
    and in HTTP): ``01/02/2025`` would be a guess at the order of day and month, ``now`` or ``today``
    would read the clock. ``ValueError`` otherwise (also for a day that does not exist)."""
    if not _ISO_DAY.fullmatch(text):
        raise ValueError(f"{text!r} is not written YYYY-MM-DD")
    return dt.date.fromisoformat(text)


def plausible_date(value: dt.date, column: str = "as_of") -> dt.date:
    """``value`` when its year is within ``MIN_YEAR``-``MAX_YEAR``; :class:`ValueRuleError` otherwise."""
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise ValueRuleError(f"implausible {column}: year outside {MIN_YEAR}-{MAX_YEAR}")
    return value


def frame_violations(
    frame: pd.DataFrame, table: str, columns: Iterable[str] | None = None
) -> list[tuple[str, str, int]]:
    """``(column, rule in words, rows)`` for every rule that rows of a clean pandas frame break.

    ``columns`` limits the check (default: every column a rule applies to). A null timestamp or a
    null optional value is not counted (the ingestion checks required columns); a NaN amount is.
    Timestamps must be naive ``datetime64`` (pandas cannot hold infinite ones). Plain numpy: tens
    of microseconds for the frames of one HTTP request.
    """
    wanted = None if columns is None else set(columns)
    found: list[tuple[str, str, int]] = []
    for col in NUMBER_COLUMNS.get(table, ()):
        if col in frame.columns and (wanted is None or col in wanted):
            x = frame[col].to_numpy(dtype=float, na_value=np.nan)
            with np.errstate(invalid="ignore"):
                size = np.abs(x)
                bad = ~(size <= MAX_ABS_AMOUNT) | ((size < MIN_ABS_AMOUNT) & (size != 0))
            if col != "amount":  # an optional value that is null (NaN in pandas) is missing
                bad &= ~np.isnan(x)
            if bad.any():
                found.append((col, describe(col, "number"), int(bad.sum())))
    lo, hi = np.datetime64(f"{MIN_YEAR}-01-01"), np.datetime64(f"{MAX_YEAR + 1}-01-01")
    for col in TIMESTAMP_COLUMNS.get(table, ()):
        if (
            col in frame.columns
            and (wanted is None or col in wanted)
            and pd.api.types.is_datetime64_any_dtype(frame[col])
        ):
            t = frame[col].to_numpy()
            bad = ~np.isnat(t) & ((t < lo) | (t >= hi))
            if bad.any():
                found.append((col, describe(col, "timestamp"), int(bad.sum())))
    return found


def _sql_list(words: Iterable[str]) -> str:
    return ", ".join("'" + w.replace("'", "''") + "'" for w in words)


def sql_timestamp_rules(column: str, raw: str, parsed: str, *, text_source: bool) -> list[tuple[str, str]]:
    """``(reason, SQL condition)`` pairs for a timestamp column, in the order they are checked.

    ``raw`` is the trimmed text (NULL when blank), ``parsed`` the naive UTC timestamp (NULL when it
    does not parse); ``text_source`` says the source column is text (CSV, SQL text), so it must
    also start with an ISO date.
    """
    rules = []
    if text_source:
        rules += [
            (reason("special", column), f"lower({raw}) IN ({_sql_list(SPECIAL_TIMESTAMPS)})"),
            (
                reason("unparseable", column),
                (
                    f"{raw} IS NOT NULL AND ({parsed} IS NULL OR NOT regexp_matches({raw}, '{ISO_DATE_START}') "
                    f"OR regexp_matches({raw}, '{BAD_OFFSET}'))"
                ),
            ),
        ]
    else:  # a typed timestamp (Parquet, a database): infinite ones are implausible, below
        rules.append((reason("unparseable", column), f"{raw} IS NOT NULL AND {parsed} IS NULL"))
    # the year of an infinite timestamp is NULL: finiteness first
    rules.append(
        (
            reason("implausible_ts", column),
            (
                f"{parsed} IS NOT NULL AND (NOT isfinite({parsed}) OR year({parsed}) NOT BETWEEN {MIN_YEAR} "
                f"AND {MAX_YEAR})"
            ),
        )
    )
    return rules


def sql_number_rules(column: str, raw: str, parsed: str) -> list[tuple[str, str]]:
    """``(reason, SQL condition)`` pairs for an amount or value column, in the order they are checked."""
    return [
        (reason("non_numeric", column), f"{raw} IS NOT NULL AND {parsed} IS NULL"),
        (reason("non_finite", column), f"{parsed} IS NOT NULL AND NOT isfinite({parsed})"),
        (reason("implausible_number", column), f"{parsed} IS NOT NULL AND abs({parsed}) > {MAX_ABS_AMOUNT!r}"),
        (
            reason("tiny_number", column),
            f"{parsed} IS NOT NULL AND {parsed} <> 0 AND abs({parsed}) < {MIN_ABS_AMOUNT!r}",
        ),
    ]


def sql_id_length_rule(column: str, raw: str) -> tuple[str, str]:
    """``(reason, SQL condition)``: the id's text ``raw`` is longer than :data:`MAX_ID_LENGTH`."""
    return reason("long_id", column), f"length({raw}) > {MAX_ID_LENGTH}"


def sql_id_rules(column: str, raw: str) -> list[tuple[str, str]]:
    """``(reason, SQL condition)`` for an id column whose source stores numbers as floats; ``raw`` is
    its text (``12`` for 12.0, ``nan``, ``inf``, ``12.5``, ``1e+20`` otherwise). Only numbers are
    checked: a column of a database without column types (SQLite) may hold ``1001.0`` beside the
    text ids ``A-18`` and ``007``, which are ids as they are."""
    x = f"TRY_CAST({raw} AS DOUBLE)"
    return [
        (
            reason("non_integral_id", column),
            (
                f"{x} IS NOT NULL AND NOT coalesce(isfinite({x}) AND {x} = floor({x}) AND abs({x}) < "
                f"{MAX_EXACT_ID}, false)"
            ),
        )
    ]


def sql_id_text(column: str) -> str:
    """SQL for a float column as id text: a whole number below 2**53 without its ``.0``."""
    return (
        f"CASE WHEN isfinite({column}) AND {column} = floor({column}) AND abs({column}) < {MAX_EXACT_ID} "
        f"THEN CAST(CAST({column} AS BIGINT) AS VARCHAR) ELSE CAST({column} AS VARCHAR) END"
    )


def id_text(x: float) -> str:
    """A float as id text, by the rule of :func:`sql_id_text` (``12.0`` -> ``12``; ``repr`` otherwise)."""
    if math.isfinite(x) and x == math.floor(x) and abs(x) < MAX_EXACT_ID:
        return str(int(x))
    return repr(float(x))


def ibis_number_violation(column: ir.NumericValue, *, nan_is_missing: bool = False) -> ir.BooleanValue:
    """True where an amount (or value) breaks the number rules (NULL rows are not counted)."""
    bad = (column.abs() > MAX_ABS_AMOUNT) | ((column != 0) & (column.abs() < MIN_ABS_AMOUNT))
    if column.type().is_floating():  # NaN compares false: test it (and infinity) by name
        bad = bad | column.isinf() if nan_is_missing else bad | column.isinf() | column.isnan()
    return column.notnull() & bad.fill_null(False)  # noqa: PD004 - an Ibis column: it has no notna()


def ibis_timestamp_violation(column: ir.TimestampValue) -> ir.BooleanValue:
    """True where a timestamp breaks the timestamp rules: before the first day of ``MIN_YEAR`` or
    from the first day after ``MAX_YEAR`` on, infinite ones included (they compare beyond both).

    Comparisons, not the year: DuckDB skips every Parquet row group whose statistics lie inside the
    bounds, so checking 113M events takes milliseconds instead of 0.75 s (``year`` of each row).
    """
    lo, hi = ibis.timestamp(dt.datetime(MIN_YEAR, 1, 1)), ibis.timestamp(dt.datetime(MAX_YEAR + 1, 1, 1))
    return column.notnull() & ((column < lo) | (column >= hi))  # noqa: PD004 - an Ibis column: it has no notna()


def describe(column: str, rule: str) -> str:
    """The rule of a column in words, for the engine's errors."""
    if rule == "number":
        return f"finite, 0 or {_bound(MIN_ABS_AMOUNT)} <= |{column}| <= {_bound(MAX_ABS_AMOUNT)}"
    return f"a finite timestamp with a year in {MIN_YEAR}-{MAX_YEAR}"
