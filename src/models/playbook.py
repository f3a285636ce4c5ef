"""The recommended action per tier, lifecycle stage and value: the ``[playbook]`` section of the tier config.

The section holds

- ``max_action_share``: no action for more than this share of the training base (the cut points
  of :mod:`churnclv.models.playbook_cuts` enforce it; 1 turns it off);
- ``[playbook.actions]``: every action by id, with the ``text`` the CRM sees, the ``cost`` of one
  contact (currency, >= 0; 0 by default: free) and ``contact`` (false for an action that is no
  contact, e.g. "leave out of campaigns": a targeting never contacts its customers; default true);
- ``[playbook.<tier>]`` and ``[playbook."*"]``: per lifecycle stage, one action id or a ladder of
  rungs, most valuable customers first: ``[{ action = "winback_personal", share = 0.3 },
  { action = "winback_reminder" }]``. Every rung but the last takes a ``share`` of the cell's
  customers (ranked by value, on the training population); the last takes the rest.

It is validated against the tier names and resolved for every (tier, stage) pair when the config
is loaded, so an unknown tier, stage or action, or a missing one, fails then, not in the middle of a
weekly scoring. A playbook saved before actions had ids (no ``actions`` table) reads its texts as
actions of cost 0, without a cap.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from churnclv.models.stages import STAGES
from churnclv.models.tier_config_errors import config_error

__all__ = ["ANY", "SETTINGS", "Action", "Playbook", "Rung", "parse_playbook"]

#: Wildcard key of the playbook: any tier or any stage.
ANY = "*"
#: Keys of ``[playbook]`` that are settings, not tiers.
SETTINGS: tuple[str, ...] = ("max_action_share", "actions")


@dataclass(frozen=True)
class Action:
    """One action: what the CRM reads and what one contact costs."""

    id: str
    text: str
    cost: float = 0.0
    contact: bool = True  # False: the action is no contact (a targeting never contacts its customers)


@dataclass(frozen=True)
class Rung:
    """One rung of a cell's ladder: an action id and the share of the cell it takes (None: the rest)."""

    action: str
    share: float | None = None


@dataclass(frozen=True)
class Playbook:
    """Actions by id and, for every (tier, stage) pair, its ladder of rungs (most valuable first)."""

    actions: dict[str, Action]
    cells: dict[tuple[str, str], tuple[Rung, ...]]
    max_action_share: float = 1.0

    def rungs(self, tier: str, stage: str) -> tuple[Rung, ...]:
        """The ladder of one tier and stage; ``KeyError`` names both when the pair is unknown."""
        try:
            return self.cells[(tier, stage)]
        except KeyError:
            raise KeyError(f"no playbook action for tier {tier!r} and stage {stage!r}") from None

    def texts(self, tier: str, stage: str) -> list[str]:
        """The action texts of one tier and stage, most valuable customers' first."""
        return [self.actions[r.action].text for r in self.rungs(tier, stage)]

    @property
    def costs(self) -> dict[str, float]:
        """The cost of one contact per action text (the ``action`` column holds texts)."""
        return {a.text: a.cost for a in self.actions.values()}

    @property
    def no_contact(self) -> frozenset[str]:
        """The texts of the actions that are no contact (``contact = false``)."""
        return frozenset(a.text for a in self.actions.values() if not a.contact)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _settings(raw: Mapping[str, Any], key: str, legacy: bool) -> tuple[float, dict[str, Action]]:
    share = raw.get("max_action_share", 1.0)
    if not _number(share) or not 0 < share <= 1:
        raise config_error(
            f"{key}.max_action_share",
            "must be a fraction in (0, 1]",
            "e.g. max_action_share = 0.5 (no action for more than half the base; 1 turns the cap off)",
            share,
        )
    if legacy:
        return float(share), {}
    table = raw["actions"]
    if not isinstance(table, Mapping) or not table:
        raise config_error(
            f"{key}.actions",
            "must be a table of actions by id",
            'e.g. [playbook.actions] call = { text = "Call them" }',
        )
    actions: dict[str, Action] = {}
    for aid, spec in table.items():
        k = f"{key}.actions.{aid}"
        if not isinstance(spec, Mapping):
            raise config_error(k, "must be a table with text and cost", f'write {aid} = {{ text = "...", cost = 0.5 }}')
        extra = sorted(set(spec) - {"text", "cost", "contact"})
        if extra:
            raise config_error(
                f"{k}.{extra[0]}", "is not a key of an action", "an action has only text, cost and contact"
            )
        contact = spec.get("contact", True)
        if not isinstance(contact, bool):
            fix = "false for an action that is no contact (default true)"
            raise config_error(f"{k}.contact", "must be true or false", fix, contact)
        text, cost = spec.get("text"), spec.get("cost", 0.0)
        if not isinstance(text, str) or not text.strip():
            raise config_error(f"{k}.text", "must be a non-empty action text", "write what to do, in words", text)
        if not _number(cost) or cost < 0:
            raise config_error(
                f"{k}.cost", "must be a number >= 0", "the cost of one contact in currency, e.g. 0.5 (0: free)", cost
            )
        clash = next((a.id for a in actions.values() if a.text == text), None)
        if clash is not None:
            raise config_error(
                f"{k}.text", f"is also the text of {clash!r}", "give every action its own text (the output holds texts)"
            )
        actions[str(aid)] = Action(str(aid), text, float(cost), contact)
    return float(share), actions


