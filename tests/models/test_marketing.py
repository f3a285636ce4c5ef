"""The marketing fields (historic and total CLV, average order value and days between orders, churn
risk band, CLV at risk, acquisition cost and net CLV): values on hand-made frames, their config, and
the scorer giving them on every path."""

from __future__ import annotations

import logging
import tomllib
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churnclv.config import ConfigError
from churnclv.features import compute_features
from churnclv.models.marketing import MARKETING_COLUMNS, acquisition_costs, risk_bands, with_marketing
from churnclv.models.marketing_config import AcquisitionCost, RiskBands
from churnclv.models.scorer import Scorer
from churnclv.models.tier_config import default_tier_config, parse_tier_config
from churnclv.models.tier_policy import TierPolicy

SMALL_SCORER = Path(__file__).with_name("small_scorer")
AS_OF = pd.Timestamp("2025-10-02")


def _frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Four customers: a sign-up with no purchase, a one-time buyer, a regular, one with returns."""
    features = pd.DataFrame(
        {
            "customer_id": ["new", "once", "regular", "returner"],
            "net_spend": [0.0, 40.0, 300.0, -10.0],
            "n_purchase_days": pd.array([0, 1, 6, 2], dtype="Int64"),
            "gap_mean_days": [np.nan, np.nan, 30.0, 12.5],
            "attr_acquisition_cost": pd.array([None, "15.5", None, "n/a"], dtype="string"),
            "attr_acquisition_channel": pd.array(["social", None, "paid_search", "organic"], dtype="string"),
        }
    )
    scores = pd.DataFrame(
        {"customer_id": features["customer_id"], "p_churn": [0.9, 0.8, 0.1, 0.5], "clv": [20.0, 30.0, 400.0, 10.0]}
    )
    return scores, features


def _policy(**sections: dict) -> TierPolicy:
    return TierPolicy(config=sections)  # unfitted: only its config is read


def test_values_and_units_on_a_hand_made_frame() -> None:
    scores, features = _frames()
    out = with_marketing(scores, features, None)
    assert list(out.columns) == [*scores.columns, *MARKETING_COLUMNS]
    np.testing.assert_array_equal(out["historic_clv"], [0.0, 40.0, 300.0, -10.0])  # net spend to date
    np.testing.assert_array_equal(out["total_clv"], [20.0, 70.0, 700.0, 0.0])  # to date + 12-month CLV
    # net spend per purchase day; none without a purchase
    np.testing.assert_array_equal(out["avg_order_value"], [np.nan, 40.0, 50.0, -5.0])
    np.testing.assert_array_equal(out["avg_days_between_orders"], [np.nan, np.nan, 30.0, 12.5])
    np.testing.assert_allclose(out["clv_at_risk"], [18.0, 24.0, 40.0, 5.0])
    assert out["risk_band"].tolist() == ["high", "high", "low", "medium"]  # defaults 0.5 and 0.8
    # the shipped config knows no channel cost and no default: only the customers-table column counts
    np.testing.assert_array_equal(out["acquisition_cost"], [np.nan, 15.5, np.nan, np.nan])
    np.testing.assert_array_equal(out["net_clv"], [np.nan, 14.5, np.nan, np.nan])


def test_a_purchase_returned_to_the_cent_shows_0_not_minus_0() -> None:
    scores, features = _frames()
    out = with_marketing(scores, features.assign(net_spend=[0.0, -0.0, 300.0, -0.0]), None)
    for col in ("historic_clv", "avg_order_value"):
        assert not np.signbit(out[col].to_numpy()[[1, 3]]).any(), out[col].tolist()


def test_a_cut_point_belongs_to_the_band_above() -> None:
    bands = RiskBands(medium=0.3, high=0.6)
    p = np.array([0.0, 0.2999, 0.3, 0.5999, 0.6, 1.0])
    assert risk_bands(p, bands).tolist() == ["low", "low", "medium", "medium", "high", "high"]


def test_acquisition_cost_from_the_column_then_the_channel_then_the_default(caplog: pytest.LogCaptureFixture) -> None:
    _, features = _frames()
    config = AcquisitionCost(by_channel={"social": 8.0, "paid_search": 12.0}, default=3.0)
    with caplog.at_level(logging.WARNING, logger="churnclv.models.marketing"):
        cost = acquisition_costs(features, config)
    # new: its channel; once: its own column (no channel); regular: its channel;
    # returner: "n/a" is no cost and organic has none: the default
    np.testing.assert_array_equal(cost, [8.0, 15.5, 12.0, 3.0])
    assert "1 customer(s)" in caplog.text and "n/a" not in caplog.text  # counted, never quoted


@pytest.mark.parametrize("value", ["-3", "inf", "nan", "abc", ""])
def test_a_column_value_that_is_no_cost_falls_through(value: str) -> None:
    features = pd.DataFrame({"attr_acquisition_cost": [value], "attr_acquisition_channel": ["social"]})
    cost = acquisition_costs(features, AcquisitionCost(by_channel={"social": 8.0}))
    assert cost.tolist() == [8.0]


def test_own_column_names_and_no_cost_known() -> None:
    scores, features = _frames()
    features = features.rename(columns={"attr_acquisition_channel": "attr_source", "attr_acquisition_cost": "attr_cac"})
    policy = _policy(acquisition_cost={"column": "cac", "channel_column": "source", "by_channel": {"organic": 2}})
    out = with_marketing(scores, features, policy)
    np.testing.assert_array_equal(out["acquisition_cost"], [np.nan, 15.5, np.nan, 2.0])
    np.testing.assert_array_equal(out["net_clv"], [np.nan, 14.5, np.nan, 8.0])
    # no attribute at all and no default: unknown, so net CLV is null rather than the CLV
    bare = features.drop(columns=["attr_source", "attr_cac"])
    out = with_marketing(scores, bare, _policy(acquisition_cost={"default": 0}))
    np.testing.assert_array_equal(out["net_clv"], out["clv"])  # a default of 0 says: no cost
    assert with_marketing(scores, bare, None)["net_clv"].isna().all()


def test_channel_costs_without_the_channel_column_are_said_once(caplog: pytest.LogCaptureFixture) -> None:
    features = pd.DataFrame({"other": ["x"]})
    config = AcquisitionCost(channel_column="never_seen_channel", by_channel={"x": 1.0})
    with caplog.at_level(logging.WARNING, logger="churnclv.models.marketing"):
        acquisition_costs(features, config)
        acquisition_costs(features, config)
    assert caplog.text.count("never_seen_channel") == 1


def test_missing_features_are_named() -> None:
    scores, features = _frames()
    with pytest.raises(ValueError, match=r"\['gap_mean_days'\].*compute_features"):
        with_marketing(scores, features.drop(columns=["gap_mean_days"]), None)


@pytest.mark.parametrize(
    ("override", "key", "rule"),
    [
        ({"risk_bands": {"medium": 0.9}}, "risk_bands.high", "must be above risk_bands.medium"),
        ({"risk_bands": {"medium": 0.0}}, "risk_bands.medium", "must be > 0"),
        ({"risk_bands": {"high": 1.0}}, "risk_bands.high", "must be < 1"),
        ({"risk_bands": {"high": "0.7"}}, "risk_bands.high", "valid number"),
        ({"risk_bands": 3}, "risk_bands", "must be a table"),
        ({"acquisition_cost": {"by_channel": {"social": -1}}}, "acquisition_cost.by_channel.social", "must be >= 0"),
        ({"acquisition_cost": {"default": float("inf")}}, "acquisition_cost.default", "finite"),
        ({"acquisition_cost": {"column": " "}}, "acquisition_cost.column", "must name a customers-table column"),
        ({"acquisition_cost": {"channel": "x"}}, "acquisition_cost.channel", "is not a known key"),
    ],
)
def test_config_errors_name_key_rule_and_fix(override: dict, key: str, rule: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_tier_config(override)
    text = str(err.value)
    assert f"'{key}'" in text and rule in text and "fix:" in text, text


def test_configs_saved_before_the_sections_get_the_shipped_defaults() -> None:
    shipped = tomllib.loads(resources.files("churnclv").joinpath("defaults/tiers.toml").read_text(encoding="utf-8"))
    assert {"risk_bands", "acquisition_cost"} <= set(shipped)
    older = {k: v for k, v in default_tier_config().raw.items() if k not in ("risk_bands", "acquisition_cost")}
    config = parse_tier_config(older, merge_defaults=False)
    assert config.risk_bands == default_tier_config().risk_bands == RiskBands.model_validate(shipped["risk_bands"])
    assert config.acquisition_cost == AcquisitionCost.model_validate(shipped["acquisition_cost"])


@pytest.fixture(scope="module")
def snapshot(small_world: Path) -> pd.DataFrame:
    return compute_features(small_world, AS_OF)


def test_the_scorer_gives_them_with_its_policys_config(snapshot: pd.DataFrame) -> None:
    scorer = Scorer.load(SMALL_SCORER)
    scores = scorer.score(snapshot, reasons=False)
    np.testing.assert_allclose(scores["historic_clv"], snapshot["net_spend"].round(6))
    np.testing.assert_allclose(scores["total_clv"], scores["historic_clv"] + scores["clv"])
    bought = snapshot["n_purchase_days"].to_numpy(dtype=float) > 0
    assert scores["avg_order_value"].notna().to_numpy().tolist() == bought.tolist()
    assert set(scores["risk_band"]) == {"low", "medium", "high"}  # the generated world has all three
    assert scores["net_clv"].isna().all()  # the shipped config knows no acquisition cost
    # a policy configured with channel costs: every customer of a listed channel gets clv - cost
    costs = {"organic": 0.0, "paid_search": 12.0, "social": 8.0, "referral": 5.0, "affiliate": 20.0}
    saved = scorer.tiers_.to_dict()
    saved["config"]["acquisition_cost"] = {"by_channel": costs}
    scorer.tiers_ = TierPolicy.from_dict(saved)
    priced = scorer.score(snapshot, reasons=False)
    expected = snapshot["attr_acquisition_channel"].map(costs).to_numpy(dtype=float)
    np.testing.assert_allclose(priced["net_clv"], priced["clv"] - expected)
    pd.testing.assert_frame_equal(
        priced.drop(columns=["acquisition_cost", "net_clv"]), scores.drop(columns=["acquisition_cost", "net_clv"])
    )
