"""Would a level factor measured on the previous window fix CDNOW's aggregate errors? (It does not.)

For every setup of the CDNOW grid (bench/accuracy.py), lifetimes' BG/NBD + Gamma-Gamma at as-of
predicts total purchases and spend over (as-of, as-of + H]; the calibrated variants multiply them by
realised / predicted over the previous window: the H days before as-of, and the 30 days before it
(the same model fitted at that window's start). Prints the aggregate % errors side by side and how
often the calibration helped.

Then the spend alone, as BG/NBD's total purchases times a value per purchase: Gamma-Gamma's (each
customer's expected purchases times their expected value, what the model does), against the realised
spend per purchase day of the last 30, 90 and 180 days before as-of. Prints the spend errors and, per
variant, their median, mean |error| and the setups within +-10 %.

    .venv/bin/python bench/level_calibration.py
    .venv/bin/python bench/level_calibration.py --setups 1997-08-31:90 1998-01-31:30
"""

from __future__ import annotations

import datetime as dt
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from accuracy import cdnow_data, grid, known_at, parse_setup, purchase_days, rfm, window_truth
from accuracy_references import btyd_reference
from common import Results, bench_parser

EARLIEST_CUTOFF = dt.date(1997, 3, 1)  # before it, the window is CDNOW's acquisition period
VALUE_WINDOWS = (30, 90, 180)  # days before as-of whose realised spend per purchase day is tried


def value_per_purchase(s, days: pd.DataFrame, truth: pd.DataFrame, bg: pd.DataFrame) -> dict[str, float]:
    """One setup's spend % errors: BG/NBD's spend total, and its purchases total times the realised spend
    per purchase day of the last L days (``VALUE_WINDOWS``); with the realised and Gamma-Gamma's value."""
    purchases, spend = bg["expected_purchases"].sum(), bg["expected_spend"].sum()
    real = truth["spend"].sum()
    row = {"realised": real / truth["purchases"].sum(), "gamma-gamma value": spend / purchases}
    row["gamma-gamma"] = 100 * (spend / real - 1)
    for n in VALUE_WINDOWS:
        start, end = pd.Timestamp(s.as_of - dt.timedelta(days=n)), pd.Timestamp(s.as_of)
        seen = days[(days["day"] > start) & (days["day"] <= end)]
        value = seen["net"].sum() / seen["purchase"].sum()
        row[f"last {n} days"] = 100 * (purchases * value / real - 1)
    return row


def print_value_per_purchase(rows: dict[str, dict[str, float]]) -> None:
    """The spend errors per setup (:func:`value_per_purchase`), then per variant: median, mean |error|,
    setups within +-10 %."""
    variants = ["gamma-gamma", *(f"last {n} days" for n in VALUE_WINDOWS)]
    windows = " | ".join(f"value of the last {n} days" for n in VALUE_WINDOWS)
    print(f"\n| setup | realised spend per purchase day | Gamma-Gamma's | spend % error: Gamma-Gamma | {windows} |")
    print("|---|---|---|---|" + "---|" * len(VALUE_WINDOWS))
    for label, row in rows.items():
        cells = " | ".join(f"{row[v]:+.1f}" for v in variants)
        print(f"| {label} | {row['realised']:.2f} | {row['gamma-gamma value']:.2f} | {cells} |")
    print("\n| spend = purchases x value per purchase of | median % error | mean abs % error | setups within +-10 % |")
    print("|---|---|---|---|")
    for v in variants:
        x = np.asarray([row[v] for row in rows.values()])
        print(f"| {v} | {np.median(x):+.2f} | {np.abs(x).mean():.2f} | {int((np.abs(x) <= 10).sum())}/{len(x)} |")


def main() -> int:
    ap = bench_parser(__file__, __doc__)
    ap.add_argument(
        "--setups", nargs="+", type=parse_setup, help="AS_OF:HORIZON, e.g. 1997-08-31:90 (default: the grid)"
    )
    ap.add_argument("--work", type=Path, default=Path("work/bench-accuracy"), help="where CDNOW is cached")
    args = ap.parse_args()
    out = Results(args.json, __file__)
    warnings.filterwarnings("ignore")
    args.work.mkdir(parents=True, exist_ok=True)
    days = purchase_days(pd.read_parquet(cdnow_data(args.work) / "transactions.parquet"))
    print("| setup | BG/NBD purchases % / spend % | calibrated on the previous H days | on the previous 30 days |")
    print("|---|---|---|---|")
    helped = {"H": [0, 0], "30": [0, 0]}
    values: dict[str, dict[str, float]] = {}
    for s in args.setups or grid():
        customers = known_at(days, s.as_of)
        truth = window_truth(days, customers, s.as_of, s.horizon)
        bg = btyd_reference(rfm(days, customers, s.as_of), s.horizon, "bgnbd")
        ratio = (
            bg["expected_purchases"].sum() / truth["purchases"].sum(),
            bg["expected_spend"].sum() / truth["spend"].sum(),
        )
        cells = [f"{100 * (ratio[0] - 1):+.1f} / {100 * (ratio[1] - 1):+.1f}"]
        record: dict[str, object] = {
            "setup": s.label,
            "purchases_err_pct": 100 * (ratio[0] - 1),
            "spend_err_pct": 100 * (ratio[1] - 1),
        }
        for key, length in (("H", s.horizon), ("30", 30)):
            start = s.as_of - dt.timedelta(days=length)
            if start < EARLIEST_CUTOFF:
                cells.append("n/a")
                continue
            past = known_at(days, start)
            seen = window_truth(days, past, start, length)
            fit = btyd_reference(rfm(days, past, start), length, "bgnbd")
            fp = seen["purchases"].sum() / fit["expected_purchases"].sum()
            fs = seen["spend"].sum() / fit["expected_spend"].sum()
            cal = (ratio[0] * fp, ratio[1] * fs)
            cells.append(f"{100 * (cal[0] - 1):+.1f} / {100 * (cal[1] - 1):+.1f}")
            record[f"calibrated_{key}_purchases_err_pct"] = 100 * (cal[0] - 1)
            record[f"calibrated_{key}_spend_err_pct"] = 100 * (cal[1] - 1)
            helped[key][0] += abs(cal[0] - 1) < abs(ratio[0] - 1)
            helped[key][1] += 1
        values[s.label] = value_per_purchase(s, days, truth, bg)
        record["value_per_purchase_spend_err_pct"] = values[s.label]
        print(f"| {s.label} | {' | '.join(cells)} |", flush=True)
        out.records.append(record)
    print_value_per_purchase(values)
    for key, (better, n) in helped.items():
        print(f"\ncalibrated on the previous {key} days: purchases error smaller on {better} of {n} setups")
        out.headline(
            f"setups where a level factor from the previous {key} days made BG/NBD's purchases error smaller",
            better,
            "",
            n,
            "setups with that window in the data",
        )
    out.write()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
