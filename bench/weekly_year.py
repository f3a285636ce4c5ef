"""A year of weekly runs on a generated world whose customers change half way.

The world (``--customers``, sign-ups over its whole span so the base grows every week) changes on
``--shift-date`` (default: half way through the year): purchase rates x ``--shift-purchase-rate``,
dropout hazard x ``--shift-hazard`` (the ``churnclv generate --shift-*`` knob). Each week the data
up to the as-of land in a folder (as a nightly export would) and ``churnclv weekly`` runs on it in a
process of its own, exactly as cron would run it; a bootstrap run one week before the first trains
the first model. Then the script prints the year's timeline (per week: the champion, the quality of
the newest partition whose horizon has closed, drift, alarms, retrains, wall time), when the monitor
caught the change, whether the retrain restored quality, and the integrity checks: one partition per
week, every customer known at its as-of scored exactly once.

    .venv/bin/python bench/weekly_year.py                         # 52 weeks, 2,500 customers
    .venv/bin/python bench/weekly_year.py --customers 20000 --weeks 1   # time one weekly run

``--weeks 1`` times one regular week (validate, score, monitor) after the bootstrap run
(validate, train, score), with each step's time from the journal and the run's peak memory.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from common import Goal, Results, bench_parser, cli, day, run

from churnclv.generate import generate_world_to_parquet
from churnclv.generator.world import WorldConfig

CONFIG = """[train]
horizon_days = {horizon}
n_folds = 2
fold_step_days = 28
train_cutoffs = 6
cutoff_step_days = 28
candidates = ["btyd", "gbm", "hybrid"]
{tolerance}
[scorer]
gbm_rounds = 100
seed = 1

[monitor]
lookback_days = 35    # each partition is judged in the weeks after its horizon closes, not all year

[weekly]
retrain_every_days = {cadence}
retrain_on_breach = true
"""
# The promotion tolerance. The gate compares both versions on the same out-of-time folds of the
# challenger when the champion is at least a horizon older (training/promotion_window.py), so a
# retrain on the new behaviour no longer loses to the stale champion's calm-period numbers and the
# default tolerance is enough; "wide" is kept to compare with the gate before that (see the README).
GATES = {
    "default": "",
    "wide": "promote_tolerance = { churn_auc = 0.05, churn_brier = 0.05, spend_gini = 0.1 }\n",
}
QUALITY = ("churn_auc", "churn_ece", "purchases_agg_pct_error", "spend_agg_pct_error")


@dataclass
class Week:
    """One weekly run: what its journal and its monitor report say."""

    n: int
    as_of: pd.Timestamp
    wall: float
    rss_gb: float
    steps: dict[str, Any]
    monitor: dict[str, Any]


def land(world: Path, landing: Path, as_of: pd.Timestamp) -> None:
    """The data known at the end of ``as_of``: every table cut at the next midnight."""
    cut = as_of + pd.Timedelta(days=1)
    landing.mkdir(parents=True, exist_ok=True)
    for name, column in (("transactions", "ts"), ("events", "ts"), ("customers", "signup_ts")):
        frame = pd.read_parquet(world / f"{name}.parquet")
        frame[frame[column] < cut].to_parquet(landing / f"{name}.parquet", index=False)


def weekly(args: argparse.Namespace, work: Path, as_of: pd.Timestamp, n: int) -> Week:
    land(work / "world", work / "landing", as_of)
    day = f"{as_of:%Y-%m-%d}"
    log = work / "logs" / f"week-{n:02d}-{day}.log"
    cmd = cli("weekly", "--data", str(work / "landing"), "--as-of", day, "--out", str(work / "out"))
    cmd += ["--config", str(work / "weekly.toml"), "--tracking-uri", f"sqlite:///{work}/store/mlflow.db"]
    wall, rss, rc = run(cmd, log)
    if rc:
        sys.exit(f"week {n} ({day}) failed with exit status {rc}: see {log}")
    return read_week(work, as_of, n, wall, rss)


def read_week(work: Path, as_of: pd.Timestamp, n: int, wall: float, rss: float) -> Week:
    """A finished week, from its journal and its monitor report."""
    journal = json.loads((work / "out" / "weekly" / f"dt={as_of:%Y-%m-%d}" / "journal.json").read_text())
    report = Path(journal["steps"]["monitor"].get("report") or "/nonexistent")
    monitor = json.loads(report.read_text()) if report.is_file() else {}
    return Week(n, as_of, wall, rss, journal["steps"], monitor)


def newest_quality(week: Week) -> dict[str, Any] | None:
    """The newest partition whose horizon closed by the week's as-of, with its metrics."""
    closed = week.monitor.get("partitions") or []
    return max(closed, key=lambda p: p["as_of"]) if closed else None


