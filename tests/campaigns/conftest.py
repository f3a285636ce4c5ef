"""A generated campaign for the campaign tests: a small world, rule-based tiers and actions from the
history (no model fit: the tests are about measuring, not scoring), a holdout plan and its simulation."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from churnclv.campaigns.evaluate import campaign_outcomes, evaluate_campaign
from churnclv.campaigns.holdout import assign_holdout
from churnclv.campaigns.targeting import PastCampaign
from churnclv.features import compute_features
from churnclv.generate import generate_world
from churnclv.generator.campaign import CampaignEffect, simulate_campaign
from churnclv.generator.world import WorldConfig

AS_OF = pd.Timestamp("2025-06-30")
HORIZON = 90
COSTS = {"call": 5.0, "mail": 0.5}


def make_campaign(
    seed: int,
    *,
    effect: CampaignEffect | None = None,
    n_customers: int = 3000,
    share: float = 0.1,
    log_missing: float = 0.1,
    log_extra: float = 0.05,
) -> SimpleNamespace:
    """A world, its scores (tier by past spend, action by value), the plan and the simulated campaign."""
    world = generate_world(
        WorldConfig(
            n_customers=n_customers,
            seed=seed,
            start=pd.Timestamp("2024-01-01"),
            end=pd.Timestamp("2025-12-31"),
            signup_days=500,
        )
    )
    day_after = AS_OF + pd.Timedelta(days=1)
    history = world.transactions[world.transactions["ts"] < day_after]
    known = world.customers[world.customers["signup_ts"] < day_after]
    spend = known["customer_id"].map(history.groupby("customer_id")["amount"].sum()).fillna(0.0)
    rank = spend.rank(method="first", pct=True).to_numpy()
    scores = pd.DataFrame(
        {
            "customer_id": known["customer_id"].to_numpy(),
            "tier": np.where(rank > 2 / 3, "Gold", np.where(rank > 1 / 3, "Silver", "Bronze")),
            "action": np.where(rank > 0.5, "call", "mail"),
            "past_spend": spend.to_numpy(),
            "expected_spend": spend.to_numpy(),  # a value column the batch writes: past spend stands in for it
        }
    )
    campaign = f"c{seed}"
    plan = assign_holdout(scores, campaign, share=share)
    sim = simulate_campaign(
        world,
        AS_OF,
        plan.assign(action=scores["action"].to_numpy()),
        campaign=campaign,
        horizon_days=HORIZON,
        effect=effect,
        seed=seed,
        log_missing=log_missing,
        log_extra=log_extra,
    )
    return SimpleNamespace(
        world=world, scores=scores, plan=plan, sim=sim, campaign=campaign, as_of=AS_OF, horizon=HORIZON, costs=COSTS
    )


@pytest.fixture(scope="session")
def generated_campaign() -> Callable[..., SimpleNamespace]:
    """:func:`make_campaign`."""
    return make_campaign


def learned_from(c: SimpleNamespace) -> SimpleNamespace:
    """A generated campaign evaluated against its holdout and joined with the features of its as-of (the
    notebook's path): ``past`` (the PastCampaign), ``evaluation`` and ``features``."""
    history = c.world.transactions[c.world.transactions["ts"] < c.as_of + pd.Timedelta(days=1)]
    data = {"transactions": pd.concat([history, c.sim.transactions]), "customers": c.world.customers}
    outcomes = campaign_outcomes(data, c.as_of, c.horizon, known_at=c.sim.end)
    evaluation = evaluate_campaign(
        c.scores, c.plan, c.sim.contact_log, outcomes, campaign=c.campaign, as_of=c.as_of, horizon_days=c.horizon
    )
    features = compute_features({"transactions": history, "customers": c.world.customers}, c.as_of)
    return SimpleNamespace(
        past=PastCampaign.from_evaluation(evaluation, features), evaluation=evaluation, features=features
    )


@pytest.fixture(scope="session")
def evaluated_campaign() -> Callable[[SimpleNamespace], SimpleNamespace]:
    """:func:`learned_from`."""
    return learned_from
