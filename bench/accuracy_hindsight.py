"""How much churn AUC do CDNOW's transactions hold beyond Pareto/NBD? A model fitted in hindsight.

Issue 14 asks for churn ROC AUC at least the best reference + 0.01 on the mean of the CDNOW grid
(bench/accuracy.py). This bench measures what a model of churnclv's kind reaches when it is given
what no forecast has: the realised window's own labels. For every setup, on the customers known at
as-of:

- ``hindsight_window``: LightGBM on churnclv's features at as-of (``compute_features``) plus BG/NBD's
  and Pareto/NBD's P(no purchase in H) as features, trained on the realised churn of (as-of,
  as-of + H] and scored out of fold (5 folds over customers, stratified, 2 seeds averaged): each
  customer is scored by a model that saw the same window for the others. Of three settings
  (``SETTINGS``), the best AUC counts.
- ``hindsight_stacked``: the same with more rows, as churnclv's training stacks cutoffs: the rows of
  every cutoff 30, 60, 90, ... days before as-of after CDNOW's acquisition quarter (up to 12), with
  their own realised windows, join each fold's training part, for the fold's training customers
  only (one seed, the first two settings).
- ``hindsight_blend``: either model's out-of-fold log-odds blended with Pareto/NBD's, the model, the
  setting and the weight (0 to 1 in steps of 0.05) chosen for the best AUC on the very labels it is
  scored on.

All three are optimistic on purpose (the labels of the window, the setting and the weight picked
afterwards): an estimate of what this information holds, not a model anyone can ship. With
``--churnclv`` the bench also trains and scores churnclv through its CLI as bench/accuracy.py does,
in the same run.

    .venv/bin/python bench/accuracy_hindsight.py                          # the 27 setups, ~20 min
    .venv/bin/python bench/accuracy_hindsight.py --churnclv               # and churnclv (~25 min more)
    .venv/bin/python bench/accuracy_hindsight.py --setups 1997-08-31:90
"""

from __future__ import annotations

import datetime as dt
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from accuracy import cdnow_data, churnclv_scores, grid, known_at, parse_setup, purchase_days, rfm, window_truth
from accuracy_references import btyd_reference
from common import Results, bench_parser
from lifetimes.utils import ConvergenceError

import churnclv as cc

SETTINGS = (
    {"num_leaves": 7, "min_child_samples": 100, "n_estimators": 300, "learning_rate": 0.03},
    {"num_leaves": 15, "min_child_samples": 50, "n_estimators": 300, "learning_rate": 0.03},
    {"num_leaves": 31, "min_child_samples": 100, "n_estimators": 200, "learning_rate": 0.05},
)
FOLDS, SEEDS = 5, (0, 1)
WEIGHTS = np.linspace(0.0, 1.0, 21)
KINDS = ("bgnbd", "pareto")
HINDSIGHT = ("hindsight_window", "hindsight_stacked", "hindsight_blend")
STEP_DAYS, EARLIER = 30, 12  # the stacked variant adds the cutoffs every 30 days before as-of ...
FIRST_CUTOFF = dt.date(1997, 3, 31)  # ... that are after CDNOW's acquisition period (its first quarter)
KINDS = ("bgnbd", "pareto")
HINDSIGHT = ("hindsight_window", "hindsight_stacked", "hindsight_blend")


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def out_of_fold(
    at: list[tuple[pd.DataFrame, np.ndarray]], setting: dict, seeds: tuple[int, ...], threads: int = 2
) -> np.ndarray:
    """Churn probabilities of the customers of ``at[0]`` (as-of), each from the folds that left the
    customer out, averaged over seeds. The rows of the other cutoffs (``at[1:]``, indexed by customer)
    join a fold's training rows when their customer is in that fold's training part. ``threads``:
    LightGBM's, one per core of this machine (a test beside other work takes 1: OpenMP threads that
    wait for a busy core spin, 2.7 s alone became 39 s in the suite)."""
    import lightgbm as lgb
    from sklearn.model_selection import StratifiedKFold

    x, y = at[0]
    oof = np.zeros(len(y))
    for seed in seeds:
        for fit_rows, score_rows in StratifiedKFold(FOLDS, shuffle=True, random_state=seed).split(x, y):
            fit_ids = x.index[fit_rows]
            xs, ys = [x.iloc[fit_rows]], [y[fit_rows]]
            for xe, ye in at[1:]:
                keep = xe.index.isin(fit_ids)
                xs.append(xe[keep])
                ys.append(ye[keep])
            model = lgb.LGBMClassifier(**setting, random_state=seed, verbose=-1, n_jobs=threads)
            model.fit(pd.concat(xs), np.concatenate(ys))
            oof[score_rows] += model.predict_proba(x.iloc[score_rows])[:, 1] / len(seeds)
    return oof


