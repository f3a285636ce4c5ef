"""Tiers per customer as one Series, from either form the tier functions accept (Series or frame)."""

from __future__ import annotations

import pandas as pd

__all__ = ["as_tier_series"]


def as_tier_series(tiers: pd.Series | pd.DataFrame, id_col: str = "customer_id") -> pd.Series:
    """Tier names indexed by customer id, from a Series (index = ids) or a frame (id column + tier)."""
    if isinstance(tiers, pd.DataFrame):
        missing = [c for c in (id_col, "tier") if c not in tiers.columns]
        if missing:
            raise ValueError(
                f"tiers frame lacks columns {missing}: pass a frame with {id_col!r} and 'tier' "
                "(e.g. TierPolicy.assign output) or a Series of tiers indexed by customer id"
            )
        s = pd.Series(tiers["tier"].to_numpy(), index=pd.Index(tiers[id_col].to_numpy(), name=id_col))
    elif isinstance(tiers, pd.Series):
        s = tiers
    else:
        raise TypeError(f"tiers must be a pandas Series or DataFrame, got {type(tiers).__name__}")
    if s.index.has_duplicates:
        dup = s.index[s.index.duplicated()][:3].tolist()
        raise ValueError(f"tiers hold customer ids more than once (e.g. {dup}): pass one row per customer")
    return s
