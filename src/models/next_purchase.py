"""When a customer's next purchase comes: waiting-time quantiles and their dates, consistent with ``p_churn``.

Everything is read off one curve per customer, ``P(t)``: the probability of at least one purchase in
``(as_of, as_of + t]``. BTYD gives its shape (``1 - P(no purchase in t)``,
:func:`~churnclv.models.btyd_conditionals.no_purchase_probability`); the scorer's final ``p_churn``
(learned, blended, seasonal) fixes its level: the BTYD curve ``B(t)`` is scaled so that
``P(H) = 1 - p_churn`` at the horizon ``H`` (``P(t) = min(1, B(t) (1 - p_churn) / B(H))``). The
``q`` quantile is the first ``t`` with ``P(t) >= q`` (days, to the day after as-of at least), and is
undefined (NaN, a null date) when not reached within :data:`MAX_WAIT_DAYS`. Because ``P`` increases
with ``t``, a customer with ``p_churn > 1 - q`` reaches ``q`` only after the horizon: in particular
with ``p_churn > 0.5`` the 50 % date (``expected_next_purchase_date``) is never inside it.

Sign-ups without a purchase: under BG/NBD they are alive by definition (dropout only follows a
purchase), so their model ``p_alive`` is 1 whatever their silence. Their ``p_alive`` is instead the
probability of a first purchase within the horizon, ``1 - p_churn`` (the smallest value consistent
with it: nobody buys without being alive), and every customer's ``p_alive`` is at least
``1 - p_churn`` (:func:`consistent_timing`).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from churnclv.models.btyd_conditionals import no_purchase_probability

__all__ = [
    "DATE_COLUMNS",
    "MAX_WAIT_DAYS",
    "WAIT_COLUMNS",
    "consistent_timing",
    "next_purchase_dates",
    "purchase_wait",
]

#: A wait beyond a year is no date to act on (and the model's far tail is an extrapolation): NaN.
MAX_WAIT_DAYS = 365.0
#: The waiting-time columns and the probability of a purchase by then.
WAIT_COLUMNS: Mapping[str, float] = {"expected_next_purchase_days": 0.5, "next_purchase_days_p80": 0.8}
#: The date column of each waiting-time column.
DATE_COLUMNS: Mapping[str, str] = {
    "expected_next_purchase_days": "expected_next_purchase_date",
    "next_purchase_days_p80": "next_purchase_date_p80",
}
# Pareto/NBD has no closed-form inverse: its curve on a log-spaced grid (ratio ~1.13 between
# points), interpolated linearly in log(t).
_GRID_DAYS = np.geomspace(0.01, MAX_WAIT_DAYS, 86)


def purchase_wait(
    model: str,
    fitter: Any,
    params: Mapping[str, float],
    p_alive: np.ndarray,
    x: np.ndarray,
    tx: np.ndarray,
    t: np.ndarray,
    unit_days: float,
    target: np.ndarray | float,
    inverse: np.ndarray | None = None,
) -> np.ndarray:
    """Days until BTYD's ``P(a purchase in (T, T+h] | x, t_x, T)`` reaches ``target``; NaN if not within a year.

    ``p_alive, x, tx, t`` are unique histories in the model's time unit; ``inverse`` maps each output
    row to one of them (identity when None). ``target`` is one number, one per output row, or an
    ``(rows, k)`` array for ``k`` targets per row (the curve is computed once): the output has its shape.
    BG/NBD and MBG/NBD: ``B(h) = P(alive) (1 - (A / (A + h))^k)`` with ``A = alpha + T``,
    ``k = r + x`` (:func:`~churnclv.models.btyd_conditionals.no_purchase_probability`), so
    ``h = A ((1 - target / P(alive))^(-1/k) - 1)`` where ``target < P(alive)``. Pareto/NBD: the curve on
    a log-spaced grid of days, searched per row and interpolated in ``log h``.
    """
    inv = np.arange(x.size) if inverse is None else np.asarray(inverse)
    goal = np.asarray(target, dtype=float)
    goal = np.broadcast_to(goal, inv.shape + goal.shape[1:] if goal.ndim == 2 else inv.shape)
    rows = inv[:, None] if goal.ndim == 2 else inv
    out = np.full(goal.shape, np.nan)
    if model != "pareto":
        pa = p_alive[rows]
        ok = goal < pa
        with np.errstate(divide="ignore", invalid="ignore"):
            h = (params["alpha"] + t[rows]) * np.expm1(-np.log1p(-goal / pa) / (params["r"] + x[rows]))
        out[ok] = np.maximum(h[ok], 0.0) * unit_days
    else:

        def curve_at(days: float, rows: np.ndarray) -> np.ndarray:
            sel = (p_alive[rows], x[rows], tx[rows], t[rows])
            return 1.0 - no_purchase_probability(model, fitter, params, *sel, days / unit_days)

        per_row = goal.reshape(inv.size, goal.shape[1] if goal.ndim == 2 else 1)
        out = _grid_waits(curve_at, x.size, per_row, inv).reshape(goal.shape)
    out[out > MAX_WAIT_DAYS] = np.nan
    out[goal <= 0] = 0.0
    return out


def _grid_waits(
    curve_at: Callable[[float, np.ndarray], np.ndarray], n_histories: int, goal: np.ndarray, inv: np.ndarray
) -> np.ndarray:
    """:func:`purchase_wait` on the grid, ``goal`` of shape ``(rows, k)``; ``curve_at(days, histories)``
    is the curve there. Only the histories some row reaches within a year get the whole grid
    (lifetimes' Pareto/NBD pmf costs ~1 us a history a point)."""
    need = np.full(n_histories, np.inf)
    np.minimum.at(need, inv, goal.min(axis=1))
    live = np.flatnonzero(curve_at(MAX_WAIT_DAYS, np.arange(n_histories)) >= need)
    out = np.full(goal.shape, np.nan)
    if live.size == 0:
        return out
    where = np.full(n_histories, -1, dtype=np.int64)
    where[live] = np.arange(live.size)
    rows = np.flatnonzero(where[inv] >= 0)
    curve = np.column_stack([curve_at(g, live) for g in _GRID_DAYS])
    for j in range(goal.shape[1]):
        out[rows, j] = _grid_wait(curve, where[inv[rows]], goal[rows, j])
    return out


def _grid_wait(curve: np.ndarray, inv: np.ndarray, goal: np.ndarray) -> np.ndarray:
    """First grid crossing of ``curve[inv]`` (increasing along axis 1) at ``goal``, by a vectorised
    binary search (memory O(rows), not rows x grid), interpolated in log(days) (linearly from 0 to the
    first point)."""
    n_grid = _GRID_DAYS.size
    lo, hi = np.zeros(inv.size, dtype=np.int64), np.full(inv.size, n_grid, dtype=np.int64)
    for _ in range(math.ceil(math.log2(n_grid + 1))):
        mid = (lo + hi) // 2
        active = lo < hi
        reached = curve[inv, np.minimum(mid, n_grid - 1)] >= goal
        hi = np.where(active & reached, mid, hi)
        lo = np.where(active & ~reached, mid + 1, lo)
    out = np.full(inv.size, np.nan)
    hit = lo < n_grid
    j, rows, g = lo[hit], inv[hit], goal[hit]
    prev = np.maximum(j - 1, 0)
    p_hi = curve[rows, j]
    p_lo = np.where(j > 0, curve[rows, prev], 0.0)
    frac = np.clip((g - p_lo) / np.maximum(p_hi - p_lo, 1e-300), 0.0, 1.0)
    h_hi, h_lo = _GRID_DAYS[j], _GRID_DAYS[prev]
    out[hit] = np.where(j > 0, np.exp(np.log(h_lo) + frac * (np.log(h_hi) - np.log(h_lo))), frac * h_hi)
    return out


def consistent_timing(
    btyd: Any,
    features: pd.DataFrame,
    horizon_days: float,
    btyd_p_churn: np.ndarray,
    p_churn: np.ndarray,
    p_alive: np.ndarray,
) -> dict[str, np.ndarray]:
    """``p_alive`` and the waiting-time columns (:data:`WAIT_COLUMNS`) consistent with the final ``p_churn``.

    Parameters
    ----------
    btyd : BTYDModel
        The fitted BTYD model giving the curve's shape.
    features : DataFrame
        The scored customers (the BTYD summary columns, ``tenure_days`` for sign-ups).
    horizon_days : float
        The horizon ``H`` of ``p_churn``.
    btyd_p_churn : ndarray
        That model's ``p_churn`` at the horizon (calendar time), ``1 - B(H)``.
    p_churn, p_alive : ndarray
        The scorer's final ``p_churn`` and BTYD's (or the season's) ``p_alive``.

    Returns
    -------
    dict
        ``p_alive`` (``1 - p_churn`` for sign-ups and, under BG/NBD, one-time buyers; at least that
        for everyone) and one array of days
        per :data:`WAIT_COLUMNS` entry (NaN where the quantile is not reached within a year).
    """
    buy_h = 1.0 - np.asarray(p_churn, dtype=float)  # P(H), the level
    shape_h = 1.0 - np.asarray(btyd_p_churn, dtype=float)  # B(H), the shape's value there
    frequency = pd.to_numeric(features["frequency"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    # BTYD says nothing of these: a sign-up has not bought, and under BG/NBD nobody drops out before a
    # repeat purchase (P(alive) is 1 for a one-time buyer, however long ago: 248 of 3,000 customers
    # of a generated world with p_churn above 0.9 had p_alive 1.0)
    uninformed = np.isnan(frequency) | ((frequency == 0) & (getattr(btyd, "model", None) == "bgnbd"))
    out: dict[str, np.ndarray] = {"p_alive": np.maximum(np.where(uninformed, buy_h, p_alive), buy_h)}
    horizon = float(horizon_days)
    q = np.array(list(WAIT_COLUMNS.values()))
    with np.errstate(divide="ignore", invalid="ignore"):  # B(t) >= q B(H) / P(H); never where either is 0
        scale = np.where((buy_h > 0) & (shape_h > 0), shape_h / buy_h, np.inf)
    days = btyd.purchase_wait_days(features, scale[:, None] * q)  # one column per quantile
    # P increases, so P(H) < q puts the quantile after H and P(H) >= q at or before it: kept exact
    # against rounding in the inverse, which may also miss a quantile at H exactly (NaN: P(H) = q = 0.5
    # for a one-time buyer of yesterday at H = 365 days) where H is the answer.
    late = buy_h[:, None] < q
    days = np.where(late, np.maximum(days, np.nextafter(horizon, np.inf)), np.fmin(days, horizon))
    days[days > MAX_WAIT_DAYS] = np.nan
    out.update({col: days[:, j] for j, col in enumerate(WAIT_COLUMNS)})
    return out


def next_purchase_dates(days: Any, as_of: dt.date) -> np.ndarray:
    """The date by which a purchase has the column's probability: ``as_of`` plus the waiting time
    rounded up to whole days, at least the day after as-of; NaT where no date is defined (not
    reached within a year).

    Parameters
    ----------
    days : array-like of float
        A waiting-time column from :meth:`Scorer.score` (:data:`WAIT_COLUMNS`; NaN where undefined).
    as_of : datetime.date
        The scoring date.

    Returns
    -------
    numpy.ndarray
        ``datetime64[D]`` dates, ``NaT`` where ``days`` is NaN.
    """
    d = np.asarray(days, dtype=np.float64)
    out = np.full(d.shape, np.datetime64("NaT"), dtype="datetime64[D]")
    ok = np.isfinite(d)
    out[ok] = np.datetime64(as_of, "D") + np.maximum(np.ceil(d[ok]), 1).astype(np.int64)
    return out
