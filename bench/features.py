"""Benchmark: the Ibis/DuckDB feature job against a plain pandas groupby implementation.

For each size, a synthetic world is generated once with ``churnclv.generate`` (rate scales giving
about 50 transaction lines and 100 events per customer) and cached as Parquet. Each run is a fresh
subprocess doing the same thing end to end: read the Parquet tables, compute every feature of the
catalogue as of one date, write a Parquet file. The subprocess reports its wall time, its CPU time
and its peak RSS (``getrusage(RUSAGE_SELF)``, DuckDB's native memory included). The two outputs are
then compared column by column (relative tolerance 1e-9). Finally the in-memory path (one
customer's frames, as the HTTP service calls it) is timed.

The pandas reference (``churnclv.features.reference``) holds strings as categoricals; past
``--pandas-chunk`` customers it runs over ranges of customer ids, because all at once it needs more
than 21 GB at 1M customers.

Usage::

    python bench/features.py --sizes 100000 1000000 --repeats 3 --pandas-repeats 1

The machine may be shared: quote medians and the spread, and the CPU time next to the wall time.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

AS_OF = "2025-09-30"
PURCHASE_RATE_SCALE = 3.5  # about 50 transaction lines per customer (see churnclv.generate.WorldConfig)
EVENT_RATE_SCALE = 3.4  # about 100 events per customer


# --------------------------------------------------------------------------- workers (subprocesses)


def _usage(wall: float) -> str:
    """Wall time, CPU time (user + system) and peak RSS of this process, as JSON."""
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    # ru_maxrss is in kB on Linux; it covers DuckDB's native allocations too
    return json.dumps({"wall": wall, "cpu": r.ru_utime + r.ru_stime, "rss_mb": r.ru_maxrss / 1024})


def worker_ibis(data: Path, out: Path, memory_limit: str, threads: int) -> None:
    from churnclv.features import write_features

    t = time.perf_counter()
    write_features(data, AS_OF, out, memory_limit=memory_limit, threads=threads, temp_directory=out.parent / "spill")
    print(_usage(time.perf_counter() - t))


def worker_pandas(data: Path, out: Path, chunks: int) -> None:
    """The pandas reference end to end; with ``chunks > 1``, over that many ranges of customer ids."""
    import pandas as pd
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    from churnclv.features.reference import reference_features

    t = time.perf_counter()

    def read(name: str, lo: str | None, hi: str | None, **kw) -> pd.DataFrame:
        f = None
        if lo is not None:
            f = pc.field("customer_id") >= lo
        if hi is not None:
            f = (pc.field("customer_id") < hi) if f is None else f & (pc.field("customer_id") < hi)
        table = ds.dataset(data / f"{name}.parquet").to_table(filter=f, **kw)
        # dictionary-encoded strings become categoricals: the kindest way to hold 100M ids in pandas
        strings = [c for c in ("customer_id", "channel", "category", "event_type") if c in table.column_names]
        for c in strings:
            table = table.set_column(table.column_names.index(c), c, pc.dictionary_encode(table[c]))
        return table.to_pandas(self_destruct=True)

    bounds: list[str | None] = [None, None]
    if chunks > 1:  # ranges of ids with equal numbers of customers (every customer is in customers)
        ids = ds.dataset(data / "customers.parquet").to_table(columns=["customer_id"])["customer_id"]
        ids = ids.take(pc.sort_indices(ids))
        step = len(ids) // chunks
        bounds = [None, *(ids[k * step].as_py() for k in range(1, chunks)), None]
    parts = []
    for lo, hi in itertools.pairwise(bounds):
        parts.append(
            reference_features(
                read("transactions", lo, hi),
                read("events", lo, hi, columns=["customer_id", "ts", "event_type"]),
                read("customers", lo, hi),
                as_of=AS_OF,
            )
        )
    frame = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    frame.to_parquet(out, index=False)
    print(_usage(time.perf_counter() - t))


def worker_latency(data: Path, n_calls: int) -> None:
    """Latency of compute_features_frames for one customer (first call compiles, then cached)."""
    import pyarrow.parquet as pq

    from churnclv.features import compute_features_frames

    # the first row group holds the first block of customers: enough to pick 20 buyers from
    tables = {
        name: pq.ParquetFile(data / f"{name}.parquet").read_row_group(0).to_pandas()
        for name in ("transactions", "events", "customers")
    }
    buyers = tables["transactions"]["customer_id"].drop_duplicates().head(20)
    frames = [tuple(t[t["customer_id"] == cid] for t in tables.values()) for cid in buyers]
    t = time.perf_counter()
    compute_features_frames(*frames[0], as_of=AS_OF)
    first = time.perf_counter() - t
    times = []
    for i in range(n_calls):
        t = time.perf_counter()
        compute_features_frames(*frames[i % len(frames)], as_of=AS_OF)
        times.append(time.perf_counter() - t)
    times.sort()
    print(
        json.dumps(
            {
                "first_ms": first * 1e3,
                "median_ms": statistics.median(times) * 1e3,
                "p90_ms": times[int(0.9 * len(times))] * 1e3,
                "lines": sum(len(f[0]) for f in frames) / len(frames),
                "events": sum(len(f[1]) for f in frames) / len(frames),
            }
        )
    )


# --------------------------------------------------------------------------- driver


def ensure_world(n: int, cache: Path, seed: int) -> Path:
    from churnclv.generate import generate_world_to_parquet
    from churnclv.generator.world import WorldConfig

    data = cache / f"world_{n}_s{seed}_p{PURCHASE_RATE_SCALE}_e{EVENT_RATE_SCALE}"
    if not (data / "_complete").exists():
        print(f"generating {n:,} customers into {data} ...", file=sys.stderr, flush=True)
        config = WorldConfig(
            n_customers=n, seed=seed, purchase_rate_scale=PURCHASE_RATE_SCALE, event_rate_scale=EVENT_RATE_SCALE
        )
        generate_world_to_parquet(config, data, n_jobs=2)
        (data / "_complete").touch()
    return data


def run_worker(args: list[str]) -> dict | None:
    """Run one measurement in a fresh interpreter; None when it fails (e.g. killed out of memory)."""
    cmd = [sys.executable, __file__, "--worker", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        why = "killed (out of memory?)" if proc.returncode == -9 else f"exit {proc.returncode}"
        print(f"worker {' '.join(args)} failed: {why}\n{proc.stderr[-2000:]}", file=sys.stderr, flush=True)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def compare(ibis_out: Path, pandas_out: Path) -> tuple[bool, str]:
    import numpy as np
    import pandas as pd

    a = pd.read_parquet(ibis_out).sort_values("customer_id").reset_index(drop=True)
    b = pd.read_parquet(pandas_out).sort_values("customer_id").reset_index(drop=True)
    if list(a.columns) != list(b.columns) or len(a) != len(b):
        return False, f"shape/columns differ: {a.shape} vs {b.shape}"
    bad = []
    for col in a.columns:
        x, y = a[col], b[col]
        if x.dtype.kind in "fiu" or y.dtype.kind in "fiu" or str(x.dtype) in ("Int64", "Float64"):
            xv = pd.to_numeric(x).astype("float64").to_numpy()
            yv = pd.to_numeric(y).astype("float64").to_numpy()
            same_null = np.array_equal(np.isnan(xv), np.isnan(yv))
            close = np.allclose(xv, yv, rtol=1e-9, atol=1e-9, equal_nan=True)
            if not (same_null and close):
                bad.append(col)
        elif not x.astype("str").equals(y.astype("str")):
            bad.append(col)
    return not bad, f"all {len(a.columns)} columns" if not bad else f"differ: {bad}"


def fmt_runs(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.median(values):.1f} [{min(values):.1f}-{max(values):.1f}]"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=3, help="runs of the Ibis/DuckDB job per size")
    parser.add_argument("--pandas-repeats", type=int, default=1, help="runs of the pandas reference per size")
    parser.add_argument(
        "--pandas-chunk",
        type=int,
        default=250_000,
        help="pandas processes at most this many customers at a time (0: all at once; "
        "all at once needs more than 21 GB at 1M customers)",
    )
    parser.add_argument("--memory-limit", default="1500MB", help="DuckDB memory limit of the Ibis job")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "churnclv-bench-features")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--latency-calls", type=int, default=200)
    parser.add_argument("--skip-pandas", action="store_true")
    parser.add_argument("--worker", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        kind, *rest = args.worker
        if kind == "ibis":
            worker_ibis(Path(rest[0]), Path(rest[1]), rest[2], int(rest[3]))
        elif kind == "pandas":
            worker_pandas(Path(rest[0]), Path(rest[1]), int(rest[2]))
        else:
            worker_latency(Path(rest[0]), int(rest[1]))
        return 0

    import pyarrow.parquet as pq

    args.cache.mkdir(parents=True, exist_ok=True)
    print(
        f"# features as of {AS_OF}; {os.cpu_count()} cores; DuckDB memory limit {args.memory_limit}, "
        f"{args.threads} threads; median [min-max] over runs; CPU s = user + system time of the run; "
        f"load average at start {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    rows = [
        (
            "| customers | tx lines | events | engine | runs | wall s | CPU s | peak RSS MB | vs pandas (wall) "
            "| outputs agree |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    latency = None
    for n in args.sizes:
        data = ensure_world(n, args.cache, args.seed)
        n_tx = pq.ParquetFile(data / "transactions.parquet").metadata.num_rows
        n_ev = pq.ParquetFile(data / "events.parquet").metadata.num_rows
        work = Path(tempfile.mkdtemp(prefix="churnclv-bench-out-"))
        ibis_out, pandas_out = work / "ibis.parquet", work / "pandas.parquet"
        ibis_runs = [
            r
            for r in (
                run_worker(["ibis", str(data), str(ibis_out), args.memory_limit, str(args.threads)])
                for _ in range(args.repeats)
            )
            if r
        ]
        chunks = 1 if not args.pandas_chunk else max(1, -(-n // args.pandas_chunk))
        pandas_runs = (
            []
            if args.skip_pandas
            else [
                r
                for r in (
                    run_worker(["pandas", str(data), str(pandas_out), str(chunks)]) for _ in range(args.pandas_repeats)
                )
                if r
            ]
        )
        prefix = f"| {n:,} | {n_tx:,} | {n_ev:,} |"
        speed, agree = "-", "-"
        if ibis_runs and pandas_runs:
            ratio = statistics.median(r["wall"] for r in pandas_runs) / statistics.median(r["wall"] for r in ibis_runs)
            speed = f"{ratio:.1f}x faster"
            ok, detail = compare(ibis_out, pandas_out)
            agree = ("yes, " if ok else "NO, ") + detail
        for name, runs, extra in (
            ("ibis + duckdb", ibis_runs, speed),
            (f"pandas ({chunks} chunk{'s' if chunks > 1 else ''})", pandas_runs, ""),
        ):
            if runs:
                row = (
                    f"{prefix} {name} | {len(runs)} | {fmt_runs([r['wall'] for r in runs])} | "
                    f"{fmt_runs([r['cpu'] for r in runs])} | {fmt_runs([r['rss_mb'] for r in runs])} | "
                    f"{extra} | {agree if extra else ''} |"
                )
            elif name.startswith("ibis") or not args.skip_pandas:
                row = f"{prefix} {name} | 0 | failed | | | | |"
            else:
                continue
            rows.append(row)
            print(row, flush=True)
        shutil.rmtree(work, ignore_errors=True)
        if latency is None and args.latency_calls:
            latency = run_worker(["latency", str(data), str(args.latency_calls)])
    print()
    print("\n".join(rows))
    if latency:
        print(
            f"\none customer in memory (compute_features_frames, {latency['lines']:.0f} lines and "
            f"{latency['events']:.0f} events on average): first call {latency['first_ms']:.0f} ms "
            f"(compiles the SQL), then median {latency['median_ms']:.1f} ms, p90 {latency['p90_ms']:.1f} ms"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
