"""Growth-potential tiers, lifecycle stages, reasons and actions, fixed at training time.

- :mod:`churnclv.models.tier_config`: the config (keys, defaults, validation);
- :mod:`churnclv.models.tier_policy`: :class:`TierPolicy` (growth score, tiers, hysteresis);
- :mod:`churnclv.models.stages`, :mod:`churnclv.models.reasons`, :mod:`churnclv.models.playbook`:
  lifecycle stages, reasons in plain words, actions;
- :mod:`churnclv.models.tier_stability`: tier churn between scorings;
- :mod:`churnclv.models.tier_report`: tier summary, migration matrix, report files;
- :mod:`churnclv.plotting`: ``plot_tier_mix``, ``plot_migration`` (loaded on first use, so importing
  this module does not import matplotlib).
"""

# facade: the definitions live in the modules below; importers move in the architecture issue

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from churnclv.models.stages import STAGES
from churnclv.models.tier_config import (
    COLUMN_ROLES,
    COMPONENTS,
    StageRules,
    TierConfig,
    TierSpec,
    default_tier_config,
    load_tier_config,
    parse_tier_config,
)
from churnclv.models.tier_policy import TierPolicy
from churnclv.models.tier_report import (
    Migration,
    TierReport,
    migration_matrix,
    tier_report,
    tier_summary,
    write_report,
)
from churnclv.models.tier_stability import hysteresis_effect, tier_churn_rate

if TYPE_CHECKING:
    from churnclv.plotting import plot_migration, plot_tier_mix

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

_PLOTS = ("plot_migration", "plot_tier_mix")


def __getattr__(name: str) -> Any:
    """The tier plots, imported on first use: scoring imports this module and needs no matplotlib."""
    if name in _PLOTS:
        from churnclv import plotting  # deferred: matplotlib

        return getattr(plotting, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
