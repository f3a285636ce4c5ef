"""The Spark engine (local mode) gives the DuckDB engine's features and scores.

Needs the ``spark`` extra (pyspark, ibis-framework[pyspark]) and Java 17; skipped without pyspark.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

pytest.importorskip("pyspark", reason="the spark extra is not installed (pip install 'churnclv[spark]')")

from churnclv.serving.batch import run_batch
from churnclv.serving.snapshots import NULLABLE_NUMBERS, features_path, read_scores, scores_dir

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.spark]

AS_OF = pd.Timestamp("2025-10-02")
FLOATS = ("p_churn", "p_alive", "expected_purchases", "expected_spend", "clv", "growth_score")


@pytest.fixture(scope="module")
def few(small_frames: dict[str, pd.DataFrame], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """300 customers of small_world."""
    out = tmp_path_factory.mktemp("spark_world")
    keep = set(sorted(small_frames["customers"]["customer_id"])[:300])
    for name, frame in small_frames.items():
        frame[frame["customer_id"].isin(keep)].to_parquet(out / f"{name}.parquet", index=False)
    return out


def test_spark_engine_matches_duckdb(
    few: Path, trained_store: dict, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    common = {
        "clean": few,
        "as_of": AS_OF,
        "model_uri": trained_store["model_uri"],
        # one chunk: the Scorer's CLV fallback reads the scored batch (see test_batch.py)
        "tracking_uri": trained_store["tracking_uri"],
        "echo": lambda _m: None,
        "progress": False,
        "chunk_size": 10_000,
    }
    duck = run_batch(out=tmp_path / "duckdb", **common)
    capfd.readouterr()
    spark = run_batch(out=tmp_path / "spark", engine="spark", **common)
    # MLflow's advice to score with conda is dropped: the installed churnclv scores on purpose
    assert 'env_manager="local"' not in capfd.readouterr().err
    assert spark["engine"] == "spark" and spark["counts"]["rows_written"] == duck["counts"]["rows_written"] == 300

    fa = pd.read_parquet(features_path(tmp_path / "duckdb", AS_OF))
    fb = pd.read_parquet(features_path(tmp_path / "spark", AS_OF))
    assert list(fa.columns) == list(fb.columns) and fa["customer_id"].tolist() == fb["customer_id"].tolist()
    for col in fa.columns:
        if pd.api.types.is_numeric_dtype(fa[col]):
            np.testing.assert_allclose(
                fb[col].to_numpy(float), fa[col].to_numpy(float), rtol=1e-9, atol=1e-9, err_msg=col
            )
        else:
            assert fa[col].astype(str).tolist() == fb[col].astype(str).tolist(), col

    a = read_scores(tmp_path / "duckdb", AS_OF)
    b = read_scores(tmp_path / "spark", AS_OF)
    assert list(b.columns) == list(a.columns) and b["customer_id"].tolist() == a["customer_id"].tolist()
    for col in ("p_churn", "p_alive", "expected_purchases", "expected_spend"):
        np.testing.assert_allclose(b[col].to_numpy(), a[col].to_numpy(), rtol=0, atol=1e-9, err_msg=col)
    assert b["tier"].tolist() == a["tier"].tolist() and b["stage"].tolist() == a["stage"].tolist()
    assert b["tier_level"].tolist() == a["tier_level"].tolist() and b["tier_level"].dtype == a["tier_level"].dtype
    assert b["action"].tolist() == a["action"].tolist()
    assert [list(r) for r in b["reasons"]] == [list(r) for r in a["reasons"]]
    assert (b["as_of"] == AS_OF.date()).all() and (b["model_version"] == "1").all()
    for date_col in ("expected_next_purchase_date", "next_purchase_date_p80"):
        assert b[date_col].tolist() == a[date_col].tolist(), date_col
    days_a, days_b = a["expected_next_purchase_days"], b["expected_next_purchase_days"]
    assert (days_b.isna() == days_a.isna()).all() and days_a.isna().any()
    for engine in ("duckdb", "spark"):  # null where undefined, never NaN (as in the HTTP answer)
        days = pq.read_table(scores_dir(tmp_path / engine, AS_OF)).column("expected_next_purchase_days")
        assert days.null_count == days_a.isna().sum() and not pc.any(pc.is_nan(days)).as_py()
    np.testing.assert_allclose(days_b.dropna().to_numpy(), days_a.dropna().to_numpy(), rtol=1e-9)
    assert a["expected_next_purchase_date"].notna().any() and a["expected_next_purchase_date"].isna().any()
    # the marketing fields: the same numbers, null (never NaN) where undefined or unknown
    assert b["risk_band"].tolist() == a["risk_band"].tolist()
    for col in ("historic_clv", "total_clv", "clv_at_risk", *NULLABLE_NUMBERS):
        assert (b[col].isna() == a[col].isna()).all(), col
        np.testing.assert_allclose(b[col].dropna().to_numpy(), a[col].dropna().to_numpy(), rtol=1e-9, err_msg=col)
        column = pq.read_table(scores_dir(tmp_path / "spark", AS_OF)).column(col)
        assert not pc.any(pc.is_nan(column)).as_py(), col
    assert a["avg_order_value"].isna().any() and a["avg_order_value"].notna().any()
    # CLV and the growth score agree wherever the Scorer's CLV does not fall back to the batch median
    # (BTYD spend ~ 0, see test_batch.py); spark_udf scores in its own Arrow batches
    for col in ("clv", "growth_score"):
        np.testing.assert_allclose(b[col].to_numpy(), a[col].to_numpy(), rtol=1e-9, atol=1e-9, err_msg=col)
