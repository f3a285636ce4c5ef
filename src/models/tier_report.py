"""The tier report: customers and value per tier and the migration between two scorings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from churnclv.models.tier_series import as_tier_series

__all__ = ["Migration", "TierReport", "migration_matrix", "tier_report", "tier_summary"]


@dataclass(frozen=True)
class Migration:
    """Tier migration between two scorings, for customers present at both.

    ``counts`` and ``shares`` (row shares: where last scoring's tier went) have the previous tier
    as rows and the current tier as columns, top tier first.
    """

    counts: pd.DataFrame
    shares: pd.DataFrame
    n_only_prev: int = 0
    n_only_curr: int = 0


@dataclass(frozen=True)
class TierReport:
    """Tier summary and, when a previous scoring is given, the migration matrix."""

    summary: pd.DataFrame
    migration: Migration | None = None


def _tier_order(tiers: Sequence[str] | None, *series: pd.Series) -> list[str]:
    if tiers is not None:
        return list(tiers)
    seen: list[str] = []
    for s in series:
        for t in pd.unique(s.dropna().astype(str)):
            if t not in seen:
                seen.append(t)
    return sorted(seen)


def _check_known(order: Sequence[str], *series: pd.Series) -> None:
    """Raise when a tier of ``series`` is not in ``order`` (read from the distinct values: a Python
    string a row would cost ~0.5 s at 1M customers)."""
    unknown = sorted(set().union(*(s.dropna().unique() for s in series)) - set(order))
    if unknown:
        raise ValueError(f"tiers {unknown} are not in the tier order {order}: pass tiers= with every tier")


def tier_summary(
    frame: pd.DataFrame,
    *,
    tiers: Sequence[str] | None = None,
    tier_col: str = "tier",
    clv_col: str = "clv",
    expected_spend_col: str | None = "expected_spend",
    spend_col: str | None = None,
) -> pd.DataFrame:
    """Customers and value share per tier.

    Parameters
    ----------
    frame : pandas.DataFrame
        One row per customer with the tier and the CLV (e.g. ``assign`` output joined to scores).
    tiers : sequence of str, optional
        Tier order, top first (default: ``TierPolicy.tier_names`` should be passed; else sorted).
    tier_col, clv_col : str
        Columns of the tier and the predicted CLV.
    expected_spend_col : str, optional
        Predicted spend over the horizon; its share is reported when the column is present.
    spend_col : str, optional
        Realized past spend (e.g. ``net_spend_365d``): adds the past revenue share.

    Returns
    -------
    pandas.DataFrame
        One row per tier (all tiers, top first): ``tier``, ``customers``, ``customer_share``,
        ``clv``, ``clv_share``, and ``expected_spend[_share]``, ``past_spend[_share]``,
        ``mean_p_churn`` when available.
    """
    for col in (tier_col, clv_col) + ((spend_col,) if spend_col else ()):
        if col not in frame.columns:
            raise ValueError(f"tier_summary needs column {col!r}; the frame has {list(frame.columns)}")
    order = _tier_order(tiers, frame[tier_col])
    t = frame[tier_col].astype("string")
    _check_known(order, t)
    g = frame.assign(_tier=t).groupby("_tier", sort=False)
    out = pd.DataFrame(index=pd.Index(order, name="tier"))
    out["customers"] = g.size().reindex(order, fill_value=0).astype(np.int64)
    out["customer_share"] = out["customers"] / max(len(frame), 1)
    value_cols = [("clv", clv_col)]
    if expected_spend_col and expected_spend_col in frame.columns:
        value_cols.append(("expected_spend", expected_spend_col))
    if spend_col:
        value_cols.append(("past_spend", spend_col))
    for name, col in value_cols:
        sums = g[col].sum().reindex(order, fill_value=0.0).astype(np.float64)
        total = float(sums.sum())
        out[name] = sums
        out[f"{name}_share"] = sums / total if total != 0 else np.nan
    if "p_churn" in frame.columns:
        out["mean_p_churn"] = g["p_churn"].mean().reindex(order).astype(np.float64)
    return out.reset_index()


def migration_matrix(
    prev: pd.Series | pd.DataFrame,
    curr: pd.Series | pd.DataFrame,
    *,
    tiers: Sequence[str] | None = None,
) -> Migration:
    """Counts and row shares of tier moves between two scorings.

    Parameters
    ----------
    prev, curr : pandas.Series or pandas.DataFrame
        Tiers at the earlier and the later date (Series indexed by customer id, or frames with
        ``customer_id`` and ``tier``). Only customers present at both dates are counted.
    tiers : sequence of str, optional
        Tier order, top first (default: sorted names).

    Returns
    -------
    Migration
        ``counts`` (sums to the customers at both dates), ``shares`` (rows sum to 1; NaN for a
        tier nobody held), and how many customers are only in ``prev`` / only in ``curr``.
    """
    p, c = as_tier_series(prev), as_tier_series(curr)
    both = p.index.intersection(c.index)
    order = _tier_order(tiers, p, c)
    a = p.loc[both].astype("string")
    b = c.loc[both].astype("string")
    _check_known(order, a, b)
    counts = (
        pd.crosstab(
            pd.Categorical(a.to_numpy(), categories=order),
            pd.Categorical(b.to_numpy(), categories=order),
            dropna=False,
        )
        .reindex(index=order, columns=order, fill_value=0)
        .astype(np.int64)
    )
    counts.index.name, counts.columns.name = "previous tier", "current tier"
    row = counts.sum(axis=1).astype(np.float64).replace(0.0, np.nan)
    shares = counts.div(row, axis=0)
    return Migration(
        counts=counts,
        shares=shares,
        n_only_prev=len(p.index.difference(c.index)),
        n_only_curr=len(c.index.difference(p.index)),
    )


def tier_report(
    curr: pd.DataFrame,
    *,
    prev: pd.Series | pd.DataFrame | None = None,
    tiers: Sequence[str] | None = None,
    clv_col: str = "clv",
    spend_col: str | None = None,
) -> TierReport:
    """Tier summary of ``curr`` and, with ``prev``, the migration from ``prev`` to ``curr``.

    ``curr`` needs ``tier`` and ``clv`` (plus ``customer_id`` with ``prev``); see
    :func:`tier_summary` and :func:`migration_matrix`.
    """
    summary = tier_summary(curr, tiers=tiers, clv_col=clv_col, spend_col=spend_col)
    migration = None if prev is None else migration_matrix(prev, curr, tiers=tiers)
    return TierReport(summary=summary, migration=migration)
