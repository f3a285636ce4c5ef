"""The tier policy's configuration: its keys, defaults and validation.

The config is TOML; the defaults ship as ``churnclv/defaults/tiers.toml`` (read it for every key).
:func:`parse_tier_config` merges a user config over them and validates it into a
:class:`TierConfig`: each table is a pydantic model whose fields carry their ranges, with
validators for the rules across keys; every error names the key, the rule it breaks and the fix.
"""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Mapping
from dataclasses import field
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, ValidationError, model_validator

from churnclv.config import ConfigError
from churnclv.config_schema import Array, Fix, Section, format_errors, one_of, rule_error, settings
from churnclv.models.marketing_config import AcquisitionCost, RiskBands
from churnclv.models.playbook import SETTINGS as PLAYBOOK_SETTINGS
from churnclv.models.playbook import Playbook, parse_playbook
from churnclv.models.reasons import ReasonsConfig, parse_reasons
from churnclv.models.stages import STAGES, StageRules
from churnclv.models.tier_config_errors import TIER_CONFIG, config_error

__all__ = [
    "COLUMN_ROLES",
    "COMPONENTS",
    "Columns",
    "Score",
    "Stability",
    "Stages",
    "TierConfig",
    "TierSpec",
    "Weights",
    "default_tier_config",
    "load_tier_config",
    "parse_tier_config",
]

Number = Annotated[float, Field(allow_inf_nan=False)]


def _column_name(name: str) -> str:
    if not name:
        raise rule_error("must be a column name (a non-empty string)", "write the name of your column", got=name)
    return name


ColumnName = Annotated[str, AfterValidator(_column_name), Fix("write the name of your column")]


class Columns(Section):
    """``[columns]``: the column the policy reads for each role (the role's name by default); each
    field's description says whether the score or the stages need it."""

    customer_id: ColumnName = Field(default="customer_id", description="required with prev (hysteresis)")
    p_churn: ColumnName = Field(default="p_churn", description="required")
    expected_spend: ColumnName = Field(default="expected_spend", description="required")
    clv: ColumnName = Field(default="clv", description="required")
    past_spend: ColumnName = Field(default="past_spend", description="required (null counts as 0)")
    tenure: ColumnName = Field(default="tenure", description="required for stages; optional for the score")
    days_since_last_purchase: ColumnName = Field(
        default="days_since_last_purchase", description="required for stages (null: no purchase yet)"
    )
    usual_gap: ColumnName = Field(default="usual_gap", description="optional")
    frequency: ColumnName = Field(default="frequency", description="optional")
    purchase_trend: ColumnName = Field(default="purchase_trend", description="optional")
    p_churn_prev: ColumnName = Field(default="p_churn_prev", description="optional")


#: Column roles the policy reads (config ``[columns]`` maps each to a column name) and whether
#: each is required for the score, required for the stages, or optional.
COLUMN_ROLES: dict[str, str] = {role: f.description or "" for role, f in Columns.model_fields.items()}

Weight = Annotated[Number, Field(ge=0), Fix("a weight of 0 or more (0 leaves the component out)")]


class Weights(Section):
    """``[score.weights]``: the weight of each component's percentile in the growth score."""

    clv: Weight
    retention: Weight
    growth: Weight

    @model_validator(mode="after")
    def _one_counts(self) -> Weights:
        if sum(self.model_dump().values()) <= 0:
            raise rule_error(
                "must not all be 0", "give at least one component a positive weight", got=self.model_dump()
            )
        return self


#: Score components, in the order of the weights.
COMPONENTS: tuple[str, ...] = tuple(Weights.model_fields)


def _auto(value: Any) -> Any:
    return None if value == "auto" else value


class Score(Section):
    """``[score]``: the growth ratio, the percentile grids, the weights and the no-purchase cap."""

    horizon_days: Annotated[Number, Field(gt=0), Fix("set the scorer's horizon in days, e.g. 90")]
    past_spend_days: Annotated[Number, Field(gt=0), Fix("set the window of the past_spend column in days, e.g. 365")]
    min_rate_days: Annotated[Number, Field(gt=0), Fix("a number of days between 1 and past_spend_days, e.g. 30")]
    # None: fitted ("auto")
    growth_k: Annotated[float | None, BeforeValidator(_auto), Fix('a positive amount of money, or "auto"')] = Field(
        default=None, gt=0, allow_inf_nan=False
    )
    grid_size: Annotated[int, Field(ge=11), Fix("e.g. grid_size = 1001")] = 1001
    weights: Weights
    # a tier name or "middle"; None (a config saved before the cap existed): no cap
    no_purchase_max_tier: str | None = None
    # the same cap for buyers with no net spend in the past_spend window (every purchase returned,
    # or none within it); False (a config saved before this existed): only sign-ups are capped
    no_spend_capped: bool = False

    @model_validator(mode="after")
    def _floor_within_window(self) -> Score:
        if self.min_rate_days > self.past_spend_days:
            raise rule_error(
                f"must be <= past_spend_days ({self.past_spend_days:g})",
                "a number of days between 1 and past_spend_days, e.g. 30",
                key=("min_rate_days",),
                got=self.min_rate_days,
            )
        return self


