"""Vectorised builders of the generator's Arrow columns (ids, labels, timestamps) and row order,
without Python objects per row."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

__all__ = ["SECONDS_PER_DAY", "code_names", "digits", "fixed_strings", "sort_rows", "to_seconds", "ts_array"]

SECONDS_PER_DAY = 86_400
_US_PER_SECOND = 1_000_000


def digits(values: np.ndarray, width: int) -> np.ndarray:
    """ASCII digits of non-negative ints, zero-padded, as a ``(n, width)`` uint8 matrix."""
    out = np.empty((values.size, width), dtype=np.uint8)
    x = values.astype(np.int64, copy=True)
    for j in range(width - 1, -1, -1):
        out[:, j] = x % 10 + 48
        x //= 10
    return out


def fixed_strings(mat: np.ndarray) -> pa.Array:
    """Rows of a uint8 matrix as an Arrow ``large_string`` array, without Python objects."""
    n, width = mat.shape
    offsets = np.arange(0, n * width + 1, width, dtype=np.int64)
    data = np.ascontiguousarray(mat).reshape(-1)
    return pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))


def code_names(codes: np.ndarray, names: Sequence[str]) -> pa.Array:
    """Category codes as an Arrow string column of their ``names``."""
    dictionary = pa.array(list(names), type=pa.large_string())
    return pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32)), dictionary).cast(pa.large_string())


def ts_array(start: pd.Timestamp, seconds: np.ndarray) -> pa.Array:
    """Whole ``seconds`` after ``start`` as an Arrow timestamp column (microseconds)."""
    start_us = start.value // 1_000  # .value is in ns
    return pa.array(start_us + seconds * _US_PER_SECOND, type=pa.timestamp("us"))


def to_seconds(t: np.ndarray) -> np.ndarray:
    """Times in days as whole seconds (rounded down)."""
    seconds: np.ndarray = np.floor(t * SECONDS_PER_DAY).astype(np.int64)
    return seconds


def sort_rows(cust: np.ndarray, seconds: np.ndarray, n_days: int) -> np.ndarray:
    """Stable order by (customer, ts): ties keep generation order (lines of one order)."""
    key = cust.astype(np.int64) * (n_days * SECONDS_PER_DAY + 1) + seconds
    return np.argsort(key, kind="stable")
