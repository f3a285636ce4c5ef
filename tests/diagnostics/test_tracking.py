"""Tracking plots: repeat purchases over time against the BTYD model's unconditional expectation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import hyp2f1

from churnclv.diagnostics import (
    DiagnosticsError,
    expected_repeat_purchases,
    plot_purchases_over_time,
    purchases_over_time,
)

PARAMS = {"r": 0.25, "alpha": 30.0, "a": 0.8, "b": 2.4}  # the bgnbd fixture's


def bgnbd_ex(t: np.ndarray) -> np.ndarray:
    """E[X(t)] of BG/NBD (Fader, Hardie and Lee 2005, eq. 9), written out."""
    r, alpha, a, b = PARAMS.values()
    t = np.asarray(t, dtype=float)
    return (a + b - 1) / (a - 1) * (1 - (alpha / (alpha + t)) ** r * hyp2f1(r, b, a + b - 1, t / (alpha + t)))


TX = pd.DataFrame(
    {
        "customer_id": ["a", "a", "a", "a", "b", "b", "c", "c"],
        "ts": pd.to_datetime(
            [
                "2024-01-01 09:00",
                "2024-01-01 18:00",  # the same day: one purchase day
                "2024-01-03 12:00",
                "2024-01-09 12:00",
                "2024-01-02 12:00",
                "2024-01-12 12:00",
                "2024-01-20 12:00",  # c's first purchase is after as-of: not the model's customer
                "2024-01-21 12:00",
            ]
        ),
        "amount": [10.0, 5.0, -3.0, 7.0, 8.0, 9.0, 1.0, 1.0],  # a's 01-03 is a return, not a purchase
    }
)


def test_table_by_hand(bgnbd) -> None:
    t = purchases_over_time(bgnbd, TX, "2024-01-05", end="2024-01-14", time_unit="weeks")
    # periods from a's first purchase: 01-01..01-07 and 01-08..01-14
    assert t["start"].tolist() == [pd.Timestamp("2024-01-01"), pd.Timestamp("2024-01-08")]
    assert t["end"].tolist() == [pd.Timestamp("2024-01-07"), pd.Timestamp("2024-01-14")]
    assert t["holdout"].tolist() == [True, True]
    np.testing.assert_array_equal(t["actual"], [0, 2])  # a on 01-09, b on 01-12
    # a is 6 then 13 days old at the periods' ends, b 5 then 12
    expected = [bgnbd_ex(6) + bgnbd_ex(5), bgnbd_ex(13) + bgnbd_ex(12)]
    np.testing.assert_allclose(t["expected_cumulative"], expected, rtol=1e-10)
    np.testing.assert_allclose(t["expected"], np.diff(expected, prepend=0.0), rtol=1e-10)
    np.testing.assert_array_equal(t["actual_cumulative"], [0, 2])


def test_days_and_a_partial_last_period(bgnbd) -> None:
    t = purchases_over_time(bgnbd, TX, "2024-01-02", end="2024-01-10", time_unit="days")
    assert len(t) == 10 and t["holdout"].tolist() == [False, False] + [True] * 8
    assert t.loc[t["actual"] > 0, "start"].tolist() == [pd.Timestamp("2024-01-09")]
    w = purchases_over_time(bgnbd, TX, "2024-01-02", end="2024-01-10", time_unit="weeks")
    assert w["end"].iloc[-1] == pd.Timestamp("2024-01-10")  # cut at end
    assert w["expected_cumulative"].iloc[-1] == pytest.approx(bgnbd_ex(9) + bgnbd_ex(8))


def test_expected_repeat_purchases_is_eq_9(bgnbd) -> None:
    t = np.array([0.0, 1.0, 30.0, 365.0])
    np.testing.assert_allclose(expected_repeat_purchases(bgnbd, t), np.r_[0.0, bgnbd_ex(t[1:])], rtol=1e-10)


def test_plots_draw_the_columns(bgnbd) -> None:
    args = (bgnbd, TX, "2024-01-03")
    table = purchases_over_time(*args, end="2024-01-14", time_unit="days")
    ax = plot_purchases_over_time(*args, end="2024-01-14", time_unit="days")
    np.testing.assert_allclose(ax.lines[0].get_ydata(), table["actual_cumulative"])
    np.testing.assert_allclose(ax.lines[1].get_ydata(), table["expected_cumulative"])
    assert ax.lines[2].get_xdata()[0] == 3  # the as-of line after the third day
    ax = plot_purchases_over_time(*args, cumulative=False, end="2024-01-14", time_unit="days")
    assert ax.get_ylabel() == "incremental repeat purchase days"
    np.testing.assert_allclose(ax.lines[0].get_ydata(), table["actual"])
    np.testing.assert_allclose(ax.lines[1].get_ydata(), table["expected"])


def test_no_customer_before_as_of_is_an_error(bgnbd) -> None:
    with pytest.raises(DiagnosticsError, match="no customer's first purchase is on or before as_of=2023-12-31"):
        purchases_over_time(bgnbd, TX, "2023-12-31")


def test_cdnow_tracks_the_base(cdnow) -> None:
    """Fader, Hardie and Lee (2005), fig. 2: BG/NBD tracks CDNOW's cumulative repeat purchases, over
    the 39 calibration weeks and the 39 weeks after."""
    from churnclv.diagnostics.inputs import purchase_days

    t = purchases_over_time(cdnow.model, cdnow.transactions, "1997-09-30", config=cdnow_config())
    assert len(t) == 78 and t["holdout"].sum() == 39
    days = purchase_days(cdnow.transactions, cdnow_config())
    assert t["actual_cumulative"].iloc[-1] == len(days) - days["customer_id"].nunique()  # repeat days
    at_as_of = t[~t["holdout"]].iloc[-1]
    assert at_as_of["expected_cumulative"] == pytest.approx(at_as_of["actual_cumulative"], rel=0.03)
    assert t["expected_cumulative"].iloc[-1] == pytest.approx(t["actual_cumulative"].iloc[-1], rel=0.06)
    # the features' purchase days are the same rule
    n_days = days[days["day"] <= "1997-09-30"].groupby("customer_id").size()
    feats = cdnow.features.set_index("customer_id")
    np.testing.assert_array_equal(n_days.reindex(feats.index), feats["frequency"] + 1)


def cdnow_config():
    from churnclv.features import FeatureConfig

    return FeatureConfig(zero_amount_is_purchase=True)
