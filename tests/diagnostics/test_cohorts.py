"""Cohort retention: a hand-checked month table, open periods left out, the heat map showing the matrix."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churnclv.diagnostics import DiagnosticsError, cohort_matrix, cohort_retention, plot_cohort_retention
from churnclv.features import FeatureConfig

TX = pd.DataFrame(
    {
        "customer_id": ["a", "a", "a", "b", "b", "c", "d", "e"],
        "ts": pd.to_datetime(
            [
                "2024-01-05",
                "2024-02-10",
                "2024-04-01",
                "2024-01-20",
                "2024-03-03",
                "2024-02-14",
                "2024-02-01",
                "2024-03-09",
            ]
        ),
        "amount": [10.0, 5.0, 7.0, 8.0, 9.0, 1.0, -4.0, 0.0],  # d only returned; e's line is free
    }
)


def test_month_cohorts_by_hand() -> None:
    t = cohort_retention(TX, "2024-03-31")
    assert t["cohort"].tolist() == ["2024-01", "2024-01", "2024-01", "2024-02", "2024-02"]
    assert t["period"].tolist() == [0, 1, 2, 0, 1]
    assert t["customers"].tolist() == [2, 2, 2, 1, 1]
    assert t["active"].tolist() == [2, 1, 1, 1, 0]
    np.testing.assert_allclose(t["retention"], [1.0, 0.5, 0.5, 1.0, 0.0])
    m = cohort_matrix(t)
    np.testing.assert_allclose(m.to_numpy(), [[1.0, 0.5, 0.5], [1.0, 0.0, np.nan]])


def test_a_running_period_is_left_out() -> None:
    t = cohort_retention(TX, "2024-03-30")  # March is not over
    assert list(zip(t["cohort"], t["period"], strict=True)) == [("2024-01", 0), ("2024-01", 1), ("2024-02", 0)]
    assert t["customers"].tolist() == [2, 2, 1]  # c's cohort size counts c, though March is open


def test_zero_amounts_count_when_configured() -> None:
    t = cohort_retention(TX, "2024-03-31", config=FeatureConfig(zero_amount_is_purchase=True))
    assert "2024-03" in set(t["cohort"])  # e joins, in March


def test_quarters_and_weeks() -> None:
    q = cohort_retention(TX, "2024-06-30", period="quarter")
    assert q["cohort"].tolist() == ["2024Q1", "2024Q1"] and q["active"].tolist() == [3, 1]
    w = cohort_retention(TX, "2024-01-21", period="week")
    assert w["cohort"].tolist() == ["2024-01-01", "2024-01-01", "2024-01-01", "2024-01-15"]  # Mondays


def test_heat_map_is_the_matrix() -> None:
    ax = plot_cohort_retention(TX, "2024-03-31")
    image = ax.images[0].get_array()
    np.testing.assert_allclose(image.filled(np.nan), [[1.0, 0.5, 0.5], [1.0, 0.0, np.nan]])
    assert image.mask[1, 2] and [t.get_text() for t in ax.get_yticklabels()] == ["2024-01", "2024-02"]
    assert sorted(t.get_text() for t in ax.texts) == ["0%", "100%", "100%", "50%", "50%"]


def test_bad_input_is_named() -> None:
    with pytest.raises(DiagnosticsError, match="period='year' is not one of"):
        cohort_retention(TX, "2024-03-31", period="year")
    with pytest.raises(DiagnosticsError, match="no purchase day on or before as_of=2023-01-01"):
        cohort_retention(TX, "2023-01-01")
    with pytest.raises(DiagnosticsError, match=r"missing column\(s\) \['amount'\]"):
        cohort_retention(TX.drop(columns="amount"), "2024-03-31")
