"""The targeting picks, on held-out campaigns, the candidate whose contact rule earns most there, keeps the
simplest unless another is better by more than its error, and decides by expected profit; the profit of
a rule is measured against the campaign's holdout; policies are judged on a generated campaign's truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from churnclv.campaigns.candidates import VALUE_COLUMNS
from churnclv.campaigns.errors import CampaignError
from churnclv.campaigns.qini import policy_profit
from churnclv.campaigns.targeting import UPLIFT_MODEL, CampaignTargeting, PastCampaign, policy_table

COSTS = {"mail": 0.5, "call": 5.0}


def _campaign(
    name: str, seed: int, *, n: int = 4000, effect_of: str = "expected_spend", rho: float = 0.3
) -> PastCampaign:
    """A campaign whose true effect is ``rho x effect_of`` (a value column), with a 50 % holdout."""
    rng = np.random.default_rng(seed)
    ids = [f"{seed:02d}{i:06d}" for i in range(n)]
    values = {c: rng.lognormal(3.0, 0.8, n) for c in ("clv", "expected_spend")}
    features = pd.DataFrame({"customer_id": ids, "x1": np.log(values["clv"]), "x2": rng.normal(size=n)})
    scores = pd.DataFrame({"customer_id": ids, "action": np.where(rng.random(n) < 0.7, "mail", "call"), **values})
    treated = rng.random(n) < 0.5
    outcome = values["clv"] * rng.gamma(2.0, 0.5, n) + treated * rho * values[effect_of] + rng.normal(0, 5, n)
    return PastCampaign.from_frames(name, features, scores, treated, outcome)


def test_policy_profit_is_the_difference_of_arms_among_the_contacted() -> None:
    y = np.array([10.0, 4.0, 6.0, 0.0, 100.0])
    t = np.array([True, False, True, False, True])
    contact = np.array([True, True, True, True, False])
    # 4 contacted: treated mean 8, control mean 2, so 4 x (8 - 2) - 4 x 1.5
    assert policy_profit(y, t, contact, np.full(5, 1.5)) == pytest.approx(4 * 6 - 6)
    assert policy_profit(y, t, contact, np.full(5, 1.5), margin=0.5) == pytest.approx(4 * 3 - 6)
    assert policy_profit(y, t, np.zeros(5, bool), np.ones(5)) == 0.0
    assert np.isnan(policy_profit(y, t, np.array([True, False, True, False, False]), np.ones(5)))  # no control


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1e4), st.booleans(), st.floats(0, 50)), min_size=4, max_size=60))
def test_contacting_everyone_earns_the_whole_campaigns_uplift_minus_every_cost(rows) -> None:
    y, t, c = (np.array(v) for v in zip(*rows, strict=True))
    if t.all() or not t.any():
        return
    expected = len(y) * (y[t].mean() - y[~t].mean()) - c.sum()
    assert policy_profit(y, t, np.ones(len(y), bool), c) == pytest.approx(expected, rel=1e-9, abs=1e-6)


def test_the_candidate_the_effect_follows_wins_and_the_decision_follows_it() -> None:
    campaigns = [_campaign(f"c{k}", k) for k in range(3)]
    targeting = CampaignTargeting(candidates=("clv", "expected_spend")).fit(campaigns, COSTS)
    assert targeting.chosen_ == "expected_spend"
    switch = targeting.comparisons_.iloc[0]
    assert switch["switched"] and switch["gain"] > switch["gain_se"] > 0
    assert targeting.backtest_["held_out"].tolist() == ["c0", "c0", "c1", "c1", "c2", "c2"]
    assert targeting.fitted_ == pytest.approx(0.3, abs=0.1)  # the measured uplift per unit of expected_spend
    new = _campaign("new", 9)
    scores = new.customers[["customer_id", "action", "clv", "expected_spend"]]
    decisions = targeting.decide(new.customers, scores, COSTS)
    contacted = scores.set_index("customer_id").loc[decisions.loc[decisions["contact"], "customer_id"]]
    expected = targeting.fitted_ * contacted["expected_spend"] - contacted["action"].map(COSTS)
    assert (expected > 0).all() and len(contacted) > 0
    assert decisions["expected_profit"].is_monotonic_decreasing


def test_the_first_candidate_stays_unless_another_is_clearly_better() -> None:
    campaigns = [_campaign(f"c{k}", k, effect_of="clv") for k in range(3)]
    targeting = CampaignTargeting(candidates=("clv", "expected_spend")).fit(campaigns, COSTS)
    assert targeting.chosen_ == "clv"
    assert not targeting.comparisons_["switched"].any()
    summary = targeting.summary()
    assert summary["chosen"].tolist() == [True, False] and summary["customers"].tolist() == [12000, 12000]


def test_one_campaign_is_cross_fitted_on_thirds_of_its_customers() -> None:
    targeting = CampaignTargeting(candidates=("expected_spend",)).fit([_campaign("only", 1)], COSTS)
    assert targeting.backtest_["held_out"].tolist() == ["only fold 1", "only fold 2", "only fold 3"]
    assert targeting.backtest_["customers"].sum() == 4000


def test_bad_input_names_what_is_missing() -> None:
    campaigns = [_campaign("c0", 0)]
    with pytest.raises(CampaignError, match=r"missing columns \['clv_at_risk'\]"):
        CampaignTargeting(candidates=("clv_at_risk",)).fit(campaigns, COSTS)
    assert "clv_at_risk" in VALUE_COLUMNS  # a column the batch writes, missing from these scores
    with pytest.raises(CampaignError, match=r"no cost for actions \['call'\]"):
        CampaignTargeting(candidates=("clv",)).fit(campaigns, {"mail": 0.5})
    with pytest.raises(CampaignError, match="no past campaign"):
        CampaignTargeting().fit([], COSTS)
    c = campaigns[0].customers
    with pytest.raises(CampaignError, match="another order"):
        PastCampaign.from_frames("x", c[["customer_id", "x1"]], c[::-1], c["treated"], c["outcome"])


def test_policy_table_judges_on_the_truth() -> None:
    effect, cost = np.array([10.0, 3.0, -2.0, 1.0]), np.array([1.0, 1.0, 1.0, 2.0])
    table = policy_table(effect, cost, {"optimum": effect - cost > 0, "all": np.ones(4, bool)})
    assert table["true_profit"].tolist() == [11.0, 7.0]
    assert table["share_of_optimum"].tolist() == [1.0, pytest.approx(7 / 11)]
    with pytest.raises(CampaignError, match="flags 2 customers, not 4"):
        policy_table(effect, cost, {"short": [True, False]})


@pytest.mark.slow
def test_targeting_learns_from_evaluated_generated_campaigns(generated_campaign, evaluated_campaign) -> None:
    """From evaluations of generated campaigns (the notebook's path) to decisions, the X-learner included."""
    campaigns = []
    for seed in (31, 32):
        c = generated_campaign(seed, n_customers=2000, share=0.5)
        learned = evaluated_campaign(c)
        campaigns.append(learned.past)
    evaluation, features = learned.evaluation, learned.features
    assert len(campaigns[0].customers) == len(evaluation.customers)
    targeting = CampaignTargeting(
        candidates=("expected_spend", UPLIFT_MODEL), uplift_params={"num_boost_round": 50}, min_gain_se=0.0
    ).fit(campaigns, c.costs)
    assert set(targeting.backtest_["held_out"]) == {"c31", "c32"}
    assert np.isfinite(targeting.backtest_["profit"]).all()
    scores = c.scores.set_index("customer_id").loc[features["customer_id"]].reset_index()
    decisions = targeting.decide(features, scores, c.costs)
    assert len(decisions) == len(features) and decisions["contact"].any()


@pytest.mark.parametrize("column", ["revenue", "retention", "purchases", "tier", "outcome", "past_spend"])
def test_a_candidate_that_is_no_value_column_of_the_batch_is_refused(column: str) -> None:
    """Outcomes measured after the campaign would leak its result; a text is no value; a column the batch does
    not write could not be decided on: each is refused at fit, naming it and the allowed columns."""
    campaign = _campaign("c0", 0)
    campaign.customers["revenue"] = campaign.customers["outcome"]  # as an evaluation's customers carry it
    campaign.customers["tier"] = "Gold"
    with pytest.raises(CampaignError, match=rf"candidate '{column}' is neither 'uplift_model' nor.*'expected_spend'"):
        CampaignTargeting(candidates=("expected_spend", column)).fit([campaign], COSTS)


def test_an_action_that_is_no_contact_is_never_contacted_and_not_learned_from() -> None:
    """An action marked contact = false (cost 0, as the default no_contact) is never contacted whatever its
    expected profit, and its customers are left out of the learning; a free action (cost 0) is contacted."""
    costs = {**COSTS, "leave": 0.0, "free": 0.0}
    campaigns = []
    for k in range(2):
        c = _campaign(f"c{k}", k)
        n = len(c.customers)
        c.customers["action"] = np.where(
            np.arange(n) % 4 == 0, "leave", np.where(np.arange(n) % 4 == 1, "free", "mail")
        )
        campaigns.append(c)
    targeting = CampaignTargeting(candidates=("expected_spend",)).fit(campaigns, costs, ("leave",))
    assert targeting.no_contact_ == ("leave",)
    assert targeting.backtest_["customers"].sum() == 2 * 3000  # 4,000 each, the quarter whose action is leave out
    new = _campaign("new", 9).customers
    new["action"] = np.where(np.arange(len(new)) % 2 == 0, "leave", "free")
    decided = targeting.decide(new, new).set_index("customer_id").loc[new["customer_id"]]
    leave = (new["action"] == "leave").to_numpy()
    assert (decided["expected_profit"].to_numpy()[leave] > 0).all()  # profitable if it were a contact
    assert not decided["contact"].to_numpy()[leave].any()
    assert decided["contact"].to_numpy()[~leave].all()  # free: any positive uplift is profit
    ranked = targeting.decide(new, new)
    assert ranked["contact"].is_monotonic_decreasing and ranked.loc[ranked["contact"], "rank"].max() == (~leave).sum()
    # without the mark the same cost-0 action is contacted (what the default playbook did before)
    unmarked = CampaignTargeting(candidates=("expected_spend",)).fit(campaigns, costs)
    assert unmarked.decide(new, new)["contact"].all()
