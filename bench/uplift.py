"""Targeting a retention campaign: by churn score, by CLV at risk, by uplift, against the true optimum.

Per seed, two generated worlds of the same kind. On the first, ``--campaigns`` past campaigns (one
per quarter, the last as of 2025-06-30, each with a 50 % holdout and scored by a scorer trained as of
its date) teach the targeting; on the second, a scorer trained on its history scores the base as of
2025-06-30 and every policy picks whom to contact. The policies are judged on the truth: each
customer's true expected effect on revenue over the horizon (:mod:`churnclv.generator.campaign`), so
profit = sum over contacted customers of ``margin x true effect - cost of the scores' action`` (the
playbook's costs). The optimum contacts exactly the customers whose true profit is positive: it
knows each customer's drawn response type, which no model can, so no policy gets near 100 %.

Policies (the rule "profit > 0": contact where ``margin x expected uplift - cost > 0``):

- the X-learner on the last campaign alone (the first version), and on all campaigns pooled;
- ``expected_spend x rho``: the scores' expected spend scaled by the uplift measured on the past
  campaigns (:class:`churnclv.campaigns.targeting.CampaignTargeting` with that candidate only);
- the targeting: the candidate (expected spend, CLV at risk or the X-learner) with the best profit
  on held-out past campaigns;
- churn score and CLV at risk, at the targeting's budget and at the optimum's.

The table gives the median over the seeds (the share of the optimum per seed in the last column).

    .venv/bin/python bench/uplift.py --customers 6000 --seeds 0 1 2
"""

from __future__ import annotations

import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from common import Results, bench_parser

from churnclv.campaigns.config import CampaignSettings
from churnclv.campaigns.holdout import assign_holdout
from churnclv.campaigns.targeting import CampaignTargeting, PastCampaign, policy_table
from churnclv.campaigns.uplift import UpliftModel
from churnclv.features import compute_features, compute_training_frame
from churnclv.generate import generate_world
from churnclv.generator.campaign import simulate_campaign
from churnclv.generator.world import World, WorldConfig
from churnclv.models.scorer import Scorer
from churnclv.models.scorer_config import ScorerConfig
from churnclv.models.tier_config import default_tier_config

AS_OF = pd.Timestamp("2025-06-30")
HORIZON = 90


