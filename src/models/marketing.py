"""The fields marketers know from Klaviyo and GA4, from a customer's scores and features.

One place computes them for every path (batch chunks, HTTP, the MLflow pyfunc on Spark):
:meth:`churnclv.models.scorer.Scorer.score` calls :func:`with_marketing` on its model outputs. The
fields, with their units (currency is the unit of the transactions' ``amount``):

- ``historic_clv`` (currency): net spend to date, returns subtracted (the feature ``net_spend``); negative
  when the data hold more returns than purchases, not floored, so it sums to the net revenue;
- ``total_clv`` (currency): ``historic_clv + clv``, spend to date plus the discounted 12-month CLV;
- ``avg_order_value`` (currency per purchase day): ``net_spend / n_purchase_days``; null without a
  purchase. An order is a purchase day, as in ``expected_purchases``;
- ``avg_days_between_orders`` (days): the mean gap between purchase days (``gap_mean_days``); null
  with fewer than 2 purchase days;
- ``risk_band`` (``low``, ``medium``, ``high``): ``p_churn`` at the cut points of ``[risk_bands]``;
- ``clv_at_risk`` (currency): ``p_churn * clv``, the CLV at stake weighted by the churn risk (what a
  CRM ranks contacts by);
- ``acquisition_cost`` (currency): the customer's acquisition cost from ``[acquisition_cost]``
  (a customers-table column, else the channel's cost, else the default); null when none is known;
- ``net_clv`` (currency): ``clv - acquisition_cost``; null when the cost is unknown.

The seed formula of the request (average order value x frequency x retention - acquisition cost) is
what ``net_clv`` stands for; the models' discounted CLV takes the place of its first three factors.
Predicted orders and spend over the horizon are ``expected_purchases`` and ``expected_spend``.
"""

from __future__ import annotations

import functools
import logging

import numpy as np
import pandas as pd

from churnclv.models.marketing_config import RISK_BAND_NAMES, AcquisitionCost, RiskBands
from churnclv.models.tier_config import TierConfig, default_tier_config
from churnclv.models.tier_policy import TierPolicy

log = logging.getLogger(__name__)

__all__ = ["MARKETING_COLUMNS", "MARKETING_FEATURES", "acquisition_costs", "risk_bands", "with_marketing"]

#: The columns :func:`with_marketing` appends, in order.
MARKETING_COLUMNS: tuple[str, ...] = (
    "historic_clv",
    "total_clv",
    "avg_order_value",
    "avg_days_between_orders",
    "risk_band",
    "clv_at_risk",
    "acquisition_cost",
    "net_clv",
)
#: The feature columns they read (besides the customers-table attributes of ``[acquisition_cost]``).
MARKETING_FEATURES: tuple[str, ...] = ("net_spend", "n_purchase_days", "gap_mean_days")
_ATTRIBUTE = "attr_{}"  # how a customers-table column reaches the feature frame (churnclv.features)


def risk_bands(p_churn: np.ndarray, bands: RiskBands) -> np.ndarray:
    """The band of each churn probability: ``low`` below ``bands.medium``, ``medium`` from it,
    ``high`` from ``bands.high`` (a cut point belongs to the band above it)."""
    index = np.searchsorted(np.asarray(bands.cut_points), np.asarray(p_churn, dtype=float), side="right")
    return np.asarray(RISK_BAND_NAMES, dtype=object)[index]


def acquisition_costs(features: pd.DataFrame, config: AcquisitionCost) -> np.ndarray:
    """Each customer's acquisition cost (NaN: unknown), the first known of: the customers-table
    column ``config.column`` (a finite number >= 0; anything else counts as unknown, and is counted
    in a warning), the cost of the customer's channel in ``config.by_channel``, ``config.default``."""
    cost = np.full(len(features), np.nan)
    own = _ATTRIBUTE.format(config.column)
    if own in features.columns:
        given = features[own]
        values = pd.to_numeric(given, errors="coerce").to_numpy(dtype=float)
        usable = np.isfinite(values) & (values >= 0)
        refused = int((given.notna().to_numpy() & ~usable).sum())
        if refused:  # a count only: the values are customer data
            log.warning(
                "acquisition cost: %d customer(s) have a value in the column %r that is not a number >= 0; "
                "their cost comes from the channel or the default",
                refused,
                config.column,
            )
        cost = np.where(usable, values, np.nan)
    if config.by_channel:
        channel = _ATTRIBUTE.format(config.channel_column)
        if channel in features.columns:
            # each distinct channel looked up once (Series.map with a dict costs ~0.6 ms on one row)
            codes, names = pd.factorize(features[channel])  # code -1: no channel
            lookup = np.array([config.by_channel.get(str(name), np.nan) for name in names] + [np.nan])
            cost = np.where(np.isnan(cost), lookup[codes], cost)
        else:
            _warn_no_channel(config.channel_column)
    if config.default is not None:
        cost = np.where(np.isnan(cost), config.default, cost)
    return cost


@functools.cache
def _warn_no_channel(column: str) -> None:
    # once per process: the HTTP service would say it on every request
    log.warning(
        "acquisition cost: [acquisition_cost] by_channel is set but the model's features have no customers-table "
        "column %r: add it to the customers table (and retrain), or set channel_column",
        column,
    )


@functools.cache
def _default_config() -> TierConfig:
    return default_tier_config()


def with_marketing(scores: pd.DataFrame, features: pd.DataFrame, policy: TierPolicy | None) -> pd.DataFrame:
    """``scores`` with :data:`MARKETING_COLUMNS` appended.

    Parameters
    ----------
    scores : DataFrame
        The scorer's model outputs (``p_churn`` and ``clv``), row for row with ``features``.
    features : DataFrame
        The feature frame scored (:func:`churnclv.features.compute_features`).
    policy : TierPolicy or None
        Its config's ``[risk_bands]`` and ``[acquisition_cost]`` are used; None: the shipped defaults.

    Raises
    ------
    ValueError
        ``features`` lacks a column of :data:`MARKETING_FEATURES`.
    """
    missing = [c for c in MARKETING_FEATURES if c not in features.columns]
    if missing:
        raise ValueError(
            f"Scorer.score: features are missing columns {missing} that the marketing fields (historic CLV, average "
            "order value, days between orders) read: compute the features with churnclv.features.compute_features"
        )
    config = policy.tier_config if policy is not None else _default_config()
    # + 0.0: a purchase returned to the cent nets -0.0, shown as "-0.0" in the outputs
    spend = features["net_spend"].to_numpy(dtype=float, na_value=np.nan) + 0.0
    days = features["n_purchase_days"].to_numpy(dtype=float, na_value=np.nan)
    clv = scores["clv"].to_numpy(dtype=float)
    p_churn = scores["p_churn"].to_numpy(dtype=float)
    cost = acquisition_costs(features, config.acquisition_cost)
    with np.errstate(divide="ignore", invalid="ignore"):
        aov = np.where(days > 0, spend / days, np.nan) + 0.0
    extra = pd.DataFrame(
        {
            "historic_clv": spend,
            "total_clv": spend + clv,
            "avg_order_value": aov,
            "avg_days_between_orders": features["gap_mean_days"].to_numpy(dtype=float, na_value=np.nan),
            "risk_band": risk_bands(p_churn, config.risk_bands),
            "clv_at_risk": p_churn * clv,
            "acquisition_cost": cost,
            "net_clv": clv - cost,
        },
        index=scores.index,
    )
    return pd.concat([scores, extra], axis=1)
