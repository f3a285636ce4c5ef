"""TreeSHAP contributions: churnclv.models.treeshap.FastTreeShap against LightGBM's pred_contrib.

Same model, same rows, same run, the two interleaved; each cell is the median of several repeats
(of many calls for 1 and 16 rows). Prints a markdown table and the largest difference between the
two. By default the model is trained here on synthetic data shaped like the churn model (55
features, some NaN, two categorical, binary objective, 80 rounds, num_leaves 31, max_depth 6);
``--model`` loads a LightGBM model text file instead and ``--data`` draws rows from a Parquet file.

    .venv/bin/python bench/treeshap.py
    .venv/bin/python bench/treeshap.py --rows 20000 --repeats 3
    .venv/bin/python bench/treeshap.py --model churn.txt --data features.parquet
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import lightgbm as lgb
import numba
import numpy as np
import pandas as pd
from common import Goal, Results, bench_parser

from churnclv.models.treeshap import FastTreeShap

N_FEATURES = 55
CATEGORICAL = (0, 1)  # a 6-level and a 30-level categorical


def synthetic_rows(n: int, rng: np.random.Generator) -> np.ndarray:
    """Churn-like features: counts with many zeros, amounts, rates, NaN, two categoricals."""
    X = np.empty((n, N_FEATURES))
    X[:, 0] = rng.integers(0, 6, n)
    X[:, 1] = rng.integers(0, 30, n)
    X[:, 2:20] = rng.poisson(rng.uniform(0.2, 4.0, 18), size=(n, 18))  # counts, zeros common
    X[:, 20:35] = rng.lognormal(3.0, 1.0, size=(n, 15))  # amounts
    X[:, 35:55] = rng.normal(size=(n, 20))  # rates, trends, scores
    X[:, 2:][rng.random((n, N_FEATURES - 2)) < 0.05] = np.nan
    X[:, 1][rng.random(n) < 0.02] = np.nan
    return X


def synthetic_model(rng: np.random.Generator) -> lgb.Booster:
    X = synthetic_rows(50_000, rng)
    Z = np.nan_to_num(X)
    logit = (
        -0.5
        + 0.4 * np.log1p(Z[:, 2])
        - 0.3 * np.log1p(Z[:, 3])
        + 0.2 * Z[:, 35]
        - 0.3 * Z[:, 36] * (Z[:, 4] > 1)
        + 0.5 * (X[:, 0] == 2)
        + 0.3 * np.isin(X[:, 1], [3, 7, 11])
        + 0.1 * np.log(Z[:, 20] + 1)
        - 0.2 * np.isnan(X[:, 5])
        + 0.3 * Z[:, 37:45].sum(1) / 3
    )
    y = rng.random(len(X)) < 1.0 / (1.0 + np.exp(-logit))
    params = {
        "objective": "binary",
        "num_leaves": 31,
        "max_depth": 6,
        "learning_rate": 0.05,
        "min_data_in_leaf": 50,
        "feature_fraction": 0.9,
        "lambda_l2": 1.0,
        "deterministic": True,
        "verbose": -1,
    }
    train_set = lgb.Dataset(X, y, categorical_feature=list(CATEGORICAL))
    return lgb.train(params, train_set, num_boost_round=80)


def parquet_rows(path: Path, booster: lgb.Booster, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` random rows of the booster's features from a Parquet file, as a float matrix."""
    names = booster.feature_name()
    frame = pd.read_parquet(path, columns=names)
    frame = frame.iloc[rng.integers(0, len(frame), n)].reset_index(drop=True)
    levels = iter(booster.pandas_categorical or [])
    out = np.empty((n, len(names)))
    for j, name in enumerate(names):
        col = frame[name]
        if pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
            out[:, j] = col.to_numpy(dtype=np.float64, na_value=np.nan)
            continue
        cats = next(levels, None)
        if cats is None:
            sys.exit(
                f"column {name!r} is not numeric and the model has no pandas categories to "
                "map it with; pass a Parquet file of the model's float features"
            )
        codes = pd.Categorical(col, categories=cats).codes.astype(np.float64)
        out[:, j] = np.where(codes < 0, np.nan, codes)
    return out


