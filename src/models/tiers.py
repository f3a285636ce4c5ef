"""Growth-potential tiers, lifecycle stages, reasons and actions, fixed at training time.

The tier looks forward: it ranks customers by predicted value, retention and growth, not by past
spend alone. The policy reads the scorer's frame (one row per customer: the scores joined to a few
feature columns, see :data:`COLUMN_ROLES`) and gives each customer

- a **growth score** in [0, 1]: the weighted mean of three percentiles on the training population,

  - ``clv``: the discounted 12-month CLV;
  - ``retention``: ``1 - p_churn``;
  - ``growth``: predicted spend over the horizon against the customer's own past spend rate,
    ``g = log((max(expected_spend, 0) + k) / (past_rate * H + k))`` with
    ``past_rate = max(past_spend, 0) / clip(tenure, min_rate_days, past_spend_days)`` per day.
    ``g > 0``: the model expects the customer to outgrow their past. ``k`` (currency) keeps small
    spenders from dominating; ``"auto"`` fits it as the median positive past spend over ``H``. Young
    customers' past spend is spread over their tenure (floored at ``min_rate_days``), not over a
    full year, so they do not look like growth stars just for being young.

  Each percentile comes from a quantile grid fitted on the training population and stored
  (mid-ranks for ties, linear interpolation between grid points), so the score of one customer
  alone is the score they get in a batch.
- a **tier** (default Diamond 5%, Platinum 10%, Gold 20%, Silver 30%, Bronze 35%): cut points are
  the training population's score quantiles at the target shares (or absolute ``min_score``
  thresholds) and are stored. A higher score never gives a lower tier.
- **hysteresis** against last scoring's tiers: a customer leaves their tier only when the score
  passes its boundary by a margin (in score units or in training-percentile points); a move of two
  tiers or more is never held back.
- a **lifecycle stage**, by rules checked in this order (all thresholds configurable):

  1. no purchase yet and tenure below ``stages.new_no_repeat_days``: ``stages.no_purchase_stage``
     (default ``new``); older sign-ups who never bought count their silence from the signup, so
     the lost and dormant rules below apply to them;
  2. ``new``: tenure below ``new_tenure_days``, or no repeat purchase yet (``frequency == 0``) and
     tenure below ``new_no_repeat_days``;
  3. ``lost``: ``p_churn > lost_min_p_churn`` and no purchase for more than ``lost_days``;
  4. ``dormant``: no purchase for more than ``dormant_days``, or for more than
     ``dormant_gap_multiple`` times the usual gap and more than ``dormant_min_days``;
  5. ``at_risk``: high value (CLV or past-spend percentile at least
     ``at_risk_min_value_quantile``) and high or rising churn risk (``p_churn`` at least
     ``at_risk_min_p_churn``, or up by ``at_risk_min_p_churn_rise`` on the previous scoring, or the
     purchase trend at most ``at_risk_max_purchase_trend``);
  6. ``active`` otherwise.
- the top **reasons** in plain words and the recommended **action** (see
  :mod:`churnclv.models.playbook`).

The policy's config is TOML; the defaults ship as ``churnclv/defaults/tiers.toml`` (read it for
every key). The fitted policy is a JSON-serializable dict (:meth:`TierPolicy.to_dict`).

References
----------
Koch, R. (1998). The 80/20 Principle. (The small top tier carrying a large share of value.)
Fader, P. S., Hardie, B. G. S. and Lee, K. L. (2005). RFM and CLV: using iso-value curves for
customer base analysis. Journal of Marketing Research 42(4), 415-430.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from churnclv.config import ConfigError
from churnclv.models.playbook import (
    STAGES,
    Playbook,
    ReasonsConfig,
    parse_playbook,
    parse_reasons,
    write_reasons,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = [
    "COLUMN_ROLES",
    "COMPONENTS",
    "Migration",
    "STAGES",
    "StageRules",
    "TierConfig",
    "TierPolicy",
    "TierReport",
    "TierSpec",
    "default_tier_config",
    "hysteresis_effect",
    "load_tier_config",
    "migration_matrix",
    "parse_tier_config",
    "plot_migration",
    "plot_tier_mix",
    "tier_churn_rate",
    "tier_report",
    "tier_summary",
    "write_report",
]

logger = logging.getLogger(__name__)

_FORMAT = "churnclv.models.tiers"
_FORMAT_VERSION = 1

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
    "score": ("horizon_days", "past_spend_days", "min_rate_days", "growth_k", "grid_size", "weights",
              "no_purchase_max_tier"),
    "score.weights": COMPONENTS,
    "stability": ("margin", "unit"),
}


def _err(key: str, rule: str, fix: str, got: Any = None) -> ConfigError:
    got_text = "" if got is None else f" (got {got!r})"
    return ConfigError(f"tier config key {key!r}: {rule}{got_text}; fix: {fix}")


# --------------------------------------------------------------------------------------------------
# configuration


@dataclass(frozen=True)
class TierSpec:
    """One tier: its name and either a target share or an absolute minimum growth score."""

    name: str
    share: float | None = None
    min_score: float | None = None


@dataclass(frozen=True)
class StageRules:
    """Thresholds of the lifecycle-stage rules (see the module docstring for their order)."""

    no_purchase_stage: str = "new"
    new_tenure_days: float = 90
    new_no_repeat_days: float = 180
    lost_min_p_churn: float = 0.95
    lost_days: float = 365
    dormant_days: float = 180
    dormant_gap_multiple: float = 2.0
    dormant_min_days: float = 60
    at_risk_min_value_quantile: float = 0.70
    at_risk_min_p_churn: float = 0.50
    at_risk_min_p_churn_rise: float = 0.15
    at_risk_max_purchase_trend: float = 0.50


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
                raise _err(path, "must be a table", f"write [{path}] with its keys", v)
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
        raise _err(key, "is required", f"add {name} = <number> under [{section}]")
    value = raw[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _err(key, "must be a finite number", fix or "write a number", value)
    if low is not None and (value <= low if low_open else value < low):
        raise _err(key, f"must be {'>' if low_open else '>='} {low}", fix or "raise the value", value)
    if high is not None and value > high:
        raise _err(key, f"must be <= {high}", fix or "lower the value", value)
    return float(value)


def _table(raw: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    parent, _, name = key.rpartition(".")
    value = raw.get(name, {})
    if not isinstance(value, Mapping):
        raise _err(key, "must be a table", f"write [{key}]", value)
    allowed = _SECTIONS.get(key)
    if allowed is not None:
        unknown = sorted(set(value) - set(allowed))
        if unknown:
            raise _err(
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
        raise _err(
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
            raise _err(
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
        raise _err(
            "score.grid_size", "must be a whole number of at least 11", "e.g. grid_size = 1001", grid
        )
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
        raise _err(
            "score.weights", "must not all be 0", "give at least one component a positive weight", weights
        )

    # [[tiers]]
    tiers_raw = raw.get("tiers")
    if not isinstance(tiers_raw, list) or len(tiers_raw) < 2:
        raise _err(
            "tiers",
            "must list at least 2 tiers, top first",
            "write [[tiers]] entries with name and share",
            tiers_raw,
        )
    tiers: list[TierSpec] = []
    for i, t in enumerate(tiers_raw):
        key = f"tiers[{i}]"
        if not isinstance(t, Mapping):
            raise _err(key, "must be a table", "write [[tiers]] with name and share")
        bad = sorted(set(t) - {"name", "share", "min_score"})
        if bad:
            raise _err(f"{key}.{bad[0]}", "is not a known key", "use name, share or min_score")
        name = t.get("name")
        if not isinstance(name, str) or not name.strip() or name == "*":
            raise _err(
                f"{key}.name",
                "must be a non-empty tier name other than \"*\"",
                "name the tier, e.g. \"Gold\"",
                name,
            )
        if name in {x.name for x in tiers}:
            raise _err(f"{key}.name", "must be unique", "give every tier its own name", name)
        share = (
            _number(t, key, "share", low=0, low_open=True, high=1, fix="a fraction in (0, 1]")
            if "share" in t
            else None
        )
        min_score = (
            _number(t, key, "min_score", low=0, high=1, fix="a growth score in [0, 1]")
            if "min_score" in t
            else None
        )
        tiers.append(TierSpec(name, share, min_score))
    with_share = [t.share is not None for t in tiers]
    with_min = [t.min_score is not None for t in tiers]
    if all(with_share):
        if any(with_min):
            raise _err(
                "tiers.min_score",
                "cannot be combined with shares",
                "give every tier a share, or every tier but the last a min_score",
            )
        total = sum(t.share for t in tiers)  # type: ignore[misc]
        if abs(total - 1.0) > 1e-6:
            raise _err(
                "tiers.share",
                "must sum to 1 over all tiers",
                "adjust the shares so they add up to 1"
                + (
                    f" (e.g. the last tier takes {rest:.4g})"
                    if 0 < (rest := 1.0 - total + tiers[-1].share) < 1
                    else ""
                ),  # type: ignore[operator]
                round(total, 6),
            )
    elif any(with_share):
        missing = next(t.name for t in tiers if t.share is None)
        raise _err(
            "tiers.share",
            f"is given for some tiers but not for {missing!r}",
            "give every tier a share (they must sum to 1)",
        )
    else:
        if with_min[-1]:
            raise _err(
                f"tiers[{len(tiers) - 1}].min_score",
                "must be absent on the last (bottom) tier",
                "remove it: the bottom tier takes every score below the tier above",
            )
        if not all(with_min[:-1]):
            missing = next(t.name for t in tiers[:-1] if t.min_score is None)
            raise _err(
                "tiers",
                f"needs a share on every tier or a min_score on every tier but the "
                f"last; {missing!r} has neither",
                "add share (or min_score) to every tier",
            )
        mins = [t.min_score for t in tiers[:-1]]
        for i in range(1, len(mins)):
            if not mins[i] < mins[i - 1]:  # type: ignore[operator]
                raise _err(
                    f"tiers[{i}].min_score",
                    "must be strictly below the min_score of the tier "
                    "above (thresholds fall from the top tier down)",
                    "order the tiers top first with falling thresholds",
                    mins,
                )

    # [stability]
    stab = _table(raw, "stability")
    unit = stab.get("unit", "quantile")
    if unit not in ("quantile", "score"):
        raise _err(
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
        raise _err("stages", "must be a table", "write [stages]")
    known = StageRules.__dataclass_fields__
    bad = sorted(set(st_raw) - set(known))
    if bad:
        raise _err(f"stages.{bad[0]}", "is not a known key", f"known keys are {list(known)}")
    nps = st_raw.get("no_purchase_stage", "new")
    if nps not in STAGES:
        raise _err("stages.no_purchase_stage", f"must be a stage {list(STAGES)}", "e.g. \"new\"", nps)
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
        raise _err(
            "stages.lost_days",
            "must be at least stages.dormant_days (lost customers have been "
            "silent longer than dormant ones)",
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
        raise _err("score.no_purchase_max_tier", f'must name one of the tiers {names} or be "middle"',
                   f'e.g. no_purchase_max_tier = "{names[len(names) // 2]}" (the top tier: no cap)', cap)

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


# --------------------------------------------------------------------------------------------------
# percentile grids


def _fit_grid(x: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Quantile grid of ``x``: distinct values and their mid-rank cumulative probabilities."""
    x = np.sort(x[np.isfinite(x)])
    probs = np.linspace(0.0, 1.0, max(2, min(size, len(x))))
    q = np.quantile(x, probs)
    values, inverse = np.unique(q, return_inverse=True)
    # tied grid values (a mass point, e.g. CLV 0) get the mean of their probabilities: mid-ranks
    mid = np.bincount(inverse, weights=probs) / np.bincount(inverse)
    return values, mid


