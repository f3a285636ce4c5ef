"""The factor on Gamma-Gamma's order values (``[scorer] order_value = "backtest"``): what the
backtest measures, the rule that applies it, and what it changes in BTYD's scores."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from churnclv.metrics import order_value_metrics
from churnclv.models.btyd import BTYDModel
from churnclv.models.scorer_config import ScorerConfig
from churnclv.training.selection import ORDER_VALUE_Z, select_order_value_factor


def _folds(ratios: list[float], se: float = 0.01, candidate: str = "btyd") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "candidate": candidate,
            "spend_value_ratio": ratios,
            "spend_value_ratio_se": se,
        }
    )


def test_the_ratio_is_realised_over_predicted_spend_per_purchase() -> None:
    labels = pd.DataFrame({"purchases": [2.0, 0.0, 1.0, 1.0], "spend": [100.0, 0.0, 40.0, 60.0]})  # 50 a purchase
    # the model expects twice the purchases at 20 a purchase: its count is off, its values 2.5x low
    scores = pd.DataFrame({"expected_purchases": [4.0, 1.0, 2.0, 1.0], "expected_spend": [80.0, 20.0, 40.0, 20.0]})
    got = order_value_metrics(labels, scores)
    assert got["spend_value_ratio"] == pytest.approx(2.5)
    # residuals spend - 50 * purchases: 0, 0, -10, +10 -> sqrt(200) / 4 purchases / 20 predicted
    assert got["spend_value_ratio_se"] == pytest.approx(np.sqrt(200.0) / 4.0 / 20.0)
    nothing = labels.assign(spend=0.0)
    assert np.isnan(order_value_metrics(nothing, scores)["spend_value_ratio"])


@given(
    st.lists(st.integers(0, 5), min_size=3, max_size=30),
    st.floats(1.0, 500.0),
    st.floats(0.2, 5.0),
)
def test_a_model_with_the_right_values_has_ratio_one_whatever_its_counts(counts, value, count_error) -> None:
    n = np.asarray(counts, dtype=float)
    if n.sum() == 0:
        n[0] = 1.0
    labels = pd.DataFrame({"purchases": n, "spend": value * n})
    scores = pd.DataFrame(
        {"expected_purchases": count_error * (n + 0.5), "expected_spend": value * count_error * (n + 0.5)}
    )
    got = order_value_metrics(labels, scores)
    assert got["spend_value_ratio"] == pytest.approx(1.0)
    assert got["spend_value_ratio_se"] == pytest.approx(0.0, abs=1e-9)  # every purchase at that value


def test_the_factor_is_the_folds_mean_ratio_when_it_stands_out_of_chance() -> None:
    # CDNOW 1998-01-31 H90's folds: BTYD's values 3-7 % low on each
    chosen = select_order_value_factor(_folds([0.963, 0.937, 0.926], se=0.012))
    assert chosen.factor == pytest.approx(0.942)
    assert "0.942 times BTYD's" in chosen.reason and "3 fold(s)" in chosen.reason
    # a small base: the same ratios are chance at a standard error of 10 % a fold
    noisy = select_order_value_factor(_folds([0.963, 0.937, 0.926], se=0.10))
    assert noisy.factor == 1.0 and noisy.reason.endswith("within chance")
    # the rule's edge: ORDER_VALUE_Z standard errors of the folds' mean
    se_mean = 0.02 / np.sqrt(2)
    assert select_order_value_factor(_folds([1 + 1.01 * ORDER_VALUE_Z * se_mean] * 2, se=0.02)).factor > 1.0
    assert select_order_value_factor(_folds([1 + 0.99 * ORDER_VALUE_Z * se_mean] * 2, se=0.02)).factor == 1.0


def test_the_factor_reads_btyd_rows_only_and_stays_one_without_evidence() -> None:
    both = pd.concat([_folds([0.9, 0.9], candidate="gbm"), _folds([1.0, 1.0])])
    assert select_order_value_factor(both).factor == 1.0  # gbm's rows do not count
    assert select_order_value_factor(_folds([np.nan, np.nan])).reason == "no fold had purchases and spend to compare"
    assert select_order_value_factor(pd.DataFrame({"candidate": ["btyd"]})).factor == 1.0  # an older backtest
    assert select_order_value_factor(pd.DataFrame()).reason == "the backtest measured no order values"  # none
    far = select_order_value_factor(_folds([3.0, 3.2]))
    assert far.factor == 1.0 and "not applied" in far.reason


def test_btyd_value_factor_scales_spend_and_clv_only() -> None:
    rng = np.random.default_rng(3)
    n = 400
    freq = rng.poisson(2.0, n).astype(float)
    T = rng.uniform(100, 300, n)
    frame = pd.DataFrame(
        {
            "customer_id": [f"{i:04d}" for i in range(n)],
            "frequency": freq,
            "recency": np.where(freq > 0, T * rng.uniform(0.1, 1.0, n), 0.0),
            "T": T,
            "monetary_value": np.where(freq > 0, rng.gamma(4.0, 10.0, n), 0.0),
        }
    )
    plain = BTYDModel().fit(frame)
    scaled = BTYDModel.from_dict({**plain.to_dict(), "init": {**plain.to_dict()["init"], "value_factor": 1.1}})
    a, b = plain.predict(frame, 90.0), scaled.predict(frame, 90.0)
    for same in ("p_alive", "p_churn", "expected_purchases", "expected_next_purchase_days"):
        np.testing.assert_array_equal(a[same], b[same])
    for moved in ("expected_order_value", "expected_spend", "clv"):
        np.testing.assert_allclose(b[moved], 1.1 * a[moved], rtol=1e-12)
    assert BTYDModel.from_dict(scaled.to_dict()).value_factor == 1.1  # saved with the model
    with pytest.raises(ValueError, match="value_factor"):
        BTYDModel(value_factor=0.0).fit(frame)


def test_the_scorer_setting_is_checked() -> None:
    assert ScorerConfig().order_value == "backtest" and ScorerConfig().order_value_factor == 1.0
    with pytest.raises(Exception, match="order_value"):
        ScorerConfig(order_value="gg")
    with pytest.raises(Exception, match="order_value_factor"):
        ScorerConfig(order_value_factor=-1.0)
