"""Single-row latency of churnclv.models.gbm: each figure the median of ``--calls`` calls.

A churn classifier and a spend regressor (300 rounds, no early stopping) are fitted on ``--rows``
synthetic rows (25 numeric features and two categoricals); then, ``--reps`` times, the latency of
``predict_proba``, ``predict``, ``explain`` and the frame-to-matrix step on one row, next to the bare
LightGBM booster on the same row, and the throughput of ``predict_proba`` on every row.

    .venv/bin/python bench/gbm_latency.py --rows 20000 --calls 1000 --reps 3
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
from common import Results, bench_parser

import churnclv.models.gbm as gbm


def med_ms(f: Callable[[], object], calls: int) -> float:
    """Median milliseconds of ``calls`` calls, after one warm-up call."""
    f()
    ts = []
    for _ in range(calls):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts) * 1e3)


def main() -> None:
    ap = bench_parser(__file__, __doc__)
    ap.add_argument("--rows", type=int, default=20_000, help="rows of synthetic training data")
    ap.add_argument("--calls", type=int, default=1_000, help="calls per figure (the median is shown)")
    ap.add_argument("--reps", type=int, default=3, help="repetitions of the whole set of figures")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.rows < 200:
        ap.error(f"--rows {args.rows}: at least 200 (LightGBM needs rows to split on)")
    results = Results(args.json, __file__)

    rng = np.random.default_rng(args.seed)
    n, p = args.rows, 25
    X = pd.DataFrame(rng.normal(size=(n, p)), columns=[f"f{i}" for i in range(p)])
    X["region"] = rng.choice(["north", "south", "east", "west"], n)
    X["acquisition_channel"] = rng.choice(["web", "store", "partner"], n)
    X.insert(0, "customer_id", [f"{i:07d}" for i in range(n)])
    y = rng.random(n) < 1 / (1 + np.exp(-(X.f0 - X.f1 + (X.region == "north"))))
    m = gbm.GBMChurnClassifier(num_boost_round=300, early_stopping_rounds=None).fit(X, y)
    s = gbm.GBMSpendRegressor(num_boost_round=300, early_stopping_rounds=None, validation_fraction=0.0).fit(
        X, np.where(y, 0, np.exp(X.f2 + 3))
    )
    print("trees:", m.booster_.current_iteration(), "features:", len(m.feature_names_))
    row = X.iloc[[min(123, n - 1)]]
    M = m._matrix(row)
    figures: dict[str, Callable[[], object]] = {
        "predict_proba(1 row DataFrame)": lambda: m.predict_proba(row),
        "booster.predict(1 row), num_threads=1": lambda: m.booster_.predict(M, raw_score=True, num_threads=1),
        "booster.predict(1 row), all threads": lambda: m.booster_.predict(M, raw_score=True, num_threads=0),
        "spend predict(1 row)": lambda: s.predict(row),
        "explain(1 row, top_k=3)": lambda: m.explain(row),
        "_matrix(1 row) (DataFrame -> float matrix)": lambda: m._matrix(row),
    }
    per_rep: dict[str, list[float]] = {name: [] for name in figures}
    for rep in range(args.reps):
        for name, f in figures.items():
            per_rep[name].append(med_ms(f, args.calls))
            print(f"[{rep}] {name:54s} {per_rep[name][-1]:7.3f} ms", flush=True)
    t = time.perf_counter()
    m.predict_proba(X)
    dt = time.perf_counter() - t
    print(f"batch predict_proba {n} rows: {dt * 1e3:.1f} ms = {n / dt:,.0f} rows/s")

    ms = {name: statistics.median(v) for name, v in per_rep.items()}
    results.records = [{"call": name, "median_ms": v, "reps": args.reps, "calls": args.calls} for name, v in ms.items()]
    results.records.append({"call": f"batch predict_proba({n} rows)", "rows_per_s": n / dt})
    results.headline(
        "GBM churn predict_proba, one row (median)",
        ms["predict_proba(1 row DataFrame)"],
        "ms",
        ms["booster.predict(1 row), num_threads=1"],
        "the bare LightGBM booster on one row, 1 thread",
    )
    results.write()


if __name__ == "__main__":
    main()
