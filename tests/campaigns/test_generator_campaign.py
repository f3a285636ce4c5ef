"""The generated campaign: both arms come from one simulator, its truth matches what is realised, and
the null campaign has no effect."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churnclv.generator.campaign import CampaignEffect


def test_realised_window_matches_the_truth_in_each_arm(generated_campaign) -> None:
    c = generated_campaign(8, share=0.5, n_customers=4000, log_missing=0.0, log_extra=0.0)
    spend = c.sim.transactions.groupby("customer_id")["amount"].sum()
    truth = c.sim.truth.set_index("customer_id")
    assert truth["response"].value_counts(normalize=True)["responder"] == pytest.approx(0.3, abs=0.06)
    for contacted in (True, False):
        arm = truth[truth["treated"] == contacted]
        realised = arm.index.map(spend).fillna(0.0).to_numpy()
        expected = arm["spend_treated" if contacted else "spend_control"].to_numpy()
        se = realised.std(ddof=1) / np.sqrt(len(realised))
        assert abs(realised.mean() - expected.mean()) < 4 * se
    # the window starts the day after the as-of and no line is after the world's end
    assert c.sim.transactions["ts"].min() >= c.as_of + pd.Timedelta(days=1)
    assert c.sim.transactions["ts"].max() <= c.world.config.end
    assert not set(c.sim.transactions["order_id"]) & set(c.world.transactions["order_id"])
    log = c.sim.contact_log
    assert len(log) == int(truth["treated"].sum()) and set(log["customer_id"]) == set(truth.index[truth["treated"]])


def test_null_campaign_has_no_true_effect(generated_campaign) -> None:
    c = generated_campaign(9, effect=CampaignEffect.none())
    truth = c.sim.truth
    assert (truth[["effect_spend", "effect_retention", "effect_purchases"]] == 0).all().all()
    assert (truth["response"] == "neutral").all()


def test_effect_and_log_noise_are_checked(generated_campaign) -> None:
    with pytest.raises(ValueError, match=r"sum <= 0\.5"):
        CampaignEffect(responder_share=0.4, annoyed_share=0.2)
    c = generated_campaign(10, log_missing=0.3, log_extra=0.2)
    treated = int(c.sim.truth["treated"].sum())
    logged = c.sim.contact_log["customer_id"]
    known = logged[logged.isin(c.sim.truth["customer_id"])].drop_duplicates()
    assert len(known) == pytest.approx(0.7 * treated, rel=0.08)
    assert logged.str.startswith("X").any() and logged.duplicated().any()
