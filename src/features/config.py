"""What the feature job computes: :class:`FeatureConfig`.

Its own module so that both :mod:`churnclv.features.catalogue` (which expands names with it) and
:mod:`churnclv.features.definitions` (which builds expressions with it) import it at the top, without
importing each other.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, Field

from churnclv.config import ConfigError
from churnclv.config_schema import Array, Fix, check_table, rule_error, section, settings
from churnclv.schema import KNOWN_EVENT_TYPES

__all__ = ["FeatureConfig", "parse_features"]

_H = TypeVar("_H", bound=Hashable)


def _distinct(values: tuple[_H, ...]) -> tuple[_H, ...]:
    if not values:
        raise rule_error("must not be empty", "", got=values)  # fix: the default
    if len(set(values)) != len(values):
        raise rule_error("must not repeat a value", "remove the repeated value", got=values)
    return values


Days = Annotated[int, Field(ge=1), Fix("a positive whole number of days, e.g. 30")]
# event types become column names
EventType = Annotated[
    str, Field(pattern=r"^[a-z][a-z0-9_]*$"), Fix("lower case letters, digits and _, e.g. 'email_open'")
]


@settings("features")
class FeatureConfig:
    """What the feature job computes. Frozen and hashable, so compiled queries can be cached.

    Parameters
    ----------
    windows
        Purchase windows in days (``purchase_days_{w}d``, ``net_spend_{w}d``).
    trend_days
        Purchase trend window: the last ``trend_days`` against the ``trend_days`` before.
    event_types
        Event types that get engagement features (default: :data:`churnclv.schema.KNOWN_EVENT_TYPES`).
        Other event types in the data are ignored.
    event_windows
        Engagement count windows in days (``{event}_count_{w}d``).
    event_trend_days
        Engagement trend window: the last ``event_trend_days`` against the ``event_trend_days`` before.
    zero_amount_is_purchase
        Count lines with ``amount == 0`` as purchases (free items). Off by default: a purchase needs
        ``amount > 0``. ``lifetimes`` counts every line, so turn this on to match it on data with
        zero-amount lines (CDNOW has 80).
    """

    windows: Annotated[Array[Days], AfterValidator(_distinct)] = (30, 90, 180, 365)
    trend_days: Days = 90
    event_types: Annotated[Array[EventType], AfterValidator(_distinct)] = KNOWN_EVENT_TYPES
    event_windows: Annotated[Array[Days], AfterValidator(_distinct)] = (30, 90)
    event_trend_days: Days = 30
    zero_amount_is_purchase: bool = False


def parse_features(raw: Any) -> FeatureConfig:
    """The ``[features]`` section of a run configuration, e.g. ``zero_amount_is_purchase = true``
    (count lines of amount 0 as purchases, as lifetimes does); a bad key or value is a
    :class:`~churnclv.config.ConfigError` naming the key, the rule and the fix."""
    try:
        return FeatureConfig(**check_table(raw, section("features")))
    except ConfigError as exc:
        raise ConfigError(f"config: {exc}") from None
