"""Tier stability: share of customers changing tier between consecutive weekly scorings, with and
without hysteresis, on a generated world.

Trains one model as of AS_OF, then scores the base every 7 days for WEEKS weeks (each week's
features are as of that week, as the weekly batch job does), once re-grading from scratch and once
passing last week's tiers (hysteresis margin from the tier config).

    .venv/bin/python bench/tiers.py --customers 20000 --weeks 8
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
from common import Results, bench_parser, day

from churnclv.features import compute_features
from churnclv.generate import generate_world_to_parquet
from churnclv.generator.world import WorldConfig
from churnclv.models.tier_stability import tier_churn_rate
from churnclv.training.config import RunConfig, TrainConfig
from churnclv.training.pipeline import train


def main() -> None:
    ap = bench_parser(__file__, __doc__)
    ap.add_argument("--customers", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=9)
    ap.add_argument("--as-of", type=day, default="2025-08-03")
    ap.add_argument("--weeks", type=int, default=8)
    args = ap.parse_args()
    if args.weeks < 2:
        ap.error(f"--weeks {args.weeks}: at least 2 (tier changes are between consecutive weeks)")
    results = Results(args.json, __file__)
    as_of = pd.Timestamp(args.as_of)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "world"
        generate_world_to_parquet(WorldConfig(n_customers=args.customers, seed=args.seed), data)
        config = RunConfig(train=TrainConfig(n_folds=1, candidates=("gbm", "hybrid")))
        config = replace(config, scorer=replace(config.scorer, gbm_rounds=300))
        t = time.perf_counter()
        scorer = train(data, as_of, config).scorer
        print(
            f"trained as of {as_of:%Y-%m-%d} in {time.perf_counter() - t:.0f} s; "
            f"hysteresis margin {scorer.tiers_.tier_config.margin} ({scorer.tiers_.tier_config.margin_unit})"
        )
        prev_plain = prev_sticky = None
        rows = []
        for week in range(args.weeks):
            when = as_of + pd.Timedelta(days=7 * week)
            feats = compute_features(data, when.date())
            plain = scorer.score(feats, reasons=False)[["customer_id", "tier"]]
            sticky = scorer.score(feats, prev=prev_sticky, reasons=False)[["customer_id", "tier"]]
            if prev_plain is not None:
                rows.append(
                    {
                        "week": f"{when - pd.Timedelta(days=7):%Y-%m-%d} -> {when:%Y-%m-%d}",
                        "customers": len(plain),
                        "changed_without": tier_churn_rate(prev_plain, plain),
                        "changed_with": tier_churn_rate(prev_sticky, sticky),
                    }
                )
            prev_plain, prev_sticky = plain, sticky
        table = pd.DataFrame(rows)
        print(table.to_string(index=False, float_format=lambda v: f"{100 * v:.2f}%"))
        print(
            f"median share changing tier per week: without hysteresis "
            f"{100 * table['changed_without'].median():.2f}%, with {100 * table['changed_with'].median():.2f}%"
        )
    results.records = rows
    results.headline(
        f"share changing tier per week with hysteresis, {args.customers:,} customers (median of {len(rows)} weeks)",
        100 * table["changed_with"].median(),
        "%",
        100 * table["changed_without"].median(),
        "re-grading from scratch",
    )
    results.write()


if __name__ == "__main__":
    main()