def _ladder(cell: Any, key: str, actions: Mapping[str, Action], legacy: bool) -> tuple[Rung, ...]:
    """One cell as written: an action id (legacy: a text) or an array of rungs."""

    def known(aid: Any, k: str) -> str:
        if legacy:
            if not isinstance(aid, str) or not aid.strip():
                raise config_error(k, "must be a non-empty action text", "write what to do, in words", aid)
            return aid
        if aid not in actions:
            raise config_error(
                k,
                f"names no action of [playbook.actions] {sorted(actions)}",
                'use one of those ids, or define yours: [playbook.actions] my_action = { text = "...", cost = 0.0 }',
                aid,
            )
        return str(aid)

    if not isinstance(cell, list):
        return (Rung(known(cell, key)),)
    if not cell or legacy:
        raise config_error(key, "must be an action id or a non-empty array of rungs", 'e.g. "winback_personal"')
    rungs: list[Rung] = []
    for i, rung in enumerate(cell):
        k = f"{key}[{i}]"
        if not isinstance(rung, Mapping) or "action" not in rung or set(rung) - {"action", "share"}:
            raise config_error(
                k, "must be a table with action (and share)", '{ action = "winback_personal", share = 0.3 }'
            )
        share: Any = rung.get("share")
        last = i == len(cell) - 1
        if last and share is not None:
            raise config_error(
                f"{k}.share", "must be absent on the last rung", "remove it: the last rung takes the rest"
            )
        if not last and (not _number(share) or not 0 < share < 1):
            raise config_error(
                f"{k}.share",
                "must be a fraction in (0, 1) on every rung but the last",
                "the share of the cell's most valuable customers this rung takes, e.g. 0.3",
                share,
            )
        aid = known(rung["action"], f"{k}.action")
        if any(r.action == aid for r in rungs):
            raise config_error(f"{k}.action", "appears twice in the ladder", "give each rung its own action", aid)
        rungs.append(Rung(aid, None if last else float(share)))
    total = sum(r.share or 0.0 for r in rungs)
    if total >= 1:
        raise config_error(key, "has shares summing to 1 or more", "leave a share for the last rung", round(total, 6))
    return tuple(rungs)


def parse_playbook(raw: Mapping[str, Any], *, tiers: Sequence[str], key: str = "playbook") -> Playbook:
    """Validate the ``[playbook]`` section against the tier names and resolve every (tier, stage).

    Lookup order for a pair: ``[playbook.<tier>].<stage>``, ``[playbook."*"].<stage>``,
    ``[playbook.<tier>]."*"``, ``[playbook."*"]."*"``.
    """
    if not isinstance(raw, Mapping):
        raise config_error(key, "must be a table of tiers", 'write [playbook."*"] and [playbook.<tier>] sections')
    for name in SETTINGS:
        if name in tiers:
            raise config_error("tiers", f"has a tier named {name!r}, a key of [playbook]", "rename the tier")
    legacy = "actions" not in raw
    share, actions = _settings(raw, key, legacy)
    sections = {t: body for t, body in raw.items() if t not in SETTINGS}
    for tier, body in sections.items():
        k = f"{key}.{tier}"
        if tier != ANY and tier not in tiers:
            raise config_error(
                k,
                f"names a tier that is not in [[tiers]] {list(tiers)}",
                'rename the section to one of the tiers, or "*" for any tier',
            )
        if not isinstance(body, Mapping):
            raise config_error(k, "must be a table of stage = action", 'e.g. active = "premium_care"')
        for stage in body:
            if stage != ANY and stage not in STAGES:
                raise config_error(
                    f"{k}.{stage}",
                    f"is not a lifecycle stage {list(STAGES)}",
                    'use one of the stages, or "*" for any stage',
                )
    ladders = {
        (tier, stage): _ladder(cell, f"{key}.{tier}.{stage}", actions, legacy)
        for tier, body in sections.items()
        for stage, cell in body.items()
    }
    cells: dict[tuple[str, str], tuple[Rung, ...]] = {}
    for tier in tiers:
        for stage in STAGES:
            for pair in ((tier, stage), (ANY, stage), (tier, ANY), (ANY, ANY)):
                if pair in ladders:
                    cells[(tier, stage)] = ladders[pair]
                    break
            else:
                raise config_error(
                    f"{key}.{tier}.{stage}",
                    'has no action (nor a "*" fallback)',
                    f'add {key}."*".{stage} or {key}.{tier}.{stage}',
                )
    if legacy:  # texts are their own ids
        actions = {r.action: Action(r.action, r.action) for ladder in cells.values() for r in ladder}
    return Playbook(actions, cells, share)
