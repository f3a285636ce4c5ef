"""HTTP scoring latency and throughput: churnclv's BentoML service next to ``mlflow models serve``.

Loopback only, bounded in requests and time. Single-customer requests at concurrency 1 and 16:

- ``score`` (ours): one customer's raw history; features computed per request, then scored.
- ``score_by_id`` (ours): one customer id; features precomputed by the batch job (the snapshot).
- ``mlflow invocations``: one precomputed feature row (``dataframe_split``) to the same registered
  model behind ``mlflow models serve --env-manager local`` (pyfunc with MLflow's schema check).

Without ``--work`` it generates a world (``--customers``, default 5,000), trains and promotes a model,
runs the batch job for the snapshot, in a temporary folder; with ``--work DIR`` it keeps (and reuses)
them there. It prints one table: per server configuration, endpoint and concurrency, the medians over
``--repeat`` runs of p50/p95/p99 latency (ms) and requests/s (``n``: requests measured in total).

    .venv/bin/python bench/http_load.py                      # everything in a temp dir
    .venv/bin/python bench/http_load.py --work work/bench-http --workers 1 2 --requests 2000

The servers run as subprocesses; the client is this process (it shares the cores with them).
Goals (issue 21, 2 workers): score_by_id at concurrency 16 at least 1,000 requests/s with p99 at most
25 ms, next to ``model_info`` (the HTTP stack and auth alone) in the same run; ``score`` with a year of
history p99 at most 60 ms at concurrency 1.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
from common import Goal, Results, bench_parser
from http_client import HOST, measure

from churnclv.serving.snapshots import LATEST, features_path

AS_OF = "2025-10-02"
KEY = "bench-key-0123456789abcdef"
QUIET = "2 workers, a quiet machine"  # where the goals are stated (issue 21)
GOALS = (
    ("score_by_id", 16, "rps", "req/s", Goal("ours", ">=", 1000.0, QUIET)),
    ("score_by_id", 16, "p99", "ms", Goal("ours", "<=", 25.0, QUIET)),
    ("score", 1, "p99", "ms", Goal("ours", "<=", 60.0, QUIET)),
)


# --------------------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _ready(port: int, path: str) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=2) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
        return s.recv(64).startswith(b"HTTP/1.1 200")
    return False


@contextlib.contextmanager
def server(
    cmd: list[str], env: dict[str, str], port: int, ready_path: str, log: Path, deadline_s: float = 180
) -> Iterator[subprocess.Popen]:
    """Start ``cmd`` in its own process group, wait (bounded) for ``ready_path``, kill the group after."""
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        t_end = time.monotonic() + deadline_s
        while not _ready(port, ready_path):
            if proc.poll() is not None or time.monotonic() > t_end:
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
                raise RuntimeError(f"{cmd[:4]} did not get ready:\n{tail}")
            time.sleep(0.5)
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def scoring_calls(port: int) -> dict[str, tuple[float, float]]:
    """Per endpoint, the service's own (requests per scoring call, mean ms per call) from /metrics."""
    with socket.create_connection((HOST, port), timeout=5) as s:
        s.sendall(f"GET /metrics HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    sums: dict[tuple[str, str], float] = {}
    for line in data.decode("utf-8", "replace").splitlines():
        for metric in ("scoring_batch_requests", "scoring_call_seconds"):
            for part in ("sum", "count"):
                if metric + "_" + part + "{" in line and 'endpoint="' in line:
                    endpoint = line.split('endpoint="', 1)[1].split('"', 1)[0]
                    key = (endpoint, metric + "_" + part)
                    sums[key] = sums.get(key, 0.0) + float(line.rsplit(" ", 1)[1])
    out = {}
    for endpoint in {e for e, _ in sums}:
        calls = sums.get((endpoint, "scoring_batch_requests_count"), 0.0)
        if calls:
            out[endpoint] = (
                sums[(endpoint, "scoring_batch_requests_sum")] / calls,
                1e3 * sums.get((endpoint, "scoring_call_seconds_sum"), 0.0) / calls,
            )
    return out


# --------------------------------------------------------------------------- setup


def prepare(work: Path, customers: int, seed: int, config: Path | None) -> dict[str, str]:
    """World, trained champion and batch snapshot in ``work`` (reused when present)."""
    world, store, out = work / "world", work / "mlruns", work / "batch"
    tracking = f"sqlite:///{store.resolve()}/mlflow.db"
    churnclv = [sys.executable, "-m", "churnclv.cli"]
    steps = [
        (
            world / "transactions.parquet",
            "generating {customers} customers",
            ["generate", "--customers", str(customers), "--seed", str(seed), "--out", str(world)],
        ),
        (
            store / "mlflow.db",
            "training (a few minutes with the default configuration)",
            ["train", "--data", str(world), "--trusted", "--as-of", AS_OF, "--tracking-uri", tracking]
            + (["--config", str(config.resolve())] if config else []),
        ),
        (
            out / LATEST,
            "batch scoring for the snapshot",
            [
                "score-batch",
                "--data",
                str(world),
                "--trusted",
                "--as-of",
                AS_OF,
                "--out",
                str(out),
                "--tracking-uri",
                tracking,
                "--work",
                str(work / "validated"),
            ],
        ),
    ]
    for done, what, args in steps:
        if done.exists():
            continue
        print(what.format(customers=customers), "...", flush=True)
        with (work / "setup.log").open("ab") as log:
            subprocess.run([*churnclv, *args], check=True, stdout=log, stderr=subprocess.STDOUT)
    return {"world": str(world), "tracking": tracking, "snapshot": str(out)}


def request_bodies(paths: dict[str, str], n: int, seed: int) -> dict[str, list[bytes]]:
    """Per endpoint, ``n`` single-customer bodies for the same random customers."""
    world = Path(paths["world"])
    feats = pd.read_parquet(features_path(paths["snapshot"], AS_OF))
    rng = np.random.default_rng(seed)
    ids = sorted(rng.choice(feats["customer_id"].to_numpy(), size=min(n, len(feats)), replace=False))
    tx = pd.read_parquet(world / "transactions.parquet")
    ev = pd.read_parquet(world / "events.parquet")
    cu = pd.read_parquet(world / "customers.parquet").set_index("customer_id")
    end = pd.Timestamp(AS_OF) + pd.Timedelta(days=1)
    tx, ev = tx[tx["customer_id"].isin(ids) & (tx["ts"] < end)], ev[ev["customer_id"].isin(ids) & (ev["ts"] < end)]
    tx_by, ev_by = dict(list(tx.groupby("customer_id"))), dict(list(ev.groupby("customer_id")))

    def opt(v: object) -> object:
        return None if pd.isna(v) else v

    score, by_id, mlflow_bodies = [], [], []
    rows = feats.set_index("customer_id", drop=False).loc[ids]
    for col in rows.columns:  # churnclv.models.inputs.model_input: the signature's float columns
        if pd.api.types.is_integer_dtype(rows[col]) or pd.api.types.is_bool_dtype(rows[col]):
            rows[col] = rows[col].astype("float64")
    for cid in ids:
        c = cu.loc[cid]
        customer = {
            "customer_id": cid,
            "signup_ts": None if pd.isna(c["signup_ts"]) else c["signup_ts"].isoformat(),
            "attributes": {a: opt(c[a]) for a in cu.columns if a != "signup_ts"},
            "transactions": [
                {
                    "ts": r.ts.isoformat(),
                    "amount": r.amount,
                    "order_id": opt(r.order_id),
                    "channel": opt(r.channel),
                    "category": opt(r.category),
                }
                for r in tx_by[cid].itertuples()
            ]
            if cid in tx_by
            else [],
            "events": [
                {"ts": r.ts.isoformat(), "event_type": r.event_type, "value": opt(r.value)}
                for r in ev_by[cid].itertuples()
            ]
            if cid in ev_by
            else [],
        }
        score.append(json.dumps({"as_of": AS_OF, "customers": [customer]}).encode())
        by_id.append(json.dumps({"customer_ids": [cid]}).encode())
        row = rows.loc[[cid]]
        mlflow_bodies.append(
            json.dumps({"dataframe_split": json.loads(row.to_json(orient="split", index=False))}).encode()
        )
    return {"score": score, "score_by_id": by_id, "mlflow": mlflow_bodies, "model_info": [b"{}"]}


# --------------------------------------------------------------------------- main


def main() -> None:
    p = bench_parser(__file__, __doc__)
    p.add_argument("--work", type=Path, default=None, help="keep world, store and snapshot here (default: temp)")
    p.add_argument("--customers", type=int, default=5_000)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="BentoML worker counts to run")
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    p.add_argument("--requests", type=int, default=1_000, help="requests per run (bounded)")
    p.add_argument("--max-seconds", type=float, default=20, help="time bound per run")
    p.add_argument("--repeat", type=int, default=3, help="runs per measurement; the table shows medians")
    p.add_argument(
        "--endpoints",
        nargs="+",
        default=["score_by_id", "score"],
        choices=["score_by_id", "score", "model_info"],
        help="our endpoints to load (model_info: the HTTP stack and auth without scoring)",
    )
    p.add_argument("--no-mlflow", action="store_true", help="skip mlflow models serve")
    p.add_argument("--config", type=Path, default=None, help="a training TOML (default: the shipped configuration)")
    args = p.parse_args()
    results = Results(args.json, __file__)

    with contextlib.ExitStack() as stack:
        work = args.work or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="churnclv-bench-")))
        work.mkdir(parents=True, exist_ok=True)
        paths = prepare(work, args.customers, args.seed, args.config)
        bodies = request_bodies(paths, 300, args.seed)
        base = {k: v for k, v in os.environ.items() if not k.startswith("CHURNCLV_")}
        base.update(
            BENTOML_DO_NOT_TRACK="True",
            MLFLOW_TRACKING_URI=paths["tracking"],
            # mlflow models serve runs `uvicorn` from PATH: the venv's
            PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        )
        rows = []
        print(f"cores: {os.cpu_count()}; load average before: {os.getloadavg()[0]:.1f}", flush=True)
        for workers in args.workers:
            port = free_port()
            env = {**base, "CHURNCLV_API_KEY": KEY, "CHURNCLV_WORKERS": str(workers), "CHURNCLV_RELOAD_INTERVAL_S": "0"}
            cmd = [
                sys.executable,
                "-m",
                "churnclv.cli",
                "serve",
                "--host",
                HOST,
                "--port",
                str(port),
                "--tracking-uri",
                paths["tracking"],
                "--snapshot",
                paths["snapshot"],
            ]
            with server(cmd, env, port, "/readyz", work / f"bentoml-{workers}.log"):
                for endpoint in args.endpoints:
                    for c in args.concurrency:
                        r = measure(
                            port,
                            f"/{endpoint}",
                            bodies[endpoint],
                            {"X-API-Key": KEY},
                            c,
                            args.requests,
                            args.max_seconds,
                            args.repeat,
                        )
                        rows.append(
                            {
                                "server": f"churnclv bentoml ({workers} worker{'s' * (workers > 1)})",
                                "endpoint": endpoint,
                                "concurrency": c,
                                **r,
                            }
                        )
                        print(_fmt(rows[-1]), flush=True)
                for endpoint, (per_call, ms) in sorted(scoring_calls(port).items()):
                    print(
                        f"  {endpoint}: {per_call:.2f} requests per scoring call, {ms:.1f} ms per call "
                        "(all runs, from the service's /metrics)",
                        flush=True,
                    )
        if not args.no_mlflow:
            port = free_port()
            cmd = [
                sys.executable,
                "-m",
                "mlflow",
                "models",
                "serve",
                "-m",
                "models:/churnclv@champion",
                "--env-manager",
                "local",
                "-h",
                HOST,
                "-p",
                str(port),
            ]
            with server(cmd, base, port, "/ping", work / "mlflow.log"):
                for c in args.concurrency:
                    r = measure(
                        port, "/invocations", bodies["mlflow"], {}, c, args.requests, args.max_seconds, args.repeat
                    )
                    rows.append(
                        {
                            "server": "mlflow models serve (1 worker)",
                            "endpoint": "invocations (features)",
                            "concurrency": c,
                            **r,
                        }
                    )
                    print(_fmt(rows[-1]), flush=True)
        print()
        print(f"medians of {args.repeat} run(s) of up to {args.requests} requests / {args.max_seconds:g} s each")
        print(
            f"{'server':<32} {'endpoint':<24} {'conc':>4} {'n':>6} {'err':>4} {'p50 ms':>8} {'p95 ms':>8} "
            f"{'p99 ms':>8} {'req/s':>8}"
        )
        for r in rows:
            print(_fmt(r))
        print(f"load average after: {os.getloadavg()[0]:.1f}")
    results.records = rows
    headlines(results, rows)
    results.write()


