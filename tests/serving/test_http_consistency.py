"""One scorer for every path: 1,000 customers scored over HTTP (from their raw history, and by id
from the snapshot) get the batch job's numbers for the same as-of, whatever requests they share a
scoring call with."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from churnclv.serving.snapshots import NULLABLE_NUMBERS, read_scores

pytestmark = pytest.mark.integration

N_CUSTOMERS = 1_000
NUMBERS = (
    "p_churn",
    "p_alive",
    "expected_purchases",
    "expected_spend",
    "clv",
    "growth_score",
    "historic_clv",
    "total_clv",
    "clv_at_risk",
)
LABELS = ("tier", "stage", "action", "risk_band")


def _compare(http: pd.DataFrame, batch: pd.DataFrame) -> None:
    assert len(http) == N_CUSTOMERS
    batch = batch.loc[http.index]
    for col in NUMBERS:
        np.testing.assert_allclose(
            http[col].to_numpy(float), batch[col].to_numpy(float), rtol=1e-9, atol=1e-12, err_msg=col
        )
    for col in LABELS:
        assert http[col].tolist() == batch[col].tolist(), col
    assert http["reasons"].map(list).tolist() == batch["reasons"].map(list).tolist()
    for date_col in ("expected_next_purchase_date", "next_purchase_date_p80"):
        dates = batch[date_col].map(lambda d: None if pd.isna(d) else d.isoformat())
        assert http[date_col].tolist() == dates.tolist(), date_col
    assert set(http["model_version"]) == set(batch["model_version"]) == {"1"}
    # the campaign's arms: the batch partition's, top-ups included
    assert set(http["campaign"]) == set(batch["campaign"]) == {"crm-pilot"}
    assert http["holdout"].tolist() == batch["holdout"].tolist() and batch["holdout"].any()
    # every column of the batch output is in the HTTP answer, with the batch job's values
    assert set(batch.columns) <= set(http.columns), sorted(set(batch.columns) - set(http.columns))
    assert http["as_of"].tolist() == batch["as_of"].map(lambda d: d.isoformat()).tolist()
    for col in ("tier_level", *NULLABLE_NUMBERS):  # null in both where undefined or unknown
        np.testing.assert_allclose(
            http[col].to_numpy(float), batch[col].to_numpy(float), rtol=1e-9, atol=1e-12, err_msg=col
        )
    assert http["avg_order_value"].isna().any() and http["avg_order_value"].notna().any()
    spend = http[["spend_p10", "spend_p50", "spend_p90"]].to_numpy(float)  # the intervals, given and ordered
    assert np.isfinite(spend).all() and (np.diff(spend, axis=1) >= 0).all() and (spend[:, 2] > 0).any()


@pytest.fixture(scope="module")
def batch_scores(batch_out: Path, kit: Any) -> pd.DataFrame:
    return read_scores(batch_out, kit.AS_OF).set_index("customer_id")


@pytest.fixture(scope="module")
def ids(batch_scores: pd.DataFrame) -> list[str]:
    assert len(batch_scores) >= N_CUSTOMERS
    return sorted(batch_scores.index)[:N_CUSTOMERS]


def test_history_scores_equal_batch_scores(
    client: Any, kit: Any, small_frames: dict, ids: list[str], batch_scores: pd.DataFrame
) -> None:
    rows = []
    for start in range(0, len(ids), kit.MAX_CUSTOMERS):  # pages, as the CRM sends them
        page = ids[start : start + kit.MAX_CUSTOMERS]
        r = client.post("/score", json=kit.history_body(small_frames, page), headers=kit.HEADERS)
        assert r.status_code == 200, r.text
        rows += r.json()["scores"]
    http = pd.DataFrame(rows).set_index("customer_id")
    assert "error" not in http.columns
    _compare(http, batch_scores)


def test_score_by_id_equals_batch_scores(client: Any, kit: Any, ids: list[str], batch_scores: pd.DataFrame) -> None:
    rows = []
    for start in range(0, len(ids), 7):  # small, uneven pages: other calls, same numbers
        r = client.post("/score_by_id", json={"customer_ids": ids[start : start + 7]}, headers=kit.HEADERS)
        assert r.status_code == 200, r.text
        rows += r.json()["scores"]
    _compare(pd.DataFrame(rows).set_index("customer_id"), batch_scores)