def median_seconds(fn: Callable[[], object], calls: int) -> float:
    times = []
    for _ in range(calls):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = bench_parser(__file__, __doc__)
    ap.add_argument("--model", type=Path, help="LightGBM model text file (default: train one)")
    ap.add_argument("--data", type=Path, help="Parquet file to draw rows from (with --model)")
    ap.add_argument("--rows", type=int, default=100_000, help="rows of the large batch")
    ap.add_argument("--repeats", type=int, default=3, help="repeats of the large batch")
    ap.add_argument("--calls", type=int, default=300, help="calls per repeat for 1 and 16 rows")
    ap.add_argument("--threads", default="1,2", help="thread counts, comma separated")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.model and args.data is None:
        ap.error("--model needs --data (a Parquet file with the model's feature columns)")
    try:
        threads = [int(s) for s in args.threads.split(",")]
    except ValueError:
        ap.error(f"--threads {args.threads}: thread counts separated by commas, e.g. 1,2")
    results = Results(args.json, __file__)
    rng = np.random.default_rng(args.seed)

    if args.model:
        booster = lgb.Booster(model_file=str(args.model))
        M = parquet_rows(args.data, booster, args.rows, rng)
        source = f"{args.model.name}, rows from {args.data.name}"
    else:
        booster = synthetic_model(rng)
        M = synthetic_rows(args.rows, rng)
        source = "synthetic churn-like model"

    t = time.perf_counter()
    ex = FastTreeShap.from_booster(booster)
    build = time.perf_counter() - t
    t = time.perf_counter()
    ex.warm_up()
    warm = time.perf_counter() - t

    rows = []
    max_diff = max_contrib = 0.0
    for n in (1, 16, args.rows):
        X = M[:n]
        for th in threads:

            def ours(X: np.ndarray = X, th: int = th) -> np.ndarray:
                return ex.contributions(X, num_threads=th)

            def theirs(X: np.ndarray = X, th: int = th) -> np.ndarray:
                return booster.predict(X, pred_contrib=True, num_threads=th)

            ours(), theirs()
            calls = args.calls if n < 1_000 else 1
            repeats = 5 if n < 1_000 else args.repeats
            a, b = [], []
            for _ in range(repeats):  # interleaved, so both see the same machine
                a.append(median_seconds(ours, calls))
                b.append(median_seconds(theirs, calls))
            rows.append((n, th, statistics.median(a), statistics.median(b)))
            if n == args.rows and th == threads[0]:
                ref = theirs()
                max_diff = float(np.abs(ours() - ref[:, :-1]).max())
                max_contrib = float(np.abs(ref).max())

    print(
        f"Model: {source}; {booster.num_trees()} trees, {booster.num_feature()} features, "
        f"max path depth {ex.max_path_depth_}, tables {ex.table_bytes_ / 2**20:.1f} MiB, "
        f"compiled in {build:.2f} s (+{warm:.2f} s warm-up)."
    )
    print(
        f"numba {numba.__version__} ({numba.threading_layer()} threads), "
        f"lightgbm {lgb.__version__}, {numba.config.NUMBA_NUM_THREADS} cores."
    )
    print()
    print("| rows | threads | ours rows/s | ours ms / 1k rows | LightGBM rows/s | LightGBM ms / 1k rows | speed-up |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for n, th, a, b in rows:
        print(
            f"| {n:,} | {th} | {n / a:,.0f} | {a / n * 1e6:,.2f} | {n / b:,.0f} | {b / n * 1e6:,.2f} | {b / a:,.1f}x |"
        )
        results.records.append({"rows": n, "threads": th, "ours_rows_per_s": n / a, "lightgbm_rows_per_s": n / b})
        if n in (1, args.rows) and th == threads[0]:
            results.headline(
                f"TreeSHAP rows/s, {n:,} row(s) per call, {th} thread(s)",
                n / a,
                "rows/s",
                n / b,
                "LightGBM pred_contrib",
            )
    print()
    print(
        f"Max |ours - pred_contrib| over {args.rows:,} rows: {max_diff:.2e} (largest |contribution| {max_contrib:.2f})."
    )
    results.headline("TreeSHAP, max |ours - pred_contrib|", max_diff, reference_name="", goal=Goal("ours", "<=", 1e-9))
    results.write()


if __name__ == "__main__":
    main()
