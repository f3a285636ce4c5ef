from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError

from churnclv.models.baselines import RecencyBaseline, RFMBaseline


def _frame(n: int = 2_000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    silent = rng.integers(0, 400, n).astype(float)
    silent[:50] = np.nan  # sign-ups with no purchase
    churn_p = 1 / (1 + np.exp(-(np.nan_to_num(silent, nan=300) - 150) / 40))
    churned = rng.uniform(size=n) < churn_p
    return pd.DataFrame(
        {
            "days_since_last_purchase": silent,
            "tenure_days": np.full(n, 500.0),
            "n_purchase_days": rng.integers(0, 20, n),
            "net_spend": rng.gamma(2, 50, n),
            "churned": churned,
            "purchases": np.where(churned, 0, rng.poisson(2, n)),
            "spend": np.where(churned, 0.0, rng.gamma(2, 30, n)),
        }
    )


@pytest.mark.parametrize("model", [RecencyBaseline(), RFMBaseline()])
def test_baselines_learn_recency_signal(model) -> None:
    train, test = _frame(seed=0), _frame(seed=1)
    pred = model.fit(train).predict(test)
    assert list(pred.columns) == ["p_churn", "expected_purchases", "expected_spend"]
    assert pred["p_churn"].between(0, 1).all() and np.isfinite(pred.to_numpy()).all()
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(test["churned"], pred["p_churn"]) > 0.75
    # one row scores like the batch
    assert model.predict(test.iloc[[5]]).iloc[0].equals(pred.iloc[5])


def test_not_fitted() -> None:
    with pytest.raises(NotFittedError):
        RFMBaseline().predict(_frame(10))
