"""The monitor's plots, drawn from ``monitor.json``'s rows (ax=None, return the Axes, no pyplot state)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

__all__ = ["plot_decile_calibration", "plot_group_revenue", "plot_psi"]


def _axes(ax: Axes | None, size: tuple[float, float]) -> Axes:
    return ax if ax is not None else Figure(figsize=size, layout="constrained").add_subplot()


def plot_decile_calibration(deciles: Sequence[dict[str, Any]], title: str = "", ax: Axes | None = None) -> Axes:
    """Realised churn rate against mean predicted ``p_churn`` per decile (rows of
    :func:`churnclv.monitoring.quality.calibration_deciles`)."""
    ax = _axes(ax, (5.0, 4.0))
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfect")
    ax.plot([d["mean_p_churn"] for d in deciles], [d["realized_churn"] for d in deciles], marker="o", label="deciles")
    ax.set(
        xlabel="mean predicted P(churn)",
        ylabel="realised churn rate",
        title=title or "calibration",
        xlim=(0, 1),
        ylim=(0, 1),
    )
    ax.legend(fontsize="small")
    return ax


def plot_group_revenue(
    rows: Sequence[dict[str, Any]], by: str = "tier", title: str = "", ax: Axes | None = None
) -> Axes:
    """Per tier (or action): share of customers and share of the realised revenue, side by side."""
    ax = _axes(ax, (6.0, 4.0))
    names = [str(r[by]) for r in rows]
    x = np.arange(len(names))
    ax.bar(x - 0.2, [r["share"] for r in rows], width=0.4, label="customers", color="#4477aa")
    ax.bar(x + 0.2, [r["revenue_share"] or 0.0 for r in rows], width=0.4, label="realised revenue", color="#ee6677")
    ax.set_xticks(x, names, rotation=30, ha="right")
    ax.set(ylabel="share", title=title or f"realised revenue by {by}")
    ax.legend(fontsize="small")
    return ax


def plot_psi(rows: Sequence[dict[str, Any]], threshold: float, top: int = 20, ax: Axes | None = None) -> Axes:
    """Horizontal bars of the ``top`` largest PSIs (rows of :func:`churnclv.monitoring.drift.column_drift`),
    with the threshold as a line."""
    items = sorted(rows, key=lambda r: r["psi"], reverse=True)[:top][::-1]
    ax = _axes(ax, (6.0, 0.3 * max(len(items), 1) + 1.5))
    colors = ["#ee6677" if r["psi"] > threshold else "#4477aa" for r in items]
    ax.barh([r["column"] for r in items], [r["psi"] for r in items], color=colors)
    ax.axvline(threshold, color="grey", linestyle=":", label=f"max_psi {threshold:g}")
    ax.set(xlabel="PSI (this week vs reference)", title="feature drift")
    ax.legend(fontsize="small")
    return ax
