"""Tiers over time: the stacked mix is tier_summary per date; migration draws migration_matrix."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churnclv.diagnostics import (
    DiagnosticsError,
    migration_matrix,
    plot_tier_migration,
    plot_tier_mix,
    plot_tier_mix_over_time,
    tier_mix_over_time,
    tier_summary,
)

TIERS = ["Gold", "Silver", "Bronze"]
WEEK1 = pd.DataFrame(
    {
        "customer_id": ["a", "b", "c", "d"],
        "tier": ["Gold", "Silver", "Bronze", "Bronze"],
        "clv": [100.0, 50.0, 25.0, 25.0],
    }
)
WEEK2 = pd.DataFrame(
    {"customer_id": ["a", "b", "c", "e"], "tier": ["Gold", "Gold", "Silver", "Bronze"], "clv": [90.0, 60.0, 40.0, 10.0]}
)
SCORINGS = {"2024-01-14": WEEK2, "2024-01-07": WEEK1}  # out of order on purpose


def test_mix_over_time_is_the_summary_per_date() -> None:
    t = tier_mix_over_time(SCORINGS, tiers=TIERS)
    assert t["as_of"].tolist() == [pd.Timestamp("2024-01-07")] * 3 + [pd.Timestamp("2024-01-14")] * 3
    assert t["tier"].tolist() == TIERS * 2
    first = t[t["as_of"] == "2024-01-07"].drop(columns="as_of").reset_index(drop=True)
    pd.testing.assert_frame_equal(first, tier_summary(WEEK1, tiers=TIERS))
    np.testing.assert_allclose(t["customer_share"], [0.25, 0.25, 0.5, 0.5, 0.25, 0.25])
    np.testing.assert_allclose(t["clv_share"], [0.5, 0.25, 0.25, 0.75, 0.2, 0.05])


def test_stacked_bars_are_the_shares() -> None:
    ax = plot_tier_mix_over_time(SCORINGS, tiers=TIERS, share="clv_share")
    heights = [[p.get_height() for p in c] for c in ax.containers]
    np.testing.assert_allclose(heights, [[0.5, 0.75], [0.25, 0.2], [0.25, 0.05]])  # per tier, per date
    np.testing.assert_allclose([p.get_y() for p in ax.containers[2]], [0.75, 0.95])  # stacked
    assert [t.get_text() for t in ax.get_xticklabels()] == ["2024-01-07", "2024-01-14"]
    with pytest.raises(DiagnosticsError, match="share='clv' is not a share column"):
        plot_tier_mix_over_time(SCORINGS, share="clv")


def test_single_date_plots_reuse_the_house_plots() -> None:
    ax = plot_tier_mix(WEEK1, tiers=TIERS)
    np.testing.assert_allclose([p.get_height() for p in ax.containers[0]], [0.25, 0.25, 0.5])
    ax = plot_tier_migration(WEEK1, WEEK2, tiers=TIERS)
    shares = migration_matrix(WEEK1, WEEK2, tiers=TIERS).shares.to_numpy()
    np.testing.assert_allclose(ax.images[0].get_array(), np.nan_to_num(shares))
    assert shares[2, 1] == 1.0  # c: Bronze -> Silver; d and e are in one week only


def test_no_scoring_is_an_error() -> None:
    with pytest.raises(DiagnosticsError, match="no scoring given"):
        tier_mix_over_time({})
