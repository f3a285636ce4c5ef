"""Targeting a retention campaign: by churn score, by CLV at risk, by the uplift model, against the true optimum.

Two generated worlds of the same kind: on the first, a past campaign with a 50 % holdout teaches the
X-learner who responds; on the second, a scorer (BTYD + LightGBM, trained on its history) scores the
base at the as-of and every policy picks whom to contact. The policies are judged on the truth: each
customer's true expected effect on revenue over the horizon (:mod:`churnclv.generator.campaign`),
so profit = sum over contacted customers of ``margin x true effect - cost of the scores' action``
(the playbook's costs). The churn-score and CLV-at-risk policies contact as many customers as the
uplift model decides to (the budget it chose); the optimum contacts exactly the customers whose true
profit is positive; the last rows give every ranking the optimum's budget.

    .venv/bin/python bench/uplift.py --customers 6000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from churnclv.campaigns.config import CampaignSettings
from churnclv.campaigns.holdout import assign_holdout
from churnclv.campaigns.uplift import UpliftModel, contact_decisions
from churnclv.features import compute_features, compute_training_frame
from churnclv.generate import generate_world
from churnclv.generator.campaign import simulate_campaign
from churnclv.generator.world import World, WorldConfig
from churnclv.models.scorer import Scorer
from churnclv.models.scorer_config import ScorerConfig
from churnclv.models.tier_config import default_tier_config

AS_OF = pd.Timestamp("2025-06-30")
HORIZON = 90


def _history(world: World, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    day_after = AS_OF + pd.Timedelta(days=1)
    for name in ("transactions", "events"):
        table = getattr(world, name)
        table[table["ts"] < day_after].to_parquet(folder / f"{name}.parquet")
    world.customers.to_parquet(folder / "customers.parquet")
    return folder


def _scored(world: World, folder: Path, rounds: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Features and scores at the as-of from a scorer trained on the world's history."""
    train = compute_training_frame(folder, AS_OF, HORIZON, n_cutoffs=3)
    features = compute_features(folder, AS_OF)
    scorer = Scorer(config=ScorerConfig(horizon_days=HORIZON, gbm_rounds=rounds, seed=1)).fit(
        train, features, as_of=AS_OF
    )
    return features, scorer.score(features, as_of=AS_OF, reasons=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--customers", type=int, default=6000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--gbm-rounds", type=int, default=100)
    ap.add_argument("--margin", type=float, default=CampaignSettings().margin)
    args = ap.parse_args()
    costs = default_tier_config().playbook.costs
    t0 = time.perf_counter()
    config = WorldConfig(n_customers=args.customers, seed=args.seed, start=pd.Timestamp("2023-07-01"))
    past, target = generate_world(config), generate_world(WorldConfig(**{**config.__dict__, "seed": args.seed + 1}))
    with tempfile.TemporaryDirectory() as tmp:
        f_past, s_past = _scored(past, _history(past, Path(tmp) / "past"), args.gbm_rounds)
        f_now, s_now = _scored(target, _history(target, Path(tmp) / "now"), args.gbm_rounds)

    # the past campaign (50 % holdout) teaches the uplift model
    plan = assign_holdout(s_past, "past", share=0.5)
    sim = simulate_campaign(past, AS_OF, plan.assign(action=s_past["action"].to_numpy()), horizon_days=HORIZON, seed=1)
    y = f_past["customer_id"].map(sim.transactions.groupby("customer_id")["amount"].sum()).fillna(0.0)
    treated = ~f_past[["customer_id"]].merge(plan, on="customer_id")["holdout"].to_numpy()
    model = UpliftModel(learner="x", seed=args.seed).fit(f_past, treated, y.to_numpy())

    # the truth of the target world: every customer's true effect (whoever is contacted)
    everyone = s_now[["customer_id"]].assign(holdout=False, action=s_now["action"].to_numpy())
    truth = simulate_campaign(target, AS_OF, everyone, horizon_days=HORIZON, seed=2).truth.set_index("customer_id")
    effect = s_now["customer_id"].map(truth["effect_spend"]).to_numpy()
    cost = s_now["action"].map(costs).fillna(0.0).to_numpy()
    true_profit = args.margin * effect - cost

    decisions = contact_decisions(
        s_now["customer_id"], model.predict(f_now), s_now["action"], costs, margin=args.margin
    )
    chosen = s_now["customer_id"].isin(decisions.loc[decisions["contact"], "customer_id"]).to_numpy()
    budget = int(chosen.sum())

    def top(score: np.ndarray, k: int = budget) -> np.ndarray:
        mask = np.zeros(score.size, dtype=bool)
        mask[np.argsort(-score, kind="stable")[:k]] = True
        return mask

    k_best = int((true_profit > 0).sum())
    predicted_profit = s_now["customer_id"].map(decisions.set_index("customer_id")["expected_profit"]).to_numpy()

    policies = {
        "nobody": np.zeros(len(s_now), dtype=bool),
        "everyone": np.ones(len(s_now), dtype=bool),
        "churn score (top p_churn)": top(s_now["p_churn"].to_numpy()),
        "CLV at risk (top clv_at_risk)": top(s_now["clv_at_risk"].to_numpy()),
        "uplift model (X-learner, profit > 0)": chosen,
        "true optimum (true profit > 0)": true_profit > 0,
        "churn score, optimum's budget": top(s_now["p_churn"].to_numpy(), k_best),
        "CLV at risk, optimum's budget": top(s_now["clv_at_risk"].to_numpy(), k_best),
        "uplift model (top expected profit), optimum's budget": top(predicted_profit, k_best),
    }
    best = float(true_profit[true_profit > 0].sum())
    print(
        f"{args.customers:,} customers per world, as of {AS_OF.date()}, {HORIZON}-day horizon, margin "
        f"{args.margin:.0%}, playbook costs; budget of the score policies = {budget:,} contacts "
        f"({time.perf_counter() - t0:.0f} s)\n"
    )
    print("| policy | contacts | true profit | share of optimum |\n|---|---|---|---|")
    for name, mask in policies.items():
        profit = float(true_profit[mask].sum())
        print(f"| {name} | {int(mask.sum()):,} | {profit:,.0f} | {profit / best:.0%} |")


if __name__ == "__main__":
    main()
