"""Cohort retention: customers grouped by the period of their first purchase, and the share of each
cohort that bought again in each later period.

What to look for: along a row, how fast a cohort falls off after its first period and where it
levels out (the loyal core); down a column, whether newer cohorts keep better or worse than older
ones at the same age (a change in acquisition or in the product shows up there first, long before
it moves the base's totals).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from churnclv.diagnostics.inputs import DiagnosticsError, purchase_days
from churnclv.features import FeatureConfig
from churnclv.plotting import _axes

__all__ = ["PERIODS", "cohort_matrix", "cohort_retention", "plot_cohort_retention"]

#: Cohort periods and their pandas period codes.
PERIODS: dict[str, str] = {"week": "W", "month": "M", "quarter": "Q"}


def cohort_retention(
    transactions: pd.DataFrame, as_of: Any, *, period: str = "month", config: FeatureConfig = FeatureConfig()
) -> pd.DataFrame:
    """Share of each first-purchase cohort buying in each later period, up to ``as_of``.

    Parameters
    ----------
    transactions : pandas.DataFrame
        Transactions in the data contract (``customer_id``, ``ts``, ``amount``); rows after ``as_of``
        are not read.
    as_of : date-like
        Only periods that ended on or before this day are shown (a period still running would look
        like a drop).
    period : {"week", "month", "quarter"}, default "month"
        Cohort and retention period (weeks run Monday to Sunday).
    config : FeatureConfig
        Its ``zero_amount_is_purchase`` decides what a purchase day is, as in the feature job.

    Returns
    -------
    pandas.DataFrame
        Long form, one row per cohort and period since the first purchase: ``cohort`` (label),
        ``cohort_start``, ``period`` (0 = the first purchase's period), ``customers`` (cohort size),
        ``active`` (customers with a purchase day in that period), ``retention`` (active / customers).
        :func:`cohort_matrix` pivots it.
    """
    if period not in PERIODS:
        raise DiagnosticsError(f"period={period!r} is not one of {list(PERIODS)}.")
    end = pd.Timestamp(as_of).normalize()
    days = purchase_days(transactions, config)
    days = days[days["day"] <= end]
    if days.empty:
        raise DiagnosticsError(f"cohort_retention: no purchase day on or before as_of={end:%Y-%m-%d}.")
    freq = PERIODS[period]
    bought = pd.PeriodIndex(days["day"], freq=freq)
    first = pd.PeriodIndex(days["first_day"], freq=freq)
    closed = (bought.end_time.normalize() <= end) & (first.end_time.normalize() <= end)
    frame = pd.DataFrame(
        {
            "customer_id": days["customer_id"].to_numpy(),
            "cohort_start": first.start_time,
            "period": (bought.asi8 - first.asi8),
            "closed": closed,
        }
    )
    sizes = frame.drop_duplicates("customer_id").groupby("cohort_start").size().rename("customers")
    active = (
        frame[frame["closed"]].drop_duplicates(["customer_id", "period"]).groupby(["cohort_start", "period"]).size()
    )
    # every closed period of each cohort, including those in which nobody bought
    last = pd.Period(end, freq=freq)
    if last.end_time.normalize() > end:
        last -= 1
    rows = []
    for start, size in sizes.items():
        n_closed = last.ordinal - pd.Period(start, freq=freq).ordinal + 1
        for k in range(max(n_closed, 0)):
            rows.append((start, k, int(size), int(active.get((start, k), 0))))
    out = pd.DataFrame(rows, columns=["cohort_start", "period", "customers", "active"])
    out["retention"] = out["active"] / out["customers"]
    # "1997-01", "1997Q1"; a week by its Monday
    labels = [f"{s:%Y-%m-%d}" if period == "week" else str(pd.Period(s, freq=freq)) for s in out["cohort_start"]]
    out.insert(0, "cohort", labels)
    return out


def cohort_matrix(retention: pd.DataFrame) -> pd.DataFrame:
    """:func:`cohort_retention` as a matrix: rows the cohorts (oldest first), columns the periods since."""
    return retention.pivot_table(index="cohort", columns="period", values="retention", aggfunc="first", dropna=False)


def plot_cohort_retention(
    transactions: pd.DataFrame,
    as_of: Any,
    *,
    period: str = "month",
    config: FeatureConfig = FeatureConfig(),
    annotate: bool | None = None,
    ax: Axes | None = None,
) -> Axes:
    """Heat map of :func:`cohort_matrix` (the image array is the matrix; cells not reached yet are masked).

    ``annotate`` writes the percentages in the cells (default: when the matrix has at most 24 columns).
    Period 0 is 100% by definition and is left out of the colour scale.
    """
    matrix = cohort_matrix(cohort_retention(transactions, as_of, period=period, config=config))
    values = matrix.to_numpy(dtype=float)
    ax = _axes(ax, (max(5.0, 0.45 * values.shape[1] + 2.5), max(3.5, 0.35 * values.shape[0] + 1.5)))
    later = values[:, 1:]
    top = float(np.nanmax(later)) if later.size and np.isfinite(later).any() else 1.0
    image = ax.imshow(np.ma.masked_invalid(values), cmap="Blues", vmin=0.0, vmax=max(top, 1e-9), aspect="auto")
    if annotate if annotate is not None else values.shape[1] <= 24:
        for i, j in zip(*np.nonzero(np.isfinite(values)), strict=True):
            colour = "white" if values[i, j] > 0.6 * top else "black"
            ax.text(j, i, f"{values[i, j]:.0%}", ha="center", va="center", fontsize=6, color=colour)
    ax.set_xticks(range(values.shape[1]), [str(c) for c in matrix.columns])
    ax.set_yticks(range(values.shape[0]), matrix.index.tolist())
    ax.set(xlabel=f"{period}s since the first purchase", ylabel="cohort (first purchase)", title="cohort retention")
    ax.figure.colorbar(image, ax=ax, shrink=0.8, label="share buying in the period")
    return ax
