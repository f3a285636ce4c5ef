"""Tracking plots: the base's repeat purchases over time against the BTYD model (lifetimes'
``plot_cumulative_transactions`` and ``plot_incremental_transactions``; Fader, Hardie and Lee 2005, fig. 2-3).

The model's line is unconditional: each customer's expected repeat purchase days since their first
purchase, ``E[X(t)]``, summed over the customers the model knows (first purchase on or before as-of).
Before as-of the lines show the fit; after it, the forecast of the whole base. What to look for: the
cumulative lines together after as-of (a gap that opens is a bias in the aggregate forecast), and the
incremental actual line wandering around the model's (seasonal swings the model cannot know about are
expected; a trend away from it is not).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from churnclv.diagnostics.inputs import DiagnosticsError, as_btyd, purchase_days, unit_days
from churnclv.features import FeatureConfig
from churnclv.models.lifetimes_fitters import fitter_with_params, quiet
from churnclv.plotting import _axes

__all__ = ["expected_repeat_purchases", "plot_purchases_over_time", "purchases_over_time"]


def expected_repeat_purchases(model: Any, days: Any) -> np.ndarray:
    """Unconditional ``E[X(t)]``: expected repeat purchase days within ``t`` days of a first purchase.

    BG/NBD: Fader, Hardie and Lee (2005), eq. 9; Pareto/NBD: Schmittlein, Morrison and Colombo (1987);
    MBG/NBD: Batislam, Denizel and Filiztekin (2007). ``days`` may be any shape; ``t = 0`` gives 0.
    """
    btyd = as_btyd(model)
    t = np.asarray(days, dtype=float) / float(btyd.time_unit_days)
    fitter = fitter_with_params(btyd.model, btyd.params_)
    out = np.zeros(t.shape)
    positive = t > 0
    with quiet():
        out[positive] = np.asarray(fitter.expected_number_of_purchases_up_to_time(t[positive]), dtype=float)
    if not np.isfinite(out).all():
        raise DiagnosticsError(
            f"expected_repeat_purchases: the {btyd.model} formula is not finite at params {btyd.params_} "
            "(a singular parameter set, e.g. a = 1); refit with a small penalizer."
        )
    return out


def purchases_over_time(
    model: Any,
    transactions: pd.DataFrame,
    as_of: Any,
    *,
    end: Any = None,
    time_unit: str = "weeks",
    config: FeatureConfig = FeatureConfig(),
) -> pd.DataFrame:
    """Repeat purchase days per period, actual and expected, of the customers known to the model.

    Parameters
    ----------
    model : BTYDModel or Scorer
        A fitted BTYD model (or a scorer, whose ``btyd_`` is used), fitted as of ``as_of``.
    transactions : pandas.DataFrame
        Transactions in the data contract (``customer_id``, ``ts``, ``amount``), reaching past ``as_of``
        for the holdout part.
    as_of : date-like
        The model's as-of date: customers whose first purchase is later are left out (the model does
        not know them).
    end : date-like, optional
        Last day tracked (default: the last purchase day in ``transactions``).
    time_unit : {"days", "weeks"}, default "weeks"
        Period length. Periods start at the first purchase day of the population.
    config : FeatureConfig
        Its ``zero_amount_is_purchase`` decides what a purchase day is, as in the feature job.

    Returns
    -------
    pandas.DataFrame
        One row per period: ``period`` (1, 2, ...), ``start`` and ``end`` (days, inclusive),
        ``holdout`` (the period ends after as-of), ``actual`` and ``expected`` repeat purchase days in
        the period, and their running totals ``actual_cumulative``, ``expected_cumulative``.
    """
    unit = int(unit_days(time_unit))
    as_of_day = pd.Timestamp(as_of).normalize()
    days = purchase_days(transactions, config)
    days = days[days["first_day"] <= as_of_day]
    if days.empty:
        raise DiagnosticsError(
            f"purchases_over_time: no customer's first purchase is on or before as_of={as_of_day:%Y-%m-%d}; "
            "pass the as-of date the model was fitted at."
        )
    last = days["day"].max() if end is None else pd.Timestamp(end).normalize()
    days = days[days["day"] <= last]
    start = days["first_day"].min()
    n_periods = int(np.ceil(((last - start).days + 1) / unit))
    period_start = start + pd.to_timedelta(np.arange(n_periods) * unit, unit="D")
    period_end = np.minimum(period_start + pd.Timedelta(days=unit - 1), last)
    repeat = days[days["day"] > days["first_day"]]
    index = ((repeat["day"] - start).dt.days // unit).to_numpy()
    actual = np.bincount(index, minlength=n_periods).astype(float)
    # E[X(t)] at each period's end for each first-purchase day, t = end - first day (in days)
    cohorts = days.drop_duplicates("customer_id")["first_day"].value_counts()
    ages = (period_end.to_numpy()[:, None] - cohorts.index.to_numpy()[None, :]) / pd.Timedelta(days=1)
    unique_ages, inverse = np.unique(np.maximum(ages, 0.0), return_inverse=True)
    cumulative = expected_repeat_purchases(model, unique_ages)[inverse].reshape(ages.shape) @ cohorts.to_numpy()
    return pd.DataFrame(
        {
            "period": np.arange(1, n_periods + 1),
            "start": period_start,
            "end": period_end,
            "holdout": period_end > as_of_day,
            "actual": actual,
            "expected": np.diff(cumulative, prepend=0.0),
            "actual_cumulative": np.cumsum(actual),
            "expected_cumulative": cumulative,
        }
    )


def plot_purchases_over_time(
    model: Any,
    transactions: pd.DataFrame,
    as_of: Any,
    *,
    cumulative: bool = True,
    end: Any = None,
    time_unit: str = "weeks",
    config: FeatureConfig = FeatureConfig(),
    ax: Axes | None = None,
) -> Axes:
    """Repeat purchases per period, actual (line 0) and model (line 1), with as-of marked (line 2).

    Takes the arguments of :func:`purchases_over_time` and draws its ``actual_cumulative`` and
    ``expected_cumulative`` columns (lifetimes' ``plot_cumulative_transactions``) or, with
    ``cumulative=False``, ``actual`` and ``expected`` (``plot_incremental_transactions``).
    """
    table = purchases_over_time(model, transactions, as_of, end=end, time_unit=time_unit, config=config)
    kind, suffix = ("cumulative", "_cumulative") if cumulative else ("incremental", "")
    ax = _axes(ax, (7.0, 4.0))
    x = table["period"].to_numpy()
    ax.plot(x, table[f"actual{suffix}"].to_numpy(), color="black", label="actual")
    ax.plot(x, table[f"expected{suffix}"].to_numpy(), color="tab:blue", linestyle="--", label="model")
    fitted = table.loc[~table["holdout"], "period"]
    if len(fitted) and table["holdout"].any():
        ax.axvline(float(fitted.max()), color="grey", linestyle=":", label="as-of")
    ax.set(
        xlabel=f"{time_unit} since the first purchase",
        ylabel=f"{kind} repeat purchase days",
        title=f"{kind} repeat purchases: actual and model",
    )
    ax.legend(fontsize="small")
    return ax
