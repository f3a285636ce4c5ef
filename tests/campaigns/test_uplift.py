"""The uplift model learns who responds from one campaign and ranks another campaign's customers by
their true effect; it persists as JSON plus LightGBM text; contact decisions follow expected profit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churnclv.campaigns.errors import CampaignError
from churnclv.campaigns.uplift import UpliftModel, contact_decisions, evaluate_uplift
from churnclv.features import compute_features


def _training_set(c) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, pd.DataFrame]:
    day_after = c.as_of + pd.Timedelta(days=1)
    history = c.world.transactions[c.world.transactions["ts"] < day_after]
    features = compute_features({"transactions": history, "customers": c.world.customers}, c.as_of)
    frame = features.merge(c.plan[["customer_id", "holdout"]], on="customer_id")
    window = c.sim.transactions.groupby("customer_id")["amount"].sum()
    y = frame["customer_id"].map(window).fillna(0.0).to_numpy()
    truth = frame[["customer_id"]].merge(c.sim.truth, on="customer_id", how="left")
    return frame.drop(columns=["holdout"]), ~frame["holdout"].to_numpy(), y, truth


@pytest.mark.slow
def test_x_learner_ranks_a_held_out_campaign_by_true_effect(generated_campaign, tmp_path) -> None:
    train = _training_set(generated_campaign(21, share=0.5, n_customers=4000))
    test = _training_set(generated_campaign(22, share=0.5, n_customers=4000))
    model = UpliftModel(learner="x", num_boost_round=200, seed=1).fit(train[0], train[1], train[2])
    predicted = model.predict(test[0])
    true_effect = test[3]["effect_spend"].to_numpy()
    # measured: correlation 0.11 (a random ranking: 0 +- 0.02); the top 30 % have 2.2 times the mean true effect
    assert np.corrcoef(predicted, true_effect)[0, 1] > 0.06
    top = np.argsort(-predicted)[: int(0.3 * len(predicted))]
    assert true_effect[top].mean() > 1.5 * true_effect.mean()
    metrics = evaluate_uplift(predicted, test[1], test[2])
    assert set(metrics) == {"qini", "uplift_at_10", "uplift_at_20", "uplift_at_30"}
    again = UpliftModel.load(model.save(tmp_path / "uplift.json"))
    assert np.allclose(again.predict(test[0]), predicted)


def test_uplift_model_needs_both_arms() -> None:
    X = pd.DataFrame({"customer_id": [str(i) for i in range(50)], "x": np.arange(50.0)})
    with pytest.raises(CampaignError, match="at least 20 in each"):
        UpliftModel().fit(X, np.r_[np.ones(45, bool), np.zeros(5, bool)], np.ones(50))


def test_contact_decisions_by_expected_profit() -> None:
    out = contact_decisions(["a", "b", "c"], [10.0, 2.0, -1.0], ["call", "mail", "mail"], {"call": 5, "mail": 0.5})
    assert out["customer_id"].tolist() == ["a", "b", "c"]
    assert out["expected_profit"].tolist() == [5.0, 1.5, -1.5]
    assert out["contact"].tolist() == [True, True, False]
    half = contact_decisions(["a"], [10.0], ["call"], {"call": 5}, margin=0.4)
    assert not half["contact"].iloc[0]  # 0.4 x 10 - 5 < 0
    with pytest.raises(CampaignError, match="no cost for actions"):
        contact_decisions(["a"], [1.0], ["sms"], {"call": 5})


def test_an_action_that_is_no_contact_is_never_contacted_though_free() -> None:
    costs = {"call": 5.0, "none": 0.0, "free": 0.0}
    out = contact_decisions(["a", "b", "c"], [10.0, 8.0, 1.0], ["call", "none", "free"], costs, no_contact={"none"})
    assert out.set_index("customer_id")["contact"].to_dict() == {"a": True, "b": False, "c": True}
    assert out.set_index("customer_id").loc["b", "expected_profit"] == 8.0  # what a contact would earn, not taken
    assert out["customer_id"].tolist() == ["a", "c", "b"] and out["rank"].tolist() == [1, 2, 3]  # contacts first
