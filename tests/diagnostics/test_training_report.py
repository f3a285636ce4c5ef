"""What training logs from the diagnostics kit: the last backtest fold's calibration, gain and
holdout-by-frequency plots with their tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread

from churnclv.diagnostics import calibration_table, gain_table, holdout_by_frequency
from churnclv.training.reports import write_fold_diagnostics


def fold(seed: int, n: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    p = rng.random(n)
    frequency = rng.integers(0, 10, n).astype(float)
    return pd.DataFrame(
        {
            "customer_id": [f"{i:04d}" for i in range(n)],
            "frequency": frequency,
            "churned": rng.random(n) < p,
            "purchases": rng.poisson(frequency / 3),
            "spend": rng.gamma(1.0, 30.0, n) * (rng.random(n) > p),
            "p_churn": p,
            "expected_purchases": frequency / 3 + rng.normal(0, 0.2, n),
            "expected_spend": rng.gamma(1.0, 30.0, n),
        }
    )


def test_fold_diagnostics_files_hold_the_tables(tmp_path: Path) -> None:
    preds = {"gbm": fold(1), "btyd": fold(1).assign(p_churn=lambda d: d["p_churn"] ** 2)}
    paths = write_fold_diagnostics(preds, tmp_path)
    assert set(paths) == {
        "calibration",
        "gain_churn",
        "gain_spend",
        "holdout_by_frequency",
        "calibration_table",
        "gain_table",
        "holdout_by_frequency_table",
    }
    for key in ("calibration", "gain_churn", "gain_spend", "holdout_by_frequency"):
        assert imread(paths[key]).shape[2] in (3, 4)  # a readable image
    calibration = pd.read_csv(paths["calibration_table"])
    ours = calibration[calibration["candidate"] == "btyd"].drop(columns="candidate").reset_index(drop=True)
    expected = calibration_table(preds["btyd"]["churned"], preds["btyd"]["p_churn"])
    pd.testing.assert_frame_equal(ours, expected, check_dtype=False)
    gains = pd.read_csv(paths["gain_table"])
    spend = gains[(gains["candidate"] == "gbm") & (gains["target"] == "spend")].reset_index(drop=True)
    expected = gain_table(preds["gbm"]["spend"], preds["gbm"]["expected_spend"])
    np.testing.assert_allclose(spend["gain"], expected["gain"])
    holdout = pd.read_csv(paths["holdout_by_frequency_table"], dtype={"group": str})
    expected = holdout_by_frequency(
        preds["gbm"], preds["gbm"], predicted={c: p["expected_purchases"] for c, p in preds.items()}
    )
    pd.testing.assert_frame_equal(holdout, expected, check_dtype=False)


def test_a_window_without_churners_skips_the_churn_gain(tmp_path: Path) -> None:
    preds = {"btyd": fold(2).assign(churned=False).drop(columns="frequency")}
    paths = write_fold_diagnostics(preds, tmp_path)
    assert "gain_churn" not in paths and "gain_spend" in paths and "calibration" in paths
    assert "holdout_by_frequency" not in paths  # fold predictions from before they carried frequency


@pytest.mark.integration
def test_a_training_run_logs_them(trained_store: dict, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=trained_store["tracking_uri"], registry_uri=trained_store["tracking_uri"])
    result = trained_store["result"]
    names = {a.path for a in client.list_artifacts(result.run_id, "report")}
    for name in ("holdout_by_frequency.png", "holdout_by_frequency.csv", "calibration.csv", "gain.csv"):
        assert f"report/{name}" in names
    logged = pd.read_csv(client.download_artifacts(result.run_id, "report/holdout_by_frequency.csv", str(tmp_path)))
    preds = result.fold_predictions
    assert set(logged.columns[4:]) <= set(preds) and "btyd" in logged.columns
    btyd = preds["btyd"]
    assert logged["customers"].sum() == btyd["frequency"].notna().sum()
    assert logged["actual"].iloc[0] == pytest.approx(btyd.loc[btyd["frequency"] == 0, "purchases"].mean())
