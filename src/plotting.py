"""Plots for model evaluation. Each takes ``ax=None`` and returns the Axes; pyplot is never used,
so nothing touches a global figure (safe in servers and tests)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure


def _axes(ax: Axes | None, size: tuple[float, float] = (5.0, 4.0)) -> Axes:
    if ax is not None:
        return ax
    return Figure(figsize=size, layout="constrained").add_subplot()


def plot_calibration(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], n_bins: int = 10,
                     ax: Axes | None = None) -> Axes:
    """Observed churn rate against mean predicted probability, one line per model.

    ``curves`` maps a model name to ``(churned, p_churn)``.
    """
    ax = _axes(ax)
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfect")
    for name, (y, p) in curves.items():
        y, p = np.asarray(y, float), np.asarray(p, float)
        edges = np.quantile(p, np.linspace(0, 1, n_bins + 1))
        idx = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, n_bins - 1)
        xs = [p[idx == b].mean() for b in range(n_bins) if (idx == b).any()]
        ys = [y[idx == b].mean() for b in range(n_bins) if (idx == b).any()]
        ax.plot(xs, ys, marker="o", label=name)
    ax.set(xlabel="predicted P(churn)", ylabel="observed churn rate", title="calibration", xlim=(0, 1), ylim=(0, 1))
    ax.legend(fontsize="small")
    return ax


def plot_gain(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], ax: Axes | None = None) -> Axes:
    """Cumulative share of the actual total captured when customers are taken by descending score.

    ``curves`` maps a model name to ``(actual, score)``; for churn pass the churned flag and p_churn,
    for spend the realized spend and the expected spend.
    """
    ax = _axes(ax)
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="random")
    for name, (actual, score) in curves.items():
        actual, score = np.asarray(actual, float), np.asarray(score, float)
        order = np.argsort(-score, kind="stable")
        cum = np.concatenate([[0.0], np.cumsum(actual[order])]) / max(actual.sum(), 1e-12)
        ax.plot(np.linspace(0, 1, len(cum)), cum, label=name)
    ax.set(xlabel="share of customers (by score)", ylabel="share of actual total", title="gain", xlim=(0, 1), ylim=(0, 1.02))
    ax.legend(fontsize="small")
    return ax


def plot_importance(importance: Mapping[str, float], top: int = 20, ax: Axes | None = None) -> Axes:
    """Horizontal bars of the ``top`` largest feature importances (e.g. LightGBM gain)."""
    ax = _axes(ax, (6.0, 0.3 * min(top, max(len(importance), 1)) + 1.5))
    items = sorted(importance.items(), key=lambda kv: kv[1], reverse=True)[:top][::-1]
    ax.barh([k for k, _ in items], [v for _, v in items], color="#4477aa")
    ax.set(xlabel="importance (gain)", title="feature importance")
    return ax


def save(ax: Axes, path: Path | str, dpi: int = 110) -> Path:
    """Write the Axes' figure as PNG."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ax.figure.savefig(path, dpi=dpi)
    return path
