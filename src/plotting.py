"""Plots for model evaluation and the tier report, and the tier report's files (:func:`write_report`). Each plot
takes ``ax=None`` and returns the Axes; pyplot is never used, so nothing touches a global figure (safe in servers
and tests)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from churnclv.models.tier_report import Migration, TierReport


def _axes(ax: Axes | None, size: tuple[float, float] = (5.0, 4.0)) -> Axes:
    if ax is not None:
        return ax
    return Figure(figsize=size, layout="constrained").add_subplot()


def plot_calibration(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]], n_bins: int = 10, ax: Axes | None = None
) -> Axes:
    """Observed churn rate against mean predicted probability, one line per model.

    ``curves`` maps a model name to ``(churned, p_churn)``.
    """
    ax = _axes(ax)
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfect")
    for name, (churned, p_churn) in curves.items():
        y, p = np.asarray(churned, float), np.asarray(p_churn, float)
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
    for name, (actual_values, score_values) in curves.items():
        actual, score = np.asarray(actual_values, float), np.asarray(score_values, float)
        order = np.argsort(-score, kind="stable")
        cum = np.concatenate([[0.0], np.cumsum(actual[order])]) / max(actual.sum(), 1e-12)
        ax.plot(np.linspace(0, 1, len(cum)), cum, label=name)
    ax.set(
        xlabel="share of customers (by score)",
        ylabel="share of actual total",
        title="gain",
        xlim=(0, 1),
        ylim=(0, 1.02),
    )
    ax.legend(fontsize="small")
    return ax


def plot_importance(importance: Mapping[str, float], top: int = 20, ax: Axes | None = None) -> Axes:
    """Horizontal bars of the ``top`` largest feature importances (e.g. LightGBM gain)."""
    ax = _axes(ax, (6.0, 0.3 * min(top, max(len(importance), 1)) + 1.5))
    items = sorted(importance.items(), key=lambda kv: kv[1], reverse=True)[:top][::-1]
    ax.barh([k for k, _ in items], [v for _, v in items], color="#4477aa")
    ax.set(xlabel="importance (gain)", title="feature importance")
    return ax


def plot_tier_mix(summary: pd.DataFrame, ax: Axes | None = None) -> Axes:
    """Grouped bars per tier: share of customers, of predicted CLV and (if present) of past revenue.

    Parameters
    ----------
    summary : pandas.DataFrame
        :func:`tier_summary` output.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new Figure (never pyplot) when omitted.
    """
    ax = _axes(ax, (7.0, 4.0))
    series = [
        ("customer_share", "customers"),
        ("clv_share", "predicted CLV"),
        ("past_spend_share", "past revenue"),
    ]
    series = [(c, label) for c, label in series if c in summary.columns]
    x = np.arange(len(summary))
    width = 0.8 / len(series)
    for i, (col, label) in enumerate(series):
        bars = ax.bar(x + (i - (len(series) - 1) / 2) * width, summary[col].to_numpy(dtype=float), width, label=label)
        ax.bar_label(bars, labels=[f"{v:.0%}" for v in summary[col].fillna(0)], fontsize=7)
    ax.set_xticks(x, summary["tier"].astype(str).tolist())
    ax.set_ylabel("share")
    ax.yaxis.set_major_formatter(lambda v, _pos: f"{v:.0%}")
    ax.set_title("Tier mix: customers and value by tier")
    ax.legend(frameon=False)
    return ax


def plot_migration(migration: Migration | pd.DataFrame, ax: Axes | None = None) -> Axes:
    """Heat map of tier migration (row shares), annotated with counts when available.

    Parameters
    ----------
    migration : Migration or pandas.DataFrame
        :func:`migration_matrix` output, or a row-share matrix.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new Figure (never pyplot) when omitted.
    """
    shares = migration.shares if isinstance(migration, Migration) else migration
    counts = migration.counts.to_numpy() if isinstance(migration, Migration) else None
    ax = _axes(ax, (5.5, 4.5))
    values = shares.to_numpy(dtype=float)
    image = ax.imshow(np.nan_to_num(values, nan=0.0), cmap="Blues", vmin=0.0, vmax=1.0)
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            text = "-" if np.isnan(values[i, j]) else f"{values[i, j]:.0%}"
            if counts is not None:
                text += f"\n{int(counts[i, j]):,}"
            ax.text(
                j,
                i,
                text,
                ha="center",
                va="center",
                fontsize=7,
                color="white" if np.nan_to_num(values[i, j]) > 0.6 else "black",
            )
    ax.set_xticks(range(values.shape[1]), [str(c) for c in shares.columns])
    ax.set_yticks(range(values.shape[0]), [str(r) for r in shares.index])
    ax.set_xlabel("current tier")
    ax.set_ylabel("previous tier")
    ax.set_title("Tier migration (row shares)")
    ax.figure.colorbar(image, ax=ax, shrink=0.8)
    return ax


def save(ax: Axes, path: Path | str, dpi: int = 110) -> Path:
    """Write the Axes' figure as PNG."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure = ax.get_figure(root=True)
    if figure is None:
        raise ValueError("save: the Axes belongs to no figure; draw it with a plot function of this module")
    figure.savefig(path, dpi=dpi)
    return path


def write_report(report: TierReport, out_dir: str | Path) -> dict[str, Path]:
    """Write the report as CSV and PNG files into ``out_dir`` (created if needed).

    Files: ``tier_summary.csv``, ``tier_mix.png`` and, with a migration,
    ``tier_migration_counts.csv``, ``tier_migration_shares.csv``, ``tier_migration.png``.

    Returns
    -------
    dict of str to pathlib.Path
        File name stem to the written path.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    paths["tier_summary"] = out / "tier_summary.csv"
    report.summary.to_csv(paths["tier_summary"], index=False)
    paths["tier_mix"] = save(plot_tier_mix(report.summary), out / "tier_mix.png")
    if report.migration is not None:
        for stem, df in (
            ("tier_migration_counts", report.migration.counts),
            ("tier_migration_shares", report.migration.shares),
        ):
            paths[stem] = out / f"{stem}.csv"
            df.to_csv(paths[stem])
        paths["tier_migration"] = save(plot_migration(report.migration), out / "tier_migration.png")
    return paths
