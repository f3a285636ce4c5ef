"""``churnclv monitor`` end to end: the trained model of ``trained_store`` scores the small world at two
as-ofs, the monitor runs at a later one; files, exit statuses, MLflow, the database table and what
``/model_info`` and the next manifest show."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from churnclv.cli import cli
from churnclv.features import compute_labels
from churnclv.metrics import churn_metrics
from churnclv.serving.batch import run_batch
from churnclv.serving.monitor import run_monitor
from churnclv.serving.monitor_summary import latest_monitoring
from churnclv.serving.snapshots import manifest_path, read_scores

pytestmark = pytest.mark.integration

FIRST, SECOND, LATER = "2025-10-02", "2025-10-09", "2025-12-31"  # the model: trained 2025-10-02, 90 days


@pytest.fixture(scope="module")
def store(trained_store: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A private copy of the trained registry (the monitor tags the version and logs runs)."""
    folder = tmp_path_factory.mktemp("monitor-mlruns")
    shutil.copy2(Path(trained_store["store"]) / "mlflow.db", folder / "mlflow.db")
    return {"tracking_uri": f"sqlite:///{folder}/mlflow.db", "model_uri": "models:/churnclv@champion"}


def score(world: Path, out: Path, store: dict, day: str) -> None:
    run_batch(
        clean=world,
        as_of=day,
        out=out,
        tracking_uri=store["tracking_uri"],
        progress=False,
        reasons=False,
        echo=lambda _m: None,
    )


