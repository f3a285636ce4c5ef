"""The promotion rule: the challenger replaces the champion unless it is worse by more than the tolerance."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from churnclv.cli import cli
from churnclv.training import registry, tracking
from churnclv.training.config import TrainConfig, TrainingError
from churnclv.training.promotion import DEFAULT_TOLERANCE, compare_metrics, promote, verdict

TOL = {"churn_auc": 0.005, "churn_brier": 0.005, "spend_gini": 0.01}
CHAMPION = {"churn_auc": 0.90, "churn_brier": 0.10, "spend_gini": 0.80}


def test_better_or_equal_is_not_worse() -> None:
    assert compare_metrics(CHAMPION, CHAMPION, TOL) == []
    assert compare_metrics({"churn_auc": 0.95, "churn_brier": 0.05, "spend_gini": 0.9}, CHAMPION, TOL) == []


def test_worse_within_the_tolerance_is_not_worse() -> None:
    # AUC down 0.004 and Brier up 0.004 (higher is worse), each inside its tolerance
    assert compare_metrics({"churn_auc": 0.896, "churn_brier": 0.104, "spend_gini": 0.795}, CHAMPION, TOL) == []


@pytest.mark.parametrize(("metric", "value"), [("churn_auc", 0.894), ("churn_brier", 0.106), ("spend_gini", 0.789)])
def test_worse_beyond_the_tolerance_names_the_metric(metric: str, value: float) -> None:
    worse = compare_metrics({**CHAMPION, metric: value}, CHAMPION, TOL)
    assert len(worse) == 1 and worse[0].startswith(f"{metric}: challenger")


def test_a_metric_neither_version_measured_does_not_block_promotion() -> None:
    # a shop whose windows never hold spend: no version ever gets a spend Gini
    no_spend = {m: v for m, v in CHAMPION.items() if m != "spend_gini"}
    ok, why = verdict(no_spend, no_spend, TOL, champion_version="1", backtested=True)
    assert ok and why[-1] == "neither version measured spend_gini"
    ok, why = verdict({**no_spend, "churn_auc": 0.8}, no_spend, TOL, champion_version="1", backtested=True)
    assert not ok and why[0].startswith("churn_auc: challenger")  # the measured metrics still decide
    # the champion measured it, the challenger did not: they cannot be compared
    ok, why = verdict(no_spend, CHAMPION, TOL, champion_version="1", backtested=True)
    assert not ok and "no selected.spend_gini" in why[0]


def test_unknown_tolerance_metric_is_refused() -> None:
    with pytest.raises(TrainingError, match=r"unknown metrics.*churn_acu"):
        TrainConfig(promote_tolerance={"churn_acu": 0.01})


@pytest.mark.integration
def test_promote_on_its_own_logs_both_metric_sets_and_the_decision_in_the_challenger_run(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracking.configure(uri)
    client = MlflowClient()
    client.create_registered_model("churnclv")

    def version(metrics: dict[str, float]) -> str:
        with mlflow.start_run() as run:
            mlflow.log_metrics({f"selected.{k}": v for k, v in metrics.items()})
        return str(client.create_model_version("churnclv", f"runs:/{run.info.run_id}/model", run.info.run_id).version)

    def promotion(version_id: str) -> tuple[dict, dict]:
        run_id = client.get_model_version("churnclv", version_id).run_id
        logged = json.loads(Path(client.download_artifacts(run_id, "promotion.json", str(tmp_path))).read_text())
        return logged, client.get_run(run_id).data.tags

    v1 = version(CHAMPION)
    registry.set_alias("champion", v1)
    v2 = version({**CHAMPION, "churn_auc": 0.88})  # worse by 0.02 > 0.005
    registry.set_alias("challenger", v2)
    out = CliRunner().invoke(cli, ["models", "promote", "--tracking-uri", uri])
    assert out.exit_code == 0, out.output
    assert "not promoted" in out.output and "+0.0200" in out.output  # the comparison table: AUC loss
    assert str(client.get_model_version_by_alias("churnclv", "champion").version) == v1
    logged, tags = promotion(v2)
    assert logged["promoted"] is False and logged["champion_version"] == v1
    assert logged["champion_metrics"] == CHAMPION and logged["challenger_metrics"]["churn_auc"] == 0.88
    auc = next(r for r in logged["comparison"] if r["metric"] == "churn_auc")
    assert auc["loss"] == pytest.approx(0.02) and auc["within_tolerance"] is False
    assert tags["churnclv.promoted"] == "False" and tags["churnclv.promotion.champion_version"] == v1

    v3 = version({**CHAMPION, "churn_auc": 0.91})
    registry.set_alias("challenger", v3)
    out = CliRunner().invoke(cli, ["models", "promote", "--tracking-uri", uri, "--tolerance", "churn_auc=0.001"])
    assert out.exit_code == 0 and "promoted to champion" in out.output
    assert str(client.get_model_version_by_alias("churnclv", "champion").version) == v3
    logged, tags = promotion(v3)
    assert logged["promoted"] is True and logged["tolerance"]["churn_auc"] == 0.001
    assert tags["churnclv.promoted"] == "True"

    # promoting the champion again changes nothing and keeps the record of the real decision
    out = CliRunner().invoke(cli, ["models", "promote", "--tracking-uri", uri])
    assert out.exit_code == 0 and "already the champion" in out.output
    assert promotion(v3)[0] == logged

    # a challenger whose run has no selected.* metrics cannot be compared: not promoted, the metric named
    v4 = version({})
    registry.set_alias("challenger", v4)
    out = CliRunner().invoke(cli, ["models", "promote", "--tracking-uri", uri])
    assert out.exit_code == 0 and "not promoted" in out.output and "no selected.churn_auc" in out.output
    assert str(client.get_model_version_by_alias("churnclv", "champion").version) == v3
    listed = CliRunner().invoke(cli, ["models", "list", "--tracking-uri", uri]).output
    row = next(line for line in listed.splitlines() if line.split()[:1] == [v4])
    assert "nan" not in listed and "     -      -      -  " in row, row  # nothing measured: "-"

    # with no champion yet, such a version fills the slot (as a version without a backtest does), with a note
    ok, why = verdict({}, None, DEFAULT_TOLERANCE, champion_version=None, backtested=True)
    assert ok and why[0].startswith("no champion yet; note: the backtest measured no churn_auc")

    bad = CliRunner().invoke(cli, ["models", "promote", "--tracking-uri", uri, "--tolerance", "churn_acu=0.01"])
    assert bad.exit_code == 2 and "unknown metric 'churn_acu'" in bad.output
    bad = CliRunner().invoke(cli, ["models", "promote", "--tracking-uri", uri, "--version", "99"])
    assert bad.exit_code == 2 and "--version" in bad.output and "churnclv models list" in bad.output


@pytest.mark.integration
def test_a_version_trained_on_other_data_never_replaces_the_champion(tmp_path: Path) -> None:
    """A second data set trained into the same registered model (no --model-name): its metrics do not
    compare with the champion's, whatever they are. The same data set grown is compared as usual."""
    tracking.configure(f"sqlite:///{tmp_path}/mlflow.db")
    client = MlflowClient()
    client.create_registered_model("churnclv")

    def version(metrics: dict[str, float], first: str, last: str) -> str:
        with mlflow.start_run() as run:
            mlflow.log_metrics({f"selected.{k}": v for k, v in metrics.items()})
            mlflow.log_dict(
                {"transactions": {"ts_min": f"{first} 00:00:00", "ts_max": f"{last} 00:00:00"}}, "data_fingerprint.json"
            )
        v = str(client.create_model_version("churnclv", f"runs:/{run.info.run_id}/model", run.info.run_id).version)
        registry.set_alias("challenger", v)
        return v

    better = {**CHAMPION, "churn_auc": 0.95}
    v1 = version(CHAMPION, "2023-01-01", "2025-12-31")
    registry.set_alias("champion", v1)
    version(better, "1997-01-01", "1998-06-30")  # CDNOW into the shop's model
    decision = promote()
    why = (
        f"version {v1}, the champion, was trained on other data (transactions 2023-01-01 to 2025-12-31; this "
        "version's 1997-01-01 to 1998-06-30): their metrics do not compare; one registered model per data set "
        "keeps them apart (churnclv train --model-name NAME)"
    )
    assert not decision.promoted and decision.reasons == [why]
    assert str(client.get_model_version_by_alias("churnclv", "champion").version) == v1

    v3 = version(better, "2023-03-01", "2026-01-31")  # the shop a month later, on a rolling window
    assert promote().promoted and str(client.get_model_version_by_alias("churnclv", "champion").version) == v3
