"""Batch scoring end to end: features, scoring and writing for N generated customers.

Each size runs :func:`churnclv.serving.batch.run_batch` (what ``churnclv score-batch --trusted``
runs, after the process settings its CLI makes: :mod:`churnclv.runtime`) in a child process. Peak
RSS: the largest process's (``os.wait4``: DuckDB and LightGBM run inside the job) and the summed
RSS of the job and its scoring workers (one per core, spawned for the chunks), sampled every
50 ms; the goal reads the larger. Stage times come from the partition's
manifest. Worlds and the model are cached under ``--work``. ``--no-reasons`` skips the reasons
(TreeSHAP and their words) to show the rest of the pipeline.

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
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
from common import FAST_CONFIG, Goal, Results, bench_parser, cli, rows_of, run, world

from churnclv.names import DEFAULT_MODEL_URI
from churnclv.serving.snapshots import manifest_path

AS_OF = "2025-10-02"
# what ``churnclv score-batch`` runs, with the process settings its CLI makes first (churnclv.runtime)
RUNNER = (
    "import json, sys; from churnclv.runtime import disable_huge_pages, freeze_at_exit; disable_huge_pages(); "
    "freeze_at_exit(); from churnclv.serving.batch import run_batch; run_batch(**json.loads(sys.argv[1]))"
)


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


def run_tree(cmd: list[str], log: Path) -> tuple[float, float, float, float, float, int]:
    """Run ``cmd``; returns (wall seconds, CPU seconds of it and its workers, peak RSS in GB of its
    largest process, peak of the summed RSS of it and its worker processes, the largest worker's peak,
    exit status). The sums and the workers' peaks are sampled every 50 ms."""
    start = time.perf_counter()
    peak = 0
    workers: dict[int, int] = {}
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            root = psutil.Process(proc.pid)
            while not done.wait(0.05):
                total = 0
                try:
                    total += root.memory_info().rss
                    for p in root.children(recursive=True):
                        rss = p.memory_info().rss
                        workers[p.pid] = max(workers.get(p.pid, 0), rss)
                        total += rss
                except psutil.Error:
                    continue  # a process ended between the listing and the reading
                peak = max(peak, total)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        done.set()
        sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    # ru_maxrss (KiB) is the largest single process of the tree; the samples sum the processes alive together
    worker = max(workers.values(), default=0) / 2**30
    cpu = usage.ru_utime + usage.ru_stime  # the workers' too: the job waits for them
    return time.perf_counter() - start, cpu, usage.ru_maxrss / 2**20, peak / 2**30, worker, proc.returncode


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
            wall, cpu, rss, tree, worker, rc = run_tree(cmd, args.work / f"batch-{n}-{r}.log")
            if rc:
                sys.exit(f"score-batch failed: see {args.work / f'batch-{n}-{r}.log'}")
            manifest = json.loads(manifest_path(out, AS_OF).read_text())
            runs.append(
                {
                    "wall": wall,
                    "cpu": cpu,
                    "rss": rss,
                    "tree_rss": tree,
                    "worker_rss": worker,
                    **manifest["timings_s"],
                    "written": manifest["counts"]["rows_written"],
                }
            )
            print(
                f"  {n:>11,} run {r + 1}: {wall:6.1f} s, CPU {cpu:6.1f} s, peak {rss:.2f} GB "
                f"(all processes {tree:.2f} GB, largest worker {worker:.2f} GB)",
                flush=True,
            )
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
        f"{'write s':>8} {'report s':>8} {'wall s':>7} {'CPU s':>7} {'cust/s':>8} {'peak RSS GB':>11} "
        f"{'all procs GB':>12}"
    )
    print(head)
    print("-" * len(head))
    for n, tx, ev, m, k in rows:
        print(
            f"{n:>11,} {tx:>11,} {ev:>11,} {k:>4} {m['features']:>10.1f} {m['score']:>8.1f} "
            f"{m.get('write', 0):>8.1f} {m.get('tier_report', 0):>8.1f} {m['wall']:>7.1f} {m['cpu']:>7.1f} "
            f"{n / m['wall']:>8,.0f} {m['rss']:>11.2f} {m['tree_rss']:>12.2f}"
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
            f"batch peak RSS (the job and its scoring workers together), {n:,} customers",
            max(m["rss"], m["tree_rss"]),
            "GB",
            goal=Goal("ours", "<=", 4.0, "10M customers"),  # issue 21
            goal_applies=n == 10_000_000,
        )
    results.write()


if __name__ == "__main__":
    main()
