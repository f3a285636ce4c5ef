"""The one form of a tier-config error: the key, the rule it breaks and the fix."""

from __future__ import annotations

from typing import Any

from churnclv.config import ConfigError

__all__ = ["config_error"]


def config_error(key: str, rule: str, fix: str, got: Any = None) -> ConfigError:
    """A :class:`ConfigError` naming the tier config ``key``, the ``rule`` it breaks and the ``fix``."""
    got_text = "" if got is None else f" (got {got!r})"
    return ConfigError(f"tier config key {key!r}: {rule}{got_text}; fix: {fix}")
