"""The promotion gate on a world whose customers change: a champion trained before the change, a
challenger after it, compared on the same out-of-time window (real MLflow store, real DuckDB)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pytest
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from churnclv.cli import cli
from churnclv.features import compute_features
from churnclv.metrics import all_metrics
from churnclv.models.scorer_config import ScorerConfig
from churnclv.training import promotion, registry, tracking
from churnclv.training.config import RunConfig, TrainConfig
from churnclv.training.mlflow_run import train_and_log
from churnclv.training.promotion_window import fold_frames

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SHIFT, CHAMPION_AS_OF, CHALLENGER_AS_OF, H = "2025-06-01", "2025-05-25", "2025-08-24", 28
FOLDS = ("2025-06-29", "2025-07-27")  # the challenger's cutoffs: D - 2H, D - H; both after the champion's as-of
LABELS = ["churned", "purchases", "spend"]
SHIFTED = ["--truth-as-of", SHIFT, "--shift-date", SHIFT, "--shift-purchase-rate", "0.5", "--shift-hazard", "3"]


@pytest.fixture(scope="module")
def shifted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """1,500 customers who buy half as often and leave three times as fast from SHIFT on; version 1
    trained (and promoted, no champion yet) before the shift, version 2 after it."""
    root = tmp_path_factory.mktemp("shifted")
    world = root / "world"
    made = CliRunner().invoke(
        cli,
        ["generate", "--customers", "1500", "--seed", "3", "--out", str(world), "--horizon-days", str(H), *SHIFTED],
        catch_exceptions=False,
    )
    assert made.exit_code == 0, made.output
    config = RunConfig(
        train=TrainConfig(
            horizon_days=H,
            n_folds=2,
            fold_step_days=28,
            train_cutoffs=3,
            cutoff_step_days=28,
            candidates=("btyd", "gbm"),
        ),
        scorer=ScorerConfig(horizon_days=H, gbm_rounds=40, seed=1),
    )
    uri = f"sqlite:///{root}/mlruns/mlflow.db"
    results = [train_and_log(world, day, config, tracking_uri=uri) for day in (CHAMPION_AS_OF, CHALLENGER_AS_OF)]
    return {"world": world, "uri": uri, "root": root, "results": results}


def _promotion_json(client: MlflowClient, run_id: str, dst: Path) -> dict[str, Any]:
    return json.loads(Path(client.download_artifacts(run_id, "promotion.json", str(dst))).read_text())


def test_the_challenger_after_the_shift_is_compared_on_the_same_window_and_promoted(shifted: dict) -> None:
    tracking.configure(shifted["uri"])  # other tests may have moved MLflow's global store
    client = MlflowClient()
    _, challenger = shifted["results"]
    logged = _promotion_json(client, challenger.run_id, shifted["root"] / "v2")
    assert logged["champion_version"] == "1" and logged["window"]["same_window"] is True
    assert logged["basis"].startswith(f"same window: folds {FOLDS[0]}, {FOLDS[1]} (3,000 customer rows")
    assert client.get_run(challenger.run_id).data.tags["churnclv.promotion.basis"] == "same_window"
    # compared: the means over the common folds, not the logged backtest means
    folds = logged["window"]["folds"]
    assert [f["eval_cutoff"] for f in folds] == list(FOLDS)
    for metric in ("churn_auc", "churn_brier", "spend_gini"):
        mean = sum(f["champion"][metric] for f in folds) / len(folds)
        assert logged["champion_metrics"][metric] == pytest.approx(mean)
    # the champion's numbers logged at its training (calm period) flatter it: the logged comparison
    # keeps it, the same window promotes the challenger
    calm, now = logged["logged_metrics"]["champion"], logged["champion_metrics"]
    assert calm["spend_gini"] > now["spend_gini"] + 0.03
    refused, why = promotion.verdict(
        logged["logged_metrics"]["challenger"], calm, promotion.DEFAULT_TOLERANCE, champion_version="1", backtested=True
    )
    assert not refused and any(w.startswith("spend_gini") for w in why)
    assert logged["promoted"] is True and challenger.promotion is not None
    assert challenger.promotion["basis"] == logged["basis"]
    assert str(client.get_model_version_by_alias("churnclv", "champion").version) == "2"


def test_both_are_evaluated_on_identical_customers_and_labels(shifted: dict) -> None:
    tracking.configure(shifted["uri"])
    client = MlflowClient()
    _, challenger = shifted["results"]
    logged = _promotion_json(client, challenger.run_id, shifted["root"] / "v2b")
    last = logged["window"]["folds"][-1]
    cutoff = pd.Timestamp(last["eval_cutoff"])
    # the challenger's last fold, as its backtest evaluated it (customers and realised labels)
    evaluated = challenger.fold_predictions[challenger.selected["churn"]]
    window = fold_frames(shifted["world"], CHALLENGER_AS_OF, [cutoff], challenger.scorer, horizon=H, sample=None)[
        cutoff
    ]
    pd.testing.assert_frame_equal(
        window[["customer_id", *LABELS]].reset_index(drop=True),
        evaluated[["customer_id", "churned", "purchases", "spend"]].reset_index(drop=True),
        check_dtype=False,
    )
    assert last["customers"] == len(evaluated) and last["churned"] == int(evaluated["churned"].sum())
    # the challenger's fold numbers are its backtest's on that fold
    row = challenger.backtest[(challenger.backtest["fold"] == last["fold"])]
    row = row[row["candidate"] == challenger.selected["churn"]].iloc[0]
    assert last["challenger"]["churn_auc"] == pytest.approx(row["churn_auc"])
    # the champion's fold numbers: its saved scorer on the batch features as of the cutoff (what it
    # would have scored that day), for the fold's customers, against the same labels
    scorer = registry.load_scorer("1")
    features = compute_features(shifted["world"], cutoff.date(), config=scorer.feature_config())
    features = features.set_index("customer_id").loc[window["customer_id"]].reset_index()
    scores = scorer.score(features, as_of=cutoff, reasons=False)
    expected = all_metrics(window, scores)
    for metric in ("churn_auc", "churn_brier", "spend_gini"):
        assert last["champion"][metric] == pytest.approx(expected[metric], abs=1e-6)


def test_without_the_data_or_with_a_younger_champion_the_logged_backtests_are_compared(shifted: dict) -> None:
    tracking.configure(shifted["uri"])
    mlflow.set_registry_uri(shifted["uri"])
    registry.set_alias("champion", "1")
    try:
        out = CliRunner().invoke(cli, ["models", "promote", "--tracking-uri", shifted["uri"], "--version", "2"])
        assert out.exit_code == 0, out.output
        assert "not promoted" in out.output  # the calm-period numbers win, as before
        assert "basis: logged backtests (no common window: no data given" in out.output
        assert "metric (logged backtests)" in out.output
        # with the data, the command compares both on the same window, as train does
        args = ["models", "promote", "--tracking-uri", shifted["uri"], "--version", "2"]
        out = CliRunner().invoke(cli, [*args, "--data", str(shifted["world"]), "--trusted"])
        assert out.exit_code == 0, out.output
        assert "promoted to champion" in out.output and "metric (same window)" in out.output
        registry.set_alias("champion", "1")
        # version 1 against a champion trained after every one of its folds: no common window
        registry.set_alias("champion", "2")
        decision = promotion.promote(challenger="1", data=shifted["world"])
        assert decision.basis is not None and not decision.basis.same_window
        assert decision.basis.text.startswith(
            f"logged backtests (no common window: the champion was trained as of {CHALLENGER_AS_OF}"
        )
    finally:
        registry.set_alias("champion", "2")
