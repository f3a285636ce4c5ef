"""Batch scoring end to end: features, scoring and writing for N generated customers.

Each size runs :func:`churnclv.serving.batch.run_batch` (what ``churnclv score-batch --trusted``
runs) in a child process and reads that child's peak RSS from ``os.wait4`` (the job is one process:
DuckDB and LightGBM run inside it). Stage times come from the partition's manifest. Worlds and the
model are cached under ``--work``. ``--no-reasons`` skips the TreeSHAP reasons (most of the scoring
time) to show the rest of the pipeline.

    .venv/bin/python bench/batch.py --customers 1000000 --repeat 3
    .venv/bin/python bench/batch.py --customers 1000000 2000000 10000000 --repeat 1

Without ``--model`` it trains a model on a sample world (``--sample``, default 20,000 customers;
``--train-config fast``: 80 boosting rounds, the tests' settings; ``default``: the shipped training
configuration). Goals (issue 21): 1M customers within 40 s on 2 cores with reasons; 10M within 4 GB.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
from pathlib import Path

from common import FAST_CONFIG, Goal, Results, bench_parser, cli, rows_of, run, world

from churnclv.names import DEFAULT_MODEL_URI
from churnclv.serving.snapshots import manifest_path

AS_OF = "2025-10-02"
RUNNER = "import json, sys; from churnclv.serving.batch import run_batch; run_batch(**json.loads(sys.argv[1]))"


def model(work: Path, config: str, sample_size: int) -> str:
    store = work / f"mlruns-{config}-{sample_size}"
    uri = f"sqlite:///{store}/mlflow.db"
    if (store / "mlflow.db").is_file():
        return uri
    sample, _ = world(work, sample_size, 8)
    args = ["train", "--data", str(sample), "--trusted", "--as-of", AS_OF, "--tracking-uri", uri]
    if config == "fast":
        (work / "fast.toml").write_text(FAST_CONFIG)
        args += ["--config", str(work / "fast.toml")]
    print(f"training a model ({config} config) on {sample_size:,} customers ...", flush=True)
    wall, _, rc = run(cli(*args), work / f"train-{config}.log")
    if rc:
        shutil.rmtree(store, ignore_errors=True)
        sys.exit(f"training failed: see {work / f'train-{config}.log'}")
    print(f"  trained in {wall:.0f} s", flush=True)
    return uri


def main() -> None:
    ap = bench_parser(__file__, __doc__)
    ap.add_argument("--customers", type=int, nargs="+", default=[1_000_000])
    ap.add_argument("--repeat", type=int, default=1, help="Runs per size (the table shows the median).")
    ap.add_argument("--work", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "churnclv-bench")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--chunk-size", type=int, default=200_000)
    ap.add_argument("--memory-limit", default=None, help="DuckDB memory limit (the job's default: 2GB).")
    ap.add_argument("--model", default=None, help="Model URI (default: train one on a sample).")
    ap.add_argument("--tracking-uri", default=None)
    ap.add_argument("--train-config", choices=["fast", "default"], default="fast")
    ap.add_argument("--sample", type=int, default=20_000, help="Customers of the world the model is trained on.")
    ap.add_argument("--no-reasons", action="store_true", help="Skip the reasons (TreeSHAP).")
    ap.add_argument("--keep", action="store_true", help="Keep the output partitions.")
    args = ap.parse_args()
    results = Results(args.json, __file__)

    args.work.mkdir(parents=True, exist_ok=True)
    tracking = args.tracking_uri or (None if args.model else model(args.work, args.train_config, args.sample))
    model_uri = args.model or DEFAULT_MODEL_URI
    rows = []
    for n in args.customers:
        path, gen_s = world(args.work, n, args.seed)
        if gen_s is not None:
            print(f"generated {n:,} customers in {gen_s:.0f} s", flush=True)
        runs = []
        for r in range(args.repeat):
            out = args.work / f"out-{n}"
            shutil.rmtree(out, ignore_errors=True)
            job = {
                "clean": str(path),
                "as_of": AS_OF,
                "out": str(out),
                "model_uri": model_uri,
                "tracking_uri": tracking,
                "chunk_size": args.chunk_size,
                "memory_limit": args.memory_limit,
                "reasons": not args.no_reasons,
                "progress": False,
            }
            cmd = [sys.executable, "-c", RUNNER, json.dumps(job)]
            wall, rss, rc = run(cmd, args.work / f"batch-{n}-{r}.log")
            if rc:
                sys.exit(f"score-batch failed: see {args.work / f'batch-{n}-{r}.log'}")
            manifest = json.loads(manifest_path(out, AS_OF).read_text())
            runs.append(
                {"wall": wall, "rss": rss, **manifest["timings_s"], "written": manifest["counts"]["rows_written"]}
            )
            print(f"  {n:>11,} run {r + 1}: {wall:6.1f} s, peak {rss:.2f} GB", flush=True)
            if not args.keep:
                shutil.rmtree(out, ignore_errors=True)
        med = {k: statistics.median(x[k] for x in runs) for k in runs[0]}
        rows.append((n, rows_of(path, "transactions"), rows_of(path, "events"), med, len(runs)))

    print()
    print(
        f"batch scoring as of {AS_OF}, chunk {args.chunk_size:,}, model {model_uri} "
        f"({args.train_config if not args.model else 'given'}), reasons {'off' if args.no_reasons else 'on'}, "
        f"{os.cpu_count()} cores; median of runs"
    )
    head = (
        f"{'customers':>11} {'tx lines':>11} {'events':>11} {'runs':>4} {'features s':>10} {'score s':>8} "
        f"{'write s':>8} {'report s':>8} {'wall s':>7} {'cust/s':>8} {'peak RSS GB':>11}"
    )
    print(head)
    print("-" * len(head))
    for n, tx, ev, m, k in rows:
        print(
            f"{n:>11,} {tx:>11,} {ev:>11,} {k:>4} {m['features']:>10.1f} {m['score']:>8.1f} "
            f"{m.get('write', 0):>8.1f} {m.get('tier_report', 0):>8.1f} {m['wall']:>7.1f} "
            f"{n / m['wall']:>8,.0f} {m['rss']:>11.2f}"
        )
        results.records.append({"customers": n, "tx_lines": tx, "events": ev, "runs": k, **m})
        results.headline(
            f"batch end to end, {n:,} customers, reasons {'off' if args.no_reasons else 'on'} (median of {k})",
            m["wall"],
            "s",
            goal=Goal("ours", "<=", 40.0, "1M customers"),  # issue 21 (with reasons on)
            goal_applies=n == 1_000_000 and not args.no_reasons,
        )
        results.headline(
            f"batch peak RSS, {n:,} customers",
            m["rss"],
            "GB",
            goal=Goal("ours", "<=", 4.0, "10M customers"),  # issue 21
            goal_applies=n == 10_000_000,
        )
    results.write()


if __name__ == "__main__":
    main()
