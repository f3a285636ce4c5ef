"""The measurements of ``bench/features.py``, each run as ``python bench/features_workers.py KIND ARGS``
in a child process of its own; prints one JSON line: wall and CPU seconds of the work (after the
imports) and the process's own peak resident memory (``VmHWM``, see ``bench/features.py``).

KIND: ``generate N DIR SEED``, ``ibis DATA OUT MEMORY_LIMIT THREADS``, ``scan DATA OUT MEMORY_LIMIT
THREADS``, ``pandas DATA OUT CHUNKS``, ``latency DATA CALLS``. Every worker first makes the process
setting the ``churnclv`` command makes (:func:`churnclv.runtime.disable_huge_pages`): the feature job
and its references run as the CLI runs them.
"""

from __future__ import annotations

import itertools
import json
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from churnclv.runtime import disable_huge_pages

AS_OF = "2025-09-30"
PURCHASE_RATE_SCALE = 3.5  # about 50 transaction lines per customer (see churnclv.generator.world.WorldConfig)
EVENT_RATE_SCALE = 3.4  # about 100 events per customer
SCAN_SQL = """
COPY (
  WITH t AS (
    SELECT customer_id, count(*) AS n_lines, sum(amount) AS spend,
           min(ts) FILTER (WHERE amount > 0) AS first_purchase, max(ts) FILTER (WHERE amount > 0) AS last_purchase,
           count(DISTINCT CAST(ts AS DATE)) FILTER (WHERE amount > 0) AS purchase_days
    FROM read_parquet(?, hive_partitioning = false) WHERE ts < ? GROUP BY customer_id),
  e AS (
    SELECT customer_id, count(*) AS n_events, count(*) FILTER (WHERE event_type = 'login') AS logins,
           max(ts) AS last_event
    FROM read_parquet(?, hive_partitioning = false) WHERE ts < ? GROUP BY customer_id)
  SELECT * FROM t FULL OUTER JOIN e USING (customer_id) ORDER BY customer_id
) TO '{out}' (FORMAT parquet)
"""


# --------------------------------------------------------------------------- workers (child processes)


def peak_rss_mb() -> float:
    """This process's own peak resident memory in MB (``VmHWM``; ``ru_maxrss`` where there is no /proc)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class _Work:
    """Wall and CPU seconds from here on (after the imports), for :meth:`usage`."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), _cpu()

    def usage(self) -> str:
        """The JSON line a worker prints: wall, CPU, own peak RSS; ru_maxrss for the record only (it
        includes the peak of the process that started this one)."""
        own = {
            "wall": time.perf_counter() - self.wall,
            "cpu": _cpu() - self.cpu,
            "rss_mb": peak_rss_mb(),
            "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
        return json.dumps(own)


def worker_generate(n: int, data: Path, seed: int) -> None:
    from churnclv.generate import generate_world_to_parquet
    from churnclv.generator.world import WorldConfig

    work = _Work()
    config = WorldConfig(
        n_customers=n, seed=seed, purchase_rate_scale=PURCHASE_RATE_SCALE, event_rate_scale=EVENT_RATE_SCALE
    )
    generate_world_to_parquet(config, data, n_jobs=2)
    (data / "_complete").touch()
    print(work.usage())


def worker_ibis(data: Path, out: Path, memory_limit: str, threads: int) -> None:
    from churnclv.features import write_features

    work = _Work()
    write_features(data, AS_OF, out, memory_limit=memory_limit, threads=threads, temp_directory=out.parent / "spill")
    print(work.usage())


def worker_scan(data: Path, out: Path, memory_limit: str, threads: int) -> None:
    import datetime as dt

    import duckdb

    work = _Work()
    config = {"memory_limit": memory_limit, "threads": threads, "temp_directory": str(out.parent / "spill")}
    con = duckdb.connect(config=config)
    con.execute("SET preserve_insertion_order = false")  # as churnclv.features.connect
    end = dt.datetime.combine(dt.date.fromisoformat(AS_OF) + dt.timedelta(days=1), dt.time())
    tx, ev = str(data / "transactions.parquet"), str(data / "events.parquet")
    con.execute(SCAN_SQL.format(out=str(out).replace("'", "''")), [tx, end, ev, end])
    print(work.usage())


def worker_pandas(data: Path, out: Path, chunks: int) -> None:
    """The pandas reference end to end; with ``chunks > 1``, over that many ranges of customer ids."""
    import pandas as pd
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    from churnclv.features.reference import reference_features

    work = _Work()

    def read(name: str, lo: str | None, hi: str | None, **kw: Any) -> pd.DataFrame:
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
    print(work.usage())


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
    result = {
        "first_ms": first * 1e3,
        "median_ms": statistics.median(times) * 1e3,
        "p90_ms": times[int(0.9 * len(times))] * 1e3,
        "lines": sum(len(f[0]) for f in frames) / len(frames),
        "events": sum(len(f[1]) for f in frames) / len(frames),
    }
    print(json.dumps(result))


def run_worker_command(kind: str, args: list[str]) -> None:
    """Run the measurement ``kind`` with its command-line arguments ``args``."""
    a = args
    if kind == "generate":
        worker_generate(int(a[0]), Path(a[1]), int(a[2]))
    elif kind in ("ibis", "scan"):
        (worker_ibis if kind == "ibis" else worker_scan)(Path(a[0]), Path(a[1]), a[2], int(a[3]))
    elif kind == "pandas":
        worker_pandas(Path(a[0]), Path(a[1]), int(a[2]))
    else:
        worker_latency(Path(a[0]), int(a[1]))


if __name__ == "__main__":
    disable_huge_pages()
    run_worker_command(sys.argv[1], sys.argv[2:])
