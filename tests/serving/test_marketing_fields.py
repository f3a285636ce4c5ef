"""The marketing fields on the serving paths, without a trained store: the batch row (Arrow), the HTTP
answer and the database table carry the same values for the same customers, nulls included, with an
acquisition cost configured (the small committed scorer, its policy given channel costs)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import sqlalchemy as sa

from churnclv.features import compute_features
from churnclv.models.marketing import MARKETING_COLUMNS
from churnclv.models.marketing_config import RISK_BAND_NAMES
from churnclv.models.scorer import Scorer
from churnclv.models.tier_policy import TierPolicy
from churnclv.serving.chunks import score_chunk
from churnclv.serving.model import LoadedModel
from churnclv.serving.schemas import CustomerScore
from churnclv.serving.scoring import score_features, to_customer_scores
from churnclv.serving.sinks import ScoreSink, normalize_url
from churnclv.serving.snapshots import NULLABLE_NUMBERS, OUTPUT_COLUMNS, OUTPUT_SCHEMA

AS_OF = dt.date(2025, 10, 2)
SMALL_SCORER = Path(__file__).parents[1] / "models" / "small_scorer"
# the generated world's channels; "organic" is left out: its customers have no known cost
COSTS = {"paid_search": 12.0, "social": 8.5, "referral": 5.0, "affiliate": 20.0}


@pytest.fixture(scope="module")
def model() -> LoadedModel:
    scorer = Scorer.load(SMALL_SCORER)
    saved = scorer.tiers_.to_dict()
    saved["config"]["acquisition_cost"] = {"by_channel": COSTS}
    saved["config"]["risk_bands"] = {"medium": 0.4, "high": 0.9}
    scorer.tiers_ = TierPolicy.from_dict(saved)
    return LoadedModel(scorer=scorer, name="churnclv", version="3", alias=None, model_uri="models:/churnclv/3")


@pytest.fixture(scope="module")
def features(small_world: Path) -> pd.DataFrame:
    return compute_features(small_world, pd.Timestamp(AS_OF)).iloc[:400].reset_index(drop=True)


@pytest.fixture(scope="module")
def batch_rows(model: LoadedModel, features: pd.DataFrame) -> pa.Table:
    return score_chunk(model, features, as_of=AS_OF)


def test_batch_rows_and_http_answers_carry_the_same_values(
    model: LoadedModel, features: pd.DataFrame, batch_rows: pa.Table
) -> None:
    answers = to_customer_scores(score_features(model, features, AS_OF), model.version, AS_OF)
    http = pd.DataFrame([answers[cid].model_dump(mode="json") for cid in features["customer_id"]])
    batch = batch_rows.to_pandas()
    assert set(MARKETING_COLUMNS) <= set(OUTPUT_COLUMNS)
    for col in MARKETING_COLUMNS:
        if col == "risk_band":
            assert http[col].tolist() == batch[col].tolist()
            continue
        # JSON null and Parquet null alike: NaN here; equal to the bit where both hold a number
        np.testing.assert_array_equal(http[col].to_numpy(float), batch[col].to_numpy(float), err_msg=col)
    # the configured policy is what both read: channel costs, and null where none is known
    channel = features["attr_acquisition_channel"]
    expected = channel.map(COSTS).to_numpy(dtype=float)
    np.testing.assert_array_equal(batch["acquisition_cost"].to_numpy(float), expected)
    unknown = channel.eq("organic").to_numpy()
    assert unknown.any() and (~unknown).any()
    assert batch["net_clv"].isna().to_numpy().tolist() == unknown.tolist()
    np.testing.assert_allclose(batch["net_clv"].dropna(), (batch["clv"] - expected)[~unknown])
    bands = np.where(batch["p_churn"] >= 0.9, "high", np.where(batch["p_churn"] >= 0.4, "medium", "low"))
    assert batch["risk_band"].tolist() == bands.tolist()


def test_unknown_values_are_null_never_nan_in_the_parquet_columns(features: pd.DataFrame, batch_rows: pa.Table) -> None:
    no_purchase = features["n_purchase_days"].to_numpy(dtype=float) == 0
    assert no_purchase.any()
    assert batch_rows.column("avg_order_value").is_null().to_pylist() == no_purchase.tolist()
    for name in NULLABLE_NUMBERS:
        column = batch_rows.column(name)
        assert not pc.any(pc.is_nan(column)).as_py(), name
    for name in ("historic_clv", "total_clv", "clv_at_risk", "risk_band"):
        assert batch_rows.column(name).null_count == 0, name
    assert set(batch_rows.column("risk_band").to_pylist()) <= set(RISK_BAND_NAMES)


def test_nullable_numbers_are_the_nullable_fields_of_the_answer() -> None:
    """One list says which numbers may be null: the HTTP answer's optional numbers are exactly those."""
    optional = {
        name
        for name, field in CustomerScore.model_fields.items()
        if field.annotation == (float | None) and name in OUTPUT_COLUMNS
    }
    assert optional == set(NULLABLE_NUMBERS)
    schema = CustomerScore.model_json_schema()["properties"]
    assert schema["risk_band"]["enum"] == list(RISK_BAND_NAMES)


def test_the_database_table_holds_them(batch_rows: pa.Table, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'scores.db'}"
    sink = ScoreSink(url)
    try:
        sink.prepare()
        sink.replace(AS_OF, [batch_rows]).commit()
    finally:
        sink.close()
    engine = sa.create_engine(normalize_url(url))
    try:
        columns = {c["name"]: c for c in sa.inspect(engine).get_columns("churnclv_scores")}
        with engine.connect() as conn:
            rows = pd.read_sql(sa.text("SELECT * FROM churnclv_scores ORDER BY customer_id"), conn)
    finally:
        engine.dispose()
    assert list(columns) == list(OUTPUT_SCHEMA.names)
    assert all(columns[c]["nullable"] for c in MARKETING_COLUMNS)  # an older table can gain them
    batch = batch_rows.to_pandas()
    for col in MARKETING_COLUMNS:
        if col == "risk_band":
            assert rows[col].tolist() == batch[col].tolist()
        else:
            np.testing.assert_array_equal(rows[col].to_numpy(float), batch[col].to_numpy(float), err_msg=col)
    assert [json.loads(r) for r in rows["reasons"].iloc[:5]] == [list(r) for r in batch["reasons"].iloc[:5]]
