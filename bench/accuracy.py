"""Accuracy on real data: churnclv against BG/NBD, Pareto/NBD and simple baselines on CDNOW.

For every setup (as-of date, horizon H) of the grid, churnclv is trained through its CLI on the data
up to as-of only, the whole base is scored with ``score-batch``, and the scores are compared with what
the customers then did in (as-of, as-of + H]. In the same run and on the same customers (everyone
with a transaction line on or before as-of), the references:

- ``bgnbd``: lifetimes' BG/NBD + Gamma-Gamma fitted at as-of (weeks as the unit, as in the paper);
  churn = P(no purchase in H) in closed form (1 - p_alive + p_alive * ((alpha+T)/(alpha+T+t))^(r+x)).
- ``pareto``: lifetimes' Pareto/NBD + Gamma-Gamma; churn = P(no purchase in H) (lifetimes'
  ``conditional_probability_of_n_purchases_up_to_time(0, ...)``), never 1 - P(alive).
- ``rfm_rule``: churn rate, purchases and spend per recency x frequency x monetary cell, measured on
  the latest cutoff whose window closes by as-of (as-of - H), shrunk towards the overall rate in
  small cells, applied to the cells at as-of.
- ``lgbm_rfm``: LightGBM on RFM features at that same cutoff, labels in (cutoff, as-of].

Definitions follow churnclv's (and the BTYD literature): a purchase is a calendar day with a line of
amount > 0; spend is the net sum of the amounts in the window; churned = no purchase day in it.

Metrics: churn ROC AUC, Brier, log loss; purchases MAE and aggregate % error; spend normalized Gini,
Spearman, top-decile capture (share of realized spend in the top 10 % by predicted spend) and
aggregate % error. One table per metric (setups x models), then a summary (mean, worst setup, wins).

Usage::

    .venv/bin/python bench/accuracy.py                       # the full CDNOW grid (27 setups)
    .venv/bin/python bench/accuracy.py --setups 1997-08-31:90 1998-01-31:30
    .venv/bin/python bench/accuracy.py --config my.toml      # a training configuration to measure

The data is cached under ``--work`` (the CDNOW transactions); the results never are.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from accuracy_goals import HIGHER_IS_BETTER, cdnow_headlines
from accuracy_references import btyd_reference, lgbm_rfm, rfm_rule
from common import Results, bench_parser, cli, run

from churnclv.serving.snapshots import read_scores

END = dt.date(1998, 6, 30)  # the last day of CDNOW
GRID_AS_OF = (
    "1997-04-30",
    "1997-05-31",
    "1997-06-30",
    "1997-07-31",
    "1997-08-31",
    "1997-10-31",
    "1997-11-30",
    "1998-01-31",
    "1998-02-28",
    "1998-03-31",
)
GRID_HORIZONS = (30, 90, 180)
MODELS = ("churnclv", "bgnbd", "pareto", "rfm_rule", "lgbm_rfm")


@dataclass(frozen=True)
class Setup:
    as_of: dt.date
    horizon: int

    @property
    def label(self) -> str:
        return f"{self.as_of} H{self.horizon}"

    @property
    def cutoff(self) -> dt.date:
        """The latest cutoff whose label window closes by as-of (what a baseline can learn from)."""
        return self.as_of - dt.timedelta(days=self.horizon)


def grid() -> list[Setup]:
    return [
        Setup(dt.date.fromisoformat(d), h)
        for d in GRID_AS_OF
        for h in GRID_HORIZONS
        if dt.date.fromisoformat(d) + dt.timedelta(days=h) <= END
    ]


def parse_setup(text: str) -> Setup:
    day, _, horizon = text.partition(":")
    setup = Setup(dt.date.fromisoformat(day), int(horizon or 90))
    if setup.as_of + dt.timedelta(days=setup.horizon) > END:
        raise argparse.ArgumentTypeError(f"{text}: the window ends after {END}, the last day of CDNOW")
    return setup


# ---------------------------------------------------------------- data and truth


def purchase_days(tx: pd.DataFrame) -> pd.DataFrame:
    """One row per customer and calendar day: net spend and whether it is a purchase day."""
    day = tx.assign(day=tx["ts"].dt.normalize(), pos=tx["amount"] > 0)
    return day.groupby(["customer_id", "day"], as_index=False).agg(net=("amount", "sum"), purchase=("pos", "any"))


def known_at(days: pd.DataFrame, as_of: dt.date) -> pd.Index:
    first = days.groupby("customer_id")["day"].min()
    return pd.Index(sorted(first.index[first <= pd.Timestamp(as_of)]), name="customer_id")


def window_truth(days: pd.DataFrame, customers: pd.Index, start: dt.date, horizon: int) -> pd.DataFrame:
    """Realized purchases, spend and churn in (start, start + horizon] for ``customers``."""
    lo, hi = pd.Timestamp(start), pd.Timestamp(start + dt.timedelta(days=horizon))
    w = days[(days["day"] > lo) & (days["day"] <= hi)]
    g = w.groupby("customer_id").agg(purchases=("purchase", "sum"), spend=("net", "sum"))
    out = g.reindex(customers).fillna(0.0)
    out["churned"] = out["purchases"] == 0
    return out


def rfm(days: pd.DataFrame, customers: pd.Index, as_of: dt.date) -> pd.DataFrame:
    """BTYD statistics (days) and RFM features at as_of for ``customers`` (known at as_of)."""
    d = days[days["day"] <= pd.Timestamp(as_of)]
    end = pd.Timestamp(as_of)
    first_line = d.groupby("customer_id")["day"].min()
    p = d[d["purchase"]]
    g = p.groupby("customer_id")
    first, last, n = g["day"].min(), g["day"].max(), g["day"].size()
    total = g["net"].sum()
    first_net = p.sort_values("day").groupby("customer_id")["net"].first()
    out = pd.DataFrame(index=customers)
    out["n_days"] = n.reindex(customers).fillna(0)
    out["frequency"] = (out["n_days"] - 1).clip(lower=0)
    birth = first.reindex(customers).fillna(first_line.reindex(customers))
    out["T"] = (end - birth).dt.days.astype(float)
    out["recency"] = (last.reindex(customers) - first.reindex(customers)).dt.days.fillna(0).astype(float)
    out["days_since_last"] = (end - last.reindex(customers).fillna(birth)).dt.days.astype(float)
    out["total_spend"] = total.reindex(customers).fillna(0.0)
    out["mean_spend"] = (out["total_spend"] / out["n_days"].where(out["n_days"] > 0)).fillna(0.0)
    repeat = (out["total_spend"] - first_net.reindex(customers).fillna(0.0)) / out["frequency"].where(
        out["frequency"] > 0
    )
    out["monetary_value"] = repeat.fillna(0.0)
    return out


# ---------------------------------------------------------------- churnclv through its CLI


def churnclv_scores(setup: Setup, data: Path, work: Path, config: Path | None) -> tuple[pd.DataFrame, float]:
    here = work / "runs" / f"{setup.as_of}-H{setup.horizon}"
    uri = f"sqlite:///{here / 'mlruns' / 'mlflow.db'}"
    (here / "mlruns").mkdir(parents=True, exist_ok=True)
    train = [
        "train",
        "--data",
        str(data),
        "--trusted",
        "--as-of",
        str(setup.as_of),
        "--horizon-days",
        str(setup.horizon),
        "--tracking-uri",
        uri,
    ]
    if config is not None:
        train += ["--config", str(config)]
    wall, _, rc = run(cli(*train), here / "train.log")
    if rc:
        raise RuntimeError(f"train failed for {setup.label}: see {here / 'train.log'}")
    score = [
        "score-batch",
        "--data",
        str(data),
        "--trusted",
        "--as-of",
        str(setup.as_of),
        "--out",
        str(here / "scores"),
        "--tracking-uri",
        uri,
    ]
    _, _, rc = run(cli(*score), here / "score.log")
    if rc:
        raise RuntimeError(f"score-batch failed for {setup.label}: see {here / 'score.log'}")
    frame = read_scores(here / "scores", setup.as_of)
    return frame.set_index("customer_id")[["p_churn", "expected_purchases", "expected_spend"]], wall


# ---------------------------------------------------------------- metrics


def normalized_gini(actual: np.ndarray, pred: np.ndarray) -> float:
    def gini(order_by: np.ndarray) -> float:
        a = actual[np.lexsort((np.arange(len(actual)), -order_by))]
        cum = np.cumsum(a) / a.sum()
        return float(cum.sum() / len(a) - (len(a) + 1) / (2 * len(a)))

    return gini(pred) / gini(actual)


def metrics(pred: pd.DataFrame, truth: pd.DataFrame) -> dict[str, float]:
    from scipy.stats import spearmanr
    from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

    p = pred.reindex(truth.index)
    if p.isna().any().any():
        raise RuntimeError(f"{int(p.isna().any(axis=1).sum())} customers without a score")
    y = truth["churned"].astype(int).to_numpy()
    pc = np.clip(p["p_churn"].to_numpy(float), 1e-6, 1 - 1e-6)
    spend, pspend = truth["spend"].to_numpy(float), p["expected_spend"].to_numpy(float)
    top = np.argsort(-pspend, kind="stable")[: max(1, len(pspend) // 10)]
    return {
        "churn_auc": roc_auc_score(y, pc),
        "churn_brier": brier_score_loss(y, pc),
        "churn_logloss": log_loss(y, pc, labels=[0, 1]),
        "purchases_mae": float(np.abs(p["expected_purchases"] - truth["purchases"]).mean()),
        "purchases_agg_err_pct": 100 * (p["expected_purchases"].sum() / truth["purchases"].sum() - 1),
        "spend_gini": normalized_gini(spend, pspend),
        "spend_spearman": float(spearmanr(spend, pspend).statistic),
        "spend_top10_capture": float(spend[top].sum() / spend.sum()),
        "spend_agg_err_pct": 100 * (pspend.sum() / spend.sum() - 1),
    }


ABS_IS_ERROR = {"purchases_agg_err_pct", "spend_agg_err_pct"}


# ---------------------------------------------------------------- the run


def evaluate(setup: Setup, days: pd.DataFrame, data: Path, work: Path, config: Path | None) -> dict:
    customers = known_at(days, setup.as_of)
    truth = window_truth(days, customers, setup.as_of, setup.horizon)
    now = rfm(days, customers, setup.as_of)
    preds: dict[str, pd.DataFrame] = {}
    notes: dict[str, str] = {}
    scores, train_s = churnclv_scores(setup, data, work, config)
    preds["churnclv"] = scores
    for kind in ("bgnbd", "pareto"):
        preds[kind] = btyd_reference(now, setup.horizon, kind)
    past = known_at(days, setup.cutoff)
    if len(past) >= 500 and truth["purchases"].sum() > 0:
        feats = rfm(days, past, setup.cutoff)
        labels = window_truth(days, past, setup.cutoff, setup.horizon)
        preds["rfm_rule"] = rfm_rule(feats, labels, now)
        preds["lgbm_rfm"] = lgbm_rfm(feats, labels, now)
    else:
        notes["rfm_rule"] = notes["lgbm_rfm"] = f"no labelled cutoff: {setup.cutoff} is before the data"
    return {
        "setup": setup.label,
        "customers": len(customers),
        "churn_rate": float(truth["churned"].mean()),
        "train_seconds": train_s,
        "metrics": {name: metrics(p, truth) for name, p in preds.items()},
        "notes": notes,
    }


def table(results: list[dict], metric: str, models: tuple[str, ...] = MODELS) -> str:
    head = f"| setup | {' | '.join(models)} |\n|---|{'---|' * len(models)}"
    rows = []
    for r in results:
        cells = [f"{r['metrics'][m][metric]:.4g}" if m in r["metrics"] else "n/a" for m in models]
        rows.append(f"| {r['setup']} | {' | '.join(cells)} |")
    return "\n".join([f"**{metric}**", "", head, *rows])


def summary(results: list[dict]) -> str:
    """Means, worst setup and wins per metric. Means against the references are taken over the setups
    where every model has a result (the RFM rule and LightGBM on RFM need a labelled cutoff, so the
    earliest setups have neither): a mean over fewer, later setups is not comparable."""
    common = [r for r in results if all(m in r["metrics"] for m in MODELS)]
    lines = [
        (
            f"| metric | churnclv mean (all {len(results)}) | churnclv mean ({len(common)} with every reference) | "
            "best reference (same setups) | worst setup vs bgnbd | wins vs bgnbd | wins vs best reference |"
        ),
        "|---|---|---|---|---|---|---|",
    ]
    for metric in results[0]["metrics"]["churnclv"]:
        sign = 1 if metric in HIGHER_IS_BETTER else -1

        def score(r: dict, m: str, metric: str = metric) -> float:
            v = r["metrics"][m][metric]
            return abs(v) if metric in ABS_IS_ERROR else v

        ours = np.mean([score(r, "churnclv") for r in results])
        ours_common = np.mean([score(r, "churnclv") for r in common]) if common else float("nan")
        refs = {m: np.mean([score(r, m) for r in common]) if common else float("nan") for m in MODELS[1:]}
        best = max(refs, key=lambda m: sign * refs[m])
        gaps = [(sign * (score(r, "churnclv") - score(r, "bgnbd")), r["setup"]) for r in results]
        worst = min(gaps)
        wins_bg = sum(g >= 0 for g, _ in gaps)
        wins_best = 0
        for r in results:
            avail = [m for m in MODELS[1:] if m in r["metrics"]]
            wins_best += all(sign * (score(r, "churnclv") - score(r, m)) >= 0 for m in avail)
        label = f"mean \\|x\\| {metric}" if metric in ABS_IS_ERROR else metric
        lines.append(
            f"| {label} | {ours:.4g} | {ours_common:.4g} | {best} {refs[best]:.4g} | {worst[0]:+.4g} ({worst[1]}) | "
            f"{wins_bg}/{len(results)} | {wins_best}/{len(results)} |"
        )
    return "\n".join(lines)


def report(results: list[dict], summary_text: str, models: tuple[str, ...] = MODELS) -> None:
    """One table per metric, then the summary."""
    print()
    for metric in results[0]["metrics"]["churnclv"]:
        print(table(results, metric, models), end="\n\n")
    print(summary_text)


def cdnow_data(work: Path) -> Path:
    data = work / "cdnow"
    if not (data / "transactions.parquet").is_file():
        _, _, rc = run(cli("datasets", "cdnow", "--out", str(data)), work / "datasets.log")
        if rc:
            sys.exit(f"datasets cdnow failed: see {work / 'datasets.log'}")
    return data


def main(argv: list[str] | None = None) -> int:
    ap = bench_parser(__file__, __doc__.split("\n\n")[0])
    ap.add_argument(
        "--setups", nargs="+", type=parse_setup, help="AS_OF:HORIZON, e.g. 1997-08-31:90 (default: the grid)"
    )
    ap.add_argument("--work", type=Path, default=Path("work/bench-accuracy"))
    ap.add_argument("--config", type=Path, default=None, help="A training configuration to measure.")
    args = ap.parse_args(argv)
    out = Results(args.json, __file__)
    args.work.mkdir(parents=True, exist_ok=True)
    data = cdnow_data(args.work)
    days = purchase_days(pd.read_parquet(data / "transactions.parquet"))
    results = []
    for setup in args.setups or grid():
        r = evaluate(setup, days, data, args.work, args.config)
        m = r["metrics"]
        print(
            f"{r['setup']}: {r['customers']:,} customers, churn rate {r['churn_rate']:.3f}, "
            f"train {r['train_seconds']:.0f} s; "
            f"AUC churnclv {m['churnclv']['churn_auc']:.4f} bgnbd {m['bgnbd']['churn_auc']:.4f}; "
            f"Gini churnclv {m['churnclv']['spend_gini']:.4f} bgnbd {m['bgnbd']['spend_gini']:.4f}",
            flush=True,
        )
        results.append(r)
    report(results, summary(results))
    out.records = results
    cdnow_headlines(out, results, MODELS[1:], shipped=args.config is None, grid=args.setups is None)
    out.write()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
