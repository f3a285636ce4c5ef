"""The model's feature configuration ([features], e.g. zero_amount_is_purchase) reaches every
scoring path: the HTTP feature frames and the probe at load use the scorer's, not the defaults."""

from __future__ import annotations

import contextlib
import datetime as dt
from dataclasses import asdict
from types import SimpleNamespace

import pandas as pd

from churnclv.features import FeatureConfig
from churnclv.models.scorer import Scorer
from churnclv.models.scorer_files import feature_config_from_dict
from churnclv.serving.schemas import CustomerHistory, Transaction
from churnclv.serving.scoring import feature_frames, score_histories

AS_OF = dt.date(2024, 6, 30)
# a purchase, then a free item (amount 0) on another day: a repeat purchase only when zeros count
HISTORY = CustomerHistory(
    customer_id="0042",
    transactions=[
        Transaction(ts=dt.datetime(2024, 5, 1), amount=20.0),
        Transaction(ts=dt.datetime(2024, 6, 1), amount=0.0),
    ],
)


def test_zero_amount_convention_changes_the_http_features() -> None:
    default = feature_frames([HISTORY], AS_OF, ())
    lifetimes_like = feature_frames([HISTORY], AS_OF, (), FeatureConfig(zero_amount_is_purchase=True))
    assert default.loc[0, "frequency"] == 0 and lifetimes_like.loc[0, "frequency"] == 1
    assert lifetimes_like.loc[0, "customer_id"] == "0042"


def test_feature_config_round_trips_through_the_saved_metadata() -> None:
    config = FeatureConfig(zero_amount_is_purchase=True, windows=(30, 90))
    # through JSON, tuples come back as lists
    doc = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()}
    assert feature_config_from_dict(doc) == config
    assert feature_config_from_dict(None) == FeatureConfig()
    scorer = Scorer()
    scorer.btyd_ = object()  # fitted enough for feature_config()
    scorer.metadata_ = {"features": doc}
    assert scorer.feature_config() == config
    scorer.metadata_ = {}  # saved before the key existed
    assert scorer.feature_config() == FeatureConfig()


def test_score_histories_computes_features_with_the_models_config() -> None:
    seen: list[pd.DataFrame] = []

    class RecordingScorer:
        def feature_config(self) -> FeatureConfig:
            return FeatureConfig(zero_amount_is_purchase=True)

        def score(self, features: pd.DataFrame, as_of: object = None) -> pd.DataFrame:
            seen.append(features)
            raise RuntimeError("recorded")

    model = SimpleNamespace(scorer=RecordingScorer(), attributes=(), version="1")
    with contextlib.suppress(RuntimeError):
        score_histories(model, [HISTORY], AS_OF)
    assert seen and seen[0].loc[0, "frequency"] == 1
