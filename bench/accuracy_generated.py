"""Accuracy on a seasonal generated world: churnclv and BG/NBD against the generator's truth (the oracle).

The bench of ``bench/accuracy.py`` (its definitions, BG/NBD reference and metrics, imported from it) on
a world from ``churnclv generate`` with a strong yearly season (``--seasonality-amplitude 0.6``, peak
on day 335 by default), as of every month-end of the world's last year whose window (as-of, as-of + H]
closes by the last day with data (2025-01-31 .. 2025-09-30 for H = 90). Every setup runs twice:

- ``events on``: the world as generated (transactions, events, customers);
- ``events off``: the same transactions and customers without the events table (as on CDNOW).

Each time churnclv is trained through its CLI on the data up to as-of, the base is scored with
``score-batch``, and on the customers with a transaction line on or before as-of the scores are
compared with what those customers then did in the window, next to:

- ``bgnbd``: lifetimes' BG/NBD + Gamma-Gamma fitted at as-of (it reads no events: one fit serves both);
- ``oracle``: the generator's truth at the end of the as-of day (``truth.parquet``: P(no purchase),
  expected purchases and spend from the latent state), the best any model could do.

Definitions are accuracy.py's: a purchase is a calendar day with a line of amount > 0, spend is the
net sum of the amounts (returns included), churned = no purchase day in the window. The truth counts
orders, not purchase days, and charges a return to its order's window; two orders on one day are
rare, so the counts differ by little: each setup prints the realised orders per purchase day and the
oracle's error against the realised orders, to show that gap.

Tables: every metric of accuracy.py (setup x model, the variant in the row label), then a summary per
model: aggregate % error of total purchases and spend (mean, median, worst setup, setups within
±10 %) and the mean gap in churn AUC and spend Gini to the oracle.

Usage::

    .venv/bin/python bench/accuracy_generated.py                  # 9 month-ends x 2 variants
    .venv/bin/python bench/accuracy_generated.py --customers 3000 --setups 2025-06-30 2025-09-30
    .venv/bin/python bench/accuracy_generated.py --variants off --config my.toml --json out.json

The world is cached under ``--work`` (once per size, seed, season and horizon); the results never are.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from accuracy import (
    Setup,
    churnclv_scores,
    known_at,
    metrics,
    purchase_days,
    report,
    rfm,
    window_truth,
)
from accuracy_goals import generated_headlines
from accuracy_references import btyd_reference
from common import Results, bench_parser, cli, day, run

from churnclv.generator.world import WorldConfig

MODELS = ("churnclv", "bgnbd", "oracle")
VARIANTS = {"on": "events on", "off": "events off"}
DAY = dt.timedelta(days=1)
WORLD = WorldConfig()
# rows lie before WorldConfig.end (midnight): the last day with data is the day before it
LAST_DAY = (WORLD.end - pd.Timedelta(days=1)).date()
ERRORS = ("purchases_agg_err_pct", "spend_agg_err_pct")


def month_ends(horizon: int) -> list[dt.date]:
    """Month-ends of the world's last year whose window (as-of, as-of + horizon] closes by LAST_DAY."""
    ends = pd.date_range(f"{LAST_DAY.year}-01-01", f"{LAST_DAY.year}-12-31", freq="ME").date
    return [d for d in ends if d + horizon * DAY <= LAST_DAY]


# ---------------------------------------------------------------- the world, made once


def seasonal_world(args: argparse.Namespace, as_of: list[dt.date]) -> tuple[Path, float | None]:
    """The world (with truth at the end of every as-of day) under ``args.work``; its generation time
    when made now. Made again (the same world) only when a requested as-of has no truth in it yet."""
    name = f"world-{args.customers}-s{args.seed}-a{args.seasonality_amplitude:g}-p{args.season_peak_day}"
    path = args.work / f"{name}-H{args.horizon_days}"
    # the truth's as-of is a midnight: the end of the as-of day, when churnclv's data stops
    wanted = sorted({d + DAY for d in (*month_ends(args.horizon_days), *as_of)})
    if (path / "truth.parquet").is_file():
        have = set(pd.read_parquet(path / "truth.parquet", columns=["as_of"])["as_of"].dt.date)
        if set(wanted) <= have:
            return path, None
    shutil.rmtree(path, ignore_errors=True)
    cmd = [
        *("generate", "--customers", str(args.customers), "--seed", str(args.seed), "--out", str(path)),
        *("--seasonality-amplitude", str(args.seasonality_amplitude), "--season-peak-day", str(args.season_peak_day)),
        *("--horizon-days", str(args.horizon_days)),
        *(arg for d in wanted for arg in ("--truth-as-of", str(d))),
    ]
    wall, _, rc = run(cli(*cmd), args.work / "generate.log")
    if rc:
        sys.exit(f"generate failed: see {args.work / 'generate.log'}")
    return path, wall


