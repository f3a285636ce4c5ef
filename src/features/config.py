"""What the feature job computes: :class:`FeatureConfig`.

Its own module so that both :mod:`churnclv.features.catalogue` (which expands names with it) and
:mod:`churnclv.features.definitions` (which builds expressions with it) import it at the top, without
importing each other.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from churnclv.config import ConfigError
from churnclv.config_schema import parse_section
from churnclv.schema import KNOWN_EVENT_TYPES

__all__ = ["FeatureConfig", "parse_features"]

_EVENT_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
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

    windows: tuple[int, ...] = (30, 90, 180, 365)
    trend_days: int = 90
    event_types: tuple[str, ...] = KNOWN_EVENT_TYPES
    event_windows: tuple[int, ...] = (30, 90)
    event_trend_days: int = 30
    zero_amount_is_purchase: bool = False

    def __post_init__(self) -> None:
        for name in ("windows", "event_windows", "event_types"):
            value = getattr(self, name)
            if isinstance(value, str) or not isinstance(value, Sequence):
                raise TypeError(f"FeatureConfig.{name} must be a sequence, got {value!r}: pass a tuple")
            object.__setattr__(self, name, tuple(value))
        for name in ("windows", "event_windows"):
            value = getattr(self, name)
            bad = any(not isinstance(w, int) or w <= 0 for w in value)
            if not value or bad or len(set(value)) != len(value):
                raise ValueError(f"FeatureConfig.{name}={value!r}: must be distinct positive whole days, e.g. (30, 90)")
        for name in ("trend_days", "event_trend_days"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"FeatureConfig.{name}={value!r}: must be a positive whole number of days")
        bad = [e for e in self.event_types if not isinstance(e, str) or not _EVENT_NAME.match(e)]
        if bad or len(set(self.event_types)) != len(self.event_types):
            raise ValueError(
                f"FeatureConfig.event_types={self.event_types!r}: event types become column names, so "
                "each must be distinct, lower case and match [a-z][a-z0-9_]* (e.g. 'email_open')"
            )


def parse_features(raw: Any) -> FeatureConfig:
    """The ``[features]`` section of a run configuration, e.g. ``zero_amount_is_purchase = true``
    (count lines of amount 0 as purchases, as lifetimes does); a bad key or value is a
    :class:`~churnclv.config.ConfigError` naming the key, the rule and the fix."""
    try:
        return FeatureConfig(**parse_section(FeatureConfig, raw, "features"))
    except ConfigError as exc:
        raise ConfigError(f"config: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"config [features]: {exc}") from None
