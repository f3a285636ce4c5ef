"""The error of every configuration: :class:`ConfigError`.

Each setting lives with what it configures, as a pydantic model (:mod:`churnclv.config_schema`):
the mapping of a user's tables in :mod:`churnclv.mapping`; ``[train]`` / ``[scorer]`` / ``[tiers]`` /
``[features]`` in the training config (:class:`churnclv.training.config.RunConfig`); the HTTP
service's environment variables in :mod:`churnclv.serving.settings`; the CLI options of each command.
"""

from __future__ import annotations

from churnclv.errors import ChurnclvError

__all__ = ["ConfigError"]


class ConfigError(ChurnclvError, ValueError):
    """A configuration file or value breaks a rule; the message names the key, the rule and the fix."""
