"""In-memory sources: pandas frames and rows of a SQL result as text, registered as DuckDB views.

Every value becomes nullable text, so SQL and in-memory sources follow the CSV rules exactly.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from typing import Any

import duckdb
import pandas as pd

from churnclv import values
from churnclv.ingestion.raw import RawTable, check_names
from churnclv.tables import DataError

__all__ = ["register_frame", "rows_as_text"]
_BINARY = (bytes, bytearray, memoryview)


def rows_as_text(keys: list[str], rows: Sequence[Sequence[Any]], where: str) -> tuple[pd.DataFrame, set[str]]:
    """Rows of a SQL result as nullable text, value by value, by the rules of :func:`_as_text`:
    an integer stays ``12`` (a NULL beside it does not make it 12.0), a float is marked as one
    (the numeric id rule), a BLOB is decoded as UTF-8, a timestamp keeps its offset."""
    out, floats = {}, set()
    for i, name in enumerate(keys):
        texts: list[str | None] = []
        for row in rows:
            v = row[i]
            if v is None or isinstance(v, str):
                texts.append(v)
            elif isinstance(v, float):
                floats.add(name)
                texts.append(None if math.isnan(v) else values.id_text(v))  # NaN: a missing number
            elif isinstance(v, _BINARY):
                texts.append(_decode(v, name, where))
            elif isinstance(v, dt.datetime):
                texts.append(v.isoformat(sep=" "))  # four-digit years, and the offset when it has one
            else:
                texts.append(str(v))
        out[name] = pd.Series(texts, dtype="string")
    return pd.DataFrame(out), floats


def _decode(v: Any, name: str, where: str) -> str:
    try:
        return bytes(v).decode("utf-8")
    except UnicodeDecodeError:
        raise DataError(
            f"{where}: column '{name}' holds binary values (BLOB) that are not UTF-8 text: store "
            "it as text, or map a view that converts it (e.g. hex(column))"
        ) from None


def _as_text(frame: pd.DataFrame, where: str) -> tuple[pd.DataFrame, set[str]]:
    """Every column as nullable text, so SQL and in-memory sources follow the CSV rules exactly;
    also the names of the columns that held floating-point numbers (for the numeric id rule)."""
    names = [str(c) for c in frame.columns]
    check_names(names, where)
    out, floats = {}, set()
    for name, c in zip(names, frame.columns, strict=True):
        s = frame[c]
        if pd.api.types.is_datetime64_any_dtype(s):
            text = (
                s.dt.strftime("%Y-%m-%dT%H:%M:%S.%f%z")
                if s.dt.tz is not None
                else s.dt.strftime("%Y-%m-%d %H:%M:%S.%f")
            )
            out[name] = text.astype("string")
        elif pd.api.types.is_float_dtype(s):
            # whole numbers without '.0' (ids 12, not 12.0), repr otherwise: full precision, and inf
            # spelt so the numeric rules see it; NaN is how pandas writes a missing number, so it
            # stays missing (a required column rejects it as such)
            floats.add(name)
            out[name] = pd.Series(
                [None if pd.isna(v) else values.id_text(float(v)) for v in s], index=s.index, dtype="string"
            )
        elif s.dtype == object and s.map(lambda v: isinstance(v, _BINARY)).any():
            out[name] = s.map(lambda v, n=name: _decode(v, n, where) if isinstance(v, _BINARY) else v).astype("string")
        else:
            out[name] = s.astype("string")
    return pd.DataFrame(out, index=frame.index), floats


def register_frame(con: duckdb.DuckDBPyConnection, frame: pd.DataFrame, view: str, where: str) -> RawTable:
    """Register ``frame``, every column as text, as the DuckDB view ``view``."""
    text, floats = _as_text(frame, where)
    con.register(f"{view}_df", text)
    con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT * FROM {view}_df")
    return RawTable(view=view, where=where, float_columns=frozenset(floats))
