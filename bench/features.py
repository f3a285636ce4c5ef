"""Benchmark: the feature job (Ibis + DuckDB) against the minimal DuckDB scan and a pandas groupby.

For each size, a synthetic world is generated once (about 50 transaction lines and 100 events per
customer; ``churnclv.generate`` in a child process) and cached as Parquet under ``--cache``. Every
measurement is a fresh child process of its own (``bench/features_workers.py``) started from this
small driver:

- ``ibis + duckdb``: :func:`churnclv.features.write_features` end to end (read the Parquet tables,
  check their values, compute every feature of the catalogue as of one date, write a Parquet file);
- ``minimal scan``: the reference in the same run, one plain DuckDB query over the same files with
  the same memory limit and threads (per customer: lines, spend, first and last purchase, purchase
  days; events: count, logins, last event), written to Parquet. The feature job and the scan
  alternate, so load on a shared machine hits both alike;
- ``pandas``: the groupby reference (``churnclv.features.reference``, strings as categoricals; past
  ``--pandas-chunk`` customers over ranges of customer ids, because at once it needs more than
  21 GB at 1M customers). Its output is compared with the feature job's column by column (relative
  tolerance 1e-9).

What the figures are: ``wall s`` and ``CPU s`` (user + system) of the work itself, after the
imports. ``peak RSS`` is the child's own high-water mark of resident memory (``VmHWM`` in
``/proc/self/status``: DuckDB's native allocations included, nothing of any other process). It is
not ``ru_maxrss`` (``getrusage`` or ``os.wait4``): Linux carries the parent's peak over into a child
it starts, through ``exec``, so when this driver generated a world before starting a worker, that
worker reported the generator's peak (1.94 GB instead of 0.65 GB at 100k, 3.7 to 4.5 GB instead of
1.7 GB at 1M). Each record in ``--json`` keeps both figures.

Usage::

    python bench/features.py --sizes 100000 1000000 --repeats 3 --pandas-repeats 1

The machine may be shared: quote the load average, the medians and the spread, and the CPU time
next to the wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from common import Goal, Results, bench_parser
from features_workers import EVENT_RATE_SCALE, PURCHASE_RATE_SCALE

WORKERS = Path(__file__).with_name("features_workers.py")
GOAL_SIZE = 1_000_000  # where the issue states the goals (within 2x the minimal scan, within 2 GB)
_MEMORY = re.compile(r"\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KIB|MIB|GIB|TIB)", re.IGNORECASE)


def run_worker(kind: str, *args: object) -> dict[str, Any] | None:
    """One measurement in a fresh interpreter; None when it fails (e.g. killed out of memory)."""
    proc = subprocess.Popen(
        [sys.executable, str(WORKERS), kind, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    out, err = proc.communicate()
    if proc.returncode != 0:
        why = "killed (out of memory?)" if proc.returncode == -9 else f"exit {proc.returncode}"
        print(f"worker {kind} failed: {why}\n{err[-2000:]}", file=sys.stderr, flush=True)
        return None
    return json.loads(out.strip().splitlines()[-1])


def ensure_world(n: int, cache: Path, seed: int) -> Path:
    data = cache / f"world_{n}_s{seed}_p{PURCHASE_RATE_SCALE}_e{EVENT_RATE_SCALE}"
    if not (data / "_complete").exists():
        print(f"generating {n:,} customers into {data} ...", file=sys.stderr, flush=True)
        if run_worker("generate", n, data, seed) is None:  # in a child: its memory is not this driver's
            sys.exit(f"generating {n:,} customers failed")
    return data


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


def _median(runs: list[dict[str, Any]], key: str) -> float | None:
    return statistics.median(r[key] for r in runs) if runs else None


def _at_least(minimum: int) -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is below {minimum}")
        return value

    return parse


def _memory_limit(text: str) -> str:
    if not _MEMORY.fullmatch(text.strip()):
        raise argparse.ArgumentTypeError(f"{text!r} is not a DuckDB memory size: write e.g. 1500MB or 2GB")
    return text.strip()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = bench_parser(__file__, __doc__)
    parser.add_argument("--sizes", type=_at_least(1), nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--repeats", type=_at_least(1), default=3, help="runs of the feature job per size")
    parser.add_argument(
        "--scan-repeats", type=_at_least(0), default=None, help="runs of the minimal scan (default: --repeats)"
    )
    parser.add_argument("--pandas-repeats", type=_at_least(1), default=1, help="runs of the pandas reference")
    parser.add_argument(
        "--pandas-chunk",
        type=_at_least(0),
        default=250_000,
        help="pandas processes at most this many customers at a time (0: all at once; "
        "all at once needs more than 21 GB at 1M customers)",
    )
    parser.add_argument("--memory-limit", type=_memory_limit, default="1500MB", help="DuckDB memory limit (both)")
    parser.add_argument("--threads", type=_at_least(1), default=2, help="DuckDB threads (both)")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "churnclv-bench-features")
    parser.add_argument("--seed", type=_at_least(0), default=0)
    parser.add_argument("--latency-calls", type=_at_least(0), default=200)
    parser.add_argument("--skip-pandas", action="store_true")
    args = parser.parse_args(argv)
    if args.scan_repeats is None:
        args.scan_repeats = args.repeats
    return args


def measure(args: argparse.Namespace, n: int, data: Path, work: Path) -> dict[str, list[dict[str, Any]]]:
    """The feature job and the minimal scan, alternating; then the pandas reference."""
    runs: dict[str, list[dict[str, Any]]] = {"ibis": [], "scan": [], "pandas": []}
    for k in range(max(args.repeats, args.scan_repeats)):
        for kind, wanted in (("ibis", args.repeats), ("scan", args.scan_repeats)):
            if k < wanted:
                r = run_worker(kind, data, work / f"{kind}.parquet", args.memory_limit, args.threads)
                if r:
                    runs[kind].append(r)
    if not args.skip_pandas:
        chunks = 1 if not args.pandas_chunk else max(1, -(-n // args.pandas_chunk))
        for _ in range(args.pandas_repeats):
            r = run_worker("pandas", data, work / "pandas.parquet", chunks)
            if r:
                runs["pandas"].append({**r, "chunks": chunks})
    return runs


def report_size(
    n: int, data: Path, work: Path, runs: dict[str, list[dict[str, Any]]], results: Results, skip_pandas: bool
) -> list[str]:
    """The table rows of one size; adds its records and headlines to ``results``."""
    import pyarrow.parquet as pq

    n_tx = pq.ParquetFile(data / "transactions.parquet").metadata.num_rows
    n_ev = pq.ParquetFile(data / "events.parquet").metadata.num_rows
    ibis_wall, scan_wall, pandas_wall = (_median(runs[k], "wall") for k in ("ibis", "scan", "pandas"))
    agree = "-"
    if runs["ibis"] and runs["pandas"]:
        ok, detail = compare(work / "ibis.parquet", work / "pandas.parquet")
        agree = ("yes, " if ok else "NO, ") + detail
    chunks = runs["pandas"][0]["chunks"] if runs["pandas"] else 0
    rows = []
    for kind, name in (
        ("ibis", "ibis + duckdb"),
        ("scan", "minimal DuckDB scan"),
        ("pandas", f"pandas ({chunks} chunk{'s' if chunks > 1 else ''})"),
    ):
        got = runs[kind]
        if kind == "pandas" and skip_pandas:
            continue
        vs_scan = f"{_median(got, 'wall') / scan_wall:.2f}x" if got and scan_wall else ""
        vs_pandas = (
            f"{pandas_wall / _median(got, 'wall'):.1f}x faster" if got and pandas_wall and kind != "pandas" else ""
        )
        cells = [f"{n:,}", f"{n_tx:,}", f"{n_ev:,}", name, str(len(got))]
        if got:
            cells += [fmt_runs([r[k] for r in got]) for k in ("wall", "cpu", "rss_mb")]
            cells += [vs_scan, vs_pandas, agree if kind == "ibis" else ""]
        else:
            cells += ["failed", "", "", "", "", ""]
        rows.append("| " + " | ".join(cells) + " |")
        results.records.append(
            {"customers": n, "lines": n_tx, "events": n_ev, "engine": name, "runs": got, "outputs_agree": agree}
        )
    applies = n == GOAL_SIZE
    results.headline(
        f"feature job wall, {n:,} customers (median of {len(runs['ibis'])})",
        ibis_wall,
        "s",
        scan_wall,
        "minimal DuckDB scan, same files, same run",
        Goal("ratio", "<=", 2.0, "1M customers"),
        applies,
    )
    ibis_gb, scan_gb = (_median(runs[k], "rss_mb") for k in ("ibis", "scan"))
    results.headline(
        f"feature job peak RSS, {n:,} customers (own VmHWM)",
        None if ibis_gb is None else ibis_gb / 1024,
        "GB",
        None if scan_gb is None else scan_gb / 1024,
        "minimal DuckDB scan, same memory limit",
        Goal("ours", "<=", 2.0, "1M customers"),
        applies,
    )
    if pandas_wall is not None:
        results.headline(f"feature job wall, {n:,} customers, vs pandas", ibis_wall, "s", pandas_wall, "pandas groupby")
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = Results(args.json, __file__)
    args.cache.mkdir(parents=True, exist_ok=True)
    print(
        f"# features as of 2025-09-30; {os.cpu_count()} cores; DuckDB memory limit {args.memory_limit}, "
        f"{args.threads} threads (feature job and scan); median [min-max] over runs; CPU s = user + system "
        f"time of the work; peak RSS = the child's own VmHWM; load average at start "
        f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}",
        flush=True,
    )
    rows = [
        (
            "| customers | tx lines | events | engine | runs | wall s | CPU s | peak RSS MB | vs scan (wall) "
            "| vs pandas (wall) | outputs agree |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    latency = None
    for n in args.sizes:
        data = ensure_world(n, args.cache, args.seed)
        work = Path(tempfile.mkdtemp(prefix="churnclv-bench-out-"))
        try:
            size_rows = report_size(n, data, work, measure(args, n, data, work), results, args.skip_pandas)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        rows += size_rows
        print("\n".join(size_rows), flush=True)
        if latency is None and args.latency_calls:
            latency = run_worker("latency", data, args.latency_calls)
    print(f"\n# load average at end {' '.join(f'{x:.1f}' for x in os.getloadavg())}\n")
    print("\n".join(rows))
    if latency:
        results.records.append({"in_memory_latency": latency})
        print(
            f"\none customer in memory (compute_features_frames, {latency['lines']:.0f} lines and "
            f"{latency['events']:.0f} events on average): first call {latency['first_ms']:.0f} ms "
            f"(compiles the SQL), then median {latency['median_ms']:.1f} ms, p90 {latency['p90_ms']:.1f} ms"
        )
    results.notes.append(
        "peak RSS is each child's own VmHWM; ru_maxrss would include the peak of the process that started it"
    )
    results.write()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
