"""The as-of date of the feature jobs: a whole calendar day (rows with ``ts < as_of + 1 day`` count),
and the Ibis literals of days."""

from __future__ import annotations

import datetime as dt
import numbers
from typing import TypeAlias

import ibis
import ibis.expr.types as ir
import pandas as pd

from churnclv.features.errors import FeatureError

__all__ = ["DAY", "AsOf", "as_of_date", "date_literal", "ts_literal"]

AsOf: TypeAlias = dt.date | dt.datetime | pd.Timestamp | str

DAY = dt.timedelta(days=1)


def as_of_date(value: AsOf, name: str = "as_of") -> dt.date:
    """A calendar date from a date, a midnight timestamp or an ISO 8601 string (``'2024-06-30'``).

    Strings are read as ISO 8601 only: ``'30/06/2024'`` or ``'01/02/2024'`` would be a guess at the
    order of day and month, and ``'now'`` or ``'today'`` would read the clock.

    Raises
    ------
    FeatureError
        A ``ValueError``: when the value is not a date, or has a time of day or a time zone (an as-of
        is a whole day).
    """
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    if isinstance(value, numbers.Number):  # pandas reads a number as nanoseconds after 1970-01-01
        d = str(value)
        example = f"'{d[:4]}-{d[4:6]}-{d[6:]}' for {d}" if len(d) == 8 and d.isdigit() else "'2024-06-30'"
        raise FeatureError(
            f"{name}={value!r} is a number, not a date: pass an ISO date string (YYYY-MM-DD, e.g. {example}) "
            "or a datetime.date"
        )
    try:
        ts = pd.Timestamp(dt.datetime.fromisoformat(value.strip()) if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise FeatureError(
            f"{name}={value!r} is not a date: pass an ISO date (YYYY-MM-DD, e.g. '2024-06-30') "
            "or datetime.date(2024, 6, 30)"
        ) from None
    if ts is pd.NaT:
        raise FeatureError(f"{name} is missing (NaT): pass a date")
    if ts.tzinfo is not None:
        raise FeatureError(f"{name}={value!r} has a time zone: pass the calendar date in UTC (naive)")
    if ts != ts.normalize():
        raise FeatureError(
            f"{name}={value!r} has a time of day: an as-of is a whole calendar day (rows with ts before "
            f"the next midnight count); pass the date, e.g. {ts.date().isoformat()!r}"
        )
    day: dt.date = ts.date()
    return day


def ts_literal(day: dt.date) -> ir.TimestampScalar:
    """Midnight at the start of ``day`` as an Ibis timestamp."""
    return ibis.literal(dt.datetime.combine(day, dt.time()), type="timestamp")


def date_literal(day: dt.date) -> ir.DateScalar:
    """``day`` as an Ibis date."""
    return ibis.literal(day, type="date")