def _f(value: Any, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def timeline(weeks: list[Week], shift: pd.Timestamp) -> None:
    print(
        f"\n{'wk':>3} {'as-of':<10} {'champ':>5} {'closed':<10} {'by':>3} {'AUC':>6} {'ECE':>6} {'purch%':>7} "
        f"{'spend%':>7} {'maxPSI':>7} {'pChurn':>6}  {'alarms':<34} retrain"
    )
    for w in weeks:
        q = newest_quality(w)
        m = (q or {}).get("metrics", {})
        drift = w.monitor.get("drift") or {}
        p_churn = next((s["psi"] for s in drift.get("scores", []) if s["column"] == "p_churn"), None)
        alarms = ", ".join(sorted({b["check"] for b in w.steps["monitor"].get("breaches", [])})) or ""
        r = w.steps["retrain"]
        retrain = ""
        if r.get("retrained"):
            why = (
                "cadence"
                if r["reasons"][0].startswith("cadence")
                else "breach"
                if "breach" in r["reasons"][0]
                else "first"
            )
            retrain = f"v{r['version']} ({why}{', promoted' if r['promoted'] else ', kept v' + str(r['champion'])})"
        marker = "*" if w.as_of >= shift else " "
        print(
            f"{w.n:>3}{marker}{w.as_of:%Y-%m-%d} {r.get('champion')!s:>5} "
            f"{(q or {}).get('as_of', '-'):<10} {((q or {}).get('model') or {}).get('version', '-')!s:>3} "
            f"{_f(m.get('churn_auc'), '6.3f')} {_f(m.get('churn_ece'), '6.3f')} "
            f"{_f(m.get('purchases_agg_pct_error'), '+7.1f')} {_f(m.get('spend_agg_pct_error'), '+7.1f')} "
            f"{_f(drift.get('max_feature_psi'), '7.3f')} {_f(p_churn, '6.3f')}  {alarms[:34]:<34} {retrain}"
        )
    print(
        "(* = after the shift; 'closed': the newest partition whose horizon closed, 'by': the version that scored it)"
    )


def story(weeks: list[Week], shift: pd.Timestamp) -> None:
    """When the monitor caught the change, which retrains followed, and the quality before and after."""
    alarmed = [w for w in weeks if w.steps["monitor"].get("breaches")]
    before = [w for w in alarmed if w.as_of < shift]
    after = [w for w in alarmed if w.as_of >= shift]
    print(f"\nshift on {shift:%Y-%m-%d}")
    print(
        f"  weeks with an alarm before the shift (false alarms): {len(before)} of {sum(w.as_of < shift for w in weeks)}"
    )
    if after:
        first = after[0]
        days = (first.as_of - shift).days
        checks = ", ".join(sorted({b["check"] for b in first.steps["monitor"]["breaches"]}))
        print(f"  first alarm after it: {first.as_of:%Y-%m-%d}, {days} days ({days / 7:.1f} weeks) later: {checks}")
    else:
        print("  no alarm after the shift")
    for w in weeks:
        r = w.steps["retrain"]
        if r.get("retrained"):
            gate = "promoted" if r["promoted"] else f"not promoted (champion stays v{r['champion']})"
            print(f"  retrain {w.as_of:%Y-%m-%d}: v{r['version']}, {gate}; {r['reasons'][0][:90]}")
    # quality of every closed partition, the last time the monitor saw it, by who scored it and when
    seen: dict[str, dict[str, Any]] = {}
    for w in weeks:
        for p in w.monitor.get("partitions") or []:
            seen[p["as_of"]] = p
    if not seen:
        return
    rows = pd.DataFrame(
        [{"as_of": pd.Timestamp(k), "version": v["model"]["version"], **{q: v["metrics"].get(q) for q in QUALITY}}
         for k, v in seen.items()]
    )  # fmt: skip
    trained = {str(w.steps["retrain"]["version"]): w.as_of for w in weeks if w.steps["retrain"].get("retrained")}
    rows["period"] = ["before" if a < shift else "after" for a in rows["as_of"]]
    rows["trained"] = [f"{trained[v]:%Y-%m-%d}" if v in trained else "?" for v in rows["version"]]
    for q in QUALITY[2:]:
        rows[q] = rows[q].abs()  # the size of the aggregate errors, whichever the sign
    print("\nquality of the closed partitions by the version that scored them (means; agg errors as |%|)")
    table = rows.groupby(["period", "version", "trained"], sort=False).agg(
        partitions=("as_of", "size"), **{q: (q, "mean") for q in QUALITY}
    )
    print(table.round(3).to_string())


def integrity(weeks: list[Week], work: Path) -> bool:
    """One partition per week; every customer known at its as-of scored exactly once."""
    customers = pd.read_parquet(work / "world" / "customers.parquet", columns=["signup_ts"])["signup_ts"]
    ok, total = True, 0
    for w in weeks:
        folder = work / "out" / "scores" / f"dt={w.as_of:%Y-%m-%d}"
        ids = pd.read_parquet(folder, columns=["customer_id"])["customer_id"]
        known = int((customers < w.as_of + pd.Timedelta(days=1)).sum())
        dupes = int(ids.duplicated().sum())
        total += len(ids)
        if len(ids) != known or dupes:
            ok = False
            print(f"  {w.as_of:%Y-%m-%d}: {len(ids):,} rows for {known:,} customers known, {dupes} duplicates")
    partitions = sorted(p.name for p in (work / "out" / "scores").iterdir() if p.name.startswith("dt="))
    expected = sorted(f"dt={w.as_of:%Y-%m-%d}" for w in weeks)
    complete = all(len(w.steps) == 6 for w in weeks)
    stray = [p.name for p in (work / "out").iterdir() if p.name.startswith(".dt=")]
    ok = ok and partitions == expected and complete and not stray
    print(
        f"\nintegrity: {len(partitions)} partitions for {len(weeks)} weeks, {total:,} rows = customers known at each "
        f"as-of, no duplicates: {'yes' if ok else 'NO'}; journals complete: {complete}; temp folders left: {len(stray)}"
    )
    return ok


def timings(weeks: list[Week], results: Results) -> None:
    print(f"\n{'run':<16} {'wall s':>7} {'peak GB':>8}  steps (s)")
    for w in weeks:
        steps = ", ".join(f"{k} {v['seconds']:.1f}" for k, v in w.steps.items() if v["seconds"] >= 0.05)
        print(f"{w.n:>3} {w.as_of:%Y-%m-%d} {w.wall:>8.1f} {w.rss_gb:>8.2f}  {steps}")
    walls = [w.wall for w in weeks[1:]] or [weeks[0].wall]
    print(f"weekly runs after the bootstrap: median {statistics.median(walls):.1f} s, max {max(walls):.1f} s")
    results.records = [
        {"week": w.n, "as_of": f"{w.as_of:%Y-%m-%d}", "wall_s": w.wall, "peak_rss_gb": w.rss_gb,
         **{f"{k}_s": v["seconds"] for k, v in w.steps.items()}}
        for w in weeks
    ]  # fmt: skip
    results.headline("churnclv weekly, the bootstrap run (validate, train, score)", weeks[0].wall, "s")
    results.headline(f"churnclv weekly, median of {len(walls)} weekly run(s) after it", statistics.median(walls), "s")


def main() -> None:
    ap = bench_parser(__file__, __doc__)
    ap.add_argument("--customers", type=int, default=2_500)
    ap.add_argument("--weeks", type=int, default=52)
    ap.add_argument(
        "--start", type=day, default="2025-01-05", help="The first week's as-of (a bootstrap run comes a week before)."
    )
    ap.add_argument("--shift-date", type=day, default=None, help="Default: half way through the weeks.")
    ap.add_argument("--shift-purchase-rate", type=float, default=0.5)
    ap.add_argument("--shift-hazard", type=float, default=3.0)
    ap.add_argument("--horizon", type=int, default=28, help="Days; short, so outcomes close within weeks.")
    ap.add_argument("--cadence", type=int, default=120, help="[weekly] retrain_every_days.")
    ap.add_argument("--gate", choices=sorted(GATES), default="default", help="The promotion tolerance (see GATES).")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--work", type=Path, default=Path("/tmp/churnclv-weekly-year"))
    ap.add_argument("--report-only", action="store_true", help="Print the report of a finished --work folder again.")
    args = ap.parse_args()
    if args.weeks < 1:
        ap.error(f"--weeks {args.weeks}: at least 1")
    results = Results(args.json, __file__)

    start = pd.Timestamp(args.start)
    as_ofs = [start + pd.Timedelta(weeks=k) for k in range(-1, args.weeks)]
    shift = pd.Timestamp(args.shift_date) if args.shift_date else start + pd.Timedelta(weeks=args.weeks // 2)
    if args.report_only:
        walls = [json.loads(line) for line in (args.work / "walls.jsonl").read_text().splitlines()]
        weeks = [read_week(args.work, a, n, walls[n]["wall"], walls[n]["rss_gb"]) for n, a in enumerate(as_ofs)]
        report(weeks, shift, args, results)
        return
    if args.work.exists():
        shutil.rmtree(args.work)
    (args.work / "logs").mkdir(parents=True)
    config = WorldConfig(
        n_customers=args.customers,
        seed=args.seed,
        signup_days=(pd.Timestamp("2025-12-31") - pd.Timestamp("2023-01-01")).days,  # sign-ups all along
        shift_date=shift,
        shift_purchase_rate=args.shift_purchase_rate,
        shift_hazard=args.shift_hazard,
    )
    generate_world_to_parquet(config, args.work / "world", truth_as_of=[shift], horizon_days=args.horizon)
    (args.work / "weekly.toml").write_text(
        CONFIG.format(horizon=args.horizon, cadence=args.cadence, tolerance=GATES[args.gate])
    )
    print(
        f"{args.customers:,} customers; {args.weeks} weekly runs from {start:%Y-%m-%d} (bootstrap "
        f"{as_ofs[0]:%Y-%m-%d}); shift {shift:%Y-%m-%d}: purchases x {args.shift_purchase_rate:g}, dropout x "
        f"{args.shift_hazard:g}; horizon {args.horizon} days; cadence {args.cadence} days; gate {args.gate}; "
        f"work {args.work}",
        flush=True,
    )
    weeks = []
    for n, as_of in enumerate(as_ofs):
        week = weekly(args, args.work, as_of, n)
        weeks.append(week)
        print(f"  week {n:>2} {as_of:%Y-%m-%d}: {week.wall:5.1f} s", flush=True)
        with (args.work / "walls.jsonl").open("a") as fh:
            fh.write(json.dumps({"n": n, "wall": week.wall, "rss_gb": week.rss_gb}) + "\n")
    report(weeks, shift, args, results)


def report(weeks: list[Week], shift: pd.Timestamp, args: argparse.Namespace, results: Results) -> None:
    timings(weeks, results)
    if args.weeks > 1:
        timeline(weeks, shift)
        story(weeks, shift)
    ok = integrity(weeks, args.work)
    results.headline(
        "every customer known at each as-of scored exactly once (1 = yes)", float(ok), goal=Goal("ours", ">=", 1)
    )
    results.write()
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