def _tier_name(name: str) -> str:
    if not name.strip() or name == "*":
        raise rule_error('must be a non-empty tier name other than "*"', 'name the tier, e.g. "Gold"', got=name)
    return name


class TierSpec(Section):
    """One tier: its name and either a target share or an absolute minimum growth score."""

    name: Annotated[str, AfterValidator(_tier_name), Fix('name the tier, e.g. "Gold"')]
    share: Annotated[float | None, Fix("a fraction in (0, 1]")] = Field(default=None, gt=0, le=1, allow_inf_nan=False)
    min_score: Annotated[float | None, Fix("a growth score in [0, 1]")] = Field(
        default=None, ge=0, le=1, allow_inf_nan=False
    )


def _ladder(tiers: tuple[TierSpec, ...]) -> tuple[TierSpec, ...]:
    """The rules across ``[[tiers]]``: at least two, unique names, and shares summing to 1 on every
    tier or thresholds falling from the top on every tier but the last."""
    names = [t.name for t in tiers]
    if len(tiers) < 2:
        raise rule_error("must list at least 2 tiers, top first", "write [[tiers]] with name and share", got=names)
    for i, name in enumerate(names):
        if name in names[:i]:
            raise rule_error("must be unique", "give every tier its own name", key=(i, "name"), got=name)
    shares = [t.share for t in tiers if t.share is not None]
    mins = [t.min_score for t in tiers if t.min_score is not None]
    if len(shares) == len(tiers):
        if mins:
            raise rule_error(
                "cannot be combined with shares",
                "give every tier a share, or every tier but the last a min_score",
                key=("min_score",),
            )
        total = sum(shares)
        if abs(total - 1.0) > 1e-6:
            rest = 1.0 - total + shares[-1]
            raise rule_error(
                "must sum to 1 over all tiers",
                "adjust the shares so they add up to 1"
                + (f" (e.g. the last tier takes {rest:.4g})" if 0 < rest < 1 else ""),
                key=("share",),
                got=round(total, 6),
            )
    elif shares:
        missing = next(t.name for t in tiers if t.share is None)
        raise rule_error(
            f"is given for some tiers but not for {missing!r}",
            "give every tier a share (they must sum to 1)",
            key=("share",),
        )
    else:
        if tiers[-1].min_score is not None:
            raise rule_error(
                "must be absent on the last (bottom) tier",
                "remove it: the bottom tier takes every score below the tier above",
                key=(len(tiers) - 1, "min_score"),
            )
        if len(mins) < len(tiers) - 1:
            missing = next(t.name for t in tiers[:-1] if t.min_score is None)
            raise rule_error(
                f"needs a share on every tier or a min_score on every tier but the last; {missing!r} has neither",
                "add share (or min_score) to every tier",
            )
        for i in range(1, len(mins)):
            if not mins[i] < mins[i - 1]:
                raise rule_error(
                    "must be strictly below the min_score of the tier above (thresholds fall from the top tier down)",
                    "order the tiers top first with falling thresholds",
                    key=(i, "min_score"),
                    got=mins,
                )
    return tiers


class Stability(Section):
    """``[stability]``: the hysteresis margin and its unit."""

    margin: Annotated[Number, Field(ge=0, le=0.5), Fix("a margin between 0 (no hysteresis) and 0.5, e.g. 0.02")]
    unit: Annotated[
        str,
        one_of(("quantile", "score")),
        Fix('use "quantile" (percentile points) or "score" (growth-score units)'),
    ] = "quantile"


Probability = Annotated[Number, Field(ge=0, le=1), Fix("a probability in [0, 1]")]
Days = Annotated[Number, Field(ge=0), Fix("a number of days (or a ratio) >= 0")]


