"""An action that is no contact: ``contact = false`` on the playbook's action, read by the tier config and the
campaign config, distinct from a free action (cost 0), and refused when not a boolean."""

from __future__ import annotations

from pathlib import Path

import pytest

from churnclv.campaigns.config import load_campaign_config
from churnclv.config import ConfigError
from churnclv.models.tier_config import default_tier_config, parse_tier_config

NO_CONTACT = "No contact: leave out of campaigns, a contact costs more than it is likely to bring back"


def test_the_default_no_contact_action_is_no_contact_and_free_actions_stay_contacts() -> None:
    playbook = default_tier_config().playbook
    assert playbook.no_contact == frozenset({NO_CONTACT})
    assert playbook.costs[NO_CONTACT] == 0.0  # no cost: without the mark, any positive uplift was "profit"
    assert all(a.contact for a in playbook.actions.values() if a.text != NO_CONTACT)


def test_contact_false_is_read_into_the_campaign_config(tmp_path: Path) -> None:
    config = tmp_path / "run.toml"
    config.write_text(
        '[tiers.playbook.actions]\nregular = { text = "Regular programme: newsletter and seasonal offers", '
        "cost = 0.0, contact = false }\n"
    )
    loaded = load_campaign_config(config)
    regular = "Regular programme: newsletter and seasonal offers"
    assert loaded.no_contact == frozenset({NO_CONTACT, regular}) and loaded.costs[regular] == 0.0
    assert load_campaign_config(None).no_contact == frozenset({NO_CONTACT})


def test_a_contact_that_is_not_a_boolean_is_refused_naming_the_key() -> None:
    raw = {"playbook": {"actions": {"no_contact": {"text": "x", "contact": "no"}}}}
    with pytest.raises(ConfigError, match=r"playbook\.actions\.no_contact\.contact.*true or false"):
        parse_tier_config(raw)
    with pytest.raises(ConfigError, match=r"only text, cost and contact"):
        parse_tier_config({"playbook": {"actions": {"no_contact": {"text": "x", "reach": 1}}}})
