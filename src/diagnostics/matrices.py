"""The BTYD frequency/recency matrices (lifetimes' ``plot_frequency_recency_matrix`` and
``plot_probability_alive_matrix``): for a customer of age ``T``, what the model expects of every
``(frequency, recency)`` history.

What to look for: expected purchases rise with frequency and, for frequent buyers, fall sharply as
recency drops (a frequent buyer gone quiet is probably gone); P(alive) shows the same "frequent but
not recent" corner as the dead one. A model whose matrix does not fall off there cannot tell a lapsed
regular from a loyal one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from churnclv.diagnostics.inputs import DiagnosticsError, as_btyd, unit_days
from churnclv.plotting import _axes

__all__ = [
    "frequency_recency_matrix",
    "p_alive_matrix",
    "plot_frequency_recency_matrix",
    "plot_p_alive_matrix",
]


def _grid(model: Any, T: float, time_unit: str, max_frequency: int, horizon_days: float, column: str) -> pd.DataFrame:
    if not (isinstance(max_frequency, (int, np.integer)) and max_frequency >= 0):
        raise DiagnosticsError(f"max_frequency={max_frequency!r} must be an integer >= 0, e.g. 20.")
    if not (np.isfinite(T) and T > 0):
        raise DiagnosticsError(f"T={T!r} must be a customer age > 0 in {time_unit}, e.g. the largest T of the data.")
    unit = unit_days(time_unit)
    recency = np.arange(int(np.floor(T)) + 1, dtype=float)  # 0, 1, ..., T in time_unit
    f, r = np.meshgrid(np.arange(max_frequency + 1, dtype=float), recency, indexing="ij")
    # no repeat purchase means recency 0 (the summary contract): the rest of that row is not a history
    valid = (f > 0) | (r == 0)
    summary = pd.DataFrame(
        {"frequency": f[valid], "recency": r[valid] * unit, "T": float(T) * unit, "monetary_value": 0.0}
    )
    values = np.full(f.shape, np.nan)
    values[valid] = as_btyd(model).predict(summary, horizon_days, clv_months=0)[column].to_numpy()
    return pd.DataFrame(
        values,
        index=pd.Index(range(max_frequency + 1), name="frequency"),
        columns=pd.Index(recency, name=f"recency ({time_unit})"),
    )


def frequency_recency_matrix(
    model: Any, T: float, horizon: float, *, time_unit: str = "days", max_frequency: int = 20
) -> pd.DataFrame:
    """Expected purchase days in the next ``horizon`` for a customer of age ``T``, per history.

    Parameters
    ----------
    model : BTYDModel or Scorer
        A fitted BTYD model (or a scorer, whose ``btyd_`` is used).
    T : float
        The customer's age (first purchase to as-of) in ``time_unit``; the recency grid runs 0..T.
    horizon : float
        The prediction window in ``time_unit``.
    time_unit : {"days", "weeks"}
        Unit of ``T``, ``horizon`` and of the recency columns.
    max_frequency : int, default 20
        Frequencies 0..max_frequency (rows).

    Returns
    -------
    pandas.DataFrame
        Rows: frequency; columns: recency in ``time_unit`` (0, 1, ..., floor(T)). Frequency 0 has only
        recency 0 (no repeat purchase, no recency); its other cells are NaN.
    """
    if not (np.isfinite(horizon) and horizon > 0):
        raise DiagnosticsError(f"horizon={horizon!r} must be > 0 (in {time_unit}).")
    return _grid(model, T, time_unit, max_frequency, float(horizon) * unit_days(time_unit), "expected_purchases")


def p_alive_matrix(model: Any, T: float, *, time_unit: str = "days", max_frequency: int = 20) -> pd.DataFrame:
    """P(alive at as-of) for a customer of age ``T``, per history; the grid of :func:`frequency_recency_matrix`."""
    return _grid(model, T, time_unit, max_frequency, 1.0, "p_alive")


def _draw(matrix: pd.DataFrame, title: str, label: str, ax: Axes | None) -> Axes:
    ax = _axes(ax, (6.5, 4.5))
    values = np.ma.masked_invalid(matrix.to_numpy(dtype=float))
    image = ax.imshow(values, cmap="viridis", aspect="auto", origin="lower", interpolation="nearest")
    ax.set(xlabel=str(matrix.columns.name), ylabel="repeat purchase days (frequency)", title=title)
    ax.figure.colorbar(image, ax=ax, shrink=0.85, label=label)
    return ax


def plot_frequency_recency_matrix(
    model: Any,
    T: float,
    horizon: float,
    *,
    time_unit: str = "days",
    max_frequency: int = 20,
    ax: Axes | None = None,
) -> Axes:
    """Heat map of :func:`frequency_recency_matrix` (frequency up, recency to the right)."""
    matrix = frequency_recency_matrix(model, T, horizon, time_unit=time_unit, max_frequency=max_frequency)
    title = f"expected purchases in the next {horizon:g} {time_unit}, age {T:g} {time_unit}"
    return _draw(matrix, title, "expected purchase days", ax)


def plot_p_alive_matrix(
    model: Any, T: float, *, time_unit: str = "days", max_frequency: int = 20, ax: Axes | None = None
) -> Axes:
    """Heat map of :func:`p_alive_matrix` (frequency up, recency to the right)."""
    matrix = p_alive_matrix(model, T, time_unit=time_unit, max_frequency=max_frequency)
    return _draw(matrix, f"P(alive), age {T:g} {time_unit}", "P(alive)", ax)