class Stages(Section):
    """``[stages]``: the thresholds of :class:`~churnclv.models.stages.StageRules`, with their ranges."""

    no_purchase_stage: Annotated[str, one_of(STAGES), Fix('e.g. "new"')] = StageRules.no_purchase_stage
    new_tenure_days: Days = StageRules.new_tenure_days
    new_no_repeat_days: Days = StageRules.new_no_repeat_days
    lost_min_p_churn: Probability = StageRules.lost_min_p_churn
    lost_days: Days = StageRules.lost_days
    dormant_days: Days = StageRules.dormant_days
    dormant_gap_multiple: Annotated[Number, Field(ge=1), Fix("a multiple of at least 1, e.g. 2")] = (
        StageRules.dormant_gap_multiple
    )
    dormant_min_days: Days = StageRules.dormant_min_days
    at_risk_min_value_quantile: Probability = StageRules.at_risk_min_value_quantile
    at_risk_min_p_churn: Probability = StageRules.at_risk_min_p_churn
    at_risk_min_p_churn_rise: Probability = StageRules.at_risk_min_p_churn_rise
    at_risk_max_purchase_trend: Days = StageRules.at_risk_max_purchase_trend

    @model_validator(mode="after")
    def _lost_after_dormant(self) -> Stages:
        if self.lost_days < self.dormant_days:
            raise rule_error(
                "must be at least stages.dormant_days (lost customers have been silent longer than dormant ones)",
                "raise lost_days or lower dormant_days",
                key=("lost_days",),
                got=(self.lost_days, self.dormant_days),
            )
        return self

    def rules(self) -> StageRules:
        """The thresholds, as the stage rules read them."""
        return StageRules(**self.model_dump())


