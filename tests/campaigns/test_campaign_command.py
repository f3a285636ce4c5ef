"""``churnclv campaign plan`` and ``evaluate`` end to end: files in, a report and a real MLflow run out."""

from __future__ import annotations

import mlflow
import pandas as pd
import pytest
from click.testing import CliRunner

from churnclv.campaigns.holdout import assign_holdout
from churnclv.cli import cli


@pytest.mark.slow
def test_plan_then_evaluate_writes_report_and_mlflow_run(generated_campaign, tmp_path) -> None:
    c = generated_campaign(5)
    data = tmp_path / "data"
    data.mkdir()
    day_after = c.as_of + pd.Timedelta(days=1)
    history = c.world.transactions[c.world.transactions["ts"] < day_after]
    pd.concat([history, c.sim.transactions], ignore_index=True).to_parquet(data / "transactions.parquet")
    c.world.customers.to_parquet(data / "customers.parquet")
    scores = tmp_path / "scores.parquet"
    c.scores.assign(as_of=c.as_of).to_parquet(scores)
    contacts = tmp_path / "contacts.csv"
    c.sim.contact_log.to_csv(contacts, index=False)
    plan = tmp_path / "plan.csv"
    runner = CliRunner()

    result = runner.invoke(
        cli, ["campaign", "plan", "--scores", str(scores), "--campaign", c.campaign, "--out", str(plan)]
    )
    assert result.exit_code == 0, result.output
    written = pd.read_csv(plan, dtype={"customer_id": str})
    assert written["customer_id"].str.len().eq(8).all()  # leading zeros kept
    assert (written["holdout"].to_numpy() == c.plan["holdout"].to_numpy()).all()

    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    out = tmp_path / "report"
    args = ["campaign", "evaluate", "--data", str(data), "--trusted", "--scores", str(scores)]
    args += ["--contacts", str(contacts), "--campaign", c.campaign, "--plan", str(plan), "--out", str(out)]
    args += ["--tracking-uri", uri, "--score-column", "past_spend"]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "revenue uplift" in result.output and "MLflow run" in result.output
    assert {"campaign.md", "uplift_by_tier.png", "qini.png", "cells.csv"} <= {p.name for p in out.iterdir()}
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["churnclv-campaigns"])
    assert len(runs) == 1 and runs["params.campaign"].iloc[0] == c.campaign
    assert "metrics.revenue_uplift" in runs.columns

    # a window that has not closed yet is refused, naming the date
    early = runner.invoke(cli, [*args[:-4], "--as-of", "2025-07-15", "--no-mlflow"])
    assert early.exit_code == 1 and "not closed" in early.output


@pytest.mark.slow
def test_evaluate_reads_the_holdout_of_a_batch_partition(small_world, trained_store, tmp_path) -> None:
    """score-batch --campaign writes the arms; evaluate, given the partition and no --plan, measures against them."""
    from churnclv.serving.batch import run_batch
    from churnclv.serving.snapshots import read_scores, scores_dir

    day = "2025-09-01"  # the 90-day window closes inside the small world's data (to 2025-12-31)
    out = tmp_path / "batch"
    run_batch(
        clean=small_world,
        as_of=day,
        out=out,
        model_uri=trained_store["model_uri"],
        tracking_uri=trained_store["tracking_uri"],
        echo=lambda _m: None,
        progress=False,
        reasons=False,
        campaign="sept",
    )
    scores = read_scores(out, day)
    assert scores["campaign"].eq("sept").all()
    treated = scores[~scores["holdout"].astype(bool)]
    contacts = tmp_path / "contacts.csv"
    pd.DataFrame(
        {"customer_id": treated["customer_id"], "campaign": "sept", "date": "2025-09-02", "action": treated["action"]}
    ).to_csv(contacts, index=False)
    args = ["campaign", "evaluate", "--data", str(small_world), "--trusted", "--scores", str(scores_dir(out, day))]
    args += ["--contacts", str(contacts), "--campaign", "sept", "--out", str(tmp_path / "report"), "--no-mlflow"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    controls = int(scores["holdout"].sum())
    assert f"{len(treated):,} treated, {controls:,} held out" in result.output
    cells = pd.read_csv(tmp_path / "report" / "cells.csv")
    assert int(cells["controls"].sum()) == controls
    # another campaign's evaluation does not take this one's arms: it draws its own plan from the scores
    pd.read_csv(contacts, dtype=str).assign(campaign="other").to_csv(contacts, index=False)
    other = CliRunner().invoke(cli, [*args[:-5], "--campaign", "other", "--out", str(tmp_path / "o"), "--no-mlflow"])
    assert other.exit_code == 0, other.output
    drawn = int(assign_holdout(scores, "other")["holdout"].sum())
    assert drawn != controls and f" {drawn:,} held out" in other.output
