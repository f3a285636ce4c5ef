"""The holdout is deterministic across runs and versions, stable when customers join or change tier,
and keeps its share and stratification."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from churnclv.campaigns.config import load_campaign_config, parse_campaigns
from churnclv.campaigns.errors import CampaignError
from churnclv.campaigns.holdout import assign_holdout, holdout_draws, holdout_summary, is_held_out
from churnclv.config import ConfigError

IDS = ["00000000", "00000001", "00000042", "0042", "cust-17"]
# Pinned: a change here moves every running campaign's control group. Do not update; add a version.
GOLDEN = {
    "winback-2026-05": [
        0.5308190091416746,
        0.6154536531547495,
        0.09048946547304892,
        0.7959724020113983,
        0.008921120244917646,
    ],
    "spring-2026": [
        0.43118057290024947,
        0.9014922111848134,
        0.36317359040673525,
        0.3251616153110315,
        0.8565768234354234,
    ],
}


def _scores(n: int, seed: int = 0, tiers: int = 3, actions: int = 2) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "customer_id": [f"{i:08d}" for i in range(n)],
            "tier": rng.choice([f"T{k}" for k in range(tiers)], n),
            "action": rng.choice([f"a{k}" for k in range(actions)], n),
        }
    )


def test_golden_draws_are_pinned() -> None:
    for campaign, expected in GOLDEN.items():
        assert holdout_draws(campaign, IDS).tolist() == expected
    # the documented recipe: SHA-256 of campaign, 0x1f, customer id; first 53 bits over 2**53
    digest = hashlib.sha256(b"winback-2026-05\x1f00000042").digest()
    assert (int.from_bytes(digest[:8], "big") >> 11) / 2**53 == GOLDEN["winback-2026-05"][2]
    assert is_held_out("winback-2026-05", "00000042", 0.1) and not is_held_out("winback-2026-05", "00000001", 0.1)


def test_ids_keep_leading_zeros_and_campaigns_are_independent() -> None:
    d = holdout_draws("c", ["42", "0042", "00000042"])
    assert len(set(d.tolist())) == 3
    a, b = (
        holdout_draws("c1", [f"{i:08d}" for i in range(20_000)]),
        holdout_draws("c2", [f"{i:08d}" for i in range(20_000)]),
    )
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.03
    both = ((a < 0.1) & (b < 0.1)).mean()
    assert both == pytest.approx(0.01, abs=0.004)  # independent draws: 10 % of 10 %


def test_plan_is_the_same_in_every_run() -> None:
    scores = _scores(2000)
    one, two = assign_holdout(scores, "c"), assign_holdout(scores.sample(frac=1, random_state=1), "c")
    merged = one.merge(two, on="customer_id")
    assert (merged["holdout_x"] == merged["holdout_y"]).all()
    assert one["holdout"].mean() == pytest.approx(0.1, abs=0.02)


def test_tier_change_keeps_the_arm() -> None:
    scores = _scores(3000)
    first = assign_holdout(scores, "c")
    moved = scores.assign(tier=np.roll(scores["tier"].to_numpy(), 7))
    again = assign_holdout(moved, "c", previous=first)
    assert (again["holdout"].to_numpy() == first["holdout"].to_numpy()).all()
    # the draw alone decides for all but the top-ups, even without the previous plan
    recomputed = assign_holdout(moved, "c")
    by_draw = (first["assigned"] == "draw") & (recomputed["assigned"] == "draw")
    assert (recomputed["holdout"][by_draw] == first["holdout"][by_draw]).all()


def test_small_strata_get_controls_and_treated() -> None:
    scores = pd.DataFrame({"customer_id": [f"{i:08d}" for i in range(9)], "tier": list("AABBBCCCC"), "action": "x"})
    plan = assign_holdout(scores, "tiny", share=0.1)
    summary = holdout_summary(plan).set_index("tier")
    assert (summary["controls"] >= 1).all() and (summary["controls"] < summary["customers"]).all()
    assert (plan["assigned"] == "top_up").sum() >= 1


# Each example checks about 7 shares against binomial noise, and hypothesis searches for a failing
# one: at 4 standard deviations it found campaign c38, whose stratum T0/a1 draws 65 controls of 379
# (p = 1.3e-5 under the design, the draws alone, no bug). The bound is 6 (2e-9 per share).
NOISE_SDS = 6


@settings(max_examples=25, deadline=None)
@given(
    n_first=st.integers(200, 3000),
    n_new=st.integers(1, 3000),
    share=st.sampled_from([0.05, 0.1, 0.2, 0.5]),
    seed=st.integers(0, 10_000),
)
@example(n_first=200, n_new=1718, share=0.1, seed=38)
def test_joining_customers_keep_arms_share_and_strata(n_first: int, n_new: int, share: float, seed: int) -> None:
    everyone = _scores(n_first + n_new, seed)
    first = assign_holdout(everyone.iloc[:n_first], f"c{seed}", share=share)
    later = assign_holdout(everyone, f"c{seed}", share=share, previous=first)
    # nobody who was planned changes arm
    assert (later["holdout"].to_numpy()[:n_first] == first["holdout"].to_numpy()).all()
    # the share holds within binomial noise plus the top-ups (one per stratum at most)
    n = len(later)
    n_strata = len(holdout_summary(later))
    tolerance = NOISE_SDS * np.sqrt(share * (1 - share) / n) + n_strata / n
    assert abs(later["holdout"].mean() - share) <= tolerance
    # every stratum of two or more has a control and a treated customer (top-ups come from newcomers)
    summary = holdout_summary(later)
    first_summary = holdout_summary(first).set_index(["tier", "action"])
    for row in summary.itertuples():
        if row.customers >= 2 and first_summary.loc[(row.tier, row.action), "controls"] >= 1:
            assert 1 <= row.controls < row.customers
        # each large stratum keeps the share within binomial noise
        if row.customers >= 200:
            assert (
                abs(row.share - share) <= NOISE_SDS * np.sqrt(share * (1 - share) / row.customers) + 1 / row.customers
            )


def test_bad_input_names_the_rule() -> None:
    scores = _scores(10)
    with pytest.raises(CampaignError, match=r"missing columns \['tier'\]"):
        assign_holdout(scores.drop(columns="tier"), "c")
    with pytest.raises(CampaignError, match="repeated ids"):
        assign_holdout(pd.concat([scores, scores]), "c")
    with pytest.raises(CampaignError, match=r"must be in \(0, 0.5\]"):
        assign_holdout(scores, "c", share=0.7)
    with pytest.raises(CampaignError, match="campaign id"):
        assign_holdout(scores, "")
    other = assign_holdout(scores, "other")
    with pytest.raises(CampaignError, match="another campaign"):
        assign_holdout(scores, "c", previous=other)


def test_config_section_and_costs(tmp_path) -> None:
    assert parse_campaigns({}).holdout_share == 0.1
    with pytest.raises(ConfigError, match=r"\[campaigns\] holdout_share"):
        parse_campaigns({"holdout_share": 0.9})
    with pytest.raises(ConfigError, match="is not a known key"):
        parse_campaigns({"share": 0.1})
    path = tmp_path / "run.toml"
    path.write_text(
        "[campaigns]\nholdout_share = 0.2\n"
        '[tiers.playbook.actions]\nregular = { text = "Regular newsletter", cost = 0.3 }\n'
    )
    config = load_campaign_config(path)
    assert config.settings.holdout_share == 0.2
    assert config.costs["Regular newsletter"] == 0.3