def _scored(world: World, as_of: pd.Timestamp, folder: Path, rounds: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Features and scores at ``as_of`` from a scorer trained on the world's history up to it."""
    folder.mkdir(parents=True, exist_ok=True)
    day_after = as_of + pd.Timedelta(days=1)
    for name in ("transactions", "events"):
        table = getattr(world, name)
        table[table["ts"] < day_after].to_parquet(folder / f"{name}.parquet")
    world.customers.to_parquet(folder / "customers.parquet")
    train = compute_training_frame(folder, as_of, HORIZON, n_cutoffs=3)
    features = compute_features(folder, as_of)
    scorer = Scorer(config=ScorerConfig(horizon_days=HORIZON, gbm_rounds=rounds, seed=1)).fit(
        train, features, as_of=as_of
    )
    return features, scorer.score(features, as_of=as_of, reasons=False)


def _past_campaigns(world: World, n: int, tmp: Path, rounds: int) -> list[PastCampaign]:
    """``n`` quarterly campaigns with a 50 % holdout, the latest as of :data:`AS_OF`."""
    out = []
    for k in range(n):
        as_of = (AS_OF + pd.Timedelta(days=1) - pd.DateOffset(months=3 * k)) - pd.Timedelta(days=1)
        features, scores = _scored(world, as_of, tmp / f"past{k}", rounds)
        plan = assign_holdout(scores, f"past{k}", share=0.5)
        arms = plan.assign(action=scores["action"].to_numpy())
        sim = simulate_campaign(world, as_of, arms, horizon_days=HORIZON, seed=1 + k)
        y = features["customer_id"].map(sim.transactions.groupby("customer_id")["amount"].sum()).fillna(0.0)
        out.append(PastCampaign.from_frames(f"past{k}", features, scores, ~plan["holdout"].to_numpy(), y.to_numpy()))
    return out


def _top(score: np.ndarray, k: int) -> np.ndarray:
    mask = np.zeros(score.size, dtype=bool)
    mask[np.argsort(-score, kind="stable")[:k]] = True
    return mask


def run_seed(
    seed: int, customers: int, n_campaigns: int, rounds: int, margin: float, cost_scale: float
) -> tuple[pd.DataFrame, str]:
    """The policy table of one seed, and the candidate the targeting chose."""
    playbook = default_tier_config().playbook
    costs = {action: cost_scale * cost for action, cost in playbook.costs.items()}
    config = WorldConfig(n_customers=customers, seed=2 * seed, start=pd.Timestamp("2023-07-01"))
    past, target = generate_world(config), generate_world(WorldConfig(**{**config.__dict__, "seed": 2 * seed + 1}))
    with tempfile.TemporaryDirectory() as tmp:
        campaigns = _past_campaigns(past, n_campaigns, Path(tmp), rounds)
        f_now, s_now = _scored(target, AS_OF, Path(tmp) / "now", rounds)
    everyone = s_now[["customer_id"]].assign(holdout=False, action=s_now["action"].to_numpy())
    truth = simulate_campaign(target, AS_OF, everyone, horizon_days=HORIZON, seed=2).truth.set_index("customer_id")
    effect = s_now["customer_id"].map(truth["effect_spend"]).to_numpy()
    cost = s_now["action"].map(costs).to_numpy(float)

    def profit_rule(uplift: np.ndarray) -> np.ndarray:
        return margin * uplift - cost

    names = list(campaigns[0].feature_names)
    pooled = pd.concat([c.customers for c in campaigns], ignore_index=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # LightGBM's notes on small leaves
        last = campaigns[0].customers
        x_one = UpliftModel(seed=seed).fit(last[names], last["treated"], last["outcome"]).predict(f_now[names])
        x_all = UpliftModel(seed=seed).fit(pooled[names], pooled["treated"], pooled["outcome"]).predict(f_now[names])
        spend = CampaignTargeting(candidates=("expected_spend",), margin=margin, seed=seed)
        spend.fit(campaigns, costs, playbook.no_contact)
        chosen = CampaignTargeting(margin=margin, seed=seed).fit(campaigns, costs, playbook.no_contact)
    # as the batch decides: never a customer whose action is no contact
    contactable = ~s_now["action"].isin(playbook.no_contact).to_numpy()
    by_spend = np.where(contactable, profit_rule(spend.expected_uplift(f_now, s_now)), -np.inf)
    targeted = np.where(contactable, profit_rule(chosen.expected_uplift(f_now, s_now)), -np.inf)
    budget, k_best = int((targeted > 0).sum()), int((margin * effect - cost > 0).sum())
    p_churn, at_risk = s_now["p_churn"].to_numpy(float), s_now["clv_at_risk"].to_numpy(float)
    n = len(s_now)
    policies = {
        "nobody": np.zeros(n, dtype=bool),
        "everyone": np.ones(n, dtype=bool),
        "X-learner, last campaign, profit > 0 (before)": profit_rule(x_one) > 0,
        f"X-learner, {n_campaigns} campaigns pooled, profit > 0": profit_rule(x_all) > 0,
        "expected spend x measured uplift, profit > 0": by_spend > 0,
        "targeting chosen on held-out campaigns, profit > 0": targeted > 0,
        "churn score, targeting's budget": _top(p_churn, budget),
        "CLV at risk, targeting's budget": _top(at_risk, budget),
        "true optimum (true profit > 0)": margin * effect - cost > 0,
        "churn score, optimum's budget": _top(p_churn, k_best),
        "CLV at risk, optimum's budget": _top(at_risk, k_best),
        "X-learner (last campaign), optimum's budget": _top(profit_rule(x_one), k_best),
        "X-learner (pooled), optimum's budget": _top(profit_rule(x_all), k_best),
        "targeting, optimum's budget": _top(targeted, k_best),
    }
    return policy_table(effect, cost, policies, margin=margin), chosen.chosen_


def main() -> None:
    ap = bench_parser(__file__, __doc__)
    ap.add_argument("--customers", type=int, default=6000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--campaigns", type=int, default=3, help="past campaigns the targeting learns from")
    ap.add_argument("--gbm-rounds", type=int, default=100)
    ap.add_argument("--margin", type=float, default=CampaignSettings().margin)
    ap.add_argument("--cost-scale", type=float, default=1.0, help="multiply every action's playbook cost")
    args = ap.parse_args()
    results = Results(args.json, __file__)
    t0 = time.perf_counter()
    tables, chosen = [], []
    for seed in args.seeds:
        table, pick = run_seed(seed, args.customers, args.campaigns, args.gbm_rounds, args.margin, args.cost_scale)
        tables.append(table.assign(seed=seed))
        chosen.append(pick)
    all_ = pd.concat(tables)
    median = all_.groupby("policy", sort=False)[["contacts", "true_profit", "share_of_optimum"]].median()
    per_seed = all_.groupby("policy", sort=False)["share_of_optimum"].agg(lambda s: ", ".join(f"{v:.0%}" for v in s))
    print(
        f"{args.customers:,} customers per world, {args.campaigns} past campaigns, as of {AS_OF.date()}, {HORIZON}-day "
        f"horizon, margin {args.margin:.0%}, playbook costs x {args.cost_scale:g}; median of seeds {args.seeds}; "
        f"the targeting chose {chosen} ({time.perf_counter() - t0:.0f} s)\n"
    )
    print("| policy | contacts | true profit | share of optimum | per seed |\n|---|---|---|---|---|")
    for name, row in median.iterrows():
        print(
            f"| {name} | {row['contacts']:,.0f} | {row['true_profit']:,.0f} | {row['share_of_optimum']:.0%} "
            f"| {per_seed[name]} |"
        )
    results.records = all_.to_dict("records")
    results.headline(
        f"targeting chosen on held-out campaigns: share of the true optimum's profit, {args.customers:,} customers",
        100 * median.loc["targeting chosen on held-out campaigns, profit > 0", "share_of_optimum"],
        "%",
        100 * median.loc["everyone", "share_of_optimum"],
        "contacting everyone",
    )
    results.write()


if __name__ == "__main__":
    main()
