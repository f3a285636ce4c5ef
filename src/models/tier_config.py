"""The tier policy's configuration: its keys, defaults and validation.

The config is TOML; the defaults ship as ``churnclv/defaults/tiers.toml`` (read it for every key).
:func:`parse_tier_config` merges a user config over them and validates it into a
:class:`TierConfig`; every error names the key, the rule it breaks and the fix.
"""

from __future__ import annotations

import copy
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from churnclv.config import ConfigError
from churnclv.models.playbook import Playbook, parse_playbook
from churnclv.models.reasons import ReasonsConfig, parse_reasons
from churnclv.models.stages import STAGES, StageRules
from churnclv.models.tier_config_errors import config_error

__all__ = [
    "COLUMN_ROLES",
    "COMPONENTS",
    "TierConfig",
    "TierSpec",
    "default_tier_config",
    "load_tier_config",
    "parse_tier_config",
]

#: Score components, in the order of the weights.
COMPONENTS: tuple[str, ...] = ("clv", "retention", "growth")

#: Column roles the policy reads (config ``[columns]`` maps each to a column name) and whether
#: each is required for the score, required for the stages, or optional.
COLUMN_ROLES: dict[str, str] = {
    "customer_id": "required with prev (hysteresis)",
    "p_churn": "required",
    "expected_spend": "required",
    "clv": "required",
    "past_spend": "required (null counts as 0)",
    "tenure": "required for stages; optional for the score",
    "days_since_last_purchase": "required for stages (null: no purchase yet)",
    "usual_gap": "optional",
    "frequency": "optional",
    "purchase_trend": "optional",
    "p_churn_prev": "optional",
}

_SECTIONS: dict[str, tuple[str, ...]] = {
    "": ("columns", "score", "tiers", "stability", "stages", "reasons", "playbook"),
    "columns": tuple(COLUMN_ROLES),
    "score": (
        "horizon_days",
        "past_spend_days",
        "min_rate_days",
        "growth_k",
        "grid_size",
        "weights",
        "no_purchase_max_tier",
    ),
    "score.weights": COMPONENTS,
    "stability": ("margin", "unit"),
}


@dataclass(frozen=True)
class TierSpec:
    """One tier: its name and either a target share or an absolute minimum growth score."""

    name: str
    share: float | None = None
    min_score: float | None = None


@dataclass(frozen=True, repr=False)
class TierConfig:
    """A validated tier policy config. Build it with :func:`load_tier_config`.

    ``raw`` is the complete config as plain data (defaults merged in); it is what
    :meth:`TierPolicy.to_dict` stores.
    """

    columns: dict[str, str]
    horizon_days: float
    past_spend_days: float
    min_rate_days: float
    growth_k: float | None  # None: fitted ("auto")
    grid_size: int
    weights: dict[str, float]
    tiers: tuple[TierSpec, ...]
    no_purchase_max_tier: str  # the highest tier of a customer with no purchase yet
    margin: float
    margin_unit: str
    stages: StageRules
    reasons: ReasonsConfig
    playbook: Playbook
    raw: dict[str, Any] = field(compare=False)

    @property
    def tier_names(self) -> tuple[str, ...]:
        """Tier names, top first."""
        return tuple(t.name for t in self.tiers)

    @property
    def by_share(self) -> bool:
        return self.tiers[0].share is not None

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


