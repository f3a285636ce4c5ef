"""Tier stability: how many customers change tier between scorings, with and without hysteresis."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from churnclv.models.tier_policy import TierPolicy
from churnclv.models.tier_series import as_tier_series

__all__ = ["hysteresis_effect", "tier_churn_rate"]


def tier_churn_rate(prev: pd.Series | pd.DataFrame, curr: pd.Series | pd.DataFrame) -> float:
    """Share of customers whose tier changed between two scorings.

    Parameters
    ----------
    prev, curr : pandas.Series or pandas.DataFrame
        Tiers at two scoring dates: Series indexed by customer id, or frames with ``customer_id``
        and ``tier``.

    Returns
    -------
    float
        Changed / customers present at both dates; NaN when no customer is at both.
    """
    p, c = as_tier_series(prev), as_tier_series(curr)
    both = p.index.intersection(c.index)
    if len(both) == 0:
        return float("nan")
    a = p.loc[both].astype("string").to_numpy()
    b = c.loc[both].astype("string").to_numpy()
    return float(np.mean(a != b))


def hysteresis_effect(policy: TierPolicy, scorings: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Tier churn between consecutive scorings, without and with hysteresis.

    Parameters
    ----------
    policy : TierPolicy
        A fitted policy.
    scorings : sequence of pandas.DataFrame
        Score frames at consecutive dates, oldest first (each with ``customer_id``). With
        hysteresis, each scoring takes the previous scoring's (hysteresis) tiers as ``prev``.

    Returns
    -------
    pandas.DataFrame
        One row per step (``step`` 1..len-1) with ``without`` and ``with`` (tier churn rates) and
        ``customers`` (present at both dates).
    """
    id_col = policy.tier_config.columns["customer_id"]
    rows = []
    previous: tuple[pd.Series, pd.Series] | None = None  # the last scoring's (plain, held) tiers
    for i, frame in enumerate(scorings):
        ids = frame[id_col].to_numpy()
        plain = pd.Series(policy.predict(frame).to_numpy(), index=ids)
        held = pd.Series(policy.predict(frame, prev=None if previous is None else previous[1]).to_numpy(), index=ids)
        if previous is not None:
            plain_prev, held_prev = previous
            rows.append(
                {
                    "step": i,
                    "without": tier_churn_rate(plain_prev, plain),
                    "with": tier_churn_rate(held_prev, held),
                    "customers": len(plain_prev.index.intersection(plain.index)),
                }
            )
        previous = plain, held
    return pd.DataFrame(rows, columns=["step", "without", "with", "customers"])
