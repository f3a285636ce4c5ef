"""Would a level factor measured on the previous window fix CDNOW's aggregate errors? (It does not.)

For every setup of the CDNOW grid (bench/accuracy.py), lifetimes' BG/NBD + Gamma-Gamma at as-of
predicts total purchases and spend over (as-of, as-of + H]; the calibrated variants multiply them by
realised / predicted over the previous window: the H days before as-of, and the 30 days before it
(the same model fitted at that window's start). Prints the aggregate % errors side by side and how
often the calibration helped.

    .venv/bin/python bench/level_calibration.py
"""

from __future__ import annotations

import datetime as dt
import warnings
from pathlib import Path

import pandas as pd
from accuracy import btyd_reference, cdnow_data, grid, known_at, purchase_days, rfm, window_truth

EARLIEST_CUTOFF = dt.date(1997, 3, 1)  # before it, the window is CDNOW's acquisition period


def main() -> int:
    warnings.filterwarnings("ignore")
    work = Path("work/bench-accuracy")
    work.mkdir(parents=True, exist_ok=True)
    days = purchase_days(pd.read_parquet(cdnow_data(work) / "transactions.parquet"))
    print("| setup | BG/NBD purchases % / spend % | calibrated on the previous H days | on the previous 30 days |")
    print("|---|---|---|---|")
    helped = {"H": [0, 0], "30": [0, 0]}
    for s in grid():
        customers = known_at(days, s.as_of)
        truth = window_truth(days, customers, s.as_of, s.horizon)
        bg = btyd_reference(rfm(days, customers, s.as_of), s.horizon, "bgnbd")
        ratio = (
            bg["expected_purchases"].sum() / truth["purchases"].sum(),
            bg["expected_spend"].sum() / truth["spend"].sum(),
        )
        cells = [f"{100 * (ratio[0] - 1):+.1f} / {100 * (ratio[1] - 1):+.1f}"]
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
            helped[key][0] += abs(cal[0] - 1) < abs(ratio[0] - 1)
            helped[key][1] += 1
        print(f"| {s.label} | {' | '.join(cells)} |", flush=True)
    for key, (better, n) in helped.items():
        print(f"\ncalibrated on the previous {key} days: purchases error smaller on {better} of {n} setups")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
