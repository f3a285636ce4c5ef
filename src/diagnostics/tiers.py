"""Tiers over time: the tier mix of several scorings side by side, and the migration between two.

The numbers come from :mod:`churnclv.models.tier_report` and the single-date pictures from
:mod:`churnclv.plotting` (``plot_tier_mix``, ``plot_migration``); this module adds the series. What
to look for: stable customer shares from week to week (the cut points are fixed at training, so a
drifting mix means the base changed, or the data feeding the scores did), a value share that stays
concentrated in the top tiers, and a migration matrix heavy on its diagonal (customers jumping two
tiers in a week point to noisy inputs).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from churnclv import plotting
from churnclv.diagnostics.inputs import DiagnosticsError
from churnclv.models.tier_report import migration_matrix, tier_summary
from churnclv.plotting import _axes

__all__ = ["plot_tier_migration", "plot_tier_mix", "plot_tier_mix_over_time", "tier_mix_over_time"]


def tier_mix_over_time(scorings: Mapping[Any, pd.DataFrame], *, tiers: Sequence[str] | None = None) -> pd.DataFrame:
    """:func:`~churnclv.models.tier_report.tier_summary` of each scoring, stacked.

    Parameters
    ----------
    scorings : mapping of date-like to pandas.DataFrame
        Score frames (``tier``, ``clv``; e.g. the weekly ``scores/dt=D`` partitions), keyed by their date.
    tiers : sequence of str, optional
        Tier order, top first (the scorer's ``tiers_.tier_names``); default: sorted names.

    Returns
    -------
    pandas.DataFrame
        ``as_of`` (Timestamp, ascending) then the columns of ``tier_summary``, one row per date and tier.
    """
    if not scorings:
        raise DiagnosticsError("tier_mix_over_time: no scoring given; pass {date: scores frame, ...}.")
    if tiers is None:
        tiers = sorted({str(t) for frame in scorings.values() for t in frame["tier"].dropna().unique()})
    parts = [tier_summary(frame, tiers=tiers).assign(as_of=pd.Timestamp(date)) for date, frame in scorings.items()]
    out = pd.concat(parts, ignore_index=True)
    out = out[["as_of", *[c for c in out.columns if c != "as_of"]]]
    # stable: the tier order within a date is kept
    return out.sort_values("as_of", kind="stable", ignore_index=True)


def plot_tier_mix_over_time(
    scorings: Mapping[Any, pd.DataFrame],
    *,
    tiers: Sequence[str] | None = None,
    share: str = "customer_share",
    ax: Axes | None = None,
) -> Axes:
    """Stacked bars per date of one share column of :func:`tier_mix_over_time` (top tier at the bottom).

    ``share`` is ``customer_share`` (default), ``clv_share`` or ``expected_spend_share``; the bars of
    tier ``i`` are ``ax.containers[i]``.
    """
    table = tier_mix_over_time(scorings, tiers=tiers)
    if share not in table.columns or not share.endswith("_share"):
        raise DiagnosticsError(
            f"share={share!r} is not a share column of tier_mix_over_time: {[c for c in table if c.endswith('_share')]}"
        )
    wide = table.pivot_table(index="as_of", columns="tier", values=share, aggfunc="first", dropna=False)
    order = list(dict.fromkeys(table["tier"]))
    wide = wide[order].fillna(0.0)
    ax = _axes(ax, (7.5, 4.0))
    x = np.arange(len(wide))
    bottom = np.zeros(len(wide))
    for tier in order:
        heights = wide[tier].to_numpy(dtype=float)
        ax.bar(x, heights, bottom=bottom, label=str(tier), width=0.8)
        bottom += heights
    ax.set_xticks(x, [f"{d:%Y-%m-%d}" for d in wide.index], rotation=45, ha="right")
    ax.yaxis.set_major_formatter(lambda v, _pos: f"{v:.0%}")
    ax.set(ylabel=share.replace("_", " "), title="tier mix over time", ylim=(0, 1.0))
    ax.legend(fontsize="small", frameon=False, bbox_to_anchor=(1.0, 1.0), loc="upper left")
    return ax


def plot_tier_mix(scores: pd.DataFrame, *, tiers: Sequence[str] | None = None, ax: Axes | None = None) -> Axes:
    """:func:`churnclv.plotting.plot_tier_mix` of one score frame (its numbers: ``tier_summary(scores)``)."""
    return plotting.plot_tier_mix(tier_summary(scores, tiers=tiers), ax=ax)


def plot_tier_migration(
    previous: pd.Series | pd.DataFrame,
    current: pd.Series | pd.DataFrame,
    *,
    tiers: Sequence[str] | None = None,
    ax: Axes | None = None,
) -> Axes:
    """:func:`churnclv.plotting.plot_migration` between two scorings (its numbers:
    :func:`~churnclv.models.tier_report.migration_matrix`)."""
    return plotting.plot_migration(migration_matrix(previous, current, tiers=tiers), ax=ax)
