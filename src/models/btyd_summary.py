"""The customer summary the BTYD models read: its contract, checked on entry, and its compression.

One row per customer, lifetimes' conventions, all times in **days**:

- ``frequency``: number of repeat purchase days (purchase days after the first one);
- ``recency``: days from the first to the last purchase day (0 when ``frequency == 0``);
- ``T``: days from the first purchase to the as-of date;
- ``monetary_value``: mean net spend of the repeat purchase days (0 when ``frequency == 0``).

A customer who never bought (a sign-up) has ``frequency``, ``recency`` and ``T`` all NaN.

Fits and scores run on the unique rows (:func:`unique_rows`): customers with the same history get
the same answer, and a summary of a million customers holds a few tens of thousands of histories.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from churnclv.errors import ChurnclvError

__all__ = ["REQUIRED_COLUMNS", "BTYDInputError", "never_bought_age", "unique_rows", "validate_summary"]


class BTYDInputError(ChurnclvError, ValueError):
    """A customer summary, a BTYD setting or an argument breaks its rule; the message names it, the rule
    and the fix."""


REQUIRED_COLUMNS: tuple[str, ...] = ("frequency", "recency", "T", "monetary_value")


def validate_summary(frame: Any, where: str) -> dict[str, np.ndarray]:
    """Check the summary contract; return float arrays plus the mask of never-purchased rows."""
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(
            f"{where}: expected a pandas DataFrame with columns {list(REQUIRED_COLUMNS)}, got {type(frame).__name__}."
        )
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise BTYDInputError(
            f"{where}: frame is missing required column(s) {missing}; expected "
            f"{list(REQUIRED_COLUMNS)} in days, one row per customer, as built by the "
            "feature job (lifetimes' summary conventions)."
        )
    cols: dict[str, np.ndarray] = {}
    for c in REQUIRED_COLUMNS:
        try:
            cols[c] = pd.to_numeric(frame[c]).to_numpy(dtype=float, na_value=np.nan)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"{where}: column {c!r} must be numeric (dtype {frame[c].dtype}); "
                "cast it to float before fitting or scoring."
            ) from exc
    f, r, t, m = (cols[c] for c in REQUIRED_COLUMNS)

    def fail(column: str, bad: np.ndarray, rule: str, fix: str) -> None:
        if bad.any():
            first = frame.index[int(np.flatnonzero(bad)[0])]
            raise BTYDInputError(
                f"{where}: column {column!r} breaks the rule '{rule}' in {int(bad.sum())} "
                f"row(s) (first at index {first!r}); {fix}"
            )

    nan_frt = np.isnan(f) | np.isnan(r) | np.isnan(t)
    fail(
        "frequency/recency/T",
        nan_frt & ~(np.isnan(f) & np.isnan(r) & np.isnan(t)),
        "all three are NaN (never purchased) or none is",
        "rebuild the summary so a customer without purchases has all three NaN.",
    )
    for c, v in (("frequency", f), ("recency", r), ("T", t), ("monetary_value", m)):
        fail(c, np.isinf(v), "finite", "replace infinite values.")
    ok = ~nan_frt
    fail(
        "frequency",
        ok & ((f < 0) | (f != np.floor(f))),
        "a non-negative integer",
        "frequency counts repeat purchase days.",
    )
    fail("recency", ok & (r < 0), "recency >= 0", "recency is days from first to last purchase.")
    fail("recency", ok & (r > t), "recency <= T", "T is days from first purchase to as-of.")
    fail(
        "recency",
        ok & (f == 0) & (r != 0),
        "recency == 0 when frequency == 0",
        "a customer without repeat purchases has recency 0.",
    )
    fail(
        "monetary_value",
        ok & (f > 0) & np.isnan(m),
        "not NaN when frequency > 0",
        "monetary_value is the mean net spend of repeat purchase days.",
    )
    # No repeat purchase means no spend information: the contract's 0 (or NaN) is treated alike.
    m = np.where(ok & (f > 0), m, 0.0)
    return {"frequency": f, "recency": r, "T": t, "monetary_value": m, "never": nan_frt}


def never_bought_age(frame: pd.DataFrame, never: np.ndarray) -> np.ndarray:
    """``T`` (days) for never-purchased rows: ``tenure_days`` where the frame has it (finite, > 0), else 0.

    Under BG/NBD and Pareto/NBD alike, someone who has not bought for ``tenure_days`` is less likely to
    buy next than someone who just arrived; scoring every sign-up as brand new ranked long-silent
    sign-ups among the likeliest buyers."""
    if not never.any() or "tenure_days" not in frame.columns:
        return np.zeros(never.shape)
    tenure = pd.to_numeric(frame["tenure_days"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    return np.where(np.isfinite(tenure) & (tenure > 0), tenure, 0.0)


_SMALL_ROWS = 256


def _small_inverse(columns: tuple[np.ndarray, ...]) -> np.ndarray:
    """Group numbers in first-seen order (as ``groupby(sort=False).ngroup()``) for a few rows."""
    seen: dict[tuple[float, ...], int] = {}
    # key on the bit patterns (+0.0 turns -0.0 into 0.0, which pandas groups together)
    keys = zip(*((np.asarray(c, dtype=np.float64) + 0.0).view(np.int64).tolist() for c in columns), strict=True)
    return np.fromiter((seen.setdefault(k, len(seen)) for k in keys), dtype=np.int64, count=columns[0].size)


def unique_rows(
    *columns: np.ndarray, weights: np.ndarray | None = None
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Unique rows of ``columns`` (first-seen order), their summed weights and the inverse map."""
    if columns[0].size <= _SMALL_ROWS:  # a pandas groupby costs ~0.7 ms whatever the size
        inverse = _small_inverse(columns)
    else:
        key = pd.DataFrame({str(i): c for i, c in enumerate(columns)})
        inverse = key.groupby(list(key.columns), sort=False).ngroup().to_numpy()
    n = int(inverse.max()) + 1 if inverse.size else 0
    first = np.full(n, -1, dtype=np.int64)
    # reversed assignment leaves the first occurrence of each group
    first[inverse[::-1]] = np.arange(inverse.size)[::-1]
    w = np.ones(inverse.size) if weights is None else np.asarray(weights, dtype=float)
    counts = np.bincount(inverse, weights=w, minlength=n)
    return [c[first] for c in columns], counts, inverse
