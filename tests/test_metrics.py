from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from churnclv.metrics import (
    MetricsInputError,
    aggregate_pct_error,
    all_metrics,
    churn_metrics,
    expected_calibration_error,
    normalized_gini,
    order_value_metrics,
    spend_metrics,
    top_decile_capture,
)


def test_perfect_and_random_churn_ranking() -> None:
    y = np.array([0, 0, 1, 1])
    assert churn_metrics(y, [0.1, 0.2, 0.8, 0.9])["churn_auc"] == 1.0
    assert churn_metrics(y, [0.9, 0.8, 0.2, 0.1])["churn_auc"] == 0.0


def test_calibration_error_zero_when_rates_match() -> None:
    y = np.array([0] * 8 + [1] * 2 + [1] * 8 + [0] * 2)
    p = np.array([0.2] * 10 + [0.8] * 10)
    assert expected_calibration_error(y, p) == pytest.approx(0.0)
    assert expected_calibration_error(y, np.full(20, 0.9)) == pytest.approx(0.4)


def test_gini_and_capture() -> None:
    t = np.array([0, 0, 0, 0, 0, 0, 0, 0, 0, 100.0])
    assert normalized_gini(t, t) == pytest.approx(1.0)
    assert normalized_gini(t, np.zeros(10)) <= 0.0
    assert top_decile_capture(t, t) == 1.0
    assert top_decile_capture(t, -t) == 0.0
    assert aggregate_pct_error([10, 10], [11, 11]) == pytest.approx(10.0)


def test_nan_predictions_are_refused() -> None:
    with pytest.raises(ValueError, match="non-finite"):
        spend_metrics([1.0, 2.0], [np.nan, 1.0])


@settings(max_examples=min(50, settings.default.max_examples), deadline=None)
@given(st.lists(st.floats(0, 1e4), min_size=3, max_size=50), st.lists(st.floats(0, 1), min_size=3, max_size=50))
def test_gini_bounded(values: list[float], preds: list[float]) -> None:
    n = min(len(values), len(preds))
    t, p = np.array(values[:n]), np.array(preds[:n])
    g = normalized_gini(t, p)
    if t.sum() == 0 or np.all(t == t[0]):
        assert np.isnan(g)
    elif np.isnan(g):  # only when the actuals are equal to rounding
        assert np.ptp(t) <= 1e-9 * t.max()
    else:
        assert -1.0 - 1e-9 <= g <= 1.0 + 1e-9
        assert normalized_gini(t, t) == pytest.approx(1.0)


def test_gini_is_nan_when_every_actual_is_equal() -> None:
    assert np.isnan(normalized_gini([5.0, 5.0, 5.0], [0.1, 0.2, 0.3]))


def test_frames_of_other_customers_or_order_are_refused_not_paired_by_position() -> None:
    labels = pd.DataFrame(
        {"customer_id": ["001", "002", "003", "004"], "churned": [1, 1, 0, 0], "purchases": [0, 0, 2, 3]}
    ).assign(spend=[0.0, 0.0, 40.0, 90.0])
    scores = pd.DataFrame(
        {"customer_id": labels["customer_id"], "p_churn": [0.9, 0.8, 0.2, 0.1], "expected_purchases": [0.1, 0.2, 2, 3]}
    ).assign(expected_spend=[1.0, 2.0, 40.0, 80.0])
    assert all_metrics(labels, scores)["churn_auc"] == 1.0
    shuffled = scores.iloc[::-1].reset_index(drop=True)  # e.g. scored from a snapshot in another order
    for metric in (all_metrics, order_value_metrics):
        with pytest.raises(
            MetricsInputError, match=r"4 of 4 rows differ, the first at row 0.*labels.merge\(scores"
        ) as e:
            metric(labels, shuffled)
        assert "001" not in str(e.value)  # no customer ids in errors
    pairs = labels.merge(shuffled, on="customer_id")
    assert all_metrics(pairs, pairs)["churn_auc"] == 1.0