def labelled(cutoff: dt.date, horizon: int, days: pd.DataFrame, data: Path) -> tuple[pd.DataFrame, np.ndarray, dict]:
    """Features at ``cutoff`` (churnclv's, with BG/NBD's and Pareto/NBD's P(no purchase) in the
    horizon), the realised churn of (cutoff, cutoff + horizon], and the two references' probabilities."""
    customers = known_at(days, cutoff)
    truth = window_truth(days, customers, cutoff, horizon)
    now = rfm(days, customers, cutoff)
    refs = {kind: btyd_reference(now, horizon, kind)["p_churn"].reindex(customers) for kind in KINDS}
    feats = cc.compute_features(str(data), str(cutoff)).set_index("customer_id").reindex(customers)
    x = feats.select_dtypes(include=["number", "bool"]).astype(float)
    for kind, p in refs.items():
        x[f"p_{kind}"] = p.to_numpy()
    return x, truth["churned"].astype(int).to_numpy(), refs


def hindsight(setup, days: pd.DataFrame, data: Path) -> dict[str, float]:
    from sklearn.metrics import roc_auc_score

    x, y, refs = labelled(setup.as_of, setup.horizon, days, data)
    earlier = [setup.as_of - dt.timedelta(days=k * STEP_DAYS) for k in range(1, EARLIER + 1)]
    stacked = [(x, y)]
    for cutoff in (c for c in earlier if c >= FIRST_CUTOFF):
        try:
            stacked.append(labelled(cutoff, setup.horizon, days, data)[:2])
        except ConvergenceError:  # a reference's fit at an early cutoff: that cutoff's rows are left out
            print(f"{setup.label}: BTYD did not converge at the cutoff {cutoff}, left out", flush=True)
    auc: dict[str, float] = {kind: float(roc_auc_score(y, p)) for kind, p in refs.items()}
    z_pareto = _logit(refs["pareto"].to_numpy())
    best = dict.fromkeys(HINDSIGHT, 0.0)
    variants = (
        ("hindsight_window", [(x, y)], SEEDS, SETTINGS),
        ("hindsight_stacked", stacked, SEEDS[:1], SETTINGS[:2]),
    )
    for name, at, seeds, settings in variants:
        for setting in settings:
            z = _logit(out_of_fold(at, setting, seeds))
            best[name] = max(best[name], roc_auc_score(y, z))
            blend = max(roc_auc_score(y, w * z + (1 - w) * z_pareto) for w in WEIGHTS)
            best["hindsight_blend"] = max(best["hindsight_blend"], blend)
    auc.update({k: float(v) for k, v in best.items()})
    auc["stacked_cutoffs"] = len(stacked)
    auc["churn_rate"] = float(y.mean())
    auc["customers"] = len(y)
    return auc


def main() -> int:
    ap = bench_parser(__file__, __doc__.split("\n\n")[0])
    ap.add_argument(
        "--setups", nargs="+", type=parse_setup, help="AS_OF:HORIZON, e.g. 1997-08-31:90 (default: the grid)"
    )
    ap.add_argument("--work", type=Path, default=Path("work/bench-accuracy"), help="where CDNOW is cached")
    ap.add_argument("--churnclv", action="store_true", help="also train and score churnclv (its CLI) per setup")
    ap.add_argument("--config", type=Path, default=None, help="with --churnclv: a training configuration")
    args = ap.parse_args()
    out = Results(args.json, __file__)
    warnings.filterwarnings("ignore")
    args.work.mkdir(parents=True, exist_ok=True)
    data = cdnow_data(args.work)
    days = purchase_days(pd.read_parquet(data / "transactions.parquet"))
    models = [
        "bgnbd",
        "pareto",
        *(["churnclv"] if args.churnclv else []),
        "hindsight_window",
        "hindsight_stacked",
        "hindsight_blend",
    ]
    print(f"| setup | churn AUC: {' / '.join(models)} | hindsight blend - pareto |")
    print("|---|---|---|")
    for s in args.setups or grid():
        auc = hindsight(s, days, data)
        if args.churnclv:
            from sklearn.metrics import roc_auc_score

            scores, _ = churnclv_scores(s, data, args.work, args.config)
            customers = known_at(days, s.as_of)
            truth = window_truth(days, customers, s.as_of, s.horizon)
            auc["churnclv"] = float(roc_auc_score(truth["churned"].astype(int), scores["p_churn"].reindex(customers)))
        cells = " / ".join(f"{auc[m]:.4f}" for m in models)
        print(f"| {s.label} | {cells} | {auc['hindsight_blend'] - auc['pareto']:+.4f} |", flush=True)
        out.records.append({"setup": s.label, **auc})
    rows = pd.DataFrame(out.records).set_index("setup")
    gain = rows["hindsight_blend"] - rows["pareto"]
    print(f"\nmean churn AUC over {len(rows)} setup(s): " + ", ".join(f"{m} {rows[m].mean():.4f}" for m in models))
    print(
        f"hindsight blend - pareto: mean {gain.mean():+.4f}, median {gain.median():+.4f}, "
        f"largest {gain.max():+.4f} ({gain.idxmax()}), setups with +0.01 or more: {int((gain >= 0.01).sum())}"
    )
    out.headline(
        f"churn AUC in hindsight (blend), mean of {len(rows)} CDNOW setup(s)",
        rows["hindsight_blend"].mean(),
        reference=rows["pareto"].mean(),
        reference_name="Pareto/NBD",
    )
    if args.churnclv:
        out.headline(
            f"churn AUC, churnclv, mean of {len(rows)} CDNOW setup(s)",
            rows["churnclv"].mean(),
            reference=rows["hindsight_blend"].mean(),
            reference_name="hindsight blend",
        )
    out.write()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
