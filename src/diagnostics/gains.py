"""Gain, lift and Lorenz: how much of a realised total (churners, holdout spend) a score's ranking finds.

Customers are ranked by descending score (ties: the smaller actual first, so a tied or constant score
never looks better than it is, as in :func:`churnclv.metrics.normalized_gini`). For churn pass the
``churned`` flag and ``p_churn``; for spend the realised spend and ``expected_spend``.

What to look for: the gain curve far above the diagonal at the share you can act on (the top 10-20%);
lift of the first decile (how many times the average it holds) falling steadily decile by decile (a
lift that rises again deep down means the ranking mixes up the bottom); the model's Lorenz curve
close to the actual one (the ratio of their Gini coefficients is the normalised Gini).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from churnclv.diagnostics.axes import reference_line
from churnclv.diagnostics.inputs import DiagnosticsError, aligned
from churnclv.plotting import _axes

__all__ = ["gain_table", "lorenz_table", "plot_gain", "plot_lift", "plot_lorenz"]


def _ranked(actual: np.ndarray, score: np.ndarray) -> np.ndarray:
    """``actual`` in the order of descending score, ties broken pessimistically (smaller actual first)."""
    return actual[np.lexsort((actual, -score))]


def _check_bins(n_bins: int) -> None:
    if not (isinstance(n_bins, (int, np.integer)) and n_bins >= 1):
        raise DiagnosticsError(f"n_bins={n_bins!r} must be an integer >= 1, e.g. 10 for deciles.")


def gain_table(actual: Any, score: Any, *, n_bins: int = 10) -> pd.DataFrame:
    """Gain and lift per score quantile (deciles by default), top scores first.

    Parameters
    ----------
    actual : array-like
        The realised value per customer (churned flag, holdout spend, ...), >= 0 in total.
    score : array-like
        The model's score per customer, same order.
    n_bins : int, default 10
        Number of equally sized groups (sizes differ by at most one customer).

    Returns
    -------
    pandas.DataFrame
        One row per group: ``bin`` (1 = highest scores), ``customers``, ``customer_share_cumulative``,
        ``actual`` (sum in the group), ``actual_mean``, ``gain`` (cumulative share of the actual
        total), ``lift`` (group mean over the overall mean) and ``lift_cumulative``.
    """
    _check_bins(n_bins)
    a, s = aligned(actual, score, "gain_table")
    total = a.sum()
    if total <= 0:
        raise DiagnosticsError(
            "gain_table: the actual values sum to 0 or less (no churner, no spend); gain is a share of that total, "
            "so pick a window in which something happened."
        )
    ranked = _ranked(a, s)
    bins = np.arange(a.size) * n_bins // a.size  # equal sizes, top scores in bin 0
    sums = np.bincount(bins, weights=ranked, minlength=n_bins)
    counts = np.bincount(bins, minlength=n_bins)
    keep = counts > 0
    sums, counts = sums[keep], counts[keep]
    share = sums / total  # each bin's share of the total: the lifts as shares, so a tiny total cannot underflow
    return pd.DataFrame(
        {
            "bin": np.flatnonzero(keep) + 1,
            "customers": counts,
            "customer_share_cumulative": np.cumsum(counts) / a.size,
            "actual": sums,
            "actual_mean": sums / counts,
            "gain": np.cumsum(sums) / total,
            "lift": share / (counts / a.size),
            "lift_cumulative": np.cumsum(share) / (np.cumsum(counts) / a.size),
        }
    )


def lorenz_table(actual: Any, score: Any, *, n_points: int = 100) -> pd.DataFrame:
    """Lorenz curves of the actual values: sorted by themselves and by the model's score.

    Customers are taken from the smallest to the largest (actual, resp. score); the curves give the
    share of the actual total held by the first ``customer_share`` of them.

    Returns
    -------
    pandas.DataFrame
        ``n_points + 1`` rows: ``customer_share`` (0 .. 1), ``actual`` (the Lorenz curve: sorted by
        actual), ``model`` (the concentration curve: sorted by score). Their Gini coefficients
        (``1 - 2 * area``) are in ``attrs["gini_actual"]`` and ``attrs["gini_model"]``; the ratio is
        :func:`churnclv.metrics.normalized_gini`.
    """
    if not (isinstance(n_points, (int, np.integer)) and n_points >= 1):
        raise DiagnosticsError(f"n_points={n_points!r} must be an integer >= 1, e.g. 100.")
    a, s = aligned(actual, score, "lorenz_table")
    total = a.sum()
    if total <= 0:
        raise DiagnosticsError("lorenz_table: the actual values sum to 0 or less; a Lorenz curve needs a total.")
    # ascending order = the descending ranking read from its end
    curves = {
        "actual": np.concatenate([[0.0], np.cumsum(np.sort(a))]) / total,
        "model": np.concatenate([[0.0], np.cumsum(_ranked(a, s)[::-1])]) / total,
    }
    share = np.linspace(0.0, 1.0, n_points + 1)
    full = np.arange(a.size + 1) / a.size
    out = pd.DataFrame({"customer_share": share, **{k: np.interp(share, full, v) for k, v in curves.items()}})
    for k, v in curves.items():  # trapezoids on the exact curve, not on the sampled one
        out.attrs[f"gini_{k}"] = float(1.0 - (v[1:] + v[:-1]).sum() / a.size)
    return out


def plot_gain(actual: Any, score: Any, *, label: str = "model", n_bins: int = 10, ax: Axes | None = None) -> Axes:
    """Cumulative gain of :func:`gain_table` from (0, 0): the model's line, plus the diagonal (random).

    Call again with the same ``ax`` to add another model; the diagonal is drawn once.
    """
    table = gain_table(actual, score, n_bins=n_bins)
    ax = _axes(ax)
    reference_line(ax, [0, 1], [0, 1], "random")
    x = np.concatenate([[0.0], table["customer_share_cumulative"].to_numpy()])
    y = np.concatenate([[0.0], table["gain"].to_numpy()])
    ax.plot(x, y, marker="o", markersize=3, label=label)
    ax.set(xlabel="share of customers (highest score first)", ylabel="share of actual total", title="gain")
    ax.set(xlim=(0, 1), ylim=(0, 1.02))
    ax.legend(fontsize="small")
    return ax


def plot_lift(actual: Any, score: Any, *, n_bins: int = 10, ax: Axes | None = None) -> Axes:
    """Lift per group of :func:`gain_table` as bars (1 = as good as picking at random, dotted)."""
    table = gain_table(actual, score, n_bins=n_bins)
    ax = _axes(ax)
    ax.bar(table["bin"].to_numpy(), table["lift"].to_numpy(), color="#4477aa")
    ax.axhline(1.0, color="grey", linestyle=":")
    ax.set_xticks(table["bin"].to_numpy())
    ax.set(xlabel=f"score group (1 = top 1/{n_bins})", ylabel="lift (group mean / overall mean)", title="lift")
    return ax


def plot_lorenz(actual: Any, score: Any, *, label: str = "model", ax: Axes | None = None) -> Axes:
    """Lorenz curves of :func:`lorenz_table`: equality (dotted), actual (line 1), the model (line 2)."""
    table = lorenz_table(actual, score)
    ax = _axes(ax)
    share = table["customer_share"].to_numpy()
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="equality")
    ax.plot(share, table["actual"].to_numpy(), color="black", label=f"actual (Gini {table.attrs['gini_actual']:.2f})")
    ax.plot(share, table["model"].to_numpy(), label=f"{label} (Gini {table.attrs['gini_model']:.2f})")
    ax.set(xlabel="share of customers (smallest first)", ylabel="share of actual total", title="Lorenz curve")
    ax.set(xlim=(0, 1), ylim=(0, 1))
    ax.legend(fontsize="small")
    return ax
