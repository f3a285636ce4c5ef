"""The ``[campaigns]`` section of a run configuration, and the action costs it is read with.

Keys (all optional): ``holdout_share`` (share of every campaign's customers held out as controls,
default 0.1), ``strata`` (the score columns a holdout is balanced over, default tier and action),
``min_controls`` (controls every stratum of two or more customers gets at least, default 1),
``horizon_days`` (the window after the campaign's as-of its outcomes are measured over, default
90), ``confidence`` (of the intervals, default 0.95), ``margin`` (the share of revenue that is
profit, default 1: profit is revenue), ``seed`` (of the uplift models) and ``campaign`` (the
campaign whose holdout ``churnclv score-batch`` writes with the scores; ``--campaign`` wins; unset:
no holdout, the ``campaign`` and ``holdout`` columns are null) and ``targeting`` (the folder of a
targeting saved by ``churnclv campaign fit-targeting``, relative to the working directory: ``churnclv
score-batch`` adds ``contact``, ``expected_incremental_revenue``, ``expected_profit`` and ``targeting`` to
the scores; ``--targeting`` wins; unset: none).

The cost of one contact is not repeated here: it is the action's ``cost`` in the playbook of the
``[tiers]`` section (:mod:`churnclv.models.playbook`), keyed by the action text the scores carry, and
so is whether an action is a contact at all (its ``contact``; ``no_contact`` is never contacted).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, Field

from churnclv.campaigns.errors import CampaignError
from churnclv.campaigns.holdout import MAX_CAMPAIGN_LENGTH, check_campaign
from churnclv.config_schema import Array, Fix, check_table, read_run_config, rule_error, section, settings
from churnclv.models.tier_config import load_tier_config

__all__ = ["CampaignConfig", "CampaignId", "CampaignSettings", "load_campaign_config", "parse_campaigns"]


def _campaign_id(value: str) -> str:
    try:
        return check_campaign(value)
    except CampaignError:
        raise rule_error(
            f"must be non-blank text of at most {MAX_CAMPAIGN_LENGTH} characters without control characters",
            "name the campaign with letters, digits and dashes, e.g. winback-2026-05",
            got=value[:40],
        ) from None


#: A campaign id in a setting (``[campaigns] campaign``, ``CHURNCLV_CAMPAIGN``): :func:`check_campaign`'s rule.
CampaignId = Annotated[str, AfterValidator(_campaign_id)]


@settings("campaigns")
class CampaignSettings:
    """The ``[campaigns]`` section (see the module docstring for every key)."""

    holdout_share: Annotated[
        float, Field(gt=0, le=0.5, allow_inf_nan=False), Fix("a share in (0, 0.5], e.g. holdout_share = 0.1")
    ] = 0.1
    strata: Annotated[Array[str], Fix('score columns, e.g. strata = ["tier", "action"]')] = ("tier", "action")
    min_controls: Annotated[int, Field(ge=0, le=1000)] = 1
    horizon_days: Annotated[int, Field(ge=1, le=3660)] = 90
    confidence: Annotated[float, Field(gt=0.5, lt=1, allow_inf_nan=False)] = 0.95
    margin: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False), Fix("a share in (0, 1], e.g. margin = 0.3")] = 1.0
    seed: Annotated[int, Field(ge=0)] = 0
    campaign: CampaignId | None = None
    targeting: Annotated[
        str | None, Field(min_length=1, max_length=4096), Fix('a folder, e.g. targeting = "models/targeting"')
    ] = None


@dataclass(frozen=True)
class CampaignConfig:
    """The settings, the cost of one contact per action text and the texts of the actions that are no
    contact (from the playbook)."""

    settings: CampaignSettings
    costs: dict[str, float]
    no_contact: frozenset[str] = frozenset()


def parse_campaigns(raw: Any) -> CampaignSettings:
    """The ``[campaigns]`` section (``{}``: the defaults); a bad key or value is a
    :class:`~churnclv.config.ConfigError` naming the key, the rule and the fix."""
    return CampaignSettings(**check_table(raw, section("campaigns")))


def load_campaign_config(path: Path | str | None) -> CampaignConfig:
    """``[campaigns]`` and the playbook's action costs of a run configuration (None: the defaults)."""
    raw = read_run_config(path)
    settings_ = parse_campaigns(raw.get("campaigns", {}))
    playbook = load_tier_config(raw.get("tiers")).playbook
    return CampaignConfig(settings_, playbook.costs, playbook.no_contact)
