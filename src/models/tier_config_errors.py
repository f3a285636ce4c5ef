"""The one form of a tier-config error: the key, the rule it breaks and the fix."""

from __future__ import annotations

from typing import Any

from churnclv.config import ConfigError
from churnclv.config_schema import Source, message

__all__ = ["TIER_CONFIG", "config_error"]

#: How messages name a key of the tier config (a file of its own, or the ``[tiers]`` section).
TIER_CONFIG = Source(label="tier config key {key!r}")


def config_error(key: str, rule: str, fix: str, got: Any = None) -> ConfigError:
    """A :class:`ConfigError` naming the tier config ``key``, the ``rule`` it breaks and the ``fix``
    (for the rules that are checked by hand, e.g. the reasons' regular expressions)."""
    label = TIER_CONFIG.label.format(key=key)
    return ConfigError(message(label, rule, fix) if got is None else message(label, rule, fix, got))