def headlines(results: Results, rows: list[dict]) -> None:
    """The goals' figures, from our largest worker count; the reference is model_info at the same
    concurrency (the HTTP stack and auth without scoring), else mlflow models serve."""
    ours = [r for r in rows if r["server"].startswith("churnclv")]
    if not ours:
        return
    server = ours[-1]["server"]
    at = {(r["endpoint"], r["concurrency"]): r for r in ours if r["server"] == server}
    mlflow = {r["concurrency"]: r for r in rows if r["server"].startswith("mlflow")}
    for endpoint, c, key, unit, goal in GOALS:
        if (endpoint, c) not in at:
            continue
        ref = at.get(("model_info", c)) or mlflow.get(c)
        results.headline(
            f"HTTP {endpoint}, concurrency {c}, {key}, {server}",
            at[(endpoint, c)][key],
            unit,
            ref[key] if ref else None,
            f"{ref['endpoint']} in the same run" if ref else "",
            goal,
            goal_applies="(2 workers)" in server,
        )


def _fmt(r: dict) -> str:
    return (
        f"{r['server']:<32} {r['endpoint']:<24} {r['concurrency']:>4} {r['n']:>6} {r['errors']:>4} "
        f"{r['p50']:>8.1f} {r['p95']:>8.1f} {r['p99']:>8.1f} {r['rps']:>8.1f}"
    )


if __name__ == "__main__":
    main()