class _TierFile(Section):
    """A whole tier config, as written (the reasons and the playbook are checked by their parsers)."""

    columns: Columns = Columns()
    score: Score
    tiers: Annotated[Array[TierSpec], AfterValidator(_ladder)]
    stability: Stability
    stages: Stages = Stages()
    reasons: dict[str, Any] = Field(default_factory=dict)
    playbook: dict[str, Any] = Field(default_factory=dict)
    risk_bands: RiskBands = RiskBands()
    acquisition_cost: AcquisitionCost = AcquisitionCost()

    def no_purchase_cap(self) -> str:
        """The highest tier of a customer with no purchase yet."""
        names = [t.name for t in self.tiers]
        cap = self.score.no_purchase_max_tier
        if cap is None:  # saved before the cap existed: no cap, so its tiers do not move
            return names[0]
        if cap == "middle" and cap not in names:
            return names[len(names) // 2]  # Gold of five tiers; the middle one of any other ladder
        return cap

    @model_validator(mode="after")
    def _cap_is_a_tier(self) -> _TierFile:
        names = [t.name for t in self.tiers]
        if self.no_purchase_cap() not in names:
            raise rule_error(
                f'must name one of the tiers {names} or be "middle"',
                f'e.g. no_purchase_max_tier = "{names[len(names) // 2]}" (the top tier: no cap)',
                key=("score", "no_purchase_max_tier"),
                got=self.score.no_purchase_max_tier,
            )
        return self


@settings(TIER_CONFIG)
class TierConfig:
    """A validated tier policy config. Build it with :func:`load_tier_config`.

    ``no_purchase_max_tier`` is the highest tier of a customer with no purchase yet, resolved
    (``score.no_purchase_max_tier`` may say "middle"). ``raw`` is the complete config as plain data
    (defaults merged in); it is what :meth:`TierPolicy.to_dict` stores. ``risk_bands`` and
    ``acquisition_cost`` feed the marketing fields (:mod:`churnclv.models.marketing`).
    """

    columns: dict[str, str]
    score: Score
    tiers: tuple[TierSpec, ...]
    no_purchase_max_tier: str
    stability: Stability
    stages: StageRules
    reasons: ReasonsConfig
    playbook: Playbook
    risk_bands: RiskBands
    acquisition_cost: AcquisitionCost
    raw: dict[str, Any] = field(compare=False)

    @property
    def tier_names(self) -> tuple[str, ...]:
        """Tier names, top first."""
        return tuple(t.name for t in self.tiers)

    @property
    def by_share(self) -> bool:
        """Whether the tiers have target shares (else ``min_score`` thresholds)."""
        return self.tiers[0].share is not None

    @property
    def weights(self) -> dict[str, float]:
        """The weight of each component (``[score.weights]``)."""
        return self.score.weights.model_dump()

    @property
    def margin(self) -> float:
        """The hysteresis margin (``[stability] margin``)."""
        return self.stability.margin

    @property
    def margin_unit(self) -> str:
        """The margin's unit, ``quantile`` or ``score`` (``[stability] unit``)."""
        return self.stability.unit

    def __repr__(self) -> str:
        tiers = ", ".join(
            f"{t.name}={t.share:g}"
            if t.share is not None
            else f"{t.name}>={t.min_score}"
            if t.min_score is not None
            else t.name
            for t in self.tiers
        )
        return f"TierConfig(tiers=[{tiers}], weights={self.weights}, margin={self.margin:g} {self.margin_unit})"


def _read_defaults() -> dict[str, Any]:
    text = resources.files("churnclv").joinpath("defaults/tiers.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def _merge(defaults: dict[str, Any], user: Mapping[str, Any], key: str = "") -> dict[str, Any]:
    out = copy.deepcopy(defaults)
    for k, v in user.items():
        path = f"{key}.{k}" if key else str(k)
        if path == "reasons.phrases" and isinstance(v, list):
            # user phrases first (they win), then the defaults for other features
            mine = {p.get("feature") for p in v if isinstance(p, Mapping)}
            out[k] = copy.deepcopy(v) + [p for p in out.get(k, []) if p.get("feature") not in mine]
        elif isinstance(out.get(k), dict):
            if not isinstance(v, Mapping):
                raise config_error(path, "must be a table", f"write [{path}] with its keys", v)
            out[k] = _merge(out[k], v, path)
        else:
            out[k] = copy.deepcopy(v)
    return out


def parse_tier_config(raw: Mapping[str, Any], *, merge_defaults: bool = True) -> TierConfig:
    """Validate a config given as plain data (a parsed TOML document) into a :class:`TierConfig`.

    Parameters
    ----------
    raw
        The config; with ``merge_defaults`` it is merged over the shipped defaults first (tables
        key by key; arrays replace, except ``reasons.phrases``; own ``[[tiers]]`` drop the
        default playbook sections of tiers they no longer name).
    merge_defaults
        Merge over the defaults (True) or take ``raw`` as complete (False, e.g. from ``to_dict``).

    Raises
    ------
    churnclv.config.ConfigError
        Naming the key, the rule it breaks and the fix.
    """
    if not isinstance(raw, Mapping):
        raise ConfigError(f"tier config must be a table (a dict), got {type(raw).__name__}")
    if merge_defaults:
        defaults = _read_defaults()
        user_tiers = raw.get("tiers")
        if isinstance(user_tiers, list):
            # default sections for tiers the user no longer has would fail validation
            names = {t.get("name") for t in user_tiers if isinstance(t, Mapping)} | {"*", *PLAYBOOK_SETTINGS}
            defaults["playbook"] = {k: v for k, v in defaults["playbook"].items() if k in names}
        raw = _merge(defaults, raw)
    complete = copy.deepcopy(dict(raw))
    try:
        doc = _TierFile.model_validate(complete)
    except ValidationError as exc:
        raise ConfigError(format_errors(exc, _TierFile, TIER_CONFIG)) from None
    return TierConfig(
        columns=doc.columns.model_dump(),
        score=doc.score,
        tiers=doc.tiers,
        no_purchase_max_tier=doc.no_purchase_cap(),
        stability=doc.stability,
        stages=doc.stages.rules(),
        reasons=parse_reasons(doc.reasons),
        playbook=parse_playbook(doc.playbook, tiers=[t.name for t in doc.tiers]),
        risk_bands=doc.risk_bands,
        acquisition_cost=doc.acquisition_cost,
        raw=complete,
    )


def load_tier_config(source: TierConfig | Mapping[str, Any] | str | Path | None = None) -> TierConfig:
    """The tier config from the defaults, a TOML file, or a dict, validated.

    Parameters
    ----------
    source
        ``None``: the shipped defaults. A path: a TOML file merged over the defaults. A mapping:
        parsed TOML, merged over the defaults. A :class:`TierConfig`: returned as is.
    """
    if isinstance(source, TierConfig):
        return source
    if source is None:
        return parse_tier_config({})
    if isinstance(source, Mapping):
        return parse_tier_config(source)
    path = Path(source)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"tier config file {path} does not exist: pass an existing TOML file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"tier config file {path} is not valid TOML ({exc}): fix the syntax") from None
    return parse_tier_config(raw)


def default_tier_config() -> TierConfig:
    """The shipped default config (``churnclv/defaults/tiers.toml``)."""
    return parse_tier_config({})
