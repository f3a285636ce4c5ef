"""Tests for the playbook: actions by value and risk, the cap on any one action's share, costs, config errors."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from churnclv.config import ConfigError
from churnclv.datasets import load_cdnow
from churnclv.features import compute_features, compute_training_frame
from churnclv.generate import generate_world_to_parquet
from churnclv.generator.world import WorldConfig
from churnclv.models.scorer import Scorer
from churnclv.models.scorer_config import ScorerConfig
from churnclv.models.tier_config import default_tier_config, parse_tier_config
from churnclv.models.tier_policy import TierPolicy

BOOK = default_tier_config().playbook
TEXT = {a.id: a.text for a in BOOK.actions.values()}


def lapsed_base(n: int, seed: int, dormant_share: float = 0.8) -> pd.DataFrame:
    """A base where most customers went silent months ago (CDNOW's shape): one action per stage
    would cover most of it."""
    rng = np.random.default_rng(seed)
    dormant = rng.random(n) < dormant_share
    dsl = np.where(dormant, rng.uniform(200, 330, n), rng.uniform(1, 40, n))
    spend = rng.gamma(0.8, 200.0, n)
    return pd.DataFrame(
        {
            "customer_id": [f"{i:06d}" for i in range(n)],
            "p_churn": np.where(dormant, rng.uniform(0.6, 0.9, n), rng.uniform(0.05, 0.4, n)),
            "expected_spend": spend * rng.uniform(0.05, 0.3, n),
            "clv": spend * rng.uniform(0.1, 1.0, n),
            "net_spend_365d": spend,
            "tenure_days": rng.integers(400, 900, n),
            "days_since_last_purchase": dsl,
            "frequency": rng.integers(1, 10, n).astype(float),
        }
    )


def shares(actions: pd.Series) -> pd.Series:
    """Share of the customers per action."""
    return actions.value_counts(normalize=True)


@pytest.fixture(scope="module")
def base() -> pd.DataFrame:
    return lapsed_base(5000, seed=1)


@pytest.fixture(scope="module")
def policy(base: pd.DataFrame) -> TierPolicy:
    return TierPolicy().fit(base)


# -- the split and the cap -------------------------------------------------------------------------


def test_no_action_covers_most_of_a_lapsed_base(policy: TierPolicy, base: pd.DataFrame) -> None:
    out = policy.assign(base)
    assert (out["stage"] == "dormant").mean() > 0.7  # what one win-back action per stage would cover
    assert shares(out["action"]).max() <= BOOK.max_action_share == 0.5
    assert policy.action_shares_ == pytest.approx(
        {a.id: s for a in BOOK.actions.values() if (s := shares(out["action"]).get(a.text, 0)) > 0}
    )


def test_the_valuable_lapsed_get_the_personal_offer(policy: TierPolicy, base: pd.DataFrame) -> None:
    out = policy.assign(base).join(base[["net_spend_365d", "clv"]])
    lapsed = out[(out["stage"] == "dormant") & out["tier"].isin(["Gold", "Silver", "Bronze"])]
    ladder = [TEXT[i] for i in ("winback_personal", "winback_reminder", "last_chance")]
    assert set(lapsed["action"]) == set(ladder)
    spend = lapsed.groupby("action")["net_spend_365d"].median()
    assert spend[ladder[0]] > spend[ladder[1]] > spend[ladder[2]]
    # within a cell, the rungs take their configured shares of the training population
    cell = lapsed[lapsed["tier"] == "Silver"]
    assert shares(cell["action"])[ladder[0]] == pytest.approx(0.3, abs=0.02)


def test_the_fit_reads_tiers_and_stages_as_categoricals_or_strings_alike(
    policy: TierPolicy, base: pd.DataFrame
) -> None:
    """The fit passes categoricals (a byte a customer at 10M customers, not a string each): the same
    cut points and shares as the names themselves, with a tight cap so the rounds move cut points."""
    from churnclv.models.playbook_cuts import action_value, fit_action_cuts

    out = policy.assign(base)
    parts = policy.score(base)
    value = action_value(parts["clv_pct"].to_numpy(), parts["past_spend_pct"].to_numpy(), np.zeros(len(base), bool))
    tiers, stages = out["tier"].to_numpy(dtype=object), out["stage"].to_numpy(dtype=object)
    for book in (BOOK, parse_tier_config({"playbook": {"max_action_share": 0.15}}).playbook):
        by_name = fit_action_cuts(book, tiers, stages, value)
        by_code = fit_action_cuts(book, pd.Categorical(tiers), pd.Categorical(stages), value)
        assert by_name[1] == by_code[1] and by_name[0].keys() == by_code[0].keys()
        for cell, cuts in by_name[0].items():
            np.testing.assert_array_equal(cuts, by_code[0][cell])
    # the fit's own stages: one category per stage name, whatever the no-purchase stage is called
    codes = policy._stage_codes(base, policy._score_parts(base))
    assert list(codes.categories) == list(dict.fromkeys(codes.categories))
    assert list(codes.astype(str)) == list(out["stage"])


def test_a_tighter_cap_moves_customers_down_the_ladder(base: pd.DataFrame, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="churnclv.models.playbook_cuts"):
        tight = TierPolicy(config={"playbook": {"max_action_share": 0.15}}).fit(base)
    out = tight.assign(base)
    got = shares(out["action"])
    personal = TEXT["winback_personal"]
    assert got[personal] <= 0.15 < shares(TierPolicy().fit(base).assign(base)["action"])[personal]
    # the last rung of a ladder cannot shrink: the fit says so, naming the action and the fix
    over = [a for a, s in tight.action_shares_.items() if s > 0.15]
    assert over and all(BOOK.cells[("Silver", "dormant")][-1].action == a or a == "no_contact" for a in over)
    assert any("max_action_share" in r.message and "split those cells" in r.message for r in caplog.records)
    # the valuable still come first: who keeps the personal offer is worth more than who lost it
    loose = TierPolicy().fit(base).assign(base).join(base["net_spend_365d"])
    moved = loose["action"].eq(personal) & ~out["action"].eq(personal)
    kept = out["action"].eq(personal)
    assert moved.any() and loose.loc[kept, "net_spend_365d"].median() > loose.loc[moved, "net_spend_365d"].median()


def test_sign_ups_without_a_purchase_rank_below_buyers(policy: TierPolicy, base: pd.DataFrame) -> None:
    young = base.head(400).assign(tenure_days=30, days_since_last_purchase=5.0, frequency=0.0)
    young.loc[young.index[:200], "days_since_last_purchase"] = np.nan
    out = policy.assign(young)
    assert set(out["stage"]) == {"new"}
    offer = out["action"].eq(TEXT["onboarding_offer"])
    assert offer.any() and not offer.iloc[:200].any()  # the offer goes to buyers first


def test_one_customer_alone_gets_the_batch_action(policy: TierPolicy, base: pd.DataFrame) -> None:
    frame = lapsed_base(300, seed=3)
    batch = policy.assign(frame)["action"]
    for i in np.random.default_rng(0).choice(len(frame), 30, replace=False):
        assert policy.assign(frame.iloc[[i]])["action"].iloc[0] == batch.iloc[i]


def test_saved_policy_gives_the_same_actions(policy: TierPolicy) -> None:
    frame = lapsed_base(800, seed=4)
    saved = json.loads(json.dumps(policy.to_dict()))
    assert saved["format_version"] == 2 and saved["state"]["action_cuts"]["Silver"]["dormant"]
    clone = TierPolicy.from_dict(saved)
    pd.testing.assert_series_equal(clone.assign(frame)["action"], policy.assign(frame)["action"])
    del saved["state"]["action_cuts"]["Silver"]
    with pytest.raises(ValueError, match=r"'Silver'.*refit"):
        TierPolicy.from_dict(saved)


def test_a_policy_saved_before_rungs_keeps_its_actions(policy: TierPolicy, base: pd.DataFrame) -> None:
    # format 1: one action text per cell, no actions table, no cut points
    saved = policy.to_dict()
    saved["format_version"] = 1
    old_texts = {"*": {"new": "Onboarding", "active": "Regular", "at_risk": "Warn", "dormant": "Win back", "lost": "x"}}
    saved["config"]["playbook"] = old_texts
    for key in ("action_cuts", "action_shares"):
        del saved["state"][key]
    old = TierPolicy.from_dict(saved)
    assert old.tier_config.playbook.max_action_share == 1.0  # no cap on a saved model
    out = old.assign(base)
    assert (out["action"] == out["stage"].map(old_texts["*"])).all()


# -- config ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("playbook", "key", "rule"),
    [
        ({"max_action_share": 1.5}, "playbook.max_action_share", "fraction in (0, 1]"),
        ({"max_action_share": 0}, "playbook.max_action_share", "fraction in (0, 1]"),
        ({"max_action_share": "half"}, "playbook.max_action_share", "fraction in (0, 1]"),
        ({"Gold": {"active": "call_them"}}, "playbook.Gold.active", "names no action of [playbook.actions]"),
        ({"*": {"lost": [{"action": "nope"}]}}, "playbook.*.lost[0].action", "names no action"),
        ({"actions": {"call": {"text": "Call", "cost": -1}}}, "playbook.actions.call.cost", "number >= 0"),
        ({"actions": {"call": {"text": "Call", "cost": "free"}}}, "playbook.actions.call.cost", "number >= 0"),
        ({"actions": {"call": {"text": ""}}}, "playbook.actions.call.text", "non-empty"),
        ({"actions": {"call": {"text": "Call", "price": 1}}}, "playbook.actions.call.price", "not a key"),
        (
            {"actions": {"call": {"text": TEXT["regular"]}}},
            "playbook.actions.call.text",
            "also the text of 'regular'",
        ),
        (
            {"*": {"lost": [{"action": "last_chance", "share": 1.2}, {"action": "no_contact"}]}},
            "playbook.*.lost[0].share",
            "fraction in (0, 1)",
        ),
        (
            {"*": {"lost": [{"action": "last_chance", "share": 0.5}, {"action": "no_contact", "share": 0.5}]}},
            "playbook.*.lost[1].share",
            "absent on the last rung",
        ),
        (
            {"*": {"lost": [{"action": "last_chance"}, {"action": "no_contact"}]}},
            "playbook.*.lost[0].share",
            "every rung but the last",
        ),
        (
            {
                "*": {
                    "lost": [
                        {"action": "last_chance", "share": 0.6},
                        {"action": "regular", "share": 0.4},
                        {"action": "no_contact"},
                    ]
                }
            },
            "playbook.*.lost",
            "summing to 1 or more",
        ),
        (
            {"*": {"lost": [{"action": "no_contact", "share": 0.5}, {"action": "no_contact"}]}},
            "playbook.*.lost[1].action",
            "appears twice",
        ),
        ({"*": {"lost": []}}, "playbook.*.lost", "non-empty array of rungs"),
    ],
)
def test_playbook_errors_name_key_rule_and_fix(playbook: dict, key: str, rule: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_tier_config({"playbook": playbook})
    msg = str(info.value)
    assert f"'{key}'" in msg and rule in msg and "fix:" in msg


def test_costs_default_to_zero_and_own_actions_merge_over_the_defaults() -> None:
    cfg = parse_tier_config(
        {"playbook": {"actions": {"call": {"text": "Call them"}}, "Gold": {"dormant": "call"}, "max_action_share": 0.4}}
    )
    book = cfg.playbook
    assert book.costs["Call them"] == 0.0 and book.costs[TEXT["winback_personal"]] > 0
    assert book.texts("Gold", "dormant") == ["Call them"] and book.max_action_share == 0.4
    assert all(cost >= 0 for cost in BOOK.costs.values())
    # own tiers keep the defaults' actions and cap
    own = parse_tier_config({"tiers": [{"name": "A", "share": 0.5}, {"name": "B", "share": 0.5}]}).playbook
    assert own.max_action_share == 0.5 and own.texts("A", "lost") == [TEXT["last_chance"], TEXT["no_contact"]]


# -- whole bases -----------------------------------------------------------------------------------


def _scored(source, as_of: pd.Timestamp, tmp_path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    train = compute_training_frame(source, as_of, 90, n_cutoffs=2)
    snapshot = compute_features(source, as_of)
    scorer = Scorer(config=ScorerConfig(horizon_days=90, gbm_rounds=30, seed=3)).fit(train, snapshot, as_of=as_of)
    scores = scorer.score(snapshot, as_of=as_of)
    again = Scorer.load(scorer.save(tmp_path / "scorer")).score(snapshot, as_of=as_of)
    pd.testing.assert_series_equal(again["action"], scores["action"])
    return scores, snapshot


def _check_base(scores: pd.DataFrame, snapshot: pd.DataFrame) -> None:
    got = shares(scores["action"])
    assert got.max() <= BOOK.max_action_share, got.head(3)
    out = scores.join(snapshot.set_index("customer_id")["gross_spend"], on="customer_id")
    lapsed = out[out["stage"].eq("dormant") & out["tier"].isin(["Gold", "Silver", "Bronze"])]
    spend = lapsed.groupby("action")["gross_spend"].median()
    assert spend[TEXT["winback_personal"]] > spend[TEXT["winback_reminder"]] > spend[TEXT["last_chance"]]


@pytest.mark.slow
def test_cdnow_actions_spread_by_value(tmp_path: Path) -> None:
    # as of 1997-12-31 three CDNOW customers in four are silent for months: one win-back action
    # used to cover 76 % of the base
    cdnow = {"transactions": load_cdnow("master")[["customer_id", "ts", "amount"]]}
    scores, snapshot = _scored(cdnow, pd.Timestamp("1997-12-31"), tmp_path)
    assert scores["stage"].eq("dormant").mean() > 0.7
    _check_base(scores, snapshot)


@pytest.mark.slow
def test_generated_shop_actions_spread_by_value(tmp_path: Path) -> None:
    generate_world_to_parquet(WorldConfig(n_customers=20_000, seed=5), tmp_path / "world", horizon_days=90)
    scores, snapshot = _scored(tmp_path / "world", pd.Timestamp("2025-10-02"), tmp_path)
    _check_base(scores, snapshot)
    lost = scores[scores["stage"].eq("lost")]
    assert set(lost["action"]) == {TEXT["last_chance"], TEXT["no_contact"]}


@settings(max_examples=40, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.sampled_from(sorted({t for t, _ in BOOK.cells})),
            st.sampled_from(sorted({s for _, s in BOOK.cells})),
            st.floats(0.0, 1.0, allow_nan=False),
        ),
        max_size=60,
    ),
    raise_by=st.floats(0.0, 0.5),
)
def test_each_customer_gets_the_first_rung_of_its_cell_whose_cut_its_value_reaches(rows, raise_by) -> None:
    """assign_actions (cells found by integer codes, for speed at millions of customers) against a
    customer-by-customer reading of the playbook."""
    from churnclv.models.playbook_cuts import assign_actions

    tiers = np.array([r[0] for r in rows], dtype=object)
    stages = np.array([r[1] for r in rows], dtype=object)
    value = np.array([r[2] for r in rows], dtype=float)
    cuts = {cell: np.linspace(0.9, 0.1, len(ladder) - 1) - raise_by for cell, ladder in BOOK.cells.items()}
    want = []
    for tier, stage, v in rows:
        ladder = BOOK.rungs(tier, stage)
        j = next((j for j in range(len(ladder) - 1) if v >= cuts[(tier, stage)][j]), len(ladder) - 1)
        want.append(TEXT[ladder[j].action])
    got = assign_actions(BOOK, cuts, tiers, stages, value)
    assert got.dtype == object and got.tolist() == want