@pytest.fixture(scope="module")
def out(store: dict, small_world: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("monitor-out")
    for day in (FIRST, SECOND):
        score(small_world, out, store, day)
    return out


def monitor(world: Path, out: Path, store: dict, as_of: str, *extra: str) -> Result:
    args = ["monitor", "--data", str(world), "--trusted", "--out", str(out), "--as-of", as_of]
    return CliRunner().invoke(cli, [*args, "--tracking-uri", store["tracking_uri"], *extra])


@pytest.fixture(scope="module")
def monitored(out: Path, store: dict, small_world: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    db = f"sqlite:///{tmp_path_factory.mktemp('monitor-db')}/monitor.db"
    result = monitor(small_world, out, store, LATER, "--db", db)
    folder = out / "monitoring" / f"dt={LATER}"
    return {"result": result, "db": db, "folder": folder, "doc": json.loads((folder / "monitor.json").read_text())}


def test_files_and_exit_0(monitored: dict[str, Any]) -> None:
    assert monitored["result"].exit_code == 0, monitored["result"].output
    folder, doc = monitored["folder"], monitored["doc"]
    assert {p.name for p in folder.iterdir()} == {
        "monitor.json",
        "report.md",
        "calibration.png",
        "tier_revenue.png",
        "drift.png",
    }
    assert {"as_of", "partitions", "drift", "breaches", "model_versions"} <= set(doc)
    assert doc["as_of"] == LATER and doc["breaches"] == []
    # only the first partition's horizon has closed (2025-10-02 + 90 days = 2025-12-31)
    assert [p["partition"] for p in doc["partitions"]] == [f"dt={FIRST}"]
    assert [(v["name"], v["version"]) for v in doc["model_versions"]] == [("churnclv", "1")]
    d = doc["drift"]
    assert d["partition"] == f"dt={SECOND}"
    assert d["reference"] == d["reference"] | {"partition": f"dt={FIRST}", "kind": "training_snapshot"}
    assert d["unseen_share"] == 0.0  # the small world has no sign-up after 2025-10-02
    assert "## Drift" in (folder / "report.md").read_text()
    # the largest PSI is named, and is of a feature the thresholds judge (drift_ignore: tenure_days, T)
    counted = [r for r in d["features"] if r["column"] not in ("tenure_days", "T")]
    assert d["max_feature"] == counted[0]["column"] and d["max_feature_psi"] == counted[0]["psi"]
    line = next(x for x in monitored["result"].output.splitlines() if "max feature PSI" in x)
    assert (
        f"max feature PSI {d['max_feature_psi']:.3f} ({d['max_feature']}) (not counted, [monitor] drift_ignore: "
        in line
    )
    assert "tenure_days " in line and "tenure_days (drift_ignore)" in (folder / "report.md").read_text()


def test_figures_equal_an_independent_computation(monitored: dict[str, Any], out: Path, small_world: Path) -> None:
    q = monitored["doc"]["partitions"][0]
    scores = read_scores(out, FIRST)
    labels = compute_labels(small_world, FIRST, 90, as_of=LATER)
    j = scores.merge(labels, on="customer_id")
    assert q["customers"] == q["customers_labelled"] == len(scores) == len(labels)
    want = churn_metrics(j["churned"], j["p_churn"])
    assert q["metrics"]["churn_auc"] == pytest.approx(want["churn_auc"], abs=1e-12)
    assert q["metrics"]["churn_brier"] == pytest.approx(want["churn_brier"], abs=1e-12)
    assert q["metrics"]["spend_agg_pct_error"] == pytest.approx(
        100 * (j["expected_spend"].sum() - j["spend"].sum()) / j["spend"].sum()
    )
    shares = j.groupby("tier")["spend"].sum() / j["spend"].sum()
    for t in q["tiers"]:
        assert t["revenue_share"] == pytest.approx(shares[t["tier"]])


def test_rerun_rewrites_the_same_files(monitored: dict[str, Any], out: Path, store: dict, small_world: Path) -> None:
    before = {p.name: p.read_bytes() for p in monitored["folder"].iterdir() if p.suffix != ".png"}
    again = monitor(small_world, out, store, LATER, "--db", monitored["db"])
    assert again.exit_code == 0, again.output
    assert {p.name: p.read_bytes() for p in monitored["folder"].iterdir() if p.suffix != ".png"} == before
    assert not [p for p in (out / "monitoring").iterdir() if p.name.startswith(".")]  # no temp folder left
    with sa.create_engine(monitored["db"]).connect() as conn:
        rows = conn.execute(sa.text("SELECT count(*) FROM churnclv_monitoring")).scalar_one()
        auc = conn.execute(
            sa.text("SELECT value FROM churnclv_monitoring WHERE section = 'quality' AND metric = 'churn_auc'")
        ).scalar_one()
    assert rows > 50  # once, not twice
    assert auc == pytest.approx(monitored["doc"]["partitions"][0]["metrics"]["churn_auc"])


def test_mlflow_metrics_are_linked_to_the_version(monitored: dict[str, Any], store: dict) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(store["tracking_uri"], registry_uri=store["tracking_uri"])
    runs = client.search_runs(
        [client.get_experiment_by_name("churnclv").experiment_id],
        filter_string="tags.`churnclv.monitor.version` = '1' and tags.`churnclv.monitor.model` = 'churnclv'",
    )
    assert len(runs) == 1  # one production history per version, also after the rerun
    history = client.get_metric_history(runs[0].info.run_id, "quality.churn_auc")
    assert [(m.step, m.value) for m in history] == [
        (20251002, pytest.approx(monitored["doc"]["partitions"][0]["metrics"]["churn_auc"]))
    ]
    assert "drift.max_feature_psi" in runs[0].data.metrics
    mv = client.get_model_version("churnclv", "1")
    assert json.loads(mv.tags["monitor.quality"])["partition"] == f"dt={FIRST}"
    assert mv.tags["monitor.run_id"] == runs[0].info.run_id
    assert mv.description.splitlines()[-1].startswith(f"Monitored: as of {LATER}, dt={FIRST} churn AUC")


def test_a_tightened_threshold_exits_3(
    monitored: dict[str, Any], out: Path, store: dict, small_world: Path, tmp_path: Path
) -> None:
    config = tmp_path / "monitor.toml"
    config.write_text("[monitor]\nmin_auc = 0.99\nmax_psi = 0.001\n")
    r = monitor(small_world, out, store, LATER, "--config", str(config))
    assert r.exit_code == 3, r.output
    lines = [x for x in r.stderr.splitlines() if x.startswith("breach:")]
    assert any(
        "churn_auc" in x and "[monitor] min_auc = 0.99" in x and f"dt={FIRST}" in x and "fix:" in x for x in lines
    )
    doc = json.loads((out / "monitoring" / f"dt={LATER}" / "monitor.json").read_text())
    assert {"check", "value", "threshold", "partition"} <= set(doc["breaches"][0])
    assert {b["check"] for b in doc["breaches"]} >= {"churn_auc"}
    assert any(b["check"].startswith("psi.") and b["partition"] == f"dt={SECOND}" for b in doc["breaches"])
    # what /model_info shows for the version: its breaches and latest quality
    info = latest_monitoring(out, "churnclv", "1")
    assert info is not None and info["quality"]["partition"] == f"dt={FIRST}"
    assert {b["check"] for b in info["breaches"]} == {b["check"] for b in doc["breaches"]}
    assert latest_monitoring(out, "churnclv", "7") is None and latest_monitoring(None, "churnclv", "1") is None
    # back to the default thresholds: exit 0 again, same as-of, the breaches gone
    assert monitor(small_world, out, store, LATER).exit_code == 0
    assert latest_monitoring(out, "churnclv", "1")["breaches"] == []


def test_the_next_manifest_shows_the_monitored_quality(
    monitored: dict[str, Any], out: Path, store: dict, small_world: Path
) -> None:
    score(small_world, out, store, SECOND)
    manifest = json.loads(manifest_path(out, SECOND).read_text())
    assert manifest["monitoring"]["quality"]["partition"] == f"dt={FIRST}"
    assert manifest["monitoring"]["as_of"] == LATER


def test_no_closed_partition_means_drift_only(out: Path, store: dict, small_world: Path, tmp_path: Path) -> None:
    result = run_monitor(
        clean=small_world, out=out, as_of=SECOND, tracking_uri=store["tracking_uri"], echo=lambda _m: None
    )
    assert result.breaches == [] and result.doc["partitions"] == []
    assert any("drift only" in n for n in result.doc["notes"])
    assert result.doc["drift"]["partition"] == f"dt={SECOND}"


def test_a_window_the_data_do_not_reach_yet_waits(out: Path, store: dict, small_world: Path, tmp_path: Path) -> None:
    # a late export: the transactions stop a month before the monitor's as-of; grading dt=FIRST's
    # window would count that month as no purchase (helper: a 44 % breach, and a retrain on it)
    late = tmp_path / "late"
    late.mkdir()
    for table in small_world.glob("*.parquet"):
        shutil.copy2(table, late / table.name)
    tx = pd.read_parquet(small_world / "transactions.parquet")
    tx[tx["ts"] < pd.Timestamp("2025-12-01")].to_parquet(late / "transactions.parquet", index=False)
    result = run_monitor(clean=late, out=out, as_of=LATER, tracking_uri=store["tracking_uri"], echo=lambda _m: None)
    assert result.breaches == [] and result.doc["partitions"] == []
    waits = next(n for n in result.doc["notes"] if "not checked until the data reach it" in n)
    assert waits.startswith(
        f"dt={FIRST}: the window runs to {LATER}, after the last transaction in the data (2025-11-30)"
    )


def test_errors_exit_1(out: Path, store: dict, small_world: Path, tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[monitor]\nmax_psi = -1\n")
    r = monitor(small_world, out, store, LATER, "--config", str(config))
    assert r.exit_code == 1 and "[monitor] max_psi" in r.output and "fix:" in r.output
    r = monitor(small_world, tmp_path / "empty", store, LATER)
    assert r.exit_code == 1 and "no published partition" in r.output and "score-batch" in r.output
    r = monitor(small_world, out, store, LATER, "--db", "mysql://u:secret@host/db")
    assert r.exit_code == 1 and "secret" not in r.output


def test_model_info_carries_the_monitoring_field() -> None:
    from churnclv.serving.schemas import ModelInfo

    assert "monitoring" in ModelInfo.model_fields
    assert ModelInfo.model_fields["monitoring"].default is None
