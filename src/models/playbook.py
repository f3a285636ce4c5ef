"""The recommended action per tier and lifecycle stage: the ``[playbook]`` section of the tier config.

The section is validated against the tier names and resolved for every (tier, stage) pair when the
config is loaded (see :mod:`churnclv.models.tier_config`), so an unknown tier or a missing action
fails then, not in the middle of a weekly scoring.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from churnclv.models.stages import STAGES
from churnclv.models.tier_config_errors import config_error

__all__ = ["ANY", "Playbook", "parse_playbook"]

#: Wildcard key of the playbook: any tier or any stage.
ANY = "*"


@dataclass(frozen=True)
class Playbook:
    """The recommended action for every (tier, stage) pair, resolved once from the config."""

    actions: dict[tuple[str, str], str]

    def action(self, tier: str, stage: str) -> str:
        """The action for one tier and stage; ``KeyError`` names both when the pair is unknown."""
        try:
            return self.actions[(tier, stage)]
        except KeyError:
            raise KeyError(f"no playbook action for tier {tier!r} and stage {stage!r}") from None

    def recommend(self, tiers: Iterable[str], stages: Iterable[str]) -> list[str]:
        """Actions for aligned sequences of tiers and stages."""
        return [self.action(t, s) for t, s in zip(tiers, stages, strict=True)]


def parse_playbook(raw: Mapping[str, Any], *, tiers: Sequence[str], key: str = "playbook") -> Playbook:
    """Validate the ``[playbook]`` section against the tier names and resolve every (tier, stage).

    Lookup order for a pair: ``[playbook.<tier>].<stage>``, ``[playbook."*"].<stage>``,
    ``[playbook.<tier>]."*"``, ``[playbook."*"]."*"``.
    """
    if not isinstance(raw, Mapping):
        raise config_error(key, "must be a table of tiers", 'write [playbook."*"] and [playbook.<tier>] sections')
    for tier, body in raw.items():
        k = f"{key}.{tier}"
        if tier != ANY and tier not in tiers:
            raise config_error(
                k,
                f"names a tier that is not in [[tiers]] {list(tiers)}",
                'rename the section to one of the tiers, or "*" for any tier',
            )
        if not isinstance(body, Mapping):
            raise config_error(k, "must be a table of stage = action", 'e.g. active = "Premium care"')
        for stage, action in body.items():
            if stage != ANY and stage not in STAGES:
                raise config_error(
                    f"{k}.{stage}",
                    f"is not a lifecycle stage {list(STAGES)}",
                    'use one of the stages, or "*" for any stage',
                )
            if not isinstance(action, str) or not action.strip():
                raise config_error(
                    f"{k}.{stage}", "must be a non-empty action text", "write what to do, in words", action
                )
    actions: dict[tuple[str, str], str] = {}
    for tier in tiers:
        own, anyt = raw.get(tier, {}), raw.get(ANY, {})
        for stage in STAGES:
            for found in (own.get(stage), anyt.get(stage), own.get(ANY), anyt.get(ANY)):
                if found is not None:
                    actions[(tier, stage)] = found
                    break
            else:
                raise config_error(
                    f"{key}.{tier}.{stage}",
                    'has no action (nor a "*" fallback)',
                    f'add {key}."*".{stage} or {key}.{tier}.{stage}',
                )
    return Playbook(actions)