def without_events(world: Path) -> Path:
    """A copy of the world's transactions and customers, no events (what churnclv sees on CDNOW)."""
    path = world.with_name(f"{world.name}-no-events")
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir()
    for name in ("transactions", "customers"):
        shutil.copy2(world / f"{name}.parquet", path / f"{name}.parquet")
    return path


# ---------------------------------------------------------------- one setup


def runs(args: argparse.Namespace, key: str) -> Path:
    """Where churnclv's runs of a variant go (its MLflow store, scores); emptied at every start, as a
    registry left from an earlier run would keep its champion when the new model is not promoted."""
    return args.work / f"events-{key}"


def oracle(truth: pd.DataFrame, customers: pd.Index, as_of: dt.date) -> pd.DataFrame:
    at = truth[truth["as_of"] == pd.Timestamp(as_of + DAY)].set_index("customer_id")
    out = at.reindex(customers)[["p_no_purchase", "expected_purchases", "expected_spend"]]
    return out.rename(columns={"p_no_purchase": "p_churn"})


def window_orders(tx: pd.DataFrame, customers: pd.Index, as_of: dt.date, horizon: int) -> int:
    """Realised orders (distinct order_id with a line of amount > 0) in the window: what the truth counts."""
    lo, hi = pd.Timestamp(as_of + DAY), pd.Timestamp(as_of + (horizon + 1) * DAY)
    w = tx[(tx["ts"] >= lo) & (tx["ts"] < hi) & (tx["amount"] > 0) & tx["customer_id"].isin(customers)]
    return int(w["order_id"].nunique())


def evaluate(
    setup: Setup,
    tx: pd.DataFrame,
    days: pd.DataFrame,
    truth: pd.DataFrame,
    data: dict[str, Path],
    args: argparse.Namespace,
) -> list[dict]:
    customers = known_at(days, setup.as_of)
    realised = window_truth(days, customers, setup.as_of, setup.horizon)
    best = oracle(truth, customers, setup.as_of)
    fixed = {
        "bgnbd": metrics(btyd_reference(rfm(days, customers, setup.as_of), setup.horizon, "bgnbd"), realised),
        "oracle": metrics(best, realised),
    }
    orders = window_orders(tx, customers, setup.as_of, setup.horizon)
    totals = {
        "purchase_days": float(realised["purchases"].sum()),
        "orders": orders,
        "spend": float(realised["spend"].sum()),
        "orders_per_purchase_day": orders / realised["purchases"].sum(),
        "oracle_orders_agg_err_pct": 100 * (best["expected_purchases"].sum() / orders - 1),
    }
    rows = []
    for key, folder in data.items():
        scores, train_s = churnclv_scores(setup, folder, runs(args, key), args.config)
        rows.append(
            {
                "setup": f"{setup.label} {VARIANTS[key]}",
                "as_of": str(setup.as_of),
                "horizon": setup.horizon,
                "variant": VARIANTS[key],
                "customers": len(customers),
                "churn_rate": float(realised["churned"].mean()),
                "train_seconds": train_s,
                "realised": totals,
                "metrics": {"churnclv": metrics(scores, realised), **fixed},
            }
        )
    return rows


# ---------------------------------------------------------------- the summary


def _worst(values: list[float], labels: list[str]) -> str:
    i = int(np.argmax(np.abs(values)))
    return f"{values[i]:+.1f} ({labels[i]})"


