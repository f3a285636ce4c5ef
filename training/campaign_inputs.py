"""What ``churnclv campaign evaluate`` and ``fit-targeting`` read: a campaign's scores, its arms, its contact log,
and its evaluation against the data after it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from churnclv.campaigns.errors import CampaignError

if TYPE_CHECKING:
    from churnclv.campaigns.config import CampaignConfig
    from churnclv.campaigns.evaluate import CampaignEvaluation

__all__ = ["CAMPAIGN_EXPERIMENT", "SCORES_HELP", "campaign_arms", "evaluate_from_files", "read_table", "scores_as_of"]

CAMPAIGN_EXPERIMENT = "churnclv-campaigns"  # the MLflow experiment of campaign evaluations and targetings
SCORES_HELP = "The scores of the campaign's as-of: a Parquet file, a partition folder (OUT/scores/dt=D) or a CSV."


def read_table(path: Path, what: str) -> pd.DataFrame:
    """A Parquet file or folder, or a CSV, with ``customer_id`` kept as strings (leading zeros)."""
    try:
        if path.suffix.lower() == ".csv":
            return pd.read_csv(path, dtype={"customer_id": str})
        frame = pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise CampaignError(f"{what} {path}: cannot be read ({type(exc).__name__}); fix: pass Parquet or CSV") from None
    if "customer_id" in frame.columns:
        frame["customer_id"] = frame["customer_id"].astype(str)
    return frame


def scores_as_of(scores: pd.DataFrame, given: Any) -> pd.Timestamp:
    """``given``, else the one as-of of the scores' ``as_of`` column."""
    if given is not None:
        return pd.Timestamp(given)
    days = pd.to_datetime(scores["as_of"]).dt.normalize().unique() if "as_of" in scores.columns else []
    if len(days) != 1:
        raise CampaignError(
            f"the scores hold {len(days)} as-of dates; fix: pass the scores of one as-of or --campaign-as-of"
        )
    return pd.Timestamp(days[0])


def campaign_arms(frame: pd.DataFrame, campaign_id: str, plan: pd.DataFrame | None, config: CampaignConfig) -> Any:
    """The arms of ``campaign_id``: the plan when given, else the scores' holdout column when their campaign
    column is this campaign (a batch partition's), else the plan recomputed from the scores."""
    if plan is not None:
        return plan
    if (
        "holdout" in frame.columns
        and frame["holdout"].notna().all()
        and ("campaign" not in frame.columns or frame["campaign"].eq(campaign_id).all())
    ):  # a batch partition's holdout is this campaign's (null: it drew none)
        return frame[["customer_id", "holdout"]]
    from churnclv.campaigns.holdout import assign_holdout  # the CLI loads this module to list its commands

    s = config.settings
    return assign_holdout(frame, campaign_id, share=s.holdout_share, strata=s.strata, min_controls=s.min_controls)


def evaluate_from_files(
    clean: Any,
    frame: pd.DataFrame,
    arms: pd.DataFrame,
    log: pd.DataFrame,
    *,
    campaign_id: str,
    campaign_day: pd.Timestamp,
    horizon: int,
    as_of: Any,
    config: CampaignConfig,
) -> CampaignEvaluation:
    """:func:`~churnclv.campaigns.evaluate.evaluate_campaign` on the outcomes in the clean tables ``clean``
    over ``horizon`` days after ``campaign_day``, known up to ``as_of`` (default: the window's end)."""
    from churnclv.campaigns.evaluate import campaign_outcomes, evaluate_campaign  # ibis: only when it runs

    known_at = as_of if as_of is not None else campaign_day + pd.Timedelta(days=horizon)
    outcomes = campaign_outcomes(clean, campaign_day, horizon, known_at=known_at)
    return evaluate_campaign(
        frame,
        arms,
        log,
        outcomes,
        campaign=campaign_id,
        as_of=campaign_day,
        horizon_days=horizon,
        costs=config.costs,
        confidence=config.settings.confidence,
        margin=config.settings.margin,
    )
