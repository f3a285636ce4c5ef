"""A past campaign with a holdout, as a targeting learns from it: one row per customer, and what it was measured with.

Besides the customers (arm, outcome, action, the scores' values and the features of the campaign's
as-of) it records the window its outcome was measured over and the model that scored it: the scale
of a value candidate is revenue uplift over that window per unit of a value the model predicted over
its own horizon, so a targeting applies only to scores of a model with the same horizon
(:func:`provenance`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from churnclv.campaigns.errors import CampaignError
from churnclv.campaigns.evaluate import CampaignEvaluation

__all__ = ["ARM_COLUMNS", "PastCampaign", "ScoringModel", "provenance"]

#: The columns of a past campaign's customers that are not values or features.
ARM_COLUMNS = ("customer_id", "treated", "outcome", "action")


@dataclass(frozen=True)
class ScoringModel:
    """The model that scored a campaign: registered name, version and prediction horizon (None: unknown)."""

    name: str | None = None
    version: str | None = None
    horizon_days: int | None = None


@dataclass(frozen=True)
class PastCampaign:
    """One past campaign with a holdout, one row per customer of it.

    ``customers`` holds ``customer_id``, ``treated`` (bool: not held out), ``outcome`` (revenue over
    the window), ``action`` (the scores' action, which sets the cost), the scores' value columns and
    the features of the campaign's as-of (:func:`churnclv.features.compute_features`);
    ``feature_names`` lists the feature columns; ``horizon_days`` is the outcome window (None:
    unknown) and ``model`` the model that scored it.
    """

    name: str
    customers: pd.DataFrame
    feature_names: tuple[str, ...]
    horizon_days: int | None = None
    model: ScoringModel = field(default_factory=ScoringModel)

    @classmethod
    def from_frames(
        cls,
        name: str,
        features: pd.DataFrame,
        scores: pd.DataFrame,
        treated: Any,
        outcome: Any,
        *,
        horizon_days: int | None = None,
        model: ScoringModel | None = None,
    ) -> PastCampaign:
        """From the features and scores of the campaign's as-of (same rows, same order), the arm and the outcome."""
        if not len(features) == len(scores) == len(np.asarray(treated)) == len(np.asarray(outcome)):
            raise CampaignError(
                f"campaign {name!r}: features have {len(features)} rows, scores {len(scores)}, treated "
                f"{len(np.asarray(treated))} and outcome {len(np.asarray(outcome))}; fix: one row per customer in each"
            )
        ids_f, ids_s = features["customer_id"].astype(str).to_numpy(), scores["customer_id"].astype(str).to_numpy()
        if not np.array_equal(ids_f, ids_s):
            raise CampaignError(f"campaign {name!r}: features and scores list other customers or another order")
        arm = pd.DataFrame(
            {
                "customer_id": ids_f,
                "treated": np.asarray(treated, dtype=bool),
                "outcome": np.asarray(outcome, dtype=float),
                "action": scores["action"].astype(str).to_numpy(),
            }
        )
        values = scores.drop(columns=[c for c in (*ARM_COLUMNS, *features.columns) if c in scores.columns])
        names = tuple(c for c in features.columns if c != "customer_id")
        frame = pd.concat([arm, values.reset_index(drop=True), features[list(names)].reset_index(drop=True)], axis=1)
        return cls(name, frame, names, horizon_days, model or ScoringModel())

    @classmethod
    def from_evaluation(
        cls, evaluation: CampaignEvaluation, features: pd.DataFrame, model: ScoringModel | None = None
    ) -> PastCampaign:
        """From :func:`~churnclv.campaigns.evaluate.evaluate_campaign` (its customers, arms, revenue and
        window) and the features of the campaign's as-of; customers without features are left out."""
        c = evaluation.customers
        ids = features["customer_id"].astype(str)
        rows = c.assign(customer_id=c["customer_id"].astype(str)).merge(
            pd.DataFrame({"customer_id": ids}), on="customer_id"
        )
        feats = features.assign(customer_id=ids).set_index("customer_id").loc[rows["customer_id"]].reset_index()
        treated, revenue = ~rows["holdout"].to_numpy(bool), rows["revenue"].to_numpy(float)
        return cls.from_frames(
            evaluation.campaign, feats, rows, treated, revenue, horizon_days=evaluation.horizon_days, model=model
        )


def _one(values: dict[str, int], what: str, fix: str) -> int | None:
    """The one value ``values`` (by campaign) hold, None when empty; a :class:`CampaignError` for several."""
    distinct = sorted(set(values.values()))
    if len(distinct) > 1:
        seen = ", ".join(f"{c}: {v}" for c, v in values.items())
        raise CampaignError(f"the past campaigns' {what} differ ({seen}); fix: {fix}")
    return distinct[0] if distinct else None


def provenance(campaigns: Sequence[PastCampaign]) -> tuple[int | None, dict[str, Any]]:
    """The outcome window the campaigns were measured over and what scored them (``horizon_days``, the
    prediction horizon, and each campaign's model name and version), None where unknown; campaigns of
    different windows or horizons are a :class:`CampaignError` (a value candidate's scale pools them)."""
    window = _one(
        {c.name: int(c.horizon_days) for c in campaigns if c.horizon_days is not None},
        "outcome windows (days)",
        "evaluate every campaign over the same --horizon-days",
    )
    horizon = _one(
        {c.name: int(c.model.horizon_days) for c in campaigns if c.model.horizon_days is not None},
        "scoring models' horizons (days)",
        "learn only from campaigns scored by models of one horizon",
    )
    models = [{"campaign": c.name, "name": c.model.name, "version": c.model.version} for c in campaigns]
    return window, {"horizon_days": horizon, "models": models}