def _number(
    raw: Mapping[str, Any],
    section: str,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    fix: str = "",
) -> float:
    key = f"{section}.{name}"
    if name not in raw:
        raise config_error(key, "is required", f"add {name} = <number> under [{section}]")
    value = raw[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise config_error(key, "must be a finite number", fix or "write a number", value)
    if low is not None and (value <= low if low_open else value < low):
        raise config_error(key, f"must be {'>' if low_open else '>='} {low}", fix or "raise the value", value)
    if high is not None and value > high:
        raise config_error(key, f"must be <= {high}", fix or "lower the value", value)
    return float(value)


def _table(raw: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    parent, _, name = key.rpartition(".")
    value = raw.get(name, {})
    if not isinstance(value, Mapping):
        raise config_error(key, "must be a table", f"write [{key}]", value)
    allowed = _SECTIONS.get(key)
    if allowed is not None:
        unknown = sorted(set(value) - set(allowed))
        if unknown:
            raise config_error(
                f"{key}.{unknown[0]}",
                "is not a known key",
                f"check the spelling; known keys under [{key}] are {list(allowed)}",
            )
    return value


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
            names = {t.get("name") for t in user_tiers if isinstance(t, Mapping)} | {"*"}
            defaults["playbook"] = {k: v for k, v in defaults["playbook"].items() if k in names}
        raw = _merge(defaults, raw)
    raw = copy.deepcopy(dict(raw))
    unknown = sorted(set(raw) - set(_SECTIONS[""]))
    if unknown:
        raise config_error(
            unknown[0],
            "is not a known section",
            f"check the spelling; the sections are {list(_SECTIONS[''])}",
        )

    # [columns]
    columns_raw = _table(raw, "columns")
    columns: dict[str, str] = {}
    for role in COLUMN_ROLES:
        name = columns_raw.get(role, role)
        if not isinstance(name, str) or not name:
            raise config_error(
                f"columns.{role}",
                "must be a column name (a non-empty string)",
                "write the name of your column",
                name,
            )
        columns[role] = name

    # [score]
    score = _table(raw, "score")
    horizon = _number(
        score,
        "score",
        "horizon_days",
        low=0,
        low_open=True,
        fix="set the scorer's horizon in days, e.g. 90",
    )
    past_days = _number(
        score,
        "score",
        "past_spend_days",
        low=0,
        low_open=True,
        fix="set the window of the past_spend column in days, e.g. 365",
    )
    min_rate_days = _number(
        score,
        "score",
        "min_rate_days",
        low=0,
        low_open=True,
        high=past_days,
        fix="a number of days between 1 and past_spend_days, e.g. 30",
    )
    k_raw = score.get("growth_k", "auto")
    if k_raw == "auto":
        growth_k = None
    else:
        growth_k = _number(
            score, "score", "growth_k", low=0, low_open=True, fix='a positive amount of money, or "auto"'
        )
    grid = score.get("grid_size", 1001)
    if isinstance(grid, bool) or not isinstance(grid, int) or grid < 11:
        raise config_error("score.grid_size", "must be a whole number of at least 11", "e.g. grid_size = 1001", grid)
    weights_raw = _table(score, "score.weights")
    weights: dict[str, float] = {}
    for comp in COMPONENTS:
        weights[comp] = _number(
            weights_raw,
            "score.weights",
            comp,
            low=0,
            fix=f"give {comp} a weight of 0 or more (0 leaves it out)",
        )
    if sum(weights.values()) <= 0:
        raise config_error(
            "score.weights", "must not all be 0", "give at least one component a positive weight", weights
        )

    # [[tiers]]
    tiers_raw = raw.get("tiers")
    if not isinstance(tiers_raw, list) or len(tiers_raw) < 2:
        raise config_error(
            "tiers",
            "must list at least 2 tiers, top first",
            "write [[tiers]] entries with name and share",
            tiers_raw,
        )
    tiers: list[TierSpec] = []
    for i, t in enumerate(tiers_raw):
        key = f"tiers[{i}]"
        if not isinstance(t, Mapping):
            raise config_error(key, "must be a table", "write [[tiers]] with name and share")
        bad = sorted(set(t) - {"name", "share", "min_score"})
        if bad:
            raise config_error(f"{key}.{bad[0]}", "is not a known key", "use name, share or min_score")
        name = t.get("name")
        if not isinstance(name, str) or not name.strip() or name == "*":
            raise config_error(
                f"{key}.name",
                'must be a non-empty tier name other than "*"',
                'name the tier, e.g. "Gold"',
                name,
            )
        if name in {x.name for x in tiers}:
            raise config_error(f"{key}.name", "must be unique", "give every tier its own name", name)
        share = (
            _number(t, key, "share", low=0, low_open=True, high=1, fix="a fraction in (0, 1]") if "share" in t else None
        )
        min_score = (
            _number(t, key, "min_score", low=0, high=1, fix="a growth score in [0, 1]") if "min_score" in t else None
        )
        tiers.append(TierSpec(name, share, min_score))
    with_share = [t.share is not None for t in tiers]
    with_min = [t.min_score is not None for t in tiers]
    if all(with_share):
        if any(with_min):
            raise config_error(
                "tiers.min_score",
                "cannot be combined with shares",
                "give every tier a share, or every tier but the last a min_score",
            )
        total = sum(t.share for t in tiers)  # type: ignore[misc]
        if abs(total - 1.0) > 1e-6:
            raise config_error(
                "tiers.share",
                "must sum to 1 over all tiers",
                "adjust the shares so they add up to 1"
                + (
                    f" (e.g. the last tier takes {rest:.4g})" if 0 < (rest := 1.0 - total + tiers[-1].share) < 1 else ""
                ),  # type: ignore[operator]
                round(total, 6),
            )
    elif any(with_share):
        missing = next(t.name for t in tiers if t.share is None)
        raise config_error(
            "tiers.share",
            f"is given for some tiers but not for {missing!r}",
            "give every tier a share (they must sum to 1)",
        )
    else:
        if with_min[-1]:
            raise config_error(
                f"tiers[{len(tiers) - 1}].min_score",
                "must be absent on the last (bottom) tier",
                "remove it: the bottom tier takes every score below the tier above",
            )
        if not all(with_min[:-1]):
            missing = next(t.name for t in tiers[:-1] if t.min_score is None)
            raise config_error(
                "tiers",
                f"needs a share on every tier or a min_score on every tier but the last; {missing!r} has neither",
                "add share (or min_score) to every tier",
            )
        mins = [t.min_score for t in tiers[:-1]]
        for i in range(1, len(mins)):
            if not mins[i] < mins[i - 1]:  # type: ignore[operator]
                raise config_error(
                    f"tiers[{i}].min_score",
                    "must be strictly below the min_score of the tier above (thresholds fall from the top tier down)",
                    "order the tiers top first with falling thresholds",
                    mins,
                )

    # [stability]
    stab = _table(raw, "stability")
    unit = stab.get("unit", "quantile")
    if unit not in ("quantile", "score"):
        raise config_error(
            "stability.unit",
            'must be "quantile" or "score"',
            'use "quantile" (percentile points) or "score" (growth-score units)',
            unit,
        )
    margin = _number(
        stab,
        "stability",
        "margin",
        low=0,
        high=0.5,
        fix="a margin between 0 (no hysteresis) and 0.5, e.g. 0.02",
    )

    # [stages]
    st_raw = raw.get("stages", {})
    if not isinstance(st_raw, Mapping):
        raise config_error("stages", "must be a table", "write [stages]")
    known = StageRules.__dataclass_fields__
    bad = sorted(set(st_raw) - set(known))
    if bad:
        raise config_error(f"stages.{bad[0]}", "is not a known key", f"known keys are {list(known)}")
    nps = st_raw.get("no_purchase_stage", "new")
    if nps not in STAGES:
        raise config_error("stages.no_purchase_stage", f"must be a stage {list(STAGES)}", 'e.g. "new"', nps)
    values: dict[str, Any] = {"no_purchase_stage": nps}
    probs = (
        "lost_min_p_churn",
        "at_risk_min_value_quantile",
        "at_risk_min_p_churn",
        "at_risk_min_p_churn_rise",
    )
    for name in known:
        if name == "no_purchase_stage":
            continue
        default = getattr(StageRules, name)
        src = {name: st_raw.get(name, default)}
        if name in probs:
            values[name] = _number(src, "stages", name, low=0, high=1, fix="a probability in [0, 1]")
        elif name == "dormant_gap_multiple":
            values[name] = _number(src, "stages", name, low=1, fix="a multiple of at least 1, e.g. 2")
        else:
            values[name] = _number(src, "stages", name, low=0, fix="a number of days (or a ratio) >= 0")
    if values["lost_days"] < values["dormant_days"]:
        raise config_error(
            "stages.lost_days",
            "must be at least stages.dormant_days (lost customers have been silent longer than dormant ones)",
            "raise lost_days or lower dormant_days",
            (values["lost_days"], values["dormant_days"]),
        )
    stages = StageRules(**values)

    names = [t.name for t in tiers]
    # a complete config saved before the cap existed has no key: no cap, so its tiers do not move
    cap = score.get("no_purchase_max_tier", "middle" if merge_defaults else names[0])
    if cap == "middle" and cap not in names:
        cap = names[len(names) // 2]  # Gold of five tiers; the middle one of any other ladder
    if cap not in names:
        raise config_error(
            "score.no_purchase_max_tier",
            f'must name one of the tiers {names} or be "middle"',
            f'e.g. no_purchase_max_tier = "{names[len(names) // 2]}" (the top tier: no cap)',
            cap,
        )

    reasons = parse_reasons(raw.get("reasons", {}))
    playbook = parse_playbook(raw.get("playbook", {}), tiers=[t.name for t in tiers])
    return TierConfig(
        columns=columns,
        horizon_days=horizon,
        past_spend_days=past_days,
        min_rate_days=min_rate_days,
        growth_k=growth_k,
        grid_size=int(grid),
        weights=weights,
        tiers=tuple(tiers),
        no_purchase_max_tier=cap,
        margin=margin,
        margin_unit=unit,
        stages=stages,
        reasons=reasons,
        playbook=playbook,
        raw=raw,
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
