"""LightGBM fit time on one and two threads, with OpenMP threads spinning (ACTIVE) or sleeping
(PASSIVE) while they wait: why ``churnclv`` sets ``OMP_WAIT_POLICY=PASSIVE`` unless told otherwise.

Each policy runs in a fresh process (OpenMP reads the variable once, when it loads). ``--busy N``
measures again with N single-core busy loops running (a shared machine): that is where spinning hurts.

    .venv/bin/python bench/omp_wait.py --rows 250000 --repeats 3 --busy 1
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

from common import Results, bench_parser

_CHILD = """
import sys, time, numpy as np, lightgbm as lgb
rows, threads, repeats = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(0)
X = rng.normal(size=(rows, 60))
y = (X[:, 0] + rng.normal(size=rows) > 0).astype(float)
params = dict(objective="binary", num_leaves=15, max_depth=6, min_data_in_leaf=100, feature_fraction=0.7,
              bagging_fraction=0.8, bagging_freq=1, lambda_l2=10.0, num_threads=threads, verbose=-1)
for _ in range(repeats):
    t = time.perf_counter()
    lgb.train(params, lgb.Dataset(X, y), 100)
    print(time.perf_counter() - t, flush=True)
"""


def main(argv: list[str] | None = None) -> int:
    ap = bench_parser(__file__, __doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=250_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--busy", type=int, default=1, help="Busy loops for the second table (0: none).")
    args = ap.parse_args(argv)
    results = Results(args.json, __file__)
    for busy in sorted({0, args.busy}):
        medians = measure(args.rows, args.repeats, busy, results)
        results.headline(
            f"LightGBM fit, {args.rows:,} rows, 2 threads, {busy} busy loop(s): OMP_WAIT_POLICY=PASSIVE",
            medians[("PASSIVE", 2)],
            "s",
            medians[("ACTIVE", 2)],
            "OMP_WAIT_POLICY=ACTIVE",
        )
    results.write()
    return 0


def measure(rows: int, repeats: int, busy: int, results: Results) -> dict[tuple[str, int], float]:
    loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
    try:
        return _table(rows, repeats, busy, results)
    finally:
        for p in loops:
            p.kill()
            p.wait()


def _table(rows: int, repeats: int, busy: int, results: Results) -> dict[tuple[str, int], float]:
    """Prints the table; returns the median seconds per (policy, threads)."""
    medians = {}
    print(f"\nLightGBM, {rows:,} rows x 60 features, 100 rounds, {busy} busy loop(s); seconds, median of {repeats}")
    print(f"(load average at start: {os.getloadavg()[0]:.1f})\n")
    print("| OMP_WAIT_POLICY | 1 thread | 2 threads |\n|---|---|---|")
    for policy in ("ACTIVE", "PASSIVE"):
        cells = []
        for threads in (1, 2):
            env = {**os.environ, "OMP_WAIT_POLICY": policy}
            out = subprocess.run(
                [sys.executable, "-c", _CHILD, str(rows), str(threads), str(repeats)],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()
            times = [float(x) for x in out]
            cells.append(f"{statistics.median(times):.2f} ({min(times):.2f}-{max(times):.2f})")
            medians[(policy, threads)] = statistics.median(times)
            results.records.append(
                {"busy_loops": busy, "policy": policy, "threads": threads, "seconds": medians[(policy, threads)]}
            )
        print(f"| {policy} | {' | '.join(cells)} |")
    print(f"\n(load average at end: {os.getloadavg()[0]:.1f}; {time.strftime('%H:%M:%S')})")
    return medians


if __name__ == "__main__":
    raise SystemExit(main())