def _percentile(x: np.ndarray, grid: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    values, probs = grid
    return np.interp(x, values, probs)


def _inverse(p: np.ndarray | float, grid: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    values, probs = grid
    if len(values) == 1:
        return np.full(np.shape(p), values[0])
    return np.interp(p, probs, values)


# --------------------------------------------------------------------------------------------------
# the policy


def _numeric(frame: pd.DataFrame, column: str, role: str) -> np.ndarray:
    s = frame[column]
    if s.dtype.kind == "f":  # already float: skip to_numeric (~40 us a column on the one-row path)
        return s.to_numpy(dtype=np.float64)
    try:
        return pd.to_numeric(s).to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError):
        raise ValueError(
            f"column {column!r} ({role}) must be numeric, got dtype {frame[column].dtype}: "
            "pass numbers (the scorer's output or the feature job's column)"
        ) from None


class TierPolicy(BaseEstimator):
    """Growth-potential tiers, stages, reasons and actions, with cut points fitted and stored.

    Parameters
    ----------
    config : TierConfig, dict, path or None
        The policy config (see :func:`load_tier_config`); ``None`` uses the shipped defaults.

    Attributes
    ----------
    k_ : float
        Smoothing of the growth ratio (currency), fixed or fitted.
    grids_ : dict
        Per component (``clv``, ``retention``, ``growth``, ``past_spend``): the stored quantile
        grid ``(values, probabilities)`` of the training population.
    score_grid_ : tuple of numpy.ndarray
        Quantile grid of the training growth score (for margins in quantile units).
    cut_points_ : numpy.ndarray
        Ascending growth-score cut points; ``cut_points_[b]`` is the lowest score of level
        ``b + 1`` (level 0 is the bottom tier).
    upper_bounds_, lower_bounds_ : numpy.ndarray
        Per cut point, the score a customer must reach (or fall below) to cross it when they held
        the tier on the other side last time (hysteresis).
    train_shares_ : dict
        Realized share of each tier on the training population.
    n_train_ : int
        Customers in the training population.

    Examples
    --------
    >>> policy = TierPolicy().fit(train_scores)                      # doctest: +SKIP
    >>> out = policy.assign(scores, contributions=reasons, prev=last_week)  # doctest: +SKIP
    """

    def __init__(self, *, config: TierConfig | Mapping[str, Any] | str | Path | None = None) -> None:
        self.config = config

    # -- configuration -------------------------------------------------------------------------

    @property
    def tier_config(self) -> TierConfig:
        """The validated config (parsed from ``config`` on first use)."""
        cached = self.__dict__.get("_tier_config_cache")
        if cached is None or cached[0] is not self.config:
            cached = (self.config, load_tier_config(self.config))
            self.__dict__["_tier_config_cache"] = cached
        return cached[1]

    @property
    def tier_names(self) -> tuple[str, ...]:
        """Tier names, top first."""
        return self.tier_config.tier_names

    def _col(self, frame: pd.DataFrame, role: str, *, required: str | None = None) -> str | None:
        name = self.tier_config.columns[role]
        if name in frame.columns:
            return name
        if required is not None:
            raise ValueError(
                f"TierPolicy needs column {name!r} ({role}) for {required}, but the frame has "
                f"{list(frame.columns)[:12]}{'...' if frame.shape[1] > 12 else ''}: join it to the "
                f"frame, or map your column with [columns] {role} = \"<your column>\""
            )
        return None

    # -- components ----------------------------------------------------------------------------

    def _raw_components(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        cfg = self.tier_config
        out: dict[str, np.ndarray] = {}
        vals: dict[str, np.ndarray] = {}
        for role in ("p_churn", "expected_spend", "clv"):
            col = self._col(frame, role, required="the growth score")
            x = _numeric(frame, col, role)  # type: ignore[arg-type]
            bad = ~np.isfinite(x)
            if bad.any():
                raise ValueError(
                    f"column {col!r} ({role}) has {int(bad.sum())} missing or infinite values: the tier "
                    "score needs a number for every customer; score those customers first"
                )
            vals[role] = x
        p = vals["p_churn"]
        if ((p < 0) | (p > 1)).any():
            col = cfg.columns["p_churn"]
            raise ValueError(
                f"column {col!r} (p_churn) must lie in [0, 1], got values from {p.min():g} "
                f"to {p.max():g}: pass probabilities"
            )
        past_col = self._col(frame, "past_spend", required="the growth score")
        past = np.nan_to_num(_numeric(frame, past_col, "past_spend"), nan=0.0)  # type: ignore[arg-type]
        tenure_col = self._col(frame, "tenure")
        if tenure_col is not None:
            tenure = _numeric(frame, tenure_col, "tenure")
            days = np.where(np.isfinite(tenure), tenure, cfg.past_spend_days)
            days = np.clip(days, cfg.min_rate_days, cfg.past_spend_days)
        else:
            days = np.full(len(frame), cfg.past_spend_days)
        out["clv"] = vals["clv"]
        out["retention"] = 1.0 - p
        out["expected"] = np.maximum(vals["expected_spend"], 0.0)
        out["past_h"] = np.maximum(past, 0.0) / days * cfg.horizon_days
        out["past_spend"] = past
        return out

    def _growth(self, raw: dict[str, np.ndarray], k: float) -> np.ndarray:
        return np.log((raw["expected"] + k) / (raw["past_h"] + k))

    def _score_parts(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        check_is_fitted(self, "cut_points_")
        raw = self._raw_components(frame)
        raw["growth"] = self._growth(raw, self.k_)
        return self._blend(raw)

    def _blend(self, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        w = self.tier_config.weights
        total = sum(w.values())
        score = np.zeros(len(raw["clv"]))
        out: dict[str, np.ndarray] = {"growth": raw["growth"]}
        for comp in COMPONENTS:
            pct = _percentile(raw[comp], self.grids_[comp])
            out[f"{comp}_pct"] = pct
            score += (w[comp] / total) * pct
        out["past_spend_pct"] = _percentile(raw["past_spend"], self.grids_["past_spend"])
        out["growth_score"] = score
        return out

    # -- fit -----------------------------------------------------------------------------------

    def fit(self, frame: pd.DataFrame, y: Any = None) -> TierPolicy:
        """Fit the percentile grids and the cut points on the training population.

        Parameters
        ----------
        frame : pandas.DataFrame
            One row per training customer with the score columns ``p_churn``, ``expected_spend``,
            ``clv`` and the past-spend column (``net_spend_365d`` by default); ``tenure_days``
            if present (see :data:`COLUMN_ROLES` and the ``[columns]`` config).
        y : ignored

        Returns
        -------
        TierPolicy
            self, fitted.
        """
        cfg = self.tier_config
        n = len(frame)
        if n < len(cfg.tiers):
            raise ValueError(
                f"TierPolicy.fit got {n} customers but the policy has {len(cfg.tiers)} tiers: fit on "
                "the training population (thousands of customers)"
            )
        raw = self._raw_components(frame)
        if cfg.growth_k is not None:
            k = cfg.growth_k
        else:
            k = float("nan")
            for x in (raw["past_h"], raw["expected"]):
                pos = x[x > 0]
                if len(pos):
                    k = float(np.median(pos))
                    break
            k = 1.0 if not math.isfinite(k) else k
        raw["growth"] = self._growth(raw, k)
        grids = {c: _fit_grid(raw[c], cfg.grid_size) for c in (*COMPONENTS, "past_spend")}
        self.k_ = k
        self.grids_ = grids
        score = self._blend(raw)["growth_score"]
        self.score_grid_ = _fit_grid(score, cfg.grid_size)
        m = len(cfg.tiers)
        if cfg.by_share:
            shares_bottom_up = [t.share for t in reversed(cfg.tiers)]
            cum = np.cumsum(shares_bottom_up)[:-1]
            cuts = np.quantile(score, cum)
            positions = cum
        else:
            cuts = np.array([t.min_score for t in reversed(cfg.tiers[:-1])], dtype=np.float64)
            positions = _percentile(cuts, self.score_grid_)
        self.cut_points_ = np.asarray(cuts, dtype=np.float64)
        if cfg.margin_unit == "score":
            upper, lower = self.cut_points_ + cfg.margin, self.cut_points_ - cfg.margin
        else:
            upper = _inverse(np.minimum(positions + cfg.margin, 1.0), self.score_grid_)
            lower = _inverse(np.maximum(positions - cfg.margin, 0.0), self.score_grid_)
        self.upper_bounds_ = np.maximum(upper, self.cut_points_)
        self.lower_bounds_ = np.minimum(lower, self.cut_points_)
        levels = self._cap(frame, np.searchsorted(self.cut_points_, score, side="right"))
        counts = np.bincount(levels, minlength=m)
        names = cfg.tier_names
        self.train_shares_ = {names[m - 1 - lv]: float(counts[lv] / n) for lv in range(m - 1, -1, -1)}
        self.n_train_ = n
        if cfg.by_share:
            worst = max(abs(self.train_shares_[t.name] - t.share) for t in cfg.tiers)  # type: ignore[operator]
            if worst > 0.02:
                logger.warning(
                    "tier shares on the training population miss their targets by up to %.1f%% "
                    "(ties in the growth score); realized: %s",
                    100 * worst,
                    self.train_shares_,
                )
        logger.info(
            "TierPolicy fitted on %d customers: k=%.4g, cut points %s",
            n,
            k,
            np.round(self.cut_points_, 4).tolist(),
        )
        return self

    # -- scoring -------------------------------------------------------------------------------

    def score(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The growth score and its parts, one row per row of ``frame`` (same index).

        Columns: ``growth`` (the log ratio of predicted to past spend), ``clv_pct``,
        ``retention_pct``, ``growth_pct``, ``past_spend_pct`` (training percentiles in [0, 1]) and
        ``growth_score`` (their weighted mean, in [0, 1]).
        """
        parts = self._score_parts(frame)
        cols = ["growth", "clv_pct", "retention_pct", "growth_pct", "past_spend_pct", "growth_score"]
        return pd.DataFrame({c: parts[c] for c in cols}, index=frame.index)

    def _capped_levels(self, frame: pd.DataFrame, score: np.ndarray, prev_levels: np.ndarray | None) -> np.ndarray:
        """Tier levels with hysteresis, then customers with no purchase yet held at or below
        ``[score] no_purchase_max_tier`` (their growth potential is a forecast with no spend
        behind it)."""
        return self._cap(frame, self._levels(score, prev_levels))

    def _cap(self, frame: pd.DataFrame, levels: np.ndarray) -> np.ndarray:
        names = self.tier_config.tier_names
        cap = len(names) - 1 - names.index(self.tier_config.no_purchase_max_tier)
        col = self._col(frame, "days_since_last_purchase")
        if cap == len(names) - 1 or col is None:  # no cap, or a frame of scores alone: nothing to cap on
            return levels
        dsl = _numeric(frame, col, "days_since_last_purchase")
        return np.where(np.isnan(dsl), np.minimum(levels, cap), levels)

    def _levels(self, score: np.ndarray, prev_levels: np.ndarray | None) -> np.ndarray:
        raw = np.searchsorted(self.cut_points_, score, side="right")
        if prev_levels is None or self.tier_config.margin == 0:
            return raw
        held = np.isfinite(prev_levels)
        prev = np.where(held, prev_levels, 0).astype(np.int64)
        m = len(self.cut_points_)
        up_idx = np.clip(prev, 0, m - 1)  # boundary above the previous tier
        down_idx = np.clip(prev - 1, 0, m - 1)  # boundary below it
        move_up = (raw == prev + 1) & (score >= self.upper_bounds_[up_idx])
        move_down = (raw == prev - 1) & (score < self.lower_bounds_[down_idx])
        big = np.abs(raw - prev) >= 2  # a large move is never held back
        keep = held & (raw != prev) & ~move_up & ~move_down & ~big
        return np.where(keep, prev, raw)

    def _prev_levels(self, frame: pd.DataFrame, prev: pd.Series | pd.DataFrame) -> np.ndarray:
        id_col = self._col(frame, "customer_id", required="hysteresis against prev")
        prev_series = _as_tier_series(prev, self.tier_config.columns["customer_id"])
        names = self.tier_config.tier_names
        level_of = {name: len(names) - 1 - i for i, name in enumerate(names)}
        levels = prev_series.map(level_of)
        unknown = prev_series[levels.isna() & prev_series.notna()].unique()
        if len(unknown):
            logger.info(
                "previous tiers %s are not tiers of this policy; those customers get no hysteresis",
                list(unknown)[:5],
            )
        ids = frame[id_col]  # type: ignore[index]
        return pd.to_numeric(ids.map(levels), errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)

    def predict(self, frame: pd.DataFrame, *, prev: pd.Series | pd.DataFrame | None = None) -> pd.Series:
        """Tier name per customer (same index as ``frame``).

        Parameters
        ----------
        frame : pandas.DataFrame
            Score columns (and ``customer_id`` when ``prev`` is given). With
            ``days_since_last_purchase`` too, customers with no purchase yet (null) are held at or
            below ``[score] no_purchase_max_tier``.
        prev : pandas.Series or pandas.DataFrame, optional
            Last scoring's tiers: a Series of tier names indexed by customer id, or a frame with
            the customer-id column and ``tier``. Customers in it keep their tier unless the score
            crosses the boundary by the configured margin. Customers not in it (or whose tier is not
            a tier of this policy) get their plain tier.
        """
        score = self._score_parts(frame)["growth_score"]
        prev_levels = None if prev is None else self._prev_levels(frame, prev)
        return self._names(self._capped_levels(frame, score, prev_levels), frame.index)

    def _names(self, levels: np.ndarray, index: pd.Index) -> pd.Series:
        names = np.array(self.tier_config.tier_names[::-1], dtype=object)
        return pd.Series(names[levels], index=index, name="tier", dtype="string")

    def stage(self, frame: pd.DataFrame) -> pd.Series:
        """Lifecycle stage per customer (``new``, ``active``, ``at_risk``, ``dormant``, ``lost``).

        Needs ``tenure_days`` and ``days_since_last_purchase`` (null: no purchase yet) besides the
        score columns; uses ``gap_mean_days``, ``frequency``, ``purchase_days_trend_90d`` and
        ``p_churn_prev`` when present. The rules are in the module docstring.
        """
        parts = self._score_parts(frame)
        return self._stage(frame, parts)

    def _stage(self, frame: pd.DataFrame, parts: dict[str, np.ndarray]) -> pd.Series:
        r = self.tier_config.stages
        n = len(frame)
        dsl = _numeric(
            frame,
            self._col(frame, "days_since_last_purchase", required="the stages"),  # type: ignore[arg-type]
            "days_since_last_purchase",
        )
        tenure = _numeric(frame, self._col(frame, "tenure", required="the stages"), "tenure")  # type: ignore[arg-type]
        p = _numeric(frame, self.tier_config.columns["p_churn"], "p_churn")

        def optional(role: str) -> np.ndarray:
            col = self._col(frame, role)
            return np.full(n, np.nan) if col is None else _numeric(frame, col, role)

        gap, freq = optional("usual_gap"), optional("frequency")
        trend, p_prev = optional("purchase_trend"), optional("p_churn_prev")
        with np.errstate(invalid="ignore"):
            no_purchase = np.isnan(dsl)
            # a sign-up who never bought is "new" for as long as a one-time buyer would be; after
            # that the silence counts from the signup, so the dormant and lost rules apply
            young_signup = no_purchase & (tenure < r.new_no_repeat_days)
            dsl = np.where(no_purchase, tenure, dsl)
            new = (tenure < r.new_tenure_days) | ((freq == 0) & (tenure < r.new_no_repeat_days))
            lost = (p > r.lost_min_p_churn) & (dsl > r.lost_days)
            overdue = (dsl > r.dormant_gap_multiple * gap) & (dsl > r.dormant_min_days)
            dormant = (dsl > r.dormant_days) | overdue
            value_q = np.maximum(parts["clv_pct"], parts["past_spend_pct"])
            risky = (
                (p >= r.at_risk_min_p_churn)
                | (p - p_prev >= r.at_risk_min_p_churn_rise)
                | (trend <= r.at_risk_max_purchase_trend)
            )
            at_risk = (value_q >= r.at_risk_min_value_quantile) & risky
        stage = np.select(
            [young_signup, new, lost, dormant, at_risk],
            [r.no_purchase_stage, "new", "lost", "dormant", "at_risk"],
            default="active",
        )
        return pd.Series(stage, index=frame.index, name="stage", dtype="string")

    def reasons(
        self,
        frame: pd.DataFrame,
        contributions: Sequence[Sequence[Any]] | None = None,
        *,
        max_reasons: int | None = None,
    ) -> list[list[str]]:
        """Top reasons in plain words per customer (see :func:`churnclv.models.playbook.write_reasons`)."""
        return write_reasons(frame, contributions, config=self.tier_config.reasons, max_reasons=max_reasons)

    def assign(
        self,
        frame: pd.DataFrame,
        *,
        contributions: Sequence[Sequence[Any]] | None = None,
        prev: pd.Series | pd.DataFrame | None = None,
        max_reasons: int | None = None,
    ) -> pd.DataFrame:
        """Everything per customer: score, tier, stage, action and reasons.

        Parameters
        ----------
        frame : pandas.DataFrame
            The scorer's frame: ``customer_id``, ``p_churn``, ``expected_spend``, ``clv``, joined to
            the feature columns ``net_spend_365d``, ``tenure_days``, ``days_since_last_purchase``
            (and, when present, ``gap_mean_days``, ``frequency``, ``purchase_days_trend_90d``,
            ``p_churn_prev`` and whatever features the reasons should read).
        contributions : list of list, optional
            Per row of ``frame``, the model's top contributions towards churn, e.g.
            ``GBMChurnClassifier.explain(X)``.
        prev : pandas.Series or pandas.DataFrame, optional
            Last scoring's tiers, for hysteresis (see :meth:`predict`).
        max_reasons : int, optional
            Overrides ``[reasons] max_reasons``.

        Returns
        -------
        pandas.DataFrame
            Same index as ``frame``; columns ``customer_id`` (when present), ``growth_score``,
            ``growth``, ``tier``, ``tier_level`` (0 = bottom tier; higher is better), ``stage``,
            ``action`` and ``reasons`` (a list of strings).
        """
        parts = self._score_parts(frame)
        prev_levels = None if prev is None else self._prev_levels(frame, prev)
        levels = self._capped_levels(frame, parts["growth_score"], prev_levels)
        tiers = self._names(levels, frame.index)
        stages = self._stage(frame, parts)
        data: dict[str, Any] = {}
        id_col = self.tier_config.columns["customer_id"]
        if id_col in frame.columns:
            data["customer_id"] = frame[id_col]
        data.update(
            growth_score=parts["growth_score"],
            growth=parts["growth"],
            tier=tiers,
            tier_level=levels.astype(np.int64),
            stage=stages,
            action=pd.Series(self.tier_config.playbook.recommend(tiers.tolist(), stages.tolist()),
                             index=frame.index, dtype="string"),
            reasons=pd.Series(self.reasons(frame, contributions, max_reasons=max_reasons),
                              index=frame.index, dtype=object),
        )
        return pd.DataFrame(data, index=frame.index)  # one construction (column by column: ~0.1 ms each)

    # -- persistence ---------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable description: the complete config and the fitted state."""
        check_is_fitted(self, "cut_points_")

        def grid(g: tuple[np.ndarray, np.ndarray]) -> dict[str, list[float]]:
            return {"values": [float(v) for v in g[0]], "probs": [float(v) for v in g[1]]}

        return {
            "format": _FORMAT,
            "format_version": _FORMAT_VERSION,
            "class": type(self).__name__,
            "config": copy.deepcopy(self.tier_config.raw),
            "state": {
                "k": float(self.k_),
                "grids": {c: grid(g) for c, g in self.grids_.items()},
                "score_grid": grid(self.score_grid_),
                "cut_points": [float(v) for v in self.cut_points_],
                "upper_bounds": [float(v) for v in self.upper_bounds_],
                "lower_bounds": [float(v) for v in self.lower_bounds_],
                "train_shares": dict(self.train_shares_),
                "n_train": int(self.n_train_),
            },
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TierPolicy:
        """Rebuild a fitted policy from :meth:`to_dict` output (e.g. after a JSON round trip)."""
        if d.get("format") != _FORMAT or d.get("class") != cls.__name__:
            raise ValueError(
                f"this dict holds format={d.get('format')!r} class={d.get('class')!r}; "
                f"{cls.__name__}.from_dict needs format={_FORMAT!r} class={cls.__name__!r}"
            )
        if d.get("format_version") != _FORMAT_VERSION:
            raise ValueError(
                f"format_version {d.get('format_version')!r} is not supported (expected "
                f"{_FORMAT_VERSION}): refit the policy with this version of churnclv"
            )
        policy = cls(config=parse_tier_config(d["config"], merge_defaults=False))
        s = d["state"]

        def grid(g: Mapping[str, list[float]]) -> tuple[np.ndarray, np.ndarray]:
            return np.asarray(g["values"], dtype=np.float64), np.asarray(g["probs"], dtype=np.float64)

        policy.k_ = float(s["k"])
        policy.grids_ = {c: grid(g) for c, g in s["grids"].items()}
        policy.score_grid_ = grid(s["score_grid"])
        policy.cut_points_ = np.asarray(s["cut_points"], dtype=np.float64)
        policy.upper_bounds_ = np.asarray(s["upper_bounds"], dtype=np.float64)
        policy.lower_bounds_ = np.asarray(s["lower_bounds"], dtype=np.float64)
        policy.train_shares_ = dict(s["train_shares"])
        policy.n_train_ = int(s["n_train"])
        return policy

    def to_json(self) -> str:
        """:meth:`to_dict` as a JSON string."""
        return json.dumps(self.to_dict())


# --------------------------------------------------------------------------------------------------
# stability


def _as_tier_series(tiers: pd.Series | pd.DataFrame, id_col: str = "customer_id") -> pd.Series:
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
    p, c = _as_tier_series(prev), _as_tier_series(curr)
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
    plain_prev = held_prev = None
    for i, frame in enumerate(scorings):
        ids = frame[id_col].to_numpy()
        plain = pd.Series(policy.predict(frame).to_numpy(), index=ids)
        held = pd.Series(policy.predict(frame, prev=held_prev).to_numpy(), index=ids)
        if i > 0:
            rows.append(
                {
                    "step": i,
                    "without": tier_churn_rate(plain_prev, plain),  # type: ignore[arg-type]
                    "with": tier_churn_rate(held_prev, held),  # type: ignore[arg-type]
                    "customers": len(plain_prev.index.intersection(plain.index)),  # type: ignore[union-attr]
                }
            )
        plain_prev, held_prev = plain, held
    return pd.DataFrame(rows, columns=["step", "without", "with", "customers"])


# --------------------------------------------------------------------------------------------------
# report


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
    unknown = sorted(set(t.dropna()) - set(order))
    if unknown:
        raise ValueError(f"tiers {unknown} are not in the tier order {order}: pass tiers= with every tier")
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
    p, c = _as_tier_series(prev), _as_tier_series(curr)
    both = p.index.intersection(c.index)
    order = _tier_order(tiers, p, c)
    a = p.loc[both].astype("string")
    b = c.loc[both].astype("string")
    unknown = sorted((set(a.dropna()) | set(b.dropna())) - set(order))
    if unknown:
        raise ValueError(f"tiers {unknown} are not in the tier order {order}: pass tiers= with every tier")
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


def _new_axes(ax: Axes | None, figsize: tuple[float, float]) -> Axes:
    if ax is not None:
        return ax
    from matplotlib.figure import Figure  # deferred: plotting is optional at scoring time

    return Figure(figsize=figsize, layout="constrained").add_subplot()


def plot_tier_mix(summary: pd.DataFrame, ax: Axes | None = None) -> Axes:
    """Grouped bars per tier: share of customers, of predicted CLV and (if present) of past revenue.

    Parameters
    ----------
    summary : pandas.DataFrame
        :func:`tier_summary` output.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new Figure (never pyplot) when omitted.
    """
    ax = _new_axes(ax, (7.0, 4.0))
    series = [
        ("customer_share", "customers"),
        ("clv_share", "predicted CLV"),
        ("past_spend_share", "past revenue"),
    ]
    series = [(c, label) for c, label in series if c in summary.columns]
    x = np.arange(len(summary))
    width = 0.8 / len(series)
    for i, (col, label) in enumerate(series):
        bars = ax.bar(
            x + (i - (len(series) - 1) / 2) * width, summary[col].to_numpy(dtype=float), width, label=label
        )
        ax.bar_label(bars, labels=[f"{v:.0%}" for v in summary[col].fillna(0)], fontsize=7)
    ax.set_xticks(x, summary["tier"].astype(str).tolist())
    ax.set_ylabel("share")
    ax.yaxis.set_major_formatter(lambda v, _pos: f"{v:.0%}")
    ax.set_title("Tier mix: customers and value by tier")
    ax.legend(frameon=False)
    return ax


def plot_migration(migration: Migration | pd.DataFrame, ax: Axes | None = None) -> Axes:
    """Heat map of tier migration (row shares), annotated with counts when available.

    Parameters
    ----------
    migration : Migration or pandas.DataFrame
        :func:`migration_matrix` output, or a row-share matrix.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new Figure (never pyplot) when omitted.
    """
    shares = migration.shares if isinstance(migration, Migration) else migration
    counts = migration.counts if isinstance(migration, Migration) else None
    ax = _new_axes(ax, (5.5, 4.5))
    values = shares.to_numpy(dtype=float)
    image = ax.imshow(np.nan_to_num(values, nan=0.0), cmap="Blues", vmin=0.0, vmax=1.0)
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            text = "-" if np.isnan(values[i, j]) else f"{values[i, j]:.0%}"
            if counts is not None:
                text += f"\n{int(counts.iat[i, j]):,}"
            ax.text(
                j,
                i,
                text,
                ha="center",
                va="center",
                fontsize=7,
                color="white" if np.nan_to_num(values[i, j]) > 0.6 else "black",
            )
    ax.set_xticks(range(values.shape[1]), [str(c) for c in shares.columns])
    ax.set_yticks(range(values.shape[0]), [str(r) for r in shares.index])
    ax.set_xlabel("current tier")
    ax.set_ylabel("previous tier")
    ax.set_title("Tier migration (row shares)")
    ax.figure.colorbar(image, ax=ax, shrink=0.8)
    return ax


def write_report(report: TierReport, out_dir: str | Path) -> dict[str, Path]:
    """Write the report as CSV and PNG files into ``out_dir`` (created if needed).

    Files: ``tier_summary.csv``, ``tier_mix.png`` and, with a migration,
    ``tier_migration_counts.csv``, ``tier_migration_shares.csv``, ``tier_migration.png``.

    Returns
    -------
    dict of str to pathlib.Path
        File name stem to the written path.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}

    def save(ax: Axes, stem: str) -> None:
        path = out / f"{stem}.png"
        ax.figure.savefig(path, dpi=110)
        paths[stem] = path

    paths["tier_summary"] = out / "tier_summary.csv"
    report.summary.to_csv(paths["tier_summary"], index=False)
    save(plot_tier_mix(report.summary), "tier_mix")
    if report.migration is not None:
        for stem, df in (
            ("tier_migration_counts", report.migration.counts),
            ("tier_migration_shares", report.migration.shares),
        ):
            paths[stem] = out / f"{stem}.csv"
            df.to_csv(paths[stem])
        save(plot_migration(report.migration), "tier_migration")
    return paths