def summary(results: list[dict]) -> str:
    """Per model: aggregate errors (mean, median, worst, setups within ±10 %) and gaps to the oracle."""
    first = results[0]["variant"]
    variants = list(dict.fromkeys(r["variant"] for r in results))
    # bgnbd and the oracle read no events: their figures repeat in every variant, so count them once
    entries = [(f"churnclv, {v}", v, "churnclv") for v in variants] + [(m, first, m) for m in MODELS[1:]]
    lines = [
        (
            "| model | purchases err % mean | median | worst | within ±10 % | spend err % mean | median | worst | "
            "within ±10 % | churn AUC | AUC gap to oracle | spend Gini gap to oracle | Brier |"
        ),
        f"|---|{'---|' * 12}",
    ]
    for label, variant, model in entries:
        rs = [r for r in results if r["variant"] == variant]
        at = [r["as_of"] for r in rs]
        cells = []
        for err in ERRORS:
            v = [r["metrics"][model][err] for r in rs]
            within = sum(abs(x) <= 10 for x in v)
            cells += [f"{np.mean(v):+.1f}", f"{np.median(v):+.1f}", _worst(v, at), f"{within}/{len(v)}"]

        def mean(metric: str, of: str = model, rs: list[dict] = rs) -> float:
            return float(np.mean([r["metrics"][of][metric] for r in rs]))

        cells += [
            f"{mean('churn_auc'):.4f}",
            f"{mean('churn_auc', 'oracle') - mean('churn_auc'):+.4f}",
            f"{mean('spend_gini', 'oracle') - mean('spend_gini'):+.4f}",
            f"{mean('churn_brier'):.4f}",
        ]
        lines.append(f"| {label} | {' | '.join(cells)} |")
    return "\n".join(lines)


# ---------------------------------------------------------------- the run


def progress(r: dict) -> str:
    m, t = r["metrics"], r["realised"]

    def err(model: str, what: str) -> str:
        return f"{model} {m[model][f'{what}_agg_err_pct']:+.1f}"

    return (
        f"{r['setup']}: {r['customers']:,} customers, churn rate {r['churn_rate']:.3f}, "
        f"train {r['train_seconds']:.0f} s; AUC "
        + " ".join(f"{x} {m[x]['churn_auc']:.4f}" for x in MODELS)
        + f"; purchases err % {err('churnclv', 'purchases')} {err('oracle', 'purchases')} "
        f"(vs orders {t['oracle_orders_agg_err_pct']:+.1f}; {t['orders_per_purchase_day']:.3f} orders per purchase "
        f"day); spend err % {err('churnclv', 'spend')} {err('oracle', 'spend')}"
    )


def main(argv: list[str] | None = None) -> int:
    ap = bench_parser(__file__, __doc__.split("\n\n")[0])
    ap.add_argument("--setups", nargs="+", type=day, help="As-of dates (default: the month-ends)")
    ap.add_argument("--horizon-days", type=int, default=90, help="H of every setup and of the truth")
    ap.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS), help="events on, off")
    ap.add_argument("--customers", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--seasonality-amplitude", type=float, default=0.6)
    ap.add_argument("--season-peak-day", type=int, default=WORLD.season_peak_day_of_year)
    ap.add_argument("--work", type=Path, default=Path("work/bench-accuracy-generated"))
    ap.add_argument("--config", type=Path, default=None, help="A training configuration to measure.")
    args = ap.parse_args(argv)
    if args.horizon_days < 1:
        ap.error(f"--horizon-days {args.horizon_days}: must be at least 1 day")
    as_of = args.setups or month_ends(args.horizon_days)
    for d in as_of:
        if not WORLD.start.date() <= d <= LAST_DAY - args.horizon_days * DAY:
            ap.error(
                f"--setups {d}: the window ({d}, {d + args.horizon_days * DAY}] must lie within the data "
                f"({WORLD.start.date()} to {LAST_DAY}); pick an as-of up to {LAST_DAY - args.horizon_days * DAY}"
            )
    if not as_of:
        ap.error(f"--horizon-days {args.horizon_days}: no month-end of {LAST_DAY.year} has its window closed by then")
    out = Results(args.json, __file__)
    args.work.mkdir(parents=True, exist_ok=True)
    world, gen_s = seasonal_world(args, as_of)
    if gen_s is not None:
        print(f"generated {world.name} in {gen_s:.0f} s", flush=True)
    data = {key: world if key == "on" else without_events(world) for key in args.variants}
    for key in data:
        shutil.rmtree(runs(args, key), ignore_errors=True)
    tx = pd.read_parquet(world / "transactions.parquet", columns=["customer_id", "ts", "amount", "order_id"])
    days = purchase_days(tx)
    truth = pd.read_parquet(world / "truth.parquet")
    results = []
    for d in as_of:
        rows = evaluate(Setup(d, args.horizon_days), tx, days, truth, data, args)
        for r in rows:
            print(progress(r), flush=True)
        results += rows
    report(results, summary(results), MODELS)
    out.records = results
    generated_headlines(out, results, shipped=args.config is None)
    out.write()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
