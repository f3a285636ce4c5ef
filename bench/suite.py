"""Every bench at a small size, one after the other (``make bench``): minutes, not hours.

Each bench runs in a process of its own with its small-size options (``SMALL``, the one place they
are written), writes its results file into ``OUT/results/<bench>.json`` and its output into
``OUT/logs/<bench>.log``; worlds, models and CDNOW are cached under ``OUT/cache/<bench>`` so a second
run is quicker. A bench that cannot run small (``SKIPPED``) gets a results file saying why and the
command that runs it in full; one that fails or overruns ``--timeout`` gets one saying so, and the
suite goes on. Then ``bench/summary.py OUT/results`` prints the table.

    .venv/bin/python bench/suite.py                  # all, into work/bench-small
    .venv/bin/python bench/suite.py --only btyd treeshap
    .venv/bin/python bench/suite.py --list           # the plan, nothing run
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from common import FAST_CONFIG, ROOT, Results, bench_scripts

# Small-size options of every bench. "{work}": its cache folder; "{fast}": a quick training
# configuration (common.FAST_CONFIG) for the benches that need a model rather than time training.
SMALL: dict[str, list[str]] = {
    "btyd": ["--n-customers", "100000", "--repeats", "1"],
    "treeshap": ["--rows", "5000", "--repeats", "1", "--calls", "20"],
    "gbm_latency": ["--rows", "5000", "--calls", "200", "--reps", "1"],
    "omp_wait": ["--rows", "20000", "--repeats", "1", "--busy", "1"],
    "features": ["--sizes", "20000", "--repeats", "1", "--cache", "{work}"],
    "batch": ["--customers", "20000", "--sample", "3000", "--work", "{work}"],
    "train": ["--customers", "3000", "--config", "{fast}"],
    "train_scale": ["--customers", "3000", "--config", "{fast}", "--work", "{work}"],
    "tiers": ["--customers", "3000", "--weeks", "3"],
    "intervals": ["--customers", "3000", "--timing-rows", "20000", "--work", "{work}"],
    "level_calibration": ["--setups", "1997-08-31:90", "1998-01-31:30", "--work", "{work}"],
    "accuracy": ["--setups", "1997-08-31:90", "--work", "{work}"],  # the shipped configuration: its goals apply
    "accuracy_hindsight": ["--setups", "1997-08-31:90", "--work", "{work}"],
    "accuracy_generated": [
        *("--customers", "2000", "--setups", "2025-06-30", "--variants", "on"),
        *("--config", "{fast}", "--work", "{work}"),
    ],
    "http_load": [
        *("--customers", "2000", "--workers", "1", "--repeat", "1", "--requests", "300", "--max-seconds", "5"),
        *("--endpoints", "score_by_id", "score", "model_info", "--no-mlflow", "--config", "{fast}", "--work", "{work}"),
    ],
    "uplift": ["--customers", "2000", "--seeds", "0", "--campaigns", "2", "--gbm-rounds", "50"],
    "weekly_year": ["--customers", "1000", "--weeks", "1", "--work", "{work}"],
}
SAME_OUTPUTS = (
    "bench/same_outputs.sh /tmp/same/before at the old commit, bench/same_outputs.sh /tmp/same/after at the "
    "new one, then .venv/bin/python bench/same_outputs_diff.py /tmp/same/before /tmp/same/after"
)
# Benches that do not run small: why, and the command that runs them.
SKIPPED: dict[str, tuple[str, str]] = {
    "same_outputs_diff": (
        "compares two runs of bench/same_outputs.sh (before and after a change): not a measurement",
        SAME_OUTPUTS,
    ),
}
# How each bench is run in full (the README's commands), for the "not measured" lines.
FULL = {
    "features": "--sizes 100000 1000000 --repeats 3 --pandas-repeats 1",
    "batch": "--customers 1000000 --repeat 3",
    "train_scale": "--customers 1000000 --repeat 3",
    "http_load": "--workers 2 --repeat 3 --endpoints score_by_id score model_info",
    "accuracy": "(the 27-setup CDNOW grid, about 40 min)",
    "accuracy_hindsight": "--churnclv (the 27-setup CDNOW grid, about 30 min)",
}


def command(name: str, out: Path) -> list[str]:
    work = out / "cache" / name
    fast = out / "cache" / "fast.toml"
    args = [a.replace("{work}", str(work)).replace("{fast}", str(fast)) for a in SMALL[name]]
    return [sys.executable, str(ROOT / "bench" / f"{name}.py"), *args, "--json", str(out / "results" / f"{name}.json")]


def full_command(name: str) -> str:
    return f".venv/bin/python bench/{name}.py {FULL.get(name, '')}".rstrip()


def not_run(name: str, out: Path, status: str, reason: str, full: str) -> None:
    """A results file for a bench that did not produce one: skipped, failed or timed out."""
    doc = Results(out / "results" / f"{name}.json", f"{name}.py").document(status)
    doc.update(command=[f"bench/{name}.py", *SMALL.get(name, [])], reason=reason, full_command=full)
    (out / "results" / f"{name}.json").write_text(json.dumps(doc, indent=1) + "\n")


def run_one(name: str, out: Path, timeout: float) -> tuple[str, float]:
    """Run one bench in its own process group; (status, wall seconds)."""
    cmd = command(name, out)
    (out / "cache" / name).mkdir(parents=True, exist_ok=True)
    log = out / "logs" / f"{name}.log"
    result = out / "results" / f"{name}.json"
    result.unlink(missing_ok=True)
    start = time.perf_counter()
    with log.open("w") as fh:
        fh.write(f"$ {shlex.join(cmd)}\n")
        fh.flush()
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # the bench and its children (servers, workers)
            proc.wait()
            rc = None
    wall = time.perf_counter() - start
    if rc is None:
        not_run(name, out, "failed", f"timed out after {timeout:.0f} s (log: {log})", full_command(name))
        return "timed out", wall
    if not result.is_file():
        tail = log.read_text(errors="replace").strip().splitlines()[-1:] or [""]
        not_run(name, out, "failed", f"exit {rc}, no results (log: {log}; {tail[0][:160]})", full_command(name))
        return "failed", wall
    return "ok" if rc == 0 else f"exit {rc}", wall  # e.g. weekly_year's failed integrity check: its results stand


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="bench/suite.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    ap.add_argument("--out", type=Path, default=ROOT / "work" / "bench-small", help="results, logs and caches")
    ap.add_argument("--only", nargs="+", choices=sorted([*SMALL, *SKIPPED]), metavar="BENCH", help="these only")
    ap.add_argument("--timeout", type=float, default=300, help="seconds per bench before it is stopped")
    ap.add_argument("--list", action="store_true", help="print the plan and stop")
    args = ap.parse_args(argv)
    unknown = sorted(set(bench_scripts()) - set(SMALL) - set(SKIPPED))
    if unknown:
        ap.error(
            f"bench/{unknown[0]}.py has no small-size options: add it to SMALL or SKIPPED in bench/suite.py "
            "(or, if it is no bench, to common.NOT_BENCHES)"
        )
    out = args.out.resolve()
    names = args.only or [*SMALL, *SKIPPED]
    if args.list:
        for name in names:
            print(f"{name}: skipped, {SKIPPED[name][0]}" if name in SKIPPED else shlex.join(command(name, out)))
        return 0
    for sub in ("results", "logs", "cache"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    if not args.only:
        for stale in (out / "results").glob("*.json"):
            stale.unlink()
    (out / "cache" / "fast.toml").write_text(FAST_CONFIG)
    started = time.perf_counter()
    for name in names:
        if name in SKIPPED:
            not_run(name, out, "skipped", *SKIPPED[name])
            print(f"{name:<20} skipped", flush=True)
            continue
        status, wall = run_one(name, out, args.timeout)
        print(f"{name:<20} {status:<10} {wall:6.1f} s", flush=True)
    print(f"all benches: {time.perf_counter() - started:.0f} s; results in {out / 'results'}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
