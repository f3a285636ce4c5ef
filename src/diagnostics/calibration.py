"""The calibration curve of ``p_churn``: the churn rate customers realised against the probability
they were given, per probability bin, with a 95% Wilson interval for each realised rate.

What to look for: points on the diagonal within their intervals. Points below it mean the model
over-states churn in that range (fewer churned than predicted), above it under-states it. A curve
that is right at the extremes but sags in the middle is typical of an over-confident model. With
``strategy="uniform"`` the weighted gap is :func:`churnclv.metrics.expected_calibration_error`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from churnclv.diagnostics.axes import reference_line
from churnclv.diagnostics.inputs import DiagnosticsError, aligned
from churnclv.plotting import _axes

__all__ = ["STRATEGIES", "calibration_table", "plot_calibration_curve"]

#: Bin edges: ``quantile`` (equally many customers per bin) or ``uniform`` (equal width in [0, 1]).
STRATEGIES = ("quantile", "uniform")
_Z = 1.959963984540054  # the 97.5% normal quantile


def calibration_table(churned: Any, p_churn: Any, *, n_bins: int = 10, strategy: str = "quantile") -> pd.DataFrame:
    """Observed churn rate against mean predicted probability per bin.

    Parameters
    ----------
    churned : array-like of bool or {0, 1}
        Whether each customer churned in the window (the label).
    p_churn : array-like of float in [0, 1]
        The predicted probability, same order.
    n_bins : int, default 10
        Number of bins; empty bins are left out.
    strategy : {"quantile", "uniform"}, default "quantile"
        ``quantile``: equally many customers per bin (ties in ``p_churn`` stay in one bin);
        ``uniform``: bins of width ``1 / n_bins`` (as in the ECE).

    Returns
    -------
    pandas.DataFrame
        One row per non-empty bin, lowest probabilities first: ``bin`` (0-based), ``customers``,
        ``predicted`` (mean ``p_churn``), ``observed`` (churn rate), ``observed_low`` and
        ``observed_high`` (95% Wilson interval of the rate), ``gap`` (observed - predicted).
    """
    if strategy not in STRATEGIES:
        raise DiagnosticsError(f"strategy={strategy!r} is not one of {list(STRATEGIES)}.")
    if not (isinstance(n_bins, (int, np.integer)) and n_bins >= 1):
        raise DiagnosticsError(f"n_bins={n_bins!r} must be an integer >= 1, e.g. 10.")
    y, p = aligned(churned, p_churn, "calibration_table")
    if ((p < 0) | (p > 1)).any() or not np.isin(y, (0.0, 1.0)).all():
        raise DiagnosticsError(
            "calibration_table: p_churn must lie in [0, 1] and churned be 0/1 (or bool); "
            "pass the churn probability and the churn label."
        )
    if strategy == "uniform":
        bins = np.clip((p * n_bins).astype(int), 0, n_bins - 1)
    else:
        edges = np.quantile(p, np.linspace(0, 1, n_bins + 1)[1:-1])
        bins = np.searchsorted(edges, p, side="left")  # a tie on an edge stays in the lower bin
    counts = np.bincount(bins, minlength=n_bins)
    keep = np.flatnonzero(counts)
    n = counts[keep].astype(float)
    predicted = np.bincount(bins, weights=p, minlength=n_bins)[keep] / n
    observed = np.bincount(bins, weights=y, minlength=n_bins)[keep] / n
    # Wilson score interval: stays inside [0, 1] and is honest for small bins and rates near 0 or 1
    centre = (observed + _Z**2 / (2 * n)) / (1 + _Z**2 / n)
    half = _Z / (1 + _Z**2 / n) * np.sqrt(observed * (1 - observed) / n + _Z**2 / (4 * n**2))
    return pd.DataFrame(
        {
            "bin": keep,
            "customers": counts[keep],
            "predicted": predicted,
            "observed": observed,
            # clipped: at a rate of 0 or 1 the bound equals the rate, up to rounding
            "observed_low": np.clip(centre - half, 0.0, observed),
            "observed_high": np.clip(centre + half, observed, 1.0),
            "gap": observed - predicted,
        }
    )


def plot_calibration_curve(
    churned: Any,
    p_churn: Any,
    *,
    label: str = "model",
    n_bins: int = 10,
    strategy: str = "quantile",
    ax: Axes | None = None,
) -> Axes:
    """:func:`calibration_table` drawn: observed rate against mean predicted, with its intervals.

    Call again with the same ``ax`` to add another model; the diagonal (perfect) is drawn once. The
    model's line has the table's ``predicted`` as x and ``observed`` as y.
    """
    table = calibration_table(churned, p_churn, n_bins=n_bins, strategy=strategy)
    ax = _axes(ax)
    reference_line(ax, [0, 1], [0, 1], "perfect")
    x, y = table["predicted"].to_numpy(), table["observed"].to_numpy()
    err = np.vstack([y - table["observed_low"].to_numpy(), table["observed_high"].to_numpy() - y])
    ax.errorbar(x, y, yerr=err, marker="o", markersize=4, capsize=2, label=label)
    ax.set(xlabel="predicted P(churn)", ylabel="observed churn rate", title="calibration", xlim=(0, 1), ylim=(0, 1))
    ax.legend(fontsize="small")
    return ax
