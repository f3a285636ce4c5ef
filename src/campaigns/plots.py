"""The campaign plots: uplift by tier with its intervals, and Qini curves. Each takes ``ax=None`` and
returns the Axes (a new Figure when omitted, never pyplot), like :mod:`churnclv.plotting`."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from churnclv.plotting import _axes

__all__ = ["plot_qini", "plot_uplift_by_tier"]

_LABELS = {
    "retention": "retention (share)",
    "purchases": "purchase days per customer",
    "revenue": "revenue per customer",
}


def plot_uplift_by_tier(tiers: pd.DataFrame, outcome: str = "revenue", ax: Axes | None = None) -> Axes:
    """Measured uplift (treated - holdout) per tier with its confidence interval.

    ``tiers`` is :attr:`CampaignEvaluation.tiers` (or ``cells``, labelled tier | action).
    """
    ax = _axes(ax, (6.0, 4.0))
    labels = (tiers["tier"] + (" | " + tiers["action"] if "action" in tiers.columns else "")).tolist()
    mid = tiers[f"{outcome}_uplift"].to_numpy(float)
    low, high = tiers[f"{outcome}_low"].to_numpy(float), tiers[f"{outcome}_high"].to_numpy(float)
    x = np.arange(len(labels))
    colors = ["#228833" if lo > 0 else "#cc3311" if hi < 0 else "#4477aa" for lo, hi in zip(low, high, strict=True)]
    ax.bar(x, mid, color=colors, alpha=0.8)
    center = (low + high) / 2
    ax.errorbar(x, center, yerr=[center - low, high - center], fmt="none", ecolor="black", capsize=4)
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set_xticks(x, labels, rotation=30 if len(labels) > 4 else 0, ha="right" if len(labels) > 4 else "center")
    ax.set(ylabel=f"uplift in {_LABELS.get(outcome, outcome)}", title=f"Uplift by tier: {outcome} (treated - holdout)")
    return ax


def plot_qini(curves: Mapping[str, pd.DataFrame], ax: Axes | None = None) -> Axes:
    """Qini curves (:func:`churnclv.campaigns.qini.qini_curve`), one per ranking, with the random line."""
    ax = _axes(ax, (5.5, 4.0))
    for i, (name, curve) in enumerate(curves.items()):
        ax.plot(curve["share"], curve["qini"], label=name)
        if i == 0:
            ax.plot(curve["share"], curve["random"], color="grey", linestyle=":", label="random")
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set(xlabel="share of customers (by score)", ylabel="incremental outcome", title="Qini curve", xlim=(0, 1))
    ax.legend(fontsize="small")
    return ax
