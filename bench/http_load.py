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

The servers run as subprocesses; the client is this process: it shares the cores with them, unless
``--pin`` puts it on one core and the servers on the others (the JSON records which). ``model_info``
(the HTTP stack and auth without scoring) is measured for every server and concurrency, right before
the endpoints, and each row shows its requests/s and p99 as a ratio to it (``x bare``, ``p99 x bare``):
on a shared machine the absolute figures move with the load, the ratios much less.

Goals (issue 21, 2 workers, a quiet machine): score_by_id at concurrency 16 at least 1,000 requests/s
with p99 at most 25 ms; ``score`` with a year of history p99 at most 60 ms at concurrency 1.

    .venv/bin/python bench/http_load.py --work work/bench-http --workers 2 --repeat 3 --pin
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from common import Goal, Results, bench_parser
from http_client import HOST, measure
from http_servers import free_port, scoring_calls, server, split_cores

from churnclv.serving.snapshots import LATEST, features_path

AS_OF = "2025-10-02"
KEY = "bench-key-0123456789abcdef"
QUIET = "2 workers, a quiet machine"  # where the goals are stated (issue 21)
GOALS = (
    ("score_by_id", 16, "rps", "req/s", Goal("ours", ">=", 1000.0, QUIET)),
    ("score_by_id", 16, "p99", "ms", Goal("ours", "<=", 25.0, QUIET)),
    ("score", 1, "p99", "ms", Goal("ours", "<=", 60.0, QUIET)),
)


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


BARE = "model_info"  # the HTTP stack and auth without scoring: every ratio's reference


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
        choices=["score_by_id", "score", BARE],
        help=f"our endpoints to load; {BARE} (the HTTP stack and auth alone, the reference of the ratios) "
        "is always measured",
    )
    p.add_argument(
        "--pin",
        action="store_true",
        help="pin this client to one core and the servers to the others (recorded in the JSON)",
    )
    p.add_argument(
        "--no-precompute",
        action="store_true",
        help="score_by_id scores each request's ids (CHURNCLV_PRECOMPUTE_SCORES=0) instead of looking them up",
    )
    p.add_argument("--no-mlflow", action="store_true", help="skip mlflow models serve")
    p.add_argument("--config", type=Path, default=None, help="a training TOML (default: the shipped configuration)")
    args = p.parse_args()
    results = Results(args.json, __file__)
    endpoints = [BARE, *(e for e in args.endpoints if e != BARE)]
    client_cores, server_cores = split_cores(args.pin)
    pinned = None if client_cores is None else {"client": sorted(client_cores), "servers": sorted(server_cores or ())}
    if client_cores is not None:
        os.sched_setaffinity(0, client_cores)
    results.notes.append(
        f"pinned: client on cores {pinned['client']}, servers on {pinned['servers']}"
        if pinned
        else "not pinned: client and servers share every core"
    )

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
        rows: list[dict] = []
        print(f"cores: {os.cpu_count()}; load average before: {os.getloadavg()[0]:.1f}; {results.notes[-1]}")

        def add(row: dict) -> None:
            rows.append({**row, "pinned": pinned})
            print(_fmt(with_ratios(rows)[-1]), flush=True)

        for workers in args.workers:
            port = free_port()
            env = {**base, "CHURNCLV_API_KEY": KEY, "CHURNCLV_WORKERS": str(workers), "CHURNCLV_RELOAD_INTERVAL_S": "0"}
            env["CHURNCLV_PRECOMPUTE_SCORES"] = "0" if args.no_precompute else "1"
            cmd = [sys.executable, "-m", "churnclv.cli", "serve", "--host", HOST, "--port", str(port)]
            cmd += ["--tracking-uri", paths["tracking"], "--snapshot", paths["snapshot"]]
            name = f"churnclv bentoml ({workers} worker{'s' * (workers > 1)}{', per request' * args.no_precompute})"
            with server(cmd, env, port, "/readyz", work / f"bentoml-{workers}.log", cores=server_cores):
                for c in args.concurrency:
                    for endpoint in endpoints:  # the bare stack first, then each endpoint right after it
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
                        add({"server": name, "endpoint": endpoint, "concurrency": c, **r})
                for endpoint, (per_call, ms) in sorted(scoring_calls(port).items()):
                    # score_by_id's calls that served no request precomputed its answers (serving/score_table.py)
                    print(f"  {endpoint}: {per_call:.2f} requests per scoring call, {ms:.2f} ms per call (all runs, "
                          "from the service's /metrics; 0 requests: the calls precomputing score_by_id's answers, "
                          "which are then looked up)", flush=True)  # fmt: skip
        if not args.no_mlflow:
            port = free_port()
            cmd = [sys.executable, "-m", "mlflow", "models", "serve", "-m", "models:/churnclv@champion"]
            cmd += ["--env-manager", "local", "-h", HOST, "-p", str(port)]
            with server(cmd, base, port, "/ping", work / "mlflow.log", cores=server_cores):
                for c in args.concurrency:
                    r = measure(
                        port, "/invocations", bodies["mlflow"], {}, c, args.requests, args.max_seconds, args.repeat
                    )
                    add({"server": "mlflow models serve (1 worker)", "endpoint": "invocations (features)",
                         "concurrency": c, **r})  # fmt: skip
        rows = with_ratios(rows)
        print()
        print(f"medians of {args.repeat} run(s) of up to {args.requests} requests / {args.max_seconds:g} s each; "
              f"x bare: against {BARE} of the same server and concurrency in the same run")  # fmt: skip
        print(_HEADER)
        for r in rows:
            print(_fmt(r))
        print(f"load average after: {os.getloadavg()[0]:.1f}")
    results.records = rows
    headlines(results, rows)
    results.write()


def with_ratios(rows: list[dict]) -> list[dict]:
    """Each row with ``rps_x_bare`` (its requests/s over the bare stack's) and ``p99_x_bare`` (its p99 over
    the bare stack's), the bare stack being ``model_info`` of the same server at the same concurrency
    (None where there is none: mlflow)."""
    bare = {(r["server"], r["concurrency"]): r for r in rows if r["endpoint"] == BARE}
    out = []
    for r in rows:
        ref = bare.get((r["server"], r["concurrency"]))
        out.append(
            {
                **r,
                "rps_x_bare": r["rps"] / ref["rps"] if ref and ref["rps"] else None,
                "p99_x_bare": r["p99"] / ref["p99"] if ref and ref["p99"] else None,
            }
        )
    return out


def headlines(results: Results, rows: list[dict]) -> None:
    """The goals' figures, from our largest worker count; the reference is model_info of that server at the
    same concurrency (the HTTP stack and auth without scoring), else mlflow models serve."""
    ours = [r for r in rows if r["server"].startswith("churnclv")]
    if not ours:
        return
    server_name = ours[-1]["server"]
    at = {(r["endpoint"], r["concurrency"]): r for r in ours if r["server"] == server_name}
    mlflow = {r["concurrency"]: r for r in rows if r["server"].startswith("mlflow")}
    for endpoint, c, key, unit, goal in GOALS:
        if (endpoint, c) not in at:
            continue
        ref = at.get((BARE, c)) or mlflow.get(c)
        results.headline(
            f"HTTP {endpoint}, concurrency {c}, {key}, {server_name}",
            at[(endpoint, c)][key],
            unit,
            ref[key] if ref else None,
            f"{ref['endpoint']} in the same run" if ref else "",
            goal,
            goal_applies="(2 workers)" in server_name,
        )


_HEADER = (
    f"{'server':<42} {'endpoint':<24} {'conc':>4} {'n':>6} {'err':>4} {'p50 ms':>8} {'p95 ms':>8} "
    f"{'p99 ms':>8} {'req/s':>8} {'x bare':>7} {'p99 x bare':>10}"
)


def _ratio(x: float | None) -> str:
    return "" if x is None else f"{x:.2f}"


def _fmt(r: dict) -> str:
    return (
        f"{r['server']:<42} {r['endpoint']:<24} {r['concurrency']:>4} {r['n']:>6} {r['errors']:>4} "
        f"{r['p50']:>8.1f} {r['p95']:>8.1f} {r['p99']:>8.1f} {r['rps']:>8.1f} "
        f"{_ratio(r.get('rps_x_bare')):>7} {_ratio(r.get('p99_x_bare')):>10}"
    )


if __name__ == "__main__":
    main()
